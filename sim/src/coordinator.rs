//! The server side of a round, as the simulation sees it. In process it is
//! the core's aggregator; the HTTP server implements the same three calls.

use fedmr_core::Result;
use fedmr_core::aggregate::{AggregateReport, Aggregator, ServerOptimizer, ServerStep};
use fedmr_core::model::{Backbone, GlobalModel};
use fedmr_core::update::ModelUpdate;

pub trait Coordinator {
    /// The current global model, as a client downloads it.
    fn global(&self) -> &GlobalModel;
    /// Accepts one client's update for the open round.
    fn submit(&mut self, update: &ModelUpdate) -> Result<()>;
    /// Closes the round: aggregates and publishes the next model.
    fn close_round(&mut self) -> AggregateReport;
}

pub struct InProcess {
    model: GlobalModel,
    backbone: Backbone,
    optimizer: ServerOptimizer,
    pending: Aggregator,
}

impl InProcess {
    pub fn new(model: GlobalModel, backbone: Backbone, step: &ServerStep) -> Self {
        let pending = Aggregator::new(&model, backbone);
        InProcess {
            model,
            backbone,
            optimizer: ServerOptimizer::new(step),
            pending,
        }
    }
}

impl Coordinator for InProcess {
    fn global(&self) -> &GlobalModel {
        &self.model
    }

    fn submit(&mut self, update: &ModelUpdate) -> Result<()> {
        self.pending.add(&self.model, update)
    }

    fn close_round(&mut self) -> AggregateReport {
        let done = std::mem::replace(
            &mut self.pending,
            Aggregator::new(&self.model, self.backbone),
        );
        done.apply(&mut self.model, &mut self.optimizer)
    }
}
