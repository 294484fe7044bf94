//! The residual form of MFFM (our departure from the paper, README
//! "Fusion that earns its place"): each expert's view becomes
//!
//!   V_j(i) = e_i + rho_i * (alpha ⊙ F_j(i))
//!
//! where e_i is the raw item-ID row (the ID-only backbone's view, with no
//! layer norm), F_j the expert's fused view, alpha a global d-vector that
//! starts at zero, and rho_i = 1, or with `evidence` the norm of e_i. At the
//! start the model *is* the ID-only model, so fusion can only add what the
//! data supports. `evidence` was the idea that a row nobody trained keeps
//! its ID-only place if its correction grows with how far the row has
//! moved; on KU such rows are not smaller than others (README, "Where ID
//! only puts the items nobody trained on") and it did not help: it stays a
//! measured variant, not the default.

use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};

use super::params::impl_tensors;

#[derive(Clone, Debug, PartialEq)]
pub struct Residual {
    /// alpha: how much of the fused correction each dimension takes.
    pub scale: Array1<f32>,
    /// Scale item i's correction by |e_i| (not a parameter).
    pub evidence: bool,
    /// The clients' step size for MFFM's parameters (None: the round's
    /// `lr`). The correction must move slower than the user heads it
    /// corrects for: at the heads' step (1 on KU) it diverges.
    pub fusion_lr: Option<f32>,
    /// In local training, the chance that an item's ID row is hidden (read
    /// as zero, and not trained) for one epoch, as DropoutNet (Volkovs et
    /// al., NeurIPS 2017) drops preference inputs: the correction learns to
    /// score an item from content alone, which is all a new item (a zero
    /// row) has.
    pub id_dropout: f32,
}

impl_tensors!(Residual { scale });

pub struct ResidualCache {
    /// The experts' views F_j before the residual.
    fused: Vec<Array2<f32>>,
    /// With `evidence`: rho_i per row and the ID rows it was taken from
    /// (the plain form needs neither, so scoring a catalog copies nothing).
    evidence: Option<(Array1<f32>, Array2<f32>)>,
}

impl Residual {
    pub fn new(dim: usize, evidence: bool, fusion_lr: Option<f32>, id_dropout: f32) -> Self {
        Residual {
            scale: Array1::zeros(dim),
            evidence,
            fusion_lr,
            id_dropout,
        }
    }

    /// V_j = e + rho (alpha ⊙ F_j) for every expert view F_j.
    pub fn forward(
        &self,
        id_rows: &ArrayView2<f32>,
        fused: Vec<Array2<f32>>,
    ) -> (Vec<Array2<f32>>, ResidualCache) {
        let rho = self
            .evidence
            .then(|| id_rows.map_axis(Axis(1), |r| r.dot(&r).sqrt()));
        let views = fused
            .iter()
            .map(|f| {
                let mut v = f * &self.scale;
                if let Some(rho) = &rho {
                    v *= &rho.view().insert_axis(Axis(1));
                }
                v += id_rows;
                v
            })
            .collect();
        let evidence = rho.map(|rho| (rho, id_rows.to_owned()));
        (views, ResidualCache { fused, evidence })
    }

    /// Adds dL/d alpha into `grad`; returns dL/dF_j per expert and the part
    /// of dL/de that flows around the experts (the identity path, and rho's).
    pub fn backward(
        &self,
        cache: &ResidualCache,
        d_views: &[Array2<f32>],
        grad: &mut Residual,
    ) -> (Vec<Array2<f32>>, Array2<f32>) {
        let mut d_id = Array2::zeros(d_views[0].raw_dim());
        let mut d_rho = Array1::<f32>::zeros(d_id.nrows());
        let mut d_fused = Vec::with_capacity(d_views.len());
        for (dv, f) in d_views.iter().zip(&cache.fused) {
            d_id += dv;
            let dv_rho = match &cache.evidence {
                Some((rho, _)) => {
                    d_rho += &(dv * &(f * &self.scale)).sum_axis(Axis(1));
                    dv * &rho.view().insert_axis(Axis(1))
                }
                None => dv.clone(),
            };
            grad.scale += &(&dv_rho * f).sum_axis(Axis(0));
            d_fused.push(&dv_rho * &self.scale);
        }
        if let Some((rho, id_rows)) = &cache.evidence {
            // d|e|/de = e / |e| (zero for a zero row, where |e| has no slope).
            Zip::from(d_id.rows_mut())
                .and(id_rows.rows())
                .and(&d_rho)
                .and(rho)
                .for_each(|mut d, e, &dr, &norm| {
                    if norm > 0.0 {
                        d.scaled_add(dr / norm, &e);
                    }
                });
        }
        (d_fused, d_id)
    }
}
