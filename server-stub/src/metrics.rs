//! Counters for `GET /metrics`, in the Prometheus text format.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    rounds_closed: AtomicU64,
    current_round: AtomicU64,
    round_updates: AtomicU64,
    updates_accepted: AtomicU64,
    updates_duplicate: AtomicU64,
    bytes_in: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn accepted(&self, bytes: usize, duplicate: bool) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        if duplicate {
            self.updates_duplicate.fetch_add(1, Ordering::Relaxed);
        } else {
            self.updates_accepted.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn rejected(&self, reason: &'static str, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        *self
            .rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    pub fn round_closed(&self, new_round: u64) {
        self.rounds_closed.fetch_add(1, Ordering::Relaxed);
        self.set_round(new_round, 0);
    }

    pub fn set_round(&self, round: u64, updates: usize) {
        self.current_round.store(round, Ordering::Relaxed);
        self.round_updates.store(updates as u64, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut line = |name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        line(
            "fedmr_rounds_closed_total",
            "counter",
            "Rounds aggregated since start.",
            get(&self.rounds_closed),
        );
        line(
            "fedmr_round",
            "gauge",
            "The open round (= base model version).",
            get(&self.current_round),
        );
        line(
            "fedmr_round_updates",
            "gauge",
            "Updates accepted in the open round.",
            get(&self.round_updates),
        );
        line(
            "fedmr_updates_accepted_total",
            "counter",
            "Updates accepted.",
            get(&self.updates_accepted),
        );
        line(
            "fedmr_updates_duplicate_total",
            "counter",
            "Retries of an accepted update (counted once).",
            get(&self.updates_duplicate),
        );
        line(
            "fedmr_bytes_in_total",
            "counter",
            "Request body bytes of update submissions.",
            get(&self.bytes_in),
        );
        out.push_str(
            "# HELP fedmr_updates_rejected_total Updates refused, by reason.\n\
             # TYPE fedmr_updates_rejected_total counter\n",
        );
        for (reason, n) in self
            .rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            out.push_str(&format!(
                "fedmr_updates_rejected_total{{reason=\"{reason}\"}} {n}\n"
            ));
        }
        out
    }
}
