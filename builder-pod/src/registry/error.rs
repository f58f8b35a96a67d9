//! Registry errors: what failed, against which URL or repository, and whether trying again can
//! help. No variant carries a credential or token (the request line is method + URL, and
//! registry URLs carry no secrets).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::credentials::CredentialsError;
use super::retry::is_retryable_status;
use crate::image::{ConfigError, Digest, ManifestError, MediaType, NoMatchingPlatform, Platform};

/// One entry of a distribution-spec error body (`{"errors":[{"code","message","detail"}]}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub detail: Option<serde_json::Value>,
}

/// The errors of a response body, for messages (`MANIFEST_UNKNOWN: manifest unknown`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiErrors(pub Vec<ApiError>);

impl ApiErrors {
    pub fn parse(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<ApiError>,
        }
        Self(
            serde_json::from_slice::<Body>(body)
                .map(|b| b.errors)
                .unwrap_or_default(),
        )
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.0.iter().any(|e| e.code == code)
    }

    /// Digests named in `detail` of entries with `code` (distribution puts the digest of an
    /// unknown blob there, as a string or as `{"digest": …}`).
    pub fn digests_for(&self, code: &str) -> Vec<Digest> {
        let mut out: Vec<Digest> = Vec::new();
        for e in self.0.iter().filter(|e| e.code == code) {
            let text = match &e.detail {
                Some(serde_json::Value::String(s)) => Some(s.as_str()),
                Some(serde_json::Value::Object(o)) => o.get("digest").and_then(|d| d.as_str()),
                _ => None,
            };
            if let Some(d) = text
                .and_then(|t| t.parse::<Digest>().ok())
                .filter(|d| !out.contains(d))
            {
                out.push(d);
            }
        }
        out
    }
}

impl fmt::Display for ApiErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no error details");
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// Everything the registry client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{request}: {source}")]
    Transport {
        request: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{request}: HTTP {status} ({errors})")]
    Status {
        request: String,
        status: u16,
        errors: ApiErrors,
        retry_after: Option<Duration>,
    },
    #[error(
        "{request}: the redirect target {target} answered HTTP {status}; asking the registry again for a fresh URL"
    )]
    RedirectTarget {
        request: String,
        target: String,
        status: u16,
    },
    #[error(
        "{request}: upload session lost (HTTP {status}: {errors}); a new session will be started"
    )]
    UploadSessionLost {
        request: String,
        status: u16,
        errors: ApiErrors,
    },
    #[error("{request}: not found ({errors})")]
    NotFound { request: String, errors: ApiErrors },
    #[error(
        "authentication to {registry} failed for {scope}: {detail}; check the credentials for {registry} in the docker config"
    )]
    Unauthorized {
        registry: String,
        scope: String,
        detail: String,
    },
    #[error(
        "{request}: access denied ({errors}); the credentials lack permission for this repository"
    )]
    Denied { request: String, errors: ApiErrors },
    #[error("{operation}: gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        operation: String,
        attempts: u32,
        last: Box<RegistryError>,
    },
    #[error("{what}: content digest is {actual}, expected {expected}; the bytes were discarded")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: the registry reports digest {registry}, but the bytes pushed hash to {local}")]
    RegistryDigestMismatch {
        what: String,
        local: Digest,
        registry: String,
    },
    #[error("{what}: descriptor size is {expected} bytes but {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: String,
    },
    #[error("{what}: {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("{what}: {source}")]
    Manifest {
        what: String,
        #[source]
        source: ManifestError,
    },
    #[error("{what}: {source}")]
    Config {
        what: String,
        #[source]
        source: ConfigError,
    },
    #[error("{reference}: {source}")]
    NoMatchingPlatform {
        reference: String,
        #[source]
        source: NoMatchingPlatform,
    },
    #[error("{reference}: the image is for {found}, not {wanted}")]
    PlatformMismatch {
        reference: String,
        wanted: Box<Platform>,
        found: Box<Platform>,
    },
    #[error("{what}: media type {media_type} is not a container image {expected}")]
    NotAnImage {
        what: String,
        media_type: MediaType,
        expected: &'static str,
    },
    #[error(
        "{reference}: the manifest lists {layers} layers but the config has {diff_ids} rootfs.diff_ids"
    )]
    LayerCountMismatch {
        reference: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("pushing the manifest to {repository} failed: the registry does not have blobs {}", list(.blobs))]
    ManifestBlobUnknown {
        repository: String,
        blobs: Vec<Digest>,
    },
    #[error("{request}: protocol error: {detail}")]
    Protocol { request: String, detail: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

fn list(digests: &[Digest]) -> String {
    digests
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl RegistryError {
    /// `Some(retry_after)` if repeating the whole operation may succeed (the server's
    /// `Retry-After` wish inside, if it sent one); `None` if the failure is permanent.
    pub fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            Self::Transport { source, .. } => {
                (!source.is_builder() && !source.is_redirect()).then_some(None)
            }
            Self::Status {
                status,
                retry_after,
                ..
            } => is_retryable_status(*status).then_some(*retry_after),
            Self::RedirectTarget { .. } | Self::UploadSessionLost { .. } => Some(None),
            _ => None,
        }
    }

    /// A stable category for metrics and `ImageBuild` status reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } | Self::Denied { .. } | Self::Credentials(_) => {
                "RegistryAuthFailed"
            }
            Self::NotFound { .. } => "ImageNotFound",
            Self::NoMatchingPlatform { .. } | Self::PlatformMismatch { .. } => "PlatformNotFound",
            Self::DigestMismatch { .. }
            | Self::RegistryDigestMismatch { .. }
            | Self::SizeMismatch { .. }
            | Self::TooLarge { .. }
            | Self::Manifest { .. }
            | Self::Config { .. }
            | Self::NotAnImage { .. }
            | Self::LayerCountMismatch { .. } => "ImageInvalid",
            Self::RetriesExhausted { last, .. } => last.reason(),
            Self::Io { .. } => "LocalIOError",
            _ => "RegistryError",
        }
    }

    /// The error after unwrapping [`RegistryError::RetriesExhausted`].
    pub fn root(&self) -> &RegistryError {
        match self {
            Self::RetriesExhausted { last, .. } => last.root(),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_parse_and_name_unknown_blobs() {
        let body = br#"{"errors":[
            {"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},
            {"code":"MANIFEST_BLOB_UNKNOWN","message":"x","detail":{"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}},
            {"code":"MANIFEST_BLOB_UNKNOWN","message":"x","detail":"sha256:../../etc"}]}"#;
        let errors = ApiErrors::parse(body);
        assert!(errors.has_code("MANIFEST_BLOB_UNKNOWN"));
        assert_eq!(
            errors.digests_for("MANIFEST_BLOB_UNKNOWN").len(),
            2,
            "invalid digests are dropped"
        );
        assert!(
            errors
                .to_string()
                .starts_with("MANIFEST_BLOB_UNKNOWN: blob unknown to registry")
        );
        assert_eq!(ApiErrors::parse(b"<html>").0, vec![]);
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let status = |status, retry_after| RegistryError::Status {
            request: "GET x".into(),
            status,
            errors: ApiErrors::default(),
            retry_after,
        };
        assert_eq!(status(503, None).retry_hint(), Some(None));
        assert_eq!(
            status(429, Some(Duration::from_secs(2))).retry_hint(),
            Some(Some(Duration::from_secs(2)))
        );
        assert_eq!(status(400, None).retry_hint(), None);
        assert_eq!(status(403, None).retry_hint(), None);
        let not_found = RegistryError::NotFound {
            request: "GET x".into(),
            errors: ApiErrors::default(),
        };
        assert_eq!(not_found.retry_hint(), None);
        assert_eq!(not_found.reason(), "ImageNotFound");
    }
}
