//! The kubelet emulator: pods scheduled and run as local processes, reporting real statuses.
//! Runs as root (mount namespaces, bind mounts).

use std::sync::Arc;

use futures::StreamExt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use stratum_e2e::apiserver::{ApiServer, Config, MemoryLogs};
use stratum_e2e::kubelet::{ImageMap, Kubelet, KubeletConfig};
use tempfile::TempDir;

struct Node {
    server: ApiServer,
    kubelet: Kubelet,
    _dir: TempDir,
}

async fn node() -> Node {
    let logs = MemoryLogs::default();
    let server = ApiServer::with_logs(Config::default(), Arc::new(logs.clone()));
    let dir = tempfile::tempdir().unwrap();
    let images = ImageMap::default().with("test/shell", "/bin/sh", Some("/bin/sh"));
    let kubelet = Kubelet::start(
        server.clone(),
        logs,
        KubeletConfig {
            node_name: "node-1".into(),
            images,
            root: dir.path().into(),
        },
    )
    .await
    .unwrap();
    Node {
        server,
        kubelet,
        _dir: dir,
    }
}

fn shell_pod(name: &str, script: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "test/shell:1", "command": ["/bin/sh", "-c", script]}]},
    })
}

async fn create(server: &ApiServer, pod: Value) -> Api<Pod> {
    let pods: Api<Pod> = Api::namespaced(server.client(), "default");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
    .unwrap();
    pods
}

/// Waits until `pred` holds for the pod (as JSON), returning it.
async fn wait_for(pods: &Api<Pod>, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(p) = pods.get(name).await {
            let v = serde_json::to_value(&p).unwrap();
            if pred(&v) {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; pod status: {:#}",
                    v["status"]
                );
            }
        } else if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}; pod missing");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_runs_to_success_with_logs_and_termination_message() {
    let n = node().await;
    let pods = create(
        &n.server,
        shell_pod(
            "ok",
            "echo hello; echo out of band >&2; printf 'result: 42' > /dev/termination-log",
        ),
    )
    .await;
    let done = wait_for(&pods, "ok", "Succeeded", |p| phase(p) == "Succeeded").await;
    assert_eq!(
        done["spec"]["nodeName"], "node-1",
        "scheduled through pods/binding"
    );
    let t = &done["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (
            t["exitCode"].as_i64(),
            t["reason"].as_str(),
            t["message"].as_str()
        ),
        (Some(0), Some("Completed"), Some("result: 42"))
    );
    assert!(done["status"]["startTime"].is_string());
    let logs = pods.logs("ok", &Default::default()).await.unwrap();
    assert!(
        logs.contains("hello\n") && logs.contains("out of band\n"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_container_fails_the_pod_and_messages_are_capped() {
    let n = node().await;
    let pods = create(
        &n.server,
        shell_pod(
            "bad",
            "head -c 5000 /dev/zero | tr '\\0' x > /dev/termination-log; exit 3",
        ),
    )
    .await;
    let done = wait_for(&pods, "bad", "Failed", |p| phase(p) == "Failed").await;
    let t = &done["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (t["exitCode"].as_i64(), t["reason"].as_str()),
        (Some(3), Some("Error"))
    );
    assert_eq!(
        t["message"].as_str().unwrap().len(),
        4096,
        "kubelet truncates termination messages to 4096 bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_to_logs_on_error() {
    let n = node().await;
    let mut pod = shell_pod("fb", "echo first; echo last words; exit 1");
    pod["spec"]["containers"][0]["terminationMessagePolicy"] = json!("FallbackToLogsOnError");
    let pods = create(&n.server, pod).await;
    let done = wait_for(&pods, "fb", "Failed", |p| phase(p) == "Failed").await;
    assert_eq!(
        done["status"]["containerStatuses"][0]["state"]["terminated"]["message"],
        "first\nlast words"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_image_is_err_image_pull_then_back_off() {
    let n = node().await;
    let mut pod = shell_pod("nopull", "true");
    pod["spec"]["containers"][0]["image"] = json!("registry.invalid/nothing:1");
    let pods = create(&n.server, pod).await;
    let p = wait_for(&pods, "nopull", "ImagePullBackOff", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    })
    .await;
    assert_eq!(phase(&p), "Pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_env_and_working_dir() {
    let n = node().await;
    let client = n.server.client();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "req"}, "data": {"request.json": "{\"a\":1}"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let script = "cat /etc/creds/token; echo; cat /etc/req/request.json; echo; cat /etc/info/name; echo; echo $TOKEN $POD_NAME; pwd; echo data > file && cat /work/file; touch /etc/creds/x 2>/dev/null || echo secret-ro";
    let mut pod = shell_pod("vols", script);
    pod["metadata"]["labels"] = json!({"app": "t"});
    pod["spec"]["volumes"] = json!([
        {"name": "creds", "secret": {"secretName": "creds"}},
        {"name": "req", "configMap": {"name": "req"}},
        {"name": "info", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "work", "emptyDir": {}},
    ]);
    pod["spec"]["containers"][0]["volumeMounts"] = json!([
        {"name": "creds", "mountPath": "/etc/creds"},
        {"name": "req", "mountPath": "/etc/req"},
        {"name": "info", "mountPath": "/etc/info"},
        {"name": "work", "mountPath": "/work"},
    ]);
    pod["spec"]["containers"][0]["workingDir"] = json!("/work");
    pod["spec"]["containers"][0]["env"] = json!([
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]);
    let pods = create(&n.server, pod).await;
    let done = wait_for(&pods, "vols", "terminal", |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await;
    let logs = pods.logs("vols", &Default::default()).await.unwrap();
    assert_eq!(phase(&done), "Succeeded", "{logs}");
    assert_eq!(
        logs,
        "s3cret\n{\"a\":1}\nvols\ns3cret vols\n/work\ndata\nsecret-ro\n"
    );
    assert!(
        !std::path::Path::new("/etc/creds/token").exists(),
        "mounts stay inside the pod's mount namespace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_keeps_the_pod_pending_with_failed_mount() {
    let n = node().await;
    let mut pod = shell_pod("nomount", "true");
    pod["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": "absent"}}]);
    pod["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "s", "mountPath": "/etc/s"}]);
    let pods = create(&n.server, pod).await;
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(n.server.client(), "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = events
            .list(
                &kube::api::ListParams::default()
                    .fields("involvedObject.name=nomount,reason=FailedMount"),
            )
            .await
            .unwrap();
        if !list.items.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no FailedMount event"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        phase(&serde_json::to_value(pods.get("nomount").await.unwrap()).unwrap()),
        "Pending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_deadline_fails_the_pod() {
    let n = node().await;
    let mut pod = shell_pod("slow", "sleep 30");
    pod["spec"]["activeDeadlineSeconds"] = json!(1);
    pod["spec"]["terminationGracePeriodSeconds"] = json!(1);
    let pods = create(&n.server, pod).await;
    let done = wait_for(&pods, "slow", "DeadlineExceeded", |p| {
        p["status"]["reason"] == "DeadlineExceeded"
    })
    .await;
    assert_eq!(phase(&done), "Failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_deletion_sends_sigterm_then_sigkill() {
    let n = node().await;
    // Ignores SIGTERM: only SIGKILL after the 1 s grace period ends it.
    let mut stubborn = shell_pod("stubborn", "trap '' TERM; while true; do sleep 0.1; done");
    stubborn["spec"]["terminationGracePeriodSeconds"] = json!(1);
    // Exits on SIGTERM.
    let polite = shell_pod(
        "polite",
        "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done",
    );
    let pods = create(&n.server, stubborn).await;
    create(&n.server, polite).await;
    wait_for(&pods, "stubborn", "Running", |p| phase(p) == "Running").await;
    wait_for(&pods, "polite", "Running", |p| phase(p) == "Running").await;

    let pending = pods
        .delete("polite", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("graceful deletion is pending");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let started = std::time::Instant::now();
    pods.delete("stubborn", &DeleteParams::default())
        .await
        .unwrap();
    for name in ["polite", "stubborn"] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while pods.get_opt(name).await.unwrap().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "{name} not deleted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "stubborn lived through its grace period"
    );
    let req = stratum_e2e::apiserver::LogRequest {
        namespace: "default".into(),
        pod: "polite".into(),
        container: "main".into(),
        ..Default::default()
    };
    let mut log = n.server.logs().open(&req).expect("polite's log");
    let text = String::from_utf8(log.next().await.unwrap().to_vec()).unwrap();
    assert_eq!(text, "got TERM\n", "SIGTERM first");
    assert_eq!(n.kubelet.node_name(), "node-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_and_oom_kill_faults() {
    let n = node().await;
    let pods = create(&n.server, shell_pod("evictme", "sleep 30")).await;
    create(&n.server, shell_pod("oom", "sleep 30")).await;
    wait_for(&pods, "evictme", "Running", |p| phase(p) == "Running").await;
    wait_for(&pods, "oom", "Running", |p| phase(p) == "Running").await;
    assert!(n.kubelet.evict("default", "evictme"));
    let evicted = wait_for(&pods, "evictme", "Evicted", |p| {
        p["status"]["reason"] == "Evicted"
    })
    .await;
    assert_eq!(phase(&evicted), "Failed");
    assert!(n.kubelet.oom_kill("default", "oom", "main"));
    let oom = wait_for(&pods, "oom", "OOMKilled", |p| {
        p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled"
    })
    .await;
    assert_eq!(
        oom["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        137
    );
    assert_eq!(phase(&oom), "Failed");
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Regression: `stop()` (node loss) aborted the pod workers but not their container tasks, so
/// the containers ran on until the test's runtime shut down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_loss_kills_the_containers_at_once() {
    let mut n = node().await;
    let marker = format!("node-loss-{}", std::process::id());
    let pods = create(
        &n.server,
        shell_pod("lost", &format!("sleep 600; echo {marker}")),
    )
    .await;
    wait_for(&pods, "lost", "Running", |p| phase(p) == "Running").await;
    assert_eq!(processes_with(&marker), 1, "the container runs");
    n.kubelet.stop();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while processes_with(&marker) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the container survived the node"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing reports any more: the pod stays as last reported.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pod = serde_json::to_value(pods.get("lost").await.unwrap()).unwrap();
    assert_eq!(phase(&pod), "Running");
}
