//! The reads of one reconcile. Pods and Secrets are read live from the apiserver, not from the
//! informer cache: a cache that lags a create makes a just-created pod look deleted, and the
//! operator would record `ResultLost` (docs/arch/operator.md).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use stratum_crds::contract::DOCKER_CONFIG_KEY;
use stratum_crds::{ImageBuild, SourceKind};

use super::Error;
use crate::names::BUILD_LABEL;
use crate::reconcile::{Observed, PodView, SourceCheck};

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
    if let Some(source) = source_secret_name(build)
        && get_secret(secrets, build, source).await?.is_none()
    {
        problems.push(format!("source Secret {source} does not exist"));
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

/// The data of the source Secret (`secretRef`), for resolving the source; `None` when the spec
/// names none. Never logged: it goes only to the resolver.
pub async fn source_secret(
    secrets: &Api<Secret>,
    build: &ImageBuild,
) -> Result<Option<BTreeMap<String, ByteString>>, Error> {
    let Some(name) = source_secret_name(build) else {
        return Ok(None);
    };
    // secret_problems() checked that it exists; one deleted since resolves without credentials
    // and fails with the remote's answer.
    let secret = get_secret(secrets, build, name).await?;
    Ok(Some(secret.and_then(|s| s.data).unwrap_or_default()))
}

fn source_secret_name(build: &ImageBuild) -> Option<&str> {
    match build.spec.source.kind() {
        Some(SourceKind::Git(git)) => git.secret_ref.as_ref(),
        Some(SourceKind::Url(url)) => url.secret_ref.as_ref(),
        _ => None,
    }
    .map(|s| s.name.as_str())
}

/// Assembles the inputs of one decision; the source is not asked yet
/// ([`SourceCheck::NotChecked`]).
pub fn observed<'a>(
    build: &'a ImageBuild,
    pods: Vec<PodView>,
    missing_secrets: Vec<String>,
    slot_free: bool,
    now: Timestamp,
    last_source_check: Option<Timestamp>,
    default_timeout: Duration,
) -> Observed<'a> {
    Observed {
        build,
        pods,
        now,
        slot_free,
        missing_secrets,
        source: SourceCheck::NotChecked,
        last_source_check,
        default_timeout,
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
