//! threats-and-faults §4.2 R1–R10: a fault-injecting proxy between the client and a real
//! registry, one named test per scenario. The real registry is the oracle wherever it can be
//! (a resumed chunk at the wrong offset gets a real 416, a lost blob a real
//! `MANIFEST_BLOB_UNKNOWN`); the proxy log shows what the client did.

mod support;

use std::time::{Duration, Instant, SystemTime};

use stratum_builder::image::{Digest, ManifestRef, Platform, Repository, Tag};
use stratum_builder::registry::{
    BlobPushed, ClientConfig, ImagePush, LocalBlob, Registry, RegistryClient, RegistryError,
    httpdate, push_image,
};
use support::busybox::{Format, TestImage, busybox_base};
use support::proxy::{Fault, FaultProxy, LogEntry, Rule, error_body};
use support::registry::{Auth, TestRegistry, fast_retry};

struct Setup {
    reg: TestRegistry,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
    base: TestImage,
    client: RegistryClient,
}

impl Setup {
    async fn new(auth: Auth, rules: Vec<Rule>) -> Self {
        Self::with_config(auth, rules, ClientConfig::default()).await
    }

    async fn with_config(auth: Auth, rules: Vec<Rule>, config: ClientConfig) -> Self {
        let reg = TestRegistry::start(auth);
        let proxy = FaultProxy::start(&reg.host_port, rules).await;
        let dir = tempfile::tempdir().unwrap();
        let base = busybox_base(dir.path(), Format::Oci);
        let mut config = ClientConfig {
            retry: fast_retry(),
            read_timeout: Duration::from_secs(10),
            ..config
        };
        config.insecure_registries.insert(proxy.host_port.clone());
        let client = RegistryClient::new(config, reg.credentials_for(&proxy.host_port)).unwrap();
        Self {
            reg,
            proxy,
            dir,
            base,
            client,
        }
    }

    /// A repository reached through the proxy.
    fn repo(&self, path: &str) -> Repository {
        Repository::parse(&format!("{}/{path}", self.proxy.host_port)).unwrap()
    }

    fn layer(&self) -> &LocalBlob {
        &self.base.layers[0]
    }

    /// Pushes the base image straight to the registry (no faults), for pull tests.
    async fn seed(&self, path: &str, tag: &str) {
        let repo = self.reg.repo(path);
        let tags: Vec<Tag> = vec![tag.parse().unwrap()];
        let push = ImagePush {
            repository: &repo,
            blobs: &self.base.blobs,
            manifest: &self.base.manifest,
            tags: &tags,
            mount_from: None,
            concurrency: 2,
        };
        push_image(&self.reg.client(), &push).await.unwrap();
    }

    async fn push_base(
        &self,
        path: &str,
        tag: &str,
    ) -> Result<stratum_builder::registry::PushedImage, RegistryError> {
        let repo = self.repo(path);
        let tags: Vec<Tag> = vec![tag.parse().unwrap()];
        let push = ImagePush {
            repository: &repo,
            blobs: &self.base.blobs,
            manifest: &self.base.manifest,
            tags: &tags,
            mount_from: None,
            concurrency: 1,
        };
        push_image(&self.client, &push).await
    }

    /// The layer as the registry stores it, read directly (not through the proxy).
    async fn stored_layer(&self, path: &str) -> Vec<u8> {
        let dest = self.dir.path().join(format!("check-{}", rand_suffix()));
        self.reg
            .client()
            .fetch_blob_to(&self.reg.repo(path), &self.layer().descriptor, &dest)
            .await
            .unwrap();
        std::fs::read(dest).unwrap()
    }
}

fn rand_suffix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The upload session id in an upload URL path (`…/blobs/uploads/<uuid>?…`).
fn session(entry: &LogEntry) -> String {
    let path = entry.path.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

fn chunked(chunk_size: u64) -> ClientConfig {
    ClientConfig {
        chunk_size,
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_reset_mid_blob_upload_is_retried_in_a_new_session() {
    let s = Setup::new(
        Auth::None,
        vec![Rule::new(
            "PUT",
            "/blobs/uploads/",
            Fault::ResetMidRequestBody { after: 64 << 10 },
        )],
    )
    .await;
    let repo = s.repo("r1/mono");
    let outcome = s
        .client
        .push_blob(&repo, &s.layer().descriptor, &s.layer().path, None)
        .await
        .unwrap();
    assert_eq!(outcome, BlobPushed::Uploaded);

    let puts = s.proxy.requests("PUT", "/blobs/uploads/");
    assert_eq!(puts.len(), 2, "{puts:?}");
    assert!(puts[0].fault.is_some() && puts[1].status == Some(201));
    assert_ne!(
        session(&puts[0]),
        session(&puts[1]),
        "the retry must use a fresh session"
    );
    assert_eq!(s.proxy.requests("POST", "/blobs/uploads/").len(), 2);
    assert_eq!(
        s.stored_layer("r1/mono").await,
        std::fs::read(&s.layer().path).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_chunked_upload_resumes_at_the_registry_offset_after_a_reset() {
    const CHUNK: u64 = 256 << 10;
    let rules = vec![
        Rule::new(
            "PATCH",
            "/blobs/uploads/",
            Fault::ResetMidRequestBody { after: 1000 },
        )
        .skip(1),
    ];
    let s = Setup::with_config(Auth::None, rules, chunked(CHUNK)).await;
    assert!(
        s.layer().descriptor.size > 3 * CHUNK,
        "the layer spans several chunks"
    );
    let repo = s.repo("r1/chunked");
    let outcome = s
        .client
        .push_blob(&repo, &s.layer().descriptor, &s.layer().path, None)
        .await
        .unwrap();
    assert_eq!(outcome, BlobPushed::Uploaded);

    assert_eq!(
        s.proxy.requests("POST", "/blobs/uploads/").len(),
        1,
        "resumed in the same session"
    );
    assert_eq!(
        s.proxy.requests("GET", "/blobs/uploads/").len(),
        1,
        "asked the registry where to resume"
    );
    let ranges: Vec<String> = s
        .proxy
        .requests("PATCH", "/blobs/uploads/")
        .iter()
        .map(|e| e.header("content-range").unwrap().to_owned())
        .collect();
    assert_eq!(ranges[0], format!("0-{}", CHUNK - 1));
    assert_eq!(
        ranges[1],
        format!("{CHUNK}-{}", 2 * CHUNK - 1),
        "the reset chunk"
    );
    assert_eq!(
        ranges[2], ranges[1],
        "resumed at the committed offset, not at 0"
    );
    assert_eq!(
        ranges.iter().filter(|r| r.starts_with("0-")).count(),
        1,
        "never resent from 0: {ranges:?}"
    );
    assert_eq!(
        s.stored_layer("r1/chunked").await,
        std::fs::read(&s.layer().path).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_server_errors_on_upload_are_retried_with_backoff() {
    let unavailable = Fault::Respond {
        status: 503,
        headers: vec![],
        body: error_body("UNAVAILABLE", "try later"),
    };
    let rules = vec![
        Rule::new("POST", "/blobs/uploads/", unavailable).times(2),
        Rule::new(
            "PUT",
            "/blobs/uploads/",
            Fault::Respond {
                status: 502,
                headers: vec![],
                body: vec![],
            },
        ),
    ];
    let s = Setup::new(Auth::None, rules).await;
    let outcome = s
        .client
        .push_blob(
            &s.repo("r1/5xx"),
            &s.layer().descriptor,
            &s.layer().path,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, BlobPushed::Uploaded);
    assert_eq!(
        s.proxy.requests("POST", "/blobs/uploads/").len(),
        4,
        "2 refused + 1 whose PUT failed + 1"
    );
    assert_eq!(
        s.stored_layer("r1/5xx").await,
        std::fs::read(&s.layer().path).unwrap()
    );
}

fn too_many(retry_after: Option<String>) -> Fault {
    let headers = retry_after
        .map(|v| vec![("Retry-After".to_owned(), v)])
        .unwrap_or_default();
    Fault::Respond {
        status: 429,
        headers,
        body: error_body("TOOMANYREQUESTS", "slow down"),
    }
}

async fn timed_resolve(
    s: &Setup,
    path: &str,
) -> (
    Duration,
    Result<stratum_builder::registry::ResolvedImage, RegistryError>,
) {
    let started = Instant::now();
    let reference =
        stratum_builder::image::Reference::parse(&format!("{}/{path}", s.proxy.host_port)).unwrap();
    let result = s.client.resolve(&reference, &Platform::linux_amd64()).await;
    (started.elapsed(), result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_429_retry_after_in_seconds_is_honoured() {
    let s = Setup::new(
        Auth::None,
        vec![Rule::new("GET", "/manifests/", too_many(Some("1".into())))],
    )
    .await;
    s.seed("r2/a", "1").await;
    let (elapsed, result) = timed_resolve(&s, "r2/a:1").await;
    result.unwrap();
    assert!(elapsed >= Duration::from_millis(950), "waited {elapsed:?}");
    assert_eq!(s.proxy.requests("GET", "/manifests/1").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_429_retry_after_as_http_date_is_honoured() {
    let at = httpdate::format(SystemTime::now() + Duration::from_secs(2));
    let s = Setup::new(
        Auth::None,
        vec![Rule::new("GET", "/manifests/", too_many(Some(at)))],
    )
    .await;
    s.seed("r2/b", "1").await;
    let (elapsed, result) = timed_resolve(&s, "r2/b:1").await;
    result.unwrap();
    // The date has one-second resolution: "now + 2 s" is between 1 and 2 s away.
    assert!(elapsed >= Duration::from_millis(950), "waited {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_huge_retry_after_is_capped() {
    let s = Setup::new(
        Auth::None,
        vec![Rule::new(
            "GET",
            "/manifests/",
            too_many(Some("86400".into())),
        )],
    )
    .await;
    s.seed("r2/c", "1").await;
    let (elapsed, result) = timed_resolve(&s, "r2/c:1").await;
    result.unwrap();
    let cap = fast_retry().retry_after_cap;
    assert!(
        elapsed >= cap && elapsed < cap + Duration::from_secs(3),
        "waited {elapsed:?} with a cap of {cap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_429_without_retry_after_backs_off_until_the_budget_is_spent() {
    let s = Setup::new(
        Auth::None,
        vec![Rule::new("GET", "/manifests/", too_many(None)).times(usize::MAX)],
    )
    .await;
    let (_, result) = timed_resolve(&s, "r2/d:1").await;
    let err = result.unwrap_err();
    let RegistryError::RetriesExhausted { attempts, last, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*attempts, fast_retry().max_retries + 1);
    assert!(
        matches!(**last, RegistryError::Status { status: 429, .. }),
        "{last}"
    );
    assert_eq!(
        s.proxy.requests("GET", "/manifests/").len() as u32,
        fast_retry().max_retries + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_expired_bearer_token_mid_push_is_refreshed_with_the_configured_credentials() {
    let reg_auth = Auth::Token {
        user: "builder".into(),
        pass: "pw-r3".into(),
    };
    let s = Setup::new(reg_auth, vec![]).await;
    let token = s.reg.token_server.as_ref().unwrap();
    // The registry's own 401 for an expired token (distribution registry/auth/token).
    let challenge = format!(
        r#"Bearer realm="{}",service="{}",scope="repository:r3/app:pull,push",error="invalid_token""#,
        token.realm(),
        support::token::SERVICE
    );
    s.proxy.set_rules(vec![Rule::new(
        "PUT",
        "/manifests/",
        Fault::Respond {
            status: 401,
            headers: vec![("WWW-Authenticate".into(), challenge)],
            body: error_body("UNAUTHORIZED", "authentication required"),
        },
    )]);
    let pushed = s.push_base("r3/app", "1").await.unwrap();
    assert_eq!(pushed.digest, s.base.manifest.digest);

    let puts = s.proxy.requests("PUT", "/manifests/");
    assert_eq!(puts.len(), 2, "only the refused request is repeated");
    assert_eq!(puts[1].status, Some(201));
    assert_ne!(
        puts[0].header("authorization"),
        puts[1].header("authorization"),
        "a new token"
    );
    assert_eq!(
        s.proxy.requests("POST", "/blobs/uploads/").len(),
        s.base.blobs.len(),
        "no blob was uploaded twice"
    );
    let requests = token.requests();
    let push_scope = ["repository:r3/app:pull,push".to_owned()];
    assert!(
        requests.iter().filter(|r| r.scopes == push_scope).count() >= 2,
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.basic_user.as_deref() == Some("builder") && !r.presented_bearer),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_commit_that_landed_but_timed_out_is_confirmed_by_head() {
    let s = Setup::new(
        Auth::None,
        vec![Rule::new("PUT", "/blobs/uploads/", Fault::ForwardThenReset)],
    )
    .await;
    let outcome = s
        .client
        .push_blob(
            &s.repo("r4/app"),
            &s.layer().descriptor,
            &s.layer().path,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, BlobPushed::Uploaded);
    assert_eq!(
        s.proxy.requests("POST", "/blobs/uploads/").len(),
        1,
        "no second upload"
    );
    let heads = s
        .proxy
        .requests("HEAD", &s.layer().descriptor.digest.to_string());
    assert_eq!(
        heads.iter().map(|h| h.status).collect::<Vec<_>>(),
        vec![Some(404), Some(200)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_expired_upload_session_is_restarted() {
    // The registry forgets the session just before the second chunk arrives (a real 404).
    let rules = vec![
        Rule::new(
            "PATCH",
            "/blobs/uploads/",
            Fault::UpstreamFirst {
                method: "DELETE".into(),
                path: None,
            },
        )
        .skip(1),
    ];
    let s = Setup::with_config(Auth::None, rules, chunked(256 << 10)).await;
    let outcome = s
        .client
        .push_blob(
            &s.repo("r5/app"),
            &s.layer().descriptor,
            &s.layer().path,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, BlobPushed::Uploaded);
    let patches = s.proxy.requests("PATCH", "/blobs/uploads/");
    assert_eq!(patches[1].status, Some(404));
    let posts = s.proxy.requests("POST", "/blobs/uploads/");
    assert_eq!(posts.len(), 2, "a new session after the lost one");
    assert_eq!(
        s.stored_layer("r5/app").await,
        std::fs::read(&s.layer().path).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_corrupt_blob_is_discarded_and_fetched_again() {
    let s = Setup::new(Auth::None, vec![]).await;
    s.seed("r6/a", "1").await;
    let digest = s.layer().descriptor.digest.to_string();
    s.proxy
        .set_rules(vec![Rule::new("GET", &digest, Fault::CorruptBody)]);
    let out = s.dir.path().join("pull");
    let dest = out.join("layer");
    s.client
        .fetch_blob_to(&s.repo("r6/a"), &s.layer().descriptor, &dest)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&s.layer().path).unwrap()
    );
    assert_eq!(s.proxy.requests("GET", &digest).len(), 2);
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_persistently_corrupt_blob_fails_and_writes_nothing() {
    let s = Setup::new(Auth::None, vec![]).await;
    s.seed("r6/b", "1").await;
    let digest = s.layer().descriptor.digest.to_string();
    s.proxy.set_rules(vec![
        Rule::new("GET", &digest, Fault::CorruptBody).times(usize::MAX),
    ]);
    let out = s.dir.path().join("pull");
    let err = s
        .client
        .fetch_blob_to(&s.repo("r6/b"), &s.layer().descriptor, &out.join("layer"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert_eq!(
        s.proxy.requests("GET", &digest).len(),
        2,
        "one re-fetch, then fail"
    );
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "nothing unverified was left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_truncated_blob_download_is_retried() {
    let s = Setup::new(Auth::None, vec![]).await;
    s.seed("r6/c", "1").await;
    let digest = s.layer().descriptor.digest.to_string();
    s.proxy.set_rules(vec![Rule::new(
        "GET",
        &digest,
        Fault::TruncateBody { keep: 100_000 },
    )]);
    let dest = s.dir.path().join("pull/layer");
    s.client
        .fetch_blob_to(&s.repo("r6/c"), &s.layer().descriptor, &dest)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&s.layer().path).unwrap()
    );
    assert_eq!(s.proxy.requests("GET", &digest).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r7_expired_storage_redirect_is_requested_again_through_the_registry() {
    let auth = Auth::Htpasswd {
        user: "u".into(),
        pass: "redirect-secret".into(),
    };
    let s = Setup::new(auth, vec![]).await;
    s.reg
        .client()
        .push_blob(
            &s.reg.repo("r7/a"),
            &s.layer().descriptor,
            &s.layer().path,
            None,
        )
        .await
        .unwrap();
    let digest = s.layer().descriptor.digest.to_string();
    s.proxy.set_rules(vec![
        Rule::new("GET", &digest, Fault::RedirectToCdn).times(usize::MAX),
        Rule::new("GET", "/__cdn/", Fault::Respond { status: 403, headers: vec![], body: b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>".to_vec() }),
    ]);
    let dest = s.dir.path().join("pull/layer");
    s.client
        .fetch_blob_to(&s.repo("r7/a"), &s.layer().descriptor, &dest)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&s.layer().path).unwrap()
    );

    let cdn = s.proxy.requests("GET", "/__cdn/");
    assert_eq!(cdn.len(), 2, "{cdn:?}");
    assert!(
        cdn[0].path.starts_with("/__cdn/1/") && cdn[1].path.starts_with("/__cdn/2/"),
        "a fresh URL from the registry, not the dead one again"
    );
    assert!(
        cdn.iter().all(|e| e.header("authorization").is_none()),
        "registry credentials never go to storage"
    );
    let through_registry: Vec<Option<u16>> = s
        .proxy
        .requests("GET", "/v2/r7/a/blobs/")
        .iter()
        .filter(|e| e.path.starts_with("/v2/"))
        .map(|e| e.status)
        .collect();
    assert_eq!(
        through_registry,
        vec![Some(401), Some(307), Some(307)],
        "challenge, then one redirect per attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r8_manifest_blob_unknown_uploads_the_missing_blob_and_retries_once() {
    let s = Setup::new(Auth::None, vec![]).await;
    // Between the blob pushes and the manifest PUT, the registry loses the layer (GC, or a mount
    // that never took effect): a real MANIFEST_BLOB_UNKNOWN.
    let lose = format!("/v2/r8/app/blobs/{}", s.layer().descriptor.digest);
    s.proxy.set_rules(vec![Rule::new(
        "PUT",
        "/manifests/",
        Fault::UpstreamFirst {
            method: "DELETE".into(),
            path: Some(lose),
        },
    )]);
    let pushed = s.push_base("r8/app", "1").await.unwrap();
    assert_eq!(pushed.digest, s.base.manifest.digest);
    let puts = s.proxy.requests("PUT", "/manifests/");
    assert_eq!(
        puts.iter().map(|p| p.status).collect::<Vec<_>>(),
        vec![Some(400), Some(201)]
    );
    assert_eq!(
        s.proxy.requests("POST", "/blobs/uploads/").len(),
        s.base.blobs.len() + 1,
        "the lost layer was uploaded again"
    );
    assert_eq!(
        support::tools::skopeo_raw_manifest(&format!("{}/r8/app:1", s.reg.host_port), None),
        s.base.manifest.bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r8_persistent_manifest_blob_unknown_fails_with_the_list_of_blobs() {
    let s = Setup::new(Auth::None, vec![]).await;
    let missing = s.layer().descriptor.digest.clone();
    let body = format!(
        r#"{{"errors":[{{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"{missing}"}}]}}"#
    );
    s.proxy.set_rules(vec![
        Rule::new(
            "PUT",
            "/manifests/",
            Fault::Respond {
                status: 400,
                headers: vec![],
                body: body.into_bytes(),
            },
        )
        .times(usize::MAX),
    ]);
    let err = s.push_base("r8/fail", "1").await.unwrap_err();
    let RegistryError::ManifestBlobUnknown { blobs, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(blobs, &vec![missing.clone()]);
    assert!(err.to_string().contains(&missing.to_string()));
    assert_eq!(
        s.proxy.requests("PUT", "/manifests/").len(),
        2,
        "retried once, then failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r9_unknown_base_image_fails_terminally_without_retries() {
    let s = Setup::new(Auth::None, vec![]).await;
    s.seed("r9/exists", "1").await;
    for (path, needle) in [
        ("r9/missing:1", "/v2/r9/missing/manifests/1"),
        ("r9/exists:nope", "/v2/r9/exists/manifests/nope"),
    ] {
        let (_, result) = timed_resolve(&s, path).await;
        let err = result.unwrap_err();
        assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
        assert!(
            err.to_string().contains("MANIFEST_UNKNOWN")
                || err.to_string().contains("NAME_UNKNOWN"),
            "{err}"
        );
        assert_eq!(err.reason(), "ImageNotFound");
        assert_eq!(s.proxy.requests("GET", needle).len(), 1, "no retry storm");
    }
    // 403 is as final as 404.
    s.proxy.set_rules(vec![
        Rule::new(
            "GET",
            "/manifests/",
            Fault::Respond {
                status: 403,
                headers: vec![],
                body: error_body("DENIED", "requested access to the resource is denied"),
            },
        )
        .times(usize::MAX),
    ]);
    let (_, result) = timed_resolve(&s, "r9/exists:1").await;
    assert!(matches!(result.unwrap_err(), RegistryError::Denied { .. }));
    assert_eq!(
        s.proxy.requests("GET", "/v2/r9/exists/manifests/1").len(),
        1
    );
}

async fn push_manifest_via_proxy(s: &Setup, path: &str) -> Result<Digest, RegistryError> {
    let repo = s.repo(path);
    for blob in &s.base.blobs {
        s.client
            .push_blob(&repo, &blob.descriptor, &blob.path, None)
            .await
            .unwrap();
    }
    let manifest = &s.base.manifest;
    s.client
        .push_manifest(
            &repo,
            &ManifestRef::Tag("1".parse().unwrap()),
            &manifest.media_type,
            &manifest.bytes,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_wrong_docker_content_digest_fails_the_push() {
    let wrong = format!("sha256:{}", "0".repeat(64));
    let s = Setup::new(
        Auth::None,
        vec![Rule::new(
            "PUT",
            "/manifests/",
            Fault::SetHeader {
                name: "Docker-Content-Digest".into(),
                value: Some(wrong.clone()),
            },
        )],
    )
    .await;
    let err = push_manifest_via_proxy(&s, "r10/a").await.unwrap_err();
    let RegistryError::RegistryDigestMismatch {
        local, registry, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(local, &s.base.manifest.digest);
    assert_eq!(registry, &wrong);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_missing_docker_content_digest_is_confirmed_by_digest() {
    let s = Setup::new(
        Auth::None,
        vec![Rule::new(
            "PUT",
            "/manifests/",
            Fault::SetHeader {
                name: "Docker-Content-Digest".into(),
                value: None,
            },
        )],
    )
    .await;
    let digest = push_manifest_via_proxy(&s, "r10/b").await.unwrap();
    assert_eq!(
        digest, s.base.manifest.digest,
        "the locally computed digest is recorded"
    );
    let confirm = s.proxy.requests("GET", &format!("/manifests/{digest}"));
    assert_eq!(confirm.len(), 1, "confirmed with a GET by digest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_registry_storing_other_bytes_than_acknowledged_fails() {
    let s = Setup::new(Auth::None, vec![]).await;
    let digest = s.base.manifest.digest.to_string();
    s.proxy.set_rules(vec![Rule::new(
        "GET",
        &format!("/manifests/{digest}"),
        Fault::CorruptBody,
    )]);
    let err = push_manifest_via_proxy(&s, "r10/c").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::RegistryDigestMismatch { .. }),
        "{err}"
    );
}
