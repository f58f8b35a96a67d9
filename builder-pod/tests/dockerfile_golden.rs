//! Golden tests for the Dockerfile front end.
//!
//! Each directory under `testdata/dockerfiles/<case>/` holds a `Dockerfile`, optionally an
//! `args.json` (`{"build_args": {...}, "target": "...", "base_images": {"<normalized ref>":
//! {"env": [...], "on_build": [...]}}}`), and `expected.json`: the serialized plan, or
//! `{"error": "<Display>", "line": n, "column": n}`. Every expected file was checked by hand
//! against what BuildKit does with the same input (see docs/arch/dockerfile.md).
//!
//! `STRATUM_UPDATE_GOLDEN=1 cargo test --test dockerfile_golden` rewrites the expected files;
//! review the diff before committing it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use stratum_builder::dockerfile::{self, BaseImageConfig, BuildOptions, Platform};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseArgs {
    #[serde(default)]
    build_args: BTreeMap<String, String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    base_images: BTreeMap<String, BaseImage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaseImage {
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    on_build: Vec<String>,
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/dockerfiles")
}

fn run_case(dir: &Path) -> anyhow::Result<String> {
    let source = fs::read(dir.join("Dockerfile"))?;
    let args: CaseArgs = match fs::read_to_string(dir.join("args.json")) {
        Ok(text) => serde_json::from_str(&text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CaseArgs::default(),
        Err(e) => return Err(e.into()),
    };
    let opts = BuildOptions {
        build_args: args.build_args,
        target: args.target,
        platform: Some(Platform::linux_amd64()),
        base_images: args
            .base_images
            .into_iter()
            .map(|(k, v)| {
                let config = BaseImageConfig {
                    env: v.env,
                    on_build: v.on_build,
                };
                (k, config)
            })
            .collect(),
        ..BuildOptions::default()
    };
    let result =
        dockerfile::parse_bytes(&source, "Dockerfile").and_then(|df| dockerfile::plan(&df, &opts));
    let mut json = match result {
        Ok(plan) => serde_json::to_string_pretty(&plan)?,
        Err(err) => serde_json::to_string_pretty(&err.report())?,
    };
    json.push('\n');
    Ok(json)
}

#[test]
fn golden_dockerfiles() {
    let update = std::env::var_os("STRATUM_UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut dirs: Vec<PathBuf> = fs::read_dir(cases_dir())
        .expect("testdata/dockerfiles exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 80,
        "expected at least 80 golden cases, found {}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let actual = match run_case(dir) {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{name}: cannot run case: {e}"));
                continue;
            }
        };
        let expected_path = dir.join("expected.json");
        if update {
            fs::write(&expected_path, &actual).expect("write expected.json");
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{name}: plan differs from expected.json\n--- expected\n{expected}\n--- actual\n{actual}"
            )),
            Err(e) => failures.push(format!("{name}: no expected.json ({e})")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
