//! The step executor: runs a build plan instruction by instruction, the way Docker's builder
//! does — every instruction on top of the last, `RUN` inside a sandbox over overlayfs whose upper
//! directory becomes the layer (design.md §4).
//!
//! The flow of one build:
//! 1. parse the Dockerfile and plan it once to learn which base images it needs;
//! 2. resolve and pull those images into the store, each layer unpacked on its own
//!    ([`base`]), then plan again with their environments and ONBUILD triggers;
//! 3. run the stages the target needs, independent ones in parallel ([`executor`]); each step is
//!    looked up in the cache first ([`cache`], then the cache repository if there is one,
//!    [`cache_repo`]) and otherwise executed ([`steps`]), its upper directory committed as a
//!    layer ([`commit`]);
//! 4. write the target stage's config and manifest into the store ([`finish`]).

mod base;
pub mod cache;
mod cache_repo;
mod commit;
pub mod copy;
mod error;
mod executor;
mod fetch;
mod finish;
pub mod metadata;
mod mount;
pub mod progress;
pub mod progress_live;
mod steps;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use error::BuildError;
pub use executor::Executor;

use crate::image::{ImageConfig, Repository};
use crate::layer::Compression;
use crate::output::BuiltImage;

/// Manifest and config media types of the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2.
    Docker,
}

/// Network of RUN steps that do not say `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    #[default]
    Host,
    None,
}

/// What to build and how.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The build context directory (a tar context has already been extracted into one).
    pub context_dir: PathBuf,
    /// The Dockerfile's text and the name errors refer to it by.
    pub dockerfile: String,
    pub dockerfile_name: String,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// `--label`: added to the final image's config.
    pub labels: BTreeMap<String, String>,
    /// `--annotation`: added to the pushed manifest's `annotations` (OCI image-spec
    /// manifest.md; BuildKit's `--annotation manifest:KEY=VALUE`).
    pub annotations: BTreeMap<String, String>,
    pub no_cache: bool,
    pub compression: Compression,
    pub format: ImageFormat,
    /// Timestamps of layers, config and history; `None` = now, files keep their mtimes.
    pub source_date_epoch: Option<i64>,
    pub network: NetworkMode,
    /// Kill a RUN step that takes longer than this.
    pub step_timeout: Option<Duration>,
    /// Stages built at the same time (at most).
    pub parallelism: usize,
}

/// How one instruction went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// 1-based, counting every step of every stage built, FROM lines included.
    pub index: usize,
    /// The stage's name or index.
    pub stage: String,
    pub line: usize,
    pub instruction: String,
    pub cached: bool,
    pub duration_millis: u64,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub image: BuiltImage,
    pub config: ImageConfig,
    pub steps: Vec<StepReport>,
    /// The repository of the target stage's base image, a good source for cross-repository
    /// blob mounts when pushing to the same registry.
    pub base_repository: Option<Repository>,
    pub warnings: Vec<String>,
}
