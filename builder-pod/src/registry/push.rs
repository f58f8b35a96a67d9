//! Pushing blobs and manifests (distribution spec "Pushing blobs", "Pushing manifests").
//!
//! A blob push is a loop of attempts; each attempt is
//! 1. `HEAD` the blob — present means done (skip existing blobs; after a failed commit PUT this
//!    is also how we learn the commit landed, R4);
//! 2. open a session: with a cross-repository mount (`POST ?mount=&from=`) when the caller
//!    names a source repository on the same registry — `201` is a finished mount, `202` a refused
//!    mount that opened a normal session, any other refusal falls back to a plain `POST` (a 401
//!    on the mount must not fail the push, go-containerregistry #1609);
//! 3. upload: one `PUT ?digest=` with the whole file, or for large blobs `PATCH` chunks with
//!    `Content-Range` and a final `PUT`. After a failed `PATCH` the session's committed offset is
//!    read back (`GET` → `Range`) and the upload resumes there. Bytes are never resent from 0
//!    into a session that has committed some (ECR answers 416; R1);
//! 4. check `Docker-Content-Digest` on the `201` against our digest.
//!
//! A failed attempt (connection reset, 5xx, 429 with `Retry-After`, session lost or expired:
//! 404/416, R5) waits with the retry policy's backoff and starts again at 1 with a new session.
//! Request bodies are read from the file for every request, never from a one-shot stream.

use std::path::Path;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RANGE};
use reqwest::{Method, Response};
use url::Url;

use super::auth::Scope;
use super::client::{Call, CallBody, Inner, RegistryClient, status_error};
use super::pull::DOCKER_CONTENT_DIGEST;
use super::{BlobPushed, RegistryError, retry};
use crate::image::{Descriptor, Digest, Manifest, ManifestRef, MediaType, Repository};

/// An open upload session.
#[derive(Debug)]
struct Session {
    location: Url,
    /// `OCI-Chunk-Min-Length`: the registry's smallest acceptable PATCH.
    min_chunk: Option<u64>,
}

enum Opened {
    Mounted,
    Session(Session),
}

impl RegistryClient {
    /// Pushes the blob in `path` (which must hold exactly `blob.size` bytes hashing to
    /// `blob.digest`), mounting it from `mount_from` when that repository has it.
    pub async fn push_blob(
        &self,
        repo: &Repository,
        blob: &Descriptor,
        path: &Path,
        mount_from: Option<&Repository>,
    ) -> Result<BlobPushed, RegistryError> {
        let inner = &self.inner;
        let what = format!("push blob {repo}@{}", blob.digest);
        let local_len = tokio::fs::metadata(path)
            .await
            .map_err(|source| RegistryError::Io {
                action: "stat",
                path: path.display().to_string(),
                source,
            })?
            .len();
        if local_len != blob.size {
            return Err(RegistryError::SizeMismatch {
                what: format!("local file {} for {what}", path.display()),
                expected: blob.size,
                actual: format!("the file has {local_len}"),
            });
        }
        let mount_from =
            mount_from.filter(|from| from.registry() == repo.registry() && *from != repo);
        let policy = &inner.config.retry;
        let mut retry = 0;
        loop {
            match inner.push_blob_attempt(repo, blob, path, mount_from).await {
                // Present on a retry means an earlier attempt's commit landed (R4).
                Ok(BlobPushed::Existed) if retry > 0 => return Ok(BlobPushed::Uploaded),
                Ok(outcome) => return Ok(outcome),
                Err(err) => match err.retry_hint() {
                    Some(retry_after) if retry < policy.max_retries => {
                        let wait = policy.backoff(retry, retry_after, rand::random::<f64>());
                        tracing::warn!(blob = %blob.digest, retry = retry + 1, wait_ms = wait.as_millis() as u64, error = %err, "blob upload failed; retrying in a new session");
                        tokio::time::sleep(wait).await;
                        retry += 1;
                    }
                    Some(_) => {
                        return Err(RegistryError::RetriesExhausted {
                            operation: what,
                            attempts: retry + 1,
                            last: Box::new(err),
                        });
                    }
                    None => return Err(err),
                },
            }
        }
    }

    /// PUTs manifest `bytes` under `reference` (a tag, or the bytes' own digest) and returns
    /// the locally computed digest — the one to record (R10) — after confirming that the
    /// registry serves exactly these bytes under it.
    pub async fn push_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        media_type: &MediaType,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let inner = &self.inner;
        let local = Digest::of(bytes);
        let what = format!("manifest {repo}:{reference} ({local})");
        // Never push a document we would refuse to pull.
        Manifest::parse(bytes, Some(media_type.as_str())).map_err(|source| {
            RegistryError::Manifest {
                what: what.clone(),
                source,
            }
        })?;
        if let ManifestRef::Digest(d) = reference
            && *d != local
        {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: d.clone(),
                actual: local,
            });
        }
        let body = Bytes::copy_from_slice(bytes);
        retry::run(&inner.config.retry, &what, || {
            inner.put_manifest_once(repo, reference, media_type, body.clone(), &local, &what)
        })
        .await?;
        // The header is only the registry's word; read the bytes back by our digest.
        match self
            .fetch_manifest(repo, &ManifestRef::Digest(local.clone()))
            .await
        {
            Ok(_) => Ok(local),
            Err(RegistryError::DigestMismatch { actual, .. }) => {
                Err(RegistryError::RegistryDigestMismatch {
                    what: format!("{what}: the registry serves other bytes under our digest"),
                    local,
                    registry: actual.to_string(),
                })
            }
            Err(e) => Err(e),
        }
    }
}

impl Inner {
    async fn push_blob_attempt(
        &self,
        repo: &Repository,
        blob: &Descriptor,
        path: &Path,
        mount_from: Option<&Repository>,
    ) -> Result<BlobPushed, RegistryError> {
        let scope = Scope::push(repo);
        if self.head_blob(repo, &blob.digest, &scope).await? {
            return Ok(BlobPushed::Existed);
        }
        let session = match mount_from {
            Some(from) => match self.open_mount(repo, blob, from).await {
                Ok(Opened::Mounted) => return Ok(BlobPushed::Mounted { from: from.clone() }),
                Ok(Opened::Session(session)) => session,
                Err(err) if err.retry_hint().is_none() => {
                    tracing::info!(blob = %blob.digest, from = %from, error = %err, "cross-repository mount refused; uploading instead");
                    self.open_session(repo, &scope).await?
                }
                Err(err) => return Err(err),
            },
            None => self.open_session(repo, &scope).await?,
        };
        let chunk = match (self.config.chunk_size, session.min_chunk) {
            (0, _) => None,
            (size, _) if blob.size <= size => None,
            (size, min) => Some(size.max(min.unwrap_or(0))),
        };
        let location = match chunk {
            None => session.location,
            Some(chunk) => {
                self.upload_chunks(repo, blob, path, session.location, chunk, &scope)
                    .await?
            }
        };
        let body = match chunk {
            None => CallBody::File {
                path: path.to_owned(),
                offset: 0,
                len: blob.size,
            },
            Some(_) => CallBody::Empty,
        };
        self.commit(repo, blob, location, body, &scope).await?;
        Ok(BlobPushed::Uploaded)
    }

    async fn open_session(
        &self,
        repo: &Repository,
        scope: &Scope,
    ) -> Result<Session, RegistryError> {
        let call = Call {
            method: Method::POST,
            url: self.uploads_url(repo)?,
            headers: HeaderMap::new(),
            body: CallBody::Empty,
            repo,
            scope,
        };
        let response = self.send(&call).await?;
        if response.status().as_u16() != 202 {
            return Err(status_error(call.describe(), response).await);
        }
        session_from(&call, &response)
    }

    async fn open_mount(
        &self,
        repo: &Repository,
        blob: &Descriptor,
        from: &Repository,
    ) -> Result<Opened, RegistryError> {
        let mut url = self.uploads_url(repo)?;
        url.query_pairs_mut()
            .append_pair("mount", &blob.digest.to_string())
            .append_pair("from", from.path());
        let scope = Scope::push(repo).and_pull(from);
        let call = Call {
            method: Method::POST,
            url,
            headers: HeaderMap::new(),
            body: CallBody::Empty,
            repo,
            scope: &scope,
        };
        let response = self.send(&call).await?;
        match response.status().as_u16() {
            201 => {
                check_blob_digest(&call, &response, &blob.digest)?;
                Ok(Opened::Mounted)
            }
            202 => Ok(Opened::Session(session_from(&call, &response)?)),
            _ => Err(status_error(call.describe(), response).await),
        }
    }

    /// Sends `[offset, size)` in chunks; returns the location to commit at.
    async fn upload_chunks(
        &self,
        repo: &Repository,
        blob: &Descriptor,
        path: &Path,
        mut location: Url,
        chunk: u64,
        scope: &Scope,
    ) -> Result<Url, RegistryError> {
        let policy = &self.config.retry;
        let mut offset = 0;
        let mut resumes = 0;
        while offset < blob.size {
            let len = chunk.min(blob.size - offset);
            let mut headers = octet_stream();
            headers.insert(
                "content-range",
                header_value(&format!("{offset}-{}", offset + len - 1)),
            );
            let call = Call {
                method: Method::PATCH,
                url: location.clone(),
                headers,
                body: CallBody::File {
                    path: path.to_owned(),
                    offset,
                    len,
                },
                repo,
                scope,
            };
            let failure = match self.send(&call).await {
                Ok(response) if response.status().as_u16() == 202 => {
                    location = next_location(&call, &response)?;
                    offset = committed_end(&response).unwrap_or(offset + len);
                    continue;
                }
                Ok(response) => session_error(call.describe(), response).await,
                Err(err) => err,
            };
            // Resume where the registry says it is, in the same session; if it cannot tell us,
            // the attempt fails and the caller starts a new session.
            if failure.retry_hint().is_none() || resumes >= policy.max_retries {
                return Err(failure);
            }
            let wait = policy.backoff(resumes, None, rand::random::<f64>());
            tracing::warn!(blob = %blob.digest, offset, wait_ms = wait.as_millis() as u64, error = %failure, "chunk upload failed; asking the registry where to resume");
            tokio::time::sleep(wait).await;
            resumes += 1;
            let (resume_at, status_location) = self.upload_status(repo, &location, scope).await?;
            location = status_location;
            offset = resume_at;
        }
        Ok(location)
    }

    /// `GET` on an upload session: its committed length and current location.
    async fn upload_status(
        &self,
        repo: &Repository,
        location: &Url,
        scope: &Scope,
    ) -> Result<(u64, Url), RegistryError> {
        let call = Call {
            method: Method::GET,
            url: location.clone(),
            headers: HeaderMap::new(),
            body: CallBody::Empty,
            repo,
            scope,
        };
        let response = self.send(&call).await?;
        if response.status().as_u16() != 204 {
            return Err(session_error(call.describe(), response).await);
        }
        let location = next_location(&call, &response).unwrap_or_else(|_| location.clone());
        Ok((committed_end(&response).unwrap_or(0), location))
    }

    /// The closing `PUT ?digest=`, with the whole blob (monolithic) or nothing (chunked).
    async fn commit(
        &self,
        repo: &Repository,
        blob: &Descriptor,
        mut location: Url,
        body: CallBody,
        scope: &Scope,
    ) -> Result<(), RegistryError> {
        location
            .query_pairs_mut()
            .append_pair("digest", &blob.digest.to_string());
        let call = Call {
            method: Method::PUT,
            url: location,
            headers: octet_stream(),
            body,
            repo,
            scope,
        };
        let response = self.send(&call).await?;
        match response.status().as_u16() {
            201 => check_blob_digest(&call, &response, &blob.digest),
            _ => Err(session_error(call.describe(), response).await),
        }
    }

    async fn put_manifest_once(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        media_type: &MediaType,
        body: Bytes,
        local: &Digest,
        what: &str,
    ) -> Result<(), RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, header_value(media_type.as_str()));
        let scope = Scope::push(repo);
        let call = Call {
            method: Method::PUT,
            url: self.manifest_url(repo, reference)?,
            headers,
            body: CallBody::Bytes(body),
            repo,
            scope: &scope,
        };
        let response = self.send(&call).await?;
        match response.status().as_u16() {
            201 => match response
                .headers()
                .get(DOCKER_CONTENT_DIGEST)
                .map(|v| v.to_str().unwrap_or("<not text>").to_owned())
            {
                Some(header) if header.parse::<Digest>().ok().as_ref() != Some(local) => {
                    Err(RegistryError::RegistryDigestMismatch {
                        what: what.to_owned(),
                        local: local.clone(),
                        registry: header,
                    })
                }
                _ => Ok(()),
            },
            400 => {
                let request = call.describe();
                match status_error(request, response).await {
                    RegistryError::Status { errors, .. }
                        if errors.has_code("MANIFEST_BLOB_UNKNOWN") =>
                    {
                        Err(RegistryError::ManifestBlobUnknown {
                            repository: repo.to_string(),
                            blobs: errors.digests_for("MANIFEST_BLOB_UNKNOWN"),
                        })
                    }
                    other => Err(other),
                }
            }
            _ => Err(status_error(call.describe(), response).await),
        }
    }
}

/// A failed session request: 404 (`BLOB_UPLOAD_UNKNOWN`, expired or lost session, R5) and 416
/// (range out of step) mean "start a new session"; anything else is as usual.
async fn session_error(request: String, response: Response) -> RegistryError {
    match status_error(request, response).await {
        RegistryError::NotFound { request, errors } => RegistryError::UploadSessionLost {
            request,
            status: 404,
            errors,
        },
        RegistryError::Status {
            request,
            status: 416,
            errors,
            ..
        } => RegistryError::UploadSessionLost {
            request,
            status: 416,
            errors,
        },
        other => other,
    }
}

fn session_from(call: &Call<'_>, response: &Response) -> Result<Session, RegistryError> {
    let min_chunk = response
        .headers()
        .get("oci-chunk-min-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Ok(Session {
        location: next_location(call, response)?,
        min_chunk,
    })
}

/// The `Location` of a response, resolved against the request URL (it may be relative).
fn next_location(call: &Call<'_>, response: &Response) -> Result<Url, RegistryError> {
    let protocol = |detail: &str| RegistryError::Protocol {
        request: call.describe(),
        detail: detail.to_owned(),
    };
    let value = response
        .headers()
        .get(LOCATION)
        .ok_or_else(|| protocol("no Location header"))?;
    let text = value
        .to_str()
        .map_err(|_| protocol("Location header is not text"))?;
    let url = call
        .url
        .join(text)
        .map_err(|_| protocol("Location header is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(protocol("Location header is not an http(s) URL"));
    }
    Ok(url)
}

/// One past the last committed byte, from `Range: 0-<last>` (inclusive). distribution reports an
/// empty session as `0-0`, indistinguishable from one byte; reading it as empty is safe, since
/// a wrong guess gets a 416 and a new session.
fn committed_end(response: &Response) -> Option<u64> {
    parse_range_end(response.headers().get(RANGE)?.to_str().ok()?)
}

fn parse_range_end(value: &str) -> Option<u64> {
    let value = value.trim().trim_start_matches("bytes=");
    let (start, end) = value.split_once('-')?;
    let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
    match (start, end) {
        (0, 0) => Some(0),
        (0, end) => Some(end + 1),
        _ => None,
    }
}

fn check_blob_digest(
    call: &Call<'_>,
    response: &Response,
    expected: &Digest,
) -> Result<(), RegistryError> {
    match response
        .headers()
        .get(DOCKER_CONTENT_DIGEST)
        .map(|v| v.to_str().unwrap_or("<not text>"))
    {
        Some(header) if header.parse::<Digest>().ok().as_ref() != Some(expected) => {
            Err(RegistryError::RegistryDigestMismatch {
                what: call.describe(),
                local: expected.clone(),
                registry: header.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

fn octet_stream() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers_give_the_resume_offset() {
        let table = [
            ("0-0", Some(0)),
            ("0-1023", Some(1024)),
            ("bytes=0-99", Some(100)),
            ("5-10", None),
            ("0-", None),
            ("x", None),
        ];
        for (value, expected) in table {
            assert_eq!(parse_range_end(value), expected, "{value}");
        }
    }
}
