//! `docs/api.md`: the API reference, generated from the CRD's OpenAPI schema.
//!
//! Generating it from the schema (not from the Rust source) means the reference shows exactly
//! what `kubectl explain` and the apiserver see: descriptions, defaults, enums, patterns (in
//! words, from [`crate::patterns::describe`]), ranges and CEL rules.

use std::fmt::Write;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::patterns;

/// The command that regenerates `docs/api.md`.
pub const REGENERATE: &str = "cargo run -p stratum-crds --bin apidoc > docs/api.md";

/// Fields whose type is a Kubernetes type, linked instead of expanded.
const EXTERNAL: &[(&str, &str, &str)] = &[
    (
        "spec.resources",
        "core/v1 ResourceRequirements",
        "https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#resources",
    ),
    (
        "spec.tolerations",
        "core/v1 Toleration",
        "https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#scheduling",
    ),
    (
        "status.conditions",
        "meta/v1 Condition",
        "https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/",
    ),
];

/// The markdown reference for `crd`.
pub fn render(crd: &CustomResourceDefinition) -> String {
    let mut out = String::new();
    let names = &crd.spec.names;
    let Some(version) = crd.spec.versions.first() else {
        return out;
    };
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);

    let _ = writeln!(out, "# {} API reference\n", names.kind);
    let _ = writeln!(
        out,
        "<!-- Generated from the CRD by `{REGENERATE}`. Do not edit. -->\n"
    );
    let _ = writeln!(
        out,
        "`{}/{}`, kind `{}`, {}, short name{} {}, categories {}.\n",
        crd.spec.group,
        version.name,
        names.kind,
        crd.spec.scope.to_lowercase(),
        if names.short_names.as_ref().is_some_and(|s| s.len() > 1) {
            "s"
        } else {
            ""
        },
        code_list(names.short_names.as_deref().unwrap_or_default()),
        code_list(names.categories.as_deref().unwrap_or_default()),
    );
    if let Some(text) = schema.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{}\n", escape(&one_line(text)));
    }

    if let Some(columns) = &version.additional_printer_columns {
        out.push_str("## `kubectl get` columns\n\n| Column | From | Shown |\n|---|---|---|\n");
        for c in columns {
            let shown = if c.priority.unwrap_or(0) > 0 {
                "with `-o wide`"
            } else {
                "always"
            };
            let _ = writeln!(out, "| {} | `{}` | {shown} |", c.name, c.json_path);
        }
        out.push('\n');
    }

    let object_rules = rules(&schema);
    if !object_rules.is_empty() {
        let _ = writeln!(out, "## Object rules\n\n{}\n", object_rules.join(" "));
    }

    for top in ["spec", "status"] {
        if let Some(node) = schema.get("properties").and_then(|p| p.get(top)) {
            object_sections(&mut out, top, node);
        }
    }
    out
}

/// A section for the object at `path`, then one for each object below it.
fn object_sections(out: &mut String, path: &str, node: &Value) {
    let _ = writeln!(out, "## `{path}`\n");
    if let Some(text) = node.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{}\n", escape(&one_line(text)));
    }
    let node_rules = rules(node);
    if !node_rules.is_empty() {
        let _ = writeln!(out, "{}\n", node_rules.join(" "));
    }
    let Some(properties) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("| Field | Type | Description |\n|---|---|---|\n");
    let mut children = Vec::new();
    for (name, field) in properties {
        let field_path = format!("{path}.{name}");
        let external = EXTERNAL.iter().find(|(p, _, _)| *p == field_path);
        let mut kind = type_name(field);
        if let Some((_, title, url)) = external {
            kind = format!(
                "[{title}]({url}){}",
                if kind.starts_with("[]") { " list" } else { "" }
            );
        } else if let Some(child) = object_child(field) {
            children.push((field_path.clone(), child));
            let list = if kind.starts_with("[]") { " list" } else { "" };
            kind = format!("[object](#{}){list}", anchor(&field_path));
        }
        if required.contains(&name.as_str()) {
            kind.push_str(", required");
        }
        let description = field_description(field);
        let _ = writeln!(out, "| `{name}` | {kind} | {description} |");
    }
    out.push('\n');
    for (child_path, child) in children {
        object_sections(out, &child_path, child);
    }
}

/// The object schema to document for a field: the field itself, or its list items.
fn object_child(field: &Value) -> Option<&Value> {
    let node = match field.get("type").and_then(Value::as_str) {
        Some("array") => field.get("items")?,
        _ => field,
    };
    node.get("properties").is_some().then_some(node)
}

fn type_name(field: &Value) -> String {
    let base = |node: &Value| -> String {
        let ty = node.get("type").and_then(Value::as_str).unwrap_or("any");
        match (ty, node.get("format").and_then(Value::as_str)) {
            ("object", _) if node.get("additionalProperties").is_some() => {
                let value = node["additionalProperties"]
                    .get("type")
                    .and_then(Value::as_str);
                format!("map[string]{}", value.unwrap_or("any"))
            }
            ("integer", Some(format)) => format!("integer ({format})"),
            ("string", Some("date-time")) => "timestamp".to_owned(),
            (ty, _) => ty.to_owned(),
        }
    };
    match field.get("type").and_then(Value::as_str) {
        Some("array") => format!("[]{}", field.get("items").map_or("any".to_owned(), base)),
        _ => base(field),
    }
}

fn field_description(field: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(text) = field.get("description").and_then(Value::as_str) {
        parts.push(cell(text));
    }
    let mut facts = Vec::new();
    if let Some(default) = field.get("default") {
        facts.push(format!("Default `{}`.", scalar(default)));
    }
    if let Some(values) = field.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", scalar(v))).collect();
        facts.push(format!("One of {}.", values.join(", ")));
    }
    let items = field.get("items");
    for node in std::iter::once(field).chain(items) {
        if let Some(pattern) = node.get("pattern").and_then(Value::as_str) {
            let what = patterns::describe(pattern);
            let whose = if std::ptr::eq(node, field) {
                ""
            } else {
                "Each entry: "
            };
            facts.push(format!("{whose}{}.", capitalise(&cell(what))));
        }
    }
    let limit = |key: &str, text: &str| {
        field
            .get(key)
            .and_then(Value::as_f64)
            .map(|n| format!("{text} {}.", n as i64))
    };
    facts.extend(limit("minimum", "Minimum"));
    facts.extend(limit("maximum", "Maximum"));
    match field.get("minLength").and_then(Value::as_u64) {
        Some(1) => facts.push("Not empty.".to_owned()),
        Some(n) => facts.push(format!("At least {n} characters.")),
        None => {}
    }
    facts.extend(limit("maxLength", "At most").map(|s| s.replace('.', " characters.")));
    facts.extend(limit("maxItems", "At most").map(|s| s.replace('.', " entries.")));
    facts.extend(limit("maxProperties", "At most").map(|s| s.replace('.', " entries.")));
    if let Some(list_type) = field.get("x-kubernetes-list-type").and_then(Value::as_str) {
        match list_type {
            "set" => facts.push("Entries are unique.".to_owned()),
            "map" => {
                let keys: Vec<String> = field["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|k| k.iter().map(|k| format!("`{}`", scalar(k))).collect())
                    .unwrap_or_default();
                facts.push(format!("Entries are unique by {}.", keys.join(", ")));
            }
            _ => {}
        }
    }
    facts.extend(rules(field));
    if !facts.is_empty() {
        parts.push(facts.join(" "));
    }
    parts.join("<br>")
}

/// The messages of a node's CEL rules, as sentences.
fn rules(node: &Value) -> Vec<String> {
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| r.get("message").and_then(Value::as_str))
                .map(|m| format!("Rule: {}.", cell(m)))
                .collect()
        })
        .unwrap_or_default()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "\"\"".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn code_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    items.join(", ")
}

/// GitHub's heading anchor for `` `path` ``.
fn anchor(path: &str) -> String {
    path.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Paragraph text on one line (rustdoc wraps at 100 columns; markdown re-wraps anyway).
fn one_line(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Text for a table cell: one line, paragraphs as `<br>`, pipes and angle brackets escaped
/// (`<hex>` would otherwise vanish as an HTML tag).
fn cell(text: &str) -> String {
    escape(&one_line(text)).replace("\n\n", "<br>")
}

/// Escapes `|` everywhere (GitHub splits table cells on it even inside code) and `<`, `>` outside
/// code spans (inside them they are already literal).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '|' => out.push_str("\\|"),
            '<' if !in_code => out.push_str("&lt;"),
            '>' if !in_code => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_covers_every_field_and_rule() {
        let doc = render(&crate::crd());
        for needle in [
            "# ImageBuild API reference",
            "`stratum.dev/v1alpha1`, kind `ImageBuild`, namespaced, short name `ib`",
            "| Digest | `.status.shortDigest` | always |",
            "## `spec.source.git`",
            "| `timeout` | string | How long one build attempt may run",
            "Default `2`.",
            "One of `oci`, `docker`.",
            "A git URL (https://, http://, git://, ssh:// or user@host:path) without credentials",
            "Rule: set exactly one of source.git, source.url or source.inline.",
            "[core/v1 Toleration](https://kubernetes.io/",
            "## `status.history`",
            "| `imageID` | string |",
            "Entries are unique by `name`.",
        ] {
            assert!(doc.contains(needle), "docs/api.md lacks {needle:?}");
        }
        for rule in crate::cel::ALL {
            assert!(
                doc.contains(rule.message),
                "docs/api.md lacks rule {}",
                rule.id
            );
        }
        assert!(
            !doc.contains("## `spec.resources"),
            "Kubernetes types are linked, not expanded"
        );
    }

    #[test]
    fn escapes_html_outside_code_only() {
        assert_eq!(escape("a <b> `c<d>` e|f"), "a &lt;b&gt; `c<d>` e\\|f");
    }

    #[test]
    fn anchors_follow_github() {
        assert_eq!(anchor("spec.source.git"), "specsourcegit");
        assert_eq!(anchor("status.omittedSteps"), "statusomittedsteps");
    }
}
