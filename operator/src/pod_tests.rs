//! Golden tests: each case's pod, as pretty JSON, must equal `testdata/pods/<case>.json`.
//! `STRATUM_UPDATE_GOLDEN=1` rewrites the files; review the diff before committing it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;
use stratum_crds::{
    GitSource, GoDuration, ImageBuild, ImageBuildSpec, InlineSource, Output, ResolvedGit,
    ResolvedSource, SecretReference, Source,
};

use super::*;

fn config() -> PodConfig {
    PodConfig {
        builder_image: "ghcr.io/stratum-dev/stratum:v0.1.0".into(),
        default_resources: ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("500m".into())),
                ("memory".into(), Quantity("1Gi".into())),
            ])),
            limits: Some(BTreeMap::from([("memory".into(), Quantity("4Gi".into()))])),
            ..ResourceRequirements::default()
        },
        work_size_limit: Some(Quantity("20Gi".into())),
        default_timeout: std::time::Duration::from_secs(1800),
    }
}

fn mk_build(name: &str, spec: ImageBuildSpec) -> ImageBuild {
    let mut build = ImageBuild::new(name, spec);
    build.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("team-a".into()),
        uid: Some("0b7c6a3e-5a43-4e5e-9d1f-3c2b1a0f9e8d".into()),
        generation: Some(3),
        ..ObjectMeta::default()
    };
    build
}

fn inline_spec() -> ImageBuildSpec {
    ImageBuildSpec {
        source: Source {
            inline: Some(InlineSource {
                dockerfile: "FROM busybox\nRUN echo hi\n".into(),
            }),
            ..Source::default()
        },
        output: Output {
            image: "registry.example.com/team/app:1".into(),
            ..Output::default()
        },
        ..ImageBuildSpec::default()
    }
}

fn git_spec() -> ImageBuildSpec {
    ImageBuildSpec {
        source: Source {
            git: Some(GitSource {
                url: "https://git.example.com/team/app.git".into(),
                revision: Some("main".into()),
                context_dir: Some("services/api".into()),
                secret_ref: Some(SecretReference {
                    name: "git-creds".into(),
                }),
                ..GitSource::default()
            }),
            ..Source::default()
        },
        output: Output {
            image: "registry.example.com/team/api:main".into(),
            push_secret_ref: Some(SecretReference {
                name: "push-creds".into(),
            }),
            ..Output::default()
        },
        timeout: Some(GoDuration::new("1h30m")),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".into(), Quantity("8Gi".into()))])),
            ..ResourceRequirements::default()
        }),
        node_selector: BTreeMap::from([("kubernetes.io/arch".into(), "arm64".into())]),
        tolerations: vec![Toleration {
            key: Some("builds".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }],
        builder_image: Some("mirror.example.com/stratum@sha256:".to_owned() + &"c".repeat(64)),
        ..ImageBuildSpec::default()
    }
}

fn resolved_commit() -> ResolvedSource {
    ResolvedSource {
        git: Some(ResolvedGit {
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
        }),
        url: None,
    }
}

fn golden(case: &str, pod: &Pod) {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "testdata",
        "pods",
        &format!("{case}.json"),
    ]
    .iter()
    .collect();
    let got = serde_json::to_string_pretty(pod).unwrap() + "\n";
    if std::env::var_os("STRATUM_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with STRATUM_UPDATE_GOLDEN=1", path.display()));
    // Compare parsed JSON so formatting is not the test; print the text on a difference.
    let (got_v, want_v): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&got).unwrap(),
        serde_json::from_str(&want).unwrap(),
    );
    assert!(
        got_v == want_v,
        "{case}: pod differs from {}:\n{got}",
        path.display()
    );
}

#[test]
fn inline_with_operator_defaults() {
    let build = mk_build("app", inline_spec());
    let pod = builder_pod(&build, &ResolvedSource::default(), 0, 1, &config()).unwrap();
    golden("inline-defaults", &pod);
}

#[test]
fn git_with_secrets_scheduling_and_overrides() {
    let build = mk_build("api", git_spec());
    let pod = builder_pod(&build, &resolved_commit(), 0, 2, &config()).unwrap();
    golden("git-secrets-scheduling", &pod);
}

#[test]
fn long_name_is_hashed_and_label_keeps_the_full_name() {
    let name = "a-very-long-image-build-name-that-uses-all-of-its-sixty-three-c";
    let build = mk_build(name, inline_spec());
    let pod = builder_pod(&build, &ResolvedSource::default(), 0, 1, &config()).unwrap();
    golden("long-name", &pod);
    assert!(pod.metadata.name.unwrap().len() <= 63);
}

#[test]
fn rebuilds_are_named_and_labelled_and_the_default_timeout_applies() {
    let build = mk_build("api", git_spec());
    let pod = builder_pod(&build, &resolved_commit(), 2, 1, &config()).unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some("api-3r2-1"));
    let labels = pod.metadata.labels.unwrap();
    assert_eq!(labels[REBUILD_LABEL], "2");
    assert_eq!(labels[ATTEMPT_LABEL], "1");
    // Rebuild 0 has no rebuild label (pods look as they did before rebuilds existed).
    let pod = builder_pod(&build, &resolved_commit(), 0, 1, &config()).unwrap();
    assert!(!pod.metadata.labels.unwrap().contains_key(REBUILD_LABEL));

    // Without spec.timeout, --default-timeout is the deadline, in the pod and in the request.
    let mut build = mk_build("app", inline_spec());
    build.spec.timeout = None;
    let config = PodConfig {
        default_timeout: std::time::Duration::from_secs(7200),
        ..config()
    };
    let pod = builder_pod(&build, &ResolvedSource::default(), 0, 1, &config).unwrap();
    let spec = pod.spec.unwrap();
    assert_eq!(spec.active_deadline_seconds, Some(7200));
    let env = &spec.containers[0].env.as_ref().unwrap()[0];
    let request = BuildRequest::from_json(env.value.as_deref().unwrap()).unwrap();
    assert_eq!(request.timeout_seconds, 7200);
    // spec.timeout wins over the default.
    build.spec.timeout = Some(GoDuration::new("10m"));
    let pod = builder_pod(&build, &ResolvedSource::default(), 0, 1, &config).unwrap();
    assert_eq!(pod.spec.unwrap().active_deadline_seconds, Some(600));
}

#[test]
fn security_invariants_hold_for_every_case() {
    let cases = [
        (mk_build("app", inline_spec()), ResolvedSource::default()),
        (mk_build("api", git_spec()), resolved_commit()),
    ];
    for (build, resolved) in cases {
        let pod = builder_pod(&build, &resolved, 0, 1, &config()).unwrap();
        let spec = pod.spec.unwrap();
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            spec.containers.len(),
            1,
            "every extra container shrinks the result budget"
        );
        assert!(spec.init_containers.is_none());
        let c = &spec.containers[0];
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        for m in c.volume_mounts.iter().flatten() {
            assert_eq!(
                m.read_only == Some(true),
                m.name != WORK_VOLUME,
                "{}",
                m.name
            );
        }
        // The request in the env is what the builder will parse.
        let env = &c.env.as_ref().unwrap()[0];
        let request = BuildRequest::from_json(env.value.as_deref().unwrap()).unwrap();
        assert_eq!(
            i64::try_from(request.timeout_seconds).unwrap(),
            spec.active_deadline_seconds.unwrap()
        );
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
    }
}

#[test]
fn refuses_builds_it_cannot_describe() {
    let mut build = mk_build("app", inline_spec());
    build.metadata.uid = None;
    assert!(matches!(
        builder_pod(&build, &ResolvedSource::default(), 0, 1, &config()),
        Err(PodError::NoUid { .. })
    ));
    // A git source without a resolved commit has no request.
    let build = mk_build("api", git_spec());
    let err = builder_pod(&build, &ResolvedSource::default(), 0, 1, &config()).unwrap_err();
    assert!(
        matches!(
            err,
            PodError::Request {
                source: RequestError::Unresolved { .. },
                ..
            }
        ),
        "{err}"
    );
}
