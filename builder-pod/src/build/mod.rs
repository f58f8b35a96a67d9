//! The step executor: runs a build plan instruction by instruction (design.md §4).

pub mod cache;
pub mod copy;
