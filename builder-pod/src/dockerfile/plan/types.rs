//! What [`plan`](super::plan) produces: the stages to build, in order, with every instruction
//! expanded. Serialises deterministically (no maps with random order).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dockerfile::ast::{CommandLine, Healthcheck, Instruction, Network, Security};
use crate::dockerfile::mount::Mount;
use crate::dockerfile::platform::Platform;
use crate::dockerfile::warning::Warning;
use crate::image::Digest;

/// The build plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub file: String,
    /// `# syntax=` as written, if present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syntax: Option<String>,
    /// The platform being built for (`TARGETPLATFORM`).
    pub platform: Platform,
    /// Index of the stage whose result is the image.
    pub target: usize,
    /// The stages to build, dependencies first. Stages the target does not need are absent.
    pub stages: Vec<PlannedStage>,
    /// Proxy build arguments (`HTTP_PROXY`, …) that no ARG declares: given to every RUN's
    /// environment but never recorded in image history or the cache key (as BuildKit).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_env: BTreeMap<String, String>,
    pub warnings: Vec<Warning>,
}

/// One stage to build.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStage {
    /// Position in the Dockerfile, counting from 0 (what `COPY --from=<n>` refers to).
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub base: Base,
    /// `FROM --platform=…`, expanded and normalised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Stages this one needs built first (its base stage, `COPY --from`, `RUN --mount from`).
    pub dependencies: Vec<usize>,
    /// The FROM line.
    pub line: usize,
    pub original: String,
    pub instructions: Vec<PlannedInstruction>,
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Base {
    Scratch,
    /// An earlier stage.
    Stage {
        index: usize,
    },
    Image {
        /// As written, after expansion.
        reference: String,
        /// Fully qualified (`docker.io/library/alpine:3.19`).
        normalized: String,
    },
}

/// One instruction after expansion.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedInstruction {
    pub line: usize,
    pub end_line: usize,
    /// The instruction as written (continuations folded).
    pub original: String,
    /// Set when this instruction is an ONBUILD trigger inherited from the base: the
    /// trigger text; `line` is then the FROM line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    #[serde(flatten)]
    pub step: Step,
}

/// A key and its expanded value (ENV, LABEL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pair {
    pub key: String,
    pub value: String,
}

/// An ARG after scoping: `value` is `None` when declared without a value anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgValue {
    pub name: String,
    pub value: Option<String>,
}

/// A COPY/ADD source after expansion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannedSource {
    /// A path or URL; wildcards are kept as patterns for the executor to match.
    Path(String),
    /// An inline file: `content` is the body after `<<-` tab stripping and, for an unquoted
    /// delimiter, variable expansion.
    Heredoc { name: String, content: String },
}

/// Where COPY --from reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CopyFrom {
    Stage {
        index: usize,
    },
    Image {
        reference: String,
        normalized: String,
    },
}

/// `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Chmod {
    Octal(u32),
    Symbolic(String),
}

/// An expanded instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Step {
    Arg {
        args: Vec<ArgValue>,
    },
    Run {
        command: CommandLine,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        heredocs: Vec<crate::dockerfile::heredoc::Heredoc>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        mounts: Vec<Mount>,
        #[serde(skip_serializing_if = "Option::is_none")]
        network: Option<Network>,
        #[serde(skip_serializing_if = "Option::is_none")]
        security: Option<Security>,
        /// Build arguments in scope, `KEY=value`, as BuildKit records them in history
        /// (`|2 A=1 B=2 /bin/sh -c …`) and as the cache key must include them.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        build_args: Vec<Pair>,
    },
    Cmd {
        command: CommandLine,
    },
    Entrypoint {
        command: CommandLine,
    },
    Shell {
        shell: Vec<String>,
    },
    Env {
        pairs: Vec<Pair>,
    },
    Label {
        pairs: Vec<Pair>,
    },
    Maintainer {
        name: String,
    },
    Expose {
        /// `port/proto`, sorted as the image config's map keys are.
        ports: Vec<String>,
    },
    Add {
        sources: Vec<PlannedSource>,
        dest: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        chown: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        chmod: Option<Chmod>,
        #[serde(skip_serializing_if = "Option::is_none")]
        checksum: Option<Digest>,
        link: bool,
        keep_git_dir: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        unpack: Option<bool>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        exclude: Vec<String>,
    },
    Copy {
        sources: Vec<PlannedSource>,
        dest: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<CopyFrom>,
        #[serde(skip_serializing_if = "Option::is_none")]
        chown: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        chmod: Option<Chmod>,
        link: bool,
        parents: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        exclude: Vec<String>,
    },
    Volume {
        paths: Vec<String>,
    },
    User {
        user: String,
    },
    Workdir {
        path: String,
    },
    /// Registered in the image config; expanded only when a build uses this image.
    Onbuild {
        expression: String,
        trigger: Box<Instruction>,
    },
    Stopsignal {
        signal: String,
    },
    Healthcheck(Healthcheck),
}
