//! Structural-schema handling for custom resources: pruning, defaulting and validation.
//!
//! Follows "Extend the Kubernetes API with CustomResourceDefinitions" (k8s.io docs) sections
//! "Specifying a structural schema", "Field pruning", "Defaulting" and "Validation", and the order
//! the apiextensions-apiserver applies them on every write: drop `null`s of non-nullable fields,
//! prune unknown fields, apply `default`s, then validate. Reads of stored objects are also
//! defaulted ("Defaulting happens on the object ... when reading from etcd").
//!
//! Supported keywords: `type`, `properties`, `additionalProperties` (schema form), `items`,
//! `required`, `enum`, `pattern`, `minimum`/`maximum` (+ `exclusiveMinimum`/`exclusiveMaximum`),
//! `minLength`/`maxLength`, `minItems`/`maxItems`, `minProperties`/`maxProperties`, `nullable`,
//! `default`, `format` (`int32`, `int64`, `date-time` checked; others accepted),
//! `allOf`/`anyOf`/`oneOf`/`not` (validation only, as structural schemas allow),
//! `x-kubernetes-preserve-unknown-fields`, `x-kubernetes-int-or-string`,
//! `x-kubernetes-embedded-resource`, `x-kubernetes-list-type`/`-list-map-keys` (uniqueness of set
//! and map lists), and `x-kubernetes-validations` CEL rules ("Validation rules" in the CRD docs;
//! `self`, `oldSelf` transition rules, `message`, the Kubernetes CEL libraries) through kube-cel —
//! evaluated only when the structural validation passed.

use serde_json::{Map, Value};

use super::error::Cause;

/// A CRD version's `openAPIV3Schema`, kept as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema(pub Value);

fn preserves_unknown(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn embedded(s: &Value) -> bool {
    s.get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        == Some(true)
}

fn nullable(s: &Value) -> bool {
    s.get("nullable").and_then(Value::as_bool) == Some(true)
}

/// Fields of `ObjectMeta` kept at the root and inside embedded resources (pruning keeps
/// `apiVersion`, `kind` and `metadata` there and prunes `metadata` to ObjectMeta's fields).
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

impl Schema {
    /// Pruning + null-dropping + defaulting of a whole object (root has apiVersion/kind/metadata).
    /// Returns the JSON paths of pruned fields (the apiserver reports them as warnings, or as
    /// errors with `fieldValidation=Strict`).
    pub fn normalize(&self, obj: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        prune(&self.0, obj, "", true, &mut pruned);
        apply_defaults(&self.0, obj);
        pruned
    }

    /// Pruning and null-dropping only: server-side apply computes the applier's field set from
    /// the applied configuration before defaulting (defaulted fields belong to no manager).
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        prune(&self.0, obj, "", true, &mut pruned);
        pruned
    }

    /// Evaluates the `x-kubernetes-validations` rules; `old` is the stored object on updates
    /// (transition rules using `oldSelf` run only then, as in the apiserver).
    pub fn validate_cel(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        match kube_cel::validate(&self.0, obj, old) {
            Ok(()) => Vec::new(),
            Err(errors) => errors
                .into_vec()
                .into_iter()
                .map(|e| {
                    let at = obj_at(obj, &e.field_path);
                    let shown = match at {
                        Some(Value::Object(_)) | None => "\"object\"".to_owned(),
                        Some(Value::Array(_)) => "\"array\"".to_owned(),
                        Some(v) => show(v),
                    };
                    Cause::new(
                        e.reason.as_deref().unwrap_or("FieldValueInvalid"),
                        &e.field_path,
                        format!("Invalid value: {shown}: {}", e.message),
                    )
                })
                .collect(),
        }
    }

    /// Validates a (normalized) object; root `metadata` is validated by the store, not here.
    pub fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate(&self.0, obj, "", true, &mut causes);
        causes
    }
}

/// The value at a dotted path (`spec.source`), for error messages.
fn obj_at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(obj, |cur, p| cur.get(p))
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Drops unknown fields and `null`s of non-nullable fields, recursively.
fn prune(s: &Value, v: &mut Value, path: &str, is_root: bool, pruned: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let meta_like = is_root || embedded(s);
            let props = s.get("properties").and_then(Value::as_object);
            let addl = s.get("additionalProperties").filter(|a| a.is_object());
            let keep_unknown =
                preserves_unknown(s) || s.get("additionalProperties") == Some(&Value::Bool(true));
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_path = join(path, &key);
                if meta_like && (key == "apiVersion" || key == "kind") {
                    continue;
                }
                if meta_like && key == "metadata" {
                    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
                        meta.retain(|k, _| {
                            let keep = OBJECT_META_FIELDS.contains(&k.as_str());
                            if !keep {
                                pruned.push(format!("{child_path}.{k}"));
                            }
                            keep
                        });
                    }
                    continue;
                }
                let child_schema = props.and_then(|p| p.get(&key)).or(addl);
                match child_schema {
                    Some(cs) => {
                        if map.get(&key) == Some(&Value::Null) && !nullable(cs) {
                            map.remove(&key);
                            continue;
                        }
                        if let Some(child) = map.get_mut(&key) {
                            prune(cs, child, &child_path, false, pruned);
                        }
                    }
                    None if keep_unknown => {}
                    None => {
                        map.remove(&key);
                        pruned.push(child_path);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(is, item, &format!("{path}[{i}]"), false, pruned);
                }
            }
        }
        _ => {}
    }
}

/// Applies `default`s for absent properties, recursively (defaults are themselves pruned and
/// defaulted, as the apiserver requires defaults to be pruned already).
fn apply_defaults(s: &Value, v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (key, cs) in props {
                    if !map.contains_key(key)
                        && let Some(d) = cs.get("default")
                    {
                        map.insert(key.clone(), d.clone());
                    }
                    if let Some(child) = map.get_mut(key) {
                        apply_defaults(cs, child);
                    }
                }
            }
            if let Some(addl) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for child in map.values_mut() {
                    apply_defaults(addl, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for item in items {
                    apply_defaults(is, item);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(expected: &str, v: &Value) -> bool {
    let actual = type_name(v);
    actual == expected || (expected == "number" && actual == "integer")
}

/// Go's `%v`-ish rendering of a value inside `Invalid value: ...` messages.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

fn invalid(causes: &mut Vec<Cause>, path: &str, v: &Value, detail: &str) {
    causes.push(Cause::new(
        "FieldValueInvalid",
        path,
        format!("Invalid value: {}: {detail}", show(v)),
    ));
}

fn validate(s: &Value, v: &Value, path: &str, is_root: bool, causes: &mut Vec<Cause>) {
    if v.is_null() {
        if !nullable(s) && s.get("type").is_some() {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                    s["type"].as_str().unwrap_or("object")
                ),
            ));
        }
        return;
    }
    let int_or_string = s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if int_or_string {
        if !(v.is_string() || type_name(v) == "integer") {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body must be of type integer-or-string",
                    show(v)
                ),
            ));
            return;
        }
    } else if let Some(t) = s.get("type").and_then(Value::as_str)
        && !type_ok(t, v)
    {
        causes.push(Cause::new(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: \"{}\": {path} in body must be of type {t}: \"{}\"",
                type_name(v),
                type_name(v)
            ),
        ));
        return;
    }
    validate_scalar(s, v, path, causes);
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(subs) = s.get(key).and_then(Value::as_array) {
            let passing = subs
                .iter()
                .filter(|sub| {
                    let mut c = Vec::new();
                    validate(sub, v, path, false, &mut c);
                    c.is_empty()
                })
                .count();
            let ok = match key {
                "allOf" => passing == subs.len(),
                "anyOf" => passing >= 1,
                _ => passing == 1,
            };
            if !ok {
                invalid(
                    causes,
                    path,
                    v,
                    &format!("{path} in body must validate {key}"),
                );
            }
        }
    }
    if let Some(not) = s.get("not") {
        let mut c = Vec::new();
        validate(not, v, path, false, &mut c);
        if c.is_empty() {
            invalid(
                causes,
                path,
                v,
                &format!("{path} in body must not validate the schema (not)"),
            );
        }
    }
    match v {
        Value::Object(map) => validate_object(s, map, path, is_root, causes),
        Value::Array(items) => validate_array(s, items, path, causes),
        _ => {}
    }
}

fn validate_scalar(s: &Value, v: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(show).collect();
        causes.push(Cause::new(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                show(v),
                list.join(", ")
            ),
        ));
    }
    if let Some(text) = v.as_str() {
        let len = text.chars().count() as u64;
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            causes.push(Cause::new(
                "FieldValueTooLong",
                path,
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            invalid(
                causes,
                path,
                v,
                &format!("{path} in body should be at least {min} chars long"),
            );
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            match regex::Regex::new(p) {
                Ok(re) if !re.is_match(text) => invalid(
                    causes,
                    path,
                    v,
                    &format!("{path} in body should match '{p}'"),
                ),
                Ok(_) => {}
                Err(e) => invalid(
                    causes,
                    path,
                    v,
                    &format!("schema pattern '{p}' does not compile: {e}"),
                ),
            }
        }
        if s.get("format").and_then(Value::as_str) == Some("date-time")
            && text.parse::<k8s_openapi::jiff::Timestamp>().is_err()
        {
            invalid(
                causes,
                path,
                v,
                &format!("{path} in body must be of type date-time: {}", show(v)),
            );
        }
    }
    if let Some(n) = v.as_f64() {
        let excl_min = s.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
        let excl_max = s.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && (n < min || (excl_min && n == min))
        {
            let rel = if excl_min {
                "greater than"
            } else {
                "greater than or equal to"
            };
            invalid(
                causes,
                path,
                v,
                &format!("{path} in body should be {rel} {min}"),
            );
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && (n > max || (excl_max && n == max))
        {
            let rel = if excl_max {
                "less than"
            } else {
                "less than or equal to"
            };
            invalid(
                causes,
                path,
                v,
                &format!("{path} in body should be {rel} {max}"),
            );
        }
        let fmt = s.get("format").and_then(Value::as_str);
        if fmt == Some("int32") && v.as_i64().is_some_and(|i| i32::try_from(i).is_err()) {
            invalid(
                causes,
                path,
                v,
                &format!("{path} in body must be of type int32"),
            );
        }
    }
}

fn validate_object(
    s: &Value,
    map: &Map<String, Value>,
    path: &str,
    is_root: bool,
    causes: &mut Vec<Cause>,
) {
    if let Some(required) = s.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    &join(path, r),
                    "Required value",
                ));
            }
        }
    }
    let count = map.len() as u64;
    if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        causes.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!("Too many: {count}: must have at most {max} items"),
        ));
    }
    if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {count}: {path} in body should have at least {min} properties"),
        ));
    }
    let props = s.get("properties").and_then(Value::as_object);
    let addl = s.get("additionalProperties").filter(|a| a.is_object());
    for (key, child) in map {
        if (is_root || embedded(s)) && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(cs) = props.and_then(|p| p.get(key)).or(addl) {
            validate(cs, child, &join(path, key), false, causes);
        }
    }
    if embedded(s) {
        for k in ["apiVersion", "kind"] {
            if map.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    &join(path, k),
                    "Required value: must not be empty",
                ));
            }
        }
    }
}

fn validate_array(s: &Value, items: &[Value], path: &str, causes: &mut Vec<Cause>) {
    let n = items.len() as u64;
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
        && n > max
    {
        causes.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!("Too many: {n}: must have at most {max} items"),
        ));
    }
    if let Some(min) = s.get("minItems").and_then(Value::as_u64)
        && n < min
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {n}: {path} in body should have at least {min} items"),
        ));
    }
    if let Some(is) = s.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate(is, item, &format!("{path}[{i}]"), false, causes);
        }
    }
    // x-kubernetes-list-type: set / map require unique elements / keys.
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    causes.push(Cause::new(
                        "FieldValueDuplicate",
                        &format!("{path}[{i}]"),
                        format!("Duplicate value: {}", show(item)),
                    ));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key_of = |item: &Value| {
                keys.iter()
                    .map(|k| item.get(*k).cloned())
                    .collect::<Vec<_>>()
            };
            for (i, item) in items.iter().enumerate() {
                let k = key_of(item);
                if items[..i].iter().any(|o| key_of(o) == k) {
                    causes.push(Cause::new(
                        "FieldValueDuplicate",
                        &format!("{path}[{i}]"),
                        "Duplicate value".to_owned(),
                    ));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
