//! Round trips through a real distribution registry, checked by independent tools: what the
//! library computed (manifest and config bytes, digests) must be exactly what skopeo reads back
//! and what umoci unpacks.

mod support;

use std::os::unix::fs::PermissionsExt;

use stratum_builder::image::{
    Descriptor, ImageIndex, ManifestRef, MediaType, Platform, Reference, Serialized, Tag,
};
use stratum_builder::registry::{
    BlobPushed, ImagePush, Registry, RegistryClient, RegistryError, fetch_blobs, push_image,
};
use support::busybox::{Entry, Format, TestImage, busybox_base, derive};
use support::registry::{Auth, TestRegistry};
use support::tools;

fn tags(names: &[&str]) -> Vec<Tag> {
    names.iter().map(|t| t.parse().unwrap()).collect()
}

async fn push(
    client: &RegistryClient,
    reg: &TestRegistry,
    repo: &str,
    image: &TestImage,
    tag_names: &[&str],
    mount_from: Option<&str>,
) -> stratum_builder::registry::PushedImage {
    let repository = reg.repo(repo);
    let mount = mount_from.map(|m| reg.repo(m));
    let tags = tags(tag_names);
    push_image(
        client,
        &ImagePush {
            repository: &repository,
            blobs: &image.blobs,
            manifest: &image.manifest,
            tags: &tags,
            mount_from: mount.as_ref(),
            concurrency: 3,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("push {repo}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_image_round_trips_and_matches_skopeo_and_umoci() {
    let reg = TestRegistry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let base = busybox_base(dir.path(), Format::Oci);
    let client = reg.client();

    let pushed = push(&client, &reg, "base/busybox", &base, &["1", "latest"], None).await;
    assert_eq!(
        pushed.digest, base.manifest.digest,
        "the recorded digest is the local one"
    );
    assert!(
        pushed
            .blobs
            .iter()
            .all(|(_, outcome)| *outcome == BlobPushed::Uploaded),
        "{:?}",
        pushed.blobs
    );

    // skopeo reads back exactly the bytes we hashed.
    for tag in ["1", "latest"] {
        let image = format!("{}/base/busybox:{tag}", reg.host_port);
        assert_eq!(
            tools::skopeo_raw_manifest(&image, None),
            base.manifest.bytes
        );
        assert_eq!(
            tools::skopeo_raw_config(&image, None),
            base.config_blob.bytes
        );
        assert_eq!(
            tools::skopeo_inspect(&image, None)["Digest"],
            base.manifest.digest.to_string()
        );
    }

    // Pull it back through the library.
    let reference = reg.reference("base/busybox:1");
    let resolved = client
        .resolve(&reference, &Platform::linux_amd64())
        .await
        .unwrap();
    assert_eq!(resolved.manifest_digest, base.manifest.digest);
    assert_eq!(resolved.index_digest, None);
    assert_eq!(
        resolved.manifest_bytes.as_ref(),
        base.manifest.bytes.as_slice()
    );
    assert_eq!(
        resolved.config_bytes.as_ref(),
        base.config_blob.bytes.as_slice()
    );
    assert_eq!(
        resolved.image_id(),
        &base.config_blob.digest,
        "image ID = digest of the config bytes"
    );
    assert_eq!(resolved.config, base.config);
    assert_eq!(resolved.reference.digest(), Some(&base.manifest.digest));
    // Config and layer downloaded concurrently, each verified before it appears.
    let pulled_layer = dir.path().join("pulled/layer.tar.gz");
    let pulled_config = dir.path().join("pulled/config.json");
    let jobs = [
        (resolved.manifest.layers[0].clone(), pulled_layer.clone()),
        (resolved.manifest.config.clone(), pulled_config.clone()),
    ];
    fetch_blobs(&client, reference.repository(), &jobs, 2)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&pulled_layer).unwrap(),
        std::fs::read(&base.layers[0].path).unwrap()
    );
    assert_eq!(
        std::fs::read(&pulled_config).unwrap(),
        base.config_blob.bytes
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("pulled"))
            .unwrap()
            .count(),
        2,
        "no temporary files left"
    );

    // A second push skips every blob (HEAD before upload).
    let again = push(&client, &reg, "base/busybox", &base, &["1"], None).await;
    assert!(
        again.blobs.iter().all(|(_, o)| *o == BlobPushed::Existed),
        "{:?}",
        again.blobs
    );

    // A derived image in another repository mounts the base layer instead of uploading it.
    let derived = derive(
        dir.path(),
        &base,
        "app",
        &[
            Entry::dir("etc/"),
            Entry::file("etc/hello", 0o644, b"hello from stratum\n"),
        ],
        "COPY hello /etc/hello",
    );
    let pushed = push(
        &client,
        &reg,
        "app/derived",
        &derived,
        &["v1"],
        Some("base/busybox"),
    )
    .await;
    let outcome = |digest| {
        pushed
            .blobs
            .iter()
            .find(|(d, _)| d == digest)
            .map(|(_, o)| o.clone())
            .unwrap()
    };
    assert_eq!(
        outcome(&base.layers[0].descriptor.digest),
        BlobPushed::Mounted {
            from: reg.repo("base/busybox")
        }
    );
    assert_eq!(
        outcome(&derived.layers[1].descriptor.digest),
        BlobPushed::Uploaded
    );

    // umoci applies the layers: the rootfs holds the real busybox, its applet links, our file.
    let image = format!("{}/app/derived:v1", reg.host_port);
    assert_eq!(
        tools::skopeo_raw_manifest(&image, None),
        derived.manifest.bytes
    );
    let layout = dir.path().join("layout");
    let rootfs = dir.path().join("rootfs");
    tools::skopeo_copy_to_oci(&image, &layout, "v1", None);
    tools::umoci_raw_unpack(&layout, "v1", &rootfs);
    let busybox = rootfs.join("bin/busybox");
    assert_eq!(
        std::fs::read(&busybox).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(
        std::fs::metadata(&busybox).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).unwrap(),
        std::path::Path::new("busybox")
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/hello")).unwrap(),
        "hello from stratum\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_v2s2_media_types_round_trip() {
    let reg = TestRegistry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let base = busybox_base(dir.path(), Format::Docker);
    let client = reg.client();
    push(&client, &reg, "docker/busybox", &base, &["1"], None).await;

    let image = format!("{}/docker/busybox:1", reg.host_port);
    let raw = tools::skopeo_raw_manifest(&image, None);
    assert_eq!(raw, base.manifest.bytes);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["mediaType"], MediaType::DockerManifest.as_str());
    assert_eq!(
        manifest["config"]["mediaType"],
        MediaType::DockerConfig.as_str()
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        MediaType::DockerLayerGzip.as_str()
    );

    let fetched = client
        .fetch_manifest(
            &reg.repo("docker/busybox"),
            &ManifestRef::Tag("1".parse().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(fetched.media_type, MediaType::DockerManifest);
    assert_eq!(fetched.digest, base.manifest.digest);
    let resolved = client
        .resolve(&reg.reference("docker/busybox:1"), &Platform::linux_amd64())
        .await
        .unwrap();
    assert_eq!(resolved.manifest_media_type, MediaType::DockerManifest);
    assert_eq!(
        resolved.config_bytes.as_ref(),
        base.config_blob.bytes.as_slice()
    );
}

/// Pushes `base` with its config rewritten for another platform (the layer is reused: a test
/// only resolves these images, it never runs them).
async fn push_for_platform(
    client: &RegistryClient,
    reg: &TestRegistry,
    dir: &std::path::Path,
    base: &TestImage,
    platform: &Platform,
) -> Descriptor {
    let mut config = base.config.clone();
    config.architecture = platform.architecture.clone();
    config.variant = platform.variant.clone().unwrap_or_default();
    let name = platform.to_string().replace('/', "-");
    let image = support::busybox::assemble(dir, base.format, config, base.layers.clone(), &name);
    push(client, reg, "multi/busybox", &image, &[], None).await;
    let mut descriptor = image.manifest.descriptor();
    descriptor.platform = Some(platform.clone());
    descriptor
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_resolves_to_the_requested_platform() {
    let reg = TestRegistry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let base = busybox_base(dir.path(), Format::Oci);
    let client = reg.client();
    let amd64 = push_for_platform(&client, &reg, dir.path(), &base, &Platform::linux_amd64()).await;
    let arm64 = push_for_platform(
        &client,
        &reg,
        dir.path(),
        &base,
        &"linux/arm64/v8".parse().unwrap(),
    )
    .await;
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MediaType::OciIndex),
        artifact_type: None,
        manifests: vec![arm64.clone(), amd64.clone()],
        subject: None,
        annotations: None,
    };
    let index = Serialized::new(MediaType::OciIndex, &index).unwrap();
    let repo = reg.repo("multi/busybox");
    let pushed = client
        .push_manifest(
            &repo,
            &ManifestRef::Tag("multi".parse().unwrap()),
            &MediaType::OciIndex,
            &index.bytes,
        )
        .await
        .unwrap();
    assert_eq!(pushed, index.digest);
    assert_eq!(
        tools::skopeo_raw_manifest(&format!("{}/multi/busybox:multi", reg.host_port), None),
        index.bytes
    );

    let reference = reg.reference("multi/busybox:multi");
    let resolved = client
        .resolve(&reference, &Platform::linux_amd64())
        .await
        .unwrap();
    assert_eq!(resolved.manifest_digest, amd64.digest);
    assert_eq!(resolved.index_digest, Some(index.digest.clone()));
    assert_eq!(resolved.config.architecture, "amd64");
    let resolved = client
        .resolve(&reference, &"linux/arm64".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        resolved.manifest_digest, arm64.digest,
        "arm64 without a variant means v8"
    );

    // By digest, the same index gives the same answer.
    let by_digest = reference.with_digest(index.digest.clone());
    assert_eq!(
        client
            .resolve(&by_digest, &Platform::linux_amd64())
            .await
            .unwrap()
            .manifest_digest,
        amd64.digest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_9_50_index_with_no_matching_platform_lists_the_available_platforms() {
    let reg = TestRegistry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let base = busybox_base(dir.path(), Format::Oci);
    let client = reg.client();
    let arm64 = push_for_platform(
        &client,
        &reg,
        dir.path(),
        &base,
        &"linux/arm64/v8".parse().unwrap(),
    )
    .await;
    let s390x = push_for_platform(
        &client,
        &reg,
        dir.path(),
        &base,
        &"linux/s390x".parse().unwrap(),
    )
    .await;
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MediaType::OciIndex),
        artifact_type: None,
        manifests: vec![arm64, s390x],
        subject: None,
        annotations: None,
    };
    let index = Serialized::new(MediaType::OciIndex, &index).unwrap();
    client
        .push_manifest(
            &reg.repo("multi/busybox"),
            &ManifestRef::Tag("other".parse().unwrap()),
            &MediaType::OciIndex,
            &index.bytes,
        )
        .await
        .unwrap();

    let err = client
        .resolve(
            &reg.reference("multi/busybox:other"),
            &Platform::linux_amd64(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NoMatchingPlatform { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("no manifest for platform linux/amd64"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("available: linux/arm64/v8, linux/s390x"),
        "{err}"
    );
    assert_eq!(err.reason(), "PlatformNotFound");

    // A single-platform image for another platform is refused the same way.
    let err = client
        .resolve(
            &Reference::parse(&format!("{}/multi/busybox@{}", reg.host_port, index.digest))
                .unwrap(),
            &"linux/riscv64".parse().unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NoMatchingPlatform { .. }),
        "{err}"
    );
}
