//! The Helm chart `charts/stratum`, checked with the REAL helm (v4) and kubectl (v1.33) from
//! scripts/install-kube-tools: `helm lint --strict`, `helm template` with several value sets and
//! assertions on the rendered objects, values.schema.json rejecting bad values, the chart's CRD
//! against the generated crds/imagebuild.yaml, the operator arguments parsed by the operator's own
//! flag parser, and every rendered manifest applied to the kube emulator with `kubectl apply`.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use clap::CommandFactory;
use serde_json::{Value, json};
use stratum_e2e::apiserver::{ApiServer, Config, Emulator};
use stratum_e2e::chart::{self, Rendered, chart_dir, helm, helm_with};
use stratum_operator::config::Config as OperatorConfig;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const NS: &str = "stratum-system";

/// The value sets the brief names: defaults, three replicas, watched namespaces, and the optional
/// ServiceMonitor and NetworkPolicy (with restricted egress).
const DEFAULTS: &str = "";
const REPLICAS_3: &str = "replicas: 3\n";
const WATCHED: &str = "watchNamespaces: [builds, ci]\n";
const MONITORED: &str = "\
metrics:
  serviceMonitor:
    enabled: true
    labels: {release: prometheus}
networkPolicy:
  enabled: true
  metricsFrom:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: monitoring}
  egress:
    enabled: true
    apiServerCIDRs: [10.96.0.1/32, 172.18.0.2/32]
";
const VALUE_SETS: [(&str, &str); 4] = [
    ("defaults", DEFAULTS),
    ("replicas-3", REPLICAS_3),
    ("watched", WATCHED),
    ("monitored", MONITORED),
];

fn render(values: &str) -> Rendered {
    chart::render("stratum", NS, values).unwrap_or_else(|e| panic!("{e}"))
}

fn kinds(r: &Rendered) -> Vec<String> {
    let mut k: Vec<String> = r
        .objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    k.sort();
    k
}

/// The rules as (apiGroups, resources, verbs, resourceNames) tuples, order-independent.
fn rules(role: &Value) -> BTreeSet<String> {
    role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{}|{}",
                r["apiGroups"], r["resources"], r["verbs"], r["resourceNames"]
            )
        })
        .collect()
}

/// What the operator's code calls, verb by verb (operator/src/controller, leader.rs).
fn operator_rules() -> BTreeSet<String> {
    rules(&json!({"rules": [
        {"apiGroups": ["stratum.dev"], "resources": ["imagebuilds"], "verbs": ["list", "watch", "patch"]},
        {"apiGroups": ["stratum.dev"], "resources": ["imagebuilds/finalizers"], "verbs": ["update"]},
        {"apiGroups": ["stratum.dev"], "resources": ["imagebuilds/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "create", "delete"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]}))
}

fn probe_path(container: &Value, probe: &str) -> String {
    container[probe]["httpGet"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn operator_container(r: &Rendered) -> Value {
    serde_json::to_value(r.operator_container().unwrap()).unwrap()
}

#[test]
fn chart_versions_follow_the_workspace() {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap();
    let meta: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(meta["apiVersion"], "v2");
    assert_eq!(meta["appVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn lint_strict_passes_for_every_value_set() {
    for (name, values) in VALUE_SETS {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join("values.yaml");
        std::fs::write(&file, values).unwrap();
        let out = helm(&[
            "lint",
            "--strict",
            &chart_dir().to_string_lossy(),
            "--values",
            &file.to_string_lossy(),
        ])
        .unwrap_or_else(|e| panic!("value set {name}: {e}"));
        assert!(out.contains("0 chart(s) failed"), "{name}: {out}");
    }
}

/// Numbers compared by value: helm's `toYaml` writes `1000000.0` as `1000000`.
fn normalise(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalise(v))).collect())
        }
        other => other.clone(),
    }
}

#[test]
fn the_chart_crd_is_the_generated_crd() {
    let generated = std::fs::read(chart_dir().join("../../crds/imagebuild.yaml")).unwrap();
    let copy = std::fs::read(chart_dir().join("files/imagebuild.yaml")).unwrap();
    assert!(
        generated == copy,
        "charts/stratum/files/imagebuild.yaml differs from crds/imagebuild.yaml: \
         cp crds/imagebuild.yaml charts/stratum/files/imagebuild.yaml"
    );

    let r = render(DEFAULTS);
    let mut rendered = r
        .get("CustomResourceDefinition", "imagebuilds.stratum.dev")
        .expect("the CRD is rendered by default")
        .clone();
    let meta = rendered["metadata"].as_object_mut().unwrap();
    assert_eq!(
        meta.remove("annotations").unwrap(),
        json!({"helm.sh/resource-policy": "keep"})
    );
    assert_eq!(
        meta.remove("labels").unwrap()["app.kubernetes.io/part-of"],
        "stratum"
    );
    let expected: Value = serde_saphyr::from_str(std::str::from_utf8(&generated).unwrap()).unwrap();
    assert!(
        normalise(&rendered) == normalise(&expected),
        "the rendered CRD differs from crds/imagebuild.yaml beyond labels and annotations"
    );

    let without = render("crds: {install: false}\n");
    assert!(without.of_kind("CustomResourceDefinition").is_empty());
    let unkept = render("crds: {keep: false}\n");
    let crd = unkept.of_kind("CustomResourceDefinition")[0];
    assert!(crd["metadata"].get("annotations").is_none());
}

#[test]
fn defaults_render_one_operator_without_leader_election() {
    let r = render(DEFAULTS);
    assert_eq!(
        kinds(&r),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "Service",
            "ServiceAccount"
        ]
    );
    let deploy = &r.of_kind("Deployment")[0];
    assert_eq!(deploy["metadata"]["namespace"], NS);
    assert_eq!(deploy["spec"]["replicas"], 1);
    // Without a Lease two operators must never overlap.
    assert_eq!(deploy["spec"]["strategy"]["type"], "Recreate");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "stratum");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    let c = operator_container(&r);
    assert_eq!(c["image"], "ghcr.io/stratum-dev/stratum-operator:0.1.0");
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(probe_path(&c, "livenessProbe"), "/healthz");
    assert_eq!(probe_path(&c, "readinessProbe"), "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(
        c["ports"][0],
        json!({"name": "http", "containerPort": 8080, "protocol": "TCP"})
    );

    let cmd = r.operator_command().unwrap();
    assert_eq!(
        cmd.args,
        [
            "--http-addr=0.0.0.0:8080",
            "--log-format=json",
            "--concurrency=10",
            "--builder-image=ghcr.io/stratum-dev/stratum:0.1.0",
            "--builder-cpu-request=500m",
            "--builder-memory-request=1Gi",
            "--builder-memory-limit=4Gi",
            "--default-timeout=30m",
        ]
    );
    assert_eq!(
        cmd.resolved_env("stratum-abc", NS).unwrap(),
        [
            ("POD_NAME".to_owned(), "stratum-abc".to_owned()),
            ("POD_NAMESPACE".to_owned(), NS.to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ]
    );

    let role = r.get("ClusterRole", "stratum-operator").unwrap();
    assert_eq!(rules(role), operator_rules());
    let binding = r.get("ClusterRoleBinding", "stratum-operator").unwrap();
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "stratum", "namespace": NS}])
    );
    // No Lease permission without leader election.
    assert!(r.of_kind("Role").is_empty());
    let editor = r.get("ClusterRole", "stratum-imagebuild-editor").unwrap();
    assert_eq!(
        editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );

    let svc = r.get("Service", "stratum-metrics").unwrap();
    assert_eq!(
        svc["spec"]["ports"][0],
        json!({"name": "http-metrics", "port": 8080, "targetPort": "http", "protocol": "TCP"})
    );
    assert_eq!(
        svc["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn three_replicas_elect_a_leader() {
    let r = render(REPLICAS_3);
    let deploy = &r.of_kind("Deployment")[0];
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(deploy["spec"]["strategy"]["type"], "RollingUpdate");
    let cmd = r.operator_command().unwrap();
    assert_eq!(
        cmd.args.last().map(String::as_str),
        Some("--leader-election")
    );
    // A standby answers /readyz with 503 by design; readiness must not stall rollouts.
    let c = operator_container(&r);
    assert_eq!(probe_path(&c, "readinessProbe"), "/healthz");

    let lease_role = r.get("Role", "stratum-leader-election").unwrap();
    assert_eq!(lease_role["metadata"]["namespace"], NS);
    assert_eq!(
        rules(lease_role),
        rules(&json!({"rules": [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["stratum-operator"], "verbs": ["get", "update"]},
        ]}))
    );
    let binding = r.get("RoleBinding", "stratum-leader-election").unwrap();
    assert_eq!(binding["roleRef"]["name"], "stratum-leader-election");
}

#[test]
fn watched_namespaces_get_roles_and_no_cluster_role() {
    let r = render(WATCHED);
    assert!(r.get("ClusterRole", "stratum-operator").is_none());
    assert!(r.get("ClusterRoleBinding", "stratum-operator").is_none());
    let roles: Vec<_> = r
        .of_kind("Role")
        .into_iter()
        .map(|role| {
            assert_eq!(rules(role), operator_rules());
            role["metadata"]["namespace"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(roles, ["builds", "ci"]);
    for binding in r.of_kind("RoleBinding") {
        assert_eq!(binding["subjects"][0]["namespace"], NS);
    }
    let cmd = r.operator_command().unwrap();
    assert!(cmd.args.contains(&"--namespaces=builds,ci".to_owned()));
}

#[test]
fn service_monitor_and_network_policy() {
    let r = render(MONITORED);
    let sm = r.get("ServiceMonitor", "stratum").unwrap();
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        sm["spec"]["endpoints"],
        json!([{"port": "http-metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}])
    );
    let svc = r.get("Service", "stratum-metrics").unwrap();
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        svc["metadata"]["labels"]["app.kubernetes.io/name"]
    );

    let np = r.get("NetworkPolicy", "stratum").unwrap();
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        np["spec"]["ingress"],
        json!([{
            "ports": [{"port": "http", "protocol": "TCP"}],
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        }])
    );
    let egress = np["spec"]["egress"].as_array().unwrap();
    assert_eq!(egress.len(), 3, "DNS, API server, registries: {egress:?}");
    assert_eq!(
        egress[1]["to"],
        json!([{"ipBlock": {"cidr": "10.96.0.1/32"}}, {"ipBlock": {"cidr": "172.18.0.2/32"}}])
    );

    // Egress restricted without the API server's address would cut the operator off.
    let err = match chart::render(
        "stratum",
        NS,
        "networkPolicy: {enabled: true, egress: {enabled: true}}\n",
    ) {
        Ok(_) => panic!("restricted egress without apiServerCIDRs was rendered"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("apiServerCIDRs"), "{err}");
    // Ingress only by default.
    let ingress_only = render("networkPolicy: {enabled: true}\n");
    let np = ingress_only.get("NetworkPolicy", "stratum").unwrap();
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    assert!(np["spec"]["ingress"][0].get("from").is_none());
}

/// Maps an env var the chart sets to the operator flag that reads it (from the operator's own
/// clap definition), so the arguments plus environment parse exactly as in the pod.
fn flag_for_env(name: &str) -> Option<String> {
    OperatorConfig::command()
        .get_arguments()
        .find(|a| a.get_env().is_some_and(|e| e == name))
        .and_then(|a| a.get_long().map(|l| format!("--{l}")))
}

fn parse_as_the_operator(r: &Rendered) -> OperatorConfig {
    let cmd = r.operator_command().unwrap();
    let mut argv = vec!["stratum-operator".to_owned()];
    argv.extend(cmd.args.iter().cloned());
    for (name, value) in cmd.resolved_env("stratum-7d9f-x2x", NS).unwrap() {
        if name == "RUST_LOG" {
            continue; // tracing's EnvFilter reads it, not clap
        }
        let flag = flag_for_env(&name)
            .unwrap_or_else(|| panic!("the chart sets {name}, which the operator does not read"));
        argv.push(format!("{flag}={value}"));
    }
    OperatorConfig::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("the operator refuses the chart's command line {argv:?}: {e}"))
}

use clap::Parser as _;

#[test]
fn every_value_reaches_the_operator() {
    let defaults = parse_as_the_operator(&render(DEFAULTS));
    assert_eq!(
        defaults,
        {
            let mut d = OperatorConfig::try_parse_from(["stratum-operator"]).unwrap();
            d.lease_namespace = Some(NS.into());
            d.identity = Some("stratum-7d9f-x2x".into());
            d
        },
        "the chart's defaults are the operator's defaults"
    );

    let r = render(
        "\
replicas: 2
watchNamespaces: [team-a, team-b]
concurrency: 3
httpPort: 9090
logFormat: text
logLevel: debug
builder:
  image: {repository: registry.local/stratum, tag: dev}
  resources: {cpuRequest: '2', memoryRequest: 3Gi, memoryLimit: 8Gi}
  workSizeLimit: 50Gi
  defaultTimeout: 1h30m
",
    );
    let c = parse_as_the_operator(&r);
    assert_eq!(c.namespaces, ["team-a", "team-b"]);
    assert_eq!(c.concurrency, 3);
    assert_eq!(c.http_addr, "0.0.0.0:9090".parse().unwrap());
    assert_eq!(c.log_format, "text");
    assert!(c.leader_election);
    assert_eq!(c.lease_namespace.as_deref(), Some(NS));
    assert_eq!(c.identity.as_deref(), Some("stratum-7d9f-x2x"));
    let pod = c.pod_config();
    assert_eq!(pod.builder_image, "registry.local/stratum:dev");
    let res = pod.default_resources;
    assert_eq!(res.requests.as_ref().unwrap()["cpu"].0, "2");
    assert_eq!(res.requests.as_ref().unwrap()["memory"].0, "3Gi");
    assert_eq!(res.limits.as_ref().unwrap()["memory"].0, "8Gi");
    assert_eq!(pod.work_size_limit.unwrap().0, "50Gi");
    assert_eq!(c.default_timeout, Duration::from_secs(5400));

    let container = operator_container(&r);
    assert_eq!(container["ports"][0]["containerPort"], 9090);

    // What an end-to-end test does before starting the operator as the chart describes it.
    let mut cmd = r.operator_command().unwrap();
    cmd.set_flag("http-addr", "127.0.0.1:41234");
    cmd.set_flag("work-size-limit", "1Gi");
    let mut argv = vec!["stratum-operator".to_owned()];
    argv.extend(cmd.args.iter().cloned());
    argv.push(format!("--lease-namespace={NS}"));
    let c = OperatorConfig::try_parse_from(&argv).unwrap();
    assert_eq!(c.http_addr, "127.0.0.1:41234".parse().unwrap());
    assert_eq!(c.work_size_limit.unwrap().0, "1Gi");
    assert_eq!(
        cmd.flag("builder-image"),
        Some("registry.local/stratum:dev")
    );
    assert_eq!(cmd.flag("leader-election"), Some(""));
    assert_eq!(cmd.flag("builder"), None, "a prefix is not a flag");
    assert_eq!(
        cmd.args_without(&[
            "http-addr",
            "builder-image",
            "concurrency",
            "log-format",
            "leader-election"
        ]),
        [
            "--builder-cpu-request=2",
            "--builder-memory-request=3Gi",
            "--builder-memory-limit=8Gi",
            "--default-timeout=1h30m",
            "--work-size-limit=1Gi",
            "--namespaces=team-a,team-b",
        ]
    );
    cmd.set_flag("log-level-that-is-new", "x");
    assert_eq!(cmd.args.last().unwrap(), "--log-level-that-is-new=x");
    let env = r.operator_command().unwrap().resolved_env("p", NS).unwrap();
    assert!(env.contains(&("RUST_LOG".to_owned(), "debug".to_owned())));
}

#[test]
fn the_schema_rejects_bad_values() {
    for (values, complaint) in [
        ("replicas: 0\n", "/replicas"),
        ("concurrency: 0\n", "/concurrency"),
        ("unknownValue: 1\n", "unknownValue"),
        (
            "builder: {resources: {memoryLimit: 4GB}}\n",
            "/builder/resources/memoryLimit",
        ),
        ("watchNamespaces: [Builds]\n", "/watchNamespaces/0"),
        ("logFormat: xml\n", "/logFormat"),
        ("httpPort: 70000\n", "/httpPort"),
        (
            "metrics: {serviceMonitor: {enabled: yes-please}}\n",
            "/metrics/serviceMonitor/enabled",
        ),
        ("image: {pullPolicy: Sometimes}\n", "/image/pullPolicy"),
        // A placement value for builder pods would be accepted and ignored: the operator has
        // no such flag, so the schema refuses it.
        ("builder: {nodeSelector: {pool: builds}}\n", "nodeSelector"),
    ] {
        let err = chart::render("stratum", NS, values)
            .err()
            .unwrap_or_else(|| panic!("{values:?} was accepted"))
            .to_string();
        assert!(err.contains(complaint), "{values:?}: {err}");
    }
}

// --- the rendered manifests in the kube emulator ------------------------------------------------

/// A stand-in for prometheus-operator's ServiceMonitor CRD (the emulator has no such type built
/// in): enough schema for `kubectl apply` of the chart's ServiceMonitor to be stored and read.
const SERVICE_MONITOR_CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
";

const FIRST_BUILD: &str = "\
apiVersion: stratum.dev/v1alpha1
kind: ImageBuild
metadata:
  name: hello
  namespace: builds
spec:
  source:
    inline:
      dockerfile: |
        FROM busybox:1.36
        RUN echo hello > /hello
  output:
    image: registry.example.com/team/hello:v1
";

struct Cluster {
    _emu: Emulator,
    dir: TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let emu = Emulator::serve(ApiServer::new(Config::default()), 0)
            .await
            .unwrap();
        let dir = TempDir::new().unwrap();
        emu.write_kubeconfig(&dir.path().join("kubeconfig"))
            .unwrap();
        Cluster { _emu: emu, dir }
    }

    async fn kubectl(&self, args: &[&str], stdin: &str) -> String {
        let kubectl = std::env::var("STRATUM_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let mut child = Command::new(&kubectl)
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env("HOME", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("running {kubectl}: {e}; run scripts/install-kube-tools"));
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("kubectl finished within 2 minutes")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// `kubectl get` arguments for an object: `<resource>.<group>`, name, and its namespace.
fn get_args(obj: &Value) -> Vec<String> {
    let api_version = obj["apiVersion"].as_str().unwrap();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = obj["kind"].as_str().unwrap().to_lowercase();
    let resource = if group.is_empty() {
        kind
    } else {
        format!("{kind}.{group}")
    };
    let mut args = vec![
        "get".to_owned(),
        resource,
        obj["metadata"]["name"].as_str().unwrap().to_owned(),
        "-o".to_owned(),
        "json".to_owned(),
    ];
    if let Some(ns) = obj["metadata"]["namespace"].as_str() {
        args.extend(["-n".to_owned(), ns.to_owned()]);
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_apply_to_the_emulator() {
    for (name, values) in VALUE_SETS {
        let r = render(values);
        let cluster = Cluster::start().await;
        for ns in [NS, "builds", "ci"] {
            cluster.kubectl(&["create", "namespace", ns], "").await;
        }
        if !r.of_kind("ServiceMonitor").is_empty() {
            cluster
                .kubectl(&["apply", "-f", "-"], SERVICE_MONITOR_CRD)
                .await;
        }
        let applied = cluster.kubectl(&["apply", "-f", "-"], &r.manifest).await;
        assert_eq!(
            applied.lines().count(),
            r.objects.len(),
            "{name}: one line per object:\n{applied}"
        );
        for obj in &r.objects {
            let args = get_args(obj);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let back: Value = serde_json::from_str(&cluster.kubectl(&args, "").await).unwrap();
            assert_eq!(back["metadata"]["name"], obj["metadata"]["name"], "{name}");
            assert!(back["metadata"]["uid"].is_string(), "{name}: {back}");
            for field in ["spec", "rules", "roleRef", "subjects"] {
                if let Some(expected) = obj.get(field)
                    && obj["kind"] != "CustomResourceDefinition"
                    && obj["kind"] != "Service"
                    && obj["kind"] != "Deployment"
                {
                    assert_eq!(
                        normalise(&back[field]),
                        normalise(expected),
                        "{name}: {} {field} read back differs",
                        obj["kind"]
                    );
                }
            }
        }
        // The Deployment keeps the operator's command line.
        let deploy = r.of_kind("Deployment")[0];
        let back: Value = serde_json::from_str(
            &cluster
                .kubectl(
                    &[
                        "get",
                        "deployment.apps",
                        deploy["metadata"]["name"].as_str().unwrap(),
                        "-n",
                        NS,
                        "-o",
                        "json",
                    ],
                    "",
                )
                .await,
        )
        .unwrap();
        let container = &back["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["args"],
            json!(r.operator_command().unwrap().args),
            "{name}"
        );
        // The CRD the chart installs serves ImageBuilds: the NOTES' first build is accepted.
        let created = cluster.kubectl(&["apply", "-f", "-"], FIRST_BUILD).await;
        assert!(
            created.contains("imagebuild.stratum.dev/hello created"),
            "{name}: {created}"
        );
        // Applying the same manifests again changes nothing (what `helm upgrade` relies on).
        let again = cluster.kubectl(&["apply", "-f", "-"], &r.manifest).await;
        assert!(
            again.lines().all(|l| l.ends_with(" unchanged")),
            "{name}: a second apply changed something:\n{again}"
        );
    }
}

/// docs/operations.md's upgrade step for the CRD when `crds.install=false`:
/// `kubectl apply --server-side -f crds/imagebuild.yaml`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crd_applies_server_side_as_documented() {
    let cluster = Cluster::start().await;
    let crd = chart_dir().join("../../crds/imagebuild.yaml");
    let out = cluster
        .kubectl(
            &[
                "apply",
                "--server-side",
                "--field-manager=stratum-crds",
                "-f",
                &crd.to_string_lossy(),
            ],
            "",
        )
        .await;
    assert!(
        out.contains("imagebuilds.stratum.dev serverside-applied"),
        "{out}"
    );
    cluster
        .kubectl(&["create", "namespace", "builds"], "")
        .await;
    let created = cluster.kubectl(&["apply", "-f", "-"], FIRST_BUILD).await;
    assert!(created.contains("created"), "{created}");
}

/// The YAML between `<<'YAML'` and `YAML` in helm's NOTES output, de-indented.
fn notes_heredoc(notes: &str) -> String {
    let start = notes.find("<<'YAML'\n").expect("NOTES has a heredoc") + "<<'YAML'\n".len();
    let body = &notes[start..];
    let lines: Vec<&str> = body.lines().take_while(|l| l.trim() != "YAML").collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| format!("{}\n", l.get(indent..).unwrap_or("")))
        .collect()
}

/// Copies the chart into `dir`, the way a newer chart version would arrive.
fn copy_chart(dir: &std::path::Path) {
    for entry in walk(&chart_dir()) {
        let rel = entry.strip_prefix(chart_dir()).unwrap();
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &to).unwrap();
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// docs/operations.md's install, upgrade and uninstall, with the real helm against the emulator:
/// an upgrade to a chart whose CRD changed upgrades the CRD (it is a template, not a crds/ file),
/// and uninstall keeps the CRD and the ImageBuilds (`helm.sh/resource-policy: keep`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_uninstall() {
    let cluster = Cluster::start().await;
    let kubeconfig = cluster.dir.path().join("kubeconfig");
    let kc = Some(kubeconfig.as_path());
    let chart = chart_dir().to_string_lossy().into_owned();
    let installed = helm_with(
        kc,
        &[
            "install",
            "stratum",
            &chart,
            "--namespace",
            NS,
            "--create-namespace",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(installed.contains("STATUS: deployed"), "{installed}");
    assert!(
        installed.contains("pod-security.kubernetes.io/enforce=privileged"),
        "NOTES.txt names the namespace label: {installed}"
    );
    // docs/gitops.md: the example builds directory (labelled namespace + ImageBuild).
    let examples = chart_dir().join("../../examples/gitops/builds");
    let applied = cluster
        .kubectl(&["apply", "-k", &examples.to_string_lossy()], "")
        .await;
    assert_eq!(
        applied,
        "namespace/builds created\nimagebuild.stratum.dev/hello created\n"
    );
    // NOTES.txt's first ImageBuild, exactly as printed, applies.
    let notes_build = notes_heredoc(&installed);
    let out = cluster
        .kubectl(&["apply", "-n", "builds", "-f", "-"], &notes_build)
        .await;
    assert!(out.starts_with("imagebuild.stratum.dev/hello "), "{out}");

    // A newer chart: a new printer column in its CRD, and three replicas.
    let newer = TempDir::new().unwrap();
    copy_chart(newer.path());
    let crd_file = newer.path().join("files/imagebuild.yaml");
    let crd = std::fs::read_to_string(&crd_file).unwrap();
    let column = "    - jsonPath: .status.attempt\n      name: Attempt\n      type: integer\n";
    let crd = crd.replacen(
        "  - additionalPrinterColumns:\n",
        &format!("  - additionalPrinterColumns:\n{column}"),
        1,
    );
    assert!(crd.contains("name: Attempt"));
    std::fs::write(&crd_file, crd).unwrap();
    let upgraded = helm_with(
        kc,
        &[
            "upgrade",
            "stratum",
            &newer.path().to_string_lossy(),
            "--namespace",
            NS,
            "--set",
            "replicas=3",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(upgraded.contains("REVISION: 2"), "{upgraded}");
    let columns = cluster
        .kubectl(
            &[
                "get",
                "crd",
                "imagebuilds.stratum.dev",
                "-o",
                "jsonpath={.spec.versions[0].additionalPrinterColumns[*].name}",
            ],
            "",
        )
        .await;
    assert!(
        columns.starts_with("Attempt "),
        "the CRD was not upgraded: {columns}"
    );
    let args = cluster
        .kubectl(
            &[
                "get",
                "deployment.apps",
                "stratum",
                "-n",
                NS,
                "-o",
                "jsonpath={.spec.template.spec.containers[0].args}",
            ],
            "",
        )
        .await;
    assert!(args.contains("--leader-election"), "{args}");

    let uninstalled = helm_with(kc, &["uninstall", "stratum", "--namespace", NS])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        uninstalled.contains("imagebuilds.stratum.dev"),
        "{uninstalled}"
    );
    let left = cluster
        .kubectl(
            &[
                "get",
                "deployments.apps,roles.rbac.authorization.k8s.io",
                "-n",
                NS,
                "-o",
                "name",
            ],
            "",
        )
        .await;
    assert_eq!(left, "", "uninstall left objects behind");
    let builds = cluster
        .kubectl(&["get", "imagebuilds", "-A", "-o", "name"], "")
        .await;
    assert_eq!(
        builds.trim(),
        "imagebuild.stratum.dev/hello",
        "the CRD and its builds stay"
    );
    let releases = helm_with(kc, &["list", "--all-namespaces", "--short"]).unwrap();
    assert_eq!(releases.trim(), "", "the release record is gone");
}

/// Leaf value paths of values.yaml: maps are walked where values.schema.json lists their keys,
/// except pass-through Kubernetes objects (`resources`).
fn value_paths(values: &Value, schema: &Value, prefix: &str, out: &mut Vec<String>) {
    let Some(map) = values.as_object() else {
        return;
    };
    for (key, value) in map {
        let path = format!("{prefix}{key}");
        let sub = &schema["properties"][key];
        if value.is_object() && sub.get("properties").is_some() && path != "resources" {
            value_paths(value, sub, &format!("{path}."), out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn every_value_is_documented() {
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap())
            .unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("values.schema.json")).unwrap(),
    )
    .unwrap();
    let docs = std::fs::read_to_string(chart_dir().join("../../docs/operations.md")).unwrap();
    let mut paths = Vec::new();
    value_paths(&values, &schema, "", &mut paths);
    assert!(paths.len() > 30, "{paths:?}");
    let missing: Vec<_> = paths
        .iter()
        .filter(|p| !docs.contains(&format!("`{p}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/operations.md's values table lacks {missing:?}"
    );
}

/// The values that shape manifests rather than flags land where they say.
#[test]
fn manifest_values_land_in_the_manifests() {
    let r = render(
        "\
image: {repository: registry.local/op, tag: v9, pullPolicy: Always}
imagePullSecrets: [pull-a, pull-b]
resources: {requests: {cpu: 10m, memory: 20Mi}, limits: {memory: 30Mi}}
nodeSelector: {pool: system}
tolerations: [{key: dedicated, operator: Exists, effect: NoSchedule}]
affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a]}]}]}}}
priorityClassName: system-cluster-critical
podAnnotations: {note: 'yes'}
podLabels: {team: builds}
serviceAccount: {annotations: {iam: role-1}}
metrics: {service: {port: 9100}}
",
    );
    let deploy = r.of_kind("Deployment")[0];
    let pod = &deploy["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"], json!({"note": "yes"}));
    assert_eq!(pod["metadata"]["labels"]["team"], "builds");
    let spec = &pod["spec"];
    assert_eq!(
        spec["imagePullSecrets"],
        json!([{"name": "pull-a"}, {"name": "pull-b"}])
    );
    assert_eq!(spec["nodeSelector"], json!({"pool": "system"}));
    assert_eq!(spec["tolerations"][0]["key"], "dedicated");
    assert_eq!(
        spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["key"],
        "zone"
    );
    assert_eq!(spec["priorityClassName"], "system-cluster-critical");
    let c = operator_container(&r);
    assert_eq!(c["image"], "registry.local/op:v9");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "10m", "memory": "20Mi"}, "limits": {"memory": "30Mi"}})
    );
    let sa = r.get("ServiceAccount", "stratum").unwrap();
    assert_eq!(sa["metadata"]["annotations"], json!({"iam": "role-1"}));
    assert_eq!(
        r.get("Service", "stratum-metrics").unwrap()["spec"]["ports"][0]["port"],
        9100
    );

    // Switches that remove objects.
    let off = render(
        "\
serviceAccount: {create: false, name: platform-sa}
rbac: {create: false}
metrics: {service: {enabled: false}}
",
    );
    assert_eq!(kinds(&off), ["CustomResourceDefinition", "Deployment"]);
    assert_eq!(
        off.of_kind("Deployment")[0]["spec"]["template"]["spec"]["serviceAccountName"],
        "platform-sa"
    );
    let no_aggregate = render("rbac: {aggregateToDefaultRoles: false}\n");
    assert!(
        no_aggregate
            .get("ClusterRole", "stratum-imagebuild-editor")
            .is_none()
    );
    assert!(
        no_aggregate
            .get("ClusterRole", "stratum-operator")
            .is_some()
    );
    // An existing ServiceAccount must be named.
    let err = match chart::render("stratum", NS, "serviceAccount: {create: false}\n") {
        Ok(_) => panic!("serviceAccount.create=false without a name was rendered"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("serviceAccount.name is required"), "{err}");
}
