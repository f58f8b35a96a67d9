//! Expected facts about a built image, as written in `case.json`: what Docker produces (and,
//! under `buildah_differs`, what Buildah produces instead).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::config::{ConfigSubset, normalise_field};
use crate::setup::expand_repeats;
use crate::snapshot::{Entry, Snapshot, sha256_bytes, show_bytes};

/// `"absent"`, `"present"`, or an object of facts about the entry.
#[derive(Debug, Clone)]
pub enum PathExpectation {
    Absent,
    Present,
    Entry(Box<EntryExpectation>),
}

/// Facts about one path; every field is optional and only the given ones are checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryExpectation {
    /// dir, file, symlink, fifo, char, block or socket.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Octal permission bits, with setuid/setgid/sticky: "0644", "4755", "1777".
    pub mode: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The file's exact content, as text.
    pub content: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    /// A symlink's target.
    pub target: Option<String>,
    /// A device's "major:minor".
    pub rdev: Option<String>,
    /// Other paths that must be hardlinks of this one (same inode).
    pub hardlinked_with: Option<Vec<String>>,
    /// `true`: the path shares its inode with no other path.
    pub not_hardlinked: Option<bool>,
    /// The exact set of extended attributes (`security.selinux` aside); values as text or
    /// `hex:…`.
    pub xattrs: Option<BTreeMap<String, String>>,
}

impl PathExpectation {
    /// Expands `<c*N>` (see setup::expand_repeats) in the paths and link targets it names.
    pub fn expand_repeats(self) -> Result<Self, String> {
        let PathExpectation::Entry(mut entry) = self else {
            return Ok(self);
        };
        if let Some(target) = &entry.target {
            entry.target = Some(expand_repeats(target)?);
        }
        if let Some(others) = &entry.hardlinked_with {
            entry.hardlinked_with = Some(
                others
                    .iter()
                    .map(|o| expand_repeats(o))
                    .collect::<Result<_, _>>()?,
            );
        }
        Ok(PathExpectation::Entry(entry))
    }
}

impl<'de> Deserialize<'de> for PathExpectation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Dispatching by hand instead of `#[serde(untagged)]` keeps the entry's own error
        // ("unknown field `mdoe`") instead of "did not match any variant".
        match Value::deserialize(deserializer)? {
            Value::String(s) if s == "absent" => Ok(PathExpectation::Absent),
            Value::String(s) if s == "present" => Ok(PathExpectation::Present),
            Value::String(s) => Err(serde::de::Error::custom(format!(
                "{s:?}: a path is expected \"absent\", \"present\" or as an object of facts"
            ))),
            other => serde_json::from_value(other)
                .map(|e| PathExpectation::Entry(Box::new(e)))
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Every way `snapshot` at `path` falls short of `expectation`, one message each.
pub fn check_path(snapshot: &Snapshot, path: &str, expectation: &PathExpectation) -> Vec<String> {
    let entry = snapshot.entries.get(path);
    match (expectation, entry) {
        (PathExpectation::Absent, None) | (PathExpectation::Present, Some(_)) => vec![],
        (PathExpectation::Absent, Some(entry)) => {
            vec![format!("{path}: expected absent, found {entry}")]
        }
        (PathExpectation::Present | PathExpectation::Entry(_), None) => {
            vec![format!("{path}: expected present, found nothing")]
        }
        (PathExpectation::Entry(expected), Some(entry)) => {
            check_entry(snapshot, path, expected, entry)
        }
    }
}

fn check_entry(
    snapshot: &Snapshot,
    path: &str,
    expected: &EntryExpectation,
    entry: &Entry,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut fact = |what: &str, want: String, got: String| {
        if want != got {
            problems.push(format!(
                "{path}: {what} expected {want}, found {got} ({entry})"
            ));
        }
    };
    if let Some(kind) = &expected.kind {
        fact("type", kind.clone(), entry.kind.name().to_owned());
    }
    if let Some(mode) = &expected.mode {
        let want = u32::from_str_radix(mode, 8)
            .map_or_else(|_| format!("invalid {mode:?}"), |m| format!("{m:04o}"));
        fact("mode", want, format!("{:04o}", entry.mode));
    }
    if let Some(uid) = expected.uid {
        fact("uid", uid.to_string(), entry.uid.to_string());
    }
    if let Some(gid) = expected.gid {
        fact("gid", gid.to_string(), entry.gid.to_string());
    }
    let got_sha = entry
        .sha256
        .clone()
        .unwrap_or_else(|| "none (not a file)".into());
    if let Some(content) = &expected.content {
        fact(
            "content",
            format!("{content:?} (sha256 {})", sha256_bytes(content.as_bytes())),
            if got_sha == sha256_bytes(content.as_bytes()) {
                format!("{content:?} (sha256 {got_sha})")
            } else {
                format!("other content (sha256 {got_sha}, size {:?})", entry.size)
            },
        );
    }
    if let Some(sha) = &expected.sha256 {
        fact("sha256", sha.clone(), got_sha);
    }
    if let Some(size) = expected.size {
        fact(
            "size",
            size.to_string(),
            format!("{:?}", entry.size.unwrap_or(0)),
        );
    }
    if let Some(target) = &expected.target {
        fact(
            "target",
            format!("{target:?}"),
            format!("{:?}", entry.target.clone().unwrap_or_default()),
        );
    }
    if let Some(rdev) = &expected.rdev {
        let got = entry
            .rdev
            .map_or("none".into(), |(ma, mi)| format!("{ma}:{mi}"));
        fact("rdev", rdev.clone(), got);
    }
    if let Some(others) = &expected.hardlinked_with {
        for other in others {
            let other_group = snapshot
                .entries
                .get(other)
                .and_then(|e| e.hardlink_group.clone());
            let linked = entry.hardlink_group.is_some() && entry.hardlink_group == other_group;
            fact(
                "hardlink",
                format!("linked with {other}"),
                if linked {
                    format!("linked with {other}")
                } else {
                    format!("not linked with {other}")
                },
            );
        }
    }
    if expected.not_hardlinked == Some(true) {
        fact(
            "hardlink",
            "no other name".into(),
            entry
                .hardlink_group
                .as_ref()
                .map_or("no other name".into(), |g| format!("group {g}")),
        );
    }
    if let Some(xattrs) = &expected.xattrs {
        let got: BTreeMap<String, String> = entry
            .xattrs
            .iter()
            .map(|(k, v)| (k.clone(), show_bytes(v)))
            .collect();
        fact("xattrs", format!("{xattrs:?}"), format!("{got:?}"));
    }
    problems
}

/// Every way `config` falls short of the expected field values (`null` = absent).
pub fn check_config(config: &ConfigSubset, expected: &BTreeMap<String, Value>) -> Vec<String> {
    expected
        .iter()
        .filter_map(|(field, want)| {
            let want = normalise_field(field, want);
            let got = config.get(field).cloned();
            (want != got).then(|| {
                let show =
                    |v: &Option<Value>| v.as_ref().map_or("absent".to_owned(), Value::to_string);
                format!(
                    "config {field}: expected {}, found {}",
                    show(&want),
                    show(&got)
                )
            })
        })
        .collect()
}
