//! The Mixing Feature Fusion Module (FEDMR.md, "Model"): per-input
//! projections with layer norm, and the Sum, MLP and Gate fusion experts.
//! All of it is global: the per-user mixing lives in `router.rs`.
//!
//! Inputs are the item-ID embedding (optional, for the "no ID" ablation) and
//! any number of content modalities. Input k is projected to z_k (B x d);
//! each enabled expert maps [z_1..z_K] to a B x d item view.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::layers::activations::{relu, relu_backward, sigmoid};
use super::layers::layer_norm::LayerNormCache;
use super::layers::simd::dispatch_simd;
use super::layers::{LayerNorm, Linear};
use super::params::{Tensors, impl_tensors};
use super::residual::{Residual, ResidualCache};
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expert {
    Sum,
    Mlp,
    Gate,
}

impl Expert {
    pub const ALL: [Expert; 3] = [Expert::Sum, Expert::Mlp, Expert::Gate];
}

#[derive(Clone, Debug, PartialEq)]
pub struct MlpExpert {
    pub hidden: Linear,
    pub out: Linear,
    pub norm: LayerNorm,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GateExpert {
    /// One gate per input: s(z_k Wg_k + bg_k).
    pub gates: Vec<Linear>,
    pub out: Linear,
    pub norm: LayerNorm,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Mffm {
    pub dim: usize,
    pub use_id: bool,
    pub experts: Vec<Expert>,
    /// W_m: d_m -> d, one per modality.
    pub projections: Vec<Linear>,
    /// One per input: the ID embedding first (when used), then each modality.
    pub norms: Vec<LayerNorm>,
    pub mlp: Option<MlpExpert>,
    pub gate: Option<GateExpert>,
    /// The residual form (`residual.rs`): the ID row plus a correction
    /// that starts at zero. `None`: the paper's form.
    pub residual: Option<Residual>,
}

/// Forward values the backward pass needs.
pub struct MffmCache {
    z: Vec<Array2<f32>>,
    norm_caches: Vec<LayerNormCache>,
    mlp: Option<MlpCache>,
    gate: Option<GateCache>,
    residual: Option<ResidualCache>,
}

struct MlpCache {
    pre: Array2<f32>,
    hidden: Array2<f32>,
    norm: LayerNormCache,
}

struct GateCache {
    g: Vec<Array2<f32>>,
    /// g_k * z_k, the output layer's input blocks.
    u: Vec<Array2<f32>>,
    norm: LayerNormCache,
}

impl Mffm {
    /// Where each expert's own parameters sit in this module's flattened
    /// parameters (`Tensors::flatten` order; the Sum expert has none). What
    /// anyone holding the published model knows, e.g. a server reading an
    /// update's dense change.
    pub fn expert_ranges(&self) -> Vec<(Expert, std::ops::Range<usize>)> {
        let mut start = self.projections.num_params() + self.norms.num_params();
        let mut ranges = Vec::new();
        for (expert, params) in [
            (Expert::Mlp, self.mlp.num_params()),
            (Expert::Gate, self.gate.num_params()),
        ] {
            if params > 0 {
                ranges.push((expert, start..start + params));
            }
            start += params;
        }
        ranges
    }

    /// `experts` are kept in the canonical order Sum, MLP, Gate whatever the
    /// order given, so that two configurations naming the same set agree.
    pub fn new(
        dim: usize,
        use_id: bool,
        modality_dims: &[usize],
        experts: &[Expert],
        rng: &mut Rng,
    ) -> Self {
        let experts: Vec<Expert> = Expert::ALL
            .into_iter()
            .filter(|e| experts.contains(e))
            .collect();
        let inputs = usize::from(use_id) + modality_dims.len();
        let projections = modality_dims
            .iter()
            .map(|&dm| Linear::new(dm, dim, rng))
            .collect();
        let norms = (0..inputs).map(|_| LayerNorm::new(dim)).collect();
        let mlp = experts.contains(&Expert::Mlp).then(|| MlpExpert {
            hidden: Linear::new(inputs * dim, 2 * dim, rng),
            out: Linear::new(2 * dim, dim, rng),
            norm: LayerNorm::new(dim),
        });
        let gate = experts.contains(&Expert::Gate).then(|| GateExpert {
            gates: (0..inputs).map(|_| Linear::new(dim, dim, rng)).collect(),
            out: Linear::new(inputs * dim, dim, rng),
            norm: LayerNorm::new(dim),
        });
        Mffm {
            dim,
            use_id,
            experts,
            projections,
            norms,
            mlp,
            gate,
            residual: None,
        }
    }

    /// The residual form of this module (requires the ID input).
    pub fn with_residual(
        mut self,
        evidence: bool,
        fusion_lr: Option<f32>,
        id_dropout: f32,
    ) -> Self {
        assert!(self.use_id, "the residual form adds to the ID row");
        self.residual = Some(Residual::new(self.dim, evidence, fusion_lr, id_dropout));
        self
    }

    /// The chance of hiding an item's ID row in a training epoch (0 but in
    /// the residual form with ID dropout).
    pub fn id_dropout(&self) -> f32 {
        self.residual.as_ref().map_or(0.0, |r| r.id_dropout)
    }

    /// The clients' step size for this module's parameters, when it has its own.
    pub fn own_lr(&self) -> Option<f32> {
        self.residual.as_ref().and_then(|r| r.fusion_lr)
    }

    pub fn inputs(&self) -> usize {
        self.norms.len()
    }

    pub fn modality_dims(&self) -> Vec<usize> {
        self.projections.iter().map(Linear::inputs).collect()
    }

    /// The normalized inputs z_k (ID embedding first when used, then each
    /// projected modality): what every expert fuses. The Sum expert's view is
    /// their sum, which is what makes per-modality shares computable.
    pub fn normalized_inputs(
        &self,
        id_rows: Option<&ArrayView2<f32>>,
        features: &[ArrayView2<f32>],
    ) -> Vec<Array2<f32>> {
        self.normalize_inputs(id_rows, features).0
    }

    fn normalize_inputs(
        &self,
        id_rows: Option<&ArrayView2<f32>>,
        features: &[ArrayView2<f32>],
    ) -> (Vec<Array2<f32>>, Vec<LayerNormCache>) {
        let mut pre: Vec<Array2<f32>> = Vec::with_capacity(self.inputs());
        if self.use_id {
            pre.push(id_rows.expect("ID rows required when use_id").to_owned());
        }
        for (proj, x) in self.projections.iter().zip(features) {
            pre.push(proj.forward(x));
        }
        self.norms
            .iter()
            .zip(&pre)
            .map(|(n, p)| n.forward(&p.view()))
            .unzip()
    }

    /// Expert views of a batch of items, in `self.experts` order.
    /// `id_rows` (B x d) must be given iff `use_id`; `features[m]` is B x d_m.
    pub fn forward(
        &self,
        id_rows: Option<&ArrayView2<f32>>,
        features: &[ArrayView2<f32>],
    ) -> (Vec<Array2<f32>>, MffmCache) {
        let (z, norm_caches) = self.normalize_inputs(id_rows, features);

        let mut outputs = Vec::with_capacity(self.experts.len());
        let mut mlp_cache = None;
        let mut gate_cache = None;
        for expert in &self.experts {
            match expert {
                Expert::Sum => {
                    let mut sum = z[0].clone();
                    z[1..].iter().for_each(|zk| sum += zk);
                    outputs.push(sum);
                }
                Expert::Mlp => {
                    let mlp = self.mlp.as_ref().expect("MLP expert parameters");
                    let pre = mlp.hidden.forward_blocks(&views(&z));
                    let hidden = relu(&pre.view());
                    let (y, norm) = mlp.norm.forward(&mlp.out.forward(&hidden.view()).view());
                    outputs.push(y);
                    mlp_cache = Some(MlpCache { pre, hidden, norm });
                }
                Expert::Gate => {
                    let gate = self.gate.as_ref().expect("gate expert parameters");
                    let g: Vec<Array2<f32>> = gate
                        .gates
                        .iter()
                        .zip(&z)
                        .map(|(l, zk)| sigmoid(l.forward(&zk.view())))
                        .collect();
                    let u: Vec<Array2<f32>> = g.iter().zip(&z).map(|(gk, zk)| gk * zk).collect();
                    let (y, norm) = gate
                        .norm
                        .forward(&gate.out.forward_blocks(&views(&u)).view());
                    outputs.push(y);
                    gate_cache = Some(GateCache { g, u, norm });
                }
            }
        }
        let (outputs, residual_cache) = match &self.residual {
            Some(r) => {
                let (v, c) = r.forward(id_rows.expect("residual needs ID rows"), outputs);
                (v, Some(c))
            }
            None => (outputs, None),
        };
        (
            outputs,
            MffmCache {
                z,
                norm_caches,
                mlp: mlp_cache,
                gate: gate_cache,
                residual: residual_cache,
            },
        )
    }

    /// Adds parameter gradients into `grad` and returns dL/d(id_rows) when
    /// the ID embedding is an input. `d_outputs` is in `self.experts` order.
    pub fn backward(
        &self,
        cache: &MffmCache,
        features: &[ArrayView2<f32>],
        d_outputs: &[Array2<f32>],
        grad: &mut Mffm,
    ) -> Option<Array2<f32>> {
        let (fused_grads, d_id_around) = match (&self.residual, &cache.residual) {
            (Some(r), Some(c)) => {
                let (d_fused, d_id) =
                    r.backward(c, d_outputs, grad.residual.as_mut().expect("residual grad"));
                (Some(d_fused), Some(d_id))
            }
            _ => (None, None),
        };
        let d_outputs = fused_grads.as_deref().unwrap_or(d_outputs);
        let mut dz: Vec<Array2<f32>> = cache.z.iter().map(|z| Array2::zeros(z.raw_dim())).collect();
        for (expert, d_out) in self.experts.iter().zip(d_outputs) {
            match expert {
                Expert::Sum => dz.iter_mut().for_each(|d| *d += d_out),
                Expert::Mlp => {
                    let (mlp, c) = (
                        self.mlp.as_ref().expect("MLP"),
                        cache.mlp.as_ref().expect("MLP cache"),
                    );
                    let g = grad.mlp.as_mut().expect("MLP grad");
                    let d_y = mlp.norm.backward(&c.norm, &d_out.view(), &mut g.norm);
                    let d_hidden = mlp.out.backward(&c.hidden.view(), &d_y.view(), &mut g.out);
                    let d_pre = relu_backward(&c.pre.view(), &d_hidden.view());
                    mlp.hidden.backward_blocks(
                        &views(&cache.z),
                        &d_pre.view(),
                        &mut g.hidden,
                        &mut dz,
                    );
                }
                Expert::Gate => {
                    let (gate, c) = (
                        self.gate.as_ref().expect("gate"),
                        cache.gate.as_ref().expect("gate cache"),
                    );
                    let g = grad.gate.as_mut().expect("gate grad");
                    let d_y = gate.norm.backward(&c.norm, &d_out.view(), &mut g.norm);
                    let mut d_u: Vec<Array2<f32>> =
                        c.u.iter().map(|u| Array2::zeros(u.raw_dim())).collect();
                    gate.out
                        .backward_blocks(&views(&c.u), &d_y.view(), &mut g.out, &mut d_u);
                    for (k, dz_k) in dz.iter_mut().enumerate() {
                        let (gk, zk) = (&c.g[k], &cache.z[k]);
                        let mut d_a = Array2::zeros(zk.raw_dim());
                        gated_product_backward(
                            slice(&d_u[k]),
                            slice(zk),
                            slice(gk),
                            dz_k.as_slice_mut().expect("standard layout"),
                            d_a.as_slice_mut().expect("standard layout"),
                        );
                        gate.gates[k].backward_blocks(
                            &[zk.view()],
                            &d_a.view(),
                            &mut g.gates[k],
                            std::slice::from_mut(dz_k),
                        );
                    }
                }
            }
        }
        let mut d_id = None;
        for (k, d) in dz.iter().enumerate() {
            let d_pre =
                self.norms[k].backward(&cache.norm_caches[k], &d.view(), &mut grad.norms[k]);
            let modality = if self.use_id {
                k.checked_sub(1)
            } else {
                Some(k)
            };
            match modality {
                None => {
                    d_id = Some(match &d_id_around {
                        Some(around) => d_pre + around,
                        None => d_pre,
                    })
                }
                Some(m) => self.projections[m].backward_params(
                    &features[m],
                    &d_pre.view(),
                    &mut grad.projections[m],
                ),
            }
        }
        d_id
    }
}

dispatch_simd! {
    /// The gate's element-wise backward for u = s * z, one pass over the
    /// batch: dz += du * s (through z directly) and the gate's
    /// pre-activation gradient da = du * z * s (1 - s).
    fn gated_product_backward(du: &[f32], z: &[f32], s: &[f32], dz: &mut [f32], da: &mut [f32]) {
        let inputs = du.iter().zip(z).zip(s);
        for ((dz, da), ((&du, &z), &s)) in dz.iter_mut().zip(da.iter_mut()).zip(inputs) {
            *dz += du * s;
            *da = du * z * s * (1.0 - s);
        }
    }
}

fn slice(a: &Array2<f32>) -> &[f32] {
    a.as_slice().expect("standard layout")
}

fn views(parts: &[Array2<f32>]) -> Vec<ArrayView2<'_, f32>> {
    parts.iter().map(|p| p.view()).collect()
}

impl_tensors!(MlpExpert { hidden, out, norm });

impl_tensors!(GateExpert { gates, out, norm });

// The residual's scale comes last, so the experts' ranges stay where they were.
impl_tensors!(Mffm {
    projections,
    norms,
    mlp,
    gate,
    residual
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::{
        check_input_grad, check_param_grads_of_loss, random_matrix,
    };

    /// L = sum_j sum(F_j * R_j) for fixed random R_j.
    fn projected_loss(m: &Mffm, id: &Array2<f32>, feats: &[Array2<f32>], r: &[Array2<f32>]) -> f64 {
        let views: Vec<_> = feats.iter().map(|f| f.view()).collect();
        let (outs, _) = m.forward(m.use_id.then(|| id.view()).as_ref(), &views);
        outs.iter()
            .zip(r)
            .map(|(o, r)| {
                o.iter()
                    .zip(r)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum::<f64>()
            })
            .sum()
    }

    fn check_config(use_id: bool, experts: &[Expert], seed: u64) {
        check_module(use_id, experts, None, seed);
    }

    /// `residual`: Some(evidence) for the residual form.
    fn check_module(use_id: bool, experts: &[Expert], residual: Option<bool>, seed: u64) {
        let mut rng = Rng::new(seed);
        let dims = [5, 3];
        let mut m = Mffm::new(4, use_id, &dims, experts, &mut rng);
        if let Some(evidence) = residual {
            m = m.with_residual(evidence, None, 0.0);
            // Off its zero start, or the experts' gradients would all be zero.
            let r = m.residual.as_mut().unwrap();
            r.scale.mapv_inplace(|_| 0.5 + 0.5 * rng.normal() as f32);
        }
        // Move layer norms off their identity start so their gradients are exercised.
        m.norms
            .iter_mut()
            .for_each(|n| n.gamma.mapv_inplace(|_| 1.0 + 0.3 * rng.normal() as f32));
        let id = random_matrix(3, 4, &mut rng);
        let feats: Vec<_> = dims
            .iter()
            .map(|&d| random_matrix(3, d, &mut rng))
            .collect();
        let r: Vec<_> = m
            .experts
            .iter()
            .map(|_| random_matrix(3, 4, &mut rng))
            .collect();
        let views: Vec<_> = feats.iter().map(|f| f.view()).collect();

        check_param_grads_of_loss(
            &m,
            |p| projected_loss(p, &id, &feats, &r),
            |p, g| {
                let (_, cache) = p.forward(use_id.then(|| id.view()).as_ref(), &views);
                p.backward(&cache, &views, &r, g);
            },
        );
        if use_id {
            check_input_grad(
                &id,
                |x| {
                    let (outs, _) = m.forward(Some(&x.view()), &views);
                    // Fold the expert outputs into one matrix weighted by R so the helper's own projection adds up.
                    outs.iter()
                        .zip(&r)
                        .map(|(o, r)| o * r)
                        .reduce(|a, b| a + b)
                        .unwrap()
                },
                |x, dy| {
                    let (_, cache) = m.forward(Some(&x.view()), &views);
                    let d: Vec<_> = r.iter().map(|r| r * dy).collect();
                    m.backward(&cache, &views, &d, &mut m.zeros_like()).unwrap()
                },
                &mut rng,
            );
        }
    }

    #[test]
    fn gradients_all_experts_with_id() {
        check_config(true, &Expert::ALL, 11);
    }

    #[test]
    fn gradients_each_single_expert() {
        for (i, e) in Expert::ALL.iter().enumerate() {
            check_config(true, &[*e], 20 + i as u64);
        }
    }

    #[test]
    fn gradients_of_the_residual_form() {
        check_module(true, &Expert::ALL, Some(false), 13);
        check_module(true, &[Expert::Gate], Some(false), 14);
    }

    #[test]
    fn gradients_of_the_residual_form_scaled_by_evidence() {
        check_module(true, &Expert::ALL, Some(true), 15);
        check_module(true, &[Expert::Sum], Some(true), 16);
    }

    #[test]
    fn the_residual_form_starts_as_the_id_only_view() {
        let mut rng = Rng::new(4);
        for evidence in [false, true] {
            let m = Mffm::new(4, true, &[3, 5], &Expert::ALL, &mut rng)
                .with_residual(evidence, None, 0.0);
            let id = random_matrix(6, 4, &mut rng);
            let feats = [random_matrix(6, 3, &mut rng), random_matrix(6, 5, &mut rng)];
            let views: Vec<_> = feats.iter().map(|f| f.view()).collect();
            let (outs, _) = m.forward(Some(&id.view()), &views);
            assert_eq!(outs.len(), 3);
            outs.iter().for_each(|o| assert_eq!(o, &id));
        }
    }

    #[test]
    fn with_evidence_a_zero_row_gets_no_correction() {
        let mut rng = Rng::new(5);
        let mut m = Mffm::new(4, true, &[3], &Expert::ALL, &mut rng).with_residual(true, None, 0.0);
        m.residual.as_mut().unwrap().scale.fill(1.0);
        let mut id = random_matrix(2, 4, &mut rng);
        id.row_mut(0).fill(0.0);
        let feats = random_matrix(2, 3, &mut rng);
        let (outs, _) = m.forward(Some(&id.view()), &[feats.view()]);
        for o in &outs {
            assert!(o.row(0).iter().all(|&v| v == 0.0));
            assert_ne!(o.row(1), id.row(1));
        }
    }

    #[test]
    fn gradients_without_id_input() {
        check_config(false, &Expert::ALL, 12);
    }

    #[test]
    fn experts_are_kept_in_canonical_order() {
        let m = Mffm::new(
            4,
            true,
            &[3],
            &[Expert::Gate, Expert::Sum],
            &mut Rng::new(1),
        );
        assert_eq!(m.experts, vec![Expert::Sum, Expert::Gate]);
        assert!(m.mlp.is_none() && m.gate.is_some());
    }

    #[test]
    fn gate_multiplies_the_feature_not_just_the_gate() {
        // With a zero input the gated view must not depend on the gate values
        // (the authors' code concatenated the gates themselves instead).
        let mut rng = Rng::new(2);
        let mut m = Mffm::new(4, false, &[3], &[Expert::Gate], &mut rng);
        m.projections[0].w.fill(0.0);
        m.projections[0].b.fill(0.0);
        m.norms[0].gamma.fill(0.0); // z = beta = 0
        let feats = random_matrix(2, 3, &mut rng);
        let (a, _) = m.forward(None, &[feats.view()]);
        m.gate.as_mut().unwrap().gates[0].b.fill(5.0);
        let (b, _) = m.forward(None, &[feats.view()]);
        assert_eq!(a[0], b[0]);
    }

    #[test]
    fn expert_ranges_cover_each_experts_own_parameters() {
        let mut rng = Rng::new(3);
        let m = Mffm::new(4, true, &[3, 5], &Expert::ALL, &mut rng);
        let flat = m.flatten();
        let ranges = m.expert_ranges();
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].0, Expert::Mlp);
        assert_eq!(&flat[ranges[0].1.clone()], m.mlp.flatten().as_slice());
        assert_eq!(ranges[1].0, Expert::Gate);
        assert_eq!(&flat[ranges[1].1.clone()], m.gate.flatten().as_slice());
        assert_eq!(ranges[1].1.end, flat.len());
        let sum_only = Mffm::new(4, true, &[3], &[Expert::Sum], &mut rng);
        assert!(sum_only.expert_ranges().is_empty());
    }
}
