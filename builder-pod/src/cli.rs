//! Command-line arguments of `stratum`, with Docker/Buildah flag names where the meaning matches
//! (design.md §5).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "stratum",
    version,
    about = "Build container images from Dockerfiles with an overlay step executor",
    long_about = "Build container images from Dockerfiles, the way `docker build` does, with an \
                  overlay-based step executor. Runs as root on any Linux machine; no daemon."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile and a context.
    Build(Box<BuildArgs>),
    /// Remove cached layers and blobs, least recently used first.
    Prune(PruneArgs),
    /// Run the build an operator requested (in a builder pod): read the BuildRequest from
    /// $STRATUM_BUILD_REQUEST or the file in $STRATUM_BUILD_REQUEST_FILE, build, push, and write
    /// the BuildResult to the termination log.
    PodBuild(PodBuildArgs),
}

#[derive(Debug, Args)]
pub struct PodBuildArgs {
    /// The store (the pod's work volume).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/stratum")]
    pub cache_dir: PathBuf,

    /// Where the result goes; the kubelet reads it as the container's termination message.
    #[arg(long, value_name = "PATH", default_value = stratum_crds::contract::TERMINATION_MESSAGE_PATH)]
    pub termination_log: PathBuf,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The store to prune.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/stratum")]
    pub cache_dir: PathBuf,

    /// Keep at most this much (e.g. `10GB`, `512MiB`, `0`); least recently used entries go first.
    #[arg(long, value_name = "SIZE", conflicts_with = "all", value_parser = parse_size)]
    pub keep_storage: Option<u64>,

    /// Remove everything.
    #[arg(long)]
    pub all: bool,
}

/// Sizes as `docker builder prune --keep-storage` takes them: a number with an optional
/// decimal (kB, MB, GB) or binary (KiB, MiB, GiB) unit; `B` or no unit means bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 512MiB or 10GB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    Ok((number * multiplier as f64) as u64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// A live view on a terminal, plain lines elsewhere.
    Auto,
    /// Plain, timestamped lines.
    Plain,
    /// One JSON document per event, for machines.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Oci,
    Docker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Network {
    Host,
    None,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context: a directory, `-` for a tar archive on standard input, or the URL of an
    /// archive or file (`https://…`, `s3://bucket/key`, `gs://…`, `azblob://container/blob`;
    /// tar, tar.gz, tar.zst or zip, unpacked; any other file becomes the only file).
    #[arg(value_name = "CONTEXT")]
    pub context: String,

    /// The Dockerfile to use [default: CONTEXT/Dockerfile].
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// Parse the Dockerfile, apply build arguments and the target, print the plan and exit.
    #[arg(long)]
    pub dry_run: bool,

    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take the value from the environment).
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,

    /// Build this stage and the stages it needs, not the last one.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// Name and tag for the image (repeatable), e.g. `registry.example/app:1.2`.
    #[arg(short = 't', long = "tag", value_name = "REFERENCE")]
    pub tags: Vec<String>,

    /// Add a label to the image (`KEY=VALUE`, repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// Push the image to the registry of each `--tag`.
    #[arg(long)]
    pub push: bool,

    /// Where the image goes: `type=oci|oci-archive|docker-archive,dest=PATH` or `type=registry`.
    #[arg(long, value_name = "SPEC")]
    pub output: Vec<String>,

    /// Talk plain HTTP (or unverified TLS) to this registry host (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,

    /// A docker `config.json` holding registry credentials.
    #[arg(long, value_name = "PATH")]
    pub registry_config: Option<PathBuf>,

    /// Where layers and the build cache live.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/stratum")]
    pub cache_dir: PathBuf,

    /// Do not use the build cache.
    #[arg(long)]
    pub no_cache: bool,

    /// A registry repository used as a remote layer cache.
    #[arg(long, value_name = "REPOSITORY")]
    pub cache_repo: Option<String>,

    /// Layer compression.
    #[arg(long, value_enum, default_value_t = Compression::Gzip)]
    pub compression: Compression,

    /// Manifest and config media types.
    #[arg(long, value_enum, default_value_t = Format::Oci)]
    pub format: Format,

    /// Byte-identical output for identical inputs (timestamps from SOURCE_DATE_EPOCH, or 0).
    #[arg(long)]
    pub reproducible: bool,

    /// Network for RUN steps.
    #[arg(long, value_enum, default_value_t = Network::Host)]
    pub network: Network,

    /// How to show progress.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,

    /// Print only the image ID.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Write the image ID to this file.
    #[arg(long, value_name = "PATH")]
    pub iidfile: Option<PathBuf>,

    /// Write build metadata (digests, layers) as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub metadata_file: Option<PathBuf>,

    /// Target platform; only the host's (linux/amd64 here) is supported.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
}

impl BuildArgs {
    /// Options given with `--dry-run` that only a real build uses; refused by name rather than
    /// silently ignored.
    pub fn dry_run_conflicts(&self) -> Vec<&'static str> {
        let given = [
            ("--tag", !self.tags.is_empty()),
            ("--label", !self.labels.is_empty()),
            ("--push", self.push),
            ("--output", !self.output.is_empty()),
            ("--insecure-registry", !self.insecure_registries.is_empty()),
            ("--registry-config", self.registry_config.is_some()),
            ("--no-cache", self.no_cache),
            ("--compression", self.compression != Compression::Gzip),
            ("--format", self.format != Format::Oci),
            ("--reproducible", self.reproducible),
            ("--network", self.network != Network::Host),
            ("--quiet", self.quiet),
            ("--iidfile", self.iidfile.is_some()),
            ("--metadata-file", self.metadata_file.is_some()),
            ("--cache-repo", self.cache_repo.is_some()),
        ];
        given
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse_like_docker() {
        let table = [
            ("0", Some(0)),
            ("512", Some(512)),
            ("10GB", Some(10_000_000_000)),
            ("1.5GiB", Some(1_610_612_736)),
            ("512MiB", Some(536_870_912)),
            ("2 kb", Some(2000)),
            ("ten", None),
            ("5XB", None),
        ];
        for (text, expected) in table {
            assert_eq!(parse_size(text).ok(), expected, "{text}");
        }
    }

    #[test]
    fn every_option_a_dry_run_cannot_honour_is_reported_by_name() {
        let cli = Cli::parse_from([
            "stratum",
            "build",
            "--push",
            "-t",
            "x",
            "--no-cache",
            "--network",
            "none",
            ".",
        ]);
        let Command::Build(args) = cli.command else {
            panic!("parsed as build")
        };
        assert_eq!(
            args.dry_run_conflicts(),
            ["--tag", "--push", "--no-cache", "--network"]
        );
        let plain = Cli::parse_from(["stratum", "build", "--dry-run", "."]);
        let Command::Build(args) = plain.command else {
            panic!("parsed as build")
        };
        assert!(args.dry_run_conflicts().is_empty());
    }
}
