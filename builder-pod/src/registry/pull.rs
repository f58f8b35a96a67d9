//! Pulling: manifests (by tag or digest, through an index to one platform), configs, and
//! blobs streamed to disk.
//!
//! Digest integrity (threats-and-faults §7 promise 6): every manifest is hashed over the exact
//! bytes received before it is parsed; a manifest fetched by digest must hash to that digest, and
//! one fetched by tag must hash to the `Docker-Content-Digest` the registry sent, if any
//! (CVE-2014-8179). Blobs are written to a temporary file next to their destination, hashed and
//! counted while they stream, and renamed into place only when digest and size both match
//! (R6); a corrupt download is discarded and fetched once more before the pull fails.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::io::AsyncWriteExt;

use super::auth::Scope;
use super::client::{Call, CallBody, Inner, RegistryClient, read_limited, status_error};
use super::{FetchedManifest, Registry, RegistryError, ResolvedImage, retry};
use crate::image::{
    Descriptor, Digest, Digester, ImageConfig, Manifest, ManifestRef, MediaType, Platform,
    Reference, Repository,
};

/// Largest config blob we read into memory.
pub const MAX_CONFIG_BYTES: u64 = 32 << 20;
pub(crate) const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

impl RegistryClient {
    /// GET a manifest; see the module docs for the checks.
    pub async fn fetch_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<FetchedManifest, RegistryError> {
        let inner = &self.inner;
        let what = format!("manifest {repo}{}", display_ref(reference));
        retry::run(&inner.config.retry, &what, || {
            inner.fetch_manifest_once(repo, reference, &what)
        })
        .await
    }

    /// GET a blob into memory (configs), verifying size and digest.
    pub async fn fetch_blob(
        &self,
        repo: &Repository,
        blob: &Descriptor,
        limit: u64,
    ) -> Result<Bytes, RegistryError> {
        let inner = &self.inner;
        let what = format!("blob {repo}@{}", blob.digest);
        if blob.size > limit {
            return Err(RegistryError::TooLarge {
                what,
                size: blob.size,
                limit,
            });
        }
        verified_twice(&what, || {
            retry::run(&inner.config.retry, &what, || {
                inner.fetch_blob_once(repo, blob, &what)
            })
        })
        .await
    }

    /// GET a blob into `dest`, which appears only once its bytes are verified.
    pub async fn fetch_blob_to(
        &self,
        repo: &Repository,
        blob: &Descriptor,
        dest: &Path,
    ) -> Result<(), RegistryError> {
        let inner = &self.inner;
        let what = format!("blob {repo}@{}", blob.digest);
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let io = |action, source| RegistryError::Io {
            action,
            path: dest.display().to_string(),
            source,
        };
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io("create the directory of", e))?;
        let temp = verified_twice(&what, || {
            retry::run(&inner.config.retry, &what, || {
                inner.download_once(repo, blob, dir, &what)
            })
        })
        .await?;
        temp.persist(dest)
            .map_err(|e| io("rename the verified download to", e.error))?;
        Ok(())
    }

    /// HEAD a blob: whether the repository has it.
    pub async fn blob_exists(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let inner = &self.inner;
        let scope = Scope::pull(repo);
        let what = format!("HEAD blob {repo}@{digest}");
        retry::run(&inner.config.retry, &what, || {
            inner.head_blob(repo, digest, &scope)
        })
        .await
    }
}

/// Runs a verified download, and once more if the bytes did not match (R6: a proxy or a
/// truncating middlebox may have mangled them; a second mismatch is a real failure).
async fn verified_twice<T, F, Fut>(what: &str, mut fetch: F) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    match fetch().await {
        Err(e @ (RegistryError::DigestMismatch { .. } | RegistryError::SizeMismatch { .. })) => {
            tracing::warn!(blob = what, error = %e, "discarded corrupt download; fetching again");
            fetch().await
        }
        other => other,
    }
}

fn display_ref(reference: &ManifestRef) -> String {
    match reference {
        ManifestRef::Tag(t) => format!(":{t}"),
        ManifestRef::Digest(d) => format!("@{d}"),
    }
}

impl Inner {
    async fn fetch_manifest_once(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        what: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MediaType::MANIFEST_ACCEPT));
        let scope = Scope::pull(repo);
        let call = Call {
            method: Method::GET,
            url: self.manifest_url(repo, reference)?,
            headers,
            body: CallBody::Empty,
            repo,
            scope: &scope,
        };
        let response = self.send(&call).await?;
        if response.status().as_u16() != 200 {
            return Err(status_error(call.describe(), response).await);
        }
        let content_type = header_str(response.headers(), CONTENT_TYPE.as_str());
        let registry_digest = header_str(response.headers(), DOCKER_CONTENT_DIGEST);
        let bytes = read_limited(
            response,
            self.config.max_manifest_bytes,
            what,
            &call.describe(),
        )
        .await?;
        let digest = Digest::of(&bytes);
        check_manifest_digest(what, reference, &digest, registry_digest.as_deref())?;
        let manifest = Manifest::parse(&bytes, content_type.as_deref()).map_err(|source| {
            RegistryError::Manifest {
                what: format!("{what} ({digest})"),
                source,
            }
        })?;
        Ok(FetchedManifest {
            digest,
            media_type: manifest.media_type(),
            bytes,
            manifest,
        })
    }

    async fn fetch_blob_once(
        &self,
        repo: &Repository,
        blob: &Descriptor,
        what: &str,
    ) -> Result<Bytes, RegistryError> {
        let (call_line, response) = self.get_blob(repo, blob).await?;
        let bytes = read_limited(response, blob.size, what, &call_line)
            .await
            .map_err(|e| match e {
                RegistryError::TooLarge { .. } => size_mismatch(what, blob.size, "more was sent"),
                other => other,
            })?;
        if bytes.len() as u64 != blob.size {
            return Err(size_mismatch(
                what,
                blob.size,
                &format!("{} were received", bytes.len()),
            ));
        }
        let actual = Digest::of(&bytes);
        if actual != blob.digest {
            return Err(RegistryError::DigestMismatch {
                what: what.to_owned(),
                expected: blob.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    async fn download_once(
        &self,
        repo: &Repository,
        blob: &Descriptor,
        dir: &Path,
        what: &str,
    ) -> Result<tempfile::NamedTempFile, RegistryError> {
        let (call_line, mut response) = self.get_blob(repo, blob).await?;
        let io = |action, source| RegistryError::Io {
            action,
            path: dir.display().to_string(),
            source,
        };
        let temp = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(dir)
            .map_err(|e| io("create a temporary file in", e))?;
        let mut file = tokio::fs::File::from_std(
            temp.as_file()
                .try_clone()
                .map_err(|e| io("open a temporary file in", e))?,
        );
        let mut digester = Digester::new();
        while let Some(chunk) =
            response
                .chunk()
                .await
                .map_err(|source| RegistryError::Transport {
                    request: call_line.clone(),
                    source: source.without_url(),
                })?
        {
            if digester.len() + chunk.len() as u64 > blob.size {
                return Err(size_mismatch(what, blob.size, "more was sent"));
            }
            digester.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| io("write a temporary file in", e))?;
        }
        file.sync_all()
            .await
            .map_err(|e| io("flush a temporary file in", e))?;
        let (actual, len) = digester.finish();
        if len != blob.size {
            return Err(size_mismatch(
                what,
                blob.size,
                &format!("{len} were received"),
            ));
        }
        if actual != blob.digest {
            return Err(RegistryError::DigestMismatch {
                what: what.to_owned(),
                expected: blob.digest.clone(),
                actual,
            });
        }
        Ok(temp)
    }

    /// GET a blob through the registry; a redirect to storage is followed by the HTTP client.
    async fn get_blob(
        &self,
        repo: &Repository,
        blob: &Descriptor,
    ) -> Result<(String, reqwest::Response), RegistryError> {
        let scope = Scope::pull(repo);
        let call = Call {
            method: Method::GET,
            url: self.blob_url(repo, &blob.digest)?,
            headers: HeaderMap::new(),
            body: CallBody::Empty,
            repo,
            scope: &scope,
        };
        let response = self.send(&call).await?;
        if response.status().as_u16() != 200 {
            return Err(status_error(call.describe(), response).await);
        }
        if let Some(len) = response.content_length().filter(|len| *len != blob.size) {
            return Err(size_mismatch(
                &format!("blob {repo}@{}", blob.digest),
                blob.size,
                &format!("the registry announced {len}"),
            ));
        }
        Ok((call.describe(), response))
    }

    pub(crate) async fn head_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        scope: &Scope,
    ) -> Result<bool, RegistryError> {
        let call = Call {
            method: Method::HEAD,
            url: self.blob_url(repo, digest)?,
            headers: HeaderMap::new(),
            body: CallBody::Empty,
            repo,
            scope,
        };
        let response = self.send(&call).await?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error(call.describe(), response).await),
        }
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn size_mismatch(what: &str, expected: u64, actual: &str) -> RegistryError {
    RegistryError::SizeMismatch {
        what: what.to_owned(),
        expected,
        actual: actual.to_owned(),
    }
}

/// The digest rules for a received manifest (pure, so the table test can cover every case).
pub(crate) fn check_manifest_digest(
    what: &str,
    reference: &ManifestRef,
    actual: &Digest,
    registry_digest: Option<&str>,
) -> Result<(), RegistryError> {
    if let ManifestRef::Digest(expected) = reference
        && expected != actual
    {
        return Err(RegistryError::DigestMismatch {
            what: what.to_owned(),
            expected: expected.clone(),
            actual: actual.clone(),
        });
    }
    match registry_digest {
        Some(header) if header.parse::<Digest>().ok().as_ref() != Some(actual) => {
            Err(RegistryError::RegistryDigestMismatch {
                what: what.to_owned(),
                local: actual.clone(),
                registry: header.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// Resolves `reference` to one image for `platform`: manifest (through an index if there is
/// one), config, and the consistency checks of threats-and-faults §2.9 #50.
pub async fn resolve<R: Registry + ?Sized>(
    registry: &R,
    reference: &Reference,
    platform: &Platform,
) -> Result<ResolvedImage, RegistryError> {
    let repo = reference.repository();
    let top = registry
        .fetch_manifest(repo, &reference.manifest_ref())
        .await?;
    let (index_digest, fetched) = match &top.manifest {
        Manifest::Image(_) => (None, top),
        Manifest::Index(index) => {
            let chosen = index
                .select(platform)
                .map_err(|source| RegistryError::NoMatchingPlatform {
                    reference: reference.to_string(),
                    source,
                })?
                .clone();
            let child = registry
                .fetch_manifest(repo, &ManifestRef::Digest(chosen.digest.clone()))
                .await?;
            if child.bytes.len() as u64 != chosen.size {
                return Err(size_mismatch(
                    &format!("manifest {repo}@{}", chosen.digest),
                    chosen.size,
                    &format!("{} were received", child.bytes.len()),
                ));
            }
            (Some(top.digest), child)
        }
    };
    let what = format!("{reference} ({})", fetched.digest);
    let Manifest::Image(manifest) = fetched.manifest else {
        return Err(RegistryError::NotAnImage {
            what,
            media_type: fetched.media_type,
            expected: "manifest (an index inside an index)",
        });
    };
    if !manifest.config.media_type.is_config() {
        return Err(RegistryError::NotAnImage {
            what,
            media_type: manifest.config.media_type.clone(),
            expected: "config",
        });
    }
    if let Some(layer) = manifest
        .layers
        .iter()
        .find(|l| l.media_type.layer_compression().is_none())
    {
        return Err(RegistryError::NotAnImage {
            what,
            media_type: layer.media_type.clone(),
            expected: "layer",
        });
    }
    let config_bytes = registry
        .fetch_blob(repo, &manifest.config, MAX_CONFIG_BYTES)
        .await?;
    let config = ImageConfig::parse(&config_bytes).map_err(|source| RegistryError::Config {
        what: format!("config {}", manifest.config.digest),
        source,
    })?;
    if !platform.matches(&config.platform()) {
        return Err(RegistryError::PlatformMismatch {
            reference: reference.to_string(),
            wanted: Box::new(platform.clone()),
            found: Box::new(config.platform()),
        });
    }
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        return Err(RegistryError::LayerCountMismatch {
            reference: reference.to_string(),
            layers: manifest.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    Ok(ResolvedImage {
        reference: reference.with_digest(fetched.digest.clone()),
        index_digest,
        manifest_digest: fetched.digest,
        manifest_media_type: fetched.media_type,
        manifest_bytes: fetched.bytes,
        manifest,
        config_bytes,
        config,
    })
}

/// Downloads blobs concurrently (at most `concurrency` at a time) to their paths; stops at the
/// first failure, and the downloads still running are dropped with their temporary files.
pub async fn fetch_blobs<R: Registry + ?Sized>(
    registry: &R,
    repo: &Repository,
    blobs: &[(Descriptor, PathBuf)],
    concurrency: usize,
) -> Result<(), RegistryError> {
    futures::stream::iter(
        blobs
            .iter()
            .map(|(blob, dest)| registry.fetch_blob_to(repo, blob, dest)),
    )
    .buffer_unordered(concurrency.max(1))
    .try_collect::<()>()
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s2_9_49_manifest_digest_rules() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let tag = ManifestRef::Tag("1".parse().unwrap());
        let by_a = ManifestRef::Digest(a.clone());
        assert!(check_manifest_digest("m", &tag, &a, None).is_ok());
        assert!(check_manifest_digest("m", &tag, &a, Some(&a.to_string())).is_ok());
        assert!(check_manifest_digest("m", &by_a, &a, None).is_ok());
        assert!(matches!(
            check_manifest_digest("m", &by_a, &b, None),
            Err(RegistryError::DigestMismatch { .. })
        ));
        assert!(matches!(
            check_manifest_digest("m", &tag, &a, Some(&b.to_string())),
            Err(RegistryError::RegistryDigestMismatch { .. })
        ));
        assert!(matches!(
            check_manifest_digest("m", &tag, &a, Some("sha256:nope")),
            Err(RegistryError::RegistryDigestMismatch { .. })
        ));
    }
}
