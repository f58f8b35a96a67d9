//! `RUN --mount=<csv>` following BuildKit's `instructions/commands_runmount.go`.
//!
//! Two passes, as BuildKit does them: at parse time only the CSV shape and `from` are checked
//! (`from` is never expanded — it names a stage or image before any variable is known); when the
//! stage is planned every other value is expanded and the fields are applied *in order*, so
//! `required,type=secret` fails like it does in Docker (`required` is seen while the type is
//! still `bind`).

use serde::Serialize;

use super::suggest;

/// A `--mount` value as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountSpec {
    /// The flag value, unexpanded.
    pub raw: String,
    /// `(key, value)` fields in order; `value` is `None` for bare `ro`/`rw`/`required`.
    pub fields: Vec<(String, Option<String>)>,
    /// The `from=` stage or image, if any.
    pub from: Option<String>,
}

/// The mount types BuildKit supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    fn name(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Cache => "cache",
            Self::Tmpfs => "tmpfs",
            Self::Secret => "secret",
            Self::Ssh => "ssh",
        }
    }
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

/// A mount after expansion, ready for the executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountType,
    pub from: Option<String>,
    pub source: Option<String>,
    /// As written (after expansion); a relative target is relative to the WORKDIR.
    pub target: Option<String>,
    pub readonly: bool,
    pub required: bool,
    /// `id=`: the cache ID, or the secret / SSH agent ID.
    pub id: Option<String>,
    pub sharing: Option<CacheSharing>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// tmpfs `size=` in bytes.
    pub size: Option<u64>,
    /// secret `env=`: also (or only) expose the secret as this environment variable.
    pub env: Option<String>,
}

/// Splits a CSV record the way Go's `encoding/csv` does (no lazy quotes): fields separated by
/// commas, a field may be double-quoted with `""` standing for a quote.
fn csv_fields(text: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("extraneous or missing \" in quoted-field".to_owned()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(_) => return Err("extraneous or missing \" in quoted-field".to_owned()),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("bare \" in non-quoted-field".to_owned()),
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}

/// Parse-time check of one `--mount` value.
pub(crate) fn parse_spec(raw: &str) -> Result<MountSpec, String> {
    let fields = csv_fields(raw).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    let mut spec = MountSpec {
        raw: raw.to_owned(),
        fields: Vec::with_capacity(fields.len()),
        from: None,
    };
    for field in fields {
        match field.split_once('=') {
            Some((key, value)) => {
                let key = key.to_ascii_lowercase();
                if key == "from" {
                    // BuildKit allows a trailing `$` only: it cannot be a variable.
                    if value.find('$').is_some_and(|i| i + 1 != value.len()) {
                        return Err(
                            "'from' doesn't support variable expansion, define alias stage instead"
                                .to_owned(),
                        );
                    }
                    spec.from = Some(value.to_owned());
                }
                spec.fields.push((key, Some(value.to_owned())));
            }
            None => spec.fields.push((field.to_ascii_lowercase(), None)),
        }
    }
    Ok(spec)
}

const ALL_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `units.RAMInBytes`: a decimal number with an optional binary unit (`64m`, `1.5GiB`).
fn ram_in_bytes(v: &str) -> Option<u64> {
    let num_len = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(num_len);
    let value: f64 = num.parse().ok()?;
    let unit = unit.to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let scale: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0_f64.powi(4),
        "p" => 1024.0_f64.powi(5),
        _ => return None,
    };
    let bytes = value * scale;
    // The cast saturates; anything this large is rejected instead of wrapped.
    (bytes.is_finite() && bytes < 9.0e18).then_some(bytes as u64)
}

/// Applies the fields in order, expanding each value with `expand`.
pub(crate) fn resolve(
    spec: &MountSpec,
    expand: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Mount, String> {
    let mut m = Mount {
        kind: MountType::Bind,
        from: spec.from.clone(),
        source: None,
        target: None,
        readonly: false,
        required: false,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        env: None,
    };
    let mut ro_auto = true;
    let is_secretish = |m: &Mount| matches!(m.kind, MountType::Secret | MountType::Ssh);
    for (key, value) in &spec.fields {
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => (m.readonly, ro_auto) = (true, false),
                "readwrite" | "rw" => (m.readonly, ro_auto) = (false, false),
                "required" if is_secretish(&m) => m.required = true,
                "required" => {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.name()
                    ));
                }
                _ => return Err(format!("invalid field '{key}' must be a key=value pair")),
            }
            continue;
        };
        let value = if key == "from" {
            value.clone()
        } else {
            expand(value)?
        };
        let invalid = || format!("invalid value for {key}: {value}");
        let number = |radix: u32| {
            u32::from_str_radix(&value, radix)
                .map_err(|_| format!("invalid value {value} for {key}"))
        };
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        let types = ["bind", "cache", "tmpfs", "secret", "ssh"];
                        let hint = suggest::did_you_mean(&value, &types, true)
                            .map(|h| format!(" ({h})"))
                            .unwrap_or_default();
                        return Err(format!("unsupported mount type {value:?}{hint}"));
                    }
                }
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.readonly = parse_bool(&value).ok_or_else(invalid)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&value).ok_or_else(invalid)?;
                ro_auto = false;
            }
            "required" if is_secretish(&m) => {
                m.required = parse_bool(&value).ok_or_else(invalid)?
            }
            "size" if m.kind == MountType::Tmpfs => {
                m.size = Some(ram_in_bytes(&value).ok_or_else(invalid)?)
            }
            "required" | "size" => {
                return Err(format!(
                    "unexpected key '{key}' for mount type '{}'",
                    m.kind.name()
                ));
            }
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => return Err(format!("unsupported sharing value {value:?}")),
                });
            }
            "mode" => m.mode = Some(number(8)?),
            "uid" => m.uid = Some(number(10)?),
            "gid" => m.gid = Some(number(10)?),
            "env" => m.env = Some(value),
            _ => {
                let hint = suggest::did_you_mean(key, ALL_KEYS, true)
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                return Err(format!("unexpected key '{key}' in '{key}={value}'{hint}"));
            }
        }
    }
    validate(&mut m, ro_auto)?;
    Ok(m)
}

fn validate(m: &mut Mount, ro_auto: bool) -> Result<(), String> {
    let kind = m.kind.name();
    if !matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    ) {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(format!("{name} not allowed for {kind:?} type mounts"));
            }
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".to_owned());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".to_owned());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err("invalid secret mount. one of source, target required".to_owned());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".to_owned());
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(format!("invalid cache sharing set for {kind} mount"));
    }
    let needs_target = matches!(
        m.kind,
        MountType::Bind | MountType::Cache | MountType::Tmpfs
    );
    if needs_target && m.target.as_deref().is_none_or(str::is_empty) {
        return Err("mount target required".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_str(raw: &str) -> Result<Mount, String> {
        let spec = parse_spec(raw)?;
        resolve(&spec, &mut |v: &str| Ok(v.replace("$T", "/cache")))
    }

    #[test]
    fn csv() {
        assert_eq!(csv_fields(r#"a,"b,c",d"#).unwrap(), ["a", "b,c", "d"]);
        assert_eq!(csv_fields(r#""x""y""#).unwrap(), [r#"x"y"#]);
        assert!(csv_fields(r#"a"b"#).is_err());
        assert!(csv_fields(r#""ab"c"#).is_err());
    }

    #[test]
    fn mounts() {
        let m = resolve_str("type=cache,target=$T,sharing=locked,mode=0755").unwrap();
        assert_eq!(
            (m.kind, m.target.as_deref(), m.mode),
            (MountType::Cache, Some("/cache"), Some(0o755))
        );
        assert!(!m.readonly);
        let m = resolve_str("type=secret,id=npmrc,required").unwrap();
        assert!(m.readonly && m.required);
        let m = resolve_str("target=/src,rw").unwrap();
        assert!(!m.readonly);
        let errors = [
            (
                "required,type=secret,id=x",
                "unexpected key 'required' for mount type 'bind'",
            ),
            ("type=foo,target=/x", "unsupported mount type \"foo\""),
            (
                "type=cache,target=/x,sharing=sometimes",
                "unsupported sharing value \"sometimes\"",
            ),
            (
                "type=bind,target=/x,mode=0755",
                "mode not allowed for \"bind\" type mounts",
            ),
            (
                "type=secret",
                "invalid secret mount. one of source, target required",
            ),
            (
                "type=cache,targte=/x",
                "unexpected key 'targte' in 'targte=/x' (did you mean target?)",
            ),
            ("type=cache", "mount target required"),
            (
                "type=bind,from=$STAGE,target=/x",
                "'from' doesn't support variable expansion, define alias stage instead",
            ),
        ];
        for (raw, want) in errors {
            assert_eq!(resolve_str(raw).unwrap_err(), want, "{raw}");
        }
        assert_eq!(ram_in_bytes("64m"), Some(64 << 20));
        assert_eq!(ram_in_bytes("1.5GiB"), Some(3 << 29));
    }
}
