//! Issue 7's "done when" in the kube emulator: an ImageBuild with a git source reports the
//! commit it built, end to end — the real operator resolving the revision, the real
//! `stratum pod-build` fetching it in a builder pod, a real registry, real kubectl — plus
//! `pollInterval` rebuilds and source failures. The servers are the builder tests' own
//! (`git daemon`, smart HTTP with basic auth, HTTPS with a test CA), included with `#[path]`.
//! Runs as root. See docs/arch/e2e.md, "Sources".
//!
//! The scenarios share one cluster and run at the same time, each with its own ImageBuild.

#[path = "../../builder-pod/tests/git_support/mod.rs"]
mod git_support;
#[path = "../../builder-pod/tests/source_object_support/mod.rs"]
mod source_object_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use git_support::daemon::GitDaemon;
use git_support::http::{self, HttpGit};
use git_support::repo::Repo;
use serde_json::{Value, json};
use source_object_support::{Entry, HttpsServer};
use stratum_crds::contract::RequestSource;
use stratum_crds::{BuildRequest, ImageBuild, Phase, reason};
use stratum_e2e::e2e::{Cluster, ClusterOptions, all_passed};

/// Generous: a build is a few seconds on a quiet machine, much more on a loaded 2-core one.
const TIMEOUT: Duration = Duration::from_secs(180);
/// The CRD's minimum `pollInterval`.
const POLL: &str = "5s";
/// The smart-HTTP server's user and password (the Secret's `username` / `password`).
const USER: &str = "alice";
const PASSWORD: &str = "e2e-s3cret-token-7d1f";
/// A password the server refuses; it must not appear anywhere either.
const WRONG_PASSWORD: &str = "wrong-pass-e2e-4c2a";
/// The Dockerfile of every context: the image holds one file from the context.
const DOCKERFILE: &str = "FROM {BASE}\nCOPY message.txt /message.txt\n";

/// The servers every scenario uses, and the repositories they serve.
struct Servers {
    _root: tempfile::TempDir,
    /// `app.git`: `app/` is the context; a decoy `message.txt` sits at the root.
    app: Repo,
    /// `private.git`, served by `http` only to `alice`.
    private: Repo,
    daemon: GitDaemon,
    http: HttpGit,
    https: HttpsServer,
}

impl Servers {
    fn start(base: &str) -> Servers {
        let root = tempfile::tempdir().expect("a temporary directory");
        let served = root.path().join("srv");
        let dockerfile = DOCKERFILE.replace("{BASE}", base);
        let app = Repo::create(&served, "app.git");
        app.write("app/Dockerfile", &dockerfile)
            .write("app/message.txt", "first\n")
            // Built only if contextDir were ignored.
            .write("message.txt", "the repository root\n")
            .write("Dockerfile", &dockerfile)
            .commit("first");
        app.push();
        let private = Repo::create(&served, "private.git");
        private
            .write("Dockerfile", &dockerfile)
            .write("message.txt", "private\n")
            .commit("private");
        private.push();
        let daemon = GitDaemon::start(&served);
        let http = HttpGit::start(
            &served,
            http::Options {
                credentials: Some((USER.into(), PASSWORD.into())),
                redirect_to: None,
            },
        );
        let https = HttpsServer::start();
        Servers {
            _root: root,
            app,
            private,
            daemon,
            http,
            https,
        }
    }
}

/// `git rev-parse <rev>` in the bare repository (what the server holds, not the work tree).
fn rev_parse(repo: &Repo, rev: &str) -> String {
    git_support::repo::git(&repo.bare, &["rev-parse", rev])
}

/// An ImageBuild `name` with `source` (the JSON of `spec.source`), pushing to
/// `<registry>/e2e/<name>:1`.
fn build_with(cluster: &Cluster, name: &str, source: Value) -> anyhow::Result<ImageBuild> {
    let mut build = cluster.inline_build(name, "FROM scratch\n");
    build.spec.source = serde_json::from_value(source).context("spec.source")?;
    Ok(build)
}

/// Creates ImageBuild `build` through `kubectl apply`, as a user would.
async fn apply(cluster: &Cluster, build: &ImageBuild) -> anyhow::Result<()> {
    let manifest = serde_json::to_string(build)?;
    cluster
        .kubectl_stdin(&["apply", "-f", "-"], &manifest)
        .await?;
    Ok(())
}

/// `/message.txt` in the top layer of `image` (by digest, on the test registry), read from the
/// blob skopeo copied out of the registry.
fn message_in(image: &str, scratch: &Path) -> anyhow::Result<String> {
    let dir = tempfile::tempdir_in(scratch)?;
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{image}"))
        .arg(format!("dir:{}", dir.path().display()))
        .output()
        .context("running skopeo")?;
    ensure!(
        out.status.success(),
        "skopeo copy {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json"))?)?;
    let top = manifest["layers"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|l| l["digest"].as_str())
        .with_context(|| format!("no layers in {manifest}"))?;
    let blob = dir.path().join(top.trim_start_matches("sha256:"));
    // GNU tar recognises the compression of a file by its bytes.
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(&blob)
        .arg("message.txt")
        .output()
        .context("running tar")?;
    ensure!(
        out.status.success(),
        "tar -xOf {} message.txt: {}",
        blob.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The BuildRequest pod `pod` was given (its `STRATUM_BUILD_REQUEST`).
async fn request_of(cluster: &Cluster, pod: &str) -> anyhow::Result<BuildRequest> {
    let pod = cluster.pod_api().get(pod).await.context(pod.to_owned())?;
    let json = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == stratum_crds::contract::REQUEST_ENV)
        .and_then(|e| e.value.clone())
        .context("no build request in the pod")?;
    Ok(serde_json::from_str(&json)?)
}

/// The commit a pod's request told the builder to fetch.
async fn requested_commit(cluster: &Cluster, pod: &str) -> anyhow::Result<String> {
    match request_of(cluster, pod).await?.source {
        RequestSource::Git { commit, .. } => Ok(commit),
        other => bail!("pod {pod} builds {other:?}, not a git source"),
    }
}

/// The final status of ImageBuild `name`.
async fn finished(cluster: &Cluster, name: &str) -> anyhow::Result<stratum_crds::ImageBuildStatus> {
    let build = cluster.wait_finished(name, TIMEOUT).await?;
    build.status.context("a finished build has a status")
}

// --- scenario 1 + 2: git://, contextDir, the commit built; pollInterval ----------------------

/// A git build over `git://` (`revision: main`, `contextDir: app`, `pollInterval`) reports the
/// commit `main` points at, the image holds that commit's file, and the pod was asked for that
/// commit. Polls of an unmoved branch start nothing; a push to `main` starts a rebuild of the
/// new commit, and the first build stays in `status.history`.
async fn git_and_polling(cluster: &Cluster, servers: &Servers) -> anyhow::Result<()> {
    let name = "from-git";
    let build = build_with(
        cluster,
        name,
        json!({"git": {
            "url": servers.daemon.url("app.git"),
            "revision": "main",
            "contextDir": "app",
            "pollInterval": POLL,
        }}),
    )?;
    apply(cluster, &build).await?;

    let first = rev_parse(&servers.app, "main");
    let status = finished(cluster, name).await?;
    ensure!(status.phase == Some(Phase::Succeeded), "{status:?}");
    let built = status.source.as_ref().and_then(|s| s.git.as_ref());
    ensure!(
        built.map(|g| g.commit.as_str()) == Some(first.as_str()),
        "status.source.git {built:?}, main is {first}"
    );
    let pod = status.pod_name.clone().context("podName")?;
    ensure!(pod == "from-git-1-1", "{pod}");
    let asked = requested_commit(cluster, &pod).await?;
    ensure!(
        asked == first,
        "the pod was asked for {asked}, main is {first}"
    );
    let image = status.image.clone().context("status.image")?;
    let message = message_in(&image, cluster.dir())?;
    ensure!(message == "first\n", "/message.txt of {image}: {message:?}");

    // --- unchanged: the operator asks the remote again, and builds nothing -------------------
    // Two polls: reconciles of one build never overlap, so the first poll's decision is
    // written by the time the second one asks.
    let before = resolutions(cluster, &first);
    wait_until(cluster, "two polls of an unmoved branch", || {
        resolutions(cluster, &first) >= before + 2
    })
    .await?;
    let now = cluster.build(name).await?.context("the build")?;
    let status = now.status.context("status")?;
    ensure!(
        status.rebuild.is_none() && status.phase == Some(Phase::Succeeded),
        "an unmoved branch must not rebuild: {status:?}"
    );
    let pods = cluster.pods(Some(name)).await?;
    ensure!(
        pods.len() == 1,
        "one pod before the push, not {}",
        pods.len()
    );

    // --- a push to main: a rebuild of the new commit ---------------------------------------
    servers.app.write("app/message.txt", "second\n");
    let second = servers.app.commit("second");
    servers.app.push();
    ensure!(rev_parse(&servers.app, "main") == second);
    let rebuilt = cluster
        .wait_for(name, "rebuild 1 finished", TIMEOUT, |b| {
            b.status
                .as_ref()
                .is_some_and(|s| s.rebuild == Some(1) && s.phase.is_some_and(Phase::is_terminal))
        })
        .await?;
    let status = rebuilt.status.context("status")?;
    ensure!(status.phase == Some(Phase::Succeeded), "{status:?}");
    let built = status.source.as_ref().and_then(|s| s.git.as_ref());
    ensure!(
        built.map(|g| g.commit.as_str()) == Some(second.as_str()),
        "the rebuild reports {built:?}, main is {second}"
    );
    ensure!(
        status.pod_name.as_deref() == Some("from-git-1r1-1"),
        "{status:?}"
    );
    // The user sees why it rebuilt and what it pushed: Events of their own, not folded into
    // the first build's `Pending` and `BuildSucceeded` (kube's Recorder would keep their notes).
    let events = events_of(cluster, name).await?;
    let digest = status.digest.clone().context("status.digest")?;
    ensure!(
        events.contains(&format!("the source moved to {second}")) && events.contains(&digest),
        "Events about the moved source and the rebuild's {digest}: {events}"
    );
    let asked = requested_commit(cluster, "from-git-1r1-1").await?;
    ensure!(asked == second, "the rebuild's pod was asked for {asked}");
    let image = status.image.clone().context("status.image")?;
    let message = message_in(&image, cluster.dir())?;
    ensure!(
        message == "second\n",
        "/message.txt of {image}: {message:?}"
    );
    let earlier = status
        .history
        .iter()
        .find(|h| h.source_revision.as_deref() == Some(first.as_str()))
        .with_context(|| format!("the first build in history: {:?}", status.history))?;
    ensure!(
        earlier.phase == Phase::Succeeded && earlier.rebuild.unwrap_or(0) == 0,
        "{earlier:?}"
    );
    ensure!(
        earlier.digest.is_some() && earlier.digest != status.digest,
        "the first build's digest in history: {earlier:?}, now {:?}",
        status.digest
    );
    Ok(())
}

/// How often the operator's log says it resolved a source to `revision`.
fn resolutions(cluster: &Cluster, revision: &str) -> usize {
    cluster
        .operator_logs()
        .lines()
        .filter(|l| l.contains("source resolved") && l.contains(revision))
        .count()
}

/// Polls `done` every 200 ms; on timeout the error names `what` and carries the diagnostics.
async fn wait_until(cluster: &Cluster, what: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        if Instant::now() >= deadline {
            bail!(
                "{what}: not within {TIMEOUT:?}\n{}",
                cluster.diagnostics().await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

// --- scenario 3: smart HTTP with basic auth -----------------------------------------------------

/// Creates a `kubernetes.io/basic-auth` Secret through kubectl.
async fn basic_auth_secret(cluster: &Cluster, name: &str, password: &str) -> anyhow::Result<()> {
    cluster
        .kubectl(&[
            "create",
            "secret",
            "generic",
            name,
            "--type=kubernetes.io/basic-auth",
            &format!("--from-literal=username={USER}"),
            &format!("--from-literal=password={password}"),
        ])
        .await?;
    Ok(())
}

/// The Secret's credentials reach the operator's resolution and the builder's fetch: the build
/// succeeds with the commit the server holds.
async fn http_auth(cluster: &Cluster, servers: &Servers) -> anyhow::Result<()> {
    basic_auth_secret(cluster, "git-auth", PASSWORD).await?;
    let build = build_with(
        cluster,
        "private",
        json!({"git": {
            "url": servers.http.url("private.git"),
            "revision": "main",
            "secretRef": {"name": "git-auth"},
        }}),
    )?;
    apply(cluster, &build).await?;
    let status = finished(cluster, "private").await?;
    ensure!(status.phase == Some(Phase::Succeeded), "{status:?}");
    let commit = rev_parse(&servers.private, "main");
    let built = status.source.as_ref().and_then(|s| s.git.as_ref());
    ensure!(
        built.map(|g| g.commit.as_str()) == Some(commit.as_str()),
        "status.source.git {built:?}, main is {commit}"
    );
    let image = status.image.clone().context("status.image")?;
    let message = message_in(&image, cluster.dir())?;
    ensure!(
        message == "private\n",
        "/message.txt of {image}: {message:?}"
    );
    // The builder fetched that commit with the Secret mounted into its pod.
    match request_of(cluster, "private-1-1").await?.source {
        RequestSource::Git {
            commit: asked,
            auth_dir,
            ..
        } => ensure!(
            asked == commit && auth_dir.is_some(),
            "the pod was asked for {asked} with auth {auth_dir:?}"
        ),
        other => bail!("private-1-1 builds {other:?}"),
    }
    Ok(())
}

/// A wrong password: `Failed` / `SourceAuthFailed` naming the URL, no pod, and neither password
/// in the status, the Events or the operator's log.
async fn http_wrong_password(cluster: &Cluster, servers: &Servers) -> anyhow::Result<()> {
    basic_auth_secret(cluster, "git-auth-wrong", WRONG_PASSWORD).await?;
    let url = servers.http.url("private.git");
    let build = build_with(
        cluster,
        "refused",
        json!({"git": {
            "url": url,
            "revision": "main",
            "secretRef": {"name": "git-auth-wrong"},
        }}),
    )?;
    apply(cluster, &build).await?;
    let status = finished(cluster, "refused").await?;
    ensure!(status.phase == Some(Phase::Failed), "{status:?}");
    let failure = status.failure.as_ref().context("failure")?;
    ensure!(
        failure.reason == reason::SOURCE_AUTH_FAILED,
        "reason {}: {failure:?}",
        failure.reason
    );
    ensure!(failure.message.contains(&url), "{failure:?}");
    let pods = cluster.pods(Some("refused")).await?;
    ensure!(pods.is_empty(), "no pod for refused credentials");

    let events = events_of(cluster, "refused").await?;
    ensure!(
        events.contains(reason::SOURCE_AUTH_FAILED),
        "a SourceAuthFailed Event: {events}"
    );
    let build = cluster
        .kubectl(&["get", "ib", "refused", "-o", "json"])
        .await?;
    let described = cluster.kubectl(&["describe", "ib", "refused"]).await?;
    for (what, text) in [
        ("the ImageBuild", build),
        ("kubectl describe", described),
        ("the Events", events),
        ("the operator's log", cluster.operator_logs()),
    ] {
        for secret in [WRONG_PASSWORD, PASSWORD] {
            ensure!(!text.contains(secret), "{what} shows a password:\n{text}");
        }
    }
    Ok(())
}

/// The Events about ImageBuild `name`, as JSON text.
async fn events_of(cluster: &Cluster, name: &str) -> anyhow::Result<String> {
    cluster
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "json",
        ])
        .await
}

// --- scenario 4: an unknown ref --------------------------------------------------------------

/// A revision the remote does not have: `Failed` / `FetchFailed` naming the URL and the ref,
/// decided by the operator before any pod.
async fn unknown_ref(cluster: &Cluster, servers: &Servers) -> anyhow::Result<()> {
    let url = servers.daemon.url("app.git");
    let build = build_with(
        cluster,
        "no-ref",
        json!({"git": {"url": url, "revision": "no-such-branch"}}),
    )?;
    apply(cluster, &build).await?;
    let status = finished(cluster, "no-ref").await?;
    ensure!(status.phase == Some(Phase::Failed), "{status:?}");
    let failure = status.failure.as_ref().context("failure")?;
    ensure!(failure.reason == reason::FETCH_FAILED, "{failure:?}");
    ensure!(
        failure.message.contains(&url) && failure.message.contains("no-such-branch"),
        "the message names the URL and the ref: {failure:?}"
    );
    let pods = cluster.pods(Some("no-ref")).await?;
    ensure!(pods.is_empty(), "no pod for an unknown ref");
    Ok(())
}

// --- scenario 5: a tar.gz over HTTPS with a test CA and a sha256 pin -----------------------------

/// The context archive: a Dockerfile and the file it copies.
fn context_archive(base: &str) -> Vec<u8> {
    let dockerfile = DOCKERFILE.replace("{BASE}", base);
    source_object_support::gzip(&source_object_support::tar(&[
        Entry::File("Dockerfile", dockerfile.as_bytes()),
        Entry::File("message.txt", b"from https\n"),
    ]))
}

/// `url` source over HTTPS: the Secret carries the test CA (`ca.crt`). The right pin builds and
/// `status.source.url.sha256` records it; a wrong pin is `Failed` / `SourceMismatch`, pushes
/// nothing, and `status.source.url.sha256` shows the digest of what the server sent.
async fn https_archive(cluster: &Cluster, servers: &Servers) -> anyhow::Result<()> {
    let archive = context_archive(&cluster.registry().base_image());
    servers.https.put("ctx.tar.gz", &archive);
    let pin = source_object_support::sha256_hex(&archive);
    let ca = servers.https.certs.ca.to_string_lossy().into_owned();
    cluster
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "https-ca",
            &format!("--from-file=ca.crt={ca}"),
        ])
        .await?;
    let url = servers.https.url("files/ctx.tar.gz");
    let source = |sha256: &str| json!({"url": {"url": url, "sha256": sha256, "secretRef": {"name": "https-ca"}}});
    let wrong_pin = source_object_support::sha256_hex(b"something else");
    apply(cluster, &build_with(cluster, "archive", source(&pin))?).await?;
    apply(
        cluster,
        &build_with(cluster, "bad-pin", source(&wrong_pin))?,
    )
    .await?;

    let status = finished(cluster, "archive").await?;
    ensure!(status.phase == Some(Phase::Succeeded), "{status:?}");
    let fetched = status.source.as_ref().and_then(|s| s.url.as_ref());
    ensure!(
        fetched.and_then(|u| u.sha256.as_deref()) == Some(pin.as_str()),
        "status.source.url {fetched:?}, the archive is {pin}"
    );
    ensure!(
        fetched.is_some_and(|u| u.etag.is_some()),
        "the operator's probe records the ETag: {fetched:?}"
    );
    let image = status.image.clone().context("status.image")?;
    let message = message_in(&image, cluster.dir())?;
    ensure!(
        message == "from https\n",
        "/message.txt of {image}: {message:?}"
    );

    let status = finished(cluster, "bad-pin").await?;
    ensure!(status.phase == Some(Phase::Failed), "{status:?}");
    let failure = status.failure.as_ref().context("failure")?;
    ensure!(failure.reason == reason::SOURCE_MISMATCH, "{failure:?}");
    // What was fetched, not what was pinned (docs/user-guide.md, "sha256 pins the content").
    let fetched = status.source.as_ref().and_then(|s| s.url.as_ref());
    ensure!(
        fetched.and_then(|u| u.sha256.as_deref()) == Some(pin.as_str()),
        "status.source.url {fetched:?}: the archive served is {pin}, the pin {wrong_pin}"
    );
    ensure!(
        status.digest.is_none() && status.image.is_none(),
        "a mismatched archive is not built: {status:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn git_and_url_sources_build_what_status_reports_and_fail_with_their_reasons()
-> anyhow::Result<()> {
    let cluster = Cluster::start(ClusterOptions::default()).await?;
    let base = cluster.registry().base_image();
    let servers = tokio::task::spawn_blocking(move || Servers::start(&base)).await?;
    let (g, h, w, u, a) = tokio::join!(
        git_and_polling(&cluster, &servers),
        http_auth(&cluster, &servers),
        http_wrong_password(&cluster, &servers),
        unknown_ref(&cluster, &servers),
        https_archive(&cluster, &servers),
    );
    let all = all_passed([
        ("git:// with contextDir, then pollInterval", g),
        ("smart HTTP with basic auth", h),
        ("smart HTTP with a wrong password", w),
        ("an unknown ref", u),
        ("a pinned tar.gz over HTTPS", a),
    ]);
    cluster.explain(all).await
}
