//! Parameter sets, and the Global / Private split that keeps private state on
//! the device.
//!
//! Every trainable tensor lives in a struct that implements [`Tensors`], and
//! every such struct is held by the model either as [`Global`] (shared,
//! aggregated by the server) or as [`Private`] (one user's, never uploaded).
//! An upload is built by `ModelUpdate::from_training` (module `update`), which
//! only accepts `Global` values: no code path can put a private tensor in it.

use std::ops::{Deref, DerefMut};

/// A struct of f32 tensors that can be walked in a fixed order.
///
/// The order is the wire order of the flattened dense parameters, so it must
/// not depend on values, only on the configuration.
pub trait Tensors {
    fn visit(&self, f: &mut dyn FnMut(&[f32]));
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut [f32]));
    /// `f(own tensor, other's tensor)` for each pair, in `visit` order.
    /// `other` must have the same configuration (panics otherwise).
    fn visit_pairs_mut(&mut self, other: &Self, f: &mut dyn FnMut(&mut [f32], &[f32]));

    fn num_params(&self) -> usize {
        let mut n = 0;
        self.visit(&mut |t| n += t.len());
        n
    }

    fn flatten(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.num_params());
        self.visit(&mut |t| out.extend_from_slice(t));
        out
    }

    fn fill(&mut self, value: f32) {
        self.visit_mut(&mut |t| t.fill(value));
    }

    /// A gradient accumulator of the same shapes.
    fn zeros_like(&self) -> Self
    where
        Self: Clone,
    {
        let mut z = self.clone();
        z.fill(0.0);
        z
    }

    /// self += alpha * flat, where `flat` is in `flatten` order.
    /// Panics on a length mismatch: callers validate lengths at the boundary.
    fn add_flat(&mut self, flat: &[f32], alpha: f32) {
        assert_eq!(flat.len(), self.num_params(), "flat parameter length");
        let mut offset = 0;
        self.visit_mut(&mut |t| {
            let len = t.len();
            for (p, d) in t.iter_mut().zip(&flat[offset..offset + len]) {
                *p += alpha * d;
            }
            offset += len;
        });
    }

    /// Overwrites every parameter from `flat` (in `flatten` order); a length
    /// mismatch is an error and leaves `self` unchanged.
    fn load_flat(&mut self, flat: &[f32]) -> Result<(), String> {
        let expected = self.num_params();
        if flat.len() != expected {
            return Err(format!("{} values for {expected} parameters", flat.len()));
        }
        let mut offset = 0;
        self.visit_mut(&mut |t| {
            t.copy_from_slice(&flat[offset..offset + t.len()]);
            offset += t.len();
        });
        Ok(())
    }

    /// self += alpha * other (same configuration). Pairwise, without
    /// flattening `other` first (that copy was 2% of a local round).
    fn add_scaled(&mut self, other: &Self, alpha: f32) {
        self.visit_pairs_mut(other, &mut |p, o| {
            assert_eq!(p.len(), o.len(), "parameter shapes differ");
            p.iter_mut().zip(o).for_each(|(p, o)| *p += alpha * o);
        });
    }

    fn all_finite(&self) -> bool {
        let mut ok = true;
        self.visit(&mut |t| ok &= t.iter().all(|v| v.is_finite()));
        ok
    }
}

impl<T: Tensors> Tensors for Option<T> {
    fn visit(&self, f: &mut dyn FnMut(&[f32])) {
        if let Some(t) = self {
            t.visit(f);
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut [f32])) {
        if let Some(t) = self {
            t.visit_mut(f);
        }
    }
    fn visit_pairs_mut(&mut self, other: &Self, f: &mut dyn FnMut(&mut [f32], &[f32])) {
        match (self, other) {
            (Some(t), Some(o)) => t.visit_pairs_mut(o, f),
            (None, None) => {}
            _ => panic!("parameter sets of different configurations"),
        }
    }
}

impl<T: Tensors> Tensors for Vec<T> {
    fn visit(&self, f: &mut dyn FnMut(&[f32])) {
        self.iter().for_each(|t| t.visit(f));
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut [f32])) {
        self.iter_mut().for_each(|t| t.visit_mut(f));
    }
    fn visit_pairs_mut(&mut self, other: &Self, f: &mut dyn FnMut(&mut [f32], &[f32])) {
        assert_eq!(
            self.len(),
            other.len(),
            "parameter sets of different configurations"
        );
        self.iter_mut()
            .zip(other)
            .for_each(|(t, o)| t.visit_pairs_mut(o, f));
    }
}

impl<D: ndarray::Dimension> Tensors for ndarray::Array<f32, D> {
    fn visit(&self, f: &mut dyn FnMut(&[f32])) {
        f(self.as_slice().expect("parameters are in standard layout"));
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut [f32])) {
        f(self
            .as_slice_mut()
            .expect("parameters are in standard layout"));
    }
    fn visit_pairs_mut(&mut self, other: &Self, f: &mut dyn FnMut(&mut [f32], &[f32])) {
        f(
            self.as_slice_mut()
                .expect("parameters are in standard layout"),
            other.as_slice().expect("parameters are in standard layout"),
        );
    }
}

/// `Tensors` for a struct by listing its tensor fields, in wire order.
macro_rules! impl_tensors {
    ($ty:ty { $($field:ident),* $(,)? }) => {
        impl $crate::model::params::Tensors for $ty {
            fn visit(&self, f: &mut dyn FnMut(&[f32])) {
                $( $crate::model::params::Tensors::visit(&self.$field, f); )*
            }
            fn visit_mut(&mut self, f: &mut dyn FnMut(&mut [f32])) {
                $( $crate::model::params::Tensors::visit_mut(&mut self.$field, f); )*
            }
            fn visit_pairs_mut(
                &mut self,
                other: &Self,
                f: &mut dyn FnMut(&mut [f32], &[f32]),
            ) {
                $( $crate::model::params::Tensors::visit_pairs_mut(&mut self.$field, &other.$field, f); )*
            }
        }
    };
}
pub(crate) use impl_tensors;

/// Parameters shared by all users: downloaded, trained locally, and sent back
/// as a change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Global<T>(pub T);

/// Parameters of one user: they persist on the device and are never sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Private<T>(pub T);

macro_rules! deref_wrapper {
    ($w:ident) => {
        impl<T> Deref for $w<T> {
            type Target = T;
            fn deref(&self) -> &T {
                &self.0
            }
        }
        impl<T> DerefMut for $w<T> {
            fn deref_mut(&mut self) -> &mut T {
                &mut self.0
            }
        }
    };
}
deref_wrapper!(Global);
deref_wrapper!(Private);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::random_matrix;
    use crate::model::{Catalog, FusionMode, GlobalModel, ModelConfig};
    use crate::rng::Rng;

    #[test]
    fn pairwise_add_scaled_equals_the_flat_one() {
        let mut rng = Rng::new(12);
        let catalog = Catalog {
            n_items: 4,
            features: vec![random_matrix(4, 6, &mut rng)],
        };
        let config = ModelConfig {
            fusion: FusionMode::full(),
            dim: 4,
            ..ModelConfig::default()
        };
        let a = GlobalModel::new(&config, &catalog, 1).unwrap().dense;
        let b = GlobalModel::new(&config, &catalog, 2).unwrap().dense;
        let mut pairwise = a.clone();
        pairwise.add_scaled(&b, -0.7);
        let mut flat = a.clone();
        flat.add_flat(&b.flatten(), -0.7);
        assert_eq!(pairwise.flatten(), flat.flatten());
        assert_ne!(pairwise.flatten(), a.flatten());
    }
}
