//! What the kubelet reads from and writes to the API besides pod status: Secret/ConfigMap data
//! for volumes and environment, and Events.

use std::collections::BTreeMap;

use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::Ctx;
use super::env::Lookup;
use super::volumes::{self, ObjectData};
use crate::apiserver::meta;

/// Secrets and ConfigMaps read straight from the API server's storage (the kubelet reads them
/// through the API; the data is the same).
pub(super) struct Objects<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) namespace: String,
}

impl Objects<'_> {
    fn get(&self, kind: &str) -> Option<(&'static str, &'static str)> {
        match kind {
            "secret" => Some(("secrets", "Secret")),
            "configmap" => Some(("configmaps", "ConfigMap")),
            _ => None,
        }
    }
}

impl ObjectData for Objects<'_> {
    fn data(&self, kind: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let (plural, _) = self.get(kind)?;
        let obj = self
            .ctx
            .server
            .get_object("", "v1", plural, &self.namespace, name)?;
        Some(volumes::object_data(&obj))
    }
}

impl Lookup for Objects<'_> {
    fn object(&self, kind: &str, name: &str) -> Option<BTreeMap<String, String>> {
        self.data(kind, name).map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect()
        })
    }
}

impl Ctx {
    /// Records a core/v1 Event about a pod, as the kubelet does (source component `kubelet`).
    pub async fn event(&self, pod: &Value, type_: &str, reason: &str, message: &str) {
        self.event_from("kubelet", pod, type_, reason, message)
            .await;
    }

    /// Records a core/v1 Event about a pod from `component` (`kubelet`, `default-scheduler`).
    pub async fn event_from(
        &self,
        component: &str,
        pod: &Value,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let now = meta::now();
        let ev = json!({
            "metadata": {"generateName": format!("{name}.")},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": name, "uid": pod["metadata"]["uid"]},
            "reason": reason, "message": message, "type": type_,
            "source": {"component": component, "host": self.config.node_name},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": component, "reportingInstance": self.config.node_name,
        });
        let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(self.client.clone(), ns);
        if let Ok(ev) = serde_json::from_value(ev)
            && let Err(e) = api.create(&PostParams::default(), &ev).await
        {
            tracing::debug!(error = %e, "kubelet event not recorded");
        }
    }
}
