//! The typed, unexpanded Dockerfile: what [`parse`](super::parse) returns.
//!
//! Words are kept exactly as written (quotes, escapes and `$VAR` intact) because what they
//! expand to depends on build arguments and on the stage's environment, which only the planner
//! knows. JSON-form arguments are already decoded.

use serde::Serialize;

use super::heredoc::Heredoc;
use super::lexer::{Directive, Locator};
use super::mount::MountSpec;
use super::warning::Warning;
use super::words::Word;

/// A parsed Dockerfile.
#[derive(Debug, Clone, Serialize)]
pub struct Dockerfile {
    pub file_name: String,
    /// The escape character (`\` or, with `# escape=\``, a backtick).
    pub escape: char,
    /// `# syntax=` — recorded; Stratum always uses its own front end.
    pub syntax: Option<Directive>,
    /// `# check=` — lint configuration (`skip=…;error=true`).
    pub check: Option<Directive>,
    /// `ARG` instructions before the first `FROM` (the global scope).
    pub meta_args: Vec<Node>,
    pub stages: Vec<Stage>,
    /// Problems found while reading that do not stop the build (empty continuation lines).
    pub warnings: Vec<Warning>,
}

/// A build stage: its `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub from: Node,
    pub instructions: Vec<Node>,
}

impl Stage {
    /// The `FROM` of this stage.
    pub fn from_instruction(&self) -> &From {
        match &self.from.instruction {
            Instruction::From(f) => f,
            // `parse` only ever starts a stage with a FROM node.
            _ => unreachable!("a stage always starts with FROM"),
        }
    }
}

/// One instruction with its place in the file.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// First line of the instruction (1-based).
    pub start_line: usize,
    /// Last line, including continuation lines and heredoc bodies.
    pub end_line: usize,
    /// The instruction as one line, continuations folded (BuildKit's `Original`).
    pub original: String,
    pub instruction: Instruction,
    #[serde(skip)]
    pub(crate) locator: Locator,
}

impl Node {
    /// The physical line and column of byte `offset` of [`Node::original`].
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        self.locator.locate(&self.original, offset)
    }
}

/// Every Dockerfile instruction, typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Instruction {
    From(From),
    Arg { args: Vec<ArgDecl> },
    Run(Run),
    Cmd { command: CommandLine },
    Entrypoint { command: CommandLine },
    Shell { shell: Vec<String> },
    Env { pairs: Vec<KeyValue> },
    Label { pairs: Vec<KeyValue> },
    Maintainer { name: Word },
    Expose { ports: Vec<Word> },
    Add(Add),
    Copy(Copy),
    Volume { paths: Vec<Word> },
    User { user: Word },
    Workdir { path: Word },
    Onbuild(Onbuild),
    Stopsignal { signal: Word },
    Healthcheck(Healthcheck),
}

impl Instruction {
    /// The instruction keyword in upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Self::From(_) => "FROM",
            Self::Arg { .. } => "ARG",
            Self::Run(_) => "RUN",
            Self::Cmd { .. } => "CMD",
            Self::Entrypoint { .. } => "ENTRYPOINT",
            Self::Shell { .. } => "SHELL",
            Self::Env { .. } => "ENV",
            Self::Label { .. } => "LABEL",
            Self::Maintainer { .. } => "MAINTAINER",
            Self::Expose { .. } => "EXPOSE",
            Self::Add(_) => "ADD",
            Self::Copy(_) => "COPY",
            Self::Volume { .. } => "VOLUME",
            Self::User { .. } => "USER",
            Self::Workdir { .. } => "WORKDIR",
            Self::Onbuild(_) => "ONBUILD",
            Self::Stopsignal { .. } => "STOPSIGNAL",
            Self::Healthcheck(_) => "HEALTHCHECK",
        }
    }
}

/// `FROM [--platform=<p>] <image|stage|scratch> [AS <name>]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct From {
    pub image: Word,
    /// The stage name, lower-cased as BuildKit stores it.
    pub name: Option<String>,
    pub platform: Option<Word>,
}

/// One `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    pub name: Word,
    pub default: Option<Word>,
}

/// One ENV or LABEL pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: Word,
    pub value: Word,
    /// Written in the legacy `KEY value` form.
    pub legacy: bool,
}

/// The command of RUN, CMD, ENTRYPOINT and HEALTHCHECK CMD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandLine {
    /// JSON exec form: run as is, no shell.
    Exec(Vec<String>),
    /// Shell form: the text is handed to the stage's SHELL; the builder does not expand it.
    Shell(String),
}

/// `RUN [--mount=…] [--network=…] [--security=…] <command>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub command: CommandLine,
    pub heredocs: Vec<Heredoc>,
    pub mounts: Vec<MountSpec>,
    pub network: Option<Network>,
    pub security: Option<Security>,
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Default,
    None,
    Host,
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    Sandbox,
    Insecure,
}

/// A COPY/ADD source: a path or URL pattern, or an inline heredoc file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Path(Word),
    Heredoc(Heredoc),
}

/// `ADD [flags] <src>... <dest>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Add {
    pub sources: Vec<Source>,
    pub dest: Word,
    pub chown: Option<Word>,
    pub chmod: Option<Word>,
    pub checksum: Option<Word>,
    pub link: bool,
    pub keep_git_dir: bool,
    /// `--unpack`, only when given (unset means "unpack local archives", ADD's default).
    pub unpack: Option<bool>,
    pub exclude: Vec<Word>,
}

/// `COPY [flags] <src>... <dest>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    pub sources: Vec<Source>,
    pub dest: Word,
    pub from: Option<Word>,
    pub chown: Option<Word>,
    pub chmod: Option<Word>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<Word>,
}

/// `ONBUILD <instruction>`: the trigger is parsed now and expanded when a build uses this image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Onbuild {
    pub trigger: Box<Instruction>,
    /// The trigger as stored in the image config (`OnBuild`), heredoc bodies appended as
    /// BuildKit does.
    pub expression: String,
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD <command>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum Healthcheck {
    None,
    Cmd {
        command: CommandLine,
        /// Durations in nanoseconds, as the image config stores them; `None` = not given.
        interval_ns: Option<u64>,
        timeout_ns: Option<u64>,
        start_period_ns: Option<u64>,
        start_interval_ns: Option<u64>,
        retries: Option<u32>,
    },
}
