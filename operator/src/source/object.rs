//! Object sources: the version of the object a URL names (ETag, Last-Modified), asked of the
//! store with a HEAD request through the builder library's object client, and the spec's sha256
//! pin.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::ByteString;
use stratum_builder::source::object::{self, ObjectAuth};
use stratum_crds::{ResolvedSource, ResolvedUrl, UrlSource};

use super::builder::secret_dir;
use super::{SourceCheck, scrub};

/// The version of the object `source.url` names now.
pub(super) fn probe_url(
    scratch: &Path,
    source: &UrlSource,
    secret: Option<&BTreeMap<String, ByteString>>,
) -> SourceCheck {
    let failed = |kind, detail: String| SourceCheck::Failed {
        kind,
        message: scrub(
            &format!(
                "cannot read the version of {}: {detail}",
                object::redact(&source.url)
            ),
            secret,
        ),
    };
    let dir = match secret_dir(scratch, secret) {
        Ok(dir) => dir,
        Err(check) => return check,
    };
    let auth = match &dir {
        Some(dir) => match ObjectAuth::from_secret_dir(dir.path()) {
            Ok(auth) => auth,
            Err(e) => return failed(e.kind(), e.to_string()),
        },
        None => ObjectAuth::anonymous(),
    };
    match object::probe(&source.url, &auth) {
        Ok(version) => SourceCheck::Resolved(ResolvedSource {
            git: None,
            url: Some(ResolvedUrl {
                // The pin is what the builder must fetch; it checks it before unpacking.
                sha256: source.sha256.clone(),
                etag: version.etag,
                last_modified: version.last_modified,
            }),
        }),
        Err(e) => failed(e.kind(), e.to_string()),
    }
}
