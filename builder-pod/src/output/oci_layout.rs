//! OCI image layout (image-spec `image-layout.md`): `oci-layout`, `index.json`, `blobs/sha256/`.
//! As a directory it may already hold other images: their entries in `index.json` are kept and
//! only descriptors carrying the same ref name are replaced.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::{Value, json};

use super::{BuiltImage, OutputError, io_err, store_err};
use crate::image::Digest;
use crate::store::Store;

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The blobs an image consists of, manifest first.
fn image_blobs(image: &BuiltImage) -> impl Iterator<Item = &Digest> {
    [&image.manifest_digest, &image.config_digest]
        .into_iter()
        .chain(image.layers.iter().map(|l| &l.digest))
}

/// One `index.json` descriptor per ref name (or a single unnamed one when there is none).
fn descriptors(image: &BuiltImage, ref_names: &[String]) -> Vec<Value> {
    let base = json!({
        "mediaType": image.manifest_media_type,
        "digest": image.manifest_digest,
        "size": image.manifest_size,
    });
    if ref_names.is_empty() {
        return vec![base];
    }
    ref_names
        .iter()
        .map(|name| {
            let mut d = base.clone();
            d["annotations"] = json!({ REF_NAME: name });
            d
        })
        .collect()
}

fn new_index(manifests: &[Value]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    })
}

/// Writes (or adds to) an OCI layout directory at `dest`. `ref_names` become
/// `org.opencontainers.image.ref.name` annotations (e.g. `latest`), so
/// `skopeo copy oci:DEST:latest …` finds the image.
pub fn write_oci_layout(
    store: &Store,
    image: &BuiltImage,
    dest: &Path,
    ref_names: &[String],
) -> Result<(), OutputError> {
    let blobs = dest.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(dest))?;
    for digest in image_blobs(image) {
        let target = blobs.join(digest.hex());
        if target.is_file() {
            continue; // content-addressed: same name, same bytes
        }
        // On the store's filesystem (the default output, `<cache-dir>/images`, is inside the
        // store) a hard link replaces reading, writing and fsyncing the whole blob again: for a
        // 0.8 GiB layer that copy was ~0.7 s of a 12 s build (docs/performance.md). Sharing the
        // inode is safe because blobs are immutable: written once, renamed into place, removed
        // by unlink. Any failure (EXDEV across filesystems, no link support) falls back to a copy.
        if fs::hard_link(store.blob_path(digest), &target).is_ok() {
            continue;
        }
        let mut src = store.open_blob(digest).map_err(store_err(dest))?;
        atomic_write(&target, |out| io::copy(&mut src, out).map(drop))?;
    }

    let index_path = dest.join("index.json");
    let mut manifests = match fs::read(&index_path) {
        Ok(bytes) => existing_manifests(dest, &bytes)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(&index_path)(e)),
    };
    // A name points at one image: drop what it pointed at before, and any unnamed duplicate.
    manifests.retain(|m| {
        let name = m["annotations"][REF_NAME].as_str();
        match name {
            Some(n) => !ref_names.iter().any(|r| r == n),
            None => m["digest"] != json!(image.manifest_digest),
        }
    });
    manifests.extend(descriptors(image, ref_names));
    let index = serde_json::to_vec_pretty(&new_index(&manifests)).expect("JSON values serialise");
    atomic_write(&dest.join("oci-layout"), |out| {
        out.write_all(OCI_LAYOUT.as_bytes())
    })?;
    atomic_write(&index_path, |out| out.write_all(&index))
}

fn existing_manifests(dest: &Path, bytes: &[u8]) -> Result<Vec<Value>, OutputError> {
    let bad = |reason: String| OutputError::BadLayout {
        dest: dest.to_owned(),
        file: "index.json",
        reason,
    };
    let index: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    match index.get("manifests") {
        Some(Value::Array(list)) => Ok(list.clone()),
        None => Ok(Vec::new()),
        Some(_) => Err(bad("`manifests` is not an array".into())),
    }
}

/// Writes an OCI layout as a tar archive (`oci-archive`), readable by
/// `skopeo copy oci-archive:DEST:NAME …` and `podman load`.
pub fn write_oci_archive(
    store: &Store,
    image: &BuiltImage,
    dest: &Path,
    ref_names: &[String],
) -> Result<(), OutputError> {
    let index = serde_json::to_vec_pretty(&new_index(&descriptors(image, ref_names)))
        .expect("JSON values serialise");
    atomic_write(dest, |out| {
        let mut tar = tar::Builder::new(out);
        append_bytes(&mut tar, "oci-layout", OCI_LAYOUT.as_bytes())?;
        append_bytes(&mut tar, "index.json", &index)?;
        append_dir(&mut tar, "blobs/")?;
        append_dir(&mut tar, "blobs/sha256/")?;
        for digest in image_blobs(image) {
            let mut blob = store.open_blob(digest).map_err(io::Error::other)?;
            let size = blob.metadata()?.len();
            let mut header = file_header(size);
            tar.append_data(
                &mut header,
                format!("blobs/sha256/{}", digest.hex()),
                &mut blob,
            )?;
        }
        tar.into_inner()?.flush()
    })
}

/// Archive entries carry fixed metadata, so the archive of one image is always the same bytes.
pub(super) fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

pub(super) fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let mut header = file_header(bytes.len() as u64);
    tar.append_data(&mut header, name, bytes)
}

pub(super) fn append_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> io::Result<()> {
    let mut header = file_header(0);
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    tar.append_data(&mut header, name, io::empty())
}

/// Writes `path` through a temporary sibling that is renamed into place only on success.
pub(super) fn atomic_write(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), OutputError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(io_err(path))?;
    let tmp = tempfile::Builder::new()
        .prefix(".stratum-")
        .tempfile_in(dir)
        .map_err(io_err(path))?;
    let mut out = BufWriter::new(tmp.reopen().map_err(io_err(path))?);
    write(&mut out).map_err(io_err(path))?;
    out.into_inner()
        .map_err(|e| io_err(path)(e.into_error()))?
        .sync_all()
        .map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::testimage::{TestImage, skopeo};

    #[test]
    fn layout_directory_is_readable_by_skopeo_and_umoci_and_keeps_other_images() {
        let t = TestImage::new();
        let dest = t.dir.path().join("layout");
        write_oci_layout(&t.store, &t.image, &dest, &["v1".into()]).unwrap();
        let other = TestImage::with_content(b"second image");
        write_oci_layout(&other.store, &other.image, &dest, &["v2".into()]).unwrap();
        // Re-pointing v1 replaces its descriptor instead of adding a duplicate.
        write_oci_layout(&t.store, &t.image, &dest, &["v1".into()]).unwrap();

        let index: Value =
            serde_json::from_slice(&fs::read(dest.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

        let v1 = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", dest.display())]);
        assert_eq!(Digest::of(&v1), t.image.manifest_digest);
        let v2 = skopeo(&["inspect", "--raw", &format!("oci:{}:v2", dest.display())]);
        assert_eq!(Digest::of(&v2), other.image.manifest_digest);

        let rootfs = t.dir.path().join("unpacked");
        let status = std::process::Command::new("umoci")
            .args(["raw", "unpack", "--rootless", "--image"])
            .arg(format!("{}:v1", dest.display()))
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(fs::read(rootfs.join("hello.txt")).unwrap(), t.content);
    }

    /// (store inode, layout inode, layout link count) of every blob of `image`.
    fn blob_inodes(store: &Store, image: &BuiltImage, dest: &Path) -> Vec<(u64, u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        image_blobs(image)
            .map(|d| {
                let stored = fs::metadata(store.blob_path(d)).unwrap();
                let laid_out = fs::metadata(dest.join("blobs/sha256").join(d.hex())).unwrap();
                (stored.ino(), laid_out.ino(), laid_out.nlink())
            })
            .collect()
    }

    #[test]
    fn layout_on_the_store_filesystem_links_blobs_instead_of_copying() {
        let t = TestImage::new();
        let dest = t.dir.path().join("layout");
        write_oci_layout(&t.store, &t.image, &dest, &["v1".into()]).unwrap();
        for (stored, laid_out, links) in blob_inodes(&t.store, &t.image, &dest) {
            assert_eq!(stored, laid_out, "the layout blob is the store's inode");
            assert_eq!(links, 2);
        }
        let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", dest.display())]);
        assert_eq!(Digest::of(&raw), t.image.manifest_digest);
        // A blob removed from the store (prune) stays intact in the layout.
        fs::remove_file(t.store.blob_path(&t.image.manifest_digest)).unwrap();
        let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", dest.display())]);
        assert_eq!(Digest::of(&raw), t.image.manifest_digest);
    }

    #[test]
    fn layout_on_another_filesystem_gets_copies() {
        let t = TestImage::new();
        // The store is under the temp dir (ext4 here); /dev/shm is a tmpfs: linking fails with
        // EXDEV and the blobs are copied.
        let other_fs = tempfile::tempdir_in("/dev/shm").unwrap();
        let dest = other_fs.path().join("layout");
        write_oci_layout(&t.store, &t.image, &dest, &["v1".into()]).unwrap();
        for (stored, laid_out, links) in blob_inodes(&t.store, &t.image, &dest) {
            assert_ne!(stored, laid_out);
            assert_eq!(links, 1);
        }
        let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", dest.display())]);
        assert_eq!(Digest::of(&raw), t.image.manifest_digest);
    }

    #[test]
    fn archive_is_readable_by_skopeo_and_deterministic() {
        let t = TestImage::new();
        let a = t.dir.path().join("a.tar");
        let b = t.dir.path().join("b.tar");
        write_oci_archive(&t.store, &t.image, &a, &["latest".into()]).unwrap();
        write_oci_archive(&t.store, &t.image, &b, &["latest".into()]).unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
        let raw = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci-archive:{}:latest", a.display()),
        ]);
        assert_eq!(Digest::of(&raw), t.image.manifest_digest);
        let config = skopeo(&[
            "inspect",
            "--config",
            "--raw",
            &format!("oci-archive:{}:latest", a.display()),
        ]);
        assert_eq!(Digest::of(&config), t.image.config_digest);
    }

    #[test]
    fn a_corrupt_existing_index_is_refused_not_overwritten() {
        let t = TestImage::new();
        let dest = t.dir.path().join("layout");
        fs::create_dir_all(&dest).unwrap();
        fs::write(dest.join("index.json"), b"{ not json").unwrap();
        let err = write_oci_layout(&t.store, &t.image, &dest, &[]).unwrap_err();
        assert!(matches!(err, OutputError::BadLayout { .. }), "{err}");
        assert_eq!(fs::read(dest.join("index.json")).unwrap(), b"{ not json");
    }
}
