//! A compatibility case: `cases/<name>/{Dockerfile, case.json, context/…}`.
//!
//! `case.json` says how to build (base image, build args, target), how to finish the context
//! (what git cannot hold: owners, hardlinks, xattrs, empty directories, tar archives, long
//! names), what Docker produces (`expect`, `expect_config`), and where Buildah differs from
//! Docker (`buildah_differs`). The schema is strict: an unknown key is an error, so a typo
//! cannot silently turn an expectation off.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::expect::PathExpectation;
use crate::setup::{SetupOp, expand_repeats};

/// The base images scripts/make-base-images builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Base {
    Busybox,
    Debian,
}

impl Base {
    /// The repository and tag in the local registry.
    pub fn repository(self) -> &'static str {
        match self {
            Base::Busybox => "stratum/busybox:latest",
            Base::Debian => "stratum/debian:bookworm",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// What the case proves, in a sentence or two.
    pub about: String,
    pub base: Base,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    #[serde(default)]
    pub target: Option<String>,
    /// Extra `buildah bud` flags where Buildah's defaults differ from Docker's in a way a flag
    /// restores (e.g. `--cap-add MKNOD`: Docker's default capability set has CAP_MKNOD).
    #[serde(default)]
    pub buildah_flags: Vec<String>,
    #[serde(default)]
    pub context_setup: Vec<SetupOp>,
    /// Docker's result, path by path.
    #[serde(default)]
    pub expect: BTreeMap<String, PathExpectation>,
    /// Docker's result for config fields (Docker's names); `null` means absent.
    #[serde(default)]
    pub expect_config: BTreeMap<String, Value>,
    #[serde(default)]
    pub buildah_differs: Vec<Difference>,
}

/// Where Buildah 1.28 does not do what Docker does. The path (with everything below it) or the
/// config field is left out of the Stratum-vs-Buildah comparison; instead Stratum is checked
/// against `docker` and Buildah against `buildah`, so a change in either shows up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Difference {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub config: Option<String>,
    pub docker: Value,
    pub buildah: Value,
    pub why: String,
}

/// A difference, parsed by what it concerns.
#[derive(Debug, Clone)]
pub enum DifferenceSubject {
    Path {
        path: String,
        docker: PathExpectation,
        buildah: PathExpectation,
    },
    Config {
        field: String,
        docker: Value,
        buildah: Value,
    },
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub file: CaseFile,
    pub differences: Vec<DifferenceSubject>,
}

impl Case {
    pub fn dockerfile(&self) -> PathBuf {
        self.dir.join("Dockerfile")
    }

    /// The context as committed; `prepare_context` copies it and applies `context_setup`.
    pub fn committed_context(&self) -> PathBuf {
        self.dir.join("context")
    }

    /// Paths whose comparison with Buildah is replaced by per-builder expectations.
    pub fn differing_paths(&self) -> impl Iterator<Item = &str> {
        self.differences.iter().filter_map(|d| match d {
            DifferenceSubject::Path { path, .. } => Some(path.as_str()),
            DifferenceSubject::Config { .. } => None,
        })
    }

    pub fn differing_fields(&self) -> impl Iterator<Item = &str> {
        self.differences.iter().filter_map(|d| match d {
            DifferenceSubject::Config { field, .. } => Some(field.as_str()),
            DifferenceSubject::Path { .. } => None,
        })
    }
}

/// Every case under `cases_dir`, sorted by name.
pub fn load_all(cases_dir: &Path) -> Result<Vec<Case>, String> {
    let mut names = Vec::new();
    for entry in fs::read_dir(cases_dir).map_err(|e| format!("{}: {e}", cases_dir.display()))? {
        let entry = entry.map_err(|e| format!("{}: {e}", cases_dir.display()))?;
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names
        .iter()
        .map(|name| load(&cases_dir.join(name)))
        .collect()
}

pub fn load(dir: &Path) -> Result<Case, String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "{}: a case directory is named with lowercase letters, digits and dashes (it becomes an image tag)",
            dir.display()
        ));
    }
    let case_json = dir.join("case.json");
    let text =
        fs::read_to_string(&case_json).map_err(|e| format!("{}: {e}", case_json.display()))?;
    let file: CaseFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", case_json.display()))?;
    if !dir.join("Dockerfile").is_file() {
        return Err(format!("{}: no Dockerfile", dir.display()));
    }
    let mut file = file;
    file.expect = std::mem::take(&mut file.expect)
        .into_iter()
        .map(|(path, expectation)| {
            let path = expand_repeats(&path)?;
            check_image_path(&path)?;
            Ok((path, expectation.expand_repeats()?))
        })
        .collect::<Result<_, String>>()
        .map_err(|e| format!("{}: expect: {e}", case_json.display()))?;
    for field in file.expect_config.keys() {
        check_config_field(field)
            .map_err(|e| format!("{}: expect_config: {e}", case_json.display()))?;
    }
    let differences = file
        .buildah_differs
        .iter()
        .map(parse_difference)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: buildah_differs: {e}", case_json.display()))?;
    Ok(Case {
        name,
        dir: dir.to_path_buf(),
        file,
        differences,
    })
}

fn parse_difference(d: &Difference) -> Result<DifferenceSubject, String> {
    if d.why.trim().is_empty() {
        return Err("every difference says why".into());
    }
    match (&d.path, &d.config) {
        (Some(path), None) => {
            let path = &expand_repeats(path)?;
            check_image_path(path)?;
            let parse = |v: &Value| {
                serde_json::from_value::<PathExpectation>(v.clone())
                    .map_err(|e| format!("{path}: {e}"))?
                    .expand_repeats()
            };
            Ok(DifferenceSubject::Path {
                path: path.clone(),
                docker: parse(&d.docker)?,
                buildah: parse(&d.buildah)?,
            })
        }
        (None, Some(field)) => {
            check_config_field(field)?;
            Ok(DifferenceSubject::Config {
                field: field.clone(),
                docker: d.docker.clone(),
                buildah: d.buildah.clone(),
            })
        }
        _ => Err("a difference names exactly one of `path` and `config`".into()),
    }
}

fn check_image_path(path: &str) -> Result<(), String> {
    let clean = path.starts_with('/')
        && (path == "/" || !path.ends_with('/'))
        && !path
            .split('/')
            .skip(1)
            .any(|c| c.is_empty() || c == "." || c == "..");
    if clean {
        Ok(())
    } else {
        Err(format!(
            "{path:?} is not a clean absolute path inside the image"
        ))
    }
}

fn check_config_field(field: &str) -> Result<(), String> {
    if crate::config::COMPARED_FIELDS.contains(&field) {
        Ok(())
    } else {
        Err(format!(
            "{field:?} is not a compared config field ({})",
            crate::config::COMPARED_FIELDS.join(", ")
        ))
    }
}
