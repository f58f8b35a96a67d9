//! The result path: the builder's report is a claim; the registry is the proof.
//!
//! Design §3: `Succeeded` only after the manifest and the config are fetched *by digest* with the
//! push credentials. The registry client checks every byte against its digest, so what this
//! module returns — digests, sizes, layers — is what the registry holds, never what the
//! termination message said (threats §5 item 4, F11).

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use stratum_builder::image::{
    Digest, ImageConfig, ImageManifest, Manifest, ManifestRef, Reference,
};
use stratum_builder::registry::{
    ClientConfig, Credentials, MAX_CONFIG_BYTES, Registry, RegistryClient, RegistryError,
};
use stratum_crds::contract::PushedImage;
use stratum_crds::types::status::{image_by_digest, repository_of};
use stratum_crds::{LayerStatus, reason};

/// What to verify: the builder's claim about one push.
#[derive(Debug, Clone, Copy)]
pub struct VerifyRequest<'a> {
    /// `spec.output.image` (the tag the builder pushed).
    pub image: &'a str,
    pub pushed: &'a PushedImage,
    /// The push Secret's `.dockerconfigjson`, when the spec names one.
    pub docker_config: Option<&'a [u8]>,
    /// `spec.output.insecure`: plain HTTP.
    pub insecure: bool,
}

/// The image as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedImage {
    /// `sha256:` of the manifest.
    pub digest: String,
    /// `sha256:` of the config: the image ID.
    pub image_id: String,
    /// `repository@digest`.
    pub image: String,
    /// Manifest + config + layer bytes.
    pub size: i64,
    pub layers: Vec<LayerStatus>,
}

/// Why verification did not confirm the claim.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The registry could not be asked (network, 5xx, 429): verify again later; the build
    /// neither succeeds nor fails meanwhile.
    #[error("cannot verify {image} in the registry yet: {source}")]
    Unavailable {
        image: String,
        #[source]
        source: RegistryError,
    },
    /// The registry answered, and the answer disproves the claim (or refuses the credentials).
    #[error("{message}")]
    Refused {
        reason: &'static str,
        message: String,
    },
}

impl VerifyError {
    fn refused(message: impl Into<String>) -> Self {
        VerifyError::Refused {
            reason: reason::VERIFICATION_FAILED,
            message: message.into(),
        }
    }
}

/// The seam between the reconciler and the registry; tests pass a double.
pub trait ImageVerifier: Send + Sync {
    fn verify<'a>(
        &'a self,
        request: VerifyRequest<'a>,
    ) -> BoxFuture<'a, Result<VerifiedImage, VerifyError>>;
}

/// The real verifier: the builder's registry client, so auth and retries behave the same as in
/// the builder (issue 5 item 3).
#[derive(Debug, Clone, Default)]
pub struct RegistryVerifier {
    pub client_config: ClientConfig,
}

impl ImageVerifier for RegistryVerifier {
    fn verify<'a>(
        &'a self,
        request: VerifyRequest<'a>,
    ) -> BoxFuture<'a, Result<VerifiedImage, VerifyError>> {
        Box::pin(async move {
            let reference = Reference::parse(request.image).map_err(|e| {
                VerifyError::refused(format!("spec.output.image {}: {e}", request.image))
            })?;
            let credentials =
                match request.docker_config {
                    Some(bytes) => Credentials::from_docker_config(bytes, "the push Secret")
                        .map_err(|e| VerifyError::Refused {
                            reason: reason::REGISTRY_AUTH_FAILED,
                            message: e.to_string(),
                        })?,
                    None => Credentials::anonymous(),
                };
            let mut config = self.client_config.clone();
            if request.insecure {
                config.insecure_registries =
                    BTreeSet::from([reference.repository().registry().to_owned()]);
            }
            let client = RegistryClient::new(config, credentials)
                .map_err(|source| classify(request.image, source))?;
            verify_with(&client, request.image, request.pushed).await
        })
    }
}

/// Fetches the claimed manifest and config by digest from `registry` and returns what it holds.
pub async fn verify_with(
    registry: &dyn Registry,
    image: &str,
    pushed: &PushedImage,
) -> Result<VerifiedImage, VerifyError> {
    let reference = Reference::parse(image)
        .map_err(|e| VerifyError::refused(format!("spec.output.image {image}: {e}")))?;
    let repo = reference.repository();
    let manifest_digest: Digest = parse_digest("manifest", &pushed.manifest_digest)?;
    let config_digest: Digest = parse_digest("config", &pushed.config_digest)?;

    let fetched = registry
        .fetch_manifest(repo, &ManifestRef::Digest(manifest_digest.clone()))
        .await
        .map_err(|e| classify(image, e))?;
    let manifest = match &fetched.manifest {
        Manifest::Image(m) => m,
        Manifest::Index(_) => {
            return Err(VerifyError::refused(format!(
                "{image}@{manifest_digest} is an index, but the builder pushes single-platform images"
            )));
        }
    };
    if manifest.config.digest != config_digest {
        return Err(VerifyError::refused(format!(
            "the manifest {manifest_digest} names config {}, the builder reported {config_digest}",
            manifest.config.digest
        )));
    }
    if fetched.media_type.as_str() != pushed.media_type {
        return Err(VerifyError::refused(format!(
            "the manifest {manifest_digest} has media type {}, the builder reported {}",
            fetched.media_type, pushed.media_type
        )));
    }
    let config_bytes = registry
        .fetch_blob(repo, &manifest.config, MAX_CONFIG_BYTES)
        .await
        .map_err(|e| classify(image, e))?;
    let config = ImageConfig::parse(&config_bytes).map_err(|e| {
        VerifyError::refused(format!(
            "the config {config_digest} of {image} is invalid: {e}"
        ))
    })?;
    let layers = layers(manifest, &config).map_err(VerifyError::refused)?;
    let size = manifest.layers.iter().map(|l| l.size).fold(
        fetched.bytes.len() as u64 + manifest.config.size,
        u64::saturating_add,
    );
    if size != pushed.size {
        return Err(VerifyError::refused(format!(
            "{image}@{manifest_digest} holds {size} bytes (manifest, config and layers); the builder reported {}",
            pushed.size
        )));
    }
    let digest = manifest_digest.to_string();
    Ok(VerifiedImage {
        image: image_by_digest(repository_of(image), &digest),
        digest,
        image_id: config_digest.to_string(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        layers,
    })
}

/// `status.layers`: the manifest's layers with the config's diffIDs and, when the history's
/// non-empty entries line up one-to-one with the layers, the instruction that made each.
pub fn layers(manifest: &ImageManifest, config: &ImageConfig) -> Result<Vec<LayerStatus>, String> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(format!(
            "the manifest lists {} layers but the config has {} rootfs.diff_ids",
            manifest.layers.len(),
            diff_ids.len()
        ));
    }
    let made: Vec<&str> = config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created_by.as_str())
        .collect();
    let made = (made.len() == diff_ids.len()).then_some(made);
    Ok(manifest
        .layers
        .iter()
        .zip(diff_ids)
        .enumerate()
        .map(|(i, (layer, diff_id))| LayerStatus {
            digest: layer.digest.to_string(),
            diff_id: diff_id.to_string(),
            size: i64::try_from(layer.size).unwrap_or(i64::MAX),
            media_type: layer.media_type.to_string(),
            created_by: made
                .as_ref()
                .map(|m| m[i].to_owned())
                .filter(|c| !c.is_empty()),
        })
        .collect())
}

fn parse_digest(what: &str, text: &str) -> Result<Digest, VerifyError> {
    text.parse().map_err(|e| {
        VerifyError::refused(format!(
            "the builder reported an invalid {what} digest {text:?}: {e}"
        ))
    })
}

/// Transient registry trouble waits; an answer that disproves the claim fails.
fn classify(image: &str, error: RegistryError) -> VerifyError {
    let root = error.root();
    if root.retry_hint().is_some() {
        return VerifyError::Unavailable {
            image: image.to_owned(),
            source: error,
        };
    }
    let reason = match error.reason() {
        "RegistryAuthFailed" => reason::REGISTRY_AUTH_FAILED,
        _ => reason::VERIFICATION_FAILED,
    };
    VerifyError::Refused {
        reason,
        message: format!("verifying {image}: {error}"),
    }
}

#[cfg(test)]
#[path = "result_tests.rs"]
mod tests;
