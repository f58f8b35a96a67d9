//! Verification against a real registry (Debian's `docker-registry`, with htpasswd auth): push a
//! small image with the builder's client, then verify it the way the operator does, with the
//! credentials in a docker config like the push Secret's; cross-checked with `skopeo inspect`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use stratum_builder::image::{Descriptor, Digest, ManifestRef, MediaType, Reference, Tag};
use stratum_builder::registry::{ClientConfig, Credentials, RegistryClient};
use stratum_crds::contract::PushedImage;
use stratum_operator::result::{ImageVerifier, RegistryVerifier, VerifyError, VerifyRequest};

const USER: &str = "pusher";
const PASS: &str = "s3cret-pass";

/// The registry process; killed on drop.
struct TestRegistry {
    host_port: String,
    child: Child,
    _root: tempfile::TempDir,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry() -> TestRegistry {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("htpasswd")
        .args(["-Bbn", USER, PASS])
        .output()
        .unwrap();
    assert!(out.status.success());
    let htpasswd = root.path().join("htpasswd");
    std::fs::write(&htpasswd, out.stdout).unwrap();
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = root.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: s\nauth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                root.path().join("data").display(),
                htpasswd.display()
            ),
        )
        .unwrap();
        let mut child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/docker-registry");
        let host_port = format!("127.0.0.1:{port}");
        if wait_ready(&host_port, &mut child) {
            return TestRegistry {
                host_port,
                child,
                _root: root,
            };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("docker-registry did not start");
}

fn wait_ready(host_port: &str, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut stream) = TcpStream::connect(host_port) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
            let mut buf = [0u8; 12];
            if stream.read_exact(&mut buf).is_ok() && matches!(&buf[9..12], b"200" | b"401") {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

fn insecure(host_port: &str) -> ClientConfig {
    let mut config = ClientConfig::default();
    config.insecure_registries.insert(host_port.to_owned());
    config
}

async fn push_blob(
    client: &RegistryClient,
    reference: &Reference,
    dir: &Path,
    media_type: &str,
    bytes: &[u8],
) -> Descriptor {
    let descriptor = Descriptor::of_bytes(media_type.parse::<MediaType>().unwrap(), bytes);
    let path = dir.join(descriptor.digest.hex());
    std::fs::write(&path, bytes).unwrap();
    client
        .push_blob(reference.repository(), &descriptor, &path, None)
        .await
        .unwrap();
    descriptor
}

#[tokio::test(flavor = "current_thread")]
async fn verifies_a_pushed_image_with_the_push_secret() {
    let registry = start_registry();
    let image = format!("{}/team/app:v1", registry.host_port);
    let reference = Reference::parse(&image).unwrap();
    let docker_config = format!(
        r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
        registry.host_port,
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    );
    let credentials = Credentials::from_docker_config(docker_config.as_bytes(), "test").unwrap();
    let client = RegistryClient::new(insecure(&registry.host_port), credentials).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let layer_a = push_blob(
        &client,
        &reference,
        dir.path(),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        b"layer a bytes",
    )
    .await;
    let layer_b = push_blob(
        &client,
        &reference,
        dir.path(),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        b"layer b, longer bytes",
    )
    .await;
    let diff = |s: &str| Digest::of(s.as_bytes()).to_string();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff("a"), diff("b")]},
        "history": [{"created_by": "COPY a /"}, {"created_by": "ENV X=1", "empty_layer": true}, {"created_by": "RUN make"}]
    });
    let config = push_blob(
        &client,
        &reference,
        dir.path(),
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    )
    .await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer_a, layer_b]
    }))
    .unwrap();
    let media_type: MediaType = "application/vnd.oci.image.manifest.v1+json"
        .parse()
        .unwrap();
    let tag = ManifestRef::Tag(
        reference
            .tag()
            .cloned()
            .unwrap_or_else(|| "v1".parse::<Tag>().unwrap()),
    );
    let manifest_digest = client
        .push_manifest(reference.repository(), &tag, &media_type, &manifest)
        .await
        .unwrap();

    let pushed = PushedImage {
        manifest_digest: manifest_digest.to_string(),
        config_digest: config.digest.to_string(),
        size: manifest.len() as u64 + config.size + layer_a.size + layer_b.size,
        media_type: media_type.to_string(),
    };
    let verifier = RegistryVerifier::default();
    let request = VerifyRequest {
        image: &image,
        pushed: &pushed,
        docker_config: Some(docker_config.as_bytes()),
        insecure: true,
    };
    let verified = verifier.verify(request).await.unwrap();

    // What skopeo (an independent client) says the registry holds.
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("{USER}:{PASS}"),
            &format!("docker://{image}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let skopeo: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verified.digest, skopeo["Digest"].as_str().unwrap());
    let layers: Vec<&str> = verified.layers.iter().map(|l| l.digest.as_str()).collect();
    let skopeo_layers: Vec<&str> = skopeo["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(layers, skopeo_layers);
    assert_eq!(verified.image_id, config.digest.to_string());
    assert_eq!(
        verified.image,
        format!("{}/team/app@{manifest_digest}", registry.host_port)
    );
    let created: Vec<_> = verified
        .layers
        .iter()
        .map(|l| l.created_by.as_deref())
        .collect();
    assert_eq!(created, [Some("COPY a /"), Some("RUN make")]);
    assert_eq!(verified.layers[1].diff_id, diff("b"));

    // Without the push credentials the registry refuses: an auth failure, not a verdict on the image.
    let anonymous = VerifyRequest {
        docker_config: None,
        ..request
    };
    match verifier.verify(anonymous).await {
        Err(VerifyError::Refused { reason, .. }) => assert_eq!(reason, "RegistryAuthFailed"),
        other => panic!("{other:?}"),
    }
    // A manifest digest the registry does not hold.
    let lie = PushedImage {
        manifest_digest: Digest::of(b"nothing").to_string(),
        ..pushed.clone()
    };
    match verifier
        .verify(VerifyRequest {
            pushed: &lie,
            ..request
        })
        .await
    {
        Err(VerifyError::Refused { reason, .. }) => assert_eq!(reason, "VerificationFailed"),
        other => panic!("{other:?}"),
    }
}
