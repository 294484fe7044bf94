//! What the server received: every update body, by client, in arrival
//! order, kept as an honest-but-curious server would keep it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use fedmr_core::wire::UpdateMessage;
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
}

impl Ledger {
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
}

impl UploadObserver for Ledger {
    fn received(&self, client: &str, bytes: &[u8]) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(message) = UpdateMessage::decode(bytes) {
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
