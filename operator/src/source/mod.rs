//! Resolving a build's source to an exact revision before its pod starts (issue 7, design §3):
//! a git revision to a commit SHA, an object URL to its ETag / Last-Modified.
//!
//! [`SourceResolver`] is the seam: the controller calls it when [`crate::reconcile::decide`]
//! returns `Resolve`, and its answer goes back into the decision as a
//! [`SourceCheck`]. The real implementation ([`builder::BuilderResolver`]) runs the builder
//! library's git and object clients; tests use a table-driven double.
//!
//! Answers reach status, Events and logs, so they must never carry credentials: URLs are shown
//! through the builder library's own redaction (`source::object::redact`, and the git errors'
//! `source::git::redact`), and every message is scrubbed of the Secret's values ([`scrub`]) in
//! case a remote echoes them.

pub mod builder;
mod object;
pub mod secret_dir;

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use stratum_crds::SourceKind;

pub use crate::reconcile::SourceCheck;

/// What to resolve.
#[derive(Debug, Clone, Copy)]
pub struct ResolveRequest<'a> {
    /// The spec's source: git or url (inline sources are never resolved).
    pub source: SourceKind<'a>,
    /// The data of the Secret `secretRef` names, when it names one.
    pub secret: Option<&'a BTreeMap<String, ByteString>>,
}

/// Asks a source's remote which revision it names now.
pub trait SourceResolver: Send + Sync {
    /// [`SourceCheck::Resolved`] with the revision, or [`SourceCheck::Failed`] with what went
    /// wrong (never `NotChecked`). A message names the URL without userinfo and the revision.
    fn resolve<'a>(&'a self, request: ResolveRequest<'a>) -> BoxFuture<'a, SourceCheck>;
}

/// `text` with every value of `secret` that is long enough to be a credential replaced by
/// `***`. Defence in depth: the libraries' errors should not contain credentials, but a
/// server's error page may echo what it was sent.
pub fn scrub(text: &str, secret: Option<&BTreeMap<String, ByteString>>) -> String {
    let mut out = text.to_owned();
    for value in secret.into_iter().flat_map(BTreeMap::values) {
        let Ok(value) = std::str::from_utf8(&value.0) else {
            continue;
        };
        for line in value.lines().map(str::trim) {
            // Short values (a username such as `git`) would mangle ordinary words.
            if line.len() >= 6 && out.contains(line) {
                out = out.replace(line, "***");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_scrubbed() {
        let secret = BTreeMap::from([
            ("username".to_owned(), ByteString(b"git".to_vec())),
            (
                "password".to_owned(),
                ByteString(b"ghp_s3cr3tT0ken".to_vec()),
            ),
        ]);
        let text = "auth failed for git at host: token ghp_s3cr3tT0ken refused";
        assert_eq!(
            scrub(text, Some(&secret)),
            "auth failed for git at host: token *** refused"
        );
        assert_eq!(scrub(text, None), text);
    }
}
