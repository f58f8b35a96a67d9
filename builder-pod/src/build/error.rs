//! Build failures. Each says what failed and where: the Dockerfile line for step failures, the
//! image reference for pulls, the path for store and filesystem trouble.

use std::path::PathBuf;

use crate::dockerfile::DockerfileError;
use crate::registry::RegistryError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),

    /// A RUN exited non-zero, in Docker's words.
    #[error("{file}:{line}: The command '{command}' returned a non-zero code: {code}")]
    StepFailed {
        file: String,
        line: usize,
        command: String,
        code: i32,
    },

    #[error("{file}:{line}: The command '{command}' was killed by signal {signal}")]
    StepKilled {
        file: String,
        line: usize,
        command: String,
        signal: i32,
    },

    /// Any other failure of one instruction (a missing COPY source, a bad --chown user, …).
    #[error("{file}:{line}: {instruction}: {message}")]
    Step {
        file: String,
        line: usize,
        instruction: String,
        message: String,
    },

    #[error("pulling {reference}: {source}")]
    Pull {
        reference: String,
        #[source]
        source: RegistryError,
    },

    #[error("unpacking layer {digest} of {reference}: {message}")]
    Unpack {
        reference: String,
        digest: String,
        message: String,
    },

    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the build was cancelled")]
    Cancelled,

    /// SIGTERM or SIGINT stopped a running `RUN` (in a pod: its deadline, or its deletion), so
    /// the failure can name the step.
    #[error("{file}:{line}: the build was cancelled during RUN {command}")]
    CancelledStep {
        file: String,
        line: usize,
        command: String,
    },

    #[error("{0}")]
    Other(String),
}

impl BuildError {
    /// A short, stable category for metrics, status reasons and exit codes.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Dockerfile(_) => "DockerfileInvalid",
            Self::StepFailed { .. } | Self::StepKilled { .. } | Self::Step { .. } => "StepFailed",
            Self::Pull { .. } | Self::Unpack { .. } => "BaseImageFailed",
            Self::Store(_) | Self::Io { .. } | Self::Other(_) => "InternalError",
            Self::Cancelled | Self::CancelledStep { .. } => "Cancelled",
        }
    }

    /// The Dockerfile line the failure belongs to, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::StepFailed { line, .. }
            | Self::StepKilled { line, .. }
            | Self::Step { line, .. }
            | Self::CancelledStep { line, .. } => Some(*line),
            Self::Dockerfile(e) => e.line,
            _ => None,
        }
    }

    /// The exit code of a failed RUN.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Self::StepFailed { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_owned(),
        source,
    }
}
