//! Fixture builders and the sentinel oracle for the layer-apply tests.
//!
//! Hostile archives are built here block by block with the `tar` crate's `Header` API (and raw
//! bytes where a header must be malformed), because ordinary writers refuse to produce them.
//! The oracle follows threats-and-faults §2: extract into `sandbox/dest` next to
//! `sandbox/victim` and `sandbox/dest-evil`, record everything outside `dest` before and after,
//! and require the record to be identical (type, mode, uid, gid, size, sha256, nlink, link
//! target).

#![allow(dead_code)] // each test binary uses a different subset

pub mod gnu_tar;
pub mod oracle;
pub mod tar_builder;

#[allow(unused_imports)]
pub use oracle::{MODES, Sandbox, Tree, contained, same_inode, snapshot};
#[allow(unused_imports)]
pub use tar_builder::{Entry, TarFixture};
