//! The part of an image config the suite compares: what `docker run` and `docker inspect` take
//! from the image. `created`, `history`, `rootfs`, `author`, `architecture` and `os` are left out:
//! times and build histories differ by construction between two builders, and the layer digests
//! follow from the root filesystem, which the snapshot compares directly.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// Fields of the image config's `config` object that are compared, with Docker's names.
/// `Shell` is Docker's record of the SHELL instruction (the OCI spec has no such field; Docker
/// and BuildKit keep it in the image config).
pub const COMPARED_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

/// The compared fields present in a config, normalised. Absent fields are not in the map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSubset(pub BTreeMap<String, Value>);

impl ConfigSubset {
    /// From a whole image config (`{"config": {...}, "rootfs": ..., ...}`).
    pub fn of_image_config(image_config: &Value) -> Result<Self, String> {
        let config = match image_config.get("config") {
            None | Some(Value::Null) => return Ok(ConfigSubset::default()),
            Some(Value::Object(config)) => config,
            Some(other) => {
                return Err(format!(
                    "the image config's `config` is not an object: {other}"
                ));
            }
        };
        let mut fields = BTreeMap::new();
        for &name in COMPARED_FIELDS {
            if let Some(value) = config.get(name).and_then(|v| normalise_field(name, v)) {
                fields.insert(name.to_owned(), value);
            }
        }
        Ok(ConfigSubset(fields))
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }
}

/// A field's value as compared; `None` when it counts as absent.
pub fn normalise_field(name: &str, value: &Value) -> Option<Value> {
    let value = normalise(value)?;
    Some(if name == "Healthcheck" {
        normalise_healthcheck(value)
    } else {
        value
    })
}

/// Docker writes these fields with `omitempty`: `null`, `""`, `[]` and `{}` mean the same as an
/// absent field to every runtime, and builders differ in which they write.
fn normalise(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Object(o) if o.is_empty() => None,
        other => Some(other.clone()),
    }
}

/// Zero durations and retries mean "inherit the default" and Docker omits them.
fn normalise_healthcheck(value: Value) -> Value {
    match value {
        Value::Object(mut check) => {
            check.retain(|_, v| !(v.is_null() || v.as_u64() == Some(0)));
            Value::Object(check)
        }
        other => other,
    }
}

/// One config field on which two builds disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDifference {
    pub field: String,
    pub left: Option<Value>,
    pub right: Option<Value>,
}

impl fmt::Display for FieldDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or("absent".to_owned(), Value::to_string);
        write!(
            f,
            "config {}: {} | {}",
            self.field,
            show(&self.left),
            show(&self.right)
        )
    }
}

/// Fields whose values differ; fields for which `skip` holds are left out.
pub fn compare(
    left: &ConfigSubset,
    right: &ConfigSubset,
    skip: impl Fn(&str) -> bool,
) -> Vec<FieldDifference> {
    COMPARED_FIELDS
        .iter()
        .filter(|field| !skip(field))
        .filter_map(|&field| {
            let (l, r) = (left.get(field), right.get(field));
            (l != r).then(|| FieldDifference {
                field: field.to_owned(),
                left: l.cloned(),
                right: r.cloned(),
            })
        })
        .collect()
}
