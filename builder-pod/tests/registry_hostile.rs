//! threats-and-faults §2.9 #48–#50 end to end: hostile manifests and blobs served (through the
//! fault proxy) in place of what the real registry holds. Every case must end in a typed error,
//! with nothing downloaded or written on the strength of an unverified document.

mod support;

use std::time::Duration;

use stratum_builder::image::{
    Descriptor, ImageManifest, MediaType, Platform, Reference, Repository, Serialized, Tag,
};
use stratum_builder::registry::{
    ClientConfig, ImagePush, Registry, RegistryClient, RegistryError, push_image,
};
use support::busybox::{Format, TestImage, busybox_base};
use support::proxy::{Fault, FaultProxy, Rule};
use support::registry::{Auth, TestRegistry, fast_retry};

struct Setup {
    _reg: TestRegistry,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
    base: TestImage,
    client: RegistryClient,
}

/// A registry holding the busybox base as `hostile/base:1`, behind a proxy.
async fn setup() -> Setup {
    let reg = TestRegistry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let base = busybox_base(dir.path(), Format::Oci);
    let repo = reg.repo("hostile/base");
    let tags: Vec<Tag> = vec!["1".parse().unwrap()];
    let push = ImagePush {
        repository: &repo,
        blobs: &base.blobs,
        manifest: &base.manifest,
        tags: &tags,
        mount_from: None,
        concurrency: 2,
    };
    push_image(&reg.client(), &push).await.unwrap();
    let proxy = FaultProxy::start(&reg.host_port, vec![]).await;
    let mut config = ClientConfig {
        retry: fast_retry(),
        read_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    };
    config.insecure_registries.insert(proxy.host_port.clone());
    let client = RegistryClient::new(config, reg.credentials_for(&proxy.host_port)).unwrap();
    Setup {
        _reg: reg,
        proxy,
        dir,
        base,
        client,
    }
}

impl Setup {
    fn reference(&self, suffix: &str) -> Reference {
        Reference::parse(&format!("{}/hostile/base{suffix}", self.proxy.host_port)).unwrap()
    }

    fn repo(&self) -> Repository {
        Repository::parse(&format!("{}/hostile/base", self.proxy.host_port)).unwrap()
    }

    /// Serves `body` for manifest GETs by tag, with `content_type`, as the registry would.
    fn serve_manifest(&self, body: Vec<u8>, content_type: &str) {
        self.proxy.set_rules(vec![
            Rule::new(
                "GET",
                "/manifests/1",
                Fault::Respond {
                    status: 200,
                    headers: vec![("Content-Type".into(), content_type.into())],
                    body,
                },
            )
            .times(usize::MAX),
        ]);
    }

    async fn resolve(
        &self,
        suffix: &str,
    ) -> Result<stratum_builder::registry::ResolvedImage, RegistryError> {
        self.client
            .resolve(&self.reference(suffix), &Platform::linux_amd64())
            .await
    }

    fn manifest_with(&self, edit: impl FnOnce(&mut ImageManifest)) -> Serialized {
        let mut manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MediaType::OciManifest),
            artifact_type: None,
            config: self.base.config_blob.descriptor(),
            layers: self
                .base
                .layers
                .iter()
                .map(|l| l.descriptor.clone())
                .collect(),
            subject: None,
            annotations: None,
        };
        edit(&mut manifest);
        Serialized::new(MediaType::OciManifest, &manifest).unwrap()
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_9_48_digest_strings_in_a_manifest_are_validated_before_any_url_use() {
    let s = setup().await;
    let good = String::from_utf8(s.base.manifest.bytes.clone()).unwrap();
    let layer = s.base.layers[0].descriptor.digest.to_string();
    for evil in [
        "sha256:../../../../etc/passwd",
        "sha256:ABCDEF",
        "sha512:00",
        "md5:00",
    ] {
        s.serve_manifest(good.replace(&layer, evil).into_bytes(), OCI_MANIFEST);
        let err = s.resolve(":1").await.unwrap_err();
        assert!(
            matches!(err, RegistryError::Manifest { .. }),
            "{evil}: {err}"
        );
    }
    let blob_requests = s
        .proxy
        .log()
        .into_iter()
        .filter(|e| e.path.contains("/blobs/"))
        .count();
    assert_eq!(
        blob_requests, 0,
        "no blob URL was built from an invalid digest"
    );
    // The same strings in a reference never reach the network either.
    for evil in [
        "hostile/base@sha256:../../etc/passwd",
        "hostile/base@sha256:ABC",
    ] {
        assert!(
            Reference::parse(&format!("{}/{evil}", s.proxy.host_port)).is_err(),
            "{evil}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_9_49_content_type_disagreeing_with_media_type_is_rejected() {
    let s = setup().await;
    s.proxy.set_rules(vec![Rule::new(
        "GET",
        "/manifests/1",
        Fault::SetHeader {
            name: "Content-Type".into(),
            value: Some(MediaType::DockerManifestList.to_string()),
        },
    )]);
    let err = s.resolve(":1").await.unwrap_err();
    let RegistryError::Manifest { source, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(
            source,
            stratum_builder::image::ManifestError::MediaTypeMismatch { .. }
        ),
        "{source}"
    );
    assert_eq!(s.proxy.requests("GET", "/blobs/").len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_9_49_ambiguous_manifest_is_rejected() {
    let s = setup().await;
    let good = String::from_utf8(s.base.manifest.bytes.clone()).unwrap();
    let ambiguous = good.replacen(r#""layers":"#, r#""manifests":[],"layers":"#, 1);
    for content_type in [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/json",
    ] {
        s.serve_manifest(ambiguous.clone().into_bytes(), content_type);
        let err = s.resolve(":1").await.unwrap_err();
        let RegistryError::Manifest { source, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*source, stratum_builder::image::ManifestError::Ambiguous);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_9_49_digest_is_checked_on_the_exact_bytes_before_parsing() {
    let s = setup().await;
    let digest = s.base.manifest.digest.to_string();
    // By digest: truncated bytes are a digest mismatch, not a JSON error — they were never parsed.
    s.proxy.set_rules(vec![
        Rule::new(
            "GET",
            &format!("/manifests/{digest}"),
            Fault::ShortBody { keep: 40 },
        )
        .times(usize::MAX),
    ]);
    let err = s.resolve(&format!("@{digest}")).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");

    // By tag, the registry's Docker-Content-Digest is checked first.
    s.proxy.set_rules(vec![Rule::new(
        "GET",
        "/manifests/1",
        Fault::ShortBody { keep: 40 },
    )]);
    let err = s.resolve(":1").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::RegistryDigestMismatch { .. }),
        "{err}"
    );

    // Without that header, truncated JSON is refused by the parser.
    s.serve_manifest(s.base.manifest.bytes[..40].to_vec(), OCI_MANIFEST);
    let err = s.resolve(":1").await.unwrap_err();
    let RegistryError::Manifest { source, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(source, stratum_builder::image::ManifestError::Malformed(_)),
        "{source}"
    );

    // A registry that names a different digest for the bytes it sends is refused too.
    let other = format!("sha256:{}", "1".repeat(64));
    s.proxy.set_rules(vec![Rule::new(
        "GET",
        "/manifests/1",
        Fault::SetHeader {
            name: "Docker-Content-Digest".into(),
            value: Some(other),
        },
    )]);
    let err = s.resolve(":1").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::RegistryDigestMismatch { .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_9_50_descriptor_size_mismatch_is_rejected() {
    let s = setup().await;
    // The layer descriptor claims one byte more than the blob has.
    let lying = s.manifest_with(|m| m.layers[0].size += 1);
    s.serve_manifest(lying.bytes.clone(), OCI_MANIFEST);
    let resolved = s.resolve(":1").await.unwrap();
    let dest = s.dir.path().join("pull/layer");
    let err = s
        .client
        .fetch_blob_to(&s.repo(), &resolved.manifest.layers[0], &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::SizeMismatch { .. }), "{err}");
    assert!(!dest.exists());

    // A config blob shorter than its descriptor says (a valid, shorter HTTP response).
    let config_gets = || {
        s.proxy
            .requests("GET", &s.base.config_blob.digest.to_string())
            .len()
    };
    let before = config_gets();
    s.proxy.set_rules(vec![
        Rule::new(
            "GET",
            &s.base.config_blob.digest.to_string(),
            Fault::ShortBody { keep: 10 },
        )
        .times(usize::MAX),
    ]);
    let err = s.resolve(":1").await.unwrap_err();
    assert!(matches!(err, RegistryError::SizeMismatch { .. }), "{err}");
    assert_eq!(
        config_gets() - before,
        2,
        "fetched again once, then refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_9_50_layer_and_diff_id_counts_must_agree() {
    let s = setup().await;
    let extra: Descriptor = s.base.layers[0].descriptor.clone();
    let doubled = s.manifest_with(|m| m.layers.push(extra));
    s.serve_manifest(doubled.bytes.clone(), OCI_MANIFEST);
    let err = s.resolve(":1").await.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::LayerCountMismatch {
                layers: 2,
                diff_ids: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_9_50_artifacts_and_unknown_layer_types_are_not_images() {
    let s = setup().await;
    let artifact = s.manifest_with(|m| {
        m.layers[0].media_type = MediaType::from("application/vnd.example.sbom+json")
    });
    s.serve_manifest(artifact.bytes.clone(), OCI_MANIFEST);
    let err = s.resolve(":1").await.unwrap_err();
    assert!(matches!(err, RegistryError::NotAnImage { .. }), "{err}");
    assert_eq!(
        s.proxy.requests("GET", "/blobs/").len(),
        0,
        "refused before fetching anything"
    );
}
