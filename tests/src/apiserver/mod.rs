//! The Kubernetes API server emulator: an axum Router with real API semantics over in-memory
//! storage. See docs/arch/kube-emulator.md for the behaviours implemented and not implemented.
//!
//! Pure parts (table-tested): [`selector`], [`patch`], [`apply`], [`schema`], [`discovery`],
//! [`table`], [`request`], [`meta`]. Stateful parts: [`store`] (objects, resourceVersion,
//! history), [`ops`] / [`delete`] (verb semantics), [`controllers`] (GC, namespaces, CRDs),
//! [`watch`], [`handlers`] (HTTP).

pub mod apply;
pub mod binding;
pub mod builtin;
pub mod controllers;
pub mod crd;
pub mod delete;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod handlers;
pub mod kubeconfig;
pub mod logs;
pub mod meta;
pub mod openapi;
pub mod ops;
pub mod patch;
pub mod patching;
pub mod protobuf;
mod read;
pub mod request;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod serve;
pub mod state;
pub mod store;
pub mod table;
pub mod watch;

pub use faults::{Faults, Verb};
pub use handlers::router;
pub use logs::{LogRequest, LogSource, MemoryLogs};
pub use serve::Emulator;
pub use state::{ApiServer, Config};
