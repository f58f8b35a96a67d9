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
//!
//! The builder's side of the contract, end to end:
//!
//! ```
//! use stratum_crds::contract::{BuildFailure, FailureReason, RESULT_BUDGET};
//! use stratum_crds::{BuildResult, parse_termination_message};
//!
//! // In the builder: after a RUN step failed, write this to /dev/termination-log.
//! let result = BuildResult::failed(BuildFailure {
//!     reason: FailureReason::StepFailed,
//!     message: "The command '/bin/sh -c make' returned a non-zero code: 2".into(),
//!     step: Some("RUN make".into()),
//!     step_index: Some(3),
//!     line: Some(7),
//!     exit_code: Some(2),
//! });
//! let message = result.encode();
//! assert!(message.len() <= RESULT_BUDGET);
//!
//! // In the operator: any cut or corrupted message is an error, never a partial result.
//! assert_eq!(parse_termination_message(&message)?, result);
//! assert!(parse_termination_message(&message[..message.len() - 1]).is_err());
//! # Ok::<(), stratum_crds::contract::ResultError>(())
//! ```

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
