//! `stratum build` end to end, as a user runs it: the real binary, a real registry
//! (docker-registry), real overlayfs and namespaces, and independent readers (skopeo, umoci)
//! checking what it produced. Runs as root.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use stratum_builder::image::Digest;
use stratum_builder::registry::{ImagePush, push_image};
use support::busybox::{Format, busybox_base};
use support::registry::{Auth, TestRegistry};

/// A registry holding the busybox base as `base/busybox:1`, and a cache dir.
struct Fixture {
    registry: TestRegistry,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let registry = TestRegistry::start(Auth::None);
        let dir = tempfile::tempdir().unwrap();
        let base = busybox_base(dir.path(), Format::Oci);
        let client = registry.client();
        let repo = registry.repo("base/busybox");
        let tag = "1".parse().unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(push_image(
                &client,
                &ImagePush {
                    repository: &repo,
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

    fn base(&self) -> String {
        format!("{}/base/busybox:1", self.registry.host_port)
    }

    /// A context directory with a Dockerfile (`{BASE}` replaced) and files.
    fn context(&self, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
        let ctx = self.dir.path().join(name);
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            dockerfile.replace("{BASE}", &self.base()),
        )
        .unwrap();
        for (path, content) in files {
            let path = ctx.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        ctx
    }

    fn cache(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("cache-{name}"))
    }

    /// Runs `stratum build` with the registry marked insecure.
    fn build(&self, cache: &Path, args: &[&str], context: &Path) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stratum"));
        cmd.arg("build")
            .arg("--cache-dir")
            .arg(cache)
            .args(["--insecure-registry", &self.registry.host_port])
            .args(args)
            .arg(context)
            .env_remove("SOURCE_DATE_EPOCH");
        cmd.output().unwrap()
    }
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stratum failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Unpacks `layout:tag` with umoci into a fresh directory.
fn unpack(layout: &Path, tag: &str, into: &Path) -> PathBuf {
    let rootfs = into.join(format!("unpacked-{tag}"));
    let status = Command::new("umoci")
        .args(["raw", "unpack", "--rootless", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&rootfs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "umoci unpack {}:{tag}", layout.display());
    rootfs
}

const APP: &str = r#"FROM {BASE}
LABEL org.example.team="builders"
ENV GREETING="hello there" APP=/srv/app
WORKDIR $APP
COPY greeting.txt ./
RUN echo "ran-the-$(echo run)-step" && echo "$GREETING" > generated.txt && rm /bin/false
EXPOSE 8080/tcp
USER 1000:1000
CMD ["cat", "generated.txt"]
"#;

#[test]
fn builds_pushes_and_the_registry_agrees_with_what_it_reports() {
    let f = Fixture::new();
    let ctx = f.context("app", APP, &[("greeting.txt", "hi\n")]);
    let cache = f.cache("push");
    let meta = f.dir.path().join("meta.json");
    let iid = f.dir.path().join("iid");
    let tag = format!("{}/team/app:1", f.registry.host_port);
    let stdout = ok(&f.build(
        &cache,
        &[
            "--push",
            "-t",
            &tag,
            "--metadata-file",
            meta.to_str().unwrap(),
            "--iidfile",
            iid.to_str().unwrap(),
        ],
        &ctx,
    ));
    let meta: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let image_id = std::fs::read_to_string(&iid).unwrap();
    assert_eq!(
        stdout.lines().next(),
        Some(image_id.as_str()),
        "stdout starts with the image ID"
    );

    let remote = format!("docker://{tag}");
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &remote]);
    assert_eq!(Digest::of(&raw).to_string(), meta["containerimage.digest"]);
    let config = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        "--raw",
        &remote,
    ]);
    assert_eq!(Digest::of(&config).to_string(), image_id);

    let config: Value = serde_json::from_slice(&config).unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["Cmd"], serde_json::json!(["cat", "generated.txt"]));
    assert_eq!(c["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
    assert_eq!(c["Labels"]["org.example.team"], "builders");
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("GREETING=hello there"))
    );
    // base layer + WORKDIR + COPY + RUN
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);
    let layers: Vec<&str> = meta["stratum.layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    let pushed: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(layers, pushed, "reported layers are the pushed layers");

    let layout = f.dir.path().join("pulled");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{}:1", layout.display()),
    ]);
    let rootfs = unpack(&layout, "1", f.dir.path());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("srv/app/greeting.txt")).unwrap(),
        "hi\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("srv/app/generated.txt")).unwrap(),
        "hello there\n"
    );
    assert!(rootfs.join("bin/busybox").exists());
    assert!(
        std::fs::symlink_metadata(rootfs.join("bin/false")).is_err(),
        "a file deleted by RUN is whited out"
    );
}

#[test]
fn an_unchanged_rebuild_runs_nothing_and_reproduces_the_image() {
    let f = Fixture::new();
    let ctx = f.context("app", APP, &[("greeting.txt", "hi\n")]);
    let cache = f.cache("rebuild");
    let first = f.build(&cache, &["--progress", "plain"], &ctx);
    let first_id = ok(&first).lines().next().unwrap().to_owned();
    assert!(String::from_utf8_lossy(&first.stderr).contains("ran-the-run-step"));

    let second = f.build(&cache, &["--progress", "plain"], &ctx);
    let second_id = ok(&second).lines().next().unwrap().to_owned();
    let log = String::from_utf8_lossy(&second.stderr);
    assert!(
        !log.contains("ran-the-run-step"),
        "the RUN did not execute again:\n{log}"
    );
    assert_eq!(
        log.matches("Using cache").count(),
        4,
        "FROM, WORKDIR, COPY, RUN:\n{log}"
    );
    assert_eq!(first_id, second_id);

    let third = f.build(&cache, &["--progress", "plain", "--no-cache"], &ctx);
    ok(&third);
    assert!(String::from_utf8_lossy(&third.stderr).contains("ran-the-run-step"));
}

#[test]
fn changing_one_copy_source_invalidates_that_step_and_the_ones_after_it() {
    let f = Fixture::new();
    let dockerfile = "FROM {BASE}\nCOPY a.txt /a.txt\nRUN echo one > /one\nCOPY b.txt /b.txt\nRUN echo two > /two\n";
    let ctx = f.context("steps", dockerfile, &[("a.txt", "a"), ("b.txt", "b")]);
    let cache = f.cache("invalidate");
    ok(&f.build(&cache, &[], &ctx));
    std::fs::write(ctx.join("b.txt"), "b changed").unwrap();
    let out = f.build(&cache, &["--progress", "json"], &ctx);
    ok(&out);
    let cached: Vec<bool> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "step_finished")
        .map(|e| e["cached"].as_bool().unwrap())
        .collect();
    assert_eq!(cached, [true, true, true, false, false]);
}

#[test]
fn reproducible_builds_are_byte_identical() {
    let f = Fixture::new();
    let ctx = f.context("repro", APP, &[("greeting.txt", "hi\n")]);
    let ids: Vec<String> = ["r1", "r2"]
        .iter()
        .map(|name| {
            let meta = f.dir.path().join(format!("{name}.json"));
            ok(&f.build(
                &f.cache(name),
                &["--reproducible", "--metadata-file", meta.to_str().unwrap()],
                &ctx,
            ));
            let meta: Value = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
            meta["containerimage.digest"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        ids[0], ids[1],
        "two cold builds in separate caches give one manifest digest"
    );
}

#[test]
fn a_failing_run_names_the_line_and_the_exit_code() {
    let f = Fixture::new();
    let ctx = f.context(
        "fail",
        "FROM {BASE}\nENV X=1\n\nRUN echo about to fail && exit 3\nRUN echo never\n",
        &[],
    );
    let out = f.build(&f.cache("fail"), &[], &ctx);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "Dockerfile:4: The command '/bin/sh -c echo about to fail && exit 3' returned a non-zero code: 3"
        ),
        "{err}"
    );
}

#[test]
fn multi_stage_with_target_and_every_local_output_format() {
    let f = Fixture::new();
    let dockerfile = r#"FROM {BASE} AS build
RUN mkdir /out && echo built > /out/artifact && ln -s artifact /out/link
FROM {BASE} AS unused
RUN echo this stage must not run && exit 1
FROM scratch AS final
COPY --from=build /out/ /
FROM final AS extra
LABEL extra=1
"#;
    let ctx = f.context("multi", dockerfile, &[]);
    let cache = f.cache("multi");
    let layout = f.dir.path().join("layout");
    let oci_archive = f.dir.path().join("image-oci.tar");
    let docker_archive = f.dir.path().join("image-docker.tar");
    let tag = format!("{}/multi:v1", f.registry.host_port);
    ok(&f.build(
        &cache,
        &[
            "--target",
            "final",
            "-t",
            &tag,
            "--output",
            &format!("type=oci,dest={}", layout.display()),
            "--output",
            &format!("type=oci-archive,dest={}", oci_archive.display()),
            "--output",
            &format!("type=docker-archive,dest={}", docker_archive.display()),
        ],
        &ctx,
    ));
    let rootfs = unpack(&layout, "v1", f.dir.path());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("artifact")).unwrap(),
        "built\n"
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("link")).unwrap(),
        Path::new("artifact")
    );
    let entries: Vec<_> = std::fs::read_dir(&rootfs).unwrap().collect();
    assert_eq!(
        entries.len(),
        2,
        "a scratch stage holds only what was copied"
    );

    let from_archive = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:v1", oci_archive.display()),
    ]);
    let from_layout = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", layout.display())]);
    assert_eq!(from_archive, from_layout);
    let docker: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}:{tag}", docker_archive.display()),
    ]))
    .unwrap();
    assert_eq!(docker["Layers"].as_array().unwrap().len(), 1);
}

#[test]
fn a_tar_context_on_stdin_builds_like_a_directory() {
    let f = Fixture::new();
    let ctx = f.context(
        "stdin",
        "FROM {BASE}\nCOPY hello.txt /hello.txt\n",
        &[("hello.txt", "from a tar\n")],
    );
    let tarball = Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .args(["-czf", "-", "."])
        .output()
        .unwrap()
        .stdout;
    let layout = f.dir.path().join("stdin-layout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .arg("build")
        .arg("--cache-dir")
        .arg(f.cache("stdin"))
        .args([
            "--insecure-registry",
            &f.registry.host_port,
            "-t",
            "x/stdin:1",
        ])
        .arg("--output")
        .arg(format!("type=oci,dest={}", layout.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&tarball).unwrap();
    ok(&child.wait_with_output().unwrap());
    let rootfs = unpack(&layout, "1", f.dir.path());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("hello.txt")).unwrap(),
        "from a tar\n"
    );
}

/// Runs `stratum pod-build` with an inline-source request and returns the parsed result.
fn pod_build(f: &Fixture, dockerfile: &str, tag: &str) -> (bool, stratum_crds::BuildResult) {
    let request = serde_json::json!({
        "v": 1,
        "build": {"namespace": "default", "name": "demo", "generation": 1, "attempt": 1},
        "source": {"inline": {"dockerfile": dockerfile.replace("{BASE}", &f.base())}},
        "dockerfile": "Dockerfile",
        "output": {
            "image": format!("{}/pods/demo:{tag}", f.registry.host_port),
            "additionalTags": ["latest"],
            "insecure": true
        },
        "timeoutSeconds": 600
    });
    let log = f.dir.path().join(format!("termination-{tag}"));
    let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .arg("pod-build")
        .arg("--cache-dir")
        .arg(f.cache(tag))
        .arg("--termination-log")
        .arg(&log)
        .env("STRATUM_BUILD_REQUEST", request.to_string())
        .output()
        .unwrap();
    let message = std::fs::read_to_string(&log).expect("a result is always written");
    let result = stratum_crds::parse_termination_message(&message).expect("a valid result");
    (out.status.success(), result)
}

#[test]
fn pod_build_pushes_and_reports_what_the_registry_holds() {
    let f = Fixture::new();
    let (ok, result) = pod_build(&f, "FROM {BASE}\nRUN echo built > /built\n", "v1");
    assert!(ok);
    let stratum_crds::contract::Outcome::Pushed(pushed) = &result.outcome else {
        panic!("expected a pushed image, got {result:?}");
    };
    for tag in ["v1", "latest"] {
        let raw = skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{}/pods/demo:{tag}", f.registry.host_port),
        ]);
        assert_eq!(
            Digest::of(&raw).to_string(),
            pushed.manifest_digest,
            "{tag}"
        );
    }
    assert_eq!(result.steps.len(), 2, "FROM and RUN");
}

#[test]
fn pod_build_reports_a_failing_run_with_its_line_and_exit_code() {
    let f = Fixture::new();
    let (ok, result) = pod_build(&f, "FROM {BASE}\n\nRUN exit 7\n", "fail");
    assert!(!ok);
    let stratum_crds::contract::Outcome::Failed(failure) = &result.outcome else {
        panic!("expected a failure, got {result:?}");
    };
    assert_eq!(
        failure.reason,
        stratum_crds::contract::FailureReason::StepFailed
    );
    assert_eq!((failure.line, failure.exit_code), (Some(3), Some(7)));
    assert!(
        failure.message.contains("returned a non-zero code: 7"),
        "{}",
        failure.message
    );
}

/// Serves `dir` over HTTP on a loopback port (python3's http.server); killed on drop.
struct FileServer {
    child: std::process::Child,
    port: u16,
}

impl FileServer {
    fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "-d",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { child, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("http.server did not start");
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn add_url_downloads_checks_the_checksum_and_never_extracts() {
    let f = Fixture::new();
    let served = f.dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("notes.txt"), "remote notes\n").unwrap();
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&served)
        .args(["-czf", "-", "notes.txt"])
        .output()
        .unwrap()
        .stdout;
    std::fs::write(served.join("bundle.tar.gz"), &tar).unwrap();
    let server = FileServer::start(&served);
    let sum = Digest::of(b"remote notes\n");
    let url = format!("http://127.0.0.1:{}", server.port);

    let dockerfile = format!(
        "FROM {{BASE}}\nADD --checksum={sum} {url}/notes.txt /dl/\nADD {url}/bundle.tar.gz /dl/\n"
    );
    let ctx = f.context("add-url", &dockerfile, &[]);
    let layout = f.dir.path().join("add-url-layout");
    ok(&f.build(
        &f.cache("add-url"),
        &[
            "-t",
            "x/add:1",
            "--output",
            &format!("type=oci,dest={}", layout.display()),
        ],
        &ctx,
    ));
    let rootfs = unpack(&layout, "1", f.dir.path());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("dl/notes.txt")).unwrap(),
        "remote notes\n"
    );
    assert_eq!(
        std::fs::read(rootfs.join("dl/bundle.tar.gz")).unwrap(),
        tar,
        "a remote archive is copied as is, not extracted (moby #33849)"
    );

    let wrong = Digest::of(b"something else");
    let bad = f.context(
        "add-url-bad",
        &format!("FROM {{BASE}}\nADD --checksum={wrong} {url}/notes.txt /dl/\n"),
        &[],
    );
    let out = f.build(&f.cache("add-url-bad"), &[], &bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Dockerfile:2") && err.contains("checksum mismatch"),
        "{err}"
    );
}

#[test]
fn onbuild_triggers_run_when_a_child_image_builds_from_it() {
    let f = Fixture::new();
    let parent_tag = format!("{}/onbuild/parent:1", f.registry.host_port);
    let parent = f.context(
        "onbuild-parent",
        "FROM {BASE}\nONBUILD RUN echo triggered > /onbuild-ran\nONBUILD COPY marker.txt /marker.txt\n",
        &[],
    );
    ok(&f.build(&f.cache("onbuild"), &["--push", "-t", &parent_tag], &parent));

    let child = f.dir.path().join("onbuild-child");
    std::fs::create_dir_all(&child).unwrap();
    std::fs::write(
        child.join("Dockerfile"),
        format!("FROM {parent_tag}\nRUN cat /onbuild-ran\n"),
    )
    .unwrap();
    std::fs::write(child.join("marker.txt"), "from the child's context\n").unwrap();
    let layout = f.dir.path().join("onbuild-layout");
    let out = f.build(
        &f.cache("onbuild"),
        &[
            "-t",
            "x/child:1",
            "--output",
            &format!("type=oci,dest={}", layout.display()),
        ],
        &child,
    );
    ok(&out);
    let rootfs = unpack(&layout, "1", f.dir.path());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("onbuild-ran")).unwrap(),
        "triggered\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("marker.txt")).unwrap(),
        "from the child's context\n"
    );
    let config: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--config",
        "--raw",
        &format!("oci:{}:1", layout.display()),
    ]))
    .unwrap();
    assert!(
        config["config"]["OnBuild"].is_null(),
        "triggers are consumed, not inherited: {}",
        config["config"]
    );
}

#[test]
fn annotations_reach_the_manifest_and_the_epoch_reaches_arg_source_date_epoch() {
    let f = Fixture::new();
    let ctx = f.context(
        "annotated",
        "FROM {BASE}\nARG SOURCE_DATE_EPOCH\nRUN echo \"epoch=$SOURCE_DATE_EPOCH\" > /epoch\n",
        &[],
    );
    let layout = f.dir.path().join("annotated-layout");
    let out = f.build(
        &f.cache("annotated"),
        &[
            "-t",
            "x/annotated:1",
            "--annotation",
            "org.opencontainers.image.source=https://example.com/repo",
            "--annotation",
            "org.example.empty=",
            "--output",
            &format!("type=oci,dest={}", layout.display()),
        ],
        &ctx,
    );
    // `Fixture::build` clears SOURCE_DATE_EPOCH, so this first build has no epoch: the ARG is
    // empty and the manifest carries exactly the two annotations.
    ok(&out);
    let manifest: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:1", layout.display()),
    ]))
    .unwrap();
    assert_eq!(
        manifest["annotations"],
        serde_json::json!({
            "org.opencontainers.image.source": "https://example.com/repo",
            "org.example.empty": "",
        })
    );
    let rootfs = unpack(&layout, "1", f.dir.path());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("epoch")).unwrap(),
        "epoch=\n"
    );

    let layout2 = f.dir.path().join("epoch-layout");
    let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .arg("build")
        .arg("--cache-dir")
        .arg(f.cache("annotated"))
        .args(["--insecure-registry", &f.registry.host_port])
        .args(["-t", "x/epoch:1", "--output"])
        .arg(format!("type=oci,dest={}", layout2.display()))
        .arg(&ctx)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    ok(&out);
    let manifest: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:1", layout2.display()),
    ]))
    .unwrap();
    assert!(
        manifest.get("annotations").is_none(),
        "no --annotation, no annotations key: {manifest}"
    );
    let rootfs = unpack(&layout2, "1", f.dir.path());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("epoch")).unwrap(),
        "epoch=1700000000\n"
    );
}
