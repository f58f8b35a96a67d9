//! `stratum pod-build`: the builder pod's entry point. Reads the operator's `BuildRequest` from
//! the environment, builds, pushes, and writes a `BuildResult` to the termination message —
//! pushed or failed, always one result, so the operator never has to guess.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use stratum_builder::build::{
    BuildError, BuildOutcome, BuildSpec, Executor, ImageFormat, NetworkMode, progress,
};
use stratum_builder::image::{Reference, Repository, Tag};
use stratum_builder::layer;
use stratum_builder::registry::{ClientConfig, Credentials, RegistryClient};
use stratum_builder::sandbox::CancelToken;
use stratum_builder::source::SourceErrorKind;
use stratum_builder::source::git::{GitAuth, GitError};
use stratum_builder::source::object::{self, ObjectAuth, ObjectError, ObjectFetch};
use stratum_builder::store::Store;
use stratum_crds::contract::{
    BuildFailure, BuildResult, BuiltSource, FailureReason, PushedImage, RequestSource, StepTiming,
};
use stratum_crds::{BuildRequest, Compression, ImageFormat as RequestFormat};

use crate::build_cmd::{push_all, watch_signals};
use crate::cli::PodBuildArgs;
use crate::git_context::{self, GitContext, GitSourceSpec};

/// Runs the request and writes the result; the exit code says whether an image was pushed.
pub fn run(args: &PodBuildArgs) -> Result<()> {
    let mut fetched = None;
    let result = match BuildRequest::from_env() {
        Ok(request) => build(&request, &args.cache_dir, &mut fetched),
        Err(e) => Err(failure(
            FailureReason::BuilderError,
            format!("the build request: {e}"),
        )),
    };
    let (result, ok) = match result {
        Ok(result) => (result, true),
        Err(failure) => (failed(failure, fetched), false),
    };
    let encoded = result.encode();
    std::fs::write(&args.termination_log, &encoded).with_context(|| {
        format!(
            "writing the build result to {}",
            args.termination_log.display()
        )
    })?;
    if ok {
        Ok(())
    } else {
        Err(anyhow!(
            "the build failed; the result is in {}",
            args.termination_log.display()
        ))
    }
}

fn failure(reason: FailureReason, message: String) -> BuildFailure {
    BuildFailure {
        reason,
        message,
        step: None,
        step_index: None,
        line: None,
        exit_code: None,
    }
}

/// A failed result that still reports the revision fetched, when the fetch got that far:
/// `status.source` then shows what the failed build saw — for a `sha256` pin that did not
/// match, the digest of the bytes actually served, not the pin (docs/user-guide.md).
fn failed(failure: BuildFailure, fetched: Option<BuiltSource>) -> BuildResult {
    let mut result = BuildResult::failed(failure);
    result.source = fetched;
    result
}

/// Builds and pushes; `fetched` is set as soon as the source's revision is known, so that a
/// failure after (or at) the fetch can still report it.
fn build(
    request: &BuildRequest,
    cache_dir: &Path,
    fetched: &mut Option<BuiltSource>,
) -> Result<BuildResult, BuildFailure> {
    let builder_error =
        |e: &dyn std::fmt::Display| failure(FailureReason::BuilderError, e.to_string());
    let image = Reference::parse(&request.output.image)
        .map_err(|e| failure(FailureReason::BuilderError, format!("output image: {e}")))?;
    let mut tags = vec![image.clone()];
    for tag in &request.output.additional_tags {
        let tag: Tag = tag.parse().map_err(|e| {
            failure(
                FailureReason::BuilderError,
                format!("additional tag {tag:?}: {e}"),
            )
        })?;
        tags.push(image.with_tag(tag));
    }
    let store = Store::open(cache_dir).map_err(|e| builder_error(&e))?;
    let cancel = CancelToken::new();
    watch_signals(cancel.clone());
    let context = match &request.source {
        RequestSource::Inline { dockerfile } => {
            let dir = store
                .scratch_dir("inline-context")
                .map_err(|e| builder_error(&e))?;
            BuildContext {
                path: dir.path().to_owned(),
                _keep: Box::new(dir),
                dockerfile: dockerfile.clone(),
                built: None,
            }
        }
        RequestSource::Url {
            url,
            sha256,
            context_dir,
            auth_dir,
        } => url_context(
            &store,
            url,
            sha256.as_deref(),
            context_dir.as_deref(),
            auth_dir.as_deref(),
            &request.dockerfile,
            fetched,
        )?,
        RequestSource::Git {
            url,
            commit,
            reference,
            context_dir,
            submodules,
            depth,
            auth_dir,
        } => {
            let spec = GitSourceSpec {
                url,
                commit,
                reference: reference.as_deref(),
                context_dir: context_dir.as_deref(),
                submodules: *submodules,
                depth: depth.and_then(|d| u32::try_from(d).ok()),
                keep_git_dir: false,
            };
            let git = fetch_git_source(&spec, auth_dir.as_deref(), &store, &cancel)?;
            BuildContext {
                path: git.context_dir.clone(),
                dockerfile: read_git_dockerfile(&git, request)?,
                built: Some(BuiltSource::Git {
                    commit: git.fetched.commit.clone(),
                }),
                _keep: Box::new(git),
            }
        }
    };

    fetched.clone_from(&context.built);
    let credentials = match &request.output.docker_config {
        Some(path) => Credentials::load(Path::new(path))
            .map_err(|e| failure(FailureReason::RegistryAuthFailed, e.to_string()))?,
        None => Credentials::anonymous(),
    };
    let cache_repo = request
        .cache
        .repository
        .as_deref()
        .map(Repository::parse)
        .transpose()
        .map_err(|e| builder_error(&format!("cache.repository: {e}")))?;
    let mut insecure = std::collections::BTreeSet::new();
    if request.output.insecure {
        // `output.insecure` marks test registries; the cache repository is written like the
        // image, so it is trusted the same way.
        insecure.insert(image.repository().registry().to_owned());
        insecure.extend(cache_repo.iter().map(|r| r.registry().to_owned()));
    }
    let client = RegistryClient::new(
        ClientConfig {
            insecure_registries: insecure,
            ..ClientConfig::default()
        },
        credentials,
    )
    .map_err(|e| builder_error(&e))?;
    let sink: Arc<dyn progress::Progress> = Arc::new(progress::Plain::new(std::io::stderr(), true));
    let spec = BuildSpec {
        context_dir: context.path.clone(),
        dockerfile: context.dockerfile.clone(),
        dockerfile_name: request.dockerfile.clone(),
        build_args: request
            .build_args
            .iter()
            .map(|a| (a.name.clone(), a.value.clone()))
            .collect::<BTreeMap<_, _>>(),
        target: request.target.clone(),
        labels: request.labels.clone(),
        annotations: request.annotations.clone(),
        no_cache: request.cache.disabled,
        compression: match request.output.compression {
            Compression::Gzip => layer::Compression::Gzip { level: 1 },
            Compression::Zstd => layer::Compression::Zstd { level: 3 },
        },
        format: match request.output.format {
            RequestFormat::Oci => ImageFormat::Oci,
            RequestFormat::Docker => ImageFormat::Docker,
        },
        source_date_epoch: request
            .source_date_epoch
            .or(request.reproducible.then_some(0)),
        network: NetworkMode::Host,
        step_timeout: None,
        parallelism: std::thread::available_parallelism().map_or(1, usize::from),
    };
    let executor = Executor::new(
        spec,
        store.clone(),
        Arc::new(client.clone()),
        sink.clone(),
        cancel,
    )
    .map_err(|e| builder_error(&e))?
    .with_cache_repository(cache_repo);
    let outcome = executor.run().map_err(|e| build_failure(&e))?;
    push_all(&store, &client, &outcome, &tags, &*sink).map_err(|e| push_failure(&e))?;
    let mut result = result_of(&store, &outcome);
    result.source = context.built;
    Ok(result)
}

/// Fetches the request's pinned commit with the Secret mounted at `auth_dir`.
fn fetch_git_source(
    spec: &GitSourceSpec<'_>,
    auth_dir: Option<&str>,
    store: &Store,
    cancel: &CancelToken,
) -> Result<GitContext, BuildFailure> {
    let git_failure = |e: GitError| failure(git_context::failure_reason(&e), e.to_string());
    let auth = match auth_dir {
        Some(dir) => GitAuth::from_secret_dir(Path::new(dir)).map_err(git_failure)?,
        None => GitAuth::Anonymous,
    };
    let git = git_context::fetch(spec, &auth, store, cancel).map_err(git_failure)?;
    eprintln!(
        "fetched {} at commit {}",
        stratum_builder::source::git::redact_url(spec.url),
        git.fetched.commit
    );
    Ok(git)
}

fn read_git_dockerfile(git: &GitContext, request: &BuildRequest) -> Result<String, BuildFailure> {
    let path = git
        .dockerfile(&request.dockerfile)
        .map_err(|e| failure(git_context::failure_reason(&e), e.to_string()))?;
    std::fs::read_to_string(&path).map_err(|e| {
        failure(
            FailureReason::DockerfileInvalid,
            format!("reading the Dockerfile {}: {e}", request.dockerfile),
        )
    })
}

/// The build context: where it is, what keeps it there until the build is done (a scratch
/// directory or a checkout, removed on drop), the Dockerfile text, and the revision fetched.
struct BuildContext {
    path: PathBuf,
    _keep: Box<dyn std::any::Any>,
    dockerfile: String,
    built: Option<BuiltSource>,
}

/// Fetches an object source (https, s3, gs, azblob) into a scratch directory, verified against
/// its pin, and picks `contextDir` and the Dockerfile inside it.
fn url_context(
    store: &Store,
    url: &str,
    sha256: Option<&str>,
    context_dir: Option<&str>,
    auth_dir: Option<&str>,
    dockerfile: &str,
    fetched: &mut Option<BuiltSource>,
) -> Result<BuildContext, BuildFailure> {
    let fetch_failure = |e: ObjectError| failure(source_reason(e.kind()), e.to_string());
    let auth = match auth_dir {
        Some(dir) => ObjectAuth::from_secret_dir(Path::new(dir)).map_err(fetch_failure)?,
        None => ObjectAuth::anonymous(),
    };
    let dir = store
        .scratch_dir("object-context")
        .map_err(|e| failure(FailureReason::BuilderError, e.to_string()))?;
    // The spool goes beside the tree, inside the scratch directory, so it is never part of
    // the context.
    let root = dir.path().join("tree");
    std::fs::create_dir(&root).map_err(|e| {
        failure(
            FailureReason::BuilderError,
            format!("{}: {e}", root.display()),
        )
    })?;
    let spec = ObjectFetch {
        url,
        sha256,
        max_bytes: object::DEFAULT_MAX_BYTES,
    };
    let object = object::fetch(&spec, &auth, &root).map_err(|e| {
        if let ObjectError::Mismatch { actual, .. } = &e {
            *fetched = Some(BuiltSource::Url {
                sha256: actual.clone(),
            });
        }
        fetch_failure(e)
    })?;
    *fetched = Some(BuiltSource::Url {
        sha256: object.sha256.clone(),
    });
    let subdir = match context_dir {
        Some(sub) => object::contained_path(&root, sub, "contextDir").map_err(fetch_failure)?,
        None => root,
    };
    // A missing Dockerfile (or one that is a link out of the tree) is the Dockerfile's
    // problem, not the fetch's.
    let dockerfile_path = object::contained_path(&subdir, dockerfile, "Dockerfile")
        .map_err(|e| failure(FailureReason::DockerfileInvalid, e.to_string()))?;
    let text = std::fs::read_to_string(&dockerfile_path).map_err(|e| {
        failure(
            FailureReason::DockerfileInvalid,
            format!(
                "cannot read the Dockerfile {dockerfile} from {}: {e}",
                object::redact(url)
            ),
        )
    })?;
    Ok(BuildContext {
        path: subdir,
        _keep: Box::new(dir),
        dockerfile: text,
        built: Some(BuiltSource::Url {
            sha256: object.sha256,
        }),
    })
}

/// The contract's reason for a source failure (shared by git and object sources).
fn source_reason(kind: SourceErrorKind) -> FailureReason {
    match kind {
        SourceErrorKind::NotFound | SourceErrorKind::Invalid => FailureReason::FetchFailed,
        SourceErrorKind::Auth => FailureReason::SourceAuthFailed,
        SourceErrorKind::Unavailable => FailureReason::SourceUnavailable,
        SourceErrorKind::Mismatch => FailureReason::SourceMismatch,
    }
}

fn result_of(store: &Store, outcome: &BuildOutcome) -> BuildResult {
    let image = &outcome.image;
    let config_size =
        std::fs::metadata(store.blob_path(&image.config_digest)).map_or(0, |m| m.len());
    let size = image.manifest_size + config_size + image.layers.iter().map(|l| l.size).sum::<u64>();
    let mut result = BuildResult::pushed(PushedImage {
        manifest_digest: image.manifest_digest.to_string(),
        config_digest: image.config_digest.to_string(),
        size,
        media_type: image.manifest_media_type.clone(),
    });
    result.steps = outcome
        .steps
        .iter()
        .map(|s| StepTiming {
            index: u32::try_from(s.index).unwrap_or(u32::MAX),
            cached: s.cached,
            duration_millis: s.duration_millis,
        })
        .collect();
    result
}

/// Maps a build error to the contract's reasons (and keeps the line and exit code of a RUN).
fn build_failure(error: &BuildError) -> BuildFailure {
    let reason = match error {
        BuildError::Dockerfile(_) => FailureReason::DockerfileInvalid,
        BuildError::StepFailed { .. } | BuildError::StepKilled { .. } | BuildError::Step { .. } => {
            FailureReason::StepFailed
        }
        BuildError::Pull { source, .. } => match source.reason() {
            "RegistryAuthFailed" => FailureReason::RegistryAuthFailed,
            "RegistryError" | "LocalIOError" => FailureReason::RegistryUnavailable,
            _ => FailureReason::PullFailed,
        },
        BuildError::Unpack { .. } => FailureReason::PullFailed,
        // The operator tells a deadline from a deletion (the pod's reason) and words it.
        BuildError::Cancelled | BuildError::CancelledStep { .. } => FailureReason::Timeout,
        BuildError::Store(_) | BuildError::Io { .. } | BuildError::Other(_) => {
            FailureReason::BuilderError
        }
    };
    BuildFailure {
        reason,
        message: error.to_string(),
        step: match error {
            BuildError::StepFailed { command, .. }
            | BuildError::StepKilled { command, .. }
            | BuildError::CancelledStep { command, .. } => Some(format!("RUN {command}")),
            BuildError::Step { instruction, .. } => Some(instruction.clone()),
            _ => None,
        },
        step_index: None,
        line: error.line().and_then(|l| u32::try_from(l).ok()),
        exit_code: error.exit_code(),
    }
}

fn push_failure(error: &anyhow::Error) -> BuildFailure {
    let registry = error.downcast_ref::<stratum_builder::registry::RegistryError>();
    let reason = match registry.map(|e| e.reason()) {
        Some("RegistryAuthFailed") => FailureReason::RegistryAuthFailed,
        Some("RegistryError") => FailureReason::RegistryUnavailable,
        _ => FailureReason::PushFailed,
    };
    failure(reason, format!("pushing: {error:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signal during a RUN is reported as `Timeout` with the step and line, so the operator can
    /// say which step the deadline stopped (it words the message itself).
    #[test]
    fn a_cancelled_run_names_its_step() {
        let f = build_failure(&BuildError::CancelledStep {
            file: "Dockerfile".into(),
            line: 2,
            command: "/bin/sh -c sleep 600".into(),
        });
        assert_eq!(f.reason, FailureReason::Timeout);
        assert_eq!(f.step.as_deref(), Some("RUN /bin/sh -c sleep 600"));
        assert_eq!(f.line, Some(2));
        let f = build_failure(&BuildError::Cancelled);
        assert_eq!(
            (f.reason, f.step, f.line),
            (FailureReason::Timeout, None, None)
        );
    }
}
