//! Verification against a registry double: every way the claim and the registry can disagree.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::json;
use stratum_builder::image::{Descriptor, Digest, Manifest, ManifestRef, MediaType, Repository};
use stratum_builder::registry::{ApiErrors, BlobPushed, FetchedManifest, Registry, RegistryError};

use super::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A registry holding documents by digest; `down` makes every call a 503.
#[derive(Default)]
struct Double {
    docs: HashMap<Digest, Bytes>,
    down: bool,
}

impl Double {
    fn put(&mut self, bytes: Vec<u8>) -> (Digest, u64) {
        let digest = Digest::of(&bytes);
        let size = bytes.len() as u64;
        self.docs.insert(digest.clone(), Bytes::from(bytes));
        (digest, size)
    }

    fn get(&self, digest: &Digest) -> Result<Bytes, RegistryError> {
        if self.down {
            return Err(RegistryError::Status {
                request: "GET".into(),
                status: 503,
                errors: ApiErrors(Vec::new()),
                retry_after: None,
            });
        }
        self.docs
            .get(digest)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound {
                request: format!("GET {digest}"),
                errors: ApiErrors(Vec::new()),
            })
    }
}

fn unused<'a, T: Send + 'a>() -> BoxFuture<'a, Result<T, RegistryError>> {
    Box::pin(async {
        Err(RegistryError::Protocol {
            request: "double".into(),
            detail: "unused".into(),
        })
    })
}

impl Registry for Double {
    fn fetch_manifest<'a>(
        &'a self,
        _repo: &'a Repository,
        reference: &'a ManifestRef,
    ) -> BoxFuture<'a, Result<FetchedManifest, RegistryError>> {
        Box::pin(async move {
            let ManifestRef::Digest(digest) = reference else {
                panic!("verification must fetch by digest")
            };
            let bytes = self.get(digest)?;
            let manifest = Manifest::parse(&bytes, None).expect("test manifest");
            Ok(FetchedManifest {
                digest: digest.clone(),
                media_type: manifest.media_type(),
                bytes,
                manifest,
            })
        })
    }
    fn fetch_blob<'a>(
        &'a self,
        _r: &'a Repository,
        blob: &'a Descriptor,
        _l: u64,
    ) -> BoxFuture<'a, Result<Bytes, RegistryError>> {
        Box::pin(async move { self.get(&blob.digest) })
    }
    fn fetch_blob_to<'a>(
        &'a self,
        _r: &'a Repository,
        _b: &'a Descriptor,
        _d: &'a Path,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        unused()
    }
    fn blob_exists<'a>(
        &'a self,
        _r: &'a Repository,
        _d: &'a Digest,
    ) -> BoxFuture<'a, Result<bool, RegistryError>> {
        unused()
    }
    fn push_blob<'a>(
        &'a self,
        _r: &'a Repository,
        _b: &'a Descriptor,
        _p: &'a Path,
        _m: Option<&'a Repository>,
    ) -> BoxFuture<'a, Result<BlobPushed, RegistryError>> {
        unused()
    }
    fn push_manifest<'a>(
        &'a self,
        _r: &'a Repository,
        _f: &'a ManifestRef,
        _t: &'a MediaType,
        _b: &'a [u8],
    ) -> BoxFuture<'a, Result<Digest, RegistryError>> {
        unused()
    }
}

fn layer_digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

/// An image with two layers (and an empty-layer history entry between them).
fn image(registry: &mut Double) -> PushedImage {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest(0xd1), layer_digest(0xd2)]},
        "history": [
            {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
            {"created_by": "/bin/sh -c #(nop)  ENV A=1", "empty_layer": true},
            {"created_by": "RUN /bin/sh -c make # buildkit"}
        ]
    }))
    .unwrap();
    let (config_digest, config_size) = registry.put(config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_size},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": layer_digest(0x11), "size": 100},
            {"mediaType": OCI_LAYER, "digest": layer_digest(0x22), "size": 200}
        ]
    }))
    .unwrap();
    let manifest_len = manifest.len() as u64;
    let (manifest_digest, _) = registry.put(manifest);
    PushedImage {
        manifest_digest: manifest_digest.to_string(),
        config_digest: config_digest.to_string(),
        size: manifest_len + config_size + 300,
        media_type: OCI_MANIFEST.into(),
    }
}

const IMAGE: &str = "registry.example.com:5000/team/app:1";

fn run(registry: &Double, pushed: &PushedImage) -> Result<VerifiedImage, VerifyError> {
    futures::executor::block_on(verify_with(registry, IMAGE, pushed))
}

fn refused(result: Result<VerifiedImage, VerifyError>) -> (&'static str, String) {
    match result {
        Err(VerifyError::Refused { reason, message }) => (reason, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn verified_image_is_what_the_registry_holds() {
    let mut registry = Double::default();
    let pushed = image(&mut registry);
    let verified = run(&registry, &pushed).unwrap();
    assert_eq!(verified.digest, pushed.manifest_digest);
    assert_eq!(verified.image_id, pushed.config_digest);
    assert_eq!(
        verified.image,
        format!(
            "registry.example.com:5000/team/app@{}",
            pushed.manifest_digest
        )
    );
    assert_eq!(verified.size, i64::try_from(pushed.size).unwrap());
    let layers: Vec<_> = verified
        .layers
        .iter()
        .map(|l| {
            (
                l.digest.clone(),
                l.diff_id.clone(),
                l.size,
                l.media_type.as_str(),
                l.created_by.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        layers,
        [
            (
                layer_digest(0x11),
                layer_digest(0xd1),
                100,
                OCI_LAYER,
                Some("/bin/sh -c #(nop) ADD file:abc in / ")
            ),
            (
                layer_digest(0x22),
                layer_digest(0xd2),
                200,
                OCI_LAYER,
                Some("RUN /bin/sh -c make # buildkit")
            ),
        ]
    );
}

#[test]
fn a_claim_the_registry_does_not_back_is_refused() {
    let mut registry = Double::default();
    let pushed = image(&mut registry);

    let missing = PushedImage {
        manifest_digest: layer_digest(0x99),
        ..pushed.clone()
    };
    let (reason, message) = refused(run(&registry, &missing));
    assert_eq!(reason, reason::VERIFICATION_FAILED, "{message}");

    let other_config = PushedImage {
        config_digest: layer_digest(0x98),
        ..pushed.clone()
    };
    let (reason, message) = refused(run(&registry, &other_config));
    assert_eq!(reason, reason::VERIFICATION_FAILED);
    assert!(message.contains("names config"), "{message}");

    let wrong_size = PushedImage {
        size: pushed.size + 1,
        ..pushed.clone()
    };
    let (_, message) = refused(run(&registry, &wrong_size));
    assert!(message.contains("holds"), "{message}");

    let wrong_type = PushedImage {
        media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
        ..pushed.clone()
    };
    let (_, message) = refused(run(&registry, &wrong_type));
    assert!(message.contains("media type"), "{message}");

    let bad_digest = PushedImage {
        manifest_digest: "sha256:nothex".into(),
        ..pushed
    };
    let (_, message) = refused(run(&registry, &bad_digest));
    assert!(message.contains("invalid manifest digest"), "{message}");
}

#[test]
fn an_outage_is_not_a_verdict() {
    let mut registry = Double::default();
    let pushed = image(&mut registry);
    registry.down = true;
    assert!(matches!(
        run(&registry, &pushed),
        Err(VerifyError::Unavailable { .. })
    ));
}

#[test]
fn layers_need_one_diff_id_each_and_history_only_when_it_lines_up() {
    let mut registry = Double::default();
    let pushed = image(&mut registry);
    let digest: Digest = pushed.manifest_digest.parse().unwrap();
    let Manifest::Image(manifest) = Manifest::parse(&registry.docs[&digest], None).unwrap() else {
        panic!()
    };
    let config_digest: Digest = pushed.config_digest.parse().unwrap();
    let mut config = ImageConfig::parse(&registry.docs[&config_digest]).unwrap();
    config.history.pop();
    let layers = layers(&manifest, &config).unwrap();
    assert!(layers.iter().all(|l| l.created_by.is_none()), "{layers:?}");
    config.rootfs.diff_ids.pop();
    assert!(
        super::layers(&manifest, &config)
            .unwrap_err()
            .contains("2 layers but the config has 1")
    );
}
