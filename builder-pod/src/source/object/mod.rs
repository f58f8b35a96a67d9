//! Object sources: an archive or a single file at an `https://`, `s3://`, `gs://` or
//! `azblob://` URL becomes a build context (issue 7; docs/arch/source-object.md).
//!
//! Two halves, both blocking (callers in async code use `spawn_blocking`):
//! - [`probe`] asks the store for the object's version (ETag, Last-Modified, size) without
//!   downloading it — the operator's resolution step and its poll.
//! - [`fetch`] downloads into a spool file next to the destination while hashing and counting,
//!   verifies the sha256 pin, and only then unpacks into the destination through the same
//!   confined extractor as image layers (threats-and-faults §2.1–§2.3, §2.6 #37).

mod archive;
mod auth;
mod cloud;
mod contained;
mod error;
mod http;
mod spool;
mod url;
mod zip;

use std::io::Read;
use std::path::Path;

pub use archive::{ArchiveKind, MAX_EXPANSION};
pub use auth::ObjectAuth;
pub use contained::contained_path;
pub use error::ObjectError;
pub use url::{ObjectUrl, is_object_context, redact};

/// What identifies one version of an object, as the store reports it. The strings are opaque:
/// compare them for equality, do not parse them (`last_modified` is the HTTP date for https
/// and RFC 3339 for the cloud stores).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectVersion {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub size: Option<u64>,
}

/// Asks the store for the object's current version (a HEAD request) without downloading it.
pub fn probe(url: &str, auth: &ObjectAuth) -> Result<ObjectVersion, ObjectError> {
    let parsed = ObjectUrl::parse(url)?;
    let shown = redact(url);
    match &parsed {
        ObjectUrl::Http(http_url) => http::probe(http_url, auth),
        _ => cloud::CloudObject::new(&parsed, auth, &shown)?.head(),
    }
}

/// The default cap on fetched bytes for a build context (8 GiB). Unpacked, an archive may
/// reach [`MAX_EXPANSION`] times this.
pub const DEFAULT_MAX_BYTES: u64 = 8 << 30;

/// What to fetch.
#[derive(Debug, Clone, Copy)]
pub struct ObjectFetch<'a> {
    pub url: &'a str,
    /// The sha256 the fetched bytes must have (64 lowercase hex digits), checked before
    /// anything is extracted.
    pub sha256: Option<&'a str>,
    /// The most bytes to download; an archive may unpack to [`MAX_EXPANSION`] times this.
    pub max_bytes: u64,
}

/// What [`fetch`] fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedObject {
    /// Hex sha256 of the fetched bytes (what a pin would be).
    pub sha256: String,
    pub etag: Option<String>,
    pub kind: ArchiveKind,
}

/// Downloads the object into a spool file beside `dest` (hashing and counting as it goes),
/// checks the sha256 pin, then unpacks it into `dest`, which must be an existing empty
/// directory. On any error `dest` is left empty.
pub fn fetch(
    spec: &ObjectFetch<'_>,
    auth: &ObjectAuth,
    dest: &Path,
) -> Result<FetchedObject, ObjectError> {
    if let Some(pin) = spec.sha256 {
        spool::check_pin(pin)?;
    }
    let parsed = ObjectUrl::parse(spec.url)?;
    let shown = redact(spec.url);
    let empty = std::fs::read_dir(dest).map(|mut entries| entries.next().is_none());
    if !matches!(empty, Ok(true)) {
        return Err(ObjectError::DestNotEmpty {
            dest: dest.to_owned(),
        });
    }
    // The spool sits beside the context (same filesystem, so a lone file is renamed into
    // place), in the build's own directory.
    let spool_dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut spooler = spool::Spooler::new(spool_dir, spec.max_bytes, &shown)?;
    let etag = match &parsed {
        ObjectUrl::Http(url) => {
            let (mut response, version) = http::get(url, auth)?;
            spooler.check_announced(version.size)?;
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = response
                    .read(&mut buf)
                    .map_err(|e| ObjectError::Unavailable {
                        url: shown.clone(),
                        detail: format!("the download broke off: {e}"),
                    })?;
                if n == 0 {
                    break;
                }
                spooler.write_chunk(&buf[..n])?;
            }
            version.etag
        }
        _ => {
            let object = cloud::CloudObject::new(&parsed, auth, &shown)?;
            object.get(&mut |chunk| spooler.write_chunk(chunk))?
        }
    };
    let spooled = spooler.finish()?;
    if let Some(pin) = spec.sha256
        && pin != spooled.sha256
    {
        return Err(ObjectError::Mismatch {
            url: shown,
            expected: pin.to_owned(),
            actual: spooled.sha256,
        });
    }
    let kind = archive::sniff(spooled.file.path(), &shown)?;
    archive::extract(
        spooled.file,
        kind,
        parsed.file_name(),
        dest,
        spec.max_bytes,
        &shown,
    )?;
    tracing::info!(url = %shown, sha256 = %spooled.sha256, size = spooled.size, ?kind, "fetched the build context");
    Ok(FetchedObject {
        sha256: spooled.sha256,
        etag,
        kind,
    })
}
