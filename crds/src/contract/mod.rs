//! The contract between the operator and the builder pod.
//!
//! - **Operator → builder**: a [`BuildRequest`], JSON in the `STRATUM_BUILD_REQUEST` environment
//!   variable (or a file named by `STRATUM_BUILD_REQUEST_FILE`). It carries everything the
//!   builder needs — the source already resolved to an exact commit — so the builder talks to no
//!   Kubernetes API.
//! - **Builder → operator**: a [`BuildResult`] in the container's termination message. The kubelet
//!   caps that at 4096 bytes per container, and less when a pod has more than three containers
//!   (12 KiB divided equally; kubernetes/kubernetes #39341, tektoncd/pipeline #4808). The result
//!   is therefore compact, budgeted to [`RESULT_BUDGET`] bytes, and framed with its length and a
//!   CRC-32 so that a cut or corrupted message is refused, never half-read (threats §5, §4.1
//!   F11). The operator still verifies every digest in the registry before it reports success.
//!
//! Both directions carry a version (`v`); a reader refuses versions it does not know.

mod crc32;
mod frame;
mod request;
mod result;
mod text;

pub use frame::{ResultError, parse_termination_message};
pub use request::{
    BuildIdentity, BuildRequest, RequestCache, RequestError, RequestOutput, RequestSource,
};
pub use result::{
    BuildFailure, BuildResult, BuiltSource, FailureReason, INSTRUCTION_BUDGET, MESSAGE_BUDGET,
    Outcome, PushedImage, StepTiming, StepsOmitted,
};

/// The version of [`BuildRequest`] this crate writes and reads.
pub const REQUEST_VERSION: u32 = 1;
/// The version of [`BuildResult`] this crate writes and reads.
pub const RESULT_VERSION: u32 = 1;

/// The environment variable holding the request JSON.
pub const REQUEST_ENV: &str = "STRATUM_BUILD_REQUEST";
/// The environment variable naming a file with the request JSON (a mounted ConfigMap), used
/// instead of [`REQUEST_ENV`] when set.
pub const REQUEST_FILE_ENV: &str = "STRATUM_BUILD_REQUEST_FILE";
/// The largest request accepted: Linux limits one environment string to 128 KiB
/// (`MAX_ARG_STRLEN`), name included; this leaves room for the name.
pub const REQUEST_MAX_BYTES: usize = 120 * 1024;

/// Where the builder writes its result (the Kubernetes default `terminationMessagePath`).
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// The most bytes [`BuildResult::encode`] produces: 12 KiB shared by four containers, so the
/// result survives even if the pod gains init containers or sidecars, well under the 4096-byte
/// per-container cap.
pub const RESULT_BUDGET: usize = 3072;

/// Where the operator mounts the source Secret (git or object store credentials) in the pod.
pub const SOURCE_SECRET_DIR: &str = "/var/run/stratum/source";
/// Where the operator mounts the push Secret; the docker config is `<dir>/.dockerconfigjson`.
pub const PUSH_SECRET_DIR: &str = "/var/run/stratum/push";
/// The key of a `kubernetes.io/dockerconfigjson` Secret.
pub const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";

#[cfg(test)]
mod request_tests;
#[cfg(test)]
mod result_tests;
