//! Server-side apply and `managedFields` (pure functions).
//!
//! Follows "Server-Side Apply" (k8s.io docs) pragmatically:
//! - field sets are kept in the `FieldsV1` shape (`f:<field>`, `k:{<key json>}` for elements of
//!   associative lists, `v:<json>` for set elements, `.` for the element itself);
//! - an apply merges the applied configuration into the live object (maps recursively,
//!   associative lists by key, sets by value, atomic lists replaced), records the manager's set with
//!   `operation: Apply`, and removes fields the same manager applied before but no longer applies
//!   when no other manager owns them ("Merge strategy" / field removal);
//! - a field another manager owns with a different value is a conflict (409, reason Conflict,
//!   one `FieldManagerConflict` cause per field) unless `force=true`, which moves ownership;
//! - every other write records its changed fields under its manager with `operation: Update` and
//!   takes them away from other managers ("Field management").
//!
//! Not modelled: per-version field sets (all entries use the object's apiVersion), granular
//! ownership inside atomic maps (`x-kubernetes-map-type: atomic`), and `$retainKeys`-like unions.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::patch::merge_key;

/// How a list field merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Decides the list kind of `field` (for CRDs from `x-kubernetes-list-type`, for built-ins from
/// the k8s.io/api merge keys).
fn list_kind(field: &str, schema: Option<&Value>, sample: Option<&Value>) -> ListKind {
    if let Some(s) = schema
        && let Some(t) = s.get("x-kubernetes-list-type").and_then(Value::as_str)
    {
        return match t {
            "set" => ListKind::Set,
            "map" => ListKind::Map(
                s.get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => ListKind::Atomic,
        };
    }
    if schema.is_some() && field != "finalizers" && field != "ownerReferences" {
        return ListKind::Atomic;
    }
    match merge_key(field, sample) {
        Some("") => ListKind::Set,
        Some(k) => ListKind::Map(vec![k.to_owned()]),
        None => ListKind::Atomic,
    }
}

fn child_schema<'a>(schema: Option<&'a Value>, field: &str) -> Option<&'a Value> {
    let s = schema?;
    s.get("properties")
        .and_then(|p| p.get(field))
        .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
        .or(
            if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
                Some(&Value::Null)
            } else {
                None
            },
        )
}

fn key_of(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        m.insert(k.clone(), item.get(k).cloned().unwrap_or(Value::Null));
    }
    format!("k:{}", Value::Object(m))
}

/// Root fields that are identity, not content, and never appear in a field set.
const SKIPPED_ROOT: &[&str] = &["apiVersion", "kind"];
const SKIPPED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The `FieldsV1` set of every field present in `obj`.
pub fn field_set(obj: &Value, schema: Option<&Value>) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if SKIPPED_ROOT.contains(&k.as_str()) {
                continue;
            }
            if k == "metadata" {
                let mut meta = v.clone();
                if let Value::Object(mm) = &mut meta {
                    mm.retain(|k, _| !SKIPPED_META.contains(&k.as_str()));
                    if mm.is_empty() {
                        continue;
                    }
                }
                out.insert("f:metadata".into(), fields_of(&meta, schema.and(None)));
                continue;
            }
            out.insert(
                format!("f:{k}"),
                fields_of_field(k, v, child_schema(schema, k)),
            );
        }
    }
    Value::Object(out)
}

fn fields_of_field(field: &str, v: &Value, schema: Option<&Value>) -> Value {
    match v {
        Value::Array(items) => {
            let mut out = Map::new();
            match list_kind(field, schema.filter(|s| !s.is_null()), items.first()) {
                ListKind::Atomic => return json!({}),
                ListKind::Set => {
                    for item in items {
                        out.insert(format!("v:{item}"), json!({}));
                    }
                }
                ListKind::Map(keys) => {
                    let item_schema = schema.and_then(|s| s.get("items"));
                    for item in items {
                        let mut sub = fields_of(item, item_schema)
                            .as_object()
                            .cloned()
                            .unwrap_or_default();
                        sub.insert(".".into(), json!({}));
                        out.insert(key_of(item, &keys), Value::Object(sub));
                    }
                }
            }
            Value::Object(out)
        }
        other => fields_of(other, schema),
    }
}

fn fields_of(v: &Value, schema: Option<&Value>) -> Value {
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut out = Map::new();
            for (k, child) in m {
                out.insert(
                    format!("f:{k}"),
                    fields_of_field(k, child, child_schema(schema, k)),
                );
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

/// Leaf paths of a field set (a path ends at an empty node or at `.`).
pub fn leaves(set: &Value) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    collect(set, &mut Vec::new(), &mut out);
    out
}

fn collect(node: &Value, path: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    match node.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, child) in m {
                if k == "." {
                    out.insert(path.clone());
                    continue;
                }
                path.push(k.clone());
                collect(child, path, out);
                path.pop();
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

/// Rebuilds a field set from leaf paths.
pub fn from_leaves(paths: &BTreeSet<Vec<String>>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for (i, seg) in p.iter().enumerate() {
            let entry = cur.entry(seg.clone()).or_insert_with(|| json!({}));
            let last = i + 1 == p.len();
            let m = entry.as_object_mut().expect("field set nodes are objects");
            if last && seg.starts_with("k:") {
                m.insert(".".into(), json!({}));
            }
            cur = m;
        }
    }
    Value::Object(root)
}

/// The value at a field-set path inside an object.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path {
        cur = if let Some(f) = seg.strip_prefix("f:") {
            cur.get(f)?
        } else if let Some(k) = seg.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur.as_array()?.iter().find(|it| {
                key.iter()
                    .all(|(kk, kv)| it.get(kk).unwrap_or(&Value::Null) == kv)
            })?
        } else if let Some(v) = seg.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            cur.as_array()?.iter().find(|it| **it == want)?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// Removes the field at a path (no-op if absent).
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for seg in parent_path {
        let next = if let Some(f) = seg.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = seg.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut().find(|it| {
                    key.iter()
                        .all(|(kk, kv)| it.get(kk).unwrap_or(&Value::Null) == kv)
                })
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(key), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(k),
            cur.as_array_mut(),
        ) {
            a.retain(|it| {
                !key.iter()
                    .all(|(kk, kv)| it.get(kk).unwrap_or(&Value::Null) == kv)
            });
        }
    } else if let Some(v) = last.strip_prefix("v:")
        && let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(v), cur.as_array_mut())
    {
        a.retain(|it| *it != want);
    }
}

/// Merges an applied configuration into the live object.
pub fn merge_applied(live: &mut Value, applied: &Value, schema: Option<&Value>) {
    let (Value::Object(l), Value::Object(a)) = (&mut *live, applied) else {
        *live = applied.clone();
        return;
    };
    for (k, av) in a {
        let cs = child_schema(schema, k).filter(|s| !s.is_null());
        match (l.get_mut(k), av) {
            (Some(lv @ Value::Object(_)), Value::Object(_)) => merge_applied(lv, av, cs),
            (Some(Value::Array(litems)), Value::Array(aitems)) => {
                match list_kind(k, cs, aitems.first()) {
                    ListKind::Atomic => *litems = aitems.clone(),
                    ListKind::Set => {
                        for it in aitems {
                            if !litems.contains(it) {
                                litems.push(it.clone());
                            }
                        }
                    }
                    ListKind::Map(keys) => {
                        let item_schema = cs.and_then(|s| s.get("items"));
                        for it in aitems {
                            let id = key_of(it, &keys);
                            match litems.iter_mut().find(|l| key_of(l, &keys) == id) {
                                Some(existing) => merge_applied(existing, it, item_schema),
                                None => litems.push(it.clone()),
                            }
                        }
                    }
                }
            }
            _ => {
                l.insert(k.clone(), av.clone());
            }
        }
    }
}

/// Leaves of the fields that differ between two objects (for `operation: Update` entries).
pub fn changed_leaves(old: &Value, new: &Value, schema: Option<&Value>) -> BTreeSet<Vec<String>> {
    leaves(&field_set(new, schema))
        .into_iter()
        .filter(|p| value_at(old, p) != value_at(new, p))
        .collect()
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: BTreeSet<Vec<String>>,
}

pub fn read_managed(obj: &Value) -> Vec<ManagedEntry> {
    let Some(entries) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|e| ManagedEntry {
            manager: e["manager"].as_str().unwrap_or_default().to_owned(),
            operation: e["operation"].as_str().unwrap_or("Update").to_owned(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
            time: e["time"].as_str().unwrap_or_default().to_owned(),
            subresource: e["subresource"].as_str().unwrap_or_default().to_owned(),
            fields: leaves(e.get("fieldsV1").unwrap_or(&Value::Null)),
        })
        .collect()
}

pub fn write_managed(obj: &mut Value, entries: &[ManagedEntry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": from_leaves(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// A field owned by another manager with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// `.spec.replicas` form.
    pub field: String,
}

/// Renders a field-set path as the apiserver does in conflict messages (`.spec.containers[name="a"].image`).
pub fn render_path(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = seg.strip_prefix("v:") {
            s.push_str(&format!("[{v}]"));
        }
    }
    s
}

/// What an apply request asks for.
#[derive(Debug)]
pub struct ApplyRequest<'a> {
    pub manager: &'a str,
    pub force: bool,
    pub subresource: &'a str,
    pub api_version: &'a str,
    pub now: &'a str,
    pub schema: Option<&'a Value>,
}

/// Server-side apply of `applied` onto `live` (a clone of the stored object, or an empty object
/// for a create). On success `live` is the merged object with updated `managedFields`.
pub fn apply(
    live: &mut Value,
    applied: &Value,
    req: &ApplyRequest<'_>,
) -> Result<(), Vec<Conflict>> {
    let mut entries = read_managed(live);
    let new_fields = leaves(&field_set(applied, req.schema));
    let mut conflicts = Vec::new();
    for e in entries.iter_mut() {
        if e.manager == req.manager && e.operation == "Apply" || e.subresource != req.subresource {
            continue;
        }
        let contested: Vec<Vec<String>> = e
            .fields
            .intersection(&new_fields)
            .filter(|p| value_at(live, p) != value_at(applied, p))
            .cloned()
            .collect();
        if req.force {
            for p in &contested {
                e.fields.remove(p);
            }
        } else if e.manager != req.manager {
            conflicts.extend(contested.iter().map(|p| Conflict {
                manager: e.manager.clone(),
                field: render_path(p),
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let previous: BTreeSet<Vec<String>> = entries
        .iter()
        .find(|e| {
            e.manager == req.manager && e.operation == "Apply" && e.subresource == req.subresource
        })
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let owned_by_others: BTreeSet<Vec<String>> = entries
        .iter()
        .filter(|e| !(e.manager == req.manager && e.operation == "Apply"))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    for p in previous.difference(&new_fields) {
        if !owned_by_others.contains(p) {
            remove_at(live, p);
        }
    }
    merge_applied(live, applied, req.schema);
    // Fields the manager now applies leave any Update entry of the same manager.
    for e in entries
        .iter_mut()
        .filter(|e| e.manager == req.manager && e.operation != "Apply")
    {
        e.fields.retain(|p| !new_fields.contains(p));
    }
    entries.retain(|e| {
        !(e.manager == req.manager && e.operation == "Apply" && e.subresource == req.subresource)
    });
    entries.push(ManagedEntry {
        manager: req.manager.to_owned(),
        operation: "Apply".into(),
        api_version: req.api_version.to_owned(),
        time: req.now.to_owned(),
        subresource: req.subresource.to_owned(),
        fields: new_fields,
    });
    write_managed(live, &entries);
    Ok(())
}

/// Records a non-apply write: the changed fields move to `manager`'s `Update` entry.
pub fn record_update(
    old: &Value,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    api_version: &str,
    now: &str,
    schema: Option<&Value>,
) {
    let changed = changed_leaves(old, new, schema);
    let mut entries = read_managed(old);
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| !changed.contains(p) && value_at(new, p).is_some());
    }
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == subresource)
    {
        Some(e) => {
            e.fields.extend(changed);
            e.time = now.to_owned();
        }
        None => entries.push(ManagedEntry {
            manager: manager.to_owned(),
            operation: "Update".into(),
            api_version: api_version.to_owned(),
            time: now.to_owned(),
            subresource: subresource.to_owned(),
            fields: changed,
        }),
    }
    write_managed(new, &entries);
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
