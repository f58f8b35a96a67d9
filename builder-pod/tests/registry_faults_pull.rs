//! threats-and-faults §4.2, pull side (R2, R6, R7, R9): a fault-injecting proxy between the
//! client and a real registry, one named test per scenario.

mod support;

use std::time::{Duration, Instant, SystemTime};

use stratum_builder::image::Platform;
use stratum_builder::registry::{Registry, RegistryError, ResolvedImage, httpdate};
use support::fixture::ProxiedRegistry;
use support::proxy::{Fault, Rule, error_body};
use support::registry::{Auth, fast_retry};

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
    s: &ProxiedRegistry,
    name: &str,
) -> (Duration, Result<ResolvedImage, RegistryError>) {
    let started = Instant::now();
    let result = s
        .client
        .resolve(&s.reference(name), &Platform::linux_amd64())
        .await;
    (started.elapsed(), result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_429_retry_after_in_seconds_is_honoured() {
    let s = ProxiedRegistry::start(
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
    let s = ProxiedRegistry::start(Auth::None, vec![]).await;
    s.seed("r2/b", "1").await;
    // Dated just before the request; one-second resolution puts it 1-2 s ahead, under the
    // policy's 2 s cap.
    let at = httpdate::format(SystemTime::now() + Duration::from_secs(2));
    s.proxy
        .set_rules(vec![Rule::new("GET", "/manifests/", too_many(Some(at)))]);
    let (elapsed, result) = timed_resolve(&s, "r2/b:1").await;
    result.unwrap();
    assert!(elapsed >= Duration::from_millis(900), "waited {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "waited {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_huge_retry_after_is_capped() {
    let s = ProxiedRegistry::start(
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
    let s = ProxiedRegistry::start(
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
async fn r6_corrupt_blob_is_discarded_and_fetched_again() {
    let s = ProxiedRegistry::start(Auth::None, vec![]).await;
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
    let s = ProxiedRegistry::start(Auth::None, vec![]).await;
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
    let s = ProxiedRegistry::start(Auth::None, vec![]).await;
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
    let s = ProxiedRegistry::start(auth, vec![]).await;
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
async fn r9_unknown_base_image_fails_terminally_without_retries() {
    let s = ProxiedRegistry::start(Auth::None, vec![]).await;
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
