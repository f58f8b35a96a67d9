#![allow(unsafe_code)] // the one module with syscalls; every block has a SAFETY note
//! See docs/architecture.md for what this module owns.
