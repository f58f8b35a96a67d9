//! Errors of the Dockerfile front end.
//!
//! Every error says which file and line it is about (BuildKit attaches a location to every parse
//! and dispatch error, see `parser.WithLocation`), the column where we know it, the offending text
//! and, where one exists, a hint. `Display` is the user-facing one-liner
//! `Dockerfile:7: unknown instruction: CPY (did you mean COPY?)`.

use std::fmt;

use serde::Serialize;

/// What went wrong, without the location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    // --- resource limits (threats-and-faults §2.8 #47) -----------------------------------------
    #[error("the Dockerfile is {size} bytes, more than the limit of {limit} bytes")]
    FileTooLarge { size: usize, limit: usize },
    #[error("line is {size} bytes long, more than the limit of {limit} bytes")]
    LineTooLong { size: usize, limit: usize },
    #[error("more than {limit} instructions")]
    TooManyInstructions { limit: usize },
    #[error("more than {limit} build stages")]
    TooManyStages { limit: usize },
    #[error("heredoc {name} is larger than the limit of {limit} bytes")]
    HeredocTooLarge { name: String, limit: usize },
    #[error("expanding {word:?} produced more than {limit} bytes")]
    ExpansionTooLarge { word: String, limit: usize },

    // --- lexing -----------------------------------------------------------------------------------
    #[error("the Dockerfile cannot be empty")]
    EmptyFile,
    #[error("file with no instructions")]
    NoInstructions,
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscapeToken(String),
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("failed to parse check options: {0}")]
    InvalidCheckDirective(String),
    #[error("unterminated heredoc {0}")]
    UnterminatedHeredoc(String),
    #[error("the Dockerfile is not valid UTF-8 (first invalid byte at offset {offset})")]
    InvalidUtf8 { offset: usize },

    // --- instruction syntax ----------------------------------------------------------------------
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    #[error("unknown flag: {0}")]
    UnknownFlag(String),
    #[error("Arg {0:?} must start with --")]
    FlagWithoutDashes(String),
    #[error("Duplicate flag specified: {0}")]
    DuplicateFlag(String),
    #[error("missing a value on flag: {0}")]
    MissingFlagValue(String),
    #[error("expecting boolean value for flag {flag}, not: {value}")]
    InvalidBoolFlag { flag: String, value: String },
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(&'static str),
    #[error("{0} requires exactly one argument")]
    ExactlyOneArgument(&'static str),
    #[error(
        "{0} requires at least two arguments, but only one was provided. Destination could not be determined"
    )]
    NoDestination(&'static str),
    #[error("{0} must have two arguments")]
    TwoArguments(&'static str),
    #[error("{0} names can not be blank")]
    BlankName(&'static str),
    #[error("Syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    MissingEquals(String),
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStrings,
    #[error("{0} requires the arguments to be in JSON form")]
    NotJson(&'static str),
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    #[error(
        "invalid name for build stage: {0:?}, name can't start with a number or contain symbols"
    )]
    InvalidStageName(String),
    #[error("dockerfile contains no stages to build")]
    NoStages,
    #[error("no build stage in current context")]
    NoBuildStage,
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChained,
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(String),
    #[error("{command} cannot accept a heredoc as {what}")]
    BadHeredoc {
        command: &'static str,
        what: &'static str,
    },
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments,
    #[error("HEALTHCHECK NONE takes no options, but {0} was given")]
    HealthcheckNoneFlags(String),
    #[error("Unknown type {0:?} in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    #[error("Missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand,
    #[error("invalid duration {value:?} for --{flag}: {reason}")]
    InvalidDuration {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("Interval \"{0}\" cannot be less than 1ms")]
    DurationTooShort(&'static str),
    #[error("invalid value {0:?} for --retries: expected a whole number")]
    InvalidRetries(String),
    #[error("--retries cannot be negative ({0})")]
    NegativeRetries(i64),
    #[error("unsupported network mode {0:?}")]
    InvalidNetwork(String),
    #[error("unsupported security mode {0:?}")]
    InvalidSecurity(String),
    #[error("invalid mount {mount:?}: {reason}")]
    InvalidMount { mount: String, reason: String },
    #[error(
        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    )]
    FromFlagExpansion,
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,

    // --- planning: expansion, arguments and stages ------------------------------------------------
    #[error("{0}")]
    Expansion(String),
    #[error("base name ({0}) should not be blank")]
    BlankBaseName(String),
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("empty platform value from expression {0}")]
    EmptyPlatform(String),
    #[error("failed to parse platform {value}: {reason}")]
    InvalidPlatform { value: String, reason: String },
    #[error("target stage {0:?} could not be found")]
    TargetNotFound(String),
    #[error("invalid stage index {0}")]
    InvalidStageIndex(i64),
    #[error("circular dependency detected on stage: {0}")]
    CircularDependency(String),
    #[error(
        "cannot copy from stage {from:?}, it needs to be defined before current stage {stage:?}"
    )]
    ForwardStageReference { from: String, stage: String },
    #[error(
        "invalid chmod parameter: '{0}'. it should be octal string and between 0 and 07777, or a symbolic mode such as u+x"
    )]
    InvalidChmod(String),
    #[error("invalid checksum digest {value:?}: {reason}")]
    InvalidChecksum { value: String, reason: String },
    #[error("checksum can't be specified for {0}")]
    ChecksumSources(&'static str),
    #[error("invalid port spec {value:?}: {reason}")]
    InvalidPort { value: String, reason: String },
    #[error("{0} specified can not be an empty string after expansion")]
    EmptyAfterExpansion(&'static str),
    #[error("lint check {rule} failed: {message}")]
    LintError { rule: String, message: String },
}

/// A front-end error with its location in the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DockerfileError {
    /// The Dockerfile's name as the user knows it (`Dockerfile`, `build/Containerfile`).
    pub file: String,
    /// 1-based line of the instruction (or physical line) at fault; `None` for whole-build
    /// problems such as an unknown `--target`.
    pub line: Option<usize>,
    /// 1-based character column within `line`, where known.
    pub column: Option<usize>,
    /// The offending text (an instruction, a flag, a word), where one exists.
    pub text: Option<String>,
    /// What to do about it, where we can say.
    pub hint: Option<String>,
    /// Boxed so `Result<_, DockerfileError>` stays small on the happy path.
    #[source]
    pub kind: Box<ErrorKind>,
}

impl DockerfileError {
    pub(crate) fn new(file: &str, kind: ErrorKind) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            column: None,
            text: None,
            hint: None,
            kind: Box::new(kind),
        }
    }

    pub(crate) fn at(mut self, line: usize, column: Option<usize>) -> Self {
        self.line = Some(line);
        self.column = column;
        self
    }

    pub(crate) fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for DockerfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.kind)?,
            None => write!(f, "{}: {}", self.file, self.kind)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// The error as the golden files and `--progress=json` show it.
#[derive(Debug, Serialize)]
pub struct ErrorReport<'a> {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
}

impl DockerfileError {
    /// A serializable view of this error.
    pub fn report(&self) -> ErrorReport<'_> {
        ErrorReport {
            error: self.to_string(),
            line: self.line,
            column: self.column,
            text: self.text.as_deref(),
        }
    }
}
