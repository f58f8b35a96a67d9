//! The operator's real resolver ([`BuilderResolver`]) against git servers on loopback: the
//! Secret's keys reach the builder library through a private directory, a moved branch
//! resolves to its new commit (what `pollInterval` compares), and failures come back as the
//! kinds the decision maps to `FetchFailed` / `SourceAuthFailed` / `SourceUnavailable`, with
//! the URL and revision named and the password nowhere.

#[path = "../../builder-pod/tests/git_support/mod.rs"]
mod git_support;

use std::collections::BTreeMap;

use git_support::daemon::GitDaemon;
use git_support::http::{self, HttpGit};
use git_support::repo::Repo;
use k8s_openapi::ByteString;
use stratum_builder::source::SourceErrorKind;
use stratum_crds::{GitSource, SourceKind};
use stratum_operator::source::builder::BuilderResolver;
use stratum_operator::source::{ResolveRequest, SourceCheck, SourceResolver};

const PASSWORD: &str = "s3cret-token-42";

fn git(url: &str, revision: Option<&str>) -> GitSource {
    GitSource {
        url: url.to_owned(),
        revision: revision.map(str::to_owned),
        ..GitSource::default()
    }
}

async fn resolve(
    resolver: &BuilderResolver,
    source: &GitSource,
    secret: Option<&BTreeMap<String, ByteString>>,
) -> SourceCheck {
    resolver
        .resolve(ResolveRequest {
            source: SourceKind::Git(source),
            secret,
        })
        .await
}

fn commit_of(check: &SourceCheck) -> String {
    match check {
        SourceCheck::Resolved(r) => r.git.as_ref().unwrap().commit.clone(),
        other => panic!("{other:?}"),
    }
}

fn basic_auth(password: &str) -> BTreeMap<String, ByteString> {
    BTreeMap::from([
        ("username".to_owned(), ByteString(b"alice".to_vec())),
        (
            "password".to_owned(),
            ByteString(password.as_bytes().to_vec()),
        ),
    ])
}

#[tokio::test]
async fn a_branch_resolves_and_a_moved_branch_resolves_to_its_new_commit() {
    let root = tempfile::tempdir().unwrap();
    let served = root.path().join("srv");
    let repo = Repo::create(&served, "app.git");
    let first = repo.write("Dockerfile", "FROM scratch\n").commit("first");
    repo.push();
    let daemon = GitDaemon::start(&served);
    let scratch = tempfile::tempdir().unwrap();
    let resolver = BuilderResolver::new(scratch.path().to_owned());
    let source = git(&daemon.url("app.git"), Some("main"));

    assert_eq!(commit_of(&resolve(&resolver, &source, None).await), first);
    // The default branch when no revision is given.
    let head = git(&daemon.url("app.git"), None);
    assert_eq!(commit_of(&resolve(&resolver, &head, None).await), first);

    let second = repo.write("a", "b").commit("second");
    repo.push();
    assert_ne!(first, second);
    assert_eq!(commit_of(&resolve(&resolver, &source, None).await), second);

    match resolve(
        &resolver,
        &git(&daemon.url("app.git"), Some("no-such-branch")),
        None,
    )
    .await
    {
        SourceCheck::Failed { kind, message } => {
            assert_eq!(kind, SourceErrorKind::NotFound, "{message}");
            assert!(message.contains("no-such-branch"), "{message}");
            assert!(message.contains("app.git"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let closed = git_support::free_port();
    let unreachable = git(&format!("git://127.0.0.1:{closed}/app.git"), Some("main"));
    match resolve(&resolver, &unreachable, None).await {
        SourceCheck::Failed { kind, .. } => assert_eq!(kind, SourceErrorKind::Unavailable),
        other => panic!("{other:?}"),
    }
    // No Secret directory stays behind.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn basic_auth_comes_from_the_secret_and_a_wrong_password_is_an_auth_failure() {
    let root = tempfile::tempdir().unwrap();
    let served = root.path().join("srv");
    let repo = Repo::create(&served, "app.git");
    let first = repo.write("Dockerfile", "FROM scratch\n").commit("first");
    repo.push();
    let server = HttpGit::start(
        &served,
        http::Options {
            credentials: Some(("alice".into(), PASSWORD.into())),
            redirect_to: None,
        },
    );
    let scratch = tempfile::tempdir().unwrap();
    let resolver = BuilderResolver::new(scratch.path().to_owned());
    let source = git(&server.url("app.git"), Some("main"));

    let good = basic_auth(PASSWORD);
    assert_eq!(
        commit_of(&resolve(&resolver, &source, Some(&good)).await),
        first
    );
    for secret in [Some(basic_auth("wrong-password-1")), None] {
        match resolve(&resolver, &source, secret.as_ref()).await {
            SourceCheck::Failed { kind, message } => {
                assert_eq!(kind, SourceErrorKind::Auth, "{message}");
                assert!(message.contains("main"), "{message}");
                assert!(!message.contains("wrong-password-1"), "{message}");
                assert!(!message.contains(PASSWORD), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}
