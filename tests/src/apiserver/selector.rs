//! Label and field selectors, as `labelSelector=` / `fieldSelector=` query parameters.
//!
//! Label syntax follows "Labels and Selectors" (k8s.io docs): equality-based (`a=b`, `a==b`,
//! `a!=b`) and set-based (`a in (x,y)`, `a notin (x)`, `a`, `!a`) requirements joined by commas,
//! all of which must match. Field selectors ("Field Selectors" doc) support `=`, `==`, `!=` on the
//! field labels a resource declares; an unknown field label is a 400 BadRequest
//! (`field label not supported: x`), as the apiserver answers.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// A parsed field selector: (field, equals?, value) terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// Splits on commas that are not inside `( )`.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for raw in split_top(s) {
            let term = raw.trim();
            let req = if let Some(key) = term.strip_prefix('!') {
                Requirement {
                    key: key.trim().into(),
                    op: Op::DoesNotExist,
                    values: vec![],
                }
            } else if let Some((k, rest)) = split_set_op(term) {
                let (op, list) = rest;
                let inner = list
                    .trim()
                    .strip_prefix('(')
                    .and_then(|l| l.strip_suffix(')'))
                    .ok_or_else(|| {
                        format!("unable to parse requirement: {term}: expected ( values )")
                    })?;
                let values = inner
                    .split(',')
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .collect();
                Requirement {
                    key: k.into(),
                    op,
                    values,
                }
            } else if let Some((k, v)) = term.split_once("!=") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::NotEq,
                    values: vec![v.trim().into()],
                }
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement {
                    key: k.trim().into(),
                    op: Op::Eq,
                    values: vec![v.trim().into()],
                }
            } else {
                Requirement {
                    key: term.into(),
                    op: Op::Exists,
                    values: vec![],
                }
            };
            if !valid_key(&req.key) {
                return Err(format!(
                    "unable to parse requirement: invalid label key \"{}\"",
                    req.key
                ));
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| {
            let v = labels.get(&r.key);
            match r.op {
                Op::Eq => v == Some(&r.values[0]),
                Op::NotEq => v != Some(&r.values[0]),
                Op::In => v.is_some_and(|v| r.values.contains(v)),
                Op::NotIn => v.is_none_or(|v| !r.values.contains(v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
            }
        })
    }

    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(&labels_of(obj))
    }
}

/// `key in (...)` / `key notin (...)`: returns (key, (op, "(...)")).
fn split_set_op(term: &str) -> Option<(&str, (Op, &str))> {
    for (word, op) in [(" notin ", Op::NotIn), (" in ", Op::In)] {
        if let Some(i) = term.find(word) {
            return Some((term[..i].trim(), (op, &term[i + word.len()..])));
        }
    }
    None
}

pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl FieldSelector {
    /// Parses and checks each field against `allowed` (plus `metadata.name`/`metadata.namespace`,
    /// which every resource supports).
    pub fn parse(s: &str, allowed: &[String]) -> Result<Self, String> {
        let mut terms = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = raw.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = raw.split_once("==").or_else(|| raw.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{raw}'; can't understand '{raw}'"
                ));
            };
            let field = field.trim();
            if !(field == "metadata.name"
                || field == "metadata.namespace"
                || allowed.iter().any(|a| a == field))
            {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_owned(), eq, value.trim().to_owned()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, want)| {
            let got = field_value(obj, field);
            (got == *want) == *eq
        })
    }

    /// The `metadata.name=` value if the selector pins one (lets a watch on one object filter fast).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A field's value as the apiserver renders it for matching: strings as is, booleans and numbers
/// in Go's `%v` form, absent fields as "".
pub fn field_value(obj: &Value, field: &str) -> String {
    let mut cur = obj;
    for part in field.split('.') {
        match cur.get(part) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_table() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=db", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("env notin (prod)", true),
            ("tier", true),
            ("!tier", false),
            ("!env", true),
            ("app=web,tier in (front,back),!env", true),
            ("app=web,env", false),
        ];
        for (sel, want) in cases {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&l),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn label_selector_rejects_garbage() {
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn field_selector_table() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let allowed = vec!["status.phase".to_string(), "spec.nodeName".to_string()];
        let cases = [
            ("metadata.name=p", true),
            ("metadata.name!=p", false),
            ("metadata.namespace==ns,status.phase=Running", true),
            ("status.phase!=Succeeded", true),
            ("spec.nodeName=", false),
            ("spec.nodeName=n1", true),
        ];
        for (sel, want) in cases {
            assert_eq!(
                FieldSelector::parse(sel, &allowed).unwrap().matches(&pod),
                want,
                "{sel}"
            );
        }
        let err = FieldSelector::parse("spec.bogus=1", &allowed).unwrap_err();
        assert_eq!(err, "field label not supported: spec.bogus");
    }
}
