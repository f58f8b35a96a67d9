//! observe → decide → apply → status. `decide` and `observed` are pure; the controller does the
//! observing and applying.

pub mod decide;
pub mod observed;
pub mod source;

#[cfg(test)]
mod decide_tests;
#[cfg(test)]
mod source_tests;

pub use decide::{Action, AttemptPod, DeleteWhy, Waiting, decide, retry_backoff};
pub use observed::{ContainerView, Observed, PodPhase, PodView, SourceCheck, Terminated};
pub use source::{FINALIZER, FINALIZER_TIMEOUT};
