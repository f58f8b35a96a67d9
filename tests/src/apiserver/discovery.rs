//! Discovery documents ("Discovering the Kubernetes API": the unaggregated `/api`, `/api/v1`,
//! `/apis`, `/apis/<group>`, `/apis/<group>/<version>` endpoints).
//!
//! The aggregated form (`Accept: ...;as=APIGroupDiscoveryList`) is not produced: the apiserver
//! answers with the media type it chose, and clients (kubectl, client-go) fall back to the
//! unaggregated endpoints when the response is a plain `APIGroupList` — the behaviour of clusters
//! before 1.26.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::resources::{ResourceType, group_order, subresources};

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Kubernetes version ordering (API conventions, "Version priority" in the CRD versioning doc):
/// GA > beta > alpha, higher numbers first within a class.
fn version_priority(v: &str) -> (u8, u64, u64) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major: u64 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let num = |s: &str| s.parse::<u64>().unwrap_or(0);
    if digits.is_empty() {
        (0, 0, 0)
    } else if tail.is_empty() {
        (3, major, 0)
    } else if let Some(b) = tail.strip_prefix("beta") {
        (2, major, num(b))
    } else if let Some(a) = tail.strip_prefix("alpha") {
        (1, major, num(a))
    } else {
        (0, 0, 0)
    }
}

fn versions_of(types: &[ResourceType], group: &str) -> Vec<String> {
    let mut vs: Vec<String> = types
        .iter()
        .filter(|t| t.group == group)
        .map(|t| t.version.clone())
        .collect();
    vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    vs.dedup();
    vs
}

fn group_doc(types: &[ResourceType], group: &str) -> Value {
    let vs = versions_of(types, group);
    let entries: Vec<Value> = vs
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": entries,
        "preferredVersion": entries.first().cloned().unwrap_or(Value::Null),
    })
}

/// `GET /api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis`.
pub fn group_list(types: &[ResourceType]) -> Value {
    let mut groups: Vec<String> = types
        .iter()
        .map(|t| t.group.clone())
        .filter(|g| !g.is_empty())
        .collect();
    groups.sort();
    groups.dedup();
    group_order(&mut groups);
    let docs: Vec<Value> = groups.iter().map(|g| group_doc(types, g)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": docs})
}

/// `GET /apis/<group>`; `None` if no such group.
pub fn group(types: &[ResourceType], group: &str) -> Option<Value> {
    if !types.iter().any(|t| t.group == group) {
        return None;
    }
    let mut doc = group_doc(types, group);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `GET /api/v1` or `/apis/<group>/<version>`; `None` if the group/version is not served.
pub fn resource_list(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let mut by_name: BTreeMap<String, Value> = BTreeMap::new();
    for t in types
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": VERBS,
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        by_name.insert(t.plural.clone(), r);
        for sub in subresources(t) {
            let verbs: &[&str] = if sub == "log" {
                &["get"]
            } else {
                &["get", "patch", "update"]
            };
            by_name.insert(
                format!("{}/{sub}", t.plural),
                json!({"name": format!("{}/{sub}", t.plural), "singularName": "", "namespaced": t.namespaced, "kind": if sub == "log" { "Pod" } else { t.kind.as_str() }, "verbs": verbs}),
            );
        }
    }
    if by_name.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": by_name.into_values().collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::builtins;

    #[test]
    fn version_order() {
        let mut vs = vec!["v1alpha1", "v2", "v1beta2", "v1", "v1beta1", "foo"];
        vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(vs, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn core_resource_list_has_subresources() {
        let doc = resource_list(&builtins(), "", "v1").unwrap();
        let names: Vec<&str> = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for want in [
            "pods",
            "pods/log",
            "pods/status",
            "secrets",
            "configmaps",
            "serviceaccounts",
            "events",
            "namespaces",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert_eq!(doc["groupVersion"], "v1");
    }

    #[test]
    fn group_list_includes_builtin_groups() {
        let doc = group_list(&builtins());
        let names: Vec<&str> = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "apps",
                "events.k8s.io",
                "networking.k8s.io",
                "rbac.authorization.k8s.io",
                "coordination.k8s.io",
                "apiextensions.k8s.io"
            ]
        );
        assert!(resource_list(&builtins(), "nope", "v1").is_none());
    }
}
