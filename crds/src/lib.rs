//! The `ImageBuild` custom resource (`stratum.dev/v1alpha1`, short name `ib`) and the versioned
//! contract between the operator and the builder pod.
//!
//! - [`ImageBuild`] / [`ImageBuildSpec`] / [`ImageBuildStatus`]: the resource, with rustdoc on
//!   every field written for users — it becomes the schema's descriptions, `kubectl explain`
//!   and `docs/api.md`.
//! - [`crd()`]: the CustomResourceDefinition (structural schema, CEL rules, printer columns),
//!   committed as `crds/imagebuild.yaml` by the `crdgen` binary.
//! - [`validate`]: the same rules as pure Rust, so the operator reports `SpecInvalid` even where
//!   the apiserver did not evaluate CEL.
//! - [`conditions`]: condition types, reasons and the phase → conditions mapping (kstatus).
//! - [`contract`]: [`BuildRequest`] (operator → builder, JSON in an environment variable) and
//!   [`BuildResult`] (builder → operator, a checksummed termination message).
//! - [`duration`]: Go duration strings (`30m`, `1h30m`).
//!
//! This crate does no I/O beyond [`BuildRequest::from_env`]; everything else is pure.

pub mod apidoc;
pub mod cel;
pub mod conditions;
pub mod contract;

pub mod crd;
pub mod duration;
pub mod patterns;
pub mod types;
pub mod validate;

pub use conditions::{condition_status, condition_type, reason};

pub use contract::{BuildRequest, BuildResult, parse_termination_message};
pub use crd::{crd, crd_yaml};
pub use duration::GoDuration;
pub use types::output::{BuildArg, Cache, Compression, ImageFormat, Output};
pub use types::source::{GitSource, InlineSource, SecretReference, Source, SourceKind, UrlSource};
pub use types::spec::{ImageBuild, ImageBuildSpec};
pub use types::status::{
    BuildRecord, Failure, ImageBuildStatus, LayerStatus, OmittedSteps, Phase, ResolvedGit,
    ResolvedSource, ResolvedUrl, StepStatus,
};

/// The API group.
pub const GROUP: &str = "stratum.dev";
/// The API version.
pub const VERSION: &str = "v1alpha1";
/// The label every builder pod carries, with the ImageBuild's name as value.
pub const BUILD_LABEL: &str = "stratum.dev/build";
