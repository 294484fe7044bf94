//! The FedMR model: a global item encoder (ID table + MFFM) and a private
//! user side (router + score head), with hand-written backprop.

pub mod backbone;
mod fusion_name;
pub mod head;
pub mod layers;
pub mod mffm;
pub mod ncf;
pub mod optim;
pub mod params;
pub mod rap;
pub mod residual;
pub mod router;
mod sparse;
pub mod stack;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

pub use backbone::{Backbone, PersonalItems};
use head::{LinearHead, UserHead};
pub use mffm::{Expert, Mffm};
use ncf::{NcfTower, NcfUser};
use params::{Global, Private, Tensors, impl_tensors};
use router::Router;
pub use sparse::SparseRows;

use crate::error::{Error, Result};
use crate::rng::Rng;

/// How item views are built from the item-ID embedding and the content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FusionMode {
    /// The plain backbone: the item view is the ID embedding itself.
    IdOnly,
    /// MFFM with the given experts; `use_id: false` drops the ID embedding
    /// from the inputs (content only).
    Mffm { experts: Vec<Expert>, use_id: bool },
    /// MFFM in residual form (`residual.rs`, README "Fusion that earns its
    /// place"): the ID-only view plus the experts' correction, which starts
    /// at zero; with `evidence` an item's correction grows with its row's
    /// norm. Always uses the ID input. `fusion_lr`: the clients' step for
    /// MFFM's parameters (None: the round's `lr`); `id_dropout`: the chance
    /// an item's ID row is hidden in a training epoch (`residual.rs`).
    Residual {
        experts: Vec<Expert>,
        evidence: bool,
        fusion_lr: Option<f32>,
        id_dropout: f32,
    },
}

impl FusionMode {
    pub fn full() -> Self {
        FusionMode::Mffm {
            experts: Expert::ALL.to_vec(),
            use_id: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub backbone: Backbone,
    pub fusion: FusionMode,
    /// Latent size d.
    pub dim: usize,
    /// Standard deviation of the initial item embeddings and user heads.
    pub init_std: f32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            backbone: Backbone::FedAvg,
            fusion: FusionMode::full(),
            dim: 64,
            init_std: 0.1,
        }
    }
}

/// Frozen content features, one matrix per modality (row = item id).
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub n_items: usize,
    pub features: Vec<Array2<f32>>,
}

impl Catalog {
    pub fn modality_dims(&self) -> Vec<usize> {
        self.features.iter().map(|f| f.ncols()).collect()
    }

    /// Feature rows of `ids`, one matrix per modality.
    pub fn gather(&self, ids: &[usize]) -> Vec<Array2<f32>> {
        self.features
            .iter()
            .map(|f| layers::embedding::gather(&f.view(), ids))
            .collect()
    }
}

/// The global item encoder after the ID table. One per model, so the size
/// difference between the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Fusion {
    IdOnly,
    Mffm(Mffm),
}

impl Tensors for Fusion {
    fn visit(&self, f: &mut dyn FnMut(&[f32])) {
        if let Fusion::Mffm(m) = self {
            m.visit(f);
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut [f32])) {
        if let Fusion::Mffm(m) = self {
            m.visit_mut(f);
        }
    }
    fn visit_pairs_mut(&mut self, other: &Self, f: &mut dyn FnMut(&mut [f32], &[f32])) {
        match (self, other) {
            (Fusion::Mffm(m), Fusion::Mffm(o)) => m.visit_pairs_mut(o, f),
            (Fusion::IdOnly, Fusion::IdOnly) => {}
            _ => panic!("parameter sets of different configurations"),
        }
    }
}

impl Fusion {
    fn new(config: &ModelConfig, modality_dims: &[usize], rng: &mut Rng) -> Self {
        match &config.fusion {
            FusionMode::IdOnly => Fusion::IdOnly,
            FusionMode::Mffm { experts, use_id } => {
                Fusion::Mffm(Mffm::new(config.dim, *use_id, modality_dims, experts, rng))
            }
            FusionMode::Residual {
                experts,
                evidence,
                fusion_lr,
                id_dropout,
            } => Fusion::Mffm(
                Mffm::new(config.dim, true, modality_dims, experts, rng).with_residual(
                    *evidence,
                    *fusion_lr,
                    *id_dropout,
                ),
            ),
        }
    }

    pub fn experts(&self) -> usize {
        match self {
            Fusion::IdOnly => 1,
            Fusion::Mffm(m) => m.experts.len(),
        }
    }

    /// Expert views of all items (N x d each), for scoring.
    pub fn views(&self, items: &ArrayView2<f32>, catalog: &Catalog) -> Vec<Array2<f32>> {
        match self {
            Fusion::IdOnly => vec![items.to_owned()],
            Fusion::Mffm(m) => {
                let feats: Vec<_> = catalog.features.iter().map(|f| f.view()).collect();
                m.forward(m.use_id.then_some(items), &feats).0
            }
        }
    }
}

/// The global parameters other than the item table: sent whole, averaged
/// whole, in this order on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseParams {
    pub fusion: Fusion,
    /// FedNCF's towers; `None` for every other backbone.
    pub ncf: Option<NcfTower>,
}

impl_tensors!(DenseParams { fusion, ncf });

impl DenseParams {
    fn new(config: &ModelConfig, modality_dims: &[usize], rng: &mut Rng) -> Self {
        let fusion = Fusion::new(config, modality_dims, rng);
        let ncf = (config.backbone == Backbone::FedNcf).then(|| NcfTower::new(config.dim, rng));
        DenseParams { fusion, ncf }
    }

    /// Whether the item view is the ID row plus the fused view rather than
    /// the fused view alone: FedNCF + MFFM adds MFFM's view to the item
    /// embedding of its towers.
    /// (The residual form has the ID row in its view already.)
    pub fn adds_id_to_view(&self) -> bool {
        self.ncf.is_some() && matches!(&self.fusion, Fusion::Mffm(m) if m.residual.is_none())
    }
}

/// The item-ID embedding table (N x d). Global, but sent as touched rows.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemTable(pub Array2<f32>);

/// Everything the server holds and every client downloads.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalModel {
    pub items: Global<ItemTable>,
    pub dense: Global<DenseParams>,
}

impl GlobalModel {
    pub fn new(config: &ModelConfig, catalog: &Catalog, seed: u64) -> Result<Self> {
        validate_config(config, catalog)?;
        let mut rng = Rng::derive(seed, &[0x6c0b]);
        let items = Array2::from_shape_simple_fn((catalog.n_items, config.dim), || {
            rng.normal() as f32 * config.init_std
        });
        let dense = DenseParams::new(config, &catalog.modality_dims(), &mut rng);
        Ok(GlobalModel {
            items: Global(ItemTable(items)),
            dense: Global(dense),
        })
    }

    /// A model of `config`'s structure for these modality sizes, with the
    /// given item table and dense parameters (as sent on the wire).
    pub fn from_parts(
        config: &ModelConfig,
        modality_dims: &[usize],
        items: Array2<f32>,
        dense_params: &[f32],
    ) -> Result<Self> {
        validate_structure(config, modality_dims)?;
        if items.ncols() != config.dim {
            return Err(Error::Shape(format!(
                "item table has {} columns, model dimension is {}",
                items.ncols(),
                config.dim
            )));
        }
        // The initial values are overwritten; only the structure matters.
        let mut dense = DenseParams::new(config, modality_dims, &mut Rng::new(0));
        dense
            .load_flat(dense_params)
            .map_err(|m| Error::Shape(format!("dense parameters: {m}")))?;
        let model = GlobalModel {
            items: Global(ItemTable(items)),
            dense: Global(dense),
        };
        if !model.is_finite() {
            return Err(Error::Shape("non-finite model parameter".into()));
        }
        Ok(model)
    }

    /// Whether every parameter is finite (a model a client can use).
    pub fn is_finite(&self) -> bool {
        self.dense.all_finite() && self.items.0.0.iter().all(|v| v.is_finite())
    }

    pub fn n_items(&self) -> usize {
        self.items.0.0.nrows()
    }

    pub fn dim(&self) -> usize {
        self.items.0.0.ncols()
    }

    pub fn fusion(&self) -> &Fusion {
        &self.dense.0.fusion
    }

    pub fn ncf(&self) -> Option<&NcfTower> {
        self.dense.0.ncf.as_ref()
    }
}

fn validate_config(config: &ModelConfig, catalog: &Catalog) -> Result<()> {
    if catalog
        .features
        .iter()
        .any(|f| f.nrows() != catalog.n_items)
    {
        return Err(Error::InvalidConfig(
            "every modality needs one feature row per item".into(),
        ));
    }
    validate_structure(config, &catalog.modality_dims())
}

/// Bounds on a model's structure: a model arrives as bytes, and these keep a
/// hostile or mistaken header from making us allocate gigabytes.
pub const MAX_DIM: usize = 1024;
pub const MAX_MODALITY_DIM: usize = 16_384;
pub const MAX_MODALITIES: usize = 16;

fn validate_structure(config: &ModelConfig, modality_dims: &[usize]) -> Result<()> {
    if modality_dims.contains(&0) {
        return Err(Error::InvalidConfig("a modality has 0 dimensions".into()));
    }
    if config.dim > MAX_DIM
        || modality_dims.len() > MAX_MODALITIES
        || modality_dims.iter().any(|&d| d > MAX_MODALITY_DIM)
    {
        return Err(Error::InvalidConfig(format!(
            "model too large: d = {} (max {MAX_DIM}), modality sizes {modality_dims:?} \
             (max {MAX_MODALITIES} of at most {MAX_MODALITY_DIM})",
            config.dim
        )));
    }
    if config.dim == 0 {
        return Err(Error::InvalidConfig("latent size must be positive".into()));
    }
    if !(config.init_std.is_finite() && config.init_std > 0.0) {
        return Err(Error::InvalidConfig(
            "init_std must be a positive number".into(),
        ));
    }
    let mffm_inputs = match &config.fusion {
        FusionMode::IdOnly => None,
        FusionMode::Mffm { experts, use_id } => Some((experts, *use_id)),
        FusionMode::Residual {
            experts,
            fusion_lr,
            id_dropout,
            ..
        } => {
            if let Some(lr) = fusion_lr.filter(|lr| !(lr.is_finite() && *lr > 0.0)) {
                return Err(Error::InvalidConfig(format!(
                    "the fusion learning rate must be positive, got {lr}"
                )));
            }
            if !(0.0..1.0).contains(id_dropout) {
                return Err(Error::InvalidConfig(format!(
                    "ID dropout must be in [0, 1), got {id_dropout}"
                )));
            }
            Some((experts, true))
        }
    };
    if let Some((experts, use_id)) = mffm_inputs {
        if experts.is_empty() {
            return Err(Error::InvalidConfig(
                "MFFM needs at least one expert".into(),
            ));
        }
        if !use_id && modality_dims.is_empty() {
            return Err(Error::InvalidConfig(
                "MFFM without the ID input needs at least one modality".into(),
            ));
        }
        if use_id && modality_dims.is_empty() {
            return Err(Error::InvalidConfig(
                "MFFM needs at least one content modality (use id_only otherwise)".into(),
            ));
        }
    }
    Ok(())
}

/// The user's own model: score head and (with more than one expert) router.
#[derive(Clone, Debug, PartialEq)]
pub struct UserModel {
    pub head: UserHead,
    pub router: Option<Router>,
}

impl_tensors!(UserModel { head, router });

/// Everything of one user that stays on the device.
#[derive(Clone, Debug, PartialEq)]
pub struct PrivateState {
    pub model: Private<UserModel>,
    /// Personal item rows: PFedRec's locally fine-tuned rows from the
    /// user's last round, or FedRAP's P_u.
    pub personal_items: Private<Option<SparseRows>>,
    /// How `personal_items` enter the user's item views (set by the backbone).
    pub personal_kind: PersonalItems,
}

impl PrivateState {
    pub fn new(config: &ModelConfig, global: &GlobalModel, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let head = match config.backbone {
            Backbone::FedNcf => {
                UserHead::NeuMf(NcfUser::new(config.dim, config.init_std, &mut rng))
            }
            _ => UserHead::Linear(LinearHead::new(config.dim, config.init_std, &mut rng)),
        };
        let experts = global.fusion().experts();
        let router = (experts > 1).then(|| Router::new(experts, config.dim, &mut rng));
        PrivateState {
            model: Private(UserModel { head, router }),
            personal_items: Private(None),
            personal_kind: config.backbone.personal_items(),
        }
    }
}
