//! The Stratum operator: reconciles `ImageBuild` resources into builder pods (design §3).
//!
//! - [`reconcile`]: the pure decision — what was observed → the next action.
//! - [`names`]: deterministic pod names and labels.
//! - [`controller`]: the running controller (kube-runtime), [`config`] its flags, [`http`] the
//!   health and metrics server, [`metrics`] the Prometheus metrics.

pub mod config;
pub mod controller;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod pod;
pub mod reconcile;
pub mod result;
pub mod source;
pub mod status;
