//! What the server received: every update body, by client, in arrival
//! order, kept as an honest-but-curious server would keep it.
//!
//! Under secure aggregation what a client sends is a masked vector; the
//! ledger keeps the server's best reading of it as an update (the masked
//! codes decoded with the round's layout and fixed-point code: every row,
//! the weight slot as the sample count), so the same attacks run on
//! exactly what the server holds.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use fedmr_core::secagg::{Layout, MaskedInput, SecureAggregation, dequantize};
use fedmr_core::wire::{SecAggMessage, UpdateMessage};
use fedmr_server::UploadObserver;

/// One upload as the server saw it (undecodable bodies are not kept).
#[derive(Clone, Debug)]
pub struct Observed {
    pub client: String,
    pub message: UpdateMessage,
    /// The framed body's size.
    pub bytes: usize,
}

#[derive(Default)]
pub struct Ledger {
    uploads: Mutex<Vec<Observed>>,
    closed: AtomicBool,
    /// How to read masked inputs, when the round is secure.
    masked: Option<(Layout, SecureAggregation)>,
}

impl Ledger {
    /// A ledger for secure rounds of a model with `layout`.
    pub fn reading_masked(layout: Layout, config: SecureAggregation) -> Self {
        Ledger {
            masked: Some((layout, config)),
            ..Ledger::default()
        }
    }

    pub fn uploads(&self) -> Vec<Observed> {
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Keeps nothing more from now on (the observed rounds are over).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// A masked input read as an update: what the server can make of it.
    fn read_masked(&self, bytes: &[u8]) -> Option<UpdateMessage> {
        let (layout, config) = self.masked.as_ref()?;
        let input = MaskedInput::decode(bytes).ok()?;
        let sums = dequantize(&input.words()?, 1, layout, &config.fixed_point()).ok()?;
        let samples = (sums.weight.abs() * config.sample_cap as f64)
            .round()
            .max(1.0) as u64;
        Some(UpdateMessage {
            round: input.round,
            base_version: input.round,
            idempotency_key: format!("masked-{}", input.from),
            samples,
            item_ids: (0..layout.items as u32).collect(),
            item_rows: sums.rows.iter().copied().collect(),
            dense: sums.dense.iter().map(|&v| v as f32).collect(),
        })
    }
}

impl UploadObserver for Ledger {
    fn received(&self, client: &str, bytes: &[u8]) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let message = UpdateMessage::decode(bytes)
            .ok()
            .or_else(|| self.read_masked(bytes));
        if let Some(message) = message {
            self.uploads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Observed {
                    client: client.to_string(),
                    message,
                    bytes: bytes.len(),
                });
        }
    }
}
