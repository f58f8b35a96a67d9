//! threats-and-faults §4.2, push side (R1, R3, R4, R5, R8, R10): a fault-injecting proxy
//! between the client and a real registry, one named test per scenario. The real registry is the
//! oracle wherever it can be (a chunk resumed at the wrong offset would get a real 416, a lost blob
//! gets a real `MANIFEST_BLOB_UNKNOWN`); the proxy log shows what the client did.

mod support;

use stratum_builder::image::{Digest, ManifestRef};
use stratum_builder::registry::{BlobPushed, ClientConfig, RegistryError};
use support::fixture::ProxiedRegistry;
use support::proxy::{Fault, LogEntry, Rule, error_body};
use support::registry::Auth;

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

async fn push_manifest_via_proxy(s: &ProxiedRegistry, path: &str) -> Result<Digest, RegistryError> {
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
async fn r1_reset_mid_blob_upload_is_retried_in_a_new_session() {
    let s = ProxiedRegistry::start(
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
    let s = ProxiedRegistry::with_config(Auth::None, rules, chunked(CHUNK)).await;
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
    let s = ProxiedRegistry::start(Auth::None, rules).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_expired_bearer_token_mid_push_is_refreshed_with_the_configured_credentials() {
    let reg_auth = Auth::Token {
        user: "builder".into(),
        pass: "pw-r3".into(),
    };
    let s = ProxiedRegistry::start(reg_auth, vec![]).await;
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
    let s = ProxiedRegistry::start(
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
    let s = ProxiedRegistry::with_config(Auth::None, rules, chunked(256 << 10)).await;
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
async fn r8_manifest_blob_unknown_uploads_the_missing_blob_and_retries_once() {
    let s = ProxiedRegistry::start(Auth::None, vec![]).await;
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
    let s = ProxiedRegistry::start(Auth::None, vec![]).await;
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
async fn r10_wrong_docker_content_digest_fails_the_push() {
    let wrong = format!("sha256:{}", "0".repeat(64));
    let s = ProxiedRegistry::start(
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
    let s = ProxiedRegistry::start(
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
    let s = ProxiedRegistry::start(Auth::None, vec![]).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_refused_with_202_continues_as_a_normal_upload() {
    let s = ProxiedRegistry::start(Auth::None, vec![]).await;
    // The source repository exists but lacks the blob: distribution opens a session (202).
    s.seed("mount/source", "1").await;
    let (other, _) = support::busybox::layer(
        s.dir.path(),
        "other.tar.gz",
        support::busybox::Format::Oci,
        &[support::busybox::Entry::file("x", 0o644, b"x")],
    );
    let outcome = s
        .client
        .push_blob(
            &s.repo("mount/target"),
            &other.descriptor,
            &other.path,
            Some(&s.repo("mount/source")),
        )
        .await
        .unwrap();
    assert_eq!(outcome, BlobPushed::Uploaded);
    let posts = s.proxy.requests("POST", "/v2/mount/target/blobs/uploads/");
    assert_eq!(posts.len(), 1, "the refused mount's session was used");
    assert!(posts[0].path.contains("mount=") && posts[0].status == Some(202));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_refused_with_401_or_403_falls_back_to_a_plain_upload() {
    let s = ProxiedRegistry::start(Auth::None, vec![]).await;
    s.seed("mount/base", "1").await;
    let refusals = [
        Fault::Respond {
            status: 401,
            headers: vec![("WWW-Authenticate".into(), r#"Basic realm="r""#.into())],
            body: error_body("UNAUTHORIZED", "no"),
        },
        Fault::Respond {
            status: 403,
            headers: vec![],
            body: error_body("DENIED", "no pull access to the source"),
        },
    ];
    for (i, refusal) in refusals.into_iter().enumerate() {
        s.proxy
            .set_rules(vec![Rule::new("POST", "mount=", refusal)]);
        let target = format!("mount/app{i}");
        let outcome = s
            .client
            .push_blob(
                &s.repo(&target),
                &s.layer().descriptor,
                &s.layer().path,
                Some(&s.repo("mount/base")),
            )
            .await
            .unwrap();
        assert_eq!(outcome, BlobPushed::Uploaded, "refusal {i}");
        let posts = s
            .proxy
            .requests("POST", &format!("/v2/{target}/blobs/uploads/"));
        assert_eq!(posts.len(), 2, "mount, then a plain session: {posts:?}");
        assert!(!posts[1].path.contains("mount="));
        assert_eq!(
            s.stored_layer(&target).await,
            std::fs::read(&s.layer().path).unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_400_on_manifest_put_is_not_retried() {
    let invalid = Fault::Respond {
        status: 400,
        headers: vec![],
        body: error_body("MANIFEST_INVALID", "manifest invalid"),
    };
    let s = ProxiedRegistry::start(
        Auth::None,
        vec![Rule::new("PUT", "/manifests/", invalid).times(usize::MAX)],
    )
    .await;
    let err = push_manifest_via_proxy(&s, "perm/a").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 400, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("MANIFEST_INVALID"), "{err}");
    assert_eq!(s.proxy.requests("PUT", "/manifests/").len(), 1);
}
