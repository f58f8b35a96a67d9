//! `spec.output`, `spec.cache` and `spec.buildArgs`: what the build produces and with what inputs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cel;
use crate::patterns;
use crate::types::source::SecretReference;

/// Where and how the image is pushed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::DOCKER_FORMAT_GZIP.json()]))]
pub struct Output {
    /// The image to push, as a tag reference: `registry.example.com/team/app:1.2`. Without a tag,
    /// `latest` is pushed. Digests are not allowed here; the pushed digest is reported in
    /// `status.digest`.
    #[schemars(pattern(patterns::TAGGED_IMAGE), length(min = 1, max = 512))]
    pub image: String,

    /// More tags to push the same image under, in the same repository (e.g. `latest`, `v1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(pattern(patterns::TAG)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub additional_tags: Vec<String>,

    /// A Secret in this namespace of type `kubernetes.io/dockerconfigjson` with credentials for
    /// the registry. The same credentials pull base images from that registry and write the
    /// remote cache. Without it the push is anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_secret_ref: Option<SecretReference>,

    /// Talk to the registry over plain HTTP, or over HTTPS without verifying its certificate.
    /// Only for test registries.
    #[serde(default)]
    pub insecure: bool,

    /// The manifest format: `oci` (OCI image manifest, the default) or `docker` (Docker image
    /// manifest v2 schema 2, for registries and runtimes that do not read OCI).
    #[serde(default)]
    pub format: ImageFormat,

    /// How layers are compressed: `gzip` (the default, readable everywhere) or `zstd` (smaller and
    /// faster to unpack; needs containerd 1.5+ or CRI-O and `format: oci`).
    #[serde(default)]
    pub compression: Compression,
}

/// The manifest format of the pushed image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// `application/vnd.oci.image.manifest.v1+json`.
    #[default]
    Oci,
    /// `application/vnd.docker.distribution.manifest.v2+json`.
    Docker,
}

/// The compression of the pushed layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `tar+gzip` layers.
    #[default]
    Gzip,
    /// `tar+zstd` layers (OCI format only).
    Zstd,
}

/// Layer cache settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::CACHE_DISABLED_WITHOUT_REPOSITORY.json()]))]
pub struct Cache {
    /// A repository to keep cached layers in between builds (e.g.
    /// `registry.example.com/team/app-cache`), so that a fresh builder pod can reuse the layers of
    /// earlier builds. Written with the push credentials. Without it, only the base image and the
    /// builder pod's own work directory are reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::REPOSITORY), length(max = 512))]
    pub repository: Option<String>,

    /// Build every step from scratch, like `docker build --no-cache`.
    #[serde(default)]
    pub disabled: bool,
}

/// A build argument, as `docker build --build-arg name=value`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildArg {
    /// The name of an `ARG` in the Dockerfile.
    #[schemars(pattern(patterns::BUILD_ARG_NAME), length(min = 1, max = 128))]
    pub name: String,

    /// The value. Build arguments end up in the image history: never pass secrets this way.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub value: String,
}
