//! Server-side printing: `meta.k8s.io/v1` `Table` responses.
//!
//! kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints what the
//! server returns ("Receiving resources as Tables" in the API concepts). Custom resources get NAME
//! plus their `additionalPrinterColumns` (or NAME and AGE when none are declared), each cell the
//! result of the column's JSONPath; built-ins get the columns kubectl users know (pods: NAME READY
//! STATUS RESTARTS AGE). Row objects are `PartialObjectMetadata` (`includeObject=Metadata`, the
//! default), or the full object with `includeObject=Object`.

use serde_json::{Value, json};

use super::meta;
use super::resources::{PrinterColumn, ResourceType, TableKind};

fn col(name: &str, type_: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

fn name_col() -> Value {
    col(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
        0,
    )
}

fn age_col() -> Value {
    col(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    )
}

pub fn column_definitions(rt: &ResourceType) -> Vec<Value> {
    match rt.table {
        TableKind::Pod => vec![
            name_col(),
            col(
                "Ready",
                "string",
                "",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ),
            col(
                "Status",
                "string",
                "",
                "The aggregate status of the containers in this pod.",
                0,
            ),
            col(
                "Restarts",
                "string",
                "",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                0,
            ),
            age_col(),
            col("IP", "string", "", "IP address allocated to the pod.", 1),
            col(
                "Node",
                "string",
                "",
                "Name of the node the pod is assigned to.",
                1,
            ),
        ],
        TableKind::Event => vec![
            col("Last Seen", "string", "", "Time of the last occurrence.", 0),
            col(
                "Type",
                "string",
                "",
                "Type of this event (Normal, Warning).",
                0,
            ),
            col("Reason", "string", "", "Why the action was taken.", 0),
            col("Object", "string", "", "The object this event is about.", 0),
            col(
                "Message",
                "string",
                "",
                "A human-readable description of the status of this operation.",
                0,
            ),
        ],
        TableKind::Namespace => vec![
            name_col(),
            col("Status", "string", "", "The status of the namespace", 0),
            age_col(),
        ],
        TableKind::Generic if rt.printer_columns.is_empty() => vec![name_col(), age_col()],
        TableKind::Generic => std::iter::once(name_col())
            .chain(
                rt.printer_columns
                    .iter()
                    .map(|c| col(&c.name, &c.type_, "", &c.description, c.priority)),
            )
            .collect(),
    }
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0].b`, `.a[*].b` (first match)
/// and `.a[?(@.k=="v")].b`.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let sel = &r[..end];
            rest = &r[end + 1..];
            let items = cur.as_array()?;
            cur = if sel == "*" {
                items.first()?
            } else if let Some(filter) = sel.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (field, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                items
                    .iter()
                    .find(|i| i.get(field.trim()).and_then(Value::as_str) == Some(want))?
            } else {
                items.get(sel.parse::<usize>().ok()?)?
            };
        } else {
            return None;
        }
    }
    Some(cur)
}

fn cell(c: &PrinterColumn, obj: &Value) -> Value {
    match json_path(obj, &c.json_path) {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if c.type_ == "date" => json!(meta::human_age(s)),
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => v.clone(),
        Some(other) => json!(other.to_string()),
    }
}

fn age(obj: &Value) -> Value {
    json!(
        obj["metadata"]["creationTimestamp"]
            .as_str()
            .map(meta::human_age)
            .unwrap_or_else(|| "<unknown>".into())
    )
}

fn pod_cells(pod: &Value) -> Vec<Value> {
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|s| s["ready"] == json!(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|s| s["restartCount"].as_i64())
        .sum();
    let mut reason = pod["status"]["reason"]
        .as_str()
        .or(pod["status"]["phase"].as_str())
        .unwrap_or("Unknown")
        .to_owned();
    for s in &statuses {
        if let Some(r) = s.pointer("/state/waiting/reason").and_then(Value::as_str) {
            reason = r.to_owned();
        } else if let Some(r) = s
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
        {
            reason = r.to_owned();
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    vec![
        json!(pod["metadata"]["name"]),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        age(pod),
        json!(pod["status"]["podIP"].as_str().unwrap_or("<none>")),
        json!(pod["spec"]["nodeName"].as_str().unwrap_or("<none>")),
    ]
}

fn event_cells(ev: &Value) -> Vec<Value> {
    let last = ev["series"]["lastObservedTime"]
        .as_str()
        .or(ev["lastTimestamp"].as_str())
        .or(ev["eventTime"].as_str())
        .or(ev["metadata"]["creationTimestamp"].as_str());
    let involved = &ev["involvedObject"];
    vec![
        json!(
            last.map(meta::human_age)
                .unwrap_or_else(|| "<unknown>".into())
        ),
        ev["type"].clone(),
        ev["reason"].clone(),
        json!(format!(
            "{}/{}",
            involved["kind"].as_str().unwrap_or_default().to_lowercase(),
            involved["name"].as_str().unwrap_or_default()
        )),
        json!(ev["message"].as_str().unwrap_or_default()),
    ]
}

/// One table row for an object.
pub fn row(rt: &ResourceType, obj: &Value, include_object: &str) -> Value {
    let cells: Vec<Value> = match rt.table {
        TableKind::Pod => pod_cells(obj),
        TableKind::Event => event_cells(obj),
        TableKind::Namespace => vec![
            obj["metadata"]["name"].clone(),
            json!(obj["status"]["phase"].as_str().unwrap_or("Active")),
            age(obj),
        ],
        TableKind::Generic if rt.printer_columns.is_empty() => {
            vec![obj["metadata"]["name"].clone(), age(obj)]
        }
        TableKind::Generic => std::iter::once(obj["metadata"]["name"].clone())
            .chain(rt.printer_columns.iter().map(|c| cell(c, obj)))
            .collect(),
    };
    let object = match include_object {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
        }
    };
    json!({"cells": cells, "object": object})
}

/// A `Table` of objects; `headers: false` omits the column definitions (later watch events).
pub fn table(
    rt: &ResourceType,
    objs: &[Value],
    list_meta: &Value,
    include_object: &str,
    headers: bool,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": if headers { column_definitions(rt) } else { Vec::new() },
        "rows": objs.iter().map(|o| row(rt, o, include_object)).collect::<Vec<_>>(),
    })
}

/// Whether the Accept header asks for a Table (kubectl's `as=Table;g=meta.k8s.io` media type).
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_subset() {
        let obj = json!({"status": {"phase": "Done", "conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}], "digests": ["d1"]}});
        assert_eq!(json_path(&obj, ".status.phase"), Some(&json!("Done")));
        assert_eq!(
            json_path(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(json_path(&obj, ".status.digests[0]"), Some(&json!("d1")));
        assert_eq!(json_path(&obj, ".status.missing"), None);
    }

    #[test]
    fn accept_negotiation() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
