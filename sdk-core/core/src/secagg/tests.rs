//! The protocol end to end in memory: every client honest, some dropping out.

use super::*;

const ROUND: u64 = 9;

fn config(neighbours: u32) -> SecureAggregation {
    SecureAggregation {
        neighbours,
        max_clients: 64,
        ..SecureAggregation::default()
    }
}

fn inputs(n: usize, len: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|c| (0..len).map(|k| (c * 1000 + k) as u32).collect())
        .collect()
}

/// Runs a round to the unmask request; returns server, clients (by id
/// order), and the inputs; clients in `gone_before_mask` share but send no
/// input.
struct Run {
    server: ServerRound,
    clients: Vec<ClientRound>,
    ids: Vec<String>,
}

fn run_to_unmask(n: usize, neighbours: u32, len: usize, gone_before_mask: &[usize]) -> Run {
    let config = config(neighbours);
    let mut server = ServerRound::new(ROUND, config, len).unwrap();
    let ids: Vec<String> = (0..n).map(|c| format!("client-{c}")).collect();
    let mut clients: Vec<ClientRound> = (0..n)
        .map(|c| ClientRound::new(ROUND, &[c as u8 + 1; 32]))
        .collect();
    for (id, c) in ids.iter().zip(&clients) {
        server.advertise(id, c.advert()).unwrap();
    }
    server.close_keys(5).unwrap();
    for (id, c) in ids.iter().zip(&mut clients) {
        let roster = server.roster_for(id).unwrap().unwrap();
        // Each client gets its own part only: itself and its neighbours.
        assert_eq!(roster.members.len() as u32, roster.degree + 1);
        let batch = c.share(&roster, &config, len).unwrap();
        server.add_shares(id, batch).unwrap();
    }
    server.close_shares().unwrap();
    let data = inputs(n, len);
    for (c, (id, client)) in ids.iter().zip(&mut clients).enumerate() {
        let inbox = server.inbox(id).unwrap();
        let masked = client.mask(&inbox, &data[c]).unwrap();
        if !gone_before_mask.contains(&c) {
            server.add_masked(id, &masked).unwrap();
        }
    }
    server.close_masked().unwrap();
    Run {
        server,
        clients,
        ids,
    }
}

fn expected_sum(n: usize, len: usize, without: &[usize]) -> Vec<u32> {
    let data = inputs(n, len);
    (0..len)
        .map(|k| {
            (0..n)
                .filter(|c| !without.contains(c))
                .fold(0u32, |s, c| s.wrapping_add(data[c][k]))
        })
        .collect()
}

fn answer(run: &mut Run, except: &[usize]) {
    let request = run.server.unmask_request().unwrap().clone();
    for (c, (id, client)) in run.ids.iter().zip(&mut run.clients).enumerate() {
        if except.contains(&c) || run.server.index_of(id).is_none() {
            continue;
        }
        if request
            .survivors
            .contains(&run.server.index_of(id).unwrap())
        {
            let response = client.unmask(&request).unwrap();
            run.server.add_unmask(id, response).unwrap();
        }
    }
}

#[test]
fn the_server_gets_exactly_the_sum_and_no_single_input() {
    let (n, len) = (12, 300);
    let mut run = run_to_unmask(n, 4, len, &[]);
    // What the server holds before unmasking says nothing of the sum.
    assert_ne!(run.server.masked_sum, expected_sum(n, len, &[]));
    answer(&mut run, &[]);
    let (sum, survivors) = run.server.finish().unwrap();
    assert_eq!(survivors, n);
    assert_eq!(sum, expected_sum(n, len, &[]));
}

#[test]
fn a_round_completes_when_30_percent_vanish_after_uploading() {
    let (n, len) = (10, 50);
    let mut run = run_to_unmask(n, 16, len, &[]);
    answer(&mut run, &[1, 4, 8]);
    assert!(run.server.can_finish());
    let (sum, survivors) = run.server.finish().unwrap();
    // They uploaded: their inputs are in the sum although they never answered.
    assert_eq!((sum, survivors), (expected_sum(n, len, &[]), n));
}

#[test]
fn clients_that_drop_before_their_input_are_left_out_of_the_sum() {
    let (n, len) = (16, 40);
    let gone = [2, 3, 11];
    // Degree 8, threshold 5: whichever three drop, every client keeps five
    // neighbours that answer.
    let mut run = run_to_unmask(n, 8, len, &gone);
    let request = run.server.unmask_request().unwrap().clone();
    assert_eq!(request.dropped.len(), 3);
    answer(&mut run, &gone);
    let (sum, survivors) = run.server.finish().unwrap();
    assert_eq!(survivors, n - gone.len());
    assert_eq!(sum, expected_sum(n, len, &gone));
}

#[test]
fn too_few_answers_leave_the_sum_masked() {
    let mut run = run_to_unmask(6, 8, 10, &[]);
    answer(&mut run, &[0, 1, 2, 3]);
    assert!(!run.server.can_finish());
    assert!(run.server.finish().is_err());
}

#[test]
fn honest_clients_never_reveal_both_secrets_of_one_client() {
    let mut run = run_to_unmask(8, 8, 10, &[]);
    let honest = run.server.unmask_request().unwrap().clone();
    let target = honest.survivors[0];
    let client = run
        .clients
        .iter_mut()
        .find(|c| c.index() == Some(honest.survivors[1]))
        .unwrap();
    // Asking, in one request, for the target's self-mask and mask-key shares.
    let mut both = honest.clone();
    both.dropped = vec![target];
    assert!(client.unmask(&both).is_err());
    // Asking first as a survivor, then as dropped.
    let first = client.unmask(&honest).unwrap();
    assert!(first.self_mask_shares.iter().any(|(o, _)| *o == target));
    let mut later = honest.clone();
    later.survivors.retain(|&s| s != target);
    later.dropped = vec![target];
    assert!(client.unmask(&later).is_err());
    // A retry of the request it answered gets the same answer.
    assert_eq!(client.unmask(&honest).unwrap(), first);
}

#[test]
fn a_tampered_share_or_a_roster_without_us_is_refused() {
    let config = config(4);
    // Eight clients of degree 4: each one's part of the roster is its own.
    let mut clients: Vec<ClientRound> = (0..8)
        .map(|c| ClientRound::new(ROUND, &[c + 1; 32]))
        .collect();
    let mut server = ServerRound::new(ROUND, config, 8).unwrap();
    for (c, client) in clients.iter().enumerate() {
        server.advertise(&c.to_string(), client.advert()).unwrap();
    }
    server.close_keys(1).unwrap();
    let roster = server.roster_for("0").unwrap().unwrap();
    let mut stranger = ClientRound::new(ROUND, &[99; 32]);
    assert!(stranger.share(&roster, &config, 8).is_err());
    let mut weaker = roster.clone();
    weaker.threshold -= 1;
    assert!(clients[0].share(&weaker, &config, 8).is_err());
    assert!(clients[0].share(&roster, &config, 9).is_err());
    // Someone else's part of the roster, or ours with a neighbour missing.
    assert!(
        clients[0]
            .share(&server.roster_for("1").unwrap().unwrap(), &config, 8)
            .is_err()
    );
    let mut short = roster.clone();
    short.members.pop();
    assert!(clients[0].share(&short, &config, 8).is_err());
    for (c, client) in clients.iter_mut().enumerate() {
        let roster = server.roster_for(&c.to_string()).unwrap().unwrap();
        let batch = client.share(&roster, &config, 8).unwrap();
        server.add_shares(&c.to_string(), batch).unwrap();
    }
    server.close_shares().unwrap();
    let mut inbox = server.inbox("0").unwrap();
    inbox.shares[0].ciphertext[3] ^= 1;
    assert!(clients[0].mask(&inbox, &[0; 8]).is_err());
}

#[test]
fn client_state_survives_encoding_between_phases() {
    let config = config(4);
    let mut server = ServerRound::new(ROUND, config, 6).unwrap();
    let mut clients: Vec<ClientRound> = (0..4)
        .map(|c| ClientRound::new(ROUND, &[c + 7; 32]))
        .collect();
    for (c, client) in clients.iter().enumerate() {
        server.advertise(&c.to_string(), client.advert()).unwrap();
    }
    server.close_keys(3).unwrap();
    for (c, client) in clients.iter_mut().enumerate() {
        let roster = server.roster_for(&c.to_string()).unwrap().unwrap();
        let batch = client.share(&roster, &config, 6).unwrap();
        // The app is killed here and the state read back from the store.
        *client = ClientRound::decode(&client.encode()).unwrap();
        assert_eq!(client.phase(), "shares");
        // Resending after a restart sends the same bytes.
        assert_eq!(client.share(&roster, &config, 6).unwrap(), batch);
        server.add_shares(&c.to_string(), batch).unwrap();
    }
    server.close_shares().unwrap();
    for (c, client) in clients.iter_mut().enumerate() {
        let inbox = server.inbox(&c.to_string()).unwrap();
        let masked = client.mask(&inbox, &[c as u32; 6]).unwrap();
        *client = ClientRound::decode(&client.encode()).unwrap();
        server.add_masked(&c.to_string(), &masked).unwrap();
    }
    server.close_masked().unwrap();
    let request = server.unmask_request().unwrap().clone();
    for (c, client) in clients.iter_mut().enumerate() {
        server
            .add_unmask(&c.to_string(), client.unmask(&request).unwrap())
            .unwrap();
    }
    assert_eq!(server.finish().unwrap().0, vec![6; 6]);
}

/// Random cohorts, degrees and losses: the round unmasks exactly the sum of
/// the inputs sent whenever every secret it needs has a threshold of
/// answering holders, and refuses to finish otherwise.
#[test]
fn random_rounds_unmask_exactly_when_enough_holders_answer() {
    let mut rng = crate::rng::Rng::new(17);
    let (mut finished, mut refused) = (0, 0);
    for _ in 0..40 {
        let n = 3 + rng.below(30) as usize;
        let neighbours = 2 + rng.below(14) as u32;
        let len = 1 + rng.below(20) as usize;
        // Some never send their input; some send it and never answer.
        let lost: Vec<usize> = (0..n).filter(|_| rng.below(8) == 0).collect();
        let silent: Vec<usize> = (0..n)
            .filter(|c| !lost.contains(c) && rng.below(6) == 0)
            .collect();
        let (n32, degree) = (n as u32, super::degree(n as u32, neighbours));
        let t = super::threshold(degree) as usize;
        // Honest clients refuse a request with fewer survivors than that.
        if n - lost.len() < t.max(3) {
            continue;
        }
        let mut run = run_to_unmask(n, neighbours, len, &lost);
        let mut quiet = lost.clone();
        quiet.extend(&silent);
        answer(&mut run, &quiet);
        // Whether the graph leaves every needed secret a threshold of
        // answering holders.
        let answering = |i: u32| {
            let id = run
                .ids
                .iter()
                .position(|x| run.server.index_of(x) == Some(i))
                .unwrap();
            !quiet.contains(&id)
        };
        let enough = (0..n32).all(|i| {
            super::neighbours(n32, degree, i)
                .into_iter()
                .filter(|&j| answering(j))
                .count()
                >= t
        });
        assert_eq!(run.server.can_finish(), enough, "n {n} k {degree}");
        if enough {
            let (sum, survivors) = run.server.finish().unwrap();
            assert_eq!(survivors, n - lost.len());
            assert_eq!(sum, expected_sum(n, len, &lost));
            finished += 1;
        } else {
            assert!(run.server.finish().is_err());
            refused += 1;
        }
    }
    assert!(
        finished > 5 && refused > 2,
        "both outcomes covered: {finished} / {refused}"
    );
}

/// A client that reveals wrong shares cannot make the server unmask a wrong
/// sum: rebuilt secrets are checked against their commitments and public
/// keys, other holders' shares are tried, and a failure keeps the sum.
#[test]
fn wrong_revealed_shares_are_caught_by_the_commitments() {
    let (n, len) = (8, 12);
    let mut run = run_to_unmask(n, 8, len, &[]);
    let request = run.server.unmask_request().unwrap().clone();
    for (c, (id, client)) in run.ids.iter().zip(&mut run.clients).enumerate() {
        let mut response = client.unmask(&request).unwrap();
        if c == 0 {
            for (_, share) in &mut response.self_mask_shares {
                share.y[2] ^= 1;
            }
        }
        run.server.add_unmask(id, response).unwrap();
        if c == 4 {
            // Five answers: the other answerers' seeds have four shares each,
            // the threshold, one of them a lie.
            assert!(run.server.can_finish());
            assert!(run.server.finish().is_err());
            assert_eq!(run.server.masked_sum.len(), len, "the sum is kept");
        }
    }
    let (sum, _) = run.server.finish().unwrap();
    assert_eq!(sum, expected_sum(n, len, &[]));
}
