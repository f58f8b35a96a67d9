use super::*;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn image_doc(media_type: Option<&str>) -> String {
    let mt = media_type
        .map(|m| format!(r#""mediaType":"{m}","#))
        .unwrap_or_default();
    format!(
        r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":7}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D2}","size":9}}]}}"#
    )
}

fn index_doc(media_type: &str, platforms: &[&str]) -> String {
    let entries: Vec<String> = platforms
        .iter()
        .map(|p| {
            let p: Platform = p.parse().unwrap();
            let platform = String::from_utf8(json::to_vec(&p).unwrap()).unwrap();
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":1,"platform":{platform}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}","manifests":[{}]}}"#,
        entries.join(",")
    )
}

#[test]
fn parses_oci_and_docker_manifests_and_indexes() {
    let m = Manifest::parse(image_doc(Some(OCI_MANIFEST)).as_bytes(), Some(OCI_MANIFEST)).unwrap();
    let Manifest::Image(image) = &m else {
        panic!("{m:?}")
    };
    assert_eq!(image.layers[0].size, 9);
    assert_eq!(m.media_type(), MediaType::OciManifest);

    let m = Manifest::parse(
        image_doc(Some(DOCKER_MANIFEST)).as_bytes(),
        Some(DOCKER_MANIFEST),
    )
    .unwrap();
    assert_eq!(m.media_type(), MediaType::DockerManifest);

    // OCI allows an absent mediaType; the Content-Type then tells, or the shape does.
    let m = Manifest::parse(image_doc(None).as_bytes(), Some(OCI_MANIFEST)).unwrap();
    assert_eq!(m.media_type(), MediaType::OciManifest);
    let m = Manifest::parse(
        image_doc(None).as_bytes(),
        Some("application/json; charset=utf-8"),
    )
    .unwrap();
    assert_eq!(m.media_type(), MediaType::OciManifest);

    for list_type in [OCI_INDEX, DOCKER_LIST] {
        let doc = index_doc(list_type, &["linux/amd64"]);
        let m = Manifest::parse(doc.as_bytes(), Some(list_type)).unwrap();
        assert!(matches!(m, Manifest::Index(_)));
        assert_eq!(m.media_type().as_str(), list_type);
    }
}

#[test]
fn s2_9_49_both_manifests_and_layers_is_ambiguous() {
    let doc = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"a/b","digest":"{D1}","size":1}},"layers":[],"manifests":[]}}"#
    );
    for content_type in [Some(OCI_MANIFEST), Some(OCI_INDEX), None] {
        assert_eq!(
            Manifest::parse(doc.as_bytes(), content_type),
            Err(ManifestError::Ambiguous)
        );
    }
    let only_layers_and_manifests = r#"{"schemaVersion":2,"layers":[],"manifests":[]}"#;
    assert_eq!(
        Manifest::parse(only_layers_and_manifests.as_bytes(), None),
        Err(ManifestError::Ambiguous)
    );
}

#[test]
fn s2_9_49_content_type_disagreeing_with_media_type_is_rejected() {
    let cases = [
        // (document, Content-Type)
        (image_doc(Some(OCI_MANIFEST)), DOCKER_MANIFEST),
        (image_doc(Some(DOCKER_MANIFEST)), OCI_MANIFEST),
        (image_doc(Some(OCI_MANIFEST)), OCI_INDEX),
        (image_doc(None), OCI_INDEX),
        (index_doc(OCI_INDEX, &["linux/amd64"]), DOCKER_LIST),
        (index_doc(OCI_INDEX, &["linux/amd64"]), OCI_MANIFEST),
    ];
    for (doc, content_type) in cases {
        let err = Manifest::parse(doc.as_bytes(), Some(content_type)).unwrap_err();
        assert!(
            matches!(err, ManifestError::MediaTypeMismatch { .. }),
            "{content_type}: {err}"
        );
    }
}

#[test]
fn s2_9_49_media_type_field_disagreeing_with_shape_is_rejected() {
    let err = Manifest::parse(image_doc(Some(OCI_INDEX)).as_bytes(), None).unwrap_err();
    assert!(matches!(err, ManifestError::ShapeMismatch { .. }), "{err}");
    let doc = index_doc(OCI_MANIFEST, &["linux/amd64"]);
    let err = Manifest::parse(doc.as_bytes(), None).unwrap_err();
    assert!(matches!(err, ManifestError::ShapeMismatch { .. }), "{err}");
}

#[test]
fn s2_9_49_truncated_duplicate_and_wrapped_documents_are_rejected() {
    let full = image_doc(Some(OCI_MANIFEST));
    for cut in [1, full.len() / 2, full.len() - 1] {
        let err = Manifest::parse(&full.as_bytes()[..cut], Some(OCI_MANIFEST)).unwrap_err();
        assert!(
            matches!(err, ManifestError::Malformed(_)),
            "cut at {cut}: {err}"
        );
    }
    let dup = full.replacen(
        r#""schemaVersion":2,"#,
        r#""schemaVersion":2,"schemaVersion":2,"#,
        1,
    );
    assert!(
        matches!(Manifest::parse(dup.as_bytes(), None), Err(ManifestError::Malformed(m)) if m.contains("duplicate"))
    );
    let dup_layers = full.replacen(r#""layers":"#, r#""layers":[],"layers":"#, 1);
    assert!(matches!(
        Manifest::parse(dup_layers.as_bytes(), None),
        Err(ManifestError::Malformed(_))
    ));
    // A document wrapped in another object has no manifest shape at the top.
    let wrapped = format!(r#"{{"schemaVersion":2,"manifest":{full}}}"#);
    assert_eq!(
        Manifest::parse(wrapped.as_bytes(), None),
        Err(ManifestError::UnknownShape)
    );
    let trailing = format!("{full}{{}}");
    assert!(matches!(
        Manifest::parse(trailing.as_bytes(), None),
        Err(ManifestError::Malformed(_))
    ));
    assert!(matches!(
        Manifest::parse(b"\xff\xfe", None),
        Err(ManifestError::Malformed(_))
    ));
}

#[test]
fn schema_versions_other_than_2_are_rejected_by_name() {
    let v1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
    assert_eq!(
        Manifest::parse(v1.as_bytes(), None),
        Err(ManifestError::UnsupportedSchemaVersion(1))
    );
    assert_eq!(
        Manifest::parse(br#"{"layers":[]}"#, None),
        Err(ManifestError::MissingSchemaVersion)
    );
}

#[test]
fn s2_9_50_descriptor_without_size_or_with_bad_digest_is_rejected() {
    let no_size = image_doc(Some(OCI_MANIFEST)).replace(r#","size":9"#, "");
    assert!(
        matches!(Manifest::parse(no_size.as_bytes(), None), Err(ManifestError::Invalid(m)) if m.contains("size"))
    );
    let negative = image_doc(Some(OCI_MANIFEST)).replace(r#""size":9"#, r#""size":-9"#);
    assert!(matches!(
        Manifest::parse(negative.as_bytes(), None),
        Err(ManifestError::Invalid(_))
    ));
    let bad_digest = image_doc(Some(OCI_MANIFEST)).replace(D2, "sha256:../../../../etc/passwd");
    assert!(matches!(
        Manifest::parse(bad_digest.as_bytes(), None),
        Err(ManifestError::Invalid(_))
    ));
}

#[test]
fn s2_9_50_index_with_no_matching_platform_lists_the_available_ones() {
    let doc = index_doc(
        OCI_INDEX,
        &["linux/arm64/v8", "linux/s390x", "linux/arm64/v8"],
    );
    let Manifest::Index(index) = Manifest::parse(doc.as_bytes(), None).unwrap() else {
        panic!()
    };
    let err = index.select(&Platform::linux_amd64()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no manifest for platform linux/amd64 in the index (available: linux/arm64/v8, linux/s390x)"
    );
    assert!(index.select(&"linux/arm64".parse().unwrap()).is_ok());
}

#[test]
fn attestation_entries_never_match_and_are_not_listed() {
    let doc = index_doc(OCI_INDEX, &["unknown/unknown", "linux/amd64"]);
    let Manifest::Index(index) = Manifest::parse(doc.as_bytes(), None).unwrap() else {
        panic!()
    };
    assert_eq!(index.platforms(), vec![Platform::linux_amd64()]);
    assert_eq!(
        index.select(&Platform::linux_amd64()).unwrap().platform,
        Some(Platform::linux_amd64())
    );
}

#[test]
fn serialized_manifest_matches_buildkit_layout_and_hashes_its_own_bytes() {
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MediaType::OciManifest),
        artifact_type: None,
        config: Descriptor::new(MediaType::OciConfig, D1.parse().unwrap(), 7),
        layers: vec![Descriptor::new(
            MediaType::OciLayerGzip,
            D2.parse().unwrap(),
            9,
        )],
        subject: None,
        annotations: None,
    };
    let s = Serialized::new(MediaType::OciManifest, &manifest).unwrap();
    assert_eq!(
        String::from_utf8(s.bytes.clone()).unwrap(),
        image_doc(Some(OCI_MANIFEST))
    );
    assert_eq!(s.digest, Digest::of(&s.bytes));
    assert_eq!(s.descriptor().size, s.bytes.len() as u64);
    let reparsed = Manifest::parse(&s.bytes, Some(OCI_MANIFEST)).unwrap();
    assert_eq!(reparsed, Manifest::Image(manifest));
}
