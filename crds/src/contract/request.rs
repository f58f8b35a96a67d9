//! [`BuildRequest`]: everything the builder pod needs, written by the operator.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::EnvVar;
use serde::{Deserialize, Serialize};

use super::{
    DOCKER_CONFIG_KEY, PUSH_SECRET_DIR, REQUEST_ENV, REQUEST_FILE_ENV, REQUEST_MAX_BYTES,
    REQUEST_VERSION, SOURCE_SECRET_DIR,
};
use crate::patterns;
use crate::types::spec::DEFAULT_DOCKERFILE;
use crate::types::status::ResolvedSource;
use crate::validate::{self, Invalid};
use crate::{
    BuildArg, Cache, Compression, GitSource, GoDuration, ImageBuild, ImageBuildSpec, ImageFormat,
    InlineSource, Output, Source, SourceKind, UrlSource,
};

/// Why a request could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("no build request: set {REQUEST_ENV} (JSON) or {REQUEST_FILE_ENV} (a path to it)")]
    Missing,
    #[error("cannot read the build request from {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the build request is {size} bytes, more than the {max} an environment variable can \
         carry: shorten the inline Dockerfile, build arguments, labels or annotations"
    )]
    TooLarge { size: usize, max: usize },
    #[error(
        "the build request has version {found}; this builder reads version {REQUEST_VERSION}: use a builder image that matches the operator"
    )]
    Version { found: u32 },
    #[error("the build request is malformed: {what}")]
    Malformed { what: String },
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("the source is not resolved yet: {what}")]
    Unresolved { what: &'static str },
}

/// The request (version [`REQUEST_VERSION`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildRequest {
    /// Always [`REQUEST_VERSION`].
    pub v: u32,
    /// Which build this is, for logs.
    pub build: BuildIdentity,
    pub source: RequestSource,
    /// The Dockerfile's path in the context (for an inline source, the name to write it under).
    pub dockerfile: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_args: Vec<BuildArg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub output: RequestOutput,
    #[serde(default)]
    pub cache: RequestCache,
    #[serde(default)]
    pub reproducible: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<i64>,
    /// The build's deadline in seconds (the pod's `activeDeadlineSeconds` is the same); a builder
    /// that stops itself first can report `Timeout` with the step it was on.
    pub timeout_seconds: u64,
}

/// The ImageBuild and attempt a request belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildIdentity {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    pub generation: i64,
    pub attempt: i32,
}

/// The source, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum RequestSource {
    Git {
        url: String,
        /// The commit to check out (full SHA), resolved by the operator.
        commit: String,
        /// The revision as the user wrote it, for fetching servers that refuse fetch-by-SHA.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context_dir: Option<String>,
        #[serde(default)]
        submodules: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        depth: Option<i32>,
        /// A directory holding the Secret's keys (`username`/`password` or `ssh-privatekey` and
        /// `known_hosts`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth_dir: Option<String>,
    },
    Url {
        url: String,
        /// The content must have this sha256 (the spec's pin).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context_dir: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth_dir: Option<String>,
    },
    Inline {
        dockerfile: String,
    },
}

/// Where and how to push.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestOutput {
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_tags: Vec<String>,
    #[serde(default)]
    pub format: ImageFormat,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub insecure: bool,
    /// The docker config (`.dockerconfigjson`) with the registry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_config: Option<String>,
}

/// Cache settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestCache {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default)]
    pub disabled: bool,
}

impl BuildRequest {
    /// The request for `attempt` of `build`, whose source resolved to `resolved`; a build without
    /// `spec.timeout` gets `default_timeout` (the operator's `--default-timeout`). Fails when the
    /// spec is invalid or a git source has no resolved commit.
    pub fn for_build(
        build: &ImageBuild,
        resolved: &ResolvedSource,
        attempt: i32,
        default_timeout: std::time::Duration,
    ) -> Result<Self, RequestError> {
        validate::validate(build)?;
        let spec = &build.spec;
        let auth = |secret: &Option<_>| secret.as_ref().map(|_| SOURCE_SECRET_DIR.to_owned());
        let source = match spec.source.kind() {
            Some(SourceKind::Git(git)) => RequestSource::Git {
                url: git.url.clone(),
                commit: resolved.git.as_ref().map(|g| g.commit.clone()).ok_or(
                    RequestError::Unresolved {
                        what: "status.source.git.commit is not set",
                    },
                )?,
                reference: git.revision.clone(),
                context_dir: git.context_dir.clone(),
                submodules: git.submodules,
                depth: git.depth,
                auth_dir: auth(&git.secret_ref),
            },
            Some(SourceKind::Url(url)) => RequestSource::Url {
                url: url.url.clone(),
                sha256: url.sha256.clone(),
                context_dir: url.context_dir.clone(),
                auth_dir: auth(&url.secret_ref),
            },
            Some(SourceKind::Inline(inline)) => RequestSource::Inline {
                dockerfile: inline.dockerfile.clone(),
            },
            // validate() refuses a spec without exactly one source.
            None => return Err(RequestError::Unresolved { what: "no source" }),
        };
        let timeout = match &spec.timeout {
            Some(timeout) => timeout.parse().map_err(|e| RequestError::Malformed {
                what: e.to_string(),
            })?,
            None => default_timeout,
        };
        let meta = &build.metadata;
        Ok(Self {
            v: REQUEST_VERSION,
            build: BuildIdentity {
                namespace: meta.namespace.clone().unwrap_or_default(),
                name: meta.name.clone().unwrap_or_default(),
                uid: meta.uid.clone(),
                generation: meta.generation.unwrap_or_default(),
                attempt,
            },
            source,
            dockerfile: spec.dockerfile_path().to_owned(),
            build_args: spec.build_args.clone(),
            target: spec.target.clone(),
            labels: spec.labels.clone(),
            annotations: spec.annotations.clone(),
            output: RequestOutput {
                image: spec.output.image.clone(),
                additional_tags: spec.output.additional_tags.clone(),
                format: spec.output.format,
                compression: spec.output.compression,
                insecure: spec.output.insecure,
                docker_config: spec
                    .output
                    .push_secret_ref
                    .as_ref()
                    .map(|_| format!("{PUSH_SECRET_DIR}/{DOCKER_CONFIG_KEY}")),
            },
            cache: spec
                .cache
                .as_ref()
                .map(|c| RequestCache {
                    repository: c.repository.clone(),
                    disabled: c.disabled,
                })
                .unwrap_or_default(),
            reproducible: spec.reproducible,
            source_date_epoch: spec.source_date_epoch,
            // Round up: a 1.5s timeout must not become 1s.
            timeout_seconds: timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0),
        })
    }

    /// The JSON for [`REQUEST_ENV`], refused when larger than [`REQUEST_MAX_BYTES`].
    pub fn encode(&self) -> Result<String, RequestError> {
        let json = serde_json::to_string(self).map_err(|e| RequestError::Malformed {
            what: e.to_string(),
        })?;
        if json.len() > REQUEST_MAX_BYTES {
            return Err(RequestError::TooLarge {
                size: json.len(),
                max: REQUEST_MAX_BYTES,
            });
        }
        Ok(json)
    }

    /// The builder container's environment variable carrying this request.
    pub fn to_env_var(&self) -> Result<EnvVar, RequestError> {
        Ok(EnvVar {
            name: REQUEST_ENV.to_owned(),
            value: Some(self.encode()?),
            value_from: None,
        })
    }

    /// Reads and checks the request in the builder: from the file named by
    /// [`REQUEST_FILE_ENV`] when set, else from [`REQUEST_ENV`].
    pub fn from_env() -> Result<Self, RequestError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// [`BuildRequest::from_env`] with the environment given as a function (for tests).
    pub fn from_env_with(env: impl Fn(&str) -> Option<String>) -> Result<Self, RequestError> {
        if let Some(path) = env(REQUEST_FILE_ENV) {
            let path = PathBuf::from(path);
            let unreadable = |source| RequestError::Unreadable {
                path: path.clone(),
                source,
            };
            let file = std::fs::File::open(&path).map_err(unreadable)?;
            let mut json = String::new();
            // One byte past the limit is enough to know the file is too large.
            file.take(REQUEST_MAX_BYTES as u64 + 1)
                .read_to_string(&mut json)
                .map_err(unreadable)?;
            return Self::from_json(&json);
        }
        let json = env(REQUEST_ENV).ok_or(RequestError::Missing)?;
        Self::from_json(&json)
    }

    /// Parses and checks a request: size, version, shape, then every field against the same rules
    /// as the ImageBuild spec. The operator wrote it from a validated spec; checking again means a
    /// mismatched operator or a hand-written request cannot reach git or the registry unchecked.
    pub fn from_json(json: &str) -> Result<Self, RequestError> {
        if json.len() > REQUEST_MAX_BYTES {
            return Err(RequestError::TooLarge {
                size: json.len(),
                max: REQUEST_MAX_BYTES,
            });
        }
        #[derive(Deserialize)]
        struct Version {
            v: Option<u32>,
        }
        let malformed = |e: serde_json::Error| RequestError::Malformed {
            what: e.to_string(),
        };
        let version: Version = serde_json::from_str(json).map_err(malformed)?;
        match version.v {
            Some(REQUEST_VERSION) => {}
            Some(found) => return Err(RequestError::Version { found }),
            None => {
                return Err(RequestError::Malformed {
                    what: "no version field \"v\"".to_owned(),
                });
            }
        }
        let request: Self = serde_json::from_str(json).map_err(malformed)?;
        request.check()?;
        Ok(request)
    }

    fn check(&self) -> Result<(), RequestError> {
        match &self.source {
            RequestSource::Git { commit, .. } if !patterns::matches(patterns::COMMIT, commit) => {
                return Err(RequestError::Malformed {
                    what: format!("commit {commit:?} is not a full commit SHA"),
                });
            }
            // The inline Dockerfile is written into an empty context under this name.
            RequestSource::Inline { .. } if self.dockerfile != DEFAULT_DOCKERFILE => {
                return Err(RequestError::Malformed {
                    what: format!(
                        "an inline Dockerfile is named {DEFAULT_DOCKERFILE:?}, not {:?}",
                        self.dockerfile
                    ),
                });
            }
            _ => {}
        }
        validate::validate_spec(&self.as_spec())?;
        Ok(())
    }

    /// The spec this request stands for, so that [`validate::validate_spec`] checks its fields.
    fn as_spec(&self) -> ImageBuildSpec {
        let secret = |dir: &Option<String>| {
            dir.as_ref().map(|_| crate::SecretReference {
                name: "request".to_owned(),
            })
        };
        let (source, dockerfile) = match &self.source {
            RequestSource::Git {
                url,
                commit,
                reference,
                context_dir,
                submodules,
                depth,
                auth_dir,
            } => (
                Source {
                    git: Some(GitSource {
                        url: url.clone(),
                        revision: Some(reference.clone().unwrap_or_else(|| commit.clone())),
                        context_dir: context_dir.clone(),
                        submodules: *submodules,
                        depth: *depth,
                        secret_ref: secret(auth_dir),
                        poll_interval: None,
                    }),
                    ..Source::default()
                },
                Some(self.dockerfile.clone()),
            ),
            RequestSource::Url {
                url,
                sha256,
                context_dir,
                auth_dir,
            } => (
                Source {
                    url: Some(UrlSource {
                        url: url.clone(),
                        sha256: sha256.clone(),
                        context_dir: context_dir.clone(),
                        secret_ref: secret(auth_dir),
                        poll_interval: None,
                    }),
                    ..Source::default()
                },
                Some(self.dockerfile.clone()),
            ),
            RequestSource::Inline { dockerfile } => (
                Source {
                    inline: Some(InlineSource {
                        dockerfile: dockerfile.clone(),
                    }),
                    ..Source::default()
                },
                None,
            ),
        };
        ImageBuildSpec {
            source,
            dockerfile,
            build_args: self.build_args.clone(),
            target: self.target.clone(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            output: Output {
                image: self.output.image.clone(),
                additional_tags: self.output.additional_tags.clone(),
                push_secret_ref: None,
                insecure: self.output.insecure,
                format: self.output.format,
                compression: self.output.compression,
            },
            cache: Some(Cache {
                repository: self.cache.repository.clone(),
                disabled: self.cache.disabled,
            }),
            reproducible: self.reproducible,
            source_date_epoch: self.source_date_epoch,
            timeout: Some(GoDuration::new(format!("{}s", self.timeout_seconds))),
            ..ImageBuildSpec::default()
        }
    }
}
