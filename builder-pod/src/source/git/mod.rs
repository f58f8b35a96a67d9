//! Git sources: resolve a revision to a commit and fetch it into an isolated checkout.
//!
//! Stratum shells out to the git CLI rather than linking gitoxide or libgit2 (crates.md §4):
//! gitoxide cannot update submodules, libgit2 brings OpenSSL and libssh2, and git's own
//! transports, shallow fetches and `submodule update` are the behaviour users expect. Every run
//! is isolated by `command::Session`. These functions block; async callers use
//! `spawn_blocking`.

mod auth;
mod command;
mod context;
mod error;
mod fetch;
mod lfs;
mod resolve;
mod size;
mod submodules;
mod url;

pub use auth::GitAuth;
pub use context::{
    RemoteContext, check_context_path, context_dir, dockerfile_in, is_git_context,
    parse_remote_context,
};
pub use error::GitError;
pub use fetch::{DEFAULT_MAX_CHECKOUT_BYTES, FetchControl, Fetched, GitFetch, fetch, fetch_with};
pub use resolve::{Resolved, resolve};
pub use url::redact as redact_url;
