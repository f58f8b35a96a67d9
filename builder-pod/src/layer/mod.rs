//! Layers: applying tar layers to directories (this module's `apply`), and — from other
//! modules — turning an upper directory into a layer and compressing it.
//! See docs/arch/layer-apply.md.

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

pub use apply::{ApplyMode, ApplyOptions, ApplyStats, ListedEntry, apply_layer, list_entries};
pub use apply_decompress::{Compression, Sniffed, decompress, sniff};
pub use apply_error::{ApplyError, LimitKind, TarDefect};
pub use apply_tar::EntryKind;
pub use limits::{BudgetExhausted, ByteBudget, Limits};
