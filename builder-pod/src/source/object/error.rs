//! Why probing or fetching an object failed. Every message names the URL as [`super::redact`]
//! shows it (no userinfo, no presigned query) and never a credential.

use std::path::PathBuf;

use crate::layer::ApplyError;
use crate::source::SourceErrorKind;

/// A failed probe or fetch of an object source.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("the source URL {url} is not usable: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error(
        "cannot read the source credentials {key} in {dir}: {reason}; check the secret named by \
         the source's secretRef"
    )]
    Secret {
        dir: PathBuf,
        key: String,
        reason: String,
    },

    #[error(
        "cannot configure the object store for {url}: {detail}; check the credentials and \
         endpoint in the secret named by the source's secretRef"
    )]
    StoreConfig { url: String, detail: String },

    #[error("{url} does not exist ({detail}); check the bucket, key or path")]
    NotFound { url: String, detail: String },

    #[error(
        "{url} refused the credentials ({detail}); check the secret named by the source's \
         secretRef and that it grants read access"
    )]
    Auth { url: String, detail: String },

    #[error("{url} is unavailable ({detail}); the fetch is retried")]
    Unavailable { url: String, detail: String },

    #[error(
        "{url} redirected where Stratum does not follow ({detail}); point the source at the \
         final https URL"
    )]
    Redirect { url: String, detail: String },

    #[error("{url} answered HTTP {status}; check the URL")]
    HttpStatus { url: String, status: u16 },

    #[error(
        "{url} is larger than the {limit}-byte limit for a build context; publish a smaller \
         archive or raise the limit"
    )]
    TooLarge { url: String, limit: u64 },

    #[error(
        "the content of {url} has sha256 {actual}, not the pinned {expected}; nothing was \
         extracted. Update the pin if the object changed on purpose"
    )]
    Mismatch {
        url: String,
        expected: String,
        actual: String,
    },

    #[error("the sha256 pin {pin:?} is not 64 lowercase hex digits")]
    BadPin { pin: String },

    #[error("the archive fetched from {url} is refused: {source}")]
    Archive {
        url: String,
        #[source]
        source: ApplyError,
    },

    #[error("the {format} data fetched from {url} is refused: {reason}")]
    Corrupt {
        url: String,
        format: &'static str,
        reason: String,
    },

    #[error(
        "the file fetched from {url} is not an archive and its URL has no usable file name; \
         end the URL with the file's name"
    )]
    NoFileName { url: String },

    #[error("the {what} {path:?} is refused: {reason}")]
    NotContained {
        what: &'static str,
        path: String,
        reason: String,
    },

    #[error("the context directory {dest} must exist and be empty")]
    DestNotEmpty { dest: PathBuf },

    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ObjectError {
    /// The failure's category, which the builder and the operator map onto status reasons.
    pub fn kind(&self) -> SourceErrorKind {
        match self {
            Self::NotFound { .. } => SourceErrorKind::NotFound,
            Self::Auth { .. } | Self::Secret { .. } | Self::StoreConfig { .. } => {
                SourceErrorKind::Auth
            }
            // A local disk failure (full ephemeral storage) may pass on another attempt or node.
            Self::Unavailable { .. } | Self::Io { .. } => SourceErrorKind::Unavailable,
            Self::Mismatch { .. } => SourceErrorKind::Mismatch,
            Self::InvalidUrl { .. }
            | Self::HttpStatus { .. }
            | Self::Redirect { .. }
            | Self::TooLarge { .. }
            | Self::BadPin { .. }
            | Self::Archive { .. }
            | Self::Corrupt { .. }
            | Self::NoFileName { .. }
            | Self::NotContained { .. }
            | Self::DestNotEmpty { .. } => SourceErrorKind::Invalid,
        }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// The category of an HTTP status from a store, for a GET or HEAD of one object.
pub(crate) fn status_error(url: &str, status: u16) -> ObjectError {
    let url = url.to_owned();
    let detail = format!("HTTP {status}");
    match status {
        404 | 410 => ObjectError::NotFound { url, detail },
        401 | 403 => ObjectError::Auth { url, detail },
        408 | 429 | 500..=599 => ObjectError::Unavailable { url, detail },
        _ => ObjectError::HttpStatus { url, status },
    }
}
