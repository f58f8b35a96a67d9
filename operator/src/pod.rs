//! The builder Pod, as a pure function of (ImageBuild, resolved source, attempt, configuration).
//!
//! Design §3 and threats §6: one privileged container (overlayfs, namespaces and mknod need it
//! until user-namespaced pods are common), no ServiceAccount token (the builder talks to no
//! Kubernetes API, and a privileged pod with a token is a cluster credential), `restartPolicy:
//! Never` (a retry is a new pod, decided by the operator), `activeDeadlineSeconds` from
//! `spec.timeout`, and the result in the termination message file.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, KeyToPath, Pod, PodSpec, ResourceRequirements,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Resource;
use kube::api::ObjectMeta;
use stratum_crds::contract::{
    DOCKER_CONFIG_KEY, PUSH_SECRET_DIR, RequestError, SOURCE_SECRET_DIR, TERMINATION_MESSAGE_PATH,
};
use stratum_crds::{BuildRequest, ImageBuild, ResolvedSource};

use crate::names::{
    ATTEMPT_LABEL, BUILD_LABEL, GENERATION_LABEL, MANAGED_BY, REBUILD_LABEL, rebuild_pod_name,
};
use crate::reconcile::observed::BUILDER_CONTAINER;

/// The builder's layer store: an `emptyDir`, because overlayfs cannot use an overlayfs upper dir
/// (the container's own root usually is one).
pub const WORK_DIR: &str = "/var/lib/stratum";
/// The builder's entry point inside the builder image.
pub const BUILDER_COMMAND: [&str; 2] = ["stratum", "pod-build"];

const WORK_VOLUME: &str = "work";
const PUSH_VOLUME: &str = "push-secret";
const SOURCE_VOLUME: &str = "source-secret";
/// Secrets are readable by the builder's root user only.
const SECRET_MODE: i32 = 0o400;

/// What the operator's flags decide about builder pods.
#[derive(Debug, Clone, PartialEq)]
pub struct PodConfig {
    /// The builder image unless `spec.builderImage` overrides it.
    pub builder_image: String,
    /// Used when `spec.resources` is unset.
    pub default_resources: ResourceRequirements,
    /// The work volume's `sizeLimit`: past it the kubelet evicts the pod (a retried `Evicted`
    /// failure) instead of filling the node's disk.
    pub work_size_limit: Option<Quantity>,
    /// The deadline of builds that set no `spec.timeout` (`--default-timeout`).
    pub default_timeout: std::time::Duration,
}

/// Why no pod could be made.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("cannot make the build request for ImageBuild {build}: {source}")]
    Request {
        build: String,
        #[source]
        source: RequestError,
    },
    #[error("ImageBuild {build} has no uid yet; it must be read from the apiserver")]
    NoUid { build: String },
}

/// The pod for `attempt` of `pollInterval` rebuild `rebuild` (0: the build the spec started) of
/// the current generation of `build`.
pub fn builder_pod(
    build: &ImageBuild,
    resolved: &ResolvedSource,
    rebuild: i32,
    attempt: i32,
    config: &PodConfig,
) -> Result<Pod, PodError> {
    let name = build.metadata.name.clone().unwrap_or_default();
    let namespaced = format!(
        "{}/{name}",
        build.metadata.namespace.as_deref().unwrap_or_default()
    );
    let mut owner = build
        .controller_owner_ref(&())
        .ok_or_else(|| PodError::NoUid {
            build: namespaced.clone(),
        })?;
    // kube's controller_owner_ref leaves this unset; with it, a foreground deletion of the
    // ImageBuild waits for the pod to go (threats F8).
    owner.block_owner_deletion = Some(true);
    let request = BuildRequest::for_build(build, resolved, attempt, config.default_timeout)
        .and_then(|r| r.to_env_var())
        .map_err(|source| PodError::Request {
            build: namespaced,
            source,
        })?;
    let generation = build.metadata.generation.unwrap_or(1);
    let spec = &build.spec;

    let mut volumes = vec![Volume {
        name: WORK_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: config.work_size_limit.clone(),
            medium: None,
        }),
        ..Volume::default()
    }];
    let mut mounts = vec![mount(WORK_VOLUME, WORK_DIR, false)];
    if let Some(push) = &spec.output.push_secret_ref {
        volumes.push(secret_volume(
            PUSH_VOLUME,
            &push.name,
            Some(DOCKER_CONFIG_KEY),
        ));
        mounts.push(mount(PUSH_VOLUME, PUSH_SECRET_DIR, true));
    }
    if let Some(source) = source_secret(build) {
        // All keys: basic-auth (`username`, `password`) or ssh-auth (`ssh-privatekey`,
        // `known_hosts`); the builder reads what the type defines.
        volumes.push(secret_volume(SOURCE_VOLUME, source, None));
        mounts.push(mount(SOURCE_VOLUME, SOURCE_SECRET_DIR, true));
    }

    let mut labels = BTreeMap::from([
        (BUILD_LABEL.to_owned(), name.clone()),
        (GENERATION_LABEL.to_owned(), generation.to_string()),
        (ATTEMPT_LABEL.to_owned(), attempt.to_string()),
        (
            "app.kubernetes.io/name".to_owned(),
            "stratum-builder".to_owned(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        ),
    ]);
    if rebuild > 0 {
        labels.insert(REBUILD_LABEL.to_owned(), rebuild.to_string());
    }
    let container = Container {
        name: BUILDER_CONTAINER.into(),
        image: Some(
            spec.builder_image
                .clone()
                .unwrap_or_else(|| config.builder_image.clone()),
        ),
        command: Some(BUILDER_COMMAND.map(str::to_owned).to_vec()),
        env: Some(vec![request]),
        resources: Some(
            spec.resources
                .clone()
                .unwrap_or_else(|| config.default_resources.clone()),
        ),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.into()),
        // `File`, never `FallbackToLogsOnError`: log lines must not pass for a result (§5).
        termination_message_policy: Some("File".into()),
        ..Container::default()
    };
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(rebuild_pod_name(&name, generation, rebuild, attempt)),
            namespace: build.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("Never".into()),
            active_deadline_seconds: Some(deadline_seconds(build, config.default_timeout)),
            automount_service_account_token: Some(false),
            // Service links add an env var per Service in the namespace: noise, and bytes
            // against the environment's size limit the BuildRequest shares.
            enable_service_links: Some(false),
            node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
            tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
        status: None,
    })
}

/// `spec.timeout` in whole seconds, rounded up, at least 1 (the same as the request's
/// `timeoutSeconds`, so the builder can stop itself first and report the step it was on).
fn deadline_seconds(build: &ImageBuild, default_timeout: std::time::Duration) -> i64 {
    let timeout = build
        .spec
        .timeout
        .as_ref()
        .map_or(Ok(default_timeout), |t| t.parse())
        .unwrap_or_default();
    let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    i64::try_from(secs).unwrap_or(i64::MAX).max(1)
}

fn source_secret(build: &ImageBuild) -> Option<&str> {
    let source = &build.spec.source;
    let git = source.git.as_ref().and_then(|g| g.secret_ref.as_ref());
    let url = source.url.as_ref().and_then(|u| u.secret_ref.as_ref());
    git.or(url).map(|s| s.name.as_str())
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn secret_volume(volume: &str, secret: &str, only_key: Option<&str>) -> Volume {
    Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            default_mode: Some(SECRET_MODE),
            items: only_key.map(|key| {
                vec![KeyToPath {
                    key: key.into(),
                    path: key.into(),
                    mode: None,
                }]
            }),
            optional: Some(false),
        }),
        ..Volume::default()
    }
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
