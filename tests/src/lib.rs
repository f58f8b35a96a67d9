//! End-to-end harness: a Kubernetes API emulator and tests that drive real binaries against it.
//!
//! The emulator lands with its own issue; see docs/testing.md for what exists today.
