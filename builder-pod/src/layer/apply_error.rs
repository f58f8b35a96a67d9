//! Typed errors of layer extraction.
//!
//! Every refusal names the entry (as written in the archive, lossily decoded) or the byte
//! offset in the decompressed stream, and says what the user can do. Tests match on variants,
//! so a breakout that is refused for the wrong reason fails its test.

use std::io;
use std::path::PathBuf;

/// Which cap of [`crate::layer::Limits`] (or the shared budget) was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// `Limits::max_bytes`: decompressed bytes of this layer.
    LayerBytes,
    /// The image-wide `ByteBudget`.
    ImageBytes,
    /// `Limits::max_entries`.
    Entries,
    /// `Limits::max_path_len` for a name or link target.
    PathLength,
    /// `Limits::max_depth`.
    Depth,
    /// `Limits::max_header_bytes` for one PAX or GNU long-name record.
    HeaderBytes,
}

impl LimitKind {
    fn describe(self) -> &'static str {
        match self {
            Self::LayerBytes => "decompressed bytes in one layer",
            Self::ImageBytes => "decompressed bytes across the image's layers",
            Self::Entries => "entries in one layer",
            Self::PathLength => "bytes in one path",
            Self::Depth => "components in one path",
            Self::HeaderBytes => "bytes in one PAX/GNU extended header",
        }
    }
}

/// A structural defect of the tar stream. Where GNU tar and Go's archive/tar would read the
/// bytes differently we refuse (§2.3 #23, §7 promise 5: one interpretation or none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarDefect {
    #[error("header checksum mismatch")]
    Checksum,
    #[error("numeric field `{field}` is malformed")]
    BadNumber { field: &'static str },
    #[error("the stream ends inside a header or file body")]
    Truncated,
    #[error("a single zero block is followed by more data (GNU tar and Go disagree on the end)")]
    LoneZeroBlock,
    #[error("malformed PAX record")]
    PaxRecord,
    #[error("PAX record `{key}` has an invalid value")]
    PaxValue { key: String },
    #[error("two `{kind}` extension headers describe the same entry")]
    DuplicateExtension { kind: char },
    #[error("an extension header is not followed by the entry it describes")]
    DanglingExtension,
    #[error("PAX `{key}` and a GNU long-name record disagree (GNU tar and Go pick different ones)")]
    ConflictingNames { key: &'static str },
    #[error("PAX global header sets `{key}`, which GNU tar applies and Go/Docker ignore")]
    GlobalHeaderKey { key: String },
    #[error("entry type {typeflag:?} carries {size} data bytes but is header-only")]
    HeaderOnlyWithData { typeflag: char, size: u64 },
    #[error("regular-file entry name ends in `/` (GNU tar makes a directory, Go a file)")]
    RegularFileWithSlash,
    #[error("entry type {typeflag:?} is not supported (sparse, multi-volume and vendor types)")]
    UnsupportedType { typeflag: char },
    #[error("GNU sparse files are not supported")]
    Sparse,
    #[error(
        "the ustar prefix field is read differently by GNU tar and Go (bad version or star format)"
    )]
    AmbiguousPrefix,
}

/// Why a layer could not be applied. The target tree may hold a prefix of the layer: callers
/// discard it (OverlayLayer mode empties the directory itself).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("layer root {root}: {source}; the extraction target must be an existing directory")]
    Root {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer root {root} is not empty; OverlayLayer mode extracts into a fresh directory")]
    RootNotEmpty { root: PathBuf },
    #[error("reading the layer stream at byte {offset}: {source}")]
    Read {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("the layer's {codec} stream is corrupt or truncated: {source}")]
    Decompress {
        codec: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "{format} compression is not supported; recompress the archive as gzip or zstd, or use a plain tar"
    )]
    UnsupportedCompression { format: &'static str },
    #[error(
        "malformed tar at byte {offset}: {defect}; the archive is refused rather than guessed at"
    )]
    Tar { offset: u64, defect: TarDefect },
    #[error("layer exceeds the limit on {}: {value} > {max}{}", .limit.describe(), entry_suffix(.entry))]
    LimitExceeded {
        limit: LimitKind,
        value: u64,
        max: u64,
        entry: Option<String>,
    },
    #[error("entry {name:?} leaves the layer root through `..`; refusing the archive")]
    PathEscapes { name: String },
    #[error("entry {name:?} has an invalid name: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid whiteout {name:?}: {reason} (OCI image-spec, layer.md \"Whiteouts\")")]
    InvalidWhiteout { name: String, reason: &'static str },
    #[error("entry {name:?} would replace the layer root with a {kind}")]
    ReplaceRoot { name: String, kind: &'static str },
    #[error("resolving {path:?} inside the root: more than {max} symbolic links (ELOOP)")]
    SymlinkLoop { path: String, max: u32 },
    #[error("resolving {path:?} inside the root: {component:?} is not a directory")]
    NotADirectory { path: String, component: String },
    #[error("hard link {name:?} -> {target:?}: {reason}")]
    Hardlink {
        name: String,
        target: String,
        reason: &'static str,
    },
    #[error(
        "entry {name:?} is a {kind} device {major}:{minor}; only null, zero, full, random, urandom, tty, console and ptmx nodes may come from a layer (docs/arch/layer-apply.md, device policy)"
    )]
    DeviceNotAllowed {
        name: String,
        kind: &'static str,
        major: u32,
        minor: u32,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

fn entry_suffix(entry: &Option<String>) -> String {
    entry
        .as_ref()
        .map(|name| format!(" (at entry {name:?})"))
        .unwrap_or_default()
}

impl ApplyError {
    /// An I/O failure on `path` (an in-root path such as `/etc/passwd`).
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<String>,
        source: impl Into<io::Error>,
    ) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }
}

/// Lossy display of raw name bytes for error messages only.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
