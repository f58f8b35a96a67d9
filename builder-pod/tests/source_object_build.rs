//! Builds from object sources end to end with the real binary: `stratum build https://…`
//! (the test CA trusted through SSL_CERT_FILE, the standard variable) and `stratum pod-build`
//! with a `url` BuildRequest (the CA and credentials from the request's secret directory),
//! pushing to a real registry and reporting the fetched sha256.

mod source_object_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use source_object_support::{
    AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Entry, HttpsServer, Moto, gzip, sha256_hex, tar,
};
use stratum_crds::contract::{BuiltSource, FailureReason, Outcome};
use support::registry::{Auth, TestRegistry};

fn context_archive() -> Vec<u8> {
    gzip(&tar(&[
        Entry::Dir("app"),
        Entry::File(
            "app/Dockerfile",
            b"FROM scratch\nCOPY hello.txt /hello.txt\nCOPY sub/ /sub/\n",
        ),
        Entry::File("app/hello.txt", b"hello from an https context\n"),
        Entry::Dir("app/sub"),
        Entry::File("app/sub/nested.txt", b"nested\n"),
        Entry::File("README", b"outside the contextDir\n"),
        Entry::Symlink("escape", "/etc"),
    ]))
}

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

fn ok(output: &Output) {
    assert!(
        output.status.success(),
        "stratum failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn stratum_build_from_an_https_tarball_url() {
    let server = HttpsServer::start();
    let bytes = context_archive();
    server.put("ctx.tar.gz", &bytes);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let run = |url: &str, file: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stratum"));
        cmd.arg("build")
            .arg("--cache-dir")
            .arg(work.path().join("cache"))
            .args(["-t", "x/object:1", "--progress", "plain"])
            .arg("--output")
            .arg(format!("type=oci,dest={}", layout.display()));
        if let Some(file) = file {
            cmd.args(["-f", file]);
        }
        cmd.arg(url)
            .env("SSL_CERT_FILE", &server.certs.ca)
            .output()
            .unwrap()
    };
    // -f names the Dockerfile inside the fetched tree, as with Docker's URL contexts; COPY
    // sources are relative to the tree's root, so this build copies app/…
    let out = run(&server.url("files/ctx.tar.gz"), Some("app/Dockerfile"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "hello.txt is under app/ in this tree: {stderr}"
    );
    assert!(stderr.contains("hello.txt"), "{stderr}");

    // A tarball of the app directory alone builds.
    let app_only = gzip(&tar(&[
        Entry::File(
            "Dockerfile",
            b"FROM scratch\nCOPY hello.txt /hello.txt\nCOPY sub/ /sub/\n",
        ),
        Entry::File("hello.txt", b"hello from an https context\n"),
        Entry::Dir("sub"),
        Entry::File("sub/nested.txt", b"nested\n"),
    ]));
    server.put("app.tar.gz", &app_only);
    let out = run(&server.url("files/app.tar.gz"), None);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&sha256_hex(&app_only)),
        "the fetch is reported: {stderr}"
    );
    let rootfs = unpack(&layout, "1", work.path());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("hello.txt")).unwrap(),
        "hello from an https context\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("sub/nested.txt")).unwrap(),
        "nested\n"
    );

    // Without the CA the fetch fails, and says why.
    let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .arg("build")
        .arg("--cache-dir")
        .arg(work.path().join("cache"))
        .arg(server.url("files/app.tar.gz"))
        .env("SSL_CERT_FILE", work.path().join("no-such-bundle.pem"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("certificate") || stderr.contains("SSL_CERT_FILE"),
        "{stderr}"
    );
}

fn app_archive() -> Vec<u8> {
    gzip(&tar(&[
        Entry::File("Dockerfile", b"FROM scratch\nCOPY hello.txt /hello.txt\n"),
        Entry::File("hello.txt", b"hello from a bucket\n"),
    ]))
}

/// `stratum build s3://…` and `stratum build azblob://…` with the environment's credentials
/// (the CLI has no secret directory): AWS_* against moto, AZURE_STORAGE_* against Azurite.
#[test]
fn stratum_build_from_s3_and_azblob_urls_with_environment_credentials() {
    let bytes = app_archive();
    let moto = Moto::start("contexts", &[("app.tar.gz", &bytes)]);
    let azurite = Azurite::start("contexts", &[("app.tar.gz", &bytes)]);
    let work = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<(&str, &str)>); 2] = [
        (
            "s3://contexts/app.tar.gz",
            vec![
                ("AWS_ACCESS_KEY_ID", moto.access_key_id.as_str()),
                ("AWS_SECRET_ACCESS_KEY", moto.secret_access_key.as_str()),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ],
        ),
        (
            "azblob://contexts/app.tar.gz",
            vec![
                ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT),
                ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY),
                ("AZURE_STORAGE_ENDPOINT", azurite.endpoint.as_str()),
            ],
        ),
    ];
    for (i, (url, env)) in cases.into_iter().enumerate() {
        let layout = work.path().join(format!("layout-{i}"));
        let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
            .arg("build")
            .arg("--cache-dir")
            .arg(work.path().join("cache"))
            .args(["-t", "x/bucket:1", "--progress", "plain"])
            .arg("--output")
            .arg(format!("type=oci,dest={}", layout.display()))
            .arg(url)
            .envs(env)
            .output()
            .unwrap();
        ok(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&sha256_hex(&bytes)), "{url}: {stderr}");
        let into = work.path().join(format!("u{i}"));
        std::fs::create_dir(&into).unwrap();
        let rootfs = unpack(&layout, "1", &into);
        assert_eq!(
            std::fs::read_to_string(rootfs.join("hello.txt")).unwrap(),
            "hello from a bucket\n",
            "{url}"
        );
    }
}

/// Runs `stratum pod-build` with a url-source request and returns the parsed result.
fn pod_build(
    registry: &TestRegistry,
    work: &Path,
    source: &serde_json::Value,
    tag: &str,
) -> (bool, stratum_crds::BuildResult, String) {
    let request = serde_json::json!({
        "v": 1,
        "build": {"namespace": "default", "name": "object", "generation": 1, "attempt": 1},
        "source": {"url": source},
        "dockerfile": "Dockerfile",
        "output": {
            "image": format!("{}/pods/object:{tag}", registry.host_port),
            "insecure": true
        },
        "timeoutSeconds": 600
    });
    let log = work.join(format!("termination-{tag}"));
    let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .arg("pod-build")
        .arg("--cache-dir")
        .arg(work.join("cache"))
        .arg("--termination-log")
        .arg(&log)
        .env("STRATUM_BUILD_REQUEST", request.to_string())
        .output()
        .unwrap();
    let message = std::fs::read_to_string(&log).expect("a result is always written");
    let result = stratum_crds::parse_termination_message(&message).expect("a valid result");
    (
        out.status.success(),
        result,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pod_build_from_a_url_source_reports_the_fetched_sha256() {
    let server = HttpsServer::start();
    let registry = TestRegistry::start(Auth::None);
    let bytes = context_archive();
    server.put("ctx.tar.gz", &bytes);
    let work = tempfile::tempdir().unwrap();
    let secret = server.secret(&[("username", "builder"), ("password", "s3cret pw")]);
    let auth_dir = secret.path().display().to_string();
    let pin = sha256_hex(&bytes);

    let (ok, result, stderr) = pod_build(
        &registry,
        work.path(),
        &serde_json::json!({
            "url": server.url("basic/ctx.tar.gz"),
            "sha256": pin,
            "contextDir": "app",
            "authDir": auth_dir,
        }),
        "v1",
    );
    assert!(ok, "{result:?}\n{stderr}");
    assert!(matches!(result.outcome, Outcome::Pushed(_)), "{result:?}");
    assert_eq!(
        result.source,
        Some(BuiltSource::Url {
            sha256: pin.clone()
        })
    );
    let raw = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{}/pods/object:v1", registry.host_port))
        .output()
        .unwrap();
    assert!(raw.status.success());

    let ca_only = server.secret(&[]);
    let failures = [
        (
            serde_json::json!({"url": server.url("basic/ctx.tar.gz"), "sha256": sha256_hex(b"other"), "authDir": auth_dir}),
            FailureReason::SourceMismatch,
        ),
        (
            serde_json::json!({"url": server.url("basic/ctx.tar.gz"), "authDir": ca_only.path().display().to_string()}),
            FailureReason::SourceAuthFailed,
        ),
        (
            serde_json::json!({"url": server.url("files/missing.tar.gz"), "authDir": auth_dir}),
            FailureReason::FetchFailed,
        ),
        (
            serde_json::json!({"url": server.url("status/503"), "authDir": auth_dir}),
            FailureReason::SourceUnavailable,
        ),
        (
            // The root of the tree has no Dockerfile (it is under app/).
            serde_json::json!({"url": server.url("basic/ctx.tar.gz"), "authDir": auth_dir}),
            FailureReason::DockerfileInvalid,
        ),
        (
            // A contextDir that is a symlink out of the tree (§2.6 #32): never followed.
            serde_json::json!({"url": server.url("basic/ctx.tar.gz"), "contextDir": "escape", "authDir": auth_dir}),
            FailureReason::FetchFailed,
        ),
        (
            // A contextDir that does not exist in the archive.
            serde_json::json!({"url": server.url("basic/ctx.tar.gz"), "contextDir": "nope", "authDir": auth_dir}),
            FailureReason::FetchFailed,
        ),
    ];
    for (i, (source, reason)) in failures.into_iter().enumerate() {
        let (ok, result, _) = pod_build(&registry, work.path(), &source, &format!("f{i}"));
        assert!(!ok, "{source}");
        let Outcome::Failed(failure) = &result.outcome else {
            panic!("{source}: expected a failure, got {result:?}");
        };
        assert_eq!(failure.reason, reason, "{source}: {}", failure.message);
        assert!(!failure.message.contains("s3cret"), "{}", failure.message);
        // What was fetched is reported even when the build failed: for the wrong pin the
        // digest of the served bytes (status.source.url.sha256 shows it, not the pin); nothing
        // when nothing was fetched.
        let fetched = matches!(
            reason,
            FailureReason::SourceMismatch | FailureReason::DockerfileInvalid
        ) || source.get("contextDir").is_some();
        let expected = fetched.then(|| BuiltSource::Url {
            sha256: pin.clone(),
        });
        assert_eq!(result.source, expected, "{source}");
    }
}
