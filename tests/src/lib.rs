//! End-to-end harness: a Kubernetes API emulator and tests that drive real binaries against it.
//!
//! See docs/arch/kube-emulator.md for which Kubernetes behaviours the emulator implements.

pub mod apiserver;
pub mod chart;
pub mod e2e;
pub mod fixtures;
pub mod kubelet;
