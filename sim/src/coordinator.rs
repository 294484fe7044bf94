//! The server side of a round, as the simulation sees it. In process it is
//! the core's aggregator; the HTTP server implements the same three calls.

use fedmr_core::Result;
use fedmr_core::aggregate::{
    AggregateReport, AggregationRule, Aggregator, DEFAULT_SAMPLE_CAP, ServerOptimizer, ServerStep,
};
use fedmr_core::model::{Backbone, GlobalModel};
use fedmr_core::secagg::{Layout, SecureAggregation, dequantize, normalised_weight, quantize};
use fedmr_core::update::ModelUpdate;
use fedmr_core::wire::ModelEncoding;

pub trait Coordinator {
    /// The current global model, as a client downloads it.
    fn global(&self) -> &GlobalModel;
    /// Accepts one client's update for the open round.
    fn submit(&mut self, update: &ModelUpdate) -> Result<()>;
    /// Closes the round: aggregates and publishes the next model.
    fn close_round(&mut self) -> Result<AggregateReport>;
}

pub struct InProcess {
    model: GlobalModel,
    /// How phones download `model`, and what they receive.
    download: ModelEncoding,
    received: Option<GlobalModel>,
    backbone: Backbone,
    rule: AggregationRule,
    sample_cap: u64,
    optimizer: ServerOptimizer,
    pending: Aggregator,
    secure: Option<SecureSum>,
}

/// A secure round's arithmetic without its cryptography: each update
/// quantised as a client quantises it and the codes summed modulo 2^32.
/// The masks are left out because they cancel exactly in that sum (the
/// core's protocol tests check it bit for bit), so the model is the one
/// the real protocol gives.
struct SecureSum {
    config: SecureAggregation,
    layout: Layout,
    sum: Vec<u32>,
    clients: usize,
}

impl InProcess {
    pub fn new(model: GlobalModel, backbone: Backbone, step: &ServerStep) -> Self {
        let rule = AggregationRule::default();
        let pending = fresh(&model, backbone, rule, DEFAULT_SAMPLE_CAP);
        InProcess {
            model,
            download: ModelEncoding::F32,
            received: None,
            backbone,
            rule,
            sample_cap: DEFAULT_SAMPLE_CAP,
            optimizer: ServerOptimizer::new(step),
            pending,
            secure: None,
        }
    }

    /// Combines updates by `rule` (robust rules hold the round's updates),
    /// counting at most `sample_cap` of an update's declared samples.
    pub fn with_rule(mut self, rule: AggregationRule, sample_cap: u64) -> Self {
        self.rule = rule;
        self.sample_cap = sample_cap;
        self.pending = fresh(&self.model, self.backbone, rule, sample_cap);
        self
    }

    /// Aggregates as secure aggregation does (quantised sums, capped weights).
    pub fn with_secure_aggregation(mut self, config: Option<SecureAggregation>) -> Self {
        self.secure = config.map(|config| {
            let layout = Layout::of(&self.model);
            SecureSum {
                config,
                layout,
                sum: vec![0; layout.len()],
                clients: 0,
            }
        });
        self
    }

    /// Phones receive the model in `encoding` (f16, int8: what they train
    /// and rank from is rounded; the server aggregates onto its f32 model).
    pub fn with_download(mut self, encoding: ModelEncoding) -> Result<Self> {
        self.download = encoding;
        self.receive()?;
        Ok(self)
    }

    fn receive(&mut self) -> Result<()> {
        self.received = match self.download {
            ModelEncoding::F32 => None,
            encoding => Some(encoding.round_trip(&self.model)?),
        };
        Ok(())
    }
}

impl Coordinator for InProcess {
    fn global(&self) -> &GlobalModel {
        self.received.as_ref().unwrap_or(&self.model)
    }

    fn submit(&mut self, update: &ModelUpdate) -> Result<()> {
        let Some(secure) = &mut self.secure else {
            return self.pending.add(&self.model, update);
        };
        update.validate(&self.model)?;
        let weight = normalised_weight(self.backbone, update.samples, secure.config.sample_cap);
        let code = secure.config.fixed_point();
        let q = quantize(update, weight, &secure.layout, &code)?;
        for (s, v) in secure.sum.iter_mut().zip(q.values) {
            *s = s.wrapping_add(v);
        }
        secure.clients += 1;
        Ok(())
    }

    fn close_round(&mut self) -> Result<AggregateReport> {
        let mut done = std::mem::replace(
            &mut self.pending,
            fresh(&self.model, self.backbone, self.rule, self.sample_cap),
        );
        if let Some(secure) = &mut self.secure {
            let sum = std::mem::replace(&mut secure.sum, vec![0; secure.layout.len()]);
            let clients = std::mem::take(&mut secure.clients);
            if clients > 0 {
                let code = secure.config.fixed_point();
                let sums = dequantize(&sum, clients, &secure.layout, &code)?;
                done.add_unmasked(&self.model, &sums)?;
            }
        }
        let report = done.apply(&mut self.model, &mut self.optimizer);
        self.receive()?;
        Ok(report)
    }
}

/// An empty aggregate: a client declaring more than `sample_cap` samples
/// weighs no more than the server would let it (the server's default cap
/// unless a defence lowers it).
fn fresh(
    model: &GlobalModel,
    backbone: Backbone,
    rule: AggregationRule,
    sample_cap: u64,
) -> Aggregator {
    Aggregator::new(model, backbone)
        .with_sample_cap(sample_cap)
        .with_rule(rule)
}
