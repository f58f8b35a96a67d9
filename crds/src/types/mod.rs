//! The ImageBuild resource, split by part of the object.

pub mod output;
pub mod source;
pub mod spec;
pub mod status;
