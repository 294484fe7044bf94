//! A tap on what the server receives, for privacy evaluations: an
//! honest-but-curious server keeps every byte a client sends it. A
//! production server sets none; `fedmr-sim privacy` sets one to run the
//! attacks on exactly what a server would have.

/// Told about every update body a client sends, before it is checked.
pub trait UploadObserver: Send + Sync {
    fn received(&self, client: &str, bytes: &[u8]);
}
