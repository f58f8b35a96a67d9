//! Base images made offline from Debian's `busybox-static`: one gzip layer with `/bin/busybox`
//! and symlinks for its common applets, a Docker-style config, and an OCI or Docker manifest —
//! all serialised with the library's own types, so tests can compare what the registry and
//! independent tools (skopeo, umoci) see against what the library computed.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use stratum_builder::image::{
    ContainerConfig, Descriptor, Digest, History, ImageConfig, ImageManifest, MediaType, RootFs,
    Serialized,
};
use stratum_builder::registry::LocalBlob;

/// The applets linked to `/bin/busybox` in the base layer.
pub const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "mkdir", "rm", "cp", "mv", "ln", "true", "false", "env", "id",
    "test",
];
const MTIME: u64 = 1_700_000_000;
const CREATED: &str = "2023-11-14T22:13:20Z";

/// Which media types to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Oci,
    Docker,
}

impl Format {
    pub fn manifest(self) -> MediaType {
        match self {
            Self::Oci => MediaType::OciManifest,
            Self::Docker => MediaType::DockerManifest,
        }
    }
    pub fn config(self) -> MediaType {
        match self {
            Self::Oci => MediaType::OciConfig,
            Self::Docker => MediaType::DockerConfig,
        }
    }
    pub fn layer(self) -> MediaType {
        match self {
            Self::Oci => MediaType::OciLayerGzip,
            Self::Docker => MediaType::DockerLayerGzip,
        }
    }
}

/// A complete image on local disk.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub format: Format,
    pub config: ImageConfig,
    pub config_blob: Serialized,
    /// Config and layers, ready for `push_image`.
    pub blobs: Vec<LocalBlob>,
    pub layers: Vec<LocalBlob>,
    pub diff_ids: Vec<Digest>,
    pub manifest: Serialized,
}

/// A layer tar entry.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir(String),
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl Entry {
    pub fn dir(path: &str) -> Self {
        Self::Dir(path.to_owned())
    }
    pub fn file(path: &str, mode: u32, data: &[u8]) -> Self {
        Self::File {
            path: path.to_owned(),
            mode,
            data: data.to_vec(),
        }
    }
    pub fn symlink(path: &str, target: &str) -> Self {
        Self::Symlink {
            path: path.to_owned(),
            target: target.to_owned(),
        }
    }
}

/// Writes `entries` as a gzip layer into `dir`; returns the blob and its diffID.
pub fn layer(dir: &Path, name: &str, format: Format, entries: &[Entry]) -> (LocalBlob, Digest) {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(MTIME);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
            Entry::File { path, mode, data } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, data.as_slice())
                    .unwrap();
            }
            Entry::Symlink { path, target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    let tar = builder.into_inner().unwrap();
    let diff_id = Digest::of(&tar);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &gz).unwrap();
    let blob = LocalBlob {
        descriptor: Descriptor::new(format.layer(), Digest::of(&gz), gz.len() as u64),
        path,
    };
    (blob, diff_id)
}

/// The busybox base image, written into `dir`.
pub fn busybox_base(dir: &Path, format: Format) -> TestImage {
    let busybox =
        std::fs::read("/bin/busybox").expect("/bin/busybox (apt-get install busybox-static)");
    let mut entries = vec![
        Entry::dir("bin/"),
        Entry::file("bin/busybox", 0o755, &busybox),
    ];
    entries.extend(
        APPLETS
            .iter()
            .map(|a| Entry::symlink(&format!("bin/{a}"), "busybox")),
    );
    let (layer_blob, diff_id) = layer(dir, "busybox-layer.tar.gz", format, &entries);
    let config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        created: CREATED.into(),
        config: ContainerConfig {
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cmd: vec!["sh".into()],
            ..Default::default()
        },
        rootfs: RootFs {
            diff_ids: vec![diff_id],
            ..Default::default()
        },
        history: vec![History {
            created: CREATED.into(),
            created_by: "stratum test: busybox-static".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    assemble(dir, format, config, vec![layer_blob], "busybox")
}

/// `base` plus one more layer and a history entry: what a build step produces.
pub fn derive(
    dir: &Path,
    base: &TestImage,
    name: &str,
    entries: &[Entry],
    created_by: &str,
) -> TestImage {
    let (layer_blob, diff_id) = layer(dir, &format!("{name}-layer.tar.gz"), base.format, entries);
    let mut config = base.config.clone();
    config.rootfs.diff_ids.push(diff_id);
    config.history.push(History {
        created: CREATED.into(),
        created_by: created_by.into(),
        ..Default::default()
    });
    let mut layers = base.layers.clone();
    layers.push(layer_blob);
    assemble(dir, base.format, config, layers, name)
}

/// Serialises config and manifest once and writes the config blob to disk.
pub fn assemble(
    dir: &Path,
    format: Format,
    config: ImageConfig,
    layers: Vec<LocalBlob>,
    name: &str,
) -> TestImage {
    let config_blob = config.serialize_as(format.config()).unwrap();
    let config_path: PathBuf = dir.join(format!("{name}-config.json"));
    std::fs::write(&config_path, &config_blob.bytes).unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(format.manifest()),
        artifact_type: None,
        config: config_blob.descriptor(),
        layers: layers.iter().map(|l| l.descriptor.clone()).collect(),
        subject: None,
        annotations: None,
    };
    let manifest = Serialized::new(format.manifest(), &manifest).unwrap();
    let mut blobs = vec![LocalBlob {
        descriptor: config_blob.descriptor(),
        path: config_path,
    }];
    blobs.extend(layers.iter().cloned());
    TestImage {
        format,
        diff_ids: config.rootfs.diff_ids.clone(),
        config,
        config_blob,
        blobs,
        layers,
        manifest,
    }
}
