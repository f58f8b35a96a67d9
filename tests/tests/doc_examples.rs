//! The ImageBuilds the user guide shows (examples/imagebuilds/*.yaml) stay valid as the API
//! changes: each one is accepted by the emulator with Stratum's real CRD (schema, CEL rules), keeps
//! every field it sets (none pruned as unknown), and passes the operator's `validate()`. The
//! invalid ImageBuild of docs/user-guide.md is refused with the messages the guide quotes.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{Client, Error};
use serde_json::Value;
use stratum_crds::ImageBuild;
use stratum_e2e::apiserver::{ApiServer, Config};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read_yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

async fn cluster_with_crd() -> (ApiServer, Client) {
    let server = ApiServer::new(Config::default());
    let client = server.client();
    let crd: CustomResourceDefinition =
        serde_json::from_value(read_yaml(&repo_root().join("crds/imagebuild.yaml")))
            .expect("crds/imagebuild.yaml is a CRD");
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .expect("the emulator registers the ImageBuild CRD");
    (server, client)
}

/// Where `stored` lacks a value of `given` or differs from it: a field the schema pruned or
/// rewrote. Fields only in `stored` (defaults) are fine.
fn dropped_fields(given: &Value, stored: &Value, path: &str, out: &mut Vec<String>) {
    match (given, stored) {
        (Value::Object(given), Value::Object(stored)) => {
            for (key, value) in given {
                let here = format!("{path}.{key}");
                match stored.get(key) {
                    Some(kept) => dropped_fields(value, kept, &here, out),
                    None => out.push(here),
                }
            }
        }
        (Value::Array(given), Value::Array(stored)) if given.len() == stored.len() => {
            for (i, (value, kept)) in given.iter().zip(stored).enumerate() {
                dropped_fields(value, kept, &format!("{path}[{i}]"), out);
            }
        }
        _ if given == stored => {}
        _ => out.push(format!("{path}: {given} became {stored}")),
    }
}

fn example_files() -> Vec<PathBuf> {
    let dir = repo_root().join("examples/imagebuilds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn every_example_imagebuild_is_accepted_whole_and_valid() {
    let (_server, client) = cluster_with_crd().await;
    let api: Api<ImageBuild> = Api::namespaced(client, "default");
    let files = example_files();
    assert!(files.len() >= 4, "examples/imagebuilds has {files:?}");
    for path in files {
        let given = read_yaml(&path);
        let build: ImageBuild = serde_json::from_value(given.clone())
            .unwrap_or_else(|e| panic!("{} is not an ImageBuild: {e}", path.display()));
        if let Err(invalid) = stratum_crds::validate::validate(&build) {
            panic!("{}: validate() refuses it: {invalid}", path.display());
        }
        let created = api
            .create(&PostParams::default(), &build)
            .await
            .unwrap_or_else(|e| panic!("{}: the API server refuses it: {e}", path.display()));
        let stored = serde_json::to_value(&created).expect("serialise");
        let mut dropped = Vec::new();
        dropped_fields(&given["spec"], &stored["spec"], "spec", &mut dropped);
        assert!(
            dropped.is_empty(),
            "{}: fields not stored as given: {dropped:?}",
            path.display()
        );
    }
}

/// docs/user-guide.md, "Writing an ImageBuild", quotes these two messages.
#[tokio::test]
async fn the_guides_invalid_imagebuild_is_refused_with_the_quoted_messages() {
    let (_server, client) = cluster_with_crd().await;
    let api: Api<ImageBuild> = Api::namespaced(client, "default");
    let invalid: ImageBuild = serde_json::from_value(serde_json::json!({
        "apiVersion": "stratum.dev/v1alpha1",
        "kind": "ImageBuild",
        "metadata": {"name": "invalid"},
        "spec": {
            "source": {"inline": {"dockerfile": "FROM scratch"}},
            "dockerfile": "Dockerfile",
            "output": {
                "image": "registry.example.com/team/app:1",
                "compression": "zstd",
                "format": "docker"
            }
        }
    }))
    .expect("an ImageBuild");
    let Err(Error::Api(status)) = api.create(&PostParams::default(), &invalid).await else {
        panic!("the invalid ImageBuild was accepted");
    };
    assert_eq!(status.code, 422, "{status:?}");
    let guide = std::fs::read_to_string(repo_root().join("docs/user-guide.md")).expect("the guide");
    for quoted in [
        "spec: Invalid value: \"object\": dockerfile names a file in the build context; with source.inline there is none, so leave dockerfile unset",
        "spec.output: Invalid value: \"object\": format docker supports gzip layers only: use format oci for zstd",
    ] {
        assert!(
            status.message.contains(quoted),
            "the API server's message {:?} lacks {quoted:?}",
            status.message
        );
        assert!(
            guide.contains(quoted),
            "docs/user-guide.md no longer quotes {quoted:?}"
        );
    }
}
