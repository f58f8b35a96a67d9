//! The operator's real resolver for URL sources against an HTTPS server with a test CA on
//! loopback (the object-source tests' `https_server.py`): the ETag and Last-Modified of the
//! object (what `pollInterval` compares) change when the object does, the Secret's keys (here the
//! CA and basic-auth credentials) reach the object client, and failures come back as kinds.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use k8s_openapi::ByteString;
use stratum_builder::source::SourceErrorKind;
use stratum_crds::{ResolvedUrl, SourceKind, UrlSource};
use stratum_operator::source::builder::BuilderResolver;
use stratum_operator::source::{ResolveRequest, SourceCheck, SourceResolver};

const SERVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../builder-pod/tests/source_object_support/https_server.py"
);
/// The credentials `https_server.py` wants under `/basic/`.
const USER: &str = "builder";
const PASSWORD: &str = "s3cret pw";

struct Https {
    child: Child,
    port: u16,
    root: std::path::PathBuf,
    ca: String,
}

impl Drop for Https {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a certificate for 127.0.0.1 signed by it, and the server.
fn start(dir: &Path) -> Https {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    let root = dir.join("root");
    std::fs::create_dir(&root).unwrap();
    let mut child = Command::new("python3")
        .arg(SERVER)
        .arg(&root)
        .arg(dir.join("server.crt"))
        .arg(dir.join("server.key"))
        .arg(dir.join("requests.log"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the server's port");
    let ca = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    Https {
        child,
        port,
        root,
        ca,
    }
}

fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

async fn probe(url: &str, secret: Option<&BTreeMap<String, ByteString>>) -> SourceCheck {
    let source = UrlSource {
        url: url.to_owned(),
        ..UrlSource::default()
    };
    BuilderResolver::new(std::env::temp_dir())
        .resolve(ResolveRequest {
            source: SourceKind::Url(&source),
            secret,
        })
        .await
}

fn version(check: SourceCheck) -> ResolvedUrl {
    match check {
        SourceCheck::Resolved(r) => r.url.unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_version_changes_with_the_object_and_credentials_come_from_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    std::fs::write(server.root.join("ctx.tar"), b"one").unwrap();
    let url = |route: &str| format!("https://127.0.0.1:{}/{route}/ctx.tar", server.port);
    let trust = secret(&[("ca.crt", &server.ca)]);

    let first = version(probe(&url("files"), Some(&trust)).await);
    assert!(
        first.etag.is_some() && first.last_modified.is_some(),
        "{first:?}"
    );
    std::fs::write(server.root.join("ctx.tar"), b"two").unwrap();
    let second = version(probe(&url("files"), Some(&trust)).await);
    assert_ne!(first.etag, second.etag);

    let login = secret(&[
        ("ca.crt", &server.ca),
        ("username", USER),
        ("password", PASSWORD),
    ]);
    assert_eq!(
        version(probe(&url("basic"), Some(&login)).await).etag,
        second.etag
    );
    let wrong = secret(&[
        ("ca.crt", &server.ca),
        ("username", USER),
        ("password", "wrong-pw-77"),
    ]);
    match probe(&url("basic"), Some(&wrong)).await {
        SourceCheck::Failed { kind, message } => {
            assert_eq!(kind, SourceErrorKind::Auth, "{message}");
            assert!(message.contains(&url("basic")), "{message}");
            assert!(!message.contains("wrong-pw-77"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let missing = format!("https://127.0.0.1:{}/files/nothing.tar", server.port);
    match probe(&missing, Some(&trust)).await {
        SourceCheck::Failed { kind, .. } => assert_eq!(kind, SourceErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
    // Without the CA the server is not trusted: never a silent accept.
    assert!(matches!(
        probe(&url("files"), None).await,
        SourceCheck::Failed { .. }
    ));
}
