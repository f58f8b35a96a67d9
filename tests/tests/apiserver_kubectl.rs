//! The emulator driven by REAL kubectl (v1.33, installed by scripts/install-kube-tools) over a
//! loopback port and a generated kubeconfig.

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;
use stratum_e2e::apiserver::{ApiServer, Config, Emulator, MemoryLogs};
use stratum_e2e::fixtures::{widget_crd, widget_crd_path, widget_resource};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// kubectl from `STRATUM_KUBECTL`, else the one on PATH (scripts/install-kube-tools puts v1.33 in
/// /usr/local/bin).
fn kubectl_bin() -> String {
    std::env::var("STRATUM_KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

struct Cluster {
    emu: Emulator,
    dir: TempDir,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Cluster {
    async fn start(config: Config) -> Self {
        Self::serve(ApiServer::new(config)).await
    }

    async fn serve(server: ApiServer) -> Self {
        let emu = Emulator::serve(server, 0).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        emu.write_kubeconfig(&dir.path().join("kubeconfig"))
            .unwrap();
        Cluster { emu, dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_bin());
        cmd.args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn run_stdin(&self, args: &[&str], stdin: &str) -> Out {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "running {}: {e}; run scripts/install-kube-tools",
                kubectl_bin()
            )
        });
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finished")
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_stdin(args, "").await
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    async fn install_widget_crd(&self) {
        let path = widget_crd_path();
        self.ok(&["apply", "-f", path.to_str().unwrap()]).await;
    }

    fn widgets(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.emu.server.client(), "default", &widget_resource())
    }
}

const WIDGET: &str =
    "apiVersion: test.stratum.dev/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_version_is_1_33() {
    let c = Cluster::start(Config::default()).await;
    let out = c.ok(&["version", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["clientVersion"]["minor"], "33",
        "need kubectl 1.33: run scripts/install-kube-tools"
    );
    assert_eq!(v["serverVersion"]["minor"], "33");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_crd_then_custom_resource_and_get_shows_printer_columns() {
    let c = Cluster::start(Config::default()).await;
    c.install_widget_crd().await;
    let out = c.run_stdin(&["apply", "-f", "-"], WIDGET).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("widget.test.stratum.dev/w1 created"),
        "{}",
        out.stdout
    );
    c.widgets()
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    let table = c.ok(&["get", "widgets"]).await;
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "SIZE", "PHASE", "AGE"], "{table}");
    assert_eq!(&lines[1][..3], ["w1", "3", "Ready"], "{table}");
    assert!(c.ok(&["get", "wd"]).await.contains("w1"), "short name");
    // Re-apply with a change: client-side apply patches (merge patch for custom resources).
    let out = c
        .run_stdin(&["apply", "-f", "-"], &WIDGET.replace("size: 3", "size: 4"))
        .await;
    assert!(
        out.stdout.contains("configured"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        c.ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.spec.size} {.spec.color} {.metadata.generation}"
        ])
        .await,
        "4 red 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_unknown_fields_are_rejected() {
    let c = Cluster::start(Config::default()).await;
    c.install_widget_crd().await;
    let out = c
        .run_stdin(
            &["apply", "-f", "-"],
            &WIDGET.replace("size: 3", "size: 1000"),
        )
        .await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("is invalid") && out.stderr.contains("spec.size"),
        "{}",
        out.stderr
    );
    let out = c
        .run_stdin(&["apply", "-f", "-"], &format!("{WIDGET}  sizee: 2\n"))
        .await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("unknown field \"spec.sizee\""),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_conflicts_and_force() {
    let c = Cluster::start(Config::default()).await;
    c.install_widget_crd().await;
    let out = c
        .run_stdin(&["apply", "--server-side", "-f", "-"], WIDGET)
        .await;
    assert!(
        out.ok && out.stdout.contains("serverside-applied"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let changed = WIDGET.replace("size: 3", "size: 5");
    let out = c
        .run_stdin(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "other",
                "-f",
                "-",
            ],
            &changed,
        )
        .await;
    assert!(!out.ok);
    assert!(out.stderr.contains("conflict"), "{}", out.stderr);
    let out = c
        .run_stdin(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "other",
                "--force-conflicts",
                "-f",
                "-",
            ],
            &changed,
        )
        .await;
    assert!(out.ok, "{}", out.stderr);
    let mf = c
        .ok(&[
            "get",
            "widget",
            "w1",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
        .await;
    assert!(mf.contains("other"), "{mf}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_types_on_builtin_and_custom_resources() {
    let c = Cluster::start(Config::default()).await;
    c.install_widget_crd().await;
    c.run_stdin(&["apply", "-f", "-"], WIDGET).await;
    c.ok(&[
        "patch",
        "widget",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":7}}"#,
    ])
    .await;
    c.ok(&[
        "patch",
        "widget",
        "w1",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/spec/tags","value":["x"]}]"#,
    ])
    .await;
    assert_eq!(
        c.ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.spec.size} {.spec.tags}"
        ])
        .await,
        r#"7 ["x"]"#
    );
    let out = c
        .run(&[
            "patch",
            "widget",
            "w1",
            "--type",
            "strategic",
            "-p",
            r#"{"spec":{"size":8}}"#,
        ])
        .await;
    assert!(
        !out.ok && out.stderr.contains("not supported"),
        "strategic merge is refused for CRs: {}",
        out.stderr
    );

    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: busybox:1\n  - name: b\n    image: busybox:1\n";
    assert!(c.run_stdin(&["apply", "-f", "-"], pod).await.ok);
    c.ok(&[
        "patch",
        "pod",
        "p",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"containers":[{"name":"b","image":"busybox:2"}]}}"#,
    ])
    .await;
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.spec.containers[*].image}"
        ])
        .await,
        "busybox:1 busybox:2"
    );
    // Client-side apply of a built-in computes a strategic merge patch with $setElementOrder.
    assert!(
        c.run_stdin(
            &["apply", "-f", "-"],
            &pod.replace("busybox:1\n  - name: b", "busybox:3\n  - name: b")
        )
        .await
        .ok
    );
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.spec.containers[*].image}"
        ])
        .await,
        "busybox:3 busybox:1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_for_finalizers() {
    let c = Cluster::start(Config::default()).await;
    c.install_widget_crd().await;
    c.run_stdin(
        &["apply", "-f", "-"],
        &WIDGET.replace(
            "metadata:\n",
            "metadata:\n  finalizers: [test.stratum.dev/hold]\n",
        ),
    )
    .await;
    // `kubectl delete` waits (a watch on the object) until the finalizer is gone.
    let mut del = c
        .command(&["delete", "widget", "w1", "--timeout=30s"])
        .spawn()
        .unwrap();
    let widgets = c.widgets();
    let mut pending = false;
    for _ in 0..100 {
        if widgets
            .get("w1")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
        {
            pending = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        pending,
        "deletionTimestamp set while the finalizer holds the object"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), del.wait())
            .await
            .is_err(),
        "delete still waiting"
    );
    c.ok(&[
        "patch",
        "widget",
        "w1",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await;
    let status = tokio::time::timeout(Duration::from_secs(20), del.wait())
        .await
        .expect("delete returned")
        .unwrap();
    assert!(status.success());
    assert!(!c.run(&["get", "widget", "w1"]).await.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pods_watch_sees_events() {
    let c = Cluster::start(Config::default()).await;
    let mut watch = c
        .command(&["get", "pods", "-w", "--output-watch-events"])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pods: Api<Pod> = Api::namespaced(c.emu.server.client(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "watched"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.patch_status(
        "watched",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running"}})),
    )
    .await
    .unwrap();
    pods.delete("watched", &Default::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("watch line")
            .unwrap()
            .expect("stream open");
        let cols: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if cols.get(1).map(String::as_str) == Some("watched") {
            seen.push(format!("{} {}", cols[0], cols[3]));
        }
    }
    assert_eq!(
        seen,
        ["ADDED Pending", "MODIFIED Running", "DELETED Running"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_events_from_the_kube_rs_recorder_and_logs_are_served() {
    let logs = MemoryLogs::default();
    let c = Cluster::serve(ApiServer::with_logs(
        Config::default(),
        std::sync::Arc::new(logs.clone()),
    ))
    .await;
    let client = c.emu.server.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "stratum-test".into(),
            instance: None,
        },
    );
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: Some("default".into()),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Normal,
        reason: "Started".into(),
        note: Some("build began".into()),
        action: "Build".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let out = c.ok(&["describe", "pod", "p"]).await;
    let events = out.split("Events:").nth(1).unwrap_or_default();
    assert!(
        events.contains("Started")
            && events.contains("build began")
            && events.contains("stratum-test"),
        "{out}"
    );

    let table = c.ok(&["get", "events"]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{table}"
    );
    assert!(
        table.contains("Normal") && table.contains("pod/p") && table.contains("build began"),
        "{table}"
    );

    logs.append("default", "p", "c", b"hello\nworld\n");
    assert_eq!(c.ok(&["logs", "p"]).await, "hello\nworld\n");
    assert_eq!(c.ok(&["logs", "p", "--tail=1"]).await, "world\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_custom_resource_fields() {
    let c = Cluster::start(Config::default()).await;
    c.install_widget_crd().await;
    let out = c.ok(&["explain", "widget.spec"]).await;
    assert!(
        out.contains("size") && out.contains("-required-") && out.contains("color"),
        "{out}"
    );
}

/// client-go reads user credentials from a kubeconfig only for TLS servers ("only try to read the
/// auth information if we are secure", clientcmd), so kubectl gets 401 from a token-protected
/// emulator over plain http, while kube-rs sends the kubeconfig's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_required_when_configured() {
    let c = Cluster::start(Config {
        token: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    let out = c.run(&["get", "ns"]).await;
    assert!(
        !out.ok && out.stderr.contains("provide credentials"),
        "{}",
        out.stderr
    );
    let kc = kube::config::Kubeconfig::read_from(c.dir.path().join("kubeconfig")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    assert!(nss.get("default").await.is_ok(), "kube-rs sends the token");
    let anonymous: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.emu.server.client());
    match anonymous.get("default").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 401),
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_created_by_kube_rs_appears_in_kubectl_discovery() {
    let c = Cluster::start(Config::default()).await;
    // Prime kubectl's discovery cache before the CRD exists.
    assert!(!c.ok(&["api-resources"]).await.contains("widgets"));
    let crds: Api<CustomResourceDefinition> = Api::all(c.emu.server.client());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(widget_crd()).unwrap(),
    )
    .await
    .unwrap();
    assert!(
        c.run_stdin(&["apply", "-f", "-"], WIDGET).await.ok,
        "kubectl rediscovers on an unknown kind"
    );
    assert!(
        c.ok(&["api-resources", "--api-group", "test.stratum.dev"])
            .await
            .contains("widgets")
    );
}

/// kubectl's generator commands send protobuf bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_commands_send_protobuf_that_the_emulator_decodes() {
    let c = Cluster::start(Config::default()).await;
    c.ok(&["create", "namespace", "gen"]).await;
    c.ok(&[
        "-n",
        "gen",
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=user=admin",
    ])
    .await;
    c.ok(&[
        "-n",
        "gen",
        "create",
        "configmap",
        "cm",
        "--from-literal=a=b",
    ])
    .await;
    c.ok(&[
        "-n",
        "gen",
        "create",
        "deployment",
        "d",
        "--image=busybox:1",
        "--replicas=0",
    ])
    .await;
    c.ok(&["-n", "gen", "create", "serviceaccount", "robot"])
        .await;
    assert_eq!(
        c.ok(&[
            "-n",
            "gen",
            "get",
            "secret",
            "s",
            "-o",
            "jsonpath={.data.user} {.type}"
        ])
        .await,
        "YWRtaW4= Opaque"
    );
    assert_eq!(
        c.ok(&["-n", "gen", "get", "cm", "cm", "-o", "jsonpath={.data.a}"])
            .await,
        "b"
    );
    let d = c.ok(&["-n", "gen", "get", "deployment", "d", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.generation}"]).await;
    assert_eq!(
        d, "0 busybox:1 1",
        "replicas: 0 is a pointer field and survives decoding"
    );
    assert!(c.ok(&["-n", "gen", "get", "sa"]).await.contains("robot"));
}

/// Issue 6 item 4: the standalone binary, driven by kubectl, with its kubelet running a pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_binary_with_kubelet() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let mut emu = Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["--kubelet", "--image", "busybox=/bin/busybox"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(emu.stdout.take().unwrap()).lines();
    let banner = tokio::time::timeout(Duration::from_secs(10), out.next_line())
        .await
        .expect("banner")
        .unwrap()
        .unwrap();
    assert!(
        banner.contains("kube-emulator serving http://127.0.0.1:"),
        "{banner}"
    );
    let kubectl = |args: &[&str]| {
        let mut cmd = Command::new(kubectl_bin());
        cmd.args(args)
            .env("KUBECONFIG", &kc)
            .env("KUBECACHEDIR", dir.path().join("cache"))
            .env("HOME", dir.path());
        cmd
    };
    let run = kubectl(&[
        "run",
        "hello",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "echo hi from the node",
    ])
    .output()
    .await
    .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let wait = kubectl(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/hello",
        "--timeout=30s",
    ])
    .output()
    .await
    .unwrap();
    assert!(
        wait.status.success(),
        "{}",
        String::from_utf8_lossy(&wait.stderr)
    );
    let logs = kubectl(&["logs", "hello"]).output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "hi from the node\n");
    emu.kill().await.unwrap();
}
