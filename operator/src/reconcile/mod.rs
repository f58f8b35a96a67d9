//! observe → decide → apply → status. `decide` and `observed` are pure; the controller does the
//! observing and applying.

pub mod decide;
pub mod observed;

#[cfg(test)]
mod decide_tests;

pub use decide::{Action, DeleteWhy, Waiting, decide, retry_backoff};
pub use observed::{ContainerView, Observed, PodPhase, PodView, Terminated};
