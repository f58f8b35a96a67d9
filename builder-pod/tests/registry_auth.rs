//! Authentication against real registries: htpasswd (Basic), Docker token auth (Bearer, with
//! scopes for pull, push and cross-repository mounts), identity tokens and registry tokens from a
//! docker config, and the promise that no credential reaches a log line, an error or Debug output.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use stratum_builder::image::{Platform, Tag};
use stratum_builder::registry::{
    BlobPushed, Credential, Credentials, ImagePush, PushedImage, Registry, RegistryClient,
    RegistryError, Secret, push_image,
};
use support::busybox::{Entry, Format, TestImage, busybox_base, derive};
use support::fixture::ProxiedRegistry;
use support::proxy::{Fault, Rule, error_body};
use support::registry::{Auth, TestRegistry, client_for};
use support::tools;

fn tags(names: &[&str]) -> Vec<Tag> {
    names.iter().map(|t| t.parse().unwrap()).collect()
}

async fn push(
    client: &RegistryClient,
    reg: &TestRegistry,
    repo: &str,
    image: &TestImage,
    tag_names: &[&str],
    mount_from: Option<&str>,
) -> PushedImage {
    let repository = reg.repo(repo);
    let mount = mount_from.map(|m| reg.repo(m));
    let tags = tags(tag_names);
    let upload = ImagePush {
        repository: &repository,
        blobs: &image.blobs,
        manifest: &image.manifest,
        tags: &tags,
        mount_from: mount.as_ref(),
        concurrency: 3,
    };
    push_image(client, &upload)
        .await
        .unwrap_or_else(|e| panic!("push {repo}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_registry_requires_and_accepts_basic_credentials() {
    let pass = "s3cret-pass-1234";
    let reg = TestRegistry::start(Auth::Htpasswd {
        user: "stratum".into(),
        pass: pass.into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let base = busybox_base(dir.path(), Format::Oci);
    let repo = reg.repo("private/busybox");
    let tags = tags(&["1"]);
    let upload = ImagePush {
        repository: &repo,
        blobs: &base.blobs,
        manifest: &base.manifest,
        tags: &tags,
        mount_from: None,
        concurrency: 2,
    };

    // Anonymous: a typed auth failure, no retries, no secret in the message.
    let anonymous = client_for(&reg.host_port, Credentials::anonymous());
    let err = push_image(&anonymous, &upload).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert_eq!(err.reason(), "RegistryAuthFailed");

    // Wrong password: also a typed failure.
    let wrong = format!(
        r#"{{"auths":{{"{}":{{"username":"stratum","password":"nope"}}}}}}"#,
        reg.host_port
    );
    let wrong = client_for(
        &reg.host_port,
        Credentials::from_docker_config(wrong.as_bytes(), "wrong.json").unwrap(),
    );
    let err = push_image(&wrong, &upload).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(!err.to_string().contains("nope"), "{err}");

    // Credentials from a docker config.json with the `auth` field.
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("stratum:{pass}"));
    let config = format!(
        r#"{{"auths":{{"http://{}":{{"auth":"{auth}"}}}}}}"#,
        reg.host_port
    );
    let path = dir.path().join("config.json");
    std::fs::write(&path, config).unwrap();
    let client = client_for(&reg.host_port, Credentials::load(&path).unwrap());
    let debug = format!("{client:?}");
    assert!(!debug.contains(pass) && !debug.contains(&auth), "{debug}");

    let pushed = push_image(&client, &upload).await.unwrap();
    assert_eq!(pushed.digest, base.manifest.digest);
    let image = format!("{}/private/busybox:1", reg.host_port);
    assert_eq!(
        tools::skopeo_raw_manifest(&image, reg.skopeo_creds().as_deref()),
        base.manifest.bytes
    );
    let resolved = client
        .resolve(
            &reg.reference("private/busybox:1"),
            &Platform::linux_amd64(),
        )
        .await
        .unwrap();
    assert_eq!(
        resolved.config_bytes.as_ref(),
        base.config_blob.bytes.as_slice()
    );
    let err = anonymous
        .resolve(
            &reg.reference("private/busybox:1"),
            &Platform::linux_amd64(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_registry_issues_scoped_bearer_tokens_including_the_mount_source() {
    let reg = TestRegistry::start(Auth::Token {
        user: "builder".into(),
        pass: "token-pass-5678".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let base = busybox_base(dir.path(), Format::Oci);
    let client = reg.client();
    push(&client, &reg, "base/busybox", &base, &["1"], None).await;
    let token = reg.token_server.as_ref().unwrap();
    let requests = token.requests();
    assert!(
        requests.iter().all(|r| r.granted
            && r.basic_user.as_deref() == Some("builder")
            && !r.presented_bearer),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.scopes == ["repository:base/busybox:pull,push"]),
        "{requests:?}"
    );

    let derived = derive(
        dir.path(),
        &base,
        "app",
        &[Entry::file("hello", 0o644, b"hi\n")],
        "COPY hello /",
    );
    let pushed = push(
        &client,
        &reg,
        "app/derived",
        &derived,
        &["v1"],
        Some("base/busybox"),
    )
    .await;
    assert!(
        pushed.blobs.contains(&(
            base.layers[0].descriptor.digest.clone(),
            BlobPushed::Mounted {
                from: reg.repo("base/busybox")
            }
        )),
        "{:?}",
        pushed.blobs
    );
    // The mount needed pull access to the source repository in the same token.
    assert!(
        token.requests().iter().any(|r| r.scopes
            == [
                "repository:app/derived:pull,push",
                "repository:base/busybox:pull"
            ]),
        "{:?}",
        token.requests()
    );
    assert_eq!(
        tools::skopeo_raw_manifest(
            &format!("{}/app/derived:v1", reg.host_port),
            reg.skopeo_creds().as_deref()
        ),
        derived.manifest.bytes
    );

    let resolved = client
        .resolve(&reg.reference("app/derived:v1"), &Platform::linux_amd64())
        .await
        .unwrap();
    assert_eq!(resolved.manifest_digest, derived.manifest.digest);
    assert!(
        token
            .requests()
            .iter()
            .any(|r| r.scopes == ["repository:app/derived:pull"])
    );

    let anonymous = client_for(&reg.host_port, Credentials::anonymous());
    let err = anonymous
        .resolve(&reg.reference("app/derived:v1"), &Platform::linux_amd64())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_token_from_docker_config_is_exchanged_at_the_token_service() {
    let secret = "refresh-token-9012";
    let reg = TestRegistry::start(Auth::Token {
        user: "builder".into(),
        pass: secret.into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let base = busybox_base(dir.path(), Format::Oci);
    let config = format!(
        r#"{{"auths":{{"{}":{{"username":"<token>","identitytoken":"{secret}"}}}}}}"#,
        reg.host_port
    );
    let creds = Credentials::from_docker_config(config.as_bytes(), "config.json").unwrap();
    assert!(matches!(
        creds.for_registry(&reg.host_port).unwrap(),
        Credential::IdentityToken { .. }
    ));
    let client = client_for(&reg.host_port, creds);
    let pushed = push(&client, &reg, "oauth/busybox", &base, &["1"], None).await;
    assert_eq!(pushed.digest, base.manifest.digest);
    let requests = reg.token_server.as_ref().unwrap().requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.refresh_grant && r.basic_user.is_none() && r.granted),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.scopes == ["repository:oauth/busybox:pull,push"]),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_token_from_docker_config_is_sent_as_is() {
    let reg = TestRegistry::start(Auth::Token {
        user: "builder".into(),
        pass: "pw-regtoken".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let base = busybox_base(dir.path(), Format::Oci);
    push(&reg.client(), &reg, "static/busybox", &base, &["1"], None).await;

    // A token obtained out of band (what `registrytoken` holds), valid for pulling this repository.
    let token = reg.token_server.as_ref().unwrap();
    let url = format!(
        "{}?service={}&scope=repository:static/busybox:pull",
        token.realm(),
        support::token::SERVICE
    );
    let response: serde_json::Value = reqwest::Client::new()
        .get(url)
        .basic_auth("builder", Some("pw-regtoken"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = response["token"].as_str().unwrap().to_owned();
    let before = token.requests().len();

    let config = format!(
        r#"{{"auths":{{"{}":{{"registrytoken":"{bearer}"}}}}}}"#,
        reg.host_port
    );
    let client = client_for(
        &reg.host_port,
        Credentials::from_docker_config(config.as_bytes(), "config.json").unwrap(),
    );
    let resolved = client
        .resolve(&reg.reference("static/busybox:1"), &Platform::linux_amd64())
        .await
        .unwrap();
    assert_eq!(resolved.manifest_digest, base.manifest.digest);
    assert_eq!(
        token.requests().len(),
        before,
        "a registry token is not exchanged"
    );
    // It grants pull only: a push is refused with a typed error, not retried forever.
    let err = client
        .push_blob(
            &reg.repo("static/other"),
            &base.layers[0].descriptor,
            &base.layers[0].path,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Unauthorized { .. } | RegistryError::Denied { .. }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains(&bearer) && !format!("{err:?}").contains(&bearer));
}

/// A `MakeWriter` that keeps everything logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread, so the thread-local subscriber sees every span and event of the client, hyper and
// reqwest at TRACE level.
#[tokio::test(flavor = "current_thread")]
async fn credentials_never_reach_logs_errors_or_debug_output() {
    let pass = "pa55-NEVER-LOGGED-7391";
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("builder:{pass}"));
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Retries (a 503, a reset) make the client log warnings that include errors.
    let rules = vec![
        Rule::new(
            "POST",
            "/blobs/uploads/",
            Fault::Respond {
                status: 503,
                headers: vec![],
                body: error_body("UNAVAILABLE", "later"),
            },
        ),
        Rule::new(
            "PUT",
            "/blobs/uploads/",
            Fault::ResetMidRequestBody { after: 1024 },
        ),
    ];
    let s = ProxiedRegistry::start(
        Auth::Htpasswd {
            user: "builder".into(),
            pass: pass.into(),
        },
        rules,
    )
    .await;
    let pushed = s.push_base("secret/busybox", "1").await.unwrap();
    assert!(pushed.blobs.iter().all(|(_, o)| *o == BlobPushed::Uploaded));
    let resolved = s
        .client
        .resolve(&s.reference("secret/busybox:1"), &Platform::linux_amd64())
        .await
        .unwrap();

    // A wrong password in a docker config: the error names the registry, not the secret.
    let wrong = format!(
        r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
        s.proxy.host_port,
        base64::engine::general_purpose::STANDARD.encode("builder:WRONG-pass-4242")
    );
    let wrong = client_for(
        &s.proxy.host_port,
        Credentials::from_docker_config(wrong.as_bytes(), "wrong.json").unwrap(),
    );
    let err = wrong
        .resolve(&s.reference("secret/busybox:1"), &Platform::linux_amd64())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");

    let mut creds = Credentials::anonymous();
    creds.insert(
        "x.example",
        Credential::Basic {
            username: "builder".into(),
            password: Secret::new(pass),
        },
    );
    let text = format!(
        "{}\n{err}\n{err:?}\n{:?}\n{:?}\n{creds:?}\n{:?}",
        String::from_utf8_lossy(&logs.0.lock().unwrap()),
        s.client,
        wrong,
        resolved
    );
    assert!(
        text.contains("retrying") || text.contains("retry"),
        "the faults were logged"
    );
    for secret in [pass, encoded.as_str(), "WRONG-pass-4242"] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
    // The proxy saw the Authorization header, so the secret did travel — only where it should.
    assert!(
        s.proxy
            .log()
            .iter()
            .any(|e| e.header("authorization") == Some(&format!("Basic {encoded}")))
    );
}
