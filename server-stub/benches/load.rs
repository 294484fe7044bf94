//! Load benchmark on loopback: many concurrent clients POST realistic
//! (~50 KB) updates to a real server; rounds close during the run.
//!
//! The server runs in a child process (this binary re-run with
//! `FEDMR_LOAD_SERVER_DIR` set), so its memory and CPU are its own: peak RSS
//! is the child's `VmHWM`. The parent issues client tokens over the admin
//! API and drives the load from `FEDMR_LOAD_THREADS` threads, each with its
//! own blocking HTTP client (its own keep-alive connection).
//!
//! For each number of distinct clients per round (`min_updates` = that
//! number, so a round closes when every client has submitted once) it runs,
//! on one server process, the same client threads building and POSTing the
//! same kind of bodies:
//!
//! 1. baseline "401": a wrong token; the body is read, then refused: the
//!    HTTP + transfer cost alone. (Any request that ends with no answer is
//!    counted.)
//! 2. baseline "409": a valid token, an update for a stale model version;
//!    the body is read, its digest checked and decoded, then refused: the
//!    HTTP + transfer + decode cost without validation, SQLite or
//!    aggregation.
//! 3. load: valid distinct updates for the open round (202), rounds closing.
//!
//! Run: `cargo bench -p fedmr-server --bench load`. Knobs (environment):
//! `FEDMR_LOAD_THREADS` (32), `FEDMR_LOAD_UPDATES` accepted updates per run
//! (6000), `FEDMR_LOAD_CLIENTS` comma-separated clients per round
//! (200,2000), `FEDMR_LOAD_ITEMS` catalog size (5000), `FEDMR_LOAD_BYTES`
//! target update size (50000), `FEDMR_LOAD_FUSION=full` for the default
//! full MFFM (its dense delta alone is ~250 KB at d = 64),
//! `FEDMR_LOAD_ENCODE_IN_LOOP=1` to encode each load body in the timed
//! loop (by default they are encoded before it: the server's rate is what
//! is measured, and the clients share its two cores), `FEDMR_LOAD_BASELINES=0`
//! to skip the baselines (to profile the load alone).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use fedmr_core::data::Dataset;
use fedmr_core::data::synthetic::{SyntheticConfig, generate};
use fedmr_core::model::params::Tensors;
use fedmr_core::model::{Expert, FusionMode, GlobalModel, ModelConfig};
use fedmr_core::rng::Rng;
use fedmr_core::train::TrainConfig;
use fedmr_core::wire::{RoundMessage, UpdateMessage};
use fedmr_server::{RunningServer, ServerConfig, ServerCore, genesis_from_dataset};

const ADMIN: &str = "load-bench-admin";
const ENV_DIR: &str = "FEDMR_LOAD_SERVER_DIR";
const ENV_MIN_UPDATES: &str = "FEDMR_LOAD_MIN_UPDATES";
const PORT_MARKER: &str = "FEDMR_LOAD_PORT=";
/// Issue 16, item 7 (it was 2,000/s before group commits).
const GOAL_PER_SEC: f64 = 5000.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn dataset() -> Dataset {
    generate(&SyntheticConfig {
        n_users: 16,
        n_items: env_or("FEDMR_LOAD_ITEMS", 5000),
        n_modalities: 2,
        modality_dim: 32,
        interactions_per_user: 10,
        seed: 11,
        ..SyntheticConfig::default()
    })
}

/// d = 64. By default MFFM with the sum expert only (projections and
/// norms: a small dense delta, so item rows dominate a ~50 KB update).
fn model_config() -> ModelConfig {
    let fusion = if std::env::var("FEDMR_LOAD_FUSION").as_deref() == Ok("full") {
        FusionMode::full()
    } else {
        FusionMode::Mffm {
            experts: vec![Expert::Sum],
            use_id: true,
        }
    };
    ModelConfig {
        fusion,
        dim: 64,
        ..ModelConfig::default()
    }
}

fn genesis() -> GlobalModel {
    genesis_from_dataset(&dataset(), &model_config(), &TrainConfig::default(), 1)
        .unwrap()
        .global
}

fn main() {
    if let Some(dir) = std::env::var_os(ENV_DIR) {
        serve(PathBuf::from(dir));
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let threads: usize = env_or("FEDMR_LOAD_THREADS", 32);
    let total: usize = env_or("FEDMR_LOAD_UPDATES", 6000);
    let clients: Vec<usize> = std::env::var("FEDMR_LOAD_CLIENTS")
        .unwrap_or_else(|_| "200,2000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();

    let global = genesis();
    let shape = Shape {
        n_items: global.n_items(),
        dim: global.dim(),
        dense: global.dense.num_params(),
        rows: 0,
    };
    let target: usize = env_or("FEDMR_LOAD_BYTES", 50_000);
    let per_row = shape.dim * 4 + 4;
    let rows = (target.saturating_sub(shape.dense * 4 + 200) / per_row).clamp(1, shape.n_items);
    let shape = Shape { rows, ..shape };
    let sample = shape.template(0).encode();
    println!(
        "fedmr-server load bench: {} items, d = {}, dense fusion params {}, {} item rows per update",
        shape.n_items, shape.dim, shape.dense, shape.rows
    );
    println!(
        "update body: {} bytes ({:.1} KB) framed; {threads} client threads (one keep-alive connection each); \
         {total} accepted updates per run; {} cores",
        sample.len(),
        sample.len() as f64 / 1000.0,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let shape = Arc::new(shape);
    let mut results = Vec::new();
    for &n in &clients {
        results.push(run(n, threads, total, &shape));
    }

    println!();
    println!(
        "summary (ratio = accepted/s over the baseline's requests/s, same threads, same bodies; \
         the 401 baseline counts requests the server reset without answering):"
    );
    for r in &results {
        println!(
            "  {:>5} clients/round: {:>7.0} accepted/s ({:.2}x the {}/s goal), p50 {:.2} ms, p99 {:.2} ms; \
             vs 401 baseline {:.2}, vs 409 baseline {:.2}; server peak RSS {:.1} MB (idle {:.1} MB, +{:.1} MB under load)",
            r.clients,
            r.load.per_sec(),
            r.load.per_sec() / GOAL_PER_SEC,
            GOAL_PER_SEC,
            ms(r.load.p(50)),
            ms(r.load.p(99)),
            r.load.per_sec() / r.base401.requests_per_sec(),
            r.load.per_sec() / r.base409.per_sec(),
            mb(r.peak_kb),
            mb(r.idle_kb),
            mb(r.peak_kb.saturating_sub(r.idle_kb)),
        );
    }
    if let [a, .., b] = results.as_slice() {
        println!(
            "  memory vs clients: peak RSS {:.1} MB at {} clients/round, {:.1} MB at {} ({:+.1} MB, x{:.2} for x{:.0} clients)",
            mb(a.peak_kb),
            a.clients,
            mb(b.peak_kb),
            b.clients,
            mb(b.peak_kb) - mb(a.peak_kb),
            b.peak_kb as f64 / a.peak_kb as f64,
            b.clients as f64 / a.clients as f64
        );
    }
    let best = results.iter().map(|r| r.load.per_sec()).fold(0.0, f64::max);
    println!(
        "  goal >= {GOAL_PER_SEC}/s of ~50 KB updates: {} (best {best:.0}/s)",
        if best >= GOAL_PER_SEC {
            "met"
        } else {
            "NOT met"
        }
    );
}

// ---------------------------------------------------------------- server

/// The child: a server on 127.0.0.1:0 over `dir`; prints its port, serves
/// until its stdin closes.
fn serve(dir: PathBuf) {
    let mut config = ServerConfig::new(dir, ADMIN);
    config.min_updates = env_or(ENV_MIN_UPDATES, 200);
    config.round_duration = Duration::from_secs(24 * 3600);
    let ds = dataset();
    let core = ServerCore::open(config, || {
        genesis_from_dataset(&ds, &model_config(), &TrainConfig::default(), 1)
    })
    .unwrap();
    drop(ds);
    let server = RunningServer::start(core, "127.0.0.1:0".parse().unwrap()).unwrap();
    println!("{PORT_MARKER}{}", server.addr.port());
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(server);
}

struct ServerProcess {
    child: Child,
    url: String,
    dir: PathBuf,
    _stdin: ChildStdin,
    _stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    fn start(dir: &Path, min_updates: usize) -> ServerProcess {
        let _ = std::fs::remove_dir_all(dir);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(ENV_DIR, dir)
            .env(ENV_MIN_UPDATES, min_updates.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the server process");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let port = loop {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "server process exited before printing its port"
            );
            if let Some(at) = line.find(PORT_MARKER) {
                let digits: String = line[at + PORT_MARKER.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                break digits.parse::<u16>().unwrap();
            }
        };
        ServerProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            _stdin: stdin,
            _stdout: stdout,
        }
    }

    /// (VmRSS, VmHWM) in kB.
    fn rss_kb(&self) -> (u64, u64) {
        rss_of(self.child.id())
    }

    /// The server's CPU time so far (user + system).
    fn cpu(&self) -> Duration {
        cpu_of(&format!("/proc/{}/stat", self.child.id()))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// (VmRSS, VmHWM) of a process, in kB.
fn rss_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// utime + stime of a /proc stat file (clock ticks of 10 ms, the Linux
/// default USER_HZ).
fn cpu_of(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat; `after_name` starts at field 3.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

// ---------------------------------------------------------------- clients

struct Shape {
    n_items: usize,
    dim: usize,
    dense: usize,
    rows: usize,
}

impl Shape {
    /// A thread's update: `rows` distinct random item rows, random values.
    /// Each post changes the round, the key and one dense value, so every
    /// body is distinct.
    fn template(&self, thread: usize) -> UpdateMessage {
        let mut rng = Rng::derive(7, &[thread as u64]);
        let mut ids: Vec<u32> = (0..self.n_items as u32).collect();
        rng.shuffle(&mut ids);
        ids.truncate(self.rows);
        ids.sort_unstable();
        UpdateMessage {
            round: 1,
            base_version: 1,
            idempotency_key: String::new(),
            samples: 20,
            item_ids: ids,
            item_rows: (0..self.rows * self.dim)
                .map(|_| (rng.normal() * 0.01) as f32)
                .collect(),
            dense: (0..self.dense)
                .map(|_| (rng.normal() * 0.001) as f32)
                .collect(),
        }
    }
}

fn body(template: &mut UpdateMessage, version: u64, client: usize, seq: usize) -> Vec<u8> {
    template.round = version;
    template.base_version = version;
    template.idempotency_key = format!("c{client}-v{version}-{seq}");
    if let Some(first) = template.dense.first_mut() {
        *first = (client as f32 + seq as f32 * 1e-3) * 1e-6;
    }
    template.encode()
}

fn agent() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// One measured phase.
#[derive(Default)]
struct Phase {
    wall: Duration,
    /// Latencies of the answers the phase is about (202, 401 or 409).
    latencies: Vec<Duration>,
    stale: usize,
    already: usize,
    /// Requests that got no answer (the connection was closed under them).
    transport: usize,
    /// Latencies of the POSTs whose update closed a round.
    closes: Vec<Duration>,
    /// The server's VmRSS (kB), sampled every 50 ms during the phase.
    rss_kb: Vec<u64>,
    other: Vec<String>,
    server_cpu: Duration,
    client_cpu: Duration,
}

impl Phase {
    /// Answers of the expected kind per second.
    fn per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    /// Requests per second, answered or not.
    fn requests_per_sec(&self) -> f64 {
        (self.latencies.len() + self.transport + self.other.len()) as f64 / self.wall.as_secs_f64()
    }

    fn p(&self, pct: usize) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = (self.latencies.len() * pct / 100).min(self.latencies.len() - 1);
        self.latencies[i]
    }

    fn merge(&mut self, other: Phase) {
        self.latencies.extend(other.latencies);
        self.stale += other.stale;
        self.already += other.already;
        self.transport += other.transport;
        self.closes.extend(other.closes);
        self.other.extend(other.other);
    }

    fn print(&self, name: &str) {
        println!(
            "  {name:<34} {:>6} in {:>5.2} s = {:>6.0}/s   p50 {:>5.2} ms  p99 {:>6.2} ms  max {:>6.2} ms   \
             server CPU {:.2} cores, client CPU {:.2} cores",
            self.latencies.len(),
            self.wall.as_secs_f64(),
            self.per_sec(),
            ms(self.p(50)),
            ms(self.p(99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
            self.server_cpu.as_secs_f64() / self.wall.as_secs_f64(),
            self.client_cpu.as_secs_f64() / self.wall.as_secs_f64(),
        );
        println!(
            "  {:<34} 409 stale {}, 409 already submitted {}, no answer (connection closed) {}, other {} {:?}; \
             all requests {:.0}/s",
            "",
            self.stale,
            self.already,
            self.transport,
            self.other.len(),
            &self.other[..self.other.len().min(3)],
            self.requests_per_sec()
        );
        if !self.closes.is_empty() {
            let mut closes = self.closes.clone();
            closes.sort_unstable();
            println!(
                "  {:<34} round-closing POSTs (aggregate, store model, delete the round's rows): {}, \
                 p50 {:.2} ms, max {:.2} ms, {:.0}% of the phase's wall time",
                "",
                closes.len(),
                ms(closes[closes.len() / 2]),
                ms(*closes.last().unwrap()),
                100.0 * closes.iter().sum::<Duration>().as_secs_f64() / self.wall.as_secs_f64()
            );
        }
        if let (Some(first), Some(last)) = (self.rss_kb.first(), self.rss_kb.last()) {
            let quarter = self.rss_kb.len().div_ceil(4);
            let max_of = |s: &[u64]| s.iter().copied().max().unwrap_or(0);
            println!(
                "  {:<34} server VmRSS during the phase: first {:.1} MB, max {:.1} MB, last {:.1} MB; \
                 max of first quarter {:.1} MB vs last quarter {:.1} MB ({} samples)",
                "",
                mb(*first),
                mb(max_of(&self.rss_kb)),
                mb(*last),
                mb(max_of(&self.rss_kb[..quarter])),
                mb(max_of(&self.rss_kb[self.rss_kb.len() - quarter..])),
                self.rss_kb.len()
            );
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Runs `work` on `threads` threads (thread index as argument), timing
/// the whole and the server's and this process's CPU.
fn measured(
    server: &ServerProcess,
    threads: usize,
    work: impl Fn(usize) -> Phase + Send + Sync + 'static,
) -> Phase {
    let work = Arc::new(work);
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (sampling, pid) = (sampling.clone(), server.child.id());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                samples.push(rss_of(pid).0);
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        })
    };
    let (server_cpu, client_cpu) = (server.cpu(), cpu_of("/proc/self/stat"));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let work = work.clone();
            std::thread::spawn(move || work(t))
        })
        .collect();
    let mut phase = Phase::default();
    for h in handles {
        phase.merge(h.join().unwrap());
    }
    phase.wall = start.elapsed();
    phase.server_cpu = server.cpu().saturating_sub(server_cpu);
    phase.client_cpu = cpu_of("/proc/self/stat").saturating_sub(client_cpu);
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    phase.rss_kb = sampler.join().unwrap();
    phase.latencies.sort_unstable();
    phase
}

/// Posts `count` bodies per thread, expecting `want` for each.
fn baseline(
    server: &ServerProcess,
    threads: usize,
    per_thread: usize,
    want: u16,
    shape: &Arc<Shape>,
    tokens: &Arc<Vec<String>>,
    version: u64,
) -> Phase {
    let (url, shape, tokens) = (server.url.clone(), shape.clone(), tokens.clone());
    measured(server, threads, move |t| {
        let http = agent();
        warm_up(&http, &url);
        let mut template = shape.template(t);
        let mut phase = Phase::default();
        let version = if want == 401 { version } else { 0 };
        // As in the load phase, encoded before the clock unless asked:
        // the server refuses these whatever their values.
        let ready = (env_or("FEDMR_LOAD_ENCODE_IN_LOOP", 0) != 1)
            .then(|| body(&mut template, version, t, 0));
        for s in 0..per_thread {
            let client = (t * per_thread + s) % tokens.len();
            let token = if want == 401 {
                "not-a-client-token"
            } else {
                tokens[client].as_str()
            };
            let bytes = match &ready {
                Some(ready) => ready.clone(),
                None => body(&mut template, version, client, s),
            };
            let started = Instant::now();
            match http
                .post(format!("{url}/v1/updates"))
                .bearer_auth(token)
                .body(bytes)
                .send()
            {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let _ = r.bytes();
                    if status == want {
                        phase.latencies.push(started.elapsed());
                    } else {
                        phase.other.push(format!("status {status}"));
                    }
                }
                Err(_) => phase.transport += 1,
            }
        }
        phase
    })
}

fn warm_up(http: &reqwest::blocking::Client, url: &str) {
    let r = http.get(format!("{url}/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.bytes();
}

/// Which client submits next in the open round.
struct RoundState {
    version: u64,
    next: usize,
    rounds: usize,
    done: bool,
}

struct Rounds {
    state: Mutex<RoundState>,
    closed: Condvar,
    clients: usize,
    rounds: usize,
}

impl Rounds {
    /// A client that has not submitted in the open round, or None when
    /// the run is over. Waits while the round's last updates are in flight.
    fn claim(
        &self,
        http: &reqwest::blocking::Client,
        url: &str,
        token: &str,
    ) -> Option<(u64, usize)> {
        let mut state = self.state.lock().unwrap();
        loop {
            if state.done {
                return None;
            }
            if state.next < self.clients {
                state.next += 1;
                return Some((state.version, state.next - 1));
            }
            let (s, timeout) = self
                .closed
                .wait_timeout(state, Duration::from_millis(500))
                .unwrap();
            state = s;
            if timeout.timed_out() {
                // No close seen: ask the server (GET /v1/round).
                drop(state);
                let version = current_round(http, url, token).base_version;
                state = self.state.lock().unwrap();
                self.advance(&mut state, version);
            }
        }
    }

    /// The server is at `version`: open our record of that round.
    fn advance(&self, state: &mut RoundState, version: u64) {
        if version > state.version {
            state.rounds += (version - state.version) as usize;
            state.version = version;
            state.next = 0;
            state.done = state.rounds >= self.rounds;
            self.closed.notify_all();
        }
    }
}

fn current_round(http: &reqwest::blocking::Client, url: &str, token: &str) -> RoundMessage {
    let r = http
        .get(format!("{url}/v1/round"))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    RoundMessage::decode(&r.bytes().unwrap()).unwrap()
}

/// Valid distinct updates until `rounds` rounds of `clients` have closed.
fn load(
    server: &ServerProcess,
    threads: usize,
    clients: usize,
    rounds: usize,
    shape: &Arc<Shape>,
    tokens: &Arc<Vec<String>>,
) -> Phase {
    let http = agent();
    let first = current_round(&http, &server.url, &tokens[0]);
    assert_eq!(first.accepted, 0);
    let shared = Arc::new(Rounds {
        state: Mutex::new(RoundState {
            version: first.base_version,
            next: 0,
            rounds: 0,
            done: false,
        }),
        closed: Condvar::new(),
        clients,
        rounds,
    });
    // The bodies are encoded before the clock starts (a phone encodes on
    // its own CPU; here the clients share the server's two cores), unless
    // `FEDMR_LOAD_ENCODE_IN_LOOP=1`.
    let first_version = first.base_version;
    let encoded: Arc<Vec<Vec<u8>>> = Arc::new(if env_or("FEDMR_LOAD_ENCODE_IN_LOOP", 0) == 1 {
        Vec::new()
    } else {
        encode_all(shape, first_version, rounds, clients)
    });
    let (url, shape, tokens) = (server.url.clone(), shape.clone(), tokens.clone());
    measured(server, threads, move |t| {
        let http = agent();
        warm_up(&http, &url);
        let mut template = shape.template(t);
        let mut phase = Phase::default();
        while let Some((version, client)) = shared.claim(&http, &url, &tokens[t % tokens.len()]) {
            let index = (version - first_version) as usize * clients + client;
            let bytes = match encoded.get(index) {
                Some(ready) => ready.clone(),
                None => body(&mut template, version, client, 0),
            };
            let started = Instant::now();
            let response = http
                .post(format!("{url}/v1/updates"))
                .bearer_auth(&tokens[client])
                .body(bytes)
                .send()
                .expect("POST /v1/updates");
            let status = response.status().as_u16();
            let text = response.text().unwrap_or_default();
            let took = started.elapsed();
            match status {
                202 => {
                    phase.latencies.push(took);
                    if text.contains("\"round_closed\":true") {
                        phase.closes.push(took);
                        let mut state = shared.state.lock().unwrap();
                        shared.advance(&mut state, version + 1);
                    }
                }
                409 if text.contains("\"stale\"") => {
                    // The round moved on: re-read it and go on from there.
                    phase.stale += 1;
                    let now = current_round(&http, &url, &tokens[client]).base_version;
                    let mut state = shared.state.lock().unwrap();
                    shared.advance(&mut state, now);
                }
                409 => phase.already += 1,
                other => panic!("update of client {client}: status {other}: {text}"),
            }
        }
        phase
    })
}

/// Every body of a load run, `[round offset * clients + client]`, encoded
/// on all cores.
fn encode_all(
    shape: &Arc<Shape>,
    first_version: u64,
    rounds: usize,
    clients: usize,
) -> Vec<Vec<u8>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let total = rounds * clients;
    let chunks: Vec<_> = (0..workers)
        .map(|w| {
            let shape = shape.clone();
            std::thread::spawn(move || {
                let mut template = shape.template(w);
                (w..total)
                    .step_by(workers)
                    .map(|i| {
                        let version = first_version + (i / clients) as u64;
                        (i, body(&mut template, version, i % clients, 0))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut bodies = vec![Vec::new(); total];
    for chunk in chunks {
        for (i, bytes) in chunk.join().unwrap() {
            bodies[i] = bytes;
        }
    }
    bodies
}

struct RunResult {
    clients: usize,
    base401: Phase,
    base409: Phase,
    load: Phase,
    idle_kb: u64,
    peak_kb: u64,
}

fn run(clients: usize, threads: usize, total: usize, shape: &Arc<Shape>) -> RunResult {
    let dir = std::env::temp_dir().join(format!("fedmr-load-{}-{clients}", std::process::id()));
    let server = ServerProcess::start(&dir, clients);
    let (started_kb, _) = server.rss_kb();
    let http = agent();
    let issue_started = Instant::now();
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..clients)
            .map(|i| {
                let r = http
                    .post(format!("{}/v1/admin/clients", server.url))
                    .bearer_auth(ADMIN)
                    .body(format!("load-client-{i}"))
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 201);
                r.text().unwrap()
            })
            .collect(),
    );
    let issued = issue_started.elapsed();
    let (idle_kb, _) = server.rss_kb();
    println!();
    println!(
        "{clients} distinct clients per round (min_updates = {clients}), server pid {}: \
         RSS {:.1} MB at start, {:.1} MB after issuing {clients} tokens ({:.2} s)",
        server.child.id(),
        mb(started_kb),
        mb(idle_kb),
        issued.as_secs_f64()
    );

    let per_thread = total.div_ceil(threads);
    let version = current_round(&http, &server.url, &tokens[0]).base_version;
    // `FEDMR_LOAD_BASELINES=0` skips them (to profile the load alone).
    let (base401, base409) = if env_or("FEDMR_LOAD_BASELINES", 1) == 0 {
        (Phase::default(), Phase::default())
    } else {
        let base401 = baseline(&server, threads, per_thread, 401, shape, &tokens, version);
        base401.print("baseline: wrong token -> 401");
        let base409 = baseline(&server, threads, per_thread, 409, shape, &tokens, version);
        base409.print("baseline: stale update -> 409");
        (base401, base409)
    };

    let rounds = total.div_ceil(clients);
    let load = load(&server, threads, clients, rounds, shape, &tokens);
    load.print(&format!("load: new updates -> 202 ({rounds} rounds)"));
    let (rss_kb, peak_kb) = server.rss_kb();

    let metrics = http
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let metric = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    };
    let accepted = metric("fedmr_updates_accepted_total");
    let closed = metric("fedmr_rounds_closed_total");
    assert_eq!(
        accepted as usize,
        load.latencies.len(),
        "server's accepted count"
    );
    assert_eq!(closed as usize, rounds, "rounds closed");
    println!(
        "  server: {accepted} accepted, {closed} rounds closed; RSS {:.1} MB now, peak (VmHWM) {:.1} MB; \
         throughput vs baselines: {:.2}x (401), {:.2}x (409)",
        mb(rss_kb),
        mb(peak_kb),
        load.per_sec() / base401.requests_per_sec(),
        load.per_sec() / base409.per_sec()
    );
    RunResult {
        clients,
        base401,
        base409,
        load,
        idle_kb,
        peak_kb,
    }
}
