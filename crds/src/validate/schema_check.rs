//! Test-only: evaluates an object against the generated CRD schema the way the apiserver does —
//! the OpenAPI constraints with a small checker, the CEL rules with kube-cel — and reports the
//! violations in [`Check`] form, so the tests can demand that [`crate::validate`] finds exactly the
//! same ones.

use std::collections::HashSet;

use kube_cel::{ErrorKind, Validator};
use serde_json::Value;

use crate::cel;
use crate::patterns;
use crate::validate::Check;

/// The `openAPIV3Schema` of the generated CRD, as JSON.
pub(crate) fn crd_schema() -> Value {
    let crd = crate::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the CRD has a schema");
    serde_json::to_value(schema).expect("the schema serializes")
}

/// Every violation of `object` against `schema`: OpenAPI constraints and CEL rules.
pub(crate) fn schema_violations(
    schema: &Value,
    object: &Value,
    old: Option<&Value>,
) -> Vec<(String, Check)> {
    let mut found = Vec::new();
    openapi(schema, object, "", &mut found);
    found.extend(cel_violations(schema, object, old));
    found.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    found
}

fn cel_violations(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<(String, Check)> {
    let Err(errors) = Validator::new().validate(schema, object, old) else {
        return Vec::new();
    };
    errors
        .iter()
        .map(|e| {
            assert!(
                matches!(
                    e.kind,
                    ErrorKind::ValidationFailure | ErrorKind::EvaluationError
                ),
                "rule {:?} at {:?} cannot be evaluated: {:?} {}",
                e.rule,
                e.field_path,
                e.kind,
                e.message
            );
            let rule = cel::ALL
                .iter()
                .find(|r| r.rule == e.rule)
                .unwrap_or_else(|| panic!("rule {:?} is not in cel::ALL", e.rule));
            (e.field_path.clone(), Check::Rule(rule.id))
        })
        .collect()
}

fn openapi(schema: &Value, value: &Value, path: &str, found: &mut Vec<(String, Check)>) {
    if value.is_null() {
        return;
    }
    let int = |key: &str| schema.get(key).and_then(Value::as_f64).map(|f| f as i64);
    let count = |key: &str| schema.get(key).and_then(Value::as_u64).map(|n| n as usize);
    match value {
        Value::String(s) => {
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                let name = patterns::ALL
                    .iter()
                    .find(|(_, p, _)| *p == pattern)
                    .map(|(name, _, _)| *name)
                    .unwrap_or_else(|| panic!("{path}: pattern {pattern} is not in patterns::ALL"));
                if !patterns::matches(
                    patterns::ALL.iter().find(|(n, _, _)| *n == name).unwrap().1,
                    s,
                ) {
                    found.push((path.to_owned(), Check::Pattern(name)));
                }
            }
            let n = s.chars().count();
            if let Some(min) = count("minLength").filter(|min| n < *min) {
                found.push((path.to_owned(), Check::MinLength(min)));
            }
            if let Some(max) = count("maxLength").filter(|max| n > *max) {
                found.push((path.to_owned(), Check::MaxLength(max)));
            }
        }
        Value::Number(n) => {
            let n = n.as_i64().expect("integers only");
            if let Some(min) = int("minimum").filter(|min| n < *min) {
                found.push((path.to_owned(), Check::Minimum(min)));
            }
            if let Some(max) = int("maximum").filter(|max| n > *max) {
                found.push((path.to_owned(), Check::Maximum(max)));
            }
        }
        Value::Array(items) => {
            if let Some(max) = count("maxItems").filter(|max| items.len() > *max) {
                found.push((path.to_owned(), Check::MaxItems(max)));
            }
            let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                let key = match list_type {
                    Some("set") => Some(item.to_string()),
                    Some("map") => Some(format!(
                        "{:?}",
                        keys.iter().map(|k| &item[k]).collect::<Vec<_>>()
                    )),
                    _ => None,
                };
                if key.is_some_and(|key| !seen.insert(key)) {
                    found.push((item_path.clone(), Check::Duplicate));
                }
                if let Some(item_schema) = schema.get("items") {
                    openapi(item_schema, item, &item_path, found);
                }
            }
        }
        Value::Object(map) => {
            if let Some(max) = count("maxProperties").filter(|max| map.len() > *max) {
                found.push((path.to_owned(), Check::MaxProperties(max)));
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, child) in map {
                if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    openapi(child_schema, child, &child_path, found);
                } else if let Some(additional) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    openapi(additional, child, &format!("{path}[{key}]"), found);
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}
