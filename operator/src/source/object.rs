//! Object sources: the version marker of the object a URL names.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::ByteString;
use stratum_crds::{ResolvedSource, ResolvedUrl, UrlSource};

use super::SourceCheck;

/// The object `source.url` names, as far as it can be pinned before the build: the spec's sha256
/// pin. Probing the object's ETag / Last-Modified needs the builder library's object client.
pub(super) fn probe_url(
    _scratch: &Path,
    source: &UrlSource,
    _secret: Option<&BTreeMap<String, ByteString>>,
) -> SourceCheck {
    SourceCheck::Resolved(ResolvedSource {
        git: None,
        url: Some(ResolvedUrl {
            sha256: source.sha256.clone(),
            etag: None,
            last_modified: None,
        }),
    })
}
