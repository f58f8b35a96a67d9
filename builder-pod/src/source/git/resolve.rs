//! Revision → commit, from the remote's ref advertisement (`git ls-remote`), without fetching.
//! The operator pins the result in the BuildRequest so the pod builds exactly what status says.

use super::auth::GitAuth;
use super::command::{LIST_TIMEOUT, Session};
use super::error::GitError;
use super::url::GitUrl;

/// A revision pinned to a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// 40 lowercase hex digits.
    pub commit: String,
    /// The full ref the revision named, e.g. `refs/heads/main`; `None` for a commit SHA.
    pub reference: Option<String>,
}

/// Resolves `revision` (a branch, tag, full ref or full commit SHA; `None` = the remote's
/// default branch) on `url`. A full SHA is returned as given without contacting the remote:
/// whether it exists is found out by the fetch.
pub fn resolve(url: &str, revision: Option<&str>, auth: &GitAuth) -> Result<Resolved, GitError> {
    let parsed = GitUrl::parse(url)?;
    if let Some(revision) = revision {
        check_revision(&parsed.redacted, revision)?;
        if is_full_sha(revision) {
            return Ok(Resolved {
                commit: revision.to_ascii_lowercase(),
                reference: None,
            });
        }
    }
    let session = Session::new(parsed, auth, None)?;
    let fetch_url = session.url.fetch_url.clone();
    let mut args = vec!["ls-remote", "--symref", fetch_url.as_str()];
    // Patterns narrow the advertisement (protocol v2 sends them as ref-prefixes); the exact
    // choice among matches is made by `select` below.
    // ls-remote matches patterns against whole names, so an annotated tag's peeled entry
    // (`refs/tags/v1^{}`) needs its own.
    let patterns: Vec<String> = match revision {
        Some(revision) => candidates(revision)
            .into_iter()
            .flat_map(|name| [format!("{name}^{{}}"), name])
            .collect(),
        None => vec!["HEAD".to_owned()],
    };
    args.extend(patterns.iter().map(String::as_str));
    let stdout = session
        .run(session.home(), &args, LIST_TIMEOUT)
        .map_err(|e| session.error(e, "ls-remote", revision))?;
    let advertisement = parse_ls_remote(&String::from_utf8_lossy(&stdout));
    select(&advertisement, revision).ok_or_else(|| GitError::RefNotFound {
        url: session.url.redacted.clone(),
        revision: revision.unwrap_or("HEAD").to_owned(),
    })
}

pub(crate) fn is_full_sha(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Refuses revisions git would read as options or revision syntax, and anything that is not a
/// valid ref name (`git check-ref-format` rules), before they reach a command line.
pub(crate) fn check_revision(url: &str, revision: &str) -> Result<(), GitError> {
    let bad = |reason: &str| {
        Err(GitError::InvalidRevision {
            url: url.to_owned(),
            revision: revision.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if revision.is_empty() {
        return bad("empty");
    }
    if revision.starts_with('-') {
        return bad("starts with '-'");
    }
    if revision
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
    {
        return bad("contains whitespace, a control character or one of ~ ^ : ? * [ \\");
    }
    if revision.contains("..")
        || revision.contains("@{")
        || revision.contains("//")
        || revision.starts_with('/')
        || revision.ends_with('/')
        || revision.ends_with('.')
        || revision.ends_with(".lock")
        || revision == "@"
        || revision.split('/').any(|c| c.starts_with('.'))
    {
        return bad("is not a valid ref name");
    }
    Ok(())
}

/// The refs a revision may name, in git's order of precedence (gitrevisions(7)): the name
/// itself when it is a full ref, then a tag, then a branch.
fn candidates(revision: &str) -> Vec<String> {
    if revision.starts_with("refs/") {
        vec![revision.to_owned()]
    } else if revision == "HEAD" {
        vec!["HEAD".to_owned()]
    } else {
        vec![
            format!("refs/tags/{revision}"),
            format!("refs/heads/{revision}"),
        ]
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Advertisement {
    /// `(ref name, object id)` in the order the server sent them.
    refs: Vec<(String, String)>,
    /// `ref: <target> TAB <symref>` lines, as (symref, target).
    symrefs: Vec<(String, String)>,
}

pub(crate) fn parse_ls_remote(output: &str) -> Advertisement {
    let mut ad = Advertisement::default();
    for line in output.lines() {
        let Some((left, name)) = line.split_once('\t') else {
            continue;
        };
        if let Some(target) = left.strip_prefix("ref: ") {
            ad.symrefs.push((name.to_owned(), target.to_owned()));
        } else if is_full_sha(left) {
            ad.refs.push((name.to_owned(), left.to_ascii_lowercase()));
        }
    }
    ad
}

fn lookup<'a>(ad: &'a Advertisement, name: &str) -> Option<&'a str> {
    ad.refs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, id)| id.as_str())
}

/// Picks the commit `revision` names. An annotated tag's commit is its peeled `^{}` entry.
pub(crate) fn select(ad: &Advertisement, revision: Option<&str>) -> Option<Resolved> {
    let Some(revision) = revision.filter(|r| *r != "HEAD") else {
        let commit = lookup(ad, "HEAD")?.to_owned();
        let reference = ad
            .symrefs
            .iter()
            .find(|(name, _)| name == "HEAD")
            .map(|(_, target)| target.clone());
        return Some(Resolved { commit, reference });
    };
    candidates(revision).into_iter().find_map(|name| {
        let peeled = lookup(ad, &format!("{name}^{{}}"));
        let commit = peeled.or_else(|| lookup(ad, &name))?;
        Some(Resolved {
            commit: commit.to_owned(),
            reference: Some(name),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";
    const D: &str = "dddddddddddddddddddddddddddddddddddddddd";

    fn ad() -> Advertisement {
        parse_ls_remote(&format!(
            "ref: refs/heads/main\tHEAD\n{A}\tHEAD\n{A}\trefs/heads/main\n{B}\trefs/heads/v1\n\
             {C}\trefs/tags/v1\n{D}\trefs/tags/v1^{{}}\n{B}\trefs/tags/light\n{C}\trefs/pull/7/head\n"
        ))
    }

    fn resolved(commit: &str, reference: &str) -> Option<Resolved> {
        Some(Resolved {
            commit: commit.to_owned(),
            reference: Some(reference.to_owned()),
        })
    }

    #[test]
    fn revisions_select_git_precedence() {
        let ad = ad();
        let cases = [
            (None, resolved(A, "refs/heads/main")),
            (Some("HEAD"), resolved(A, "refs/heads/main")),
            (Some("main"), resolved(A, "refs/heads/main")),
            // A tag wins over a branch of the same name, and is peeled to its commit.
            (Some("v1"), resolved(D, "refs/tags/v1")),
            (Some("light"), resolved(B, "refs/tags/light")),
            (Some("refs/heads/v1"), resolved(B, "refs/heads/v1")),
            (Some("refs/pull/7/head"), resolved(C, "refs/pull/7/head")),
            (Some("nope"), None),
            (Some("heads/main"), None),
        ];
        for (revision, expected) in cases {
            assert_eq!(select(&ad, revision), expected, "{revision:?}");
        }
    }

    #[test]
    fn head_without_symref_has_no_reference() {
        let ad = parse_ls_remote(&format!("{A}\tHEAD\n"));
        assert_eq!(
            select(&ad, None),
            Some(Resolved {
                commit: A.to_owned(),
                reference: None
            })
        );
        assert_eq!(select(&parse_ls_remote(""), None), None);
    }

    #[test]
    fn revision_syntax_is_checked() {
        for ok in ["main", "v1.2.3", "feature/x", "refs/heads/main", "HEAD", A] {
            check_revision("u", ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "-b",
            "--upload-pack=x",
            "a b",
            "main~1",
            "main^",
            "a:b",
            "a..b",
            "x@{1}",
            "/abs",
            "trail/",
            "x.lock",
            ".hidden",
            "a/.b",
            "*",
            "a\\b",
            "@",
        ] {
            assert!(check_revision("u", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn full_sha_passes_through_without_network() {
        let upper = A.to_ascii_uppercase();
        let r = resolve(
            "https://nowhere.invalid/r.git",
            Some(&upper),
            &GitAuth::Anonymous,
        )
        .unwrap();
        assert_eq!(
            r,
            Resolved {
                commit: A.to_owned(),
                reference: None
            }
        );
    }
}
