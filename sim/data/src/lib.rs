//! fedmr-data: datasets from files and the paper's evaluation — the
//! research side, never linked into the phone library.
//!
//! `npy` reads and writes NumPy arrays; `mmrec` and `recbole` load the KU
//! (MMRec) and MovieLens-100k (RecBole) folders into `fedmr_core::data`
//! types; `eval` ranks every item and reports HR@K / NDCG@K; `baselines`
//! are the non-learned scorers (random, popularity, cold-first).

pub mod baselines;
pub mod eval;
pub mod mmrec;
pub mod npy;
pub mod recbole;
