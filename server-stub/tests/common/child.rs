//! A server in a child process, for tests that SIGKILL it: the test binary
//! re-runs itself with `--exact <child test>`; that test serves (see
//! [`serve_as_child`]) and prints its port after a marker; the parent reads
//! it and kills the child when done (or when the `ChildServer` is dropped).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use fedmr_server::{RunningServer, ServerConfig};

/// The env variable carrying the data folder to a child; set only in children.
pub const CHILD_DIR: &str = "FEDMR_TEST_CHILD_DIR";
/// The env variable carrying the child's `min_updates`.
pub const CHILD_MIN_UPDATES: &str = "FEDMR_TEST_CHILD_MIN_UPDATES";
const PORT_MARKER: &str = "FEDMR_TEST_CHILD_PORT=";

/// In a child test: serves the data folder of `CHILD_DIR` with the
/// `min_updates` of `CHILD_MIN_UPDATES` (else `default_min_updates`) until
/// killed, or until the parent goes away. Returns at once in the parent.
pub fn serve_as_child(default_min_updates: u32) {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    // If the parent goes away (its end of our stdin closes), so do we.
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        std::process::exit(3);
    });
    let mut config = ServerConfig::new(std::path::PathBuf::from(dir), super::ADMIN);
    config.min_updates = std::env::var(CHILD_MIN_UPDATES)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_min_updates);
    let server =
        RunningServer::start(super::open_core(config), "127.0.0.1:0".parse().unwrap()).unwrap();
    // libtest may already have written "test <name> ... " on this line.
    println!("{PORT_MARKER}{}", server.addr.port());
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// True in a child process (the parent's tests return at once there).
pub fn in_child() -> bool {
    std::env::var_os(CHILD_DIR).is_some()
}

/// The server child process; SIGKILLed when dropped.
pub struct ChildServer {
    child: Child,
    pub url: String,
    // Held open: closing stdin tells the child to exit; stdout is kept so
    // that a late write by the child does not fail.
    _stdin: ChildStdin,
    _stdout: BufReader<ChildStdout>,
}

impl ChildServer {
    /// Runs test `child_test` of this binary as the server of `dir`.
    pub fn start(child_test: &str, dir: &Path, min_updates: u32) -> ChildServer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", child_test, "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir)
            .env(CHILD_MIN_UPDATES, min_updates.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the server child");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        let port = loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("server child exited before printing its port; its output:\n{seen}");
            }
            if let Some(at) = line.find(PORT_MARKER) {
                let digits: String = line[at + PORT_MARKER.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                break digits.parse::<u16>().expect("port number");
            }
            seen.push_str(&line);
        };
        ChildServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _stdin: stdin,
            _stdout: stdout,
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
