//! The Kubernetes API server emulator.

pub mod apply;
pub mod error;
pub mod meta;
pub mod patch;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod store;
