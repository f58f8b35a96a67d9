//! The remote layer cache (`stratum build --cache-repo`, `ImageBuild spec.cache.repository`):
//! cache entries kept in a registry repository, so a builder with an empty local cache (a fresh
//! pod) reuses the layers of earlier builds, as Kaniko's `--cache-repo` does.
//!
//! The keys are the executor's chained [`CacheKey`]s, so a remote hit means exactly what a local
//! hit means. The local cache is asked first; on a local miss the repository is; a remote hit
//! fetches the layer blob (digest-verified), unpacks it (diffID-verified, as a base image layer
//! is) and becomes a local entry. After a step runs, its entry is uploaded in the background
//! while later steps run (as Kaniko does), and the build waits for the uploads before it
//! finishes; a local hit is written too when the repository lacks it, so a repository fills up
//! from builders that already had a warm local cache. See docs/arch/cache-repo.md.
//!
//! The cache is an optimisation, never a reason to fail a build: a failed write is a warning
//! and stops further writes for this build (one warning, not one per step, and no retry storm
//! against a registry that refuses us); a failed read is a miss with a warning — a problem with
//! one entry (missing or corrupt blob, a document that does not match its key) skips that entry
//! only, a problem with the registry (unreachable, refused) stops further reads.

pub mod entry;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::BuildError;
use super::cache::{CacheEntry, CacheKey};
use super::executor::Executor;
use super::progress::{Event, Progress};
use crate::image::{ManifestRef, Repository, Serialized, Tag};
use crate::output::LayerInfo;
use crate::registry::{LocalBlob, Registry, RegistryError};

/// Entries uploaded at the same time.
const UPLOAD_SLOTS: usize = 2;

/// A cache repository and whether reading and writing it are still worth trying in this build.
#[derive(Debug)]
pub(crate) struct RemoteCache {
    reads: AtomicBool,
    shared: Arc<Shared>,
    uploads: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Why a remote lookup did not produce a hit.
enum ReadFailure {
    /// This entry is unusable; others may be fine.
    Entry(String),
    /// The repository cannot be read at all.
    Source(String),
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("writing a temporary file in {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Whether to write an entry the repository may already have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publish {
    /// The step just ran: write it (a stale entry under the same key is replaced).
    Always,
    /// A local hit: write it only if the repository lacks it.
    IfAbsent,
}

impl RemoteCache {
    pub fn new(repository: Repository) -> Self {
        Self {
            shared: Arc::new(Shared {
                repository,
                writes: AtomicBool::new(true),
                slots: tokio::sync::Semaphore::new(UPLOAD_SLOTS),
            }),
            reads: AtomicBool::new(true),
            uploads: Mutex::new(Vec::new()),
        }
    }

    fn warn(&self, exec: &Executor, message: &str) {
        warn(exec.progress(), &self.shared.repository, message);
    }

    /// The repository's entry for `key`, with its layer blob in the store and unpacked; `None`
    /// on a miss or any failure (warned about).
    fn lookup(&self, exec: &Executor, key: &CacheKey) -> Option<CacheEntry> {
        if !self.reads.load(Ordering::Relaxed) {
            return None;
        }
        match self.try_lookup(exec, key) {
            Ok(found) => found,
            Err(ReadFailure::Entry(why)) => {
                let tag = entry::tag_for(key);
                self.warn(
                    exec,
                    &format!(
                        "cache repository {}: entry {tag} is unusable, running the step instead: {why}",
                        self.shared.repository
                    ),
                );
                None
            }
            Err(ReadFailure::Source(why)) => {
                if self.reads.swap(false, Ordering::Relaxed) {
                    self.warn(
                        exec,
                        &format!(
                            "cache repository {} cannot be read, building without it: {why}",
                            self.shared.repository
                        ),
                    );
                }
                None
            }
        }
    }

    fn try_lookup(
        &self,
        exec: &Executor,
        key: &CacheKey,
    ) -> Result<Option<CacheEntry>, ReadFailure> {
        let repo = &self.shared.repository;
        let tag = ManifestRef::Tag(entry::tag_for(key));
        let fetched = match exec.block_on(exec.registry().fetch_manifest(repo, &tag)) {
            Ok(fetched) => fetched,
            Err(e) if matches!(e.root(), RegistryError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(read_failure(&e)),
        };
        let entry_err = |e: entry::EntryError| ReadFailure::Entry(e.to_string());
        let config = entry::entry_config(&fetched.manifest).map_err(entry_err)?;
        let config = exec
            .block_on(
                exec.registry()
                    .fetch_blob(repo, config, entry::MAX_ENTRY_BYTES),
            )
            .map_err(|e| read_failure(&e))?;
        let (found, blob) =
            entry::parse_entry(key, &fetched.manifest, &config).map_err(entry_err)?;
        if let (Some(layer), Some(blob)) = (&found.layer, &blob) {
            let store = exec.store();
            if !store.has_blob(&blob.digest) {
                let dest = store.blob_path(&blob.digest);
                exec.block_on(exec.registry().fetch_blob_to(repo, blob, &dest))
                    .map_err(|e| read_failure(&e))?;
            }
            let source = format!("the cache repository {repo}");
            super::base::unpack(exec, &LayerInfo::from(layer), &source).map_err(|e| match e {
                BuildError::Unpack { .. } => ReadFailure::Entry(e.to_string()),
                other => ReadFailure::Source(other.to_string()),
            })?;
        }
        Ok(Some(found))
    }

    /// Writes the entry for `key` in the background, while later steps run (Kaniko does the
    /// same); [`RemoteCache::wait_for_uploads`] joins them. A failure is a warning and ends
    /// writing for this build.
    fn publish(&self, exec: &Executor, key: &CacheKey, found: &CacheEntry, when: Publish) {
        if !self.shared.writes.load(Ordering::Relaxed) {
            return;
        }
        let upload = match Upload::prepare(exec, &self.shared.repository, key, found, when) {
            Ok(upload) => upload,
            Err(e) => return self.shared.write_failed(exec.progress(), key, &e),
        };
        let this = self.shared.clone();
        let registry = exec.registry_handle();
        let progress = exec.progress_handle();
        let key = key.clone();
        let task = exec.spawn(async move {
            let Ok(_slot) = this.slots.acquire().await else {
                return;
            };
            if !this.writes.load(Ordering::Relaxed) {
                return;
            }
            if let Err(e) = upload.run(&*registry).await {
                this.write_failed(&*progress, &key, &e);
            }
        });
        self.uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// Waits for the uploads started so far; a cancelled build abandons them.
    pub fn wait_for_uploads(&self, exec: &Executor) {
        let tasks = std::mem::take(&mut *self.uploads.lock().unwrap_or_else(|e| e.into_inner()));
        if exec.cancel_token().is_cancelled() {
            tasks.iter().for_each(tokio::task::JoinHandle::abort);
            return;
        }
        exec.block_on(futures::future::join_all(tasks));
    }
}

/// The part of a [`RemoteCache`] that background uploads share.
#[derive(Debug)]
struct Shared {
    repository: Repository,
    writes: AtomicBool,
    /// Uploads at the same time (they share the bandwidth with the build's own pulls).
    slots: tokio::sync::Semaphore,
}

impl Shared {
    fn write_failed(&self, progress: &dyn Progress, key: &CacheKey, e: &WriteError) {
        if self.writes.swap(false, Ordering::Relaxed) {
            warn(
                progress,
                &self.repository,
                &format!(
                    "cache repository {}: cannot write entry {}, building on without writing the cache: {e}",
                    self.repository,
                    entry::tag_for(key)
                ),
            );
        }
    }
}

/// One entry ready to upload: its documents, and the files its blobs are read from (the
/// temporary ones live as long as the upload).
struct Upload {
    repository: Repository,
    tag: Tag,
    when: Publish,
    manifest: Serialized,
    blobs: Vec<LocalBlob>,
    _temporary: Vec<tempfile::NamedTempFile>,
}

impl Upload {
    fn prepare(
        exec: &Executor,
        repository: &Repository,
        key: &CacheKey,
        found: &CacheEntry,
        when: Publish,
    ) -> Result<Self, WriteError> {
        let docs = entry::documents(key, found);
        let config_file = temp_file(exec, &docs.config.bytes)?;
        let mut blobs = vec![LocalBlob {
            descriptor: docs.config.descriptor(),
            path: config_file.path().to_owned(),
        }];
        let mut temporary = vec![config_file];
        match &found.layer {
            Some(layer) => blobs.push(LocalBlob {
                descriptor: docs.layer.clone(),
                path: exec.store().blob_path(&layer.digest),
            }),
            None => {
                let empty = temp_file(exec, entry::EMPTY_JSON)?;
                blobs.push(LocalBlob {
                    descriptor: docs.layer.clone(),
                    path: empty.path().to_owned(),
                });
                temporary.push(empty);
            }
        }
        Ok(Self {
            repository: repository.clone(),
            tag: entry::tag_for(key),
            when,
            manifest: docs.manifest,
            blobs,
            _temporary: temporary,
        })
    }

    async fn run(&self, registry: &dyn Registry) -> Result<(), WriteError> {
        let repo = &self.repository;
        if self.when == Publish::IfAbsent {
            let reference = ManifestRef::Tag(self.tag.clone());
            match registry.fetch_manifest(repo, &reference).await {
                Ok(_) => return Ok(()),
                Err(e) if matches!(e.root(), RegistryError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Blob by blob rather than through `push_image`: this runs as a spawned task, which
        // must be `Send`; the boxed futures of `Registry` are, but rustc cannot prove it for
        // `push_image`'s stream of closures over borrowed blobs ("implementation of `FnOnce`
        // is not general enough"). A blob the repository already has is skipped (HEAD).
        for blob in &self.blobs {
            registry
                .push_blob(repo, &blob.descriptor, &blob.path, None)
                .await?;
        }
        registry
            .push_manifest(
                repo,
                &ManifestRef::Tag(self.tag.clone()),
                &self.manifest.media_type,
                &self.manifest.bytes,
            )
            .await?;
        Ok(())
    }
}

fn warn(progress: &dyn Progress, repository: &Repository, message: &str) {
    tracing::warn!(repository = %repository, "{message}");
    progress.event(&Event::Warning { message });
}

/// A problem with one entry (absent or corrupt content) or with the repository as a whole.
fn read_failure(e: &RegistryError) -> ReadFailure {
    match e.reason() {
        "ImageNotFound" | "ImageInvalid" => ReadFailure::Entry(e.to_string()),
        _ => ReadFailure::Source(e.to_string()),
    }
}

fn temp_file(exec: &Executor, bytes: &[u8]) -> Result<tempfile::NamedTempFile, WriteError> {
    let dir = exec.store().tmp_dir();
    let io = |source| WriteError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut file = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(file)
}

/// The cached result of `key`: the local cache's, else the repository's (which becomes a local
/// entry). `None` with `--no-cache`, which reads nothing.
pub(crate) fn lookup(exec: &Executor, key: &CacheKey) -> Result<Option<CacheEntry>, BuildError> {
    if exec.spec().no_cache {
        return Ok(None);
    }
    if let Some(found) = exec.cache().get(key) {
        if let Some(remote) = exec.remote_cache() {
            remote.publish(exec, key, &found, Publish::IfAbsent);
        }
        return Ok(Some(found));
    }
    let Some(found) = exec.remote_cache().and_then(|r| r.lookup(exec, key)) else {
        return Ok(None);
    };
    exec.cache().put(key, &found)?;
    Ok(Some(found))
}

/// Records the entry of a step that ran, locally and in the repository.
pub(crate) fn record(
    exec: &Executor,
    key: &CacheKey,
    found: &CacheEntry,
) -> Result<(), BuildError> {
    exec.cache().put(key, found)?;
    if let Some(remote) = exec.remote_cache() {
        remote.publish(exec, key, found, Publish::Always);
    }
    Ok(())
}
