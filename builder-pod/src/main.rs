//! `stratum`: build container images from Dockerfiles.

mod build_cmd;
mod cli;
mod git_context;
mod pod_build;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;

use cli::{BuildArgs, Cli, Command, Progress, PruneArgs};
use stratum_builder::dockerfile::{self, BuildOptions};
use stratum_builder::store::{Store, gc};

/// The only platform the executor can run RUN steps for: the host's.
const HOST_PLATFORM: &str = "linux/amd64";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => build(&args),
        Command::Prune(args) => prune(&args),
        Command::PodBuild(args) => pod_build::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn build(args: &BuildArgs) -> Result<()> {
    check_platform(args.platform.as_deref())?;
    if !args.dry_run {
        return build_cmd::run(args);
    }
    let unimplemented = args.dry_run_conflicts();
    if !unimplemented.is_empty() {
        bail!(
            "{} cannot be combined with --dry-run, which only prints the plan; \
             --dry-run accepts -f, --build-arg, --target, --platform and --progress",
            unimplemented.join(", ")
        );
    }
    if args.context == "-" {
        bail!("a tar context on standard input is not implemented yet; pass a directory");
    }
    if stratum_builder::source::git::is_git_context(&args.context) {
        bail!(
            "--dry-run of a git repository context is not implemented yet; clone it and pass the directory"
        );
    }
    let dockerfile_path = args
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.context).join("Dockerfile"));
    let source = std::fs::read(&dockerfile_path)
        .with_context(|| format!("cannot read the Dockerfile {}", dockerfile_path.display()))?;
    let source = String::from_utf8(source).map_err(|_| {
        anyhow::anyhow!(
            "{}: the Dockerfile is not valid UTF-8",
            dockerfile_path.display()
        )
    })?;
    let file_name = dockerfile_path
        .file_name()
        .map_or_else(|| "Dockerfile".into(), |n| n.to_string_lossy().into_owned());

    let parsed = dockerfile::parse(&source, &file_name)?;
    let options = BuildOptions {
        build_args: parse_build_args(&args.build_args, |k| std::env::var(k).ok())?,
        target: args.target.clone(),
        ..BuildOptions::default()
    };
    let plan = dockerfile::plan(&parsed, &options)?;

    let mut out = std::io::stdout().lock();
    match args.progress {
        Progress::Json => {
            serde_json::to_writer_pretty(&mut out, &plan)?;
            writeln!(out)?;
        }
        Progress::Auto | Progress::Plain => {
            for warning in &plan.warnings {
                match warning.line {
                    Some(line) => eprintln!("warning: {}:{line}: {}", plan.file, warning.message),
                    None => eprintln!("warning: {}", warning.message),
                }
            }
            write!(out, "{plan}")?;
        }
    }
    Ok(())
}

fn prune(args: &PruneArgs) -> Result<()> {
    let budget = match (args.all, args.keep_storage) {
        (true, _) => gc::Budget::Nothing,
        (false, Some(bytes)) => gc::Budget::Bytes(bytes),
        (false, None) => bail!("say what to keep: --keep-storage SIZE, or --all"),
    };
    let store = Store::open(&args.cache_dir)?;
    let report = gc::prune(&store, budget)?;
    println!(
        "removed {} layers and {} blobs, freed {} bytes; {} bytes kept in {}",
        report.layers_removed,
        report.blobs_removed,
        report.bytes_freed,
        report.bytes_kept,
        args.cache_dir.display()
    );
    Ok(())
}

fn check_platform(platform: Option<&str>) -> Result<()> {
    match platform {
        None => Ok(()),
        Some(p) if p == HOST_PLATFORM || p == "linux/amd64/v1" => Ok(()),
        Some(p) => bail!(
            "--platform {p}: stratum runs RUN steps natively and can only build for the host \
             platform {HOST_PLATFORM}; build other platforms on a machine of that platform"
        ),
    }
}

/// `--build-arg KEY=VALUE` sets a value; `--build-arg KEY` takes it from the environment and is
/// dropped when the variable is unset, as `docker build` does.
pub(crate) fn parse_build_args(
    raw: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>> {
    let mut args = BTreeMap::new();
    for item in raw {
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (item.as_str(), env(item)),
        };
        if key.is_empty() {
            bail!("--build-arg {item:?}: the name before `=` is empty");
        }
        if let Some(value) = value {
            args.insert(key.to_owned(), value);
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_take_values_from_the_flag_or_the_environment() {
        let raw = ["A=1", "B", "C", "D=x=y", "E="].map(String::from);
        let env = |k: &str| (k == "B").then(|| "from-env".to_owned());
        let args = parse_build_args(&raw, env).unwrap();
        let expected: BTreeMap<String, String> =
            [("A", "1"), ("B", "from-env"), ("D", "x=y"), ("E", "")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        assert_eq!(args, expected);
        assert!(parse_build_args(&["=v".to_owned()], |_| None).is_err());
    }

    #[test]
    fn only_the_host_platform_is_accepted() {
        assert!(check_platform(None).is_ok());
        assert!(check_platform(Some("linux/amd64")).is_ok());
        let err = check_platform(Some("linux/arm64")).unwrap_err().to_string();
        assert!(
            err.contains("linux/arm64") && err.contains("host platform"),
            "{err}"
        );
    }
}
