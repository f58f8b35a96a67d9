//! The HTTP client: configuration, URLs, and `send`, which attaches credentials and answers
//! authentication challenges. Retrying is the caller's business ([`super::retry::run`] around a
//! whole idempotent operation, or the upload state machine in `push.rs`), so that a retry always
//! starts from a consistent point.

use std::collections::BTreeSet;
use std::fmt;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, RETRY_AFTER};
use reqwest::{Method, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use url::Url;

use super::auth::{Authenticator, Scope};
use super::credentials::Credentials;
use super::error::{ApiErrors, RegistryError};
use super::retry::{RetryPolicy, is_retryable_status, parse_retry_after};
use crate::image::{Digest, ManifestRef, Repository};

/// Client settings. `Default` is what the builder uses in production.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Registries (name or host:port, as in references) spoken to over plain HTTP.
    pub insecure_registries: BTreeSet<String>,
    pub retry: RetryPolicy,
    /// Blobs larger than this are uploaded in PATCH chunks of this size, so that a failure
    /// resumes at the registry's committed offset instead of starting over; smaller blobs go in
    /// one PUT. `0` means always one PUT.
    pub chunk_size: u64,
    pub connect_timeout: Duration,
    /// Longest silence while reading a response before the connection is considered dead.
    pub read_timeout: Duration,
    /// distribution refuses manifests over 4 MiB; so do we.
    pub max_manifest_bytes: u64,
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            insecure_registries: BTreeSet::new(),
            retry: RetryPolicy::default(),
            chunk_size: 64 << 20,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            max_manifest_bytes: 4 << 20,
            user_agent: concat!("stratum/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// A distribution-spec client. Cheap to clone; clones share connections and tokens.
#[derive(Clone)]
pub struct RegistryClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) config: ClientConfig,
    credentials: Credentials,
    auth: Authenticator,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials print redacted; tokens are not printed at all.
        f.debug_struct("RegistryClient")
            .field("config", &self.inner.config)
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

/// A request body that can be produced again for every attempt (R1: a retry over a one-shot
/// stream cannot work, containerd #5276).
#[derive(Debug, Clone)]
pub(crate) enum CallBody {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of a file from `offset`.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

/// One request to a registry.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: CallBody,
    pub repo: &'a Repository,
    pub scope: &'a Scope,
}

impl Call<'_> {
    /// The request line for messages; the query is left out (upload URLs carry state, and some
    /// registries hand out presigned storage URLs).
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.method, redact_query(&self.url))
    }
}

impl RegistryClient {
    pub fn new(config: ClientConfig, credentials: Credentials) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            // Blob GETs may be redirected to storage (S3, a CDN); reqwest drops Authorization
            // on a cross-host redirect.
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(RegistryError::Client)?;
        let auth = Authenticator::new(http.clone(), config.retry.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                credentials,
                auth,
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }
}

impl Inner {
    fn base_url(&self, repo: &Repository) -> String {
        let insecure = &self.config.insecure_registries;
        let scheme = if insecure.contains(repo.registry()) || insecure.contains(repo.api_host()) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/{}", repo.api_host(), repo.path())
    }

    fn parse_url(&self, text: String) -> Result<Url, RegistryError> {
        Url::parse(&text).map_err(|e| RegistryError::Protocol {
            request: text,
            detail: format!("invalid URL: {e}"),
        })
    }

    pub(crate) fn manifest_url(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Url, RegistryError> {
        self.parse_url(format!("{}/manifests/{reference}", self.base_url(repo)))
    }

    pub(crate) fn blob_url(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Url, RegistryError> {
        self.parse_url(format!("{}/blobs/{digest}", self.base_url(repo)))
    }

    pub(crate) fn uploads_url(&self, repo: &Repository) -> Result<Url, RegistryError> {
        self.parse_url(format!("{}/blobs/uploads/", self.base_url(repo)))
    }

    /// Sends `call` once, with credentials for its repository's registry. A 401 is answered by
    /// re-authenticating and sending once more (R3). Returns `Err` for transport failures, for
    /// retryable statuses (408/429/5xx, carrying `Retry-After`) and for a failed redirect target
    /// (R7); every other status is the caller's to interpret.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Response, RegistryError> {
        let credential = self.credentials.for_registry(call.repo.registry())?;
        let host = call.repo.api_host();
        // Credentials go only to the registry itself, never to an upload URL on another host.
        let to_registry = same_authority(&call.url, host);
        let mut reauthenticated = false;
        loop {
            let mut request = self
                .http
                .request(call.method.clone(), call.url.clone())
                .headers(call.headers.clone());
            let sent = match to_registry {
                true => self.auth.header(host, call.scope, &credential).await?,
                false => None,
            };
            if let Some(value) = &sent {
                request = request.header(AUTHORIZATION, value.clone());
            }
            request = match &call.body {
                // An empty POST/PUT/PATCH must say so (distribution wants a length on uploads);
                // a GET or HEAD carries no body headers at all.
                CallBody::Empty if matches!(call.method, Method::GET | Method::HEAD) => request,
                CallBody::Empty => request.header(CONTENT_LENGTH, 0),
                CallBody::Bytes(bytes) => request.body(bytes.clone()),
                CallBody::File { path, offset, len } => request
                    .header(CONTENT_LENGTH, *len)
                    .body(file_body(path, *offset, *len).await?),
            };
            let response = request
                .send()
                .await
                .map_err(|source| RegistryError::Transport {
                    request: call.describe(),
                    source: source.without_url(),
                })?;
            let status = response.status().as_u16();
            tracing::debug!(request = %call.describe(), status, "registry response");
            if status >= 400 && response.url() != &call.url {
                return Err(RegistryError::RedirectTarget {
                    request: call.describe(),
                    target: redact_query(response.url()),
                    status,
                });
            }
            if status == 401 && to_registry {
                if reauthenticated {
                    let errors = ApiErrors::parse(&read_error_body(response).await);
                    return Err(RegistryError::Unauthorized {
                        registry: host.to_owned(),
                        scope: format!("{:?}", call.scope),
                        detail: format!(
                            "the registry still answers 401 after authenticating ({errors})"
                        ),
                    });
                }
                self.auth
                    .challenged(
                        host,
                        call.scope,
                        &credential,
                        sent.as_ref(),
                        response.headers(),
                    )
                    .await?;
                reauthenticated = true;
                continue;
            }
            if is_retryable_status(status) {
                return Err(status_error(call.describe(), response).await);
            }
            return Ok(response);
        }
    }
}

/// Whether `url` points at `host` (`host[:port]` as in a reference), default ports folded.
fn same_authority(url: &Url, host: &str) -> bool {
    match Url::parse(&format!("{}://{host}/", url.scheme())) {
        Ok(want) => {
            want.host() == url.host() && want.port_or_known_default() == url.port_or_known_default()
        }
        Err(_) => false,
    }
}

/// A URL without its query, for messages: presigned storage URLs carry signatures there.
pub(crate) fn redact_query(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

async fn file_body(
    path: &std::path::Path,
    offset: u64,
    len: u64,
) -> Result<reqwest::Body, RegistryError> {
    let io = |action, source| RegistryError::Io {
        action,
        path: path.display().to_string(),
        source,
    };
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| io("open", e))?;
    file.seek(SeekFrom::Start(offset))
        .await
        .map_err(|e| io("seek in", e))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 << 10);
    Ok(reqwest::Body::wrap_stream(stream))
}

/// The server's `Retry-After`, if it sent a valid one.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

/// Reads at most 64 KiB of an error body (enough for any distribution error document).
async fn read_error_body(mut response: Response) -> Bytes {
    let mut body = BytesMut::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 << 10 {
            break;
        }
    }
    body.freeze()
}

/// Turns an unexpected response into the matching error.
pub(crate) async fn status_error(request: String, response: Response) -> RegistryError {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let errors = ApiErrors::parse(&read_error_body(response).await);
    match status {
        404 => RegistryError::NotFound { request, errors },
        403 => RegistryError::Denied { request, errors },
        _ => RegistryError::Status {
            request,
            status,
            errors,
            retry_after,
        },
    }
}

/// Reads a whole body that must not exceed `limit` bytes.
pub(crate) async fn read_limited(
    mut response: Response,
    limit: u64,
    what: &str,
    request: &str,
) -> Result<Bytes, RegistryError> {
    let too_large = |size| RegistryError::TooLarge {
        what: what.to_owned(),
        size,
        limit,
    };
    if let Some(len) = response.content_length().filter(|len| *len > limit) {
        return Err(too_large(len));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| RegistryError::Transport {
            request: request.to_owned(),
            source: source.without_url(),
        })?
    {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > limit {
            return Err(too_large(body.len() as u64));
        }
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_only_to_the_registry_authority() {
        let url = |s: &str| Url::parse(s).unwrap();
        let table = [
            ("http://127.0.0.1:5000/v2/x", "127.0.0.1:5000", true),
            ("http://127.0.0.1:5001/v2/x", "127.0.0.1:5000", false),
            ("http://localhost:5000/v2/x", "127.0.0.1:5000", false),
            (
                "https://registry-1.docker.io/v2/x",
                "registry-1.docker.io",
                true,
            ),
            (
                "https://registry-1.docker.io:443/v2/x",
                "registry-1.docker.io:443",
                true,
            ),
            (
                "https://s3.amazonaws.com/bucket?sig=1",
                "registry-1.docker.io",
                false,
            ),
            ("http://[::1]:5000/v2/x", "[::1]:5000", true),
        ];
        for (u, host, expected) in table {
            assert_eq!(same_authority(&url(u), host), expected, "{u} vs {host}");
        }
    }

    #[test]
    fn urls_follow_the_distribution_layout() {
        let mut config = ClientConfig::default();
        config.insecure_registries.insert("localhost:5000".into());
        let client = RegistryClient::new(config, Credentials::anonymous()).unwrap();
        let local = Repository::parse("localhost:5000/a/b").unwrap();
        let hub = Repository::parse("busybox").unwrap();
        let digest = Digest::of(b"");
        let inner = &client.inner;
        assert_eq!(
            inner
                .manifest_url(&local, &ManifestRef::Tag("1".parse().unwrap()))
                .unwrap()
                .as_str(),
            "http://localhost:5000/v2/a/b/manifests/1"
        );
        assert_eq!(
            inner.blob_url(&hub, &digest).unwrap().as_str(),
            format!("https://registry-1.docker.io/v2/library/busybox/blobs/{digest}")
        );
        assert_eq!(
            inner.uploads_url(&local).unwrap().as_str(),
            "http://localhost:5000/v2/a/b/blobs/uploads/"
        );
    }

    #[test]
    fn redacted_urls_drop_presigned_queries() {
        let url = Url::parse("https://cdn.example/blob?X-Amz-Signature=secret&X-Amz-Expires=600")
            .unwrap();
        assert_eq!(redact_query(&url), "https://cdn.example/blob");
    }
}
