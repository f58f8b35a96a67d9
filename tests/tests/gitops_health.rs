//! The Argo CD health check docs/gitops/argocd-health.lua, run by the real Lua 5.1 interpreter
//! (Debian's `lua5.1`, the language version Argo CD's gopher-lua implements) against ImageBuild
//! statuses the operator's own status code (`stratum_operator::status::after_action`,
//! `stratum_crds::conditions::set_for_phase`) produces; plus the example manifests in
//! examples/gitops, whose argocd-cm must carry the same script.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use stratum_crds::conditions::set_for_phase;
use stratum_crds::{Failure, ImageBuild, ImageBuildSpec, ImageBuildStatus, Phase, reason};
use stratum_operator::reconcile::{Action, Waiting};
use stratum_operator::status::after_action;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn script() -> PathBuf {
    repo().join("docs/gitops/argocd-health.lua")
}

/// A JSON value as a Lua table constructor (what Argo CD hands the script as `obj`); nulls are
/// left out, as they are absent fields to Lua.
fn lua_literal(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// A Lua string literal: decimal escapes for everything but printable ASCII.
fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b}")),
        }
    }
    out.push('"');
    out
}

/// Runs the script on `obj` as Argo CD does (a chunk with the global `obj` that returns `hs`)
/// and returns (status, message).
fn health(script: &Path, obj: &Value) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let harness = dir.path().join("harness.lua");
    std::fs::write(
        &harness,
        format!(
            "obj = {}\nlocal check = assert(loadfile(arg[1]))\nlocal hs = check()\n\
             io.write(tostring(hs.status), \"\\n\", tostring(hs.message), \"\\n\")\n",
            lua_literal(obj)
        ),
    )
    .unwrap();
    let out = Command::new("lua5.1")
        .arg(&harness)
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("running lua5.1: {e}; run scripts/install-deps"));
    assert!(
        out.status.success(),
        "lua5.1 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.splitn(2, '\n');
    let status = lines.next().unwrap_or_default().to_owned();
    let message = lines.next().unwrap_or_default().trim_end().to_owned();
    (status, message)
}

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).unwrap())
}

fn build(generation: i64, status: Option<ImageBuildStatus>) -> ImageBuild {
    let mut b = ImageBuild::new("app", ImageBuildSpec::default());
    b.metadata.namespace = Some("builds".into());
    b.metadata.uid = Some("8a5c3a56-0000-4000-8000-000000000001".into());
    b.metadata.generation = Some(generation);
    b.status = status;
    b
}

/// The status the operator writes for `action` on `b`.
fn after(b: &ImageBuild, action: &Action) -> ImageBuild {
    let status = after_action(b, action, &at(1_700_000_000)).expect("the action writes a status");
    build(b.metadata.generation.unwrap(), Some(status))
}

fn wait(why: Waiting) -> Action {
    Action::Wait {
        why,
        requeue_after: None,
    }
}

fn fail(reason: &str, message: &str) -> Action {
    Action::Fail {
        pod: None,
        attempt: 1,
        failure: Failure {
            reason: reason.into(),
            message: message.into(),
            ..Failure::default()
        },
        result: None,
        stop: None,
    }
}

/// A succeeded status as `status::succeeded` writes it (verification needs a registry).
fn succeeded(generation: i64) -> ImageBuild {
    let mut s = ImageBuildStatus {
        observed_generation: Some(generation),
        phase: Some(Phase::Succeeded),
        image: Some("registry.example.com/team/app@sha256:0d5f".into()),
        ..ImageBuildStatus::default()
    };
    set_for_phase(
        &mut s.conditions,
        Phase::Succeeded,
        reason::BUILD_SUCCEEDED,
        "pushed registry.example.com/team/app@sha256:0d5f",
        Some(generation),
        &at(1),
    );
    build(generation, Some(s))
}

fn obj(b: &ImageBuild) -> Value {
    serde_json::to_value(b).unwrap()
}

#[test]
fn health_follows_the_operator_status() {
    let fresh = build(1, None);
    let pending = after(
        &fresh,
        &Action::CreatePod {
            rebuild: 0,
            attempt: 1,
            source: stratum_crds::ResolvedSource::default(),
        },
    );
    let running = after(
        &pending,
        &wait(Waiting::PodRunning {
            pod: "app-1-1".into(),
            attempt: 1,
            created: None,
        }),
    );
    let queued = after(&fresh, &Action::MarkQueued);
    let no_secret = after(
        &fresh,
        &wait(Waiting::SecretsMissing {
            problems: vec!["push Secret regcred does not exist".into()],
        }),
    );
    let failed = after(&running, &fail(reason::STEP_FAILED, "RUN make exited 2"));
    let oom = after(
        &running,
        &fail(reason::OOM_KILLED, "raise the memory limit"),
    );
    let cancelled = after(
        &running,
        &Action::Cancel {
            pod: Some("app-1-1".into()),
        },
    );
    let done = succeeded(1);
    // The spec changed after the build finished; the operator has not seen it yet.
    let stale_success = build(2, done.status.clone());
    let stale_failure = build(2, failed.status.clone());
    // ... and once it has, the old Stalled condition is gone.
    let rebuilding = after(
        &stale_failure,
        &Action::CreatePod {
            rebuild: 0,
            attempt: 1,
            source: stratum_crds::ResolvedSource::default(),
        },
    );
    let mut no_observed = done.clone();
    no_observed.status.as_mut().unwrap().observed_generation = None;

    let cases: [(&str, Value, &str, &str); 13] = [
        (
            "no status yet",
            obj(&fresh),
            "Progressing",
            "Waiting for the Stratum operator to pick up the build",
        ),
        (
            "pod created",
            obj(&pending),
            "Progressing",
            "Pending: builder pod app-1-1 created",
        ),
        (
            "building",
            obj(&running),
            "Progressing",
            "Building: builder pod app-1-1 is running",
        ),
        (
            "queued",
            obj(&queued),
            "Progressing",
            "Queued: waiting for a free build slot",
        ),
        (
            "secret missing",
            obj(&no_secret),
            "Progressing",
            "SecretInvalid: push Secret regcred does not exist",
        ),
        (
            "failed",
            obj(&failed),
            "Degraded",
            "StepFailed: RUN make exited 2",
        ),
        (
            "oom",
            obj(&oom),
            "Degraded",
            "OOMKilled: raise the memory limit",
        ),
        (
            "cancelled",
            obj(&cancelled),
            "Suspended",
            "Cancelled: cancelled by spec.cancel",
        ),
        (
            "succeeded",
            obj(&done),
            "Healthy",
            "Pushed registry.example.com/team/app@sha256:0d5f",
        ),
        (
            "success of an older generation",
            obj(&stale_success),
            "Progressing",
            "Waiting for the Stratum operator to build generation 2 (status describes generation 1)",
        ),
        (
            "failure of an older generation",
            obj(&stale_failure),
            "Progressing",
            "Waiting for the Stratum operator to build generation 2 (status describes generation 1)",
        ),
        (
            "new generation after a failure",
            obj(&rebuilding),
            "Progressing",
            "Pending: builder pod app-2-1 created",
        ),
        (
            "no observedGeneration",
            obj(&no_observed),
            "Progressing",
            "Waiting for the Stratum operator to build generation 1 (status describes generation none)",
        ),
    ];
    for (name, obj, status, message) in cases {
        assert_eq!(
            health(&script(), &obj),
            (status.to_owned(), message.to_owned()),
            "{name}"
        );
    }
}

#[test]
fn unknown_statuses_are_unknown_not_healthy() {
    let obj = json!({
        "apiVersion": "stratum.dev/v1alpha1",
        "kind": "ImageBuild",
        "metadata": {"name": "app", "generation": 1},
        "status": {"observedGeneration": 1, "phase": "Teleporting"},
    });
    assert_eq!(
        health(&script(), &obj),
        (
            "Unknown".to_owned(),
            "Unrecognised ImageBuild status (phase Teleporting)".to_owned()
        )
    );
    // Ready=True wins only without Stalled, and a phase alone still counts as progress.
    let obj = json!({
        "metadata": {"name": "app", "generation": 4},
        "status": {"observedGeneration": 4, "phase": "Fetching"},
    });
    assert_eq!(health(&script(), &obj).0, "Progressing");
}

#[test]
fn lua_literals_survive_quotes_and_non_ascii() {
    let obj = json!({
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "phase": "Failed",
            "conditions": [{"type": "Stalled", "status": "True", "reason": "StepFailed",
                            "message": "RUN echo \"größe\" \\ exited 1\nsecond line"}],
        },
    });
    assert_eq!(
        health(&script(), &obj),
        (
            "Degraded".to_owned(),
            "StepFailed: RUN echo \"größe\" \\ exited 1\nsecond line".to_owned()
        )
    );
}

fn yaml_documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

#[test]
fn argocd_example_carries_the_tested_script() {
    let docs = yaml_documents("examples/gitops/argocd/argocd-cm.yaml");
    let cm = &docs[0];
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    let embedded = cm["data"]["resource.customizations.health.stratum.dev_ImageBuild"]
        .as_str()
        .expect("the health check key for group stratum.dev, kind ImageBuild");
    let script_text = std::fs::read_to_string(script()).unwrap();
    assert_eq!(
        embedded, script_text,
        "examples/gitops/argocd/argocd-cm.yaml must embed docs/gitops/argocd-health.lua verbatim"
    );
    // The key names the CRD's real group and kind.
    let crd: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo().join("crds/imagebuild.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(crd["spec"]["group"], "stratum.dev");
    assert_eq!(crd["spec"]["names"]["kind"], "ImageBuild");

    let app = &yaml_documents("examples/gitops/argocd/application.yaml")[0];
    assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(app["kind"], "Application");
    assert!(app["spec"]["source"]["path"].is_string());
}

#[test]
fn flux_example_waits_for_image_builds() {
    let docs = yaml_documents("examples/gitops/flux/sync.yaml");
    let source = docs.iter().find(|d| d["kind"] == "GitRepository").unwrap();
    assert_eq!(source["apiVersion"], "source.toolkit.fluxcd.io/v1");
    let kustomization = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "Kustomization" && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Kustomization {name}"))
    };
    let builds = kustomization("app-builds");
    assert_eq!(builds["apiVersion"], "kustomize.toolkit.fluxcd.io/v1");
    assert_eq!(
        builds["spec"]["sourceRef"]["name"],
        source["metadata"]["name"]
    );
    assert_eq!(builds["spec"]["path"], "./examples/gitops/builds");
    assert!(
        repo()
            .join("examples/gitops/builds/kustomization.yaml")
            .is_file()
    );
    // kstatus health: Flux waits until every applied ImageBuild is Ready (or Stalled fails it).
    assert_eq!(builds["spec"]["wait"], true);
    assert!(builds["spec"]["timeout"].is_string());
    // The builds wait for the chart (CRD and operator).
    assert_eq!(builds["spec"]["dependsOn"], json!([{"name": "stratum"}]));
    let stratum = kustomization("stratum");
    assert_eq!(stratum["spec"]["path"], "./examples/gitops/flux/stratum");
    let release = &yaml_documents("examples/gitops/flux/stratum/helmrelease.yaml")[0];
    assert_eq!(release["kind"], "HelmRelease");
    assert_eq!(
        release["spec"]["chart"]["spec"]["chart"],
        "./charts/stratum"
    );
    // The release's values pass the chart's schema.
    // JSON is YAML.
    let values = release["spec"]["values"].to_string();
    stratum_e2e::chart::render("stratum", "stratum-system", &values)
        .unwrap_or_else(|e| panic!("the HelmRelease's values: {e}"));
}

/// The manifests the examples deploy are valid ImageBuilds: parse them with the CRD's types and
/// run the operator's validation.
#[test]
fn example_image_builds_are_valid() {
    let docs = yaml_documents("examples/gitops/builds/imagebuild.yaml");
    assert!(!docs.is_empty());
    for doc in docs {
        let b: ImageBuild = serde_json::from_value(doc.clone())
            .unwrap_or_else(|e| panic!("{doc}: not an ImageBuild: {e}"));
        if let Err(e) = stratum_crds::validate::validate(&b) {
            panic!("{}: {e:?}", b.metadata.name.unwrap_or_default());
        }
    }
}
