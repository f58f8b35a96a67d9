//! PATCH bodies: JSON merge patch, JSON patch and strategic merge patch (pure functions).
//!
//! - `application/merge-patch+json`: RFC 7386 (objects merge recursively, `null` deletes, any
//!   other value — arrays included — replaces).
//! - `application/json-patch+json`: RFC 6902 (`add`, `remove`, `replace`, `move`, `copy`, `test`;
//!   paths are RFC 6901 JSON pointers; any failing operation fails the whole patch).
//! - `application/strategic-merge-patch+json`: "Update API Objects in Place Using kubectl patch"
//!   (k8s.io docs) and the `patchStrategy`/`patchMergeKey` tags of k8s.io/api. The emulator knows
//!   the merge keys of the lists our components touch (see [`merge_key`]); every other list is
//!   replaced, as lists without a `patchStrategy` are. Directives supported: `$patch:
//!   replace|delete|merge`, `$retainKeys`, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`.
//!   Custom resources reject strategic merge patches with 415, as the apiserver does.

use serde_json::{Map, Value};

/// A failed patch: the apiserver answers these with 422 (invalid patch result) or 400/500; we use
/// the message it would include.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Decodes one RFC 6901 reference token.
fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<(String, String), PatchError> {
    if path.is_empty() {
        return Ok((String::new(), String::new()));
    }
    if !path.starts_with('/') {
        return Err(PatchError(format!(
            "invalid JSON pointer \"{path}\": must start with '/'"
        )));
    }
    let i = path.rfind('/').expect("starts with '/'");
    Ok((path[..i].to_owned(), unescape(&path[i + 1..])))
}

fn add_at(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    let target = doc.pointer_mut(&parent).ok_or_else(|| {
        PatchError(format!(
            "add operation does not apply: doc is missing path: \"{path}\""
        ))
    })?;
    match target {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) => {
            let idx = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| {
                        PatchError(format!(
                            "add operation does not apply: index out of bounds: \"{path}\""
                        ))
                    })?
            };
            a.insert(idx, value);
        }
        _ => {
            return Err(PatchError(format!(
                "add operation does not apply: parent of \"{path}\" is not a container"
            )));
        }
    }
    Ok(())
}

fn remove_at(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = split_pointer(path)?;
    let missing = || {
        PatchError(format!(
            "remove operation does not apply: doc is missing path: \"{path}\""
        ))
    };
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(missing)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

/// RFC 6902 JSON patch, applied atomically (on a copy).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), PatchError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| PatchError("json patch must be an array of operations".into()))?;
    let mut doc = target.clone();
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError("operation missing \"op\"".into()))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError(format!("{name} operation missing \"path\"")))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError(format!("{name} operation missing \"value\"")))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| PatchError(format!("{name} operation missing \"from\"")))
        };
        match name {
            "add" => add_at(&mut doc, path, value()?)?,
            "remove" => {
                remove_at(&mut doc, path)?;
            }
            "replace" => {
                if doc.pointer(path).is_none() {
                    return Err(PatchError(format!(
                        "replace operation does not apply: doc is missing key: {path}"
                    )));
                }
                *doc.pointer_mut(path).expect("checked") = value()?;
            }
            "move" => {
                let v = remove_at(&mut doc, from()?)?;
                add_at(&mut doc, path, v)?;
            }
            "copy" => {
                let v = doc.pointer(from()?).cloned().ok_or_else(|| {
                    PatchError(format!(
                        "copy operation does not apply: doc is missing from path: {path}"
                    ))
                })?;
                add_at(&mut doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(PatchError(format!(
                        "testing value {path} failed: test failed"
                    )));
                }
            }
            other => return Err(PatchError(format!("Unexpected kind: {other}"))),
        }
    }
    *target = doc;
    Ok(())
}

/// The `patchMergeKey` of a list field of the built-in types (k8s.io/api `patchStrategy:"merge"`
/// tags), for strategic merge patch and server-side apply. `finalizers` merges as a set of
/// strings (`""` key). Lists not named here are atomic (replaced as a whole).
pub fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "topologySpreadConstraints" => "topologyKey",
        // ContainerPort merges on containerPort; ServicePort on port.
        "ports" => {
            if sample.and_then(|s| s.get("containerPort")).is_some() {
                "containerPort"
            } else {
                "port"
            }
        }
        "finalizers" => "",
        _ => return None,
    })
}

const DIRECTIVE: &str = "$patch";

/// Strategic merge patch for built-in types.
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get(DIRECTIVE).and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = p.clone();
            replaced.remove(DIRECTIVE);
            *target = Value::Object(replaced);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(PatchError(format!("unknown patch type: {other}"))),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if k == DIRECTIVE || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(remove)) = (t.get_mut(field), v.as_array()) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(Value::Array(cur)), Value::Array(items)) => {
                match merge_key(k, items.first().or(cur.first())) {
                    Some("") => {
                        for item in items {
                            if !cur.contains(item) {
                                cur.push(item.clone());
                            }
                        }
                    }
                    Some(key) => merge_keyed_list(cur, items, key)?,
                    None => *cur = items.clone(),
                }
            }
            (Some(existing), Value::Object(_)) if existing.is_object() => {
                strategic_merge(existing, v)?;
                if existing.is_null() {
                    t.remove(k);
                }
            }
            (_, Value::Object(_)) => {
                let mut fresh = Value::Object(Map::new());
                strategic_merge(&mut fresh, v)?;
                if !fresh.is_null() {
                    t.insert(k.clone(), fresh);
                }
            }
            (_, Value::Array(items)) => {
                let kept: Vec<Value> = items
                    .iter()
                    .filter(|i| i.get(DIRECTIVE).is_none())
                    .cloned()
                    .collect();
                t.insert(k.clone(), Value::Array(kept));
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    for (k, wanted) in p {
        if let Some(field) = k.strip_prefix("$setElementOrder/")
            && let (Some(Value::Array(list)), Some(wanted)) = (t.get_mut(field), wanted.as_array())
        {
            reorder(list, wanted, merge_key(field, wanted.first()));
        }
    }
    if let Some(Value::Array(retain)) = p.get("$retainKeys") {
        t.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
    Ok(())
}

fn merge_keyed_list(cur: &mut Vec<Value>, items: &[Value], key: &str) -> Result<(), PatchError> {
    if items
        .iter()
        .any(|i| i.get(DIRECTIVE).and_then(Value::as_str) == Some("replace"))
    {
        *cur = items
            .iter()
            .filter(|i| i.get(DIRECTIVE).is_none())
            .cloned()
            .collect();
        return Ok(());
    }
    for item in items {
        let k = item.get(key).ok_or_else(|| {
            PatchError(format!(
                "map: {item} does not contain declared merge key: {key}"
            ))
        })?;
        let pos = cur.iter().position(|c| c.get(key) == Some(k));
        let delete = item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                cur.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut cur[i], item)?,
            (None, false) => {
                let mut fresh = Value::Object(Map::new());
                strategic_merge(&mut fresh, item)?;
                cur.push(fresh);
            }
        }
    }
    Ok(())
}

/// `$setElementOrder`: listed elements first in the given order, the rest after in their order.
fn reorder(list: &mut [Value], wanted: &[Value], key: Option<&str>) {
    let ident = |v: &Value| -> Value {
        match key {
            Some(k) if !k.is_empty() => v.get(k).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let order: Vec<Value> = wanted.iter().map(ident).collect();
    list.sort_by_key(|v| {
        order
            .iter()
            .position(|o| *o == ident(v))
            .unwrap_or(usize::MAX)
    });
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
