//! The CEL rules (`x-kubernetes-validations`) of the ImageBuild schema.
//!
//! Each rule lives here once: the schema embeds it (`#[schemars(extend(...))]`) and
//! [`crate::validate`] implements the same predicate in Rust, naming the rule by its
//! [`Rule::id`]. The operator therefore reports `SpecInvalid` with the same message whether or not
//! the apiserver evaluated CEL (an old apiserver, a test emulator, or an object stored before the
//! rule existed). A test walks the generated CRD and fails if a rule in the schema has no entry in
//! [`ALL`], and the table tests exercise every entry.

use serde_json::{Value, json};

/// One CEL validation rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// A stable identifier, used in [`crate::validate::Violation`].
    pub id: &'static str,
    /// The CEL expression; `self` is the value of the field (or object) that carries the rule.
    pub rule: &'static str,
    /// What the user reads when the rule fails: what is wrong and what to do.
    pub message: &'static str,
}

impl Rule {
    /// The rule as an entry of `x-kubernetes-validations`.
    pub fn json(&self) -> Value {
        json!({ "rule": self.rule, "message": self.message })
    }

    /// Whether this rule compares against `oldSelf` (a transition rule, checked on updates only).
    pub fn is_transition(&self) -> bool {
        self.rule.contains("oldSelf")
    }
}

/// On `metadata`: the name becomes the value of the `stratum.dev/build` label on builder pods,
/// and label values are at most 63 characters.
pub const NAME_LENGTH: Rule = Rule {
    id: "NameLength",
    rule: "size(self.metadata.name) <= 63",
    message: "metadata.name must be at most 63 characters: it is used as a label value on the build's pods",
};

/// On `spec.source`.
pub const EXACTLY_ONE_SOURCE: Rule = Rule {
    id: "ExactlyOneSource",
    rule: "(has(self.git) ? 1 : 0) + (has(self.url) ? 1 : 0) + (has(self.inline) ? 1 : 0) == 1",
    message: "set exactly one of source.git, source.url or source.inline",
};

/// On `spec.source.git.revision`: the parts of `git check-ref-format` a pattern cannot say.
pub const GIT_REVISION_FORMAT: Rule = Rule {
    id: "GitRevisionFormat",
    rule: "!self.contains('..') && !self.contains('//') && !self.endsWith('/') && !self.endsWith('.lock')",
    message: "revision must be a branch, tag or commit: it may not contain '..' or '//' or end with '/' or '.lock'",
};

/// On `contextDir` and `spec.dockerfile`: a path must stay inside the context (threats §2.6 #33).
pub const CONTEXT_DIR_CONTAINED: Rule = Rule {
    id: "PathContained",
    rule: "!('/' + self + '/').contains('/../')",
    message: "the path must stay inside the build context: '..' segments are not allowed",
};

/// On `pollInterval`: polling a remote more often than this only adds load.
pub const POLL_INTERVAL_MIN: Rule = Rule {
    id: "PollIntervalMinimum",
    rule: "duration(self) >= duration('5s')",
    message: "pollInterval must be at least 5s",
};

/// On `spec.source.url`.
pub const POLL_NOT_PINNED: Rule = Rule {
    id: "PollNotPinned",
    rule: "!(has(self.sha256) && has(self.pollInterval))",
    message: "pollInterval has no effect when sha256 pins the content: remove one of them",
};

/// On `spec.timeout`.
pub const TIMEOUT_POSITIVE: Rule = Rule {
    id: "TimeoutPositive",
    rule: "duration(self) > duration('0s')",
    message: "timeout must be longer than 0s",
};

/// On `spec`: with an inline Dockerfile there is no context to find a Dockerfile path in.
pub const INLINE_WITHOUT_DOCKERFILE_PATH: Rule = Rule {
    id: "InlineWithoutDockerfilePath",
    rule: "!has(self.source.inline) || !has(self.dockerfile)",
    message: "dockerfile names a file in the build context; with source.inline there is none, so leave dockerfile unset",
};

/// On `spec.output`: the Docker v2 schema 2 manifest has no zstd layer media type.
pub const DOCKER_FORMAT_GZIP: Rule = Rule {
    id: "DockerFormatGzip",
    rule: "!(has(self.format) && self.format == 'docker' && has(self.compression) && self.compression == 'zstd')",
    message: "format docker supports gzip layers only: use format oci for zstd",
};

/// On `spec.cache`.
pub const CACHE_DISABLED_WITHOUT_REPOSITORY: Rule = Rule {
    id: "CacheDisabledWithoutRepository",
    rule: "!(has(self.disabled) && self.disabled && has(self.repository))",
    message: "cache.disabled and cache.repository contradict each other: remove one of them",
};

/// On `spec.labels` and `spec.annotations`.
pub const MAP_KEYS: Rule = Rule {
    id: "MapKeys",
    rule: "self.all(k, size(k) > 0 && size(k) <= 256)",
    message: "keys must be 1 to 256 characters long",
};

/// On `status`: a writer holding an older view of the object must not move the status back to an
/// older generation (two operator replicas, a stale cache; threats §4.1 F4, F10).
pub const OBSERVED_GENERATION_MONOTONIC: Rule = Rule {
    id: "ObservedGenerationMonotonic",
    rule: "!has(oldSelf.observedGeneration) || (has(self.observedGeneration) && self.observedGeneration >= oldSelf.observedGeneration)",
    message: "status.observedGeneration may not decrease: the status was computed from an older version of the ImageBuild",
};

/// Every rule, for the schema cross-check.
pub const ALL: &[Rule] = &[
    NAME_LENGTH,
    EXACTLY_ONE_SOURCE,
    GIT_REVISION_FORMAT,
    CONTEXT_DIR_CONTAINED,
    POLL_INTERVAL_MIN,
    POLL_NOT_PINNED,
    TIMEOUT_POSITIVE,
    INLINE_WITHOUT_DOCKERFILE_PATH,
    DOCKER_FORMAT_GZIP,
    CACHE_DISABLED_WITHOUT_REPOSITORY,
    MAP_KEYS,
    OBSERVED_GENERATION_MONOTONIC,
];
