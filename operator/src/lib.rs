//! The Stratum operator: reconciles `ImageBuild` resources into builder pods (design §3).
//!
//! - [`reconcile`]: the pure decision — what was observed → the next action.
//! - [`names`]: deterministic pod names and labels.

pub mod names;
pub mod pod;
pub mod reconcile;
pub mod result;
pub mod status;
