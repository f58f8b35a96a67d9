//! `s3://` against a real S3-compatible server (moto, enforcing SigV4 credentials) through
//! `AWS_ENDPOINT_URL` from the secret; `gs://` and `azblob://` against the loopback HTTPS
//! server standing in for GCS's XML API and Azure Blob (request shape and credentials; no
//! local GCS or Azure server is installed).

mod source_object_support;

use source_object_support::{
    AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Entry, HttpsServer, Moto, gzip, secret, sha256_hex, tar,
    tree,
};
use stratum_builder::source::SourceErrorKind;
use stratum_builder::source::object::{
    self, ArchiveKind, FetchedObject, ObjectAuth, ObjectError, ObjectFetch,
};

const MIB: u64 = 1 << 20;

fn fetch(
    url: &str,
    auth: &ObjectAuth,
    sha256: Option<&str>,
) -> (tempfile::TempDir, Result<FetchedObject, ObjectError>) {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("tree");
    std::fs::create_dir(&dest).unwrap();
    let spec = ObjectFetch {
        url,
        sha256,
        max_bytes: MIB,
    };
    let result = object::fetch(&spec, auth, &dest);
    (dir, result)
}

fn context() -> Vec<u8> {
    gzip(&tar(&[
        Entry::File("Dockerfile", b"FROM scratch\nCOPY hello.txt /\n"),
        Entry::File("hello.txt", b"hello from s3\n"),
    ]))
}

fn s3_secret(moto: &Moto, secret_key: &str) -> tempfile::TempDir {
    secret(&[
        ("AWS_ACCESS_KEY_ID", &moto.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", secret_key),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", &moto.endpoint),
    ])
}

#[test]
fn s3_with_secret_credentials_and_a_custom_endpoint() {
    let bytes = context();
    let moto = Moto::start(
        "contexts",
        &[
            ("app/ctx.tar.gz", &bytes),
            ("app/Dockerfile", b"FROM scratch\n"),
        ],
    );
    let good = s3_secret(&moto, &moto.secret_access_key);
    let auth = ObjectAuth::from_secret_dir(good.path()).unwrap();

    let version = object::probe("s3://contexts/app/ctx.tar.gz", &auth).unwrap();
    assert_eq!(version.size, Some(bytes.len() as u64));
    assert!(version.etag.is_some() && version.last_modified.is_some());

    let pin = sha256_hex(&bytes);
    let (dir, result) = fetch("s3://contexts/app/ctx.tar.gz", &auth, Some(&pin));
    let fetched = result.unwrap();
    assert_eq!(
        (fetched.kind, fetched.sha256.as_str()),
        (ArchiveKind::TarGz, pin.as_str())
    );
    assert_eq!(fetched.etag, version.etag);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tree/hello.txt")).unwrap(),
        "hello from s3\n"
    );

    let (dir, result) = fetch("s3://contexts/app/Dockerfile", &auth, None);
    assert_eq!(result.unwrap().kind, ArchiveKind::File);
    assert_eq!(tree(&dir.path().join("tree")), ["Dockerfile"]);

    let (dir, result) = fetch(
        "s3://contexts/app/ctx.tar.gz",
        &auth,
        Some(&sha256_hex(b"x")),
    );
    assert_eq!(result.unwrap_err().kind(), SourceErrorKind::Mismatch);
    assert_eq!(tree(dir.path()), ["tree"]);

    for missing in ["s3://contexts/app/nope.tar", "s3://no-such-bucket/ctx.tar"] {
        let err = object::probe(missing, &auth).unwrap_err();
        assert_eq!(err.kind(), SourceErrorKind::NotFound, "{missing}: {err}");
        let (_, result) = fetch(missing, &auth, None);
        assert_eq!(
            result.unwrap_err().kind(),
            SourceErrorKind::NotFound,
            "{missing}"
        );
    }

    // A wrong secret key: the signature does not match, and the key is never shown.
    let wrong = s3_secret(&moto, "wrong-secret-key-value");
    let auth = ObjectAuth::from_secret_dir(wrong.path()).unwrap();
    let err = object::probe("s3://contexts/app/ctx.tar.gz", &auth).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
    let (dir, result) = fetch("s3://contexts/app/ctx.tar.gz", &auth, None);
    let err = result.unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
    assert!(
        !format!("{err} {err:?}").contains("wrong-secret-key-value"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("s3://contexts/app/ctx.tar.gz"),
        "{err}"
    );
    assert_eq!(tree(dir.path()), ["tree"]);
}

#[test]
fn gs_uses_the_service_account_key_and_its_base_url() {
    let server = HttpsServer::start();
    let bytes = context();
    server.put("gcs/bucket/dir/ctx.tar.gz", &bytes);
    // `disable_oauth` makes object_store send the request without an OAuth exchange (what
    // fake-gcs-server setups use); `gcs_base_url` points it at the loopback server.
    let key = format!(
        r#"{{"private_key": "unused", "private_key_id": "k1", "client_email": "builder@test.iam", "disable_oauth": true, "gcs_base_url": "{}"}}"#,
        server.url("gcs").trim_end_matches('/')
    );
    let creds = server.secret(&[("GOOGLE_SERVICE_ACCOUNT_KEY", &key)]);
    let auth = ObjectAuth::from_secret_dir(creds.path()).unwrap();
    let (dir, result) = fetch(
        "gs://bucket/dir/ctx.tar.gz",
        &auth,
        Some(&sha256_hex(&bytes)),
    );
    result.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tree/hello.txt")).unwrap(),
        "hello from s3\n"
    );
    let version = object::probe("gs://bucket/dir/ctx.tar.gz", &auth).unwrap();
    assert_eq!(version.size, Some(bytes.len() as u64));
    let requests = server.requests();
    let shapes: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().into(),
                r["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    // The XML API's shape: /BUCKET/OBJECT with the object name percent-encoded whole.
    let object_path = "/gcs/bucket/dir%2Fctx%2Etar%2Egz";
    assert!(
        shapes.contains(&("GET".into(), object_path.into())),
        "{shapes:?}"
    );
    assert!(
        shapes.contains(&("HEAD".into(), object_path.into())),
        "{shapes:?}"
    );

    let err = object::probe("gs://bucket/dir/missing.tar", &auth).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::NotFound, "{err}");

    // An undecodable key is a credentials problem, named as such, without its content.
    let bad = secret(&[("GOOGLE_SERVICE_ACCOUNT_KEY", "{not json: SECRET-MATERIAL")]);
    let err = object::probe(
        "gs://bucket/x.tar",
        &ObjectAuth::from_secret_dir(bad.path()).unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains("SECRET-MATERIAL"), "{err}");
}

#[test]
fn azblob_signs_with_the_account_key_against_the_endpoint() {
    let server = HttpsServer::start();
    let bytes = context();
    server.put("azure/contexts/ctx.tar.gz", &bytes);
    let creds = server.secret(&[
        ("AZURE_STORAGE_ACCOUNT_NAME", "devaccount"),
        // Any base64 key: the stand-in checks the SharedKey header's shape, not the HMAC.
        (
            "AZURE_STORAGE_ACCOUNT_KEY",
            "c2VjcmV0LWFjY291bnQta2V5LWZvci10ZXN0cw==",
        ),
        ("AZURE_STORAGE_ENDPOINT", &server.url("azure")),
    ]);
    let auth = ObjectAuth::from_secret_dir(creds.path()).unwrap();
    let (dir, result) = fetch("azblob://contexts/ctx.tar.gz", &auth, None);
    let fetched = result.unwrap_or_else(|e| panic!("{e}\nrequests: {:?}", server.requests()));
    assert_eq!(fetched.sha256, sha256_hex(&bytes));
    assert!(dir.path().join("tree/Dockerfile").is_file());
    let get = server
        .requests()
        .into_iter()
        .find(|r| r["method"] == "GET")
        .unwrap();
    let authorization = get["headers"]["authorization"].as_str().unwrap();
    assert!(
        authorization.starts_with("SharedKey devaccount:"),
        "{authorization}"
    );

    // Another account name: the stand-in refuses the signature shape → Auth.
    let other = server.secret(&[
        ("AZURE_STORAGE_ACCOUNT_NAME", "intruder"),
        (
            "AZURE_STORAGE_ACCOUNT_KEY",
            "c2VjcmV0LWFjY291bnQta2V5LWZvci10ZXN0cw==",
        ),
        ("AZURE_STORAGE_ENDPOINT", &server.url("azure")),
    ]);
    let err = object::probe(
        "azblob://contexts/ctx.tar.gz",
        &ObjectAuth::from_secret_dir(other.path()).unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");

    // An account key that is not base64 fails before any request.
    let bad = server.secret(&[
        ("AZURE_STORAGE_ACCOUNT_NAME", "devaccount"),
        ("AZURE_STORAGE_ACCOUNT_KEY", "not base64 !!"),
        ("AZURE_STORAGE_ENDPOINT", &server.url("azure")),
    ]);
    let err = object::probe(
        "azblob://contexts/ctx.tar.gz",
        &ObjectAuth::from_secret_dir(bad.path()).unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains("not base64 !!"), "{err}");
}

#[test]
fn azblob_against_azurite_with_a_verified_shared_key() {
    let bytes = context();
    let azurite = Azurite::start("contexts", &[("app/ctx.tar.gz", &bytes)]);
    let creds = |key: &str| {
        secret(&[
            ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT),
            ("AZURE_STORAGE_ACCOUNT_KEY", key),
            ("AZURE_STORAGE_ENDPOINT", &azurite.endpoint),
        ])
    };
    let good = creds(AZURITE_KEY);
    let auth = ObjectAuth::from_secret_dir(good.path()).unwrap();
    let version = object::probe("azblob://contexts/app/ctx.tar.gz", &auth).unwrap();
    assert_eq!(version.size, Some(bytes.len() as u64));
    let (dir, result) = fetch(
        "azblob://contexts/app/ctx.tar.gz",
        &auth,
        Some(&sha256_hex(&bytes)),
    );
    let fetched = result.unwrap();
    assert_eq!(fetched.etag, version.etag);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tree/hello.txt")).unwrap(),
        "hello from s3\n"
    );
    let err = object::probe("azblob://contexts/app/missing.tar", &auth).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::NotFound, "{err}");

    // A well-formed but wrong key: Azurite checks the HMAC and refuses it.
    let wrong = creds("c2VjcmV0LWFjY291bnQta2V5LWZvci10ZXN0cw==");
    let auth = ObjectAuth::from_secret_dir(wrong.path()).unwrap();
    let (dir, result) = fetch("azblob://contexts/app/ctx.tar.gz", &auth, None);
    let err = result.unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
    assert_eq!(tree(dir.path()), ["tree"]);
}

#[test]
fn cloud_urls_are_parsed_strictly() {
    for url in [
        "s3://bucket/",
        "gs://bucket",
        "azblob://c/dir/",
        "s3://b/a/../k",
        "s3://AKID:SECRET@b/k",
    ] {
        let err = object::probe(url, &ObjectAuth::anonymous()).unwrap_err();
        assert_eq!(err.kind(), SourceErrorKind::Invalid, "{url}: {err}");
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }
}
