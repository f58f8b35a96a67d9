//! The `pods/binding` subresource.

use serde_json::{Value, json};

use super::controllers;
use super::error::{ApiError, Cause};
use super::meta;
use super::ops::key_for;
use super::resources::ResourceType;
use super::state::ApiServer;
use super::store::State;

/// `POST pods/<name>/binding` (what the scheduler calls): sets `spec.nodeName` once and the
/// `PodScheduled` condition ("Binding" in the Pod API reference). 409 if already bound.
pub fn bind(
    server: &ApiServer,
    st: &mut State,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    binding: &Value,
) -> Result<(), ApiError> {
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "Binding",
                "",
                name,
                vec![Cause::new(
                    "FieldValueRequired",
                    "target.name",
                    "Required value",
                )],
            )
        })?;
    let key = key_for(rt, ns, name);
    let mut pod = st
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
    {
        return Err(ApiError::conflict(
            "",
            "pods",
            name,
            &format!(
                "pod {name} is already assigned to node {:?}",
                pod["spec"]["nodeName"].as_str().unwrap_or_default()
            ),
        ));
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(ApiError::conflict(
            "",
            "pods",
            name,
            "pod is being deleted, cannot be assigned to a host",
        ));
    }
    pod["spec"]["nodeName"] = json!(node);
    let mut conditions: Vec<Value> = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    conditions.retain(|c| c["type"] != "PodScheduled");
    conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": meta::now()}));
    pod["status"]["conditions"] = json!(conditions);
    st.put(key, pod);
    controllers::run(server, st);
    Ok(())
}
