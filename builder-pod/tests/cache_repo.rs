//! `--cache-repo` and `cache.repository` end to end: the real binary, a real registry holding the
//! cache, and builders with empty local caches (fresh pods) reusing each other's steps. Runs as
//! root (overlayfs, namespaces).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use stratum_builder::registry::{ImagePush, push_image};
use support::busybox::{Format, busybox_base};
use support::proxy::{Fault, FaultProxy, Rule, error_body};
use support::registry::{Auth, TestRegistry};

/// A registry holding the busybox base as `base/busybox:1` (the cache repository lives there
/// too), and a scratch directory.
struct Fixture {
    registry: TestRegistry,
    dir: tempfile::TempDir,
}

/// What one build printed and produced.
struct Built {
    image_id: String,
    manifest_digest: String,
    /// `cached` of every `step_finished` event, in order (FROM lines count as cached).
    cached: Vec<bool>,
    /// The layer digest each step added, if any.
    layers: Vec<Option<String>>,
    warnings: Vec<String>,
    log: String,
}

impl Fixture {
    fn new() -> Self {
        let registry = TestRegistry::start(Auth::None);
        let dir = tempfile::tempdir().unwrap();
        let base = busybox_base(dir.path(), Format::Oci);
        let tag = "1".parse().unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(push_image(
                &registry.client(),
                &ImagePush {
                    repository: &registry.repo("base/busybox"),
                    blobs: &base.blobs,
                    manifest: &base.manifest,
                    tags: std::slice::from_ref(&tag),
                    mount_from: None,
                    concurrency: 2,
                },
            ))
            .unwrap();
        Self { registry, dir }
    }

    fn cache_repo(&self) -> String {
        format!("{}/team/app-cache", self.registry.host_port)
    }

    fn context(&self, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
        let ctx = self.dir.path().join("context");
        std::fs::create_dir_all(&ctx).unwrap();
        let base = format!("{}/base/busybox:1", self.registry.host_port);
        std::fs::write(ctx.join("Dockerfile"), dockerfile.replace("{BASE}", &base)).unwrap();
        for (path, content) in files {
            std::fs::write(ctx.join(path), content).unwrap();
        }
        ctx
    }

    /// A fresh, empty cache dir: a new builder pod.
    fn fresh_cache(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(format!("cache-{name}"));
        assert!(!dir.exists(), "{name} is used once");
        dir
    }

    /// `stratum build --progress json` with the registry (and `extra_insecure`) insecure.
    fn run(&self, cache: &Path, args: &[&str], ctx: &Path, extra_insecure: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_stratum"))
            .arg("build")
            .arg("--cache-dir")
            .arg(cache)
            .args(["--insecure-registry", &self.registry.host_port])
            .args(["--insecure-registry", extra_insecure])
            .args(["--progress", "json"])
            .arg("--metadata-file")
            .arg(cache.with_extension("metadata.json"))
            .args(args)
            .arg(ctx)
            .env_remove("SOURCE_DATE_EPOCH")
            .env("HOME", self.dir.path())
            .output()
            .unwrap()
    }

    fn build(&self, cache: &Path, args: &[&str], ctx: &Path) -> Built {
        let out = self.run(cache, args, ctx, "localhost:1");
        parse_build(&out, cache)
    }

    fn tags(&self, repo: &str) -> Vec<String> {
        tags(repo, None)
    }

    /// The file the registry keeps a blob's bytes in.
    fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.registry
            .storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// The tags of `repo` (none if it does not exist), as skopeo lists them.
fn tags(repo: &str, creds: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["list-tags", "--tls-verify=false"]);
    if let Some(creds) = creds {
        cmd.args(["--creds", creds]);
    }
    let out = cmd.arg(format!("docker://{repo}")).output().unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    listed["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

fn parse_build(out: &Output, cache: &Path) -> Built {
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "stratum failed:\n{log}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let events: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .collect();
    let metadata: Value =
        serde_json::from_slice(&std::fs::read(cache.with_extension("metadata.json")).unwrap())
            .unwrap();
    Built {
        image_id: metadata["containerimage.config.digest"]
            .as_str()
            .unwrap()
            .to_owned(),
        manifest_digest: metadata["containerimage.digest"]
            .as_str()
            .unwrap()
            .to_owned(),
        cached: finished
            .iter()
            .map(|e| e["cached"].as_bool().unwrap())
            .collect(),
        layers: finished
            .iter()
            .map(|e| e["layer"].as_str().map(str::to_owned))
            .collect(),
        warnings: events
            .iter()
            .filter(|e| e["event"] == "warning")
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .collect(),
        log,
    }
}

/// Metadata steps, COPYs, a RUN that adds a file and one that changes nothing (an entry
/// without a layer).
const APP: &str = "FROM {BASE}
ENV GREETING=hello
WORKDIR /srv
COPY a.txt /a.txt
RUN echo \"ran-$GREETING-one\" | tee /one
RUN true
COPY b.txt /b.txt
RUN echo \"ran-two-$GREETING\" | tee /two
CMD [\"cat\", \"/two\"]
";

/// Waits until the wall clock is in a later second: history times have one-second resolution
/// (RFC 3339), so on a quiet machine two small builds can otherwise share every timestamp and
/// rightly produce the same image ID.
fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

const FILES: &[(&str, &str)] = &[("a.txt", "a\n"), ("b.txt", "b\n")];

#[test]
fn a_fresh_builder_reuses_every_step_and_reproduces_the_image() {
    let f = Fixture::new();
    let ctx = f.context(APP, FILES);
    let repo = f.cache_repo();
    let cache_repo = ["--cache-repo", repo.as_str()];

    let a = f.build(&f.fresh_cache("a"), &cache_repo, &ctx);
    // FROM, ENV, WORKDIR, COPY, RUN, RUN, COPY, RUN, CMD: metadata steps are never "cached".
    assert_eq!(
        a.cached,
        [true, false, false, false, false, false, false, false, false]
    );
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    let tags = f.tags(&repo);
    // WORKDIR, both COPYs and the three RUNs have entries; ENV and CMD change only the config.
    assert_eq!(tags.len(), 6, "{tags:?}");
    assert!(
        tags.iter()
            .all(|t| t.starts_with("sha256-") && t.len() == 71)
    );

    let b = f.build(&f.fresh_cache("b"), &cache_repo, &ctx);
    assert!(
        !b.log.contains("ran-hello-one"),
        "the RUN ran again:\n{}",
        b.log
    );
    // The steps with cache entries are all hits; metadata steps are recomputed as always.
    assert_eq!(
        b.cached,
        [true, false, true, true, true, true, true, true, false]
    );
    assert_eq!(b.layers, a.layers);
    assert_eq!(
        b.image_id, a.image_id,
        "same config: history times round-trip"
    );
    assert_eq!(b.manifest_digest, a.manifest_digest);
    assert!(b.warnings.is_empty(), "{:?}", b.warnings);

    // Without the cache repository a fresh builder runs everything again.
    next_second();
    let alone = f.build(&f.fresh_cache("alone"), &[], &ctx);
    assert!(alone.log.contains("ran-hello-one"));
    assert_ne!(alone.image_id, a.image_id, "new history times");

    std::fs::write(ctx.join("b.txt"), "b changed\n").unwrap();
    let c = f.build(&f.fresh_cache("c"), &cache_repo, &ctx);
    assert_eq!(
        c.cached,
        [true, false, true, true, true, true, false, false, false]
    );
    assert!(c.log.contains("ran-two-hello") && !c.log.contains("ran-hello-one"));
    assert_eq!(f.tags(&repo).len(), 8, "the two new steps were written");
}

#[test]
fn a_warm_local_cache_fills_an_empty_repository() {
    let f = Fixture::new();
    let ctx = f.context(APP, FILES);
    let repo = f.cache_repo();
    let warm = f.fresh_cache("warm");
    let first = f.build(&warm, &[], &ctx);
    assert!(f.tags(&repo).is_empty());

    let again = f.build(&warm, &["--cache-repo", repo.as_str()], &ctx);
    assert_eq!(
        again.cached,
        [true, false, true, true, true, true, true, true, false],
        "local hits"
    );
    assert_eq!(f.tags(&repo).len(), 6, "every local hit was written");

    let fresh = f.build(
        &f.fresh_cache("fresh"),
        &["--cache-repo", repo.as_str()],
        &ctx,
    );
    assert_eq!(fresh.cached, again.cached);
    assert_eq!(fresh.image_id, first.image_id);
    assert_eq!(fresh.manifest_digest, first.manifest_digest);
}

#[test]
fn no_cache_reads_nothing_but_refreshes_the_repository() {
    let f = Fixture::new();
    let ctx = f.context(APP, FILES);
    let repo = f.cache_repo();
    let cache_repo = ["--cache-repo", repo.as_str()];
    let old = f.build(&f.fresh_cache("old"), &cache_repo, &ctx);

    next_second();
    let refreshed = f.build(
        &f.fresh_cache("refresh"),
        &["--no-cache", "--cache-repo", repo.as_str()],
        &ctx,
    );
    assert!(
        refreshed.cached[1..].iter().all(|c| !c),
        "{:?}",
        refreshed.cached
    );
    assert!(refreshed.log.contains("ran-hello-one"));
    assert_ne!(refreshed.image_id, old.image_id, "new history times");
    assert!(refreshed.warnings.is_empty(), "{:?}", refreshed.warnings);

    let next = f.build(&f.fresh_cache("next"), &cache_repo, &ctx);
    assert_eq!(
        next.image_id, refreshed.image_id,
        "the entries were replaced"
    );
    assert_eq!(f.tags(&repo).len(), 6);
}

#[test]
fn the_cache_repository_is_read_and_written_with_the_registry_credentials() {
    let f = Fixture::new();
    let ctx = f.context(APP, FILES);
    let (user, pass) = ("cacher", "s3cret-pass");
    let private = TestRegistry::start(Auth::Htpasswd {
        user: user.into(),
        pass: pass.into(),
    });
    let repo = format!("{}/team/app-cache", private.host_port);
    let config = f.dir.path().join("config.json");
    let auths = serde_json::json!({
        "auths": {private.host_port.as_str(): {"username": user, "password": pass}}
    });
    std::fs::write(&config, auths.to_string()).unwrap();
    let creds = format!("{user}:{pass}");

    // Without credentials: a 401 for the reads and for the first write, two warnings.
    let cache = f.fresh_cache("anonymous");
    let out = f.run(
        &cache,
        &["--cache-repo", repo.as_str()],
        &ctx,
        &private.host_port,
    );
    let anonymous = parse_build(&out, &cache);
    assert_eq!(anonymous.warnings.len(), 2, "{:?}", anonymous.warnings);
    assert!(tags(&repo, Some(&creds)).is_empty());

    let with_config = |name: &str| {
        let cache = f.fresh_cache(name);
        let out = f.run(
            &cache,
            &[
                "--cache-repo",
                repo.as_str(),
                "--registry-config",
                config.to_str().unwrap(),
            ],
            &ctx,
            &private.host_port,
        );
        parse_build(&out, &cache)
    };
    let a = with_config("a");
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    assert_eq!(tags(&repo, Some(&creds)).len(), 6);
    let b = with_config("b");
    assert_eq!(
        b.cached,
        [true, false, true, true, true, true, true, true, false]
    );
    assert_eq!(b.image_id, a.image_id);
    assert!(!b.log.contains(pass), "the password never reaches the log");
}

#[test]
fn corrupt_or_missing_blobs_in_the_repository_are_misses() {
    let f = Fixture::new();
    let ctx = f.context(APP, FILES);
    let repo = f.cache_repo();
    let cache_repo = ["--cache-repo", repo.as_str()];
    let a = f.build(&f.fresh_cache("a"), &cache_repo, &ctx);

    // Steps 4 (COPY a.txt) and 5 (RUN … > /one) have layers: flip the bytes of the first, delete
    // the second.
    let copy_blob = f.blob_data(a.layers[3].as_deref().unwrap());
    let mut bytes = std::fs::read(&copy_blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&copy_blob, bytes).unwrap();
    std::fs::remove_file(f.blob_data(a.layers[4].as_deref().unwrap())).unwrap();

    let b = f.build(
        &f.fresh_cache("b"),
        &[
            "--cache-repo",
            repo.as_str(),
            "--tag",
            "app:1",
            "--output",
            &format!("type=oci,dest={}", f.dir.path().join("b.oci").display()),
        ],
        &ctx,
    );
    // The keys do not depend on results, so the intact entries after the bad ones still hit.
    assert_eq!(
        b.cached,
        [true, false, true, false, false, true, true, true, false]
    );
    assert_eq!(b.warnings.len(), 2, "{:?}", b.warnings);
    assert!(
        b.warnings.iter().all(|w| w.contains("is unusable")),
        "{:?}",
        b.warnings
    );
    assert!(b.log.contains("ran-hello-one"));
    assert!(
        b.warnings[0].contains("content digest is"),
        "{}",
        b.warnings[0]
    );
    assert!(b.warnings[1].contains("not found"), "{}", b.warnings[1]);

    // The image is complete and right.
    let layout = f.dir.path().join("b.oci");
    let status = Command::new("umoci")
        .args(["raw", "unpack", "--rootless", "--image"])
        .arg(format!("{}:1", layout.display()))
        .arg(f.dir.path().join("rootfs"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "umoci unpack");
    let rootfs = f.dir.path().join("rootfs");
    for (file, content) in [
        ("a.txt", "a\n"),
        ("one", "ran-hello-one\n"),
        ("b.txt", "b\n"),
        ("two", "ran-two-hello\n"),
    ] {
        assert_eq!(
            std::fs::read_to_string(rootfs.join(file)).unwrap(),
            content,
            "{file}"
        );
    }
}

#[test]
fn a_repository_that_refuses_writes_or_is_down_costs_only_a_warning() {
    let f = Fixture::new();
    let ctx = f.context(APP, FILES);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let denied = || Fault::Respond {
        status: 403,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: error_body("DENIED", "requested access to the resource is denied"),
    };
    let read_only = runtime.block_on(FaultProxy::start(
        &f.registry.host_port,
        vec![
            Rule::new("POST", "/blobs/uploads", denied()).times(usize::MAX),
            Rule::new("PUT", "/manifests/", denied()).times(usize::MAX),
        ],
    ));
    let repo = format!("{}/team/app-cache", read_only.host_port);
    let cache = f.fresh_cache("refused");
    let out = f.run(
        &cache,
        &["--cache-repo", repo.as_str()],
        &ctx,
        &read_only.host_port,
    );
    let refused = parse_build(&out, &cache);
    assert_eq!(refused.warnings.len(), 1, "{:?}", refused.warnings);
    assert!(
        refused.warnings[0].contains("cannot write entry")
            && refused.warnings[0].contains("denied"),
        "{:?}",
        refused.warnings
    );
    assert!(
        refused.cached[1..].iter().all(|c| !c),
        "{:?}",
        refused.cached
    );
    assert!(f.tags(&f.cache_repo()).is_empty(), "nothing was written");
    drop(read_only);

    // Nothing listens here: every read and the first write fail after their retries.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let repo = format!("{closed}/team/app-cache");
    let cache = f.fresh_cache("down");
    let out = f.run(&cache, &["--cache-repo", repo.as_str()], &ctx, &closed);
    let down = parse_build(&out, &cache);
    assert_eq!(down.warnings.len(), 2, "{:?}", down.warnings);
    assert!(
        down.warnings[0].contains("cannot be read"),
        "{:?}",
        down.warnings
    );
    assert!(
        down.warnings[1].contains("cannot write"),
        "{:?}",
        down.warnings
    );
    assert!(down.log.contains("ran-hello-one"));
}

#[test]
fn cache_repo_must_name_a_repository() {
    let f = Fixture::new();
    let ctx = f.context(APP, FILES);
    let tagged = format!("{}:latest", f.cache_repo());
    let out = f.run(
        &f.fresh_cache("tagged"),
        &["--cache-repo", tagged.as_str()],
        &ctx,
        "localhost:1",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--cache-repo") && stderr.contains("without a tag or digest"),
        "{stderr}"
    );
}

/// Runs `stratum pod-build` with `cache.repository` set and a fresh cache dir.
fn pod_build(f: &Fixture, name: &str) -> stratum_crds::BuildResult {
    let request = serde_json::json!({
        "v": 1,
        "build": {"namespace": "default", "name": "demo", "generation": 1, "attempt": 1},
        "source": {"inline": {"dockerfile": "FROM {BASE}\nENV A=1\nRUN echo pod-ran > /built\nRUN true\n"
            .replace("{BASE}", &format!("{}/base/busybox:1", f.registry.host_port))}},
        "dockerfile": "Dockerfile",
        "output": {"image": format!("{}/pods/demo:{name}", f.registry.host_port), "insecure": true},
        "cache": {"repository": f.cache_repo()},
        "timeoutSeconds": 600
    });
    let log = f.dir.path().join(format!("termination-{name}"));
    let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .arg("pod-build")
        .arg("--cache-dir")
        .arg(f.fresh_cache(name))
        .arg("--termination-log")
        .arg(&log)
        .env("STRATUM_BUILD_REQUEST", request.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pod-build {name}:\n{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
    let message = std::fs::read_to_string(&log).expect("a result is always written");
    stratum_crds::parse_termination_message(&message).expect("a valid result")
}

#[test]
fn a_second_builder_pod_with_an_empty_cache_hits_the_cache_repository() {
    let f = Fixture::new();
    let first = pod_build(&f, "first");
    let cached =
        |r: &stratum_crds::BuildResult| r.steps.iter().map(|s| s.cached).collect::<Vec<_>>();
    assert_eq!(cached(&first), [true, false, false, false]);
    assert_eq!(f.tags(&f.cache_repo()).len(), 2, "both RUNs");
    let second = pod_build(&f, "second");
    assert_eq!(cached(&second), [true, false, true, true]);
    let digest = |r: &stratum_crds::BuildResult| match &r.outcome {
        stratum_crds::contract::Outcome::Pushed(p) => p.manifest_digest.clone(),
        other => panic!("expected a pushed image, got {other:?}"),
    };
    assert_eq!(digest(&first), digest(&second));
}

/// threats-and-faults §2.5 #31 ("cached must equal cold"): with a fixed epoch, an image built from
/// remote hits is byte-identical to one built cold, without any cache.
#[test]
fn reproducible_builds_from_the_cache_repository_equal_cold_ones() {
    let f = Fixture::new();
    let ctx = f.context(APP, FILES);
    let repo = f.cache_repo();
    let args = ["--reproducible", "--cache-repo", repo.as_str()];
    let writer = f.build(&f.fresh_cache("writer"), &args, &ctx);
    let warm = f.build(&f.fresh_cache("warm"), &args, &ctx);
    assert!(warm.cached[2..8].iter().all(|c| *c), "{:?}", warm.cached);
    let cold = f.build(&f.fresh_cache("cold"), &["--reproducible"], &ctx);
    assert_eq!(warm.manifest_digest, cold.manifest_digest);
    assert_eq!(writer.manifest_digest, cold.manifest_digest);
    assert_eq!(warm.layers, cold.layers);
}

#[test]
fn multi_stage_builds_hit_in_every_stage() {
    let f = Fixture::new();
    let dockerfile = "FROM {BASE} AS tool
RUN echo tool-$((1 + 1)) | tee /tool
FROM {BASE}
COPY --from=tool /tool /usr/local/tool
RUN cat /usr/local/tool > /copied
";
    let ctx = f.context(dockerfile, &[]);
    let repo = f.cache_repo();
    let args = ["--cache-repo", repo.as_str()];
    let a = f.build(&f.fresh_cache("a"), &args, &ctx);
    assert_eq!(a.cached, [true, false, true, false, false]);
    let b = f.build(&f.fresh_cache("b"), &args, &ctx);
    assert_eq!(b.cached, [true, true, true, true, true]);
    assert!(a.log.contains("tool-2") && !b.log.contains("tool-2"));
    assert_eq!(b.manifest_digest, a.manifest_digest);
}
