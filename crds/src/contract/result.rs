//! [`BuildResult`]: what the builder reports, and how it fits the termination message.

use serde::{Deserialize, Serialize};

use super::text::clip;
use super::{RESULT_BUDGET, RESULT_VERSION, frame};
use crate::reason;
use crate::types::status::{
    Failure, OmittedSteps, ResolvedGit, ResolvedSource, ResolvedUrl, StepStatus,
};

/// Escaped bytes kept of a failure message.
pub const MESSAGE_BUDGET: usize = 1024;
/// Escaped bytes kept of the failed instruction.
pub const INSTRUCTION_BUDGET: usize = 256;
/// Escaped bytes kept of digests, commits and media types (valid ones are at most 71).
const FIELD_BUDGET: usize = 128;

/// The outcome of one build, as the builder reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildResult {
    pub outcome: Outcome,
    /// What was actually built.
    pub source: Option<BuiltSource>,
    /// Per-step timings, by ascending index. [`BuildResult::encode`] may move some into
    /// `omitted` to stay within the budget.
    pub steps: Vec<StepTiming>,
    /// Steps not listed in `steps`.
    pub omitted: Option<StepsOmitted>,
}

/// Pushed or failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pushed(PushedImage),
    Failed(BuildFailure),
}

/// The pushed image. The operator fetches both digests from the registry before it believes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedImage {
    /// `sha256:` of the manifest bytes the builder pushed.
    pub manifest_digest: String,
    /// `sha256:` of the image config: the image ID.
    pub config_digest: String,
    /// Bytes of manifest + config + compressed layers.
    pub size: u64,
    /// The manifest's media type.
    pub media_type: String,
}

/// Why the build failed, as far as the builder knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildFailure {
    pub reason: FailureReason,
    /// What went wrong; cut to [`MESSAGE_BUDGET`] escaped bytes by `encode`.
    pub message: String,
    /// The failed instruction (e.g. `RUN make`); cut to [`INSTRUCTION_BUDGET`].
    pub step: Option<String>,
    /// The failed step's index (the same numbering as `steps`).
    pub step_index: Option<u32>,
    /// The failed instruction's Dockerfile line, from 1.
    pub line: Option<u32>,
    /// The exit code of a failed `RUN`.
    pub exit_code: Option<i32>,
}

/// The failure reasons a builder can report; each is one of [`crate::reason`]'s constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureReason {
    DockerfileInvalid,
    StepFailed,
    FetchFailed,
    SourceMismatch,
    SourceAuthFailed,
    SourceUnavailable,
    PullFailed,
    PushFailed,
    RegistryAuthFailed,
    RegistryUnavailable,
    /// The builder stopped itself at the request's deadline.
    Timeout,
    BuilderError,
}

impl FailureReason {
    /// Every reason.
    pub const ALL: [FailureReason; 12] = [
        FailureReason::DockerfileInvalid,
        FailureReason::StepFailed,
        FailureReason::FetchFailed,
        FailureReason::SourceMismatch,
        FailureReason::SourceAuthFailed,
        FailureReason::SourceUnavailable,
        FailureReason::PullFailed,
        FailureReason::PushFailed,
        FailureReason::RegistryAuthFailed,
        FailureReason::RegistryUnavailable,
        FailureReason::Timeout,
        FailureReason::BuilderError,
    ];

    /// The condition reason (the same text as the serialized name).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::DockerfileInvalid => reason::DOCKERFILE_INVALID,
            FailureReason::StepFailed => reason::STEP_FAILED,
            FailureReason::FetchFailed => reason::FETCH_FAILED,
            FailureReason::SourceMismatch => reason::SOURCE_MISMATCH,
            FailureReason::SourceAuthFailed => reason::SOURCE_AUTH_FAILED,
            FailureReason::SourceUnavailable => reason::SOURCE_UNAVAILABLE,
            FailureReason::PullFailed => reason::PULL_FAILED,
            FailureReason::PushFailed => reason::PUSH_FAILED,
            FailureReason::RegistryAuthFailed => reason::REGISTRY_AUTH_FAILED,
            FailureReason::RegistryUnavailable => reason::REGISTRY_UNAVAILABLE,
            FailureReason::Timeout => reason::TIMEOUT,
            FailureReason::BuilderError => reason::BUILDER_ERROR,
        }
    }
}

/// The revision the builder fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuiltSource {
    /// The checked-out commit (full SHA).
    Git { commit: String },
    /// The sha256 (64 hex digits) of the fetched object.
    Url { sha256: String },
}

/// One step's timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepTiming {
    pub index: u32,
    pub cached: bool,
    pub duration_millis: u64,
}

/// A summary of steps left out of a result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepsOmitted {
    pub count: u32,
    pub cached: u32,
    pub duration_millis: u64,
}

impl StepsOmitted {
    fn add(&mut self, step: &StepTiming) {
        self.count = self.count.saturating_add(1);
        self.cached = self.cached.saturating_add(u32::from(step.cached));
        self.duration_millis = self.duration_millis.saturating_add(step.duration_millis);
    }
}

// --- the wire form: short keys, steps as [index, cached, millis] ---------------------------

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Wire {
    pub(super) v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ok: Option<WirePushed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    err: Option<WireFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    src: Option<WireSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    st: Vec<(u32, u8, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    om: Option<(u32, u32, u64)>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePushed {
    m: String,
    c: String,
    z: u64,
    t: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFailure {
    r: FailureReason,
    m: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<i32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    g: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
}

impl BuildResult {
    /// A successful result.
    pub fn pushed(image: PushedImage) -> Self {
        Self {
            outcome: Outcome::Pushed(image),
            source: None,
            steps: Vec::new(),
            omitted: None,
        }
    }

    /// A failed result.
    pub fn failed(failure: BuildFailure) -> Self {
        Self {
            outcome: Outcome::Failed(failure),
            source: None,
            steps: Vec::new(),
            omitted: None,
        }
    }

    /// The termination message: at most [`RESULT_BUDGET`] bytes, always.
    ///
    /// Free text is cut first (the message to [`MESSAGE_BUDGET`], the instruction to
    /// [`INSTRUCTION_BUDGET`] escaped bytes, with a trailing `…`). If the steps still do not fit,
    /// the most useful are kept — the failed step, then the slowest uncached steps, then the
    /// slowest cached ones — and the rest are summed in `omitted`; kept steps stay in index order.
    pub fn encode(&self) -> String {
        let clipped = self.clipped();
        let order = clipped.keep_order();
        let encode_keeping = |kept: usize| clipped.frame_keeping(&order[..kept]);
        let all = encode_keeping(order.len());
        if all.len() <= RESULT_BUDGET {
            return all;
        }
        // The length grows with every kept step, so the largest count that fits is found by
        // bisection over `order`'s prefixes. Zero steps always fit: every text is clipped.
        let (mut fits, mut too_many) = (0, order.len());
        while too_many - fits > 1 {
            let mid = fits + (too_many - fits) / 2;
            if encode_keeping(mid).len() <= RESULT_BUDGET {
                fits = mid;
            } else {
                too_many = mid;
            }
        }
        encode_keeping(fits)
    }

    fn clipped(&self) -> Self {
        let outcome = match &self.outcome {
            Outcome::Pushed(p) => Outcome::Pushed(PushedImage {
                manifest_digest: clip(&p.manifest_digest, FIELD_BUDGET),
                config_digest: clip(&p.config_digest, FIELD_BUDGET),
                size: p.size,
                media_type: clip(&p.media_type, FIELD_BUDGET),
            }),
            Outcome::Failed(f) => Outcome::Failed(BuildFailure {
                message: clip(&f.message, MESSAGE_BUDGET),
                step: f.step.as_deref().map(|s| clip(s, INSTRUCTION_BUDGET)),
                ..f.clone()
            }),
        };
        let source = self.source.as_ref().map(|s| match s {
            BuiltSource::Git { commit } => BuiltSource::Git {
                commit: clip(commit, FIELD_BUDGET),
            },
            BuiltSource::Url { sha256 } => BuiltSource::Url {
                sha256: clip(sha256, FIELD_BUDGET),
            },
        });
        Self {
            outcome,
            source,
            steps: self.steps.clone(),
            omitted: self.omitted,
        }
    }

    /// Positions in `steps`, most worth keeping first.
    fn keep_order(&self) -> Vec<usize> {
        let failed = match &self.outcome {
            Outcome::Failed(f) => f.step_index,
            Outcome::Pushed(_) => None,
        };
        let mut order: Vec<usize> = (0..self.steps.len()).collect();
        order.sort_by_key(|&i| {
            let s = &self.steps[i];
            (
                Some(s.index) != failed,
                s.cached,
                std::cmp::Reverse(s.duration_millis),
                s.index,
            )
        });
        order
    }

    fn frame_keeping(&self, kept: &[usize]) -> String {
        let mut kept = kept.to_vec();
        kept.sort_unstable();
        let mut omitted = self.omitted.unwrap_or_default();
        for (i, step) in self.steps.iter().enumerate() {
            if kept.binary_search(&i).is_err() {
                omitted.add(step);
            }
        }
        let steps: Vec<StepTiming> = kept.iter().map(|&i| self.steps[i]).collect();
        let omitted = (omitted.count > 0).then_some(omitted);
        frame::frame(&self.to_wire(&steps, omitted))
    }

    fn to_wire(&self, steps: &[StepTiming], omitted: Option<StepsOmitted>) -> Wire {
        let (ok, err) = match &self.outcome {
            Outcome::Pushed(p) => (
                Some(WirePushed {
                    m: p.manifest_digest.clone(),
                    c: p.config_digest.clone(),
                    z: p.size,
                    t: p.media_type.clone(),
                }),
                None,
            ),
            Outcome::Failed(f) => (
                None,
                Some(WireFailure {
                    r: f.reason,
                    m: f.message.clone(),
                    s: f.step.clone(),
                    i: f.step_index,
                    l: f.line,
                    x: f.exit_code,
                }),
            ),
        };
        let src = self.source.as_ref().map(|s| match s {
            BuiltSource::Git { commit } => WireSource {
                g: Some(commit.clone()),
                u: None,
            },
            BuiltSource::Url { sha256 } => WireSource {
                g: None,
                u: Some(sha256.clone()),
            },
        });
        Wire {
            v: RESULT_VERSION,
            ok,
            err,
            src,
            st: steps
                .iter()
                .map(|s| (s.index, u8::from(s.cached), s.duration_millis))
                .collect(),
            om: omitted.map(|o| (o.count, o.cached, o.duration_millis)),
        }
    }

    /// Reads the wire form, checking every field (the caller has checked framing and version).
    pub(super) fn from_wire(wire: Wire) -> Result<Self, &'static str> {
        use crate::patterns::{COMMIT, DIGEST, SHA256_HEX, matches};
        let outcome = match (wire.ok, wire.err) {
            (Some(ok), None) => {
                if !matches(DIGEST, &ok.m) || !matches(DIGEST, &ok.c) {
                    return Err("a digest is not sha256:<64 hex>");
                }
                let media_type_ok = !ok.t.is_empty()
                    && ok.t.len() <= FIELD_BUDGET
                    && ok
                        .t
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"./+-".contains(&b));
                if !media_type_ok {
                    return Err("the media type is not a media type");
                }
                Outcome::Pushed(PushedImage {
                    manifest_digest: ok.m,
                    config_digest: ok.c,
                    size: ok.z,
                    media_type: ok.t,
                })
            }
            (None, Some(err)) => Outcome::Failed(BuildFailure {
                reason: err.r,
                message: err.m,
                step: err.s,
                step_index: err.i,
                line: err.l,
                exit_code: err.x,
            }),
            _ => return Err("exactly one of ok and err must be present"),
        };
        let source = match wire.src {
            None => None,
            Some(WireSource {
                g: Some(commit),
                u: None,
            }) if matches(COMMIT, &commit) => Some(BuiltSource::Git { commit }),
            Some(WireSource {
                g: None,
                u: Some(sha256),
            }) if matches(SHA256_HEX, &sha256) => Some(BuiltSource::Url { sha256 }),
            Some(_) => return Err("the source is not one commit or one sha256"),
        };
        let mut steps = Vec::with_capacity(wire.st.len());
        for (index, cached, duration_millis) in wire.st {
            if cached > 1 {
                return Err("a step's cached flag is not 0 or 1");
            }
            if steps
                .last()
                .is_some_and(|prev: &StepTiming| prev.index >= index)
            {
                return Err("steps are not in ascending index order");
            }
            steps.push(StepTiming {
                index,
                cached: cached == 1,
                duration_millis,
            });
        }
        let omitted = match wire.om {
            None => None,
            Some((count, cached, duration_millis)) if count > 0 && cached <= count => {
                Some(StepsOmitted {
                    count,
                    cached,
                    duration_millis,
                })
            }
            Some(_) => return Err("the omitted-steps summary is inconsistent"),
        };
        Ok(Self {
            outcome,
            source,
            steps,
            omitted,
        })
    }

    // --- for the operator's status ---------------------------------------------------------

    /// `status.steps`; instructions are not part of the result.
    pub fn steps_status(&self) -> Vec<StepStatus> {
        self.steps
            .iter()
            .map(|s| StepStatus {
                index: i32::try_from(s.index).unwrap_or(i32::MAX),
                instruction: None,
                cached: s.cached,
                duration_millis: i64::try_from(s.duration_millis).unwrap_or(i64::MAX),
            })
            .collect()
    }

    /// `status.omittedSteps`.
    pub fn omitted_status(&self) -> Option<OmittedSteps> {
        self.omitted.map(|o| OmittedSteps {
            count: i32::try_from(o.count).unwrap_or(i32::MAX),
            cached: i32::try_from(o.cached).unwrap_or(i32::MAX),
            duration_millis: i64::try_from(o.duration_millis).unwrap_or(i64::MAX),
        })
    }

    /// `status.source` as the builder saw it (the operator also knows the URL's ETag).
    pub fn resolved_source(&self) -> Option<ResolvedSource> {
        Some(match self.source.as_ref()? {
            BuiltSource::Git { commit } => ResolvedSource {
                git: Some(ResolvedGit {
                    commit: commit.clone(),
                }),
                url: None,
            },
            BuiltSource::Url { sha256 } => ResolvedSource {
                git: None,
                url: Some(ResolvedUrl {
                    sha256: Some(sha256.clone()),
                    etag: None,
                    last_modified: None,
                }),
            },
        })
    }
}

impl From<&BuildFailure> for Failure {
    fn from(f: &BuildFailure) -> Self {
        Failure {
            reason: f.reason.as_str().to_owned(),
            message: f.message.clone(),
            step: f.step.clone(),
            line: f.line.map(|l| i32::try_from(l).unwrap_or(i32::MAX)),
            exit_code: f.exit_code,
        }
    }
}
