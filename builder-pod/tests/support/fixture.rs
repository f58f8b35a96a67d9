//! A registry with the busybox base image on disk and a fault proxy in front: the common setup
//! of the fault and hostile-input tests.

use std::time::Duration;

use stratum_builder::image::{Reference, Repository, Tag};
use stratum_builder::registry::{
    ClientConfig, ImagePush, LocalBlob, PushedImage, RegistryClient, RegistryError, push_image,
};

use super::busybox::{Format, TestImage, busybox_base};
use super::proxy::{FaultProxy, Rule};
use super::registry::{Auth, TestRegistry, fast_retry};

pub struct ProxiedRegistry {
    pub reg: TestRegistry,
    pub proxy: FaultProxy,
    pub dir: tempfile::TempDir,
    /// The busybox base (OCI media types) on local disk.
    pub base: TestImage,
    /// A client that reaches the registry through the proxy, with the registry's credentials.
    pub client: RegistryClient,
}

impl ProxiedRegistry {
    pub async fn start(auth: Auth, rules: Vec<Rule>) -> Self {
        Self::with_config(auth, rules, ClientConfig::default()).await
    }

    /// As `start`, with client settings (the retry policy and timeouts are always the fast ones).
    pub async fn with_config(auth: Auth, rules: Vec<Rule>, config: ClientConfig) -> Self {
        let reg = TestRegistry::start(auth);
        let proxy = FaultProxy::start(&reg.host_port, rules).await;
        let dir = tempfile::tempdir().unwrap();
        let base = busybox_base(dir.path(), Format::Oci);
        let mut config = ClientConfig {
            retry: fast_retry(),
            read_timeout: Duration::from_secs(10),
            ..config
        };
        config.insecure_registries.insert(proxy.host_port.clone());
        let client = RegistryClient::new(config, reg.credentials_for(&proxy.host_port)).unwrap();
        Self {
            reg,
            proxy,
            dir,
            base,
            client,
        }
    }

    /// A repository reached through the proxy.
    pub fn repo(&self, path: &str) -> Repository {
        Repository::parse(&format!("{}/{path}", self.proxy.host_port)).unwrap()
    }

    /// A reference reached through the proxy.
    pub fn reference(&self, name: &str) -> Reference {
        Reference::parse(&format!("{}/{name}", self.proxy.host_port)).unwrap()
    }

    /// The base image's only layer.
    pub fn layer(&self) -> &LocalBlob {
        &self.base.layers[0]
    }

    /// Pushes the base image straight to the registry (no proxy, no faults), for pull tests.
    pub async fn seed(&self, path: &str, tag: &str) {
        let repo = self.reg.repo(path);
        let tags: Vec<Tag> = vec![tag.parse().unwrap()];
        let push = ImagePush {
            repository: &repo,
            blobs: &self.base.blobs,
            manifest: &self.base.manifest,
            tags: &tags,
            mount_from: None,
            concurrency: 2,
        };
        push_image(&self.reg.client(), &push).await.unwrap();
    }

    /// Pushes the base image through the proxy.
    pub async fn push_base(&self, path: &str, tag: &str) -> Result<PushedImage, RegistryError> {
        let repo = self.repo(path);
        let tags: Vec<Tag> = vec![tag.parse().unwrap()];
        let push = ImagePush {
            repository: &repo,
            blobs: &self.base.blobs,
            manifest: &self.base.manifest,
            tags: &tags,
            mount_from: None,
            concurrency: 1,
        };
        push_image(&self.client, &push).await
    }

    /// The base layer as the registry stores it under `path`, read directly.
    pub async fn stored_layer(&self, path: &str) -> Vec<u8> {
        let dest = tempfile::tempdir_in(self.dir.path()).unwrap();
        let file = dest.path().join("layer");
        self.reg
            .client()
            .fetch_blob_to(&self.reg.repo(path), &self.layer().descriptor, &file)
            .await
            .unwrap();
        std::fs::read(file).unwrap()
    }
}
