//! See docs/architecture.md for what this module owns.

// Upper dir → layer (docs/arch/layer-diff.md).
pub mod compress;
pub mod diff;
mod diff_xattr;
pub mod lower;
pub mod writer;
mod writer_tar;

// `Compression` (with levels) is not re-exported here: the apply side has a detection-only enum
// of the same name. Use `layer::writer::Compression`.
pub use diff::{Change, ChangeKind, DiffError, diff_upper};
pub use writer::{LayerBlob, LayerWriteError, WriteOptions, write_layer};
