//! The reads of one reconcile. Pods and Secrets are read live from the apiserver, not from the
//! informer cache: a cache that lags a create makes a just-created pod look deleted, and the
//! operator would record `ResultLost` (docs/arch/operator.md).

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use stratum_crds::contract::DOCKER_CONFIG_KEY;
use stratum_crds::{ImageBuild, ResolvedSource, SourceKind};

use super::Error;
use crate::names::BUILD_LABEL;
use crate::reconcile::{Observed, PodView};

/// The Secret type a push Secret must have (what `kubectl create secret docker-registry` makes).
pub const DOCKER_CONFIG_TYPE: &str = "kubernetes.io/dockerconfigjson";

/// The live pods labelled for `build` that it controls.
pub async fn pods(pods: &Api<Pod>, build: &ImageBuild) -> Result<Vec<PodView>, Error> {
    let selector = format!("{BUILD_LABEL}={}", build.name_any());
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Kube {
            step: "list_pods",
            build: qualified(build),
            source,
        })?;
    Ok(list
        .items
        .iter()
        .filter_map(|p| PodView::from_pod(p, build))
        .collect())
}

/// What is wrong with the Secrets `build` names; empty when they are all usable. Only names and
/// keys go into these texts — never Secret data (they end up in status and Events).
pub async fn secret_problems(
    secrets: &Api<Secret>,
    build: &ImageBuild,
) -> Result<Vec<String>, Error> {
    let spec = &build.spec;
    let mut problems = Vec::new();
    if let Some(push) = &spec.output.push_secret_ref {
        match get_secret(secrets, build, &push.name).await? {
            None => problems.push(format!("push Secret {} does not exist", push.name)),
            Some(secret) => {
                if secret.type_.as_deref() != Some(DOCKER_CONFIG_TYPE) {
                    problems.push(format!(
                        "push Secret {} has type {}, not {DOCKER_CONFIG_TYPE}",
                        push.name,
                        secret.type_.as_deref().unwrap_or("Opaque")
                    ));
                } else if !secret
                    .data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(DOCKER_CONFIG_KEY))
                {
                    problems.push(format!(
                        "push Secret {} has no key {DOCKER_CONFIG_KEY}",
                        push.name
                    ));
                }
            }
        }
    }
    let source_secret = match spec.source.kind() {
        Some(SourceKind::Git(git)) => git.secret_ref.as_ref(),
        Some(SourceKind::Url(url)) => url.secret_ref.as_ref(),
        _ => None,
    };
    if let Some(source) = source_secret
        && get_secret(secrets, build, &source.name).await?.is_none()
    {
        problems.push(format!("source Secret {} does not exist", source.name));
    }
    Ok(problems)
}

/// The push Secret's `.dockerconfigjson`, for registry verification.
pub async fn docker_config(
    secrets: &Api<Secret>,
    build: &ImageBuild,
) -> Result<Option<Vec<u8>>, Error> {
    let Some(push) = &build.spec.output.push_secret_ref else {
        return Ok(None);
    };
    let secret = get_secret(secrets, build, &push.name).await?;
    let bytes = secret
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(DOCKER_CONFIG_KEY))
        .ok_or_else(|| Error::PushSecret {
            build: qualified(build),
            secret: push.name.clone(),
            problem: format!("it or its key {DOCKER_CONFIG_KEY} is gone"),
        })?;
    Ok(Some(bytes.0))
}

async fn get_secret(
    secrets: &Api<Secret>,
    build: &ImageBuild,
    name: &str,
) -> Result<Option<Secret>, Error> {
    secrets.get_opt(name).await.map_err(|source| Error::Kube {
        step: "get_secret",
        build: qualified(build),
        source,
    })
}

/// The source at an exact revision. Git revisions are resolved to a commit by nobody yet, so a
/// git build waits in `SourceUnresolved` unless its status already names the commit (see
/// docs/arch/operator.md, "Not done"). URL and inline sources need no resolution.
pub fn resolved(build: &ImageBuild) -> Option<ResolvedSource> {
    let recorded = build.status.as_ref().and_then(|s| s.source.clone());
    match build.spec.source.kind() {
        Some(SourceKind::Git(_)) => recorded.filter(|r| r.git.is_some()),
        _ => Some(recorded.unwrap_or_default()),
    }
}

/// Assembles the inputs of one decision.
pub fn observed<'a>(
    build: &'a ImageBuild,
    pods: Vec<PodView>,
    missing_secrets: Vec<String>,
    slot_free: bool,
    now: Timestamp,
) -> Observed<'a> {
    Observed {
        build,
        pods,
        now,
        slot_free,
        missing_secrets,
        resolved: resolved(build),
    }
}

/// `namespace/name`, for error texts.
pub fn qualified(build: &ImageBuild) -> String {
    format!(
        "{}/{}",
        build.namespace().unwrap_or_default(),
        build.name_any()
    )
}
