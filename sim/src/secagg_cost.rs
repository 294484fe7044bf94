//! What secure aggregation costs, beside plain aggregation, for one round
//! of `clients` clients each sending a vector of `values` values: bytes each
//! party sends and receives (the framed messages, exactly as on the wire)
//! and the compute time of each party's steps. Run in one process on the
//! core's sans-I/O protocol (`fedmr_core::secagg`): no network, no store,
//! one client after another, so each client's time is its own work alone.
//! `scripts/bench-flower-secaggplus.py` measures Flower's SecAgg+ the same way.

use std::time::Instant;

use fedmr_core::Result;
use fedmr_core::rng::Rng;
use fedmr_core::secagg::{ClientRound, MaskedInput, SecureAggregation, ServerRound};
use fedmr_core::update::{ModelUpdate, SparseRows};
use fedmr_core::wire::{SecAggMessage, UpdateMessage};

/// One side's cost: bytes out and in, seconds of work.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Cost {
    pub sent: u64,
    pub received: u64,
    pub seconds: f64,
}

/// One cohort's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CostReport {
    pub clients: usize,
    pub values: usize,
    pub neighbours: u32,
    pub threshold: u32,
    /// Clients that vanished after sending their masked input.
    pub dropped: usize,
    /// Mean over clients.
    pub client: Cost,
    /// Per client, seconds by step: keys, shares, masking, unmasking.
    pub client_steps: [f64; 4],
    pub server: Cost,
    /// Server seconds by step: roster, forwarding shares, summing inputs,
    /// unmasking.
    pub server_steps: [f64; 4],
    /// Plain aggregation: one f32 upload per client, summed by the server.
    pub plain_client: Cost,
    pub plain_server: Cost,
}

fn seconds(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// Runs one secure round and one plain round of `clients` clients.
pub fn measure(
    clients: usize,
    values: usize,
    config: SecureAggregation,
    dropout: f64,
    seed: u64,
) -> Result<CostReport> {
    let mut rng = Rng::new(seed);
    let inputs: Vec<u32> = (0..values)
        .map(|_| rng.next_u64() as u32 & 0xffff)
        .collect();
    let mut server = ServerRound::new(1, config, values)?;
    let (mut client, mut srv) = (Cost::default(), Cost::default());
    let (mut client_steps, mut server_steps) = ([0.0; 4], [0.0; 4]);
    let ids: Vec<String> = (0..clients).map(|c| c.to_string()).collect();

    // 1. Keys.
    let mut rounds = Vec::with_capacity(clients);
    for (c, id) in ids.iter().enumerate() {
        let t = Instant::now();
        let mut entropy = [0u8; 32];
        entropy[..8].copy_from_slice(&(seed ^ c as u64).to_le_bytes());
        let round = ClientRound::new(1, &entropy);
        let advert = round.advert().encode();
        client_steps[0] += seconds(t);
        client.sent += advert.len() as u64;
        let t = Instant::now();
        server.advertise(id, SecAggMessage::decode(&advert)?)?;
        server_steps[0] += seconds(t);
        rounds.push(round);
    }
    let t = Instant::now();
    server.close_keys(seed)?;
    server_steps[0] += seconds(t);
    let (mut degree, mut threshold) = (0, 0);

    // 2. Shares.
    for (id, round) in ids.iter().zip(&mut rounds) {
        let t = Instant::now();
        let roster = server.roster_for(id)?.expect("the cohort is closed");
        let roster_bytes = roster.encode();
        server_steps[0] += seconds(t);
        srv.sent += roster_bytes.len() as u64;
        client.received += roster_bytes.len() as u64;
        (degree, threshold) = (roster.degree, roster.threshold);
        let t = Instant::now();
        let batch = round.share(&roster, &config, values)?.encode();
        client_steps[1] += seconds(t);
        client.sent += batch.len() as u64;
        let t = Instant::now();
        server.add_shares(id, SecAggMessage::decode(&batch)?)?;
        server_steps[1] += seconds(t);
    }
    server.close_shares()?;

    // 3. Masked inputs; the last `dropout` share of clients vanish after.
    let vanished = (clients as f64 * dropout).round() as usize;
    for (id, round) in ids.iter().zip(&mut rounds) {
        let t = Instant::now();
        let inbox = server.inbox(id)?.encode();
        server_steps[1] += seconds(t);
        srv.sent += inbox.len() as u64;
        client.received += inbox.len() as u64;
        let t = Instant::now();
        let masked = round
            .mask(&SecAggMessage::decode(&inbox)?, &inputs)?
            .encode();
        client_steps[2] += seconds(t);
        client.sent += masked.len() as u64;
        let t = Instant::now();
        server.add_masked(id, &MaskedInput::decode(&masked)?)?;
        server_steps[2] += seconds(t);
    }
    let request = server.close_masked()?.clone().encode();

    // 4. Unmasking.
    for (id, round) in ids.iter().zip(&mut rounds).skip(vanished) {
        srv.sent += request.len() as u64;
        client.received += request.len() as u64;
        let t = Instant::now();
        let response = round.unmask(&SecAggMessage::decode(&request)?)?.encode();
        client_steps[3] += seconds(t);
        client.sent += response.len() as u64;
        let t = Instant::now();
        server.add_unmask(id, SecAggMessage::decode(&response)?)?;
        server_steps[3] += seconds(t);
    }
    let t = Instant::now();
    let (sum, _) = server.finish()?;
    server_steps[3] += seconds(t);
    let expected = inputs.iter().map(|&v| v.wrapping_mul(clients as u32));
    if !sum.iter().copied().eq(expected) {
        return Err(fedmr_core::Error::InvalidMessage(
            "the unmasked sum is not the sum of the inputs".into(),
        ));
    }
    srv.received = client.sent;
    client.seconds = client_steps.iter().sum::<f64>() / clients as f64;
    srv.seconds = server_steps.iter().sum();
    client_steps.iter_mut().for_each(|s| *s /= clients as f64);
    let (plain_client, plain_server) = plain(clients, values);
    Ok(CostReport {
        clients,
        values,
        neighbours: degree,
        threshold,
        dropped: vanished,
        client,
        client_steps,
        server: srv,
        server_steps,
        plain_client,
        plain_server,
    })
}

/// Plain aggregation of the same vectors as f32 (the dense part of an
/// update message): encode, decode, add into a running sum.
fn plain(clients: usize, values: usize) -> (Cost, Cost) {
    let update = ModelUpdate {
        samples: 1,
        item_rows: SparseRows {
            ids: Vec::new(),
            values: ndarray::Array2::zeros((0, 1)),
        },
        dense: (0..values).map(|k| k as f32 * 1e-6).collect(),
    };
    let (mut client, mut server) = (Cost::default(), Cost::default());
    let mut sum = vec![0f64; values];
    for c in 0..clients {
        let t = Instant::now();
        let bytes = UpdateMessage::new(1, 1, format!("key-{c}"), &update).encode();
        client.seconds += seconds(t);
        client.sent += bytes.len() as u64;
        let t = Instant::now();
        let message = UpdateMessage::decode(&bytes).expect("our own bytes");
        for (s, &v) in sum.iter_mut().zip(&message.dense) {
            *s += f64::from(v);
        }
        server.seconds += seconds(t);
        server.received += bytes.len() as u64;
    }
    client.seconds /= clients as f64;
    (client, server)
}

/// The Markdown table of `reports`.
pub fn table(reports: &[CostReport]) -> String {
    let mut out = String::from(
        "| clients | values | neighbours (threshold) | dropped | client sends | client receives | client s (keys / shares / mask / unmask) | server receives | server sends | server s (roster / shares / sum / unmask) | plain: client sends | plain: client s | plain: server s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mb = |b: u64| format!("{:.2} MB", b as f64 / 1e6);
    for r in reports {
        let n = r.clients as u64;
        let steps = |s: &[f64; 4]| {
            format!(
                "{:.3} ({:.3} / {:.3} / {:.3} / {:.3})",
                s.iter().sum::<f64>(),
                s[0],
                s[1],
                s[2],
                s[3]
            )
        };
        out.push_str(&format!(
            "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {:.3} |\n",
            r.clients,
            r.values,
            r.neighbours,
            r.threshold,
            r.dropped,
            mb(r.client.sent / n),
            mb(r.client.received / n),
            steps(&r.client_steps),
            mb(r.server.received),
            mb(r.server.sent),
            steps(&r.server_steps),
            mb(r.plain_client.sent / n),
            r.plain_client.seconds,
            r.plain_server.seconds,
        ));
    }
    out
}
