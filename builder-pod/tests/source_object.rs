//! Object sources over real HTTPS on loopback (a test CA the client trusts through the
//! secret's `ca.crt`, never by turning verification off): each archive kind, a lone file,
//! redirects, statuses, basic and bearer auth, the sha256 pin and the size limit.

mod source_object_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use source_object_support::{Entry, HttpsServer, ZipEntry, gzip, sha256_hex, tar, tree, zip, zstd};
use stratum_builder::source::SourceErrorKind;
use stratum_builder::source::object::{
    self, ArchiveKind, FetchedObject, ObjectAuth, ObjectError, ObjectFetch,
};

const MIB: u64 = 1 << 20;

/// Fetches `url` into a fresh `<tmp>/tree`; returns the temp dir (spool's parent) and result.
fn fetch_with(
    url: &str,
    auth: &ObjectAuth,
    sha256: Option<&str>,
    max_bytes: u64,
) -> (tempfile::TempDir, Result<FetchedObject, ObjectError>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tree")).unwrap();
    let spec = ObjectFetch {
        url,
        sha256,
        max_bytes,
    };
    let result = object::fetch(&spec, auth, &dir.path().join("tree"));
    (dir, result)
}

fn trusted(server: &HttpsServer) -> ObjectAuth {
    let dir = server.secret(&[]);
    ObjectAuth::from_secret_dir(dir.path()).unwrap()
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join("tree").join(rel)).unwrap()
}

fn context_tar() -> Vec<u8> {
    tar(&[
        Entry::Dir("app"),
        Entry::File("app/Dockerfile", b"FROM scratch\nCOPY hello.txt /\n"),
        Entry::File("app/hello.txt", b"hello from a tar\n"),
        Entry::Symlink("app/link", "hello.txt"),
    ])
}

#[test]
fn every_archive_kind_is_recognised_by_its_bytes_and_unpacked() {
    let server = HttpsServer::start();
    let auth = trusted(&server);
    let tar_bytes = context_tar();
    let zip_bytes = zip(&[
        ZipEntry::Dir("app/"),
        ZipEntry::File("app/Dockerfile", b"FROM scratch\nCOPY hello.txt /\n"),
        ZipEntry::File("app/hello.txt", b"hello from a tar\n"),
        ZipEntry::Symlink("app/link", "hello.txt"),
    ]);
    // The names lie on purpose: the kind comes from the bytes.
    let cases = [
        ("a.bin", tar_bytes.clone(), ArchiveKind::Tar),
        ("b.bin", gzip(&tar_bytes), ArchiveKind::TarGz),
        ("c.tar.gz", zstd(&tar_bytes), ArchiveKind::TarZst),
        ("d.tar", zip_bytes, ArchiveKind::Zip),
    ];
    for (name, bytes, kind) in cases {
        server.put(name, &bytes);
        let (dir, result) = fetch_with(&server.url(&format!("files/{name}")), &auth, None, MIB);
        let fetched = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(fetched.kind, kind, "{name}");
        assert_eq!(fetched.sha256, sha256_hex(&bytes), "{name}");
        assert!(fetched.etag.is_some(), "{name}");
        assert_eq!(
            read(dir.path(), "app/hello.txt"),
            "hello from a tar\n",
            "{name}"
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("tree/app/link")).unwrap(),
            Path::new("hello.txt"),
            "{name}"
        );
        assert_eq!(
            tree(dir.path()),
            [
                "tree",
                "tree/app",
                "tree/app/Dockerfile",
                "tree/app/hello.txt",
                "tree/app/link"
            ],
            "{name}: no spool left behind"
        );
    }
}

#[test]
fn a_non_archive_becomes_the_only_file_named_after_the_url() {
    let server = HttpsServer::start();
    server.put("Dockerfile", b"FROM scratch\n");
    let (dir, result) = fetch_with(
        &server.url("files/Dockerfile?v=1"),
        &trusted(&server),
        None,
        MIB,
    );
    assert_eq!(result.unwrap().kind, ArchiveKind::File);
    assert_eq!(tree(&dir.path().join("tree")), ["Dockerfile"]);
    assert_eq!(read(dir.path(), "Dockerfile"), "FROM scratch\n");
    let mode = std::fs::metadata(dir.path().join("tree/Dockerfile"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o644);
}

#[test]
fn a_redirect_is_followed() {
    let server = HttpsServer::start();
    server.put("ctx.tar.gz", &gzip(&context_tar()));
    let (dir, result) = fetch_with(
        &server.url("redirect/ctx.tar.gz"),
        &trusted(&server),
        None,
        MIB,
    );
    assert_eq!(result.unwrap().kind, ArchiveKind::TarGz);
    assert_eq!(read(dir.path(), "app/hello.txt"), "hello from a tar\n");
}

#[test]
fn a_redirect_down_to_http_or_in_a_loop_is_refused() {
    let server = HttpsServer::start();
    server.put("ctx.tar", &context_tar());
    for path in ["downgrade/ctx.tar", "loop/ctx.tar"] {
        let (dir, result) = fetch_with(&server.url(path), &trusted(&server), None, MIB);
        let err = result.unwrap_err();
        assert!(matches!(err, ObjectError::Redirect { .. }), "{path}: {err}");
        assert_eq!(err.kind(), SourceErrorKind::Invalid);
        assert_eq!(tree(dir.path()), ["tree"]);
    }
    let plain_requests = server
        .requests()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/files/"))
        .count();
    assert_eq!(plain_requests, 0, "the downgraded URL was never requested");
}

#[test]
fn an_early_eof_is_a_retryable_failure_with_nothing_extracted() {
    let server = HttpsServer::start();
    server.put("ctx.tar", &context_tar());
    let (dir, result) = fetch_with(&server.url("short/ctx.tar"), &trusted(&server), None, MIB);
    let err = result.unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("broke off"), "{err}");
    assert_eq!(tree(dir.path()), ["tree"]);
}

#[test]
fn statuses_map_to_error_kinds_for_probe_and_fetch() {
    let server = HttpsServer::start();
    let auth = trusted(&server);
    let cases = [
        ("status/404", SourceErrorKind::NotFound),
        ("files/missing.tar", SourceErrorKind::NotFound),
        ("status/401", SourceErrorKind::Auth),
        ("status/403", SourceErrorKind::Auth),
        ("status/503", SourceErrorKind::Unavailable),
        ("status/429", SourceErrorKind::Unavailable),
        ("status/400", SourceErrorKind::Invalid),
    ];
    for (path, kind) in cases {
        let url = server.url(path);
        let probed = object::probe(&url, &auth).unwrap_err();
        assert_eq!(probed.kind(), kind, "probe {path}: {probed}");
        let (dir, fetched) = fetch_with(&url, &auth, None, MIB);
        let fetched = fetched.unwrap_err();
        assert_eq!(fetched.kind(), kind, "fetch {path}: {fetched}");
        assert!(fetched.to_string().contains(&url), "{fetched}");
        assert_eq!(tree(dir.path()), ["tree"], "{path}");
    }
}

#[test]
fn probe_reports_etag_last_modified_and_size_and_survives_a_refused_head() {
    let server = HttpsServer::start();
    let bytes = gzip(&context_tar());
    server.put("ctx.tar.gz", &bytes);
    let auth = trusted(&server);
    let version = object::probe(&server.url("files/ctx.tar.gz"), &auth).unwrap();
    assert_eq!(version.size, Some(bytes.len() as u64));
    assert!(version.etag.as_deref().is_some_and(|e| e.starts_with('"')));
    assert!(
        version
            .last_modified
            .as_deref()
            .is_some_and(|l| l.ends_with("GMT"))
    );
    let fallback = object::probe(&server.url("nohead/ctx.tar.gz"), &auth).unwrap();
    assert_eq!(fallback.etag, version.etag);
    let methods: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/nohead"))
        .map(|r| r["method"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(methods, ["HEAD", "GET"]);

    // The object changes: so does its version.
    server.put("ctx.tar.gz", &gzip(&tar(&[Entry::File("other", b"x")])));
    let changed = object::probe(&server.url("files/ctx.tar.gz"), &auth).unwrap();
    assert_ne!(changed.etag, version.etag);
}

#[test]
fn basic_and_bearer_credentials_come_from_the_secret() {
    let server = HttpsServer::start();
    server.put("ctx.tar", &context_tar());
    let basic = server.secret(&[("username", "builder"), ("password", "s3cret pw\n")]);
    let bearer = server.secret(&[("token", "tok-123")]);
    for (path, secret_dir) in [("basic/ctx.tar", &basic), ("bearer/ctx.tar", &bearer)] {
        let auth = ObjectAuth::from_secret_dir(secret_dir.path()).unwrap();
        let (dir, result) = fetch_with(&server.url(path), &auth, None, MIB);
        result.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(read(dir.path(), "app/hello.txt"), "hello from a tar\n");
        assert!(object::probe(&server.url(path), &auth).is_ok(), "{path}");
        // Anonymous is refused.
        let (_, anonymous) = fetch_with(&server.url(path), &trusted(&server), None, MIB);
        assert_eq!(
            anonymous.unwrap_err().kind(),
            SourceErrorKind::Auth,
            "{path}"
        );
    }
    let wrong = server.secret(&[("username", "builder"), ("password", "hunter2")]);
    let auth = ObjectAuth::from_secret_dir(wrong.path()).unwrap();
    let (_, result) = fetch_with(&server.url("basic/ctx.tar"), &auth, None, MIB);
    let err = result.unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth);
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn an_unknown_ca_is_refused_and_the_error_says_how_to_trust_one() {
    let server = HttpsServer::start();
    server.put("ctx.tar", &context_tar());
    let (dir, result) = fetch_with(
        &server.url("files/ctx.tar"),
        &ObjectAuth::anonymous(),
        None,
        MIB,
    );
    let err = result.unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("SSL_CERT_FILE"), "{err}");
    assert_eq!(tree(dir.path()), ["tree"]);
    let probed = object::probe(&server.url("files/ctx.tar"), &ObjectAuth::anonymous()).unwrap_err();
    assert!(probed.to_string().contains("certificate"), "{probed}");
}

#[test]
fn a_matching_pin_passes_and_a_mismatch_extracts_nothing() {
    let server = HttpsServer::start();
    let bytes = gzip(&context_tar());
    server.put("ctx.tar.gz", &bytes);
    let auth = trusted(&server);
    let url = server.url("files/ctx.tar.gz");
    let pin = sha256_hex(&bytes);
    let (dir, result) = fetch_with(&url, &auth, Some(&pin), MIB);
    assert_eq!(result.unwrap().sha256, pin);
    assert_eq!(read(dir.path(), "app/hello.txt"), "hello from a tar\n");

    let other = sha256_hex(b"something else");
    let (dir, result) = fetch_with(&url, &auth, Some(&other), MIB);
    let err = result.unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Mismatch);
    assert!(
        err.to_string().contains(&pin) && err.to_string().contains(&other),
        "{err}"
    );
    assert_eq!(
        tree(dir.path()),
        ["tree"],
        "nothing extracted, spool removed"
    );

    let (_, result) = fetch_with(&url, &auth, Some("SHA256:ABC"), MIB);
    assert_eq!(result.unwrap_err().kind(), SourceErrorKind::Invalid);
}

#[test]
fn the_size_limit_stops_the_download() {
    let server = HttpsServer::start();
    let bytes = tar(&[Entry::File("big", &vec![7u8; 300 << 10])]);
    server.put("big.tar", &bytes);
    let (dir, result) = fetch_with(
        &server.url("files/big.tar"),
        &trusted(&server),
        None,
        256 << 10,
    );
    let err = result.unwrap_err();
    assert!(
        matches!(err, ObjectError::TooLarge { limit, .. } if limit == 256 << 10),
        "{err}"
    );
    assert_eq!(err.kind(), SourceErrorKind::Invalid);
    assert_eq!(tree(dir.path()), ["tree"]);
}

#[test]
fn errors_never_show_userinfo_or_a_presigned_query() {
    let server = HttpsServer::start();
    let url = format!(
        "https://builder:pa55word@127.0.0.1:{}/status/404?X-Amz-Signature=deadbeefsig",
        server.port
    );
    for err in [
        object::probe(&url, &trusted(&server)).unwrap_err(),
        fetch_with(&url, &trusted(&server), None, MIB)
            .1
            .unwrap_err(),
    ] {
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("pa55word") && !text.contains("deadbeefsig"),
            "{text}"
        );
        assert!(
            text.contains(&format!("https://127.0.0.1:{}/status/404?…", server.port)),
            "{text}"
        );
    }
}

#[test]
fn the_destination_must_be_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("existing"), b"x").unwrap();
    let spec = ObjectFetch {
        url: "https://127.0.0.1:1/x.tar",
        sha256: None,
        max_bytes: MIB,
    };
    let err = object::fetch(&spec, &ObjectAuth::anonymous(), dir.path()).unwrap_err();
    assert!(matches!(err, ObjectError::DestNotEmpty { .. }), "{err}");
}

/// The operator calls the blocking API from `spawn_blocking` on its multi-thread runtime: both
/// the reqwest (https) and the object_store (gs, on its own runtime thread) paths must work
/// there, and the `Drop` of their runtimes must not panic inside the caller's.
#[test]
fn probe_and_fetch_work_from_spawn_blocking_in_an_async_runtime() {
    let server = HttpsServer::start();
    let bytes = gzip(&context_tar());
    server.put("ctx.tar.gz", &bytes);
    server.put("gcs/bucket/ctx.tar.gz", &bytes);
    let key = format!(
        r#"{{"private_key": "unused", "private_key_id": "k1", "client_email": "b@test.iam", "disable_oauth": true, "gcs_base_url": "{}"}}"#,
        server.url("gcs").trim_end_matches('/')
    );
    let secret_dir = server.secret(&[("GOOGLE_SERVICE_ACCOUNT_KEY", &key)]);
    let auth = ObjectAuth::from_secret_dir(secret_dir.path()).unwrap();
    let https = server.url("files/ctx.tar.gz");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let results = runtime.block_on(async move {
        let mut handles = Vec::new();
        for url in [https, "gs://bucket/ctx.tar.gz".to_owned()] {
            let auth = auth.clone();
            handles.push(tokio::task::spawn_blocking(move || {
                let version = object::probe(&url, &auth)?;
                let (_dir, fetched) = fetch_with(&url, &auth, None, MIB);
                Ok::<_, ObjectError>((version, fetched?))
            }));
        }
        let mut results = Vec::new();
        for handle in handles {
            results.push(handle.await.unwrap());
        }
        results
    });
    for result in results {
        let (version, fetched) = result.unwrap();
        assert_eq!(version.size, Some(bytes.len() as u64));
        assert_eq!(fetched.sha256, sha256_hex(&bytes));
    }
}
