//! A one-layer image committed to a temporary store, for the output writers' tests, plus a
//! `skopeo` runner: skopeo is the independent reader that proves our outputs are valid.

use std::io::Write;
use std::process::Command;

use serde_json::json;

use super::{BuiltImage, LayerInfo};
use crate::image::Digest;
use crate::store::Store;

pub(crate) struct TestImage {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub image: BuiltImage,
    pub content: Vec<u8>,
}

impl TestImage {
    pub fn new() -> Self {
        Self::with_content(b"hello from a test layer\n")
    }

    pub fn with_content(content: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();

        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        tar.append_data(&mut header, "hello.txt", content).unwrap();
        let layer_tar = tar.into_inner().unwrap();
        let diff_id = Digest::of(&layer_tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer_tar).unwrap();
        let layer_gz = gz.finish().unwrap();
        let layer_digest = store.put_blob(&layer_gz).unwrap();

        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Cmd": ["/bin/sh"] },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created_by": "test" }],
        }))
        .unwrap();
        let config_digest = store.put_blob(&config).unwrap();
        let media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest, "size": config.len(),
            },
            "layers": [{ "mediaType": media_type, "digest": layer_digest, "size": layer_gz.len() }],
        }))
        .unwrap();
        let manifest_digest = store.put_blob(&manifest).unwrap();
        let image = BuiltImage {
            manifest_digest,
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            manifest_size: manifest.len() as u64,
            config_digest,
            layers: vec![LayerInfo {
                digest: layer_digest,
                diff_id,
                size: layer_gz.len() as u64,
                media_type: media_type.into(),
            }],
        };
        Self {
            dir,
            store,
            image,
            content: content.to_vec(),
        }
    }
}

/// Runs skopeo and returns its stdout; fails the test with skopeo's stderr otherwise.
pub(crate) fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed by scripts/install-deps");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
