//! `stratum build` without `--dry-run`: context → executor → outputs.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::cli::{BuildArgs, Compression, Format, Network, Progress};
use stratum_builder::build::progress;
use stratum_builder::build::{BuildOutcome, BuildSpec, Executor, ImageFormat, NetworkMode};
use stratum_builder::image::{MediaType, Reference, Repository, Serialized, Tag};
use stratum_builder::layer;
use stratum_builder::output;
use stratum_builder::registry::{
    BlobPushed, ClientConfig, Credentials, ImagePush, LocalBlob, RegistryClient, push_image,
};
use stratum_builder::sandbox::CancelToken;
use stratum_builder::source::{git, object};
use stratum_builder::store::Store;

/// Blobs uploaded at the same time.
const PUSH_CONCURRENCY: usize = 3;

/// One `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    Oci(PathBuf),
    OciArchive(PathBuf),
    DockerArchive(PathBuf),
    Registry,
}

/// Parses `type=oci,dest=DIR` and friends (BuildKit's `--output` syntax).
pub fn parse_output(text: &str) -> Result<OutputSpec> {
    let mut kind = None;
    let mut dest = None;
    for field in text.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            _ => bail!("--output {text:?}: unknown field {field:?}; expected type=…,dest=…"),
        }
    }
    let need_dest = |dest: Option<PathBuf>| {
        dest.ok_or_else(|| anyhow::anyhow!("--output {text:?}: this type needs dest=PATH"))
    };
    Ok(match kind {
        Some("oci") => OutputSpec::Oci(need_dest(dest)?),
        Some("oci-archive") => OutputSpec::OciArchive(need_dest(dest)?),
        Some("docker-archive") | Some("docker") => OutputSpec::DockerArchive(need_dest(dest)?),
        Some("registry") | Some("image") => OutputSpec::Registry,
        Some(other) => bail!(
            "--output {text:?}: unknown type {other:?}; use oci, oci-archive, docker-archive or registry"
        ),
        None => bail!("--output {text:?}: missing type=…"),
    })
}

pub fn run(args: &BuildArgs) -> Result<()> {
    let cancel = CancelToken::new();
    watch_signals(cancel.clone());
    let cache_repo = args
        .cache_repo
        .as_deref()
        .map(parse_cache_repo)
        .transpose()?;
    let outputs = args
        .output
        .iter()
        .map(|o| parse_output(o))
        .collect::<Result<Vec<_>>>()?;
    let push = args.push || outputs.contains(&OutputSpec::Registry);
    let tags = args
        .tags
        .iter()
        .map(|t| Reference::parse(t).with_context(|| format!("--tag {t}")))
        .collect::<Result<Vec<_>>>()?;
    if push && tags.is_empty() {
        bail!("--push needs at least one --tag naming where to push");
    }
    let store = Store::open(&args.cache_dir)
        .with_context(|| format!("opening the cache dir {}", args.cache_dir.display()))?;

    let stdin_context;
    let mut git_context = None;
    // Keeps the fetched context's scratch directory until the build is done.
    let _object_context;
    let mut fetched_tree = None;
    let context_dir = if args.context == "-" {
        stdin_context = extract_stdin_context(&store)?;
        stdin_context.path().to_owned()
    } else if git::is_git_context(&args.context) {
        let fetched = crate::git_context::fetch_remote_context(
            &args.context,
            args.keep_git_dir,
            args.git_auth.as_deref(),
            &store,
            &cancel,
        )?;
        if !args.quiet {
            eprintln!(
                "fetched {} at commit {}",
                git::redact_url(&args.context),
                fetched.fetched.commit
            );
        }
        let dir = fetched.context_dir.clone();
        git_context = Some(fetched);
        dir
    } else if object::is_object_context(&args.context) {
        let (dir, tree) = fetch_object_context(&store, &args.context)?;
        _object_context = dir;
        fetched_tree = Some(tree.clone());
        tree
    } else {
        let dir = PathBuf::from(&args.context);
        if !dir.is_dir() {
            bail!("the build context {} is not a directory", dir.display());
        }
        dir
    };
    if git_context.is_none() && (args.keep_git_dir || args.git_auth.is_some()) {
        bail!("--keep-git-dir and --git-auth apply only to a git repository as the context");
    }
    let dockerfile_path = match (&git_context, &fetched_tree, &args.file) {
        // In a git context, Docker reads `-f` relative to the context, inside the repository.
        (Some(git), _, file) if file.as_ref().is_none_or(|f| f.is_relative()) => {
            let name = file.as_ref().map_or_else(
                || "Dockerfile".to_owned(),
                |f| f.to_string_lossy().into_owned(),
            );
            git.dockerfile(&name)?
        }
        // As with Docker's URL contexts, -f names a file inside the fetched tree.
        (_, Some(tree), Some(file)) => {
            object::contained_path(tree, &file.to_string_lossy(), "Dockerfile")?
        }
        (_, _, file) => file
            .clone()
            .unwrap_or_else(|| context_dir.join("Dockerfile")),
    };
    let dockerfile = std::fs::read_to_string(&dockerfile_path)
        .with_context(|| format!("cannot read the Dockerfile {}", dockerfile_path.display()))?;

    let mut credentials = Credentials::anonymous();
    if let Some(path) = &args.registry_config {
        credentials = Credentials::load(path)?;
    } else if let Some(home) = std::env::var_os("HOME") {
        let default = Path::new(&home).join(".docker/config.json");
        if default.is_file() {
            credentials = Credentials::load(&default)?;
        }
    }
    let client = RegistryClient::new(
        ClientConfig {
            insecure_registries: args.insecure_registries.iter().cloned().collect(),
            ..ClientConfig::default()
        },
        credentials,
    )?;

    let sink: Arc<dyn progress::Progress> = match (args.quiet, args.progress) {
        (true, _) => Arc::new(progress::Quiet),
        (false, Progress::Json) => Arc::new(progress::Json::new(std::io::stderr())),
        (false, Progress::Plain) => Arc::new(progress::Plain::new(std::io::stderr(), true)),
        (false, Progress::Auto) if std::io::stderr().is_terminal() => {
            Arc::new(stratum_builder::build::progress_live::Live::new())
        }
        (false, Progress::Auto) => Arc::new(progress::Plain::new(std::io::stderr(), true)),
    };
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => Some(
            v.trim()
                .parse::<i64>()
                .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        ),
        Err(_) if args.reproducible => Some(0),
        Err(_) => None,
    };
    let labels = key_values("--label", &args.labels)?;
    let annotations = key_values("--annotation", &args.annotations)?;
    let spec = BuildSpec {
        context_dir,
        dockerfile,
        dockerfile_name: dockerfile_path
            .file_name()
            .map_or_else(|| "Dockerfile".into(), |n| n.to_string_lossy().into_owned()),
        build_args: crate::parse_build_args(&args.build_args, |k| std::env::var(k).ok())?,
        target: args.target.clone(),
        labels,
        annotations,
        no_cache: args.no_cache,
        compression: match args.compression {
            Compression::Gzip => layer::Compression::Gzip { level: 1 },
            Compression::Zstd => layer::Compression::Zstd { level: 3 },
        },
        format: match args.format {
            Format::Oci => ImageFormat::Oci,
            Format::Docker => ImageFormat::Docker,
        },
        source_date_epoch,
        network: match args.network {
            Network::Host => NetworkMode::Host,
            Network::None => NetworkMode::None,
        },
        step_timeout: None,
        parallelism: std::thread::available_parallelism().map_or(1, usize::from),
    };
    let executor = Executor::new(
        spec,
        store.clone(),
        Arc::new(client.clone()),
        sink.clone(),
        cancel,
    )?
    .with_cache_repository(cache_repo);
    let outcome = executor.run()?;

    write_outputs(&store, &outcome, &outputs, &tags, args)?;
    if push {
        push_all(&store, &client, &outcome, &tags, &*sink)?;
    }
    if let Some(path) = &args.iidfile {
        output::write_iidfile(path, &outcome.image)?;
    }
    if let Some(path) = &args.metadata_file {
        let names: Vec<String> = tags.iter().map(ToString::to_string).collect();
        output::write_metadata_file(path, &outcome.image, &names)?;
    }
    print_summary(&outcome, args.quiet);
    Ok(())
}

fn write_outputs(
    store: &Store,
    outcome: &BuildOutcome,
    outputs: &[OutputSpec],
    tags: &[Reference],
    args: &BuildArgs,
) -> Result<()> {
    let ref_names: Vec<String> = tags
        .iter()
        .filter_map(|t| t.tag().map(Tag::to_string))
        .collect();
    let repo_tags: Vec<String> = tags.iter().map(ToString::to_string).collect();
    let mut wrote_local = false;
    for out in outputs {
        match out {
            OutputSpec::Oci(dest) => {
                output::write_oci_layout(store, &outcome.image, dest, &ref_names)?;
                wrote_local = true;
            }
            OutputSpec::OciArchive(dest) => {
                output::write_oci_archive(store, &outcome.image, dest, &ref_names)?;
                wrote_local = true;
            }
            OutputSpec::DockerArchive(dest) => {
                output::write_docker_archive(store, &outcome.image, dest, &repo_tags)?;
                wrote_local = true;
            }
            OutputSpec::Registry => {}
        }
    }
    if !wrote_local && !args.push && !outputs.contains(&OutputSpec::Registry) {
        // No output named: keep the image in an OCI layout beside the cache, as design.md §5
        // promises, so `skopeo copy oci:<dir>:<tag> …` can pick it up.
        let names = if ref_names.is_empty() {
            vec!["latest".to_owned()]
        } else {
            ref_names
        };
        let dest = args.cache_dir.join("images");
        output::write_oci_layout(store, &outcome.image, &dest, &names)?;
        if !args.quiet {
            eprintln!(
                "image stored in the OCI layout {} as {}",
                dest.display(),
                names.join(", ")
            );
        }
    }
    Ok(())
}

pub(crate) fn push_all(
    store: &Store,
    client: &RegistryClient,
    outcome: &BuildOutcome,
    tags: &[Reference],
    sink: &dyn progress::Progress,
) -> Result<()> {
    let image = &outcome.image;
    let manifest_bytes = std::fs::read(store.blob_path(&image.manifest_digest))?;
    let manifest = Serialized {
        media_type: image.manifest_media_type.parse::<MediaType>()?,
        digest: image.manifest_digest.clone(),
        bytes: manifest_bytes,
    };
    let config_type = match manifest.media_type {
        MediaType::DockerManifest => MediaType::DockerConfig,
        _ => MediaType::OciConfig,
    };
    let config_size = std::fs::metadata(store.blob_path(&image.config_digest))?.len();
    let mut blobs = vec![LocalBlob {
        descriptor: stratum_builder::image::Descriptor::new(
            config_type,
            image.config_digest.clone(),
            config_size,
        ),
        path: store.blob_path(&image.config_digest),
    }];
    for layer in &image.layers {
        blobs.push(LocalBlob {
            descriptor: stratum_builder::image::Descriptor::new(
                layer.media_type.parse::<MediaType>()?,
                layer.digest.clone(),
                layer.size,
            ),
            path: store.blob_path(&layer.digest),
        });
    }
    // One push per repository, with all of its tags.
    let mut by_repo: BTreeMap<String, (Reference, Vec<Tag>)> = BTreeMap::new();
    for tag in tags {
        let entry = by_repo
            .entry(tag.repository().to_string())
            .or_insert_with(|| (tag.clone(), Vec::new()));
        if let Some(t) = tag.tag() {
            entry.1.push(t.clone());
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for (repo, (reference, repo_tags)) in by_repo {
        sink.event(&progress::Event::Pushing { reference: &repo });
        let mount_from = outcome
            .base_repository
            .as_ref()
            .filter(|b| b.registry() == reference.repository().registry());
        let pushed = runtime.block_on(push_image(
            client,
            &ImagePush {
                repository: reference.repository(),
                blobs: &blobs,
                manifest: &manifest,
                tags: &repo_tags,
                mount_from,
                concurrency: PUSH_CONCURRENCY,
            },
        ))?;
        let size_of = |digest: &stratum_builder::image::Digest| {
            blobs
                .iter()
                .find(|b| &b.descriptor.digest == digest)
                .map_or(0, |b| b.descriptor.size)
        };
        let uploaded: Vec<_> = pushed
            .blobs
            .iter()
            .filter(|(_, how)| matches!(how, BlobPushed::Uploaded))
            .collect();
        sink.event(&progress::Event::Pushed {
            reference: &repo,
            digest: &pushed.digest.to_string(),
            blobs_uploaded: uploaded.len(),
            bytes_uploaded: uploaded.iter().map(|(d, _)| size_of(d)).sum(),
            blobs_skipped: pushed.blobs.len() - uploaded.len(),
        });
    }
    Ok(())
}

fn print_summary(outcome: &BuildOutcome, quiet: bool) {
    let image = &outcome.image;
    println!("{}", image.config_digest);
    if quiet {
        return;
    }
    println!("manifest {}", image.manifest_digest);
    for layer in &image.layers {
        println!(
            "layer {} (diffID {}, {} bytes)",
            layer.digest, layer.diff_id, layer.size
        );
    }
}

/// A tar context on standard input, extracted with the same confinement as image layers.
fn extract_stdin_context(store: &Store) -> Result<tempfile::TempDir> {
    let dir = store.scratch_dir("context")?;
    let stdin = std::io::stdin().lock();
    let reader: Box<dyn Read> = layer::decompress(stdin)
        .map_err(|e| anyhow::anyhow!("reading the context tar from standard input: {e}"))?;
    layer::apply_layer(
        reader,
        dir.path(),
        &layer::ApplyOptions::new(layer::ApplyMode::Flatten),
    )
    .map_err(|e| anyhow::anyhow!("extracting the context tar from standard input: {e}"))?;
    Ok(dir)
}

/// An object context (https, s3, gs, azblob URL): fetched into a scratch directory of the
/// store and unpacked there. Credentials come from the environment's usual chains (AWS_*
/// variables, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*), basic auth from the URL's userinfo, a
/// private CA from SSL_CERT_FILE.
fn fetch_object_context(store: &Store, url: &str) -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = store.scratch_dir("object-context")?;
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).with_context(|| format!("creating {}", tree.display()))?;
    let spec = object::ObjectFetch {
        url,
        sha256: None,
        max_bytes: object::DEFAULT_MAX_BYTES,
    };
    let fetched = object::fetch(&spec, &object::ObjectAuth::anonymous(), &tree)?;
    eprintln!(
        "stratum: fetched the context {} ({:?}, sha256 {})",
        object::redact(url),
        fetched.kind,
        fetched.sha256
    );
    Ok((dir, tree))
}

/// SIGTERM or SIGINT cancels the build: the running step's process tree is killed, mounts go
/// away, and the build stops with "the build was cancelled".
pub(crate) fn watch_signals(cancel: CancelToken) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    // Blocked here, before any other thread exists, so every thread inherits the mask and the
    // watcher alone receives them.
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            eprintln!("stratum: signal received, cancelling the build");
            cancel.cancel();
        }
    });
}

/// `KEY=VALUE` flags (`--label`, `--annotation`) as a map; a later duplicate key wins, as in
/// `docker build`.
/// `--cache-repo`: a repository, since every entry gets its own tag in it.
pub(crate) fn parse_cache_repo(text: &str) -> Result<Repository> {
    Repository::parse(text).with_context(|| {
        format!(
            "--cache-repo {text:?}: give a repository without a tag or digest \
             (e.g. registry.example.com/team/app-cache); each cache entry gets its own tag in it"
        )
    })
}

fn key_values(flag: &str, given: &[String]) -> Result<BTreeMap<String, String>> {
    given
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => bail!("{flag} {l:?}: expected KEY=VALUE"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs_parse_like_buildkit() {
        let table = [
            (
                "type=oci,dest=/tmp/x",
                Some(OutputSpec::Oci("/tmp/x".into())),
            ),
            (
                "type=oci-archive,dest=a.tar",
                Some(OutputSpec::OciArchive("a.tar".into())),
            ),
            (
                "type=docker-archive,dest=d.tar",
                Some(OutputSpec::DockerArchive("d.tar".into())),
            ),
            ("type=registry", Some(OutputSpec::Registry)),
            ("type=oci", None),
            ("type=tar,dest=x", None),
            ("dest=x", None),
            ("type=oci,dest=x,extra=1", None),
        ];
        for (text, expected) in table {
            assert_eq!(parse_output(text).ok(), expected, "{text}");
        }
    }

    #[test]
    fn a_cache_repo_is_a_repository_without_tag_or_digest() {
        let repo = parse_cache_repo("registry.example.com:5000/team/app-cache").unwrap();
        assert_eq!(repo.registry(), "registry.example.com:5000");
        assert_eq!(repo.path(), "team/app-cache");
        for bad in [
            "registry.example.com/team/app-cache:latest",
            "registry.example.com/team/app-cache@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "Not A Repo",
        ] {
            let error = format!("{:#}", parse_cache_repo(bad).unwrap_err());
            assert!(error.contains("without a tag or digest"), "{bad}: {error}");
        }
    }
}
