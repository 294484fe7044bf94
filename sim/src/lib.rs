//! fedmr-sim: federated simulation and evaluation of FedMR.
//!
//! `federation` runs rounds of local training and aggregation over simulated
//! phones; `coordinator` is the server side behind a seam so that it can move
//! behind HTTP; `experiment` repeats runs over seeds and learning rates;
//! `ablation` lists the ablation variants; `report` prints and writes what came out; `http` runs the same federation
//! as a real server and real clients over loopback HTTP; `privacy` runs a
//! curious server's attacks on what that server received; `secagg_cost`
//! measures what secure aggregation costs beside plain aggregation;
//! `new_items` holds the newest items out of training (item cold start).

pub mod ablation;
pub mod coordinator;
pub mod dataset;
pub mod disk_writes;
pub mod experiment;
pub mod federation;
pub mod http;
pub mod new_item_report;
pub mod new_items;
pub mod poisoning;
pub mod poisoning_report;
pub mod privacy;
pub mod report;
pub mod router_plot;
pub mod secagg_cost;
