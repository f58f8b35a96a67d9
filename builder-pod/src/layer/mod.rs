//! Layers: applying tar layers to directories (this module's `apply`; docs/arch/layer-apply.md)
//! and turning an overlay upper directory into a compressed layer (`diff`, `writer`, `compress`;
//! docs/arch/layer-diff.md).

pub mod apply;
mod apply_decompress;
mod apply_error;
mod apply_input;
mod apply_pax;
mod apply_remove;
mod apply_tar;
mod apply_whiteout;
mod apply_write;
pub mod limits;
mod resolve;
mod resolve_name;

pub mod compress;
pub mod diff;
mod diff_xattr;
pub mod lower;
pub mod writer;
mod writer_tar;

pub use apply::{ApplyMode, ApplyOptions, ApplyStats, ListedEntry, apply_layer, list_entries};
pub use apply_decompress::{Compression, Sniffed, decompress, sniff};
pub use apply_error::{ApplyError, LimitKind, TarDefect};
pub use apply_tar::EntryKind;
pub use limits::{BudgetExhausted, ByteBudget, Limits};

// `layer::Compression` is the apply side's detected codec; the writer's (with levels) is
// `layer::writer::Compression`.
pub use diff::{Change, ChangeKind, DiffError, diff_upper};
pub use writer::{LayerBlob, LayerWriteError, WriteOptions, write_layer};
