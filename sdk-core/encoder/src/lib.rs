//! On-device encoders: ONNX models run with tract (pure Rust, inference
//! only), so a client can turn item titles and pictures into feature vectors
//! without a server.
//!
//! - [`TextEncoder`]: a sentence-transformer (BERT-like) model with its
//!   WordPiece `tokenizer.json`; mean pooling over the attention mask.
//! - [`ImageEncoder`]: any single-input image model a user brings.
//!
//! Both return one L2-normalised row per input. Every failure (missing or
//! unreadable files, a model of the wrong kind, undecodable bytes) is an
//! [`Error::Encoder`](fedmr_core::Error::Encoder), never a panic.

mod image;
mod onnx;
mod text;

pub use image::{ImageEncoder, ImageEncoderOptions};
pub use text::{TextEncoder, TextEncoderOptions};

/// Scales `row` to unit length; an all-zero row stays zero.
fn l2_normalize(row: &mut [f32]) {
    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        row.iter_mut().for_each(|v| *v /= norm);
    }
}
