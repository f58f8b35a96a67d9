//! `spec.source`: where the build context comes from.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cel;
use crate::duration::GoDuration;
use crate::patterns;

/// Where the build context comes from. Set exactly one of `git`, `url` or `inline`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::EXACTLY_ONE_SOURCE.json()]))]
pub struct Source {
    /// A git repository. The operator resolves `revision` to a commit SHA before the build starts,
    /// and the builder fetches exactly that commit; `status.source.git.commit` records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,

    /// An archive or single file fetched from an https, S3, GCS or Azure Blob URL. Archives
    /// (tar, tar.gz, tar.zst, zip) are unpacked; any other file becomes the only file of the
    /// context. `status.source.url.sha256` records the digest of what was fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<UrlSource>,

    /// A Dockerfile given inline, built with an empty context (no COPY or ADD of local files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<InlineSource>,
}

/// Which source a [`Source`] holds, once validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SourceKind<'a> {
    Git(&'a GitSource),
    Url(&'a UrlSource),
    Inline(&'a InlineSource),
}

impl Source {
    /// The one source that is set, or `None` when zero or several are (the spec is then invalid;
    /// [`crate::validate`] says which).
    pub fn kind(&self) -> Option<SourceKind<'_>> {
        match (&self.git, &self.url, &self.inline) {
            (Some(git), None, None) => Some(SourceKind::Git(git)),
            (None, Some(url), None) => Some(SourceKind::Url(url)),
            (None, None, Some(inline)) => Some(SourceKind::Inline(inline)),
            _ => None,
        }
    }

    /// How often the operator re-resolves the source to start a new build, when set.
    pub fn poll_interval(&self) -> Option<&GoDuration> {
        match self.kind()? {
            SourceKind::Git(git) => git.poll_interval.as_ref(),
            SourceKind::Url(url) => url.poll_interval.as_ref(),
            SourceKind::Inline(_) => None,
        }
    }

    /// The directory inside the fetched source that is the build context, when set.
    pub fn context_dir(&self) -> Option<&str> {
        match self.kind()? {
            SourceKind::Git(git) => git.context_dir.as_deref(),
            SourceKind::Url(url) => url.context_dir.as_deref(),
            SourceKind::Inline(_) => None,
        }
    }
}

/// A git repository to build from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// The repository URL: `https://host/org/repo.git`, `ssh://git@host/org/repo.git`,
    /// `git@host:org/repo.git` or `git://host/repo.git`. Do not put credentials in the URL; use
    /// `secretRef`. Local paths and `file://` URLs are not allowed.
    #[schemars(pattern(patterns::GIT_URL), length(max = 2048))]
    pub url: String,

    /// A branch, a tag, a `refs/...` name or a full commit SHA. When omitted, the remote's default
    /// branch (HEAD) is built. A branch or tag is resolved to its commit when the build starts;
    /// with `pollInterval` a moved branch starts a new build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::GIT_REVISION), length(max = 255))]
    #[schemars(extend("x-kubernetes-validations" = [cel::GIT_REVISION_FORMAT.json()]))]
    pub revision: Option<String>,

    /// A directory inside the repository to use as the build context, relative to its root
    /// (e.g. `services/api`). Defaults to the repository root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::CONTEXT_PATH), length(max = 1024))]
    #[schemars(extend("x-kubernetes-validations" = [cel::CONTEXT_DIR_CONTAINED.json()]))]
    pub context_dir: Option<String>,

    /// Also fetch the repository's submodules (recursively), with the same credentials.
    #[serde(default)]
    pub submodules: bool,

    /// Fetch only this many commits of history. Omit for the smallest fetch that contains the
    /// resolved commit; set it when the build needs history (e.g. `git describe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub depth: Option<i32>,

    /// A Secret in this namespace with the credentials for the repository: type
    /// `kubernetes.io/basic-auth` (`username`, `password` — a token works as the password) or
    /// `kubernetes.io/ssh-auth` (`ssh-privatekey`, and optionally `known_hosts` to pin host keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,

    /// When set, the operator checks the remote this often (Go duration, at least 5s, e.g. `5m`)
    /// and starts a new build when `revision` points at a different commit than the last build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [cel::POLL_INTERVAL_MIN.json()]))]
    pub poll_interval: Option<GoDuration>,
}

/// An archive or file at a URL.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::POLL_NOT_PINNED.json()]))]
pub struct UrlSource {
    /// Where to fetch the context: `https://…`, `s3://bucket/key`, `gs://bucket/key` or
    /// `azblob://container/blob`. Do not put credentials in the URL; use `secretRef`.
    #[schemars(pattern(patterns::OBJECT_URL), length(max = 2048))]
    pub url: String,

    /// The expected sha256 of the fetched bytes (64 lowercase hex digits). When set, a download
    /// with any other digest fails the build with `SourceMismatch` instead of building it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::SHA256_HEX))]
    pub sha256: Option<String>,

    /// A directory inside the unpacked archive to use as the build context (e.g. `app`).
    /// Defaults to the archive root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::CONTEXT_PATH), length(max = 1024))]
    #[schemars(extend("x-kubernetes-validations" = [cel::CONTEXT_DIR_CONTAINED.json()]))]
    pub context_dir: Option<String>,

    /// A Secret in this namespace with credentials for the object store. For `https://`: type
    /// `kubernetes.io/basic-auth`, or a `token` key sent as a bearer token. For `s3://`:
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, optionally `AWS_SESSION_TOKEN`,
    /// `AWS_REGION` and `AWS_ENDPOINT_URL` (for S3-compatible stores such as MinIO). For `gs://`:
    /// `GOOGLE_SERVICE_ACCOUNT_KEY` (the service account JSON). For `azblob://`:
    /// `AZURE_STORAGE_ACCOUNT_NAME` and `AZURE_STORAGE_ACCOUNT_KEY`. Without it the fetch is
    /// anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,

    /// When set, the operator checks the object this often (Go duration, at least 5s) and starts
    /// a new build when its ETag changes. Not allowed together with `sha256`: pinned content
    /// never changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [cel::POLL_INTERVAL_MIN.json()]))]
    pub poll_interval: Option<GoDuration>,
}

/// A Dockerfile given in the resource itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlineSource {
    /// The Dockerfile text (at most 32 KiB). The context is empty, so COPY and ADD can only
    /// refer to other stages (`COPY --from=…`) or to URLs.
    #[schemars(length(min = 1, max = 32768))]
    pub dockerfile: String,
}

/// A reference to a Secret in the ImageBuild's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// The Secret's name.
    #[schemars(pattern(patterns::OBJECT_NAME), length(min = 1, max = 253))]
    pub name: String,
}
