//! Pod volumes on the host ("Volumes" concept page): `emptyDir`, `secret`, `configMap`,
//! `downwardAPI`, `projected` (secret / configMap / downwardAPI sources) and `hostPath`, written
//! under the pod's directory; then bind-mounted into the container's mount namespace.
//!
//! As the kubelet does: every key becomes a file (or only the listed `items`, at their `path`),
//! with `defaultMode`/`mode` (default 0644); a missing Secret/ConfigMap fails the mount unless
//! `optional: true` (then the volume is empty); secret, configMap, downwardAPI and projected
//! volumes are mounted read-only.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use super::env::field_ref;

/// Where a volume's content comes from on the API side.
pub trait ObjectData {
    /// Decoded data of a Secret (`"secret"`) or ConfigMap (`"configmap"`), `None` if missing.
    fn data(&self, kind: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>>;
}

/// Decoded `data` (+ `binaryData` for ConfigMaps) of a stored Secret or ConfigMap.
pub fn object_data(obj: &Value) -> BTreeMap<String, Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = BTreeMap::new();
    let is_secret = obj["kind"] == "Secret";
    for (k, v) in obj["data"].as_object().into_iter().flatten() {
        let s = v.as_str().unwrap_or_default();
        let bytes = if is_secret {
            b64.decode(s).unwrap_or_default()
        } else {
            s.as_bytes().to_vec()
        };
        out.insert(k.clone(), bytes);
    }
    for (k, v) in obj["binaryData"].as_object().into_iter().flatten() {
        out.insert(
            k.clone(),
            b64.decode(v.as_str().unwrap_or_default())
                .unwrap_or_default(),
        );
    }
    out
}

/// Why a pod's volumes could not be set up (`FailedMount` events in the kubelet).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("MountVolume.SetUp failed for volume \"{volume}\": {kind} \"{name}\" not found")]
    Missing {
        volume: String,
        kind: String,
        name: String,
    },
    #[error(
        "MountVolume.SetUp failed for volume \"{volume}\": key {key} not found in {kind} {name}"
    )]
    MissingKey {
        volume: String,
        kind: String,
        name: String,
        key: String,
    },
    #[error("volume \"{volume}\": unsupported volume type or source ({what})")]
    Unsupported { volume: String, what: String },
    #[error("volume \"{volume}\": item path {path:?} must be relative and may not contain '..'")]
    BadPath { volume: String, path: String },
    #[error("volume \"{volume}\": writing {path}: {source}")]
    Io {
        volume: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A prepared volume: host directory (or file, for hostPath files) and whether mounts are read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub host_path: PathBuf,
    pub read_only: bool,
}

fn safe_rel(volume: &str, p: &str) -> Result<PathBuf, VolumeError> {
    let path = Path::new(p);
    if p.is_empty()
        || path.is_absolute()
        || path.components().any(|c| matches!(c, Component::ParentDir))
    {
        return Err(VolumeError::BadPath {
            volume: volume.into(),
            path: p.into(),
        });
    }
    Ok(path.to_path_buf())
}

fn write_file(
    volume: &str,
    dir: &Path,
    rel: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), VolumeError> {
    let path = dir.join(rel);
    let io = |source| VolumeError::Io {
        volume: volume.into(),
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(&path, bytes).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io)
}

fn mode_of(v: &Value, default: u32) -> u32 {
    v.as_u64().map(|m| m as u32 & 0o7777).unwrap_or(default)
}

/// Writes a secret/configMap source (with optional `items`) into `dir`.
fn key_source(
    volume: &str,
    dir: &Path,
    kind: &str,
    src: &Value,
    data: &dyn ObjectData,
    default_mode: u32,
) -> Result<(), VolumeError> {
    let name_field = if kind == "secret" && src.get("secretName").is_some() {
        "secretName"
    } else {
        "name"
    };
    let name = src[name_field].as_str().unwrap_or_default();
    let optional = src["optional"].as_bool().unwrap_or(false);
    let Some(values) = data.data(kind, name) else {
        return if optional {
            Ok(())
        } else {
            Err(VolumeError::Missing {
                volume: volume.into(),
                kind: kind.into(),
                name: name.into(),
            })
        };
    };
    match src["items"].as_array() {
        Some(items) => {
            for item in items {
                let key = item["key"].as_str().unwrap_or_default();
                let Some(bytes) = values.get(key) else {
                    if optional {
                        continue;
                    }
                    return Err(VolumeError::MissingKey {
                        volume: volume.into(),
                        kind: kind.into(),
                        name: name.into(),
                        key: key.into(),
                    });
                };
                let rel = safe_rel(volume, item["path"].as_str().unwrap_or(key))?;
                write_file(
                    volume,
                    dir,
                    &rel,
                    bytes,
                    mode_of(&item["mode"], default_mode),
                )?;
            }
        }
        None => {
            for (k, bytes) in &values {
                write_file(volume, dir, &safe_rel(volume, k)?, bytes, default_mode)?;
            }
        }
    }
    Ok(())
}

fn downward_source(
    volume: &str,
    dir: &Path,
    pod: &Value,
    src: &Value,
    default_mode: u32,
) -> Result<(), VolumeError> {
    for item in src["items"].as_array().into_iter().flatten() {
        let rel = safe_rel(volume, item["path"].as_str().unwrap_or_default())?;
        let Some(path) = item.pointer("/fieldRef/fieldPath").and_then(Value::as_str) else {
            return Err(VolumeError::Unsupported {
                volume: volume.into(),
                what: "downwardAPI resourceFieldRef".into(),
            });
        };
        let value = field_ref(pod, path).map_err(|e| VolumeError::Unsupported {
            volume: volume.into(),
            what: e.to_string(),
        })?;
        write_file(
            volume,
            dir,
            &rel,
            value.as_bytes(),
            mode_of(&item["mode"], default_mode),
        )?;
    }
    Ok(())
}

/// Materialises every volume of `pod` under `pod_dir/volumes/<name>`.
pub fn prepare(
    pod: &Value,
    data: &dyn ObjectData,
    pod_dir: &Path,
) -> Result<HashMap<String, Prepared>, VolumeError> {
    let mut out = HashMap::new();
    for vol in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = vol["name"].as_str().unwrap_or_default().to_owned();
        let dir = pod_dir.join("volumes").join(&name);
        let io = |source| VolumeError::Io {
            volume: name.clone(),
            path: dir.clone(),
            source,
        };
        if let Some(hp) = vol.pointer("/hostPath/path").and_then(Value::as_str) {
            out.insert(
                name,
                Prepared {
                    host_path: PathBuf::from(hp),
                    read_only: false,
                },
            );
            continue;
        }
        // Rewritten from scratch on every (re)start, like the kubelet's atomic writer.
        if dir.exists() && vol.get("emptyDir").is_none() {
            std::fs::remove_dir_all(&dir).map_err(io)?;
        }
        std::fs::create_dir_all(&dir).map_err(io)?;
        let read_only = if vol.get("emptyDir").is_some() {
            false
        } else if let Some(src) = vol.get("secret") {
            key_source(
                &name,
                &dir,
                "secret",
                src,
                data,
                mode_of(&src["defaultMode"], 0o644),
            )?;
            true
        } else if let Some(src) = vol.get("configMap") {
            key_source(
                &name,
                &dir,
                "configmap",
                src,
                data,
                mode_of(&src["defaultMode"], 0o644),
            )?;
            true
        } else if let Some(src) = vol.get("downwardAPI") {
            downward_source(&name, &dir, pod, src, mode_of(&src["defaultMode"], 0o644))?;
            true
        } else if let Some(proj) = vol.get("projected") {
            let mode = mode_of(&proj["defaultMode"], 0o644);
            for s in proj["sources"].as_array().into_iter().flatten() {
                if let Some(src) = s.get("secret") {
                    key_source(&name, &dir, "secret", src, data, mode)?;
                } else if let Some(src) = s.get("configMap") {
                    key_source(&name, &dir, "configmap", src, data, mode)?;
                } else if let Some(src) = s.get("downwardAPI") {
                    downward_source(&name, &dir, pod, src, mode)?;
                } else {
                    return Err(VolumeError::Unsupported {
                        volume: name.clone(),
                        what: format!("projected source {s}"),
                    });
                }
            }
            true
        } else {
            return Err(VolumeError::Unsupported {
                volume: name.clone(),
                what: vol.to_string(),
            });
        };
        out.insert(
            name,
            Prepared {
                host_path: dir,
                read_only,
            },
        );
    }
    Ok(out)
}

/// One bind mount for a container: host source, path in the container, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// A container's `volumeMounts` resolved against prepared volumes (`subPath` included).
pub fn container_mounts(
    container: &Value,
    volumes: &HashMap<String, Prepared>,
) -> Result<Vec<Mount>, VolumeError> {
    let mut mounts = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or_default();
        let vol = volumes.get(name).ok_or_else(|| VolumeError::Unsupported {
            volume: name.into(),
            what: "volumeMount names no volume".into(),
        })?;
        let mut source = vol.host_path.clone();
        if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
            source = source.join(safe_rel(name, sub)?);
            if !source.exists() {
                std::fs::create_dir_all(&source).map_err(|e| VolumeError::Io {
                    volume: name.into(),
                    path: source.clone(),
                    source: e,
                })?;
            }
        }
        mounts.push(Mount {
            source,
            target: PathBuf::from(m["mountPath"].as_str().unwrap_or_default()),
            read_only: vol.read_only || m["readOnly"].as_bool().unwrap_or(false),
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Data;
    impl ObjectData for Data {
        fn data(&self, kind: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
            match (kind, name) {
                ("secret", "push") => {
                    Some([(".dockerconfigjson".to_string(), b"{}".to_vec())].into())
                }
                ("configmap", "req") => Some(
                    [
                        ("request.json".to_string(), b"{\"a\":1}".to_vec()),
                        ("other".to_string(), b"x".to_vec()),
                    ]
                    .into(),
                ),
                _ => None,
            }
        }
    }

    #[test]
    fn volumes_are_written_with_modes_items_and_downward_values() {
        let dir = tempfile::tempdir().unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}}, "spec": {"volumes": [
            {"name": "work", "emptyDir": {}},
            {"name": "push", "secret": {"secretName": "push", "defaultMode": 0o400, "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}},
            {"name": "req", "configMap": {"name": "req"}},
            {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}, {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "opt", "secret": {"secretName": "absent", "optional": true}},
        ]}});
        let vols = prepare(&pod, &Data, dir.path()).unwrap();
        let push = &vols["push"];
        assert!(push.read_only);
        let cfg = push.host_path.join("config.json");
        assert_eq!(std::fs::read(&cfg).unwrap(), b"{}");
        assert_eq!(
            std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
            0o400
        );
        assert_eq!(
            std::fs::read_to_string(vols["req"].host_path.join("request.json")).unwrap(),
            "{\"a\":1}"
        );
        assert_eq!(
            std::fs::read_to_string(vols["info"].host_path.join("labels")).unwrap(),
            "a=\"b\""
        );
        assert_eq!(
            std::fs::read_to_string(vols["info"].host_path.join("name")).unwrap(),
            "p"
        );
        assert!(!vols["work"].read_only);
        assert_eq!(
            std::fs::read_dir(&vols["opt"].host_path).unwrap().count(),
            0
        );

        let c = json!({"volumeMounts": [{"name": "work", "mountPath": "/workspace", "subPath": "layers"}, {"name": "push", "mountPath": "/etc/push"}]});
        let mounts = container_mounts(&c, &vols).unwrap();
        assert_eq!(mounts[0].target, PathBuf::from("/workspace"));
        assert!(mounts[0].source.ends_with("volumes/work/layers") && mounts[0].source.is_dir());
        assert!(mounts[1].read_only);
    }

    #[test]
    fn missing_sources_and_escaping_paths_fail() {
        let dir = tempfile::tempdir().unwrap();
        let missing =
            json!({"spec": {"volumes": [{"name": "s", "secret": {"secretName": "absent"}}]}});
        assert!(matches!(
            prepare(&missing, &Data, dir.path()),
            Err(VolumeError::Missing { .. })
        ));
        let escape = json!({"spec": {"volumes": [{"name": "c", "configMap": {"name": "req", "items": [{"key": "other", "path": "../x"}]}}]}});
        assert!(matches!(
            prepare(&escape, &Data, dir.path()),
            Err(VolumeError::BadPath { .. })
        ));
        let unsupported = json!({"spec": {"volumes": [{"name": "n", "nfs": {"server": "x"}}]}});
        assert!(matches!(
            prepare(&unsupported, &Data, dir.path()),
            Err(VolumeError::Unsupported { .. })
        ));
    }
}
