//! Layers with a forward pass and a hand-written backward pass on ndarray.
//!
//! Convention: a batch is a 2-D array with one row per sample. `forward`
//! returns the output and whatever the backward pass needs; `backward` takes
//! the gradient of the loss with respect to the output, *adds* parameter
//! gradients into a gradient struct of the same type as the layer, and
//! returns the gradient with respect to the input.

pub mod activations;
pub mod embedding;
pub mod layer_norm;
pub mod linear;
pub mod loss;
pub mod matmul;
pub(crate) mod simd;

#[cfg(test)]
pub(crate) mod gradcheck;

pub use layer_norm::LayerNorm;
pub use linear::Linear;
