//! The emulator driven by kube-rs in-process (`kube::Client` over the axum Router): the API
//! semantics the operator relies on.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Error};
use serde_json::json;
use stratum_e2e::apiserver::{ApiServer, Config, Verb};
use stratum_e2e::fixtures::{widget_crd, widget_resource};

async fn setup() -> (ApiServer, Client) {
    let server = ApiServer::new(Config::default());
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(widget_crd()).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    (server, client)
}

fn widgets(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), "default", &widget_resource())
}

fn widget(name: &str, size: i64) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "test.stratum.dev/v1", "kind": "Widget",
        "metadata": {"name": name, "labels": {"app": "demo"}},
        "spec": {"size": size},
    }))
    .unwrap()
}

fn api_code(e: &Error) -> Option<u16> {
    match e {
        Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn api_reason(e: &Error) -> String {
    match e {
        Error::Api(s) => s.reason.clone(),
        other => format!("{other}"),
    }
}

#[tokio::test]
async fn crd_registration_serves_the_resource_with_defaults_and_established_status() {
    let (_server, client) = setup().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get("widgets.test.stratum.dev").await.unwrap();
    let conds = crd.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    let created = widgets(&client)
        .create(&PostParams::default(), &widget("w", 3))
        .await
        .unwrap();
    assert_eq!(
        created.data["spec"]["color"], "red",
        "schema default applied"
    );
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
}

#[tokio::test]
async fn invalid_custom_resources_are_422_with_causes() {
    let (_server, client) = setup().await;
    let err = widgets(&client)
        .create(&PostParams::default(), &widget("w", 0))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(422));
    assert_eq!(api_reason(&err), "Invalid");
    let mut w = widget("w2", 1);
    w.data["spec"]["color"] = json!("purple");
    let err = widgets(&client)
        .create(&PostParams::default(), &w)
        .await
        .unwrap_err();
    let Error::Api(status) = err else {
        panic!("expected an API error")
    };
    assert!(
        status
            .message
            .contains("spec.color: Unsupported value: \"purple\""),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn cel_validation_rules_are_enforced() {
    let (_server, client) = setup().await;
    let api = widgets(&client);
    let mut w = widget("w", 1);
    w.data["spec"]["source"] =
        json!({"git": "https://example.com/r.git", "url": "https://example.com/x.tgz"});
    let err = api.create(&PostParams::default(), &w).await.unwrap_err();
    let Error::Api(status) = err else {
        panic!("expected an API error")
    };
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("exactly one of git or url must be set"),
        "{}",
        status.message
    );
    w.data["spec"]["source"] = json!({"git": "https://example.com/r.git"});
    w.data["spec"]["serial"] = json!("s1");
    api.create(&PostParams::default(), &w).await.unwrap();
    let err = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"serial": "s2"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(422), "transition rule self == oldSelf");
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn already_exists_not_found_and_generate_name() {
    let (_server, client) = setup().await;
    let api = widgets(&client);
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let err = api
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (Some(409), "AlreadyExists")
    );
    let err = api.get("missing").await.unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (Some(404), "NotFound")
    );

    let mut generated = widget("", 1);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("auto-".into());
    let a = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let b = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let (an, bn) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(
        an.starts_with("auto-") && an.len() == 10 && an != bn,
        "{an} {bn}"
    );
}

#[tokio::test]
async fn stale_resource_version_is_409_conflict() {
    let (_server, client) = setup().await;
    let api = widgets(&client);
    let v1 = api
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let mut first = v1.clone();
    first.data["spec"]["size"] = json!(2);
    let v2 = api
        .replace("w", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_ne!(v1.metadata.resource_version, v2.metadata.resource_version);
    assert_eq!(
        v2.metadata.generation,
        Some(2),
        "spec change bumps generation"
    );
    let mut stale = v1.clone();
    stale.data["spec"]["size"] = json!(3);
    let err = api
        .replace("w", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (Some(409), "Conflict")
    );
    // A no-op update keeps the resourceVersion.
    let same = api.replace("w", &PostParams::default(), &v2).await.unwrap();
    assert_eq!(same.metadata.resource_version, v2.metadata.resource_version);
}

#[tokio::test]
async fn status_subresource_separates_spec_and_status_and_prunes_unknown_status_fields() {
    let (_server, client) = setup().await;
    let api = widgets(&client);
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    // An operator writing a status field missing from the schema sees it dropped.
    let patched = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Ready", "notInSchema": true}, "spec": {"size": 9}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["status"], json!({"phase": "Ready"}));
    assert_eq!(patched.data["spec"]["size"], 1, "/status ignores spec");
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );
    let main = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Hacked"}, "spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(
        main.data["status"]["phase"], "Ready",
        "the main resource ignores status"
    );
    assert_eq!(main.metadata.generation, Some(2));
}

#[tokio::test]
async fn label_and_field_selectors_and_pagination() {
    let (_server, client) = setup().await;
    let api = widgets(&client);
    for (name, app) in [("a", "web"), ("b", "db"), ("c", "web"), ("d", "cache")] {
        let mut w = widget(name, 1);
        w.metadata.labels = Some([("app".to_string(), app.to_string())].into());
        api.create(&PostParams::default(), &w).await.unwrap();
    }
    let names = |l: kube::core::ObjectList<DynamicObject>| {
        l.items
            .into_iter()
            .map(|o| o.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
        ),
        ["a", "c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app in (db,cache)"))
                .await
                .unwrap()
        ),
        ["b", "d"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app notin (web),app"))
                .await
                .unwrap()
        ),
        ["b", "d"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=c"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    let err = api
        .list(&ListParams::default().fields("spec.size=1"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(400));

    let page1 = api.list(&ListParams::default().limit(3)).await.unwrap();
    let token = page1.metadata.continue_.clone().expect("more pages");
    assert_eq!(page1.metadata.remaining_item_count, Some(1));
    let page2 = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(page1), ["a", "b", "c"]);
    assert_eq!(names(page2), ["d"]);
}

type Events =
    futures::stream::BoxStream<'static, Result<watcher::Event<DynamicObject>, watcher::Error>>;

async fn next(ev: &mut Events) -> Result<Option<watcher::Event<DynamicObject>>, watcher::Error> {
    tokio::time::timeout(Duration::from_secs(5), ev.try_next())
        .await
        .expect("watch event in time")
}

#[tokio::test]
async fn watcher_sees_changes_and_recovers_from_forced_410() {
    let (server, client) = setup().await;
    let api = widgets(&client);
    let mut events = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    // Initial (empty) list.
    assert!(matches!(
        next(&mut events).await.unwrap(),
        Some(watcher::Event::Init)
    ));
    assert!(matches!(
        next(&mut events).await.unwrap(),
        Some(watcher::Event::InitDone)
    ));
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    assert!(
        matches!(next(&mut events).await.unwrap(), Some(watcher::Event::Apply(o)) if o.data["spec"]["size"] == 1)
    );
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await
    .unwrap();
    assert!(
        matches!(next(&mut events).await.unwrap(), Some(watcher::Event::Apply(o)) if o.data["spec"]["size"] == 2)
    );
    api.delete("w", &DeleteParams::default()).await.unwrap();
    assert!(matches!(
        next(&mut events).await.unwrap(),
        Some(watcher::Event::Delete(_))
    ));

    // Drop the connection and answer the re-watch with 410 Gone: the watcher relists.
    server.faults().expire_next_watch("widgets");
    server.faults().drop_watches("widgets");
    api.create(&PostParams::default(), &widget("after", 5))
        .await
        .unwrap();
    let mut saw_init = false;
    let mut saw_after = false;
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("event in time")
        {
            Some(Ok(watcher::Event::Init)) => saw_init = true,
            Some(Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)))
                if o.metadata.name.as_deref() == Some("after") =>
            {
                saw_after = true;
                if saw_init {
                    break;
                }
            }
            Some(Err(e)) => assert!(
                format!("{e:?}").contains("410") || format!("{e:?}").contains("Expired"),
                "{e:?}"
            ),
            _ => {}
        }
    }
    assert!(
        saw_init && saw_after,
        "relisted after 410 (init {saw_init}, object {saw_after})"
    );
}

#[tokio::test]
async fn streaming_list_watch_ends_initial_events_with_a_bookmark() {
    let (_server, client) = setup().await;
    let api = widgets(&client);
    api.create(&PostParams::default(), &widget("pre", 1))
        .await
        .unwrap();
    let mut events = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut got = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let done = matches!(ev, watcher::Event::InitDone);
        got.push(match ev {
            watcher::Event::Init => "init".to_string(),
            watcher::Event::InitApply(o) => format!("initapply {}", o.metadata.name.unwrap()),
            watcher::Event::InitDone => "done".into(),
            other => format!("{other:?}"),
        });
        if done {
            break;
        }
    }
    assert_eq!(got, ["init", "initapply pre", "done"]);
}

#[tokio::test]
async fn server_side_apply_tracks_managers_and_conflicts() {
    let (_server, client) = setup().await;
    let api = widgets(&client);
    let cfg = |size: i64| json!({"apiVersion": "test.stratum.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": size}});
    let a = api
        .patch("w", &PatchParams::apply("manager-a"), &Patch::Apply(cfg(1)))
        .await
        .unwrap();
    assert_eq!(
        a.metadata.managed_fields.as_ref().unwrap()[0]
            .manager
            .as_deref(),
        Some("manager-a")
    );
    let err = api
        .patch("w", &PatchParams::apply("manager-b"), &Patch::Apply(cfg(2)))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409));
    let Error::Api(status) = &err else { panic!() };
    assert!(
        status.message.contains("conflict with \"manager-a\""),
        "{}",
        status.message
    );
    let forced = api
        .patch(
            "w",
            &PatchParams::apply("manager-b").force(),
            &Patch::Apply(cfg(2)),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["size"], 2);
    let managers: Vec<_> = forced
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"manager-b".to_string()));
}

#[tokio::test]
async fn finalizers_delay_deletion_until_removed() {
    let (_server, client) = setup().await;
    let api = widgets(&client);
    let mut w = widget("w", 1);
    w.metadata.finalizers = Some(vec!["test.stratum.dev/cleanup".into()]);
    api.create(&PostParams::default(), &w).await.unwrap();
    let res = api.delete("w", &DeleteParams::default()).await.unwrap();
    let pending = res.left().expect("object still present");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(
        pending.metadata.generation,
        Some(2),
        "deletion bumps generation"
    );
    let err = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["test.stratum.dev/cleanup", "other"]}}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_code(&err),
        Some(422),
        "no new finalizers while deleting"
    );
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers"}]))
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(api_code(&api.get("w").await.unwrap_err()), Some(404));
}

fn owned_cm(name: &str, owner: &DynamicObject, block: bool) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "test.stratum.dev/v1", "kind": "Widget",
            "name": owner.metadata.name, "uid": owner.metadata.uid, "blockOwnerDeletion": block,
        }]},
    }))
    .unwrap()
}

#[tokio::test]
async fn owner_reference_garbage_collection() {
    let (_server, client) = setup().await;
    let api = widgets(&client);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // Background: the owner goes at once, its dependents after it.
    let owner = api
        .create(&PostParams::default(), &widget("bg", 1))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &owned_cm("bg-child", &owner, false))
        .await
        .unwrap();
    api.delete("bg", &DeleteParams::background()).await.unwrap();
    assert_eq!(api_code(&cms.get("bg-child").await.unwrap_err()), Some(404));

    // Foreground: a blocking dependent with a finalizer keeps the owner.
    let owner = api
        .create(&PostParams::default(), &widget("fg", 1))
        .await
        .unwrap();
    let mut child = owned_cm("fg-child", &owner, true);
    child.metadata.finalizers = Some(vec!["test/hold".into()]);
    cms.create(&PostParams::default(), &child).await.unwrap();
    api.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let waiting = api.get("fg").await.unwrap();
    assert_eq!(
        waiting.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    assert!(
        cms.get("fg-child")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    cms.patch(
        "fg-child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(
        api_code(&api.get("fg").await.unwrap_err()),
        Some(404),
        "owner gone once the blocking dependent is"
    );

    // Orphan: the dependent stays and loses its owner reference.
    let owner = api
        .create(&PostParams::default(), &widget("or", 1))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &owned_cm("or-child", &owner, true))
        .await
        .unwrap();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    api.delete("or", &dp).await.unwrap();
    assert_eq!(api_code(&api.get("or").await.unwrap_err()), Some(404));
    assert_eq!(
        cms.get("or-child").await.unwrap().metadata.owner_references,
        None
    );
}

#[tokio::test]
async fn namespace_deletion_removes_its_contents() {
    let (_server, client) = setup().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "scratch"}})).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "scratch");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
    )
    .await
    .unwrap();
    nss.delete("scratch", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_code(&nss.get("scratch").await.unwrap_err()), Some(404));
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let err = missing
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(404), "namespace must exist");
}

#[tokio::test]
async fn injected_faults_reach_the_client() {
    let (server, client) = setup().await;
    let api = widgets(&client);
    server
        .faults()
        .fail(Some(Verb::Create), "/widgets", 429, Some(2), Some(1));
    let err = api
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (Some(429), "TooManyRequests")
    );
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .expect("fault was one-shot");
    server.faults().delay(
        Some(Verb::Get),
        "/widgets/w",
        Duration::from_millis(300),
        Some(1),
    );
    let t = std::time::Instant::now();
    api.get("w").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn pods_get_defaults_service_account_admission_and_logs() {
    let (server, client) = setup().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}})).unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(
        created.spec.as_ref().unwrap().restart_policy.as_deref(),
        Some("Always")
    );
    let err = pods.logs("p", &Default::default()).await.unwrap_err();
    assert_eq!(api_code(&err), Some(400), "container not started");

    let logs = stratum_e2e::apiserver::MemoryLogs::default();
    let server2 = ApiServer::with_logs(Config::default(), std::sync::Arc::new(logs.clone()));
    let pods2: Api<Pod> = Api::namespaced(server2.client(), "default");
    pods2.create(&PostParams::default(), &pod).await.unwrap();
    logs.append("default", "p", "main", b"line 1\nline 2\n");
    assert_eq!(
        pods2.logs("p", &Default::default()).await.unwrap(),
        "line 1\nline 2\n"
    );
    let tail = kube::api::LogParams {
        tail_lines: Some(1),
        ..Default::default()
    };
    assert_eq!(pods2.logs("p", &tail).await.unwrap(), "line 2\n");

    let mut bad = pod.clone();
    bad.metadata.name = Some("q".into());
    bad.spec.as_mut().unwrap().service_account_name = Some("missing".into());
    let err = pods.create(&PostParams::default(), &bad).await.unwrap_err();
    assert_eq!(api_code(&err), Some(403));
    drop(server);
}

#[tokio::test]
async fn crd_deletion_removes_custom_resources_and_unserves_them() {
    let (server, client) = setup().await;
    widgets(&client)
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("widgets.test.stratum.dev", &DeleteParams::default())
        .await
        .unwrap();
    assert!(server.find("test.stratum.dev", "v1", "widgets").is_none());
    assert_eq!(
        api_code(&widgets(&client).get("w").await.unwrap_err()),
        Some(404)
    );
}

/// kube-lease-manager style leader election: server-side apply on a Lease with one field
/// manager per candidate; the holder is whoever applied last with `force`.
#[tokio::test]
async fn lease_server_side_apply_between_candidates() {
    use k8s_openapi::api::coordination::v1::Lease;
    let server = ApiServer::new(Config::default());
    let leases: Api<Lease> = Api::namespaced(server.client(), "default");
    let lease = |holder: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": "2025-01-01T00:00:00.000000Z"}})
    };
    let a = leases
        .patch(
            "leader",
            &PatchParams::apply("candidate-a"),
            &Patch::Apply(lease("a")),
        )
        .await
        .unwrap();
    assert_eq!(a.spec.unwrap().holder_identity.as_deref(), Some("a"));
    let err = leases
        .patch(
            "leader",
            &PatchParams::apply("candidate-b"),
            &Patch::Apply(lease("b")),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409), "b does not own holderIdentity");
    let b = leases
        .patch(
            "leader",
            &PatchParams::apply("candidate-b").force(),
            &Patch::Apply(lease("b")),
        )
        .await
        .unwrap();
    assert_eq!(b.spec.unwrap().holder_identity.as_deref(), Some("b"));
    // Optimistic GET + PUT (client-go's algorithm) also races correctly.
    let current = leases.get("leader").await.unwrap();
    let mut stale = current.clone();
    leases
        .replace("leader", &PostParams::default(), &current)
        .await
        .unwrap();
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    stale.spec.as_mut().unwrap().lease_duration_seconds = Some(30);
    let ok = leases
        .replace("leader", &PostParams::default(), &stale)
        .await;
    assert!(
        ok.is_ok(),
        "a no-op PUT does not change the resourceVersion, so this one still applies"
    );
    stale.spec.as_mut().unwrap().lease_duration_seconds = Some(45);
    let err = leases
        .replace("leader", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409));
}
