//! `s3://`, `gs://` and `azblob://` objects through `object_store` (SigV4, GCS OAuth and Azure
//! SharedKey signing by a maintained library, crates.md §5).
//!
//! The public API is blocking; object_store is async, so each call runs on a current-thread
//! runtime in a thread of its own. That thread never belongs to another runtime, so the caller
//! may be a plain thread or a `spawn_blocking` task of the operator's runtime alike.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as StorePath;
use object_store::{
    BackoffConfig, Certificate, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig,
};

use super::ObjectVersion;
use super::auth::ObjectAuth;
use super::error::ObjectError;
use super::url::ObjectUrl;

/// An object in a cloud store, ready to HEAD or GET.
pub(crate) struct CloudObject {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    /// The URL as it appears in messages.
    shown: String,
}

impl CloudObject {
    pub(crate) fn new(
        url: &ObjectUrl,
        auth: &ObjectAuth,
        shown: &str,
    ) -> Result<Self, ObjectError> {
        // Building a store fails on configuration the secret supplied (an undecodable service
        // account key or account key, a bad endpoint): the secret is what to fix.
        let invalid = |e: object_store::Error| ObjectError::StoreConfig {
            url: shown.to_owned(),
            detail: describe(&e),
        };
        let (store, key): (Arc<dyn ObjectStore>, &str) = match url {
            ObjectUrl::S3 { bucket, key } => {
                (Arc::new(s3(bucket, auth)?.build().map_err(invalid)?), key)
            }
            ObjectUrl::Gs { bucket, key } => {
                (Arc::new(gcs(bucket, auth)?.build().map_err(invalid)?), key)
            }
            ObjectUrl::Azure { container, blob } => (
                Arc::new(azure(container, auth)?.build().map_err(invalid)?),
                blob,
            ),
            ObjectUrl::Http(_) => {
                return Err(ObjectError::InvalidUrl {
                    url: shown.to_owned(),
                    reason: "an http(s) URL is not an object-store URL".into(),
                });
            }
        };
        let path = StorePath::parse(key).map_err(|e| ObjectError::InvalidUrl {
            url: shown.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            store,
            path,
            shown: shown.to_owned(),
        })
    }

    pub(crate) fn head(&self) -> Result<ObjectVersion, ObjectError> {
        let meta = run(&self.shown, async {
            self.store
                .head(&self.path)
                .await
                .map_err(|e| self.error(&e))
        })?;
        Ok(ObjectVersion {
            etag: meta.e_tag,
            last_modified: Some(meta.last_modified.to_rfc3339()),
            size: Some(meta.size),
        })
    }

    /// Streams the object into `sink` chunk by chunk; `sink` may stop the download by
    /// returning an error (a size limit). Returns the object's ETag.
    pub(crate) fn get(
        &self,
        sink: &mut (dyn FnMut(&[u8]) -> Result<(), ObjectError> + Send),
    ) -> Result<Option<String>, ObjectError> {
        run(&self.shown, async {
            let result = self
                .store
                .get(&self.path)
                .await
                .map_err(|e| self.error(&e))?;
            let etag = result.meta.e_tag.clone();
            let mut stream = result.into_stream();
            while let Some(chunk) = stream.next().await {
                sink(&chunk.map_err(|e| self.error(&e))?)?;
            }
            Ok(etag)
        })
    }

    fn error(&self, err: &object_store::Error) -> ObjectError {
        let url = self.shown.clone();
        let detail = describe(err);
        match err {
            object_store::Error::NotFound { .. } => ObjectError::NotFound { url, detail },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => ObjectError::Auth { url, detail },
            _ => ObjectError::Unavailable { url, detail },
        }
    }
}

/// The error and its causes on one line. object_store's messages name the store's path, not
/// credentials; signatures travel in headers, never in these texts.
fn describe(err: &object_store::Error) -> String {
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = cause.source();
    }
    detail
}

/// Runs `future` to completion on a fresh current-thread runtime in a thread of its own.
fn run<T: Send, F: Future<Output = Result<T, ObjectError>> + Send>(
    shown: &str,
    future: F,
) -> Result<T, ObjectError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| ObjectError::Unavailable {
                        url: shown.to_owned(),
                        detail: format!("cannot start an async runtime: {e}"),
                    })?;
                runtime.block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Few quick retries: the operator probes on every poll and the builder pod is itself retried
/// on `SourceUnavailable`, so a long in-process backoff only delays the status.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(60),
    }
}

/// No overall deadline (a context may be gigabytes); a stalled connection fails after two
/// minutes without a byte. Plain http only towards an endpoint that was configured as http://
/// (an S3-compatible store or Azurite inside the cluster).
fn client_options(endpoint: Option<&str>, auth: &ObjectAuth) -> Result<ClientOptions, ObjectError> {
    let mut options = ClientOptions::new();
    if let Some(pem) = &auth.ca_pem {
        let certs =
            Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| ObjectError::Secret {
                dir: "the source secret".into(),
                key: "ca.crt".into(),
                reason: format!("not a PEM certificate bundle: {e}"),
            })?;
        for cert in certs {
            options = options.with_root_certificate(cert);
        }
    }
    Ok(options
        .with_connect_timeout(Duration::from_secs(30))
        .with_timeout_disabled()
        .with_read_timeout(Duration::from_secs(120))
        .with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://"))))
}

/// The endpoint a store will use: the secret's, or — when the store is configured from the
/// environment — the first of `env_keys` that is set. Our client options replace the ones
/// `from_env` read, so the http decision has to look at the same variables.
fn endpoint(from_secret: Option<&str>, use_env: bool, env_keys: &[&str]) -> Option<String> {
    from_secret.map(str::to_owned).or_else(|| {
        use_env
            .then(|| env_keys.iter().find_map(|key| std::env::var(key).ok()))
            .flatten()
    })
}

fn s3(bucket: &str, auth: &ObjectAuth) -> Result<AmazonS3Builder, ObjectError> {
    let keys = &auth.aws;
    // Keys in the secret replace the environment's chain entirely: mixing a secret's key with
    // an IRSA session token from the environment would sign with a mismatched pair.
    let use_env = keys.access_key_id.is_none();
    let mut builder = match (&keys.access_key_id, &keys.secret_access_key) {
        (Some(id), Some(secret)) => {
            let builder = AmazonS3Builder::new()
                .with_access_key_id(id)
                .with_secret_access_key(secret)
                .with_region("us-east-1");
            match &keys.session_token {
                Some(token) => builder.with_token(token),
                None => builder,
            }
        }
        _ => AmazonS3Builder::from_env(),
    };
    if let Some(region) = &keys.region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = &keys.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let endpoint = endpoint(
        keys.endpoint.as_deref(),
        use_env,
        &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"],
    );
    Ok(builder
        .with_bucket_name(bucket)
        .with_retry(retry())
        .with_client_options(client_options(endpoint.as_deref(), auth)?))
}

fn gcs(bucket: &str, auth: &ObjectAuth) -> Result<GoogleCloudStorageBuilder, ObjectError> {
    let builder = match &auth.gcp_service_account {
        Some(key) => GoogleCloudStorageBuilder::new().with_service_account_key(key),
        None => GoogleCloudStorageBuilder::from_env(),
    };
    Ok(builder
        .with_bucket_name(bucket)
        .with_retry(retry())
        .with_client_options(client_options(None, auth)?))
}

fn azure(container: &str, auth: &ObjectAuth) -> Result<MicrosoftAzureBuilder, ObjectError> {
    let keys = &auth.azure;
    let use_env = keys.access_key.is_none();
    let mut builder = match (&keys.account, &keys.access_key) {
        (Some(account), Some(key)) => MicrosoftAzureBuilder::new()
            .with_account(account)
            .with_access_key(key),
        _ => {
            let builder = MicrosoftAzureBuilder::from_env();
            match &keys.account {
                Some(account) => builder.with_account(account),
                None => builder,
            }
        }
    };
    if let Some(endpoint) = &keys.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let endpoint = endpoint(
        keys.endpoint.as_deref(),
        use_env,
        &["AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"],
    );
    Ok(builder
        .with_container_name(container)
        .with_retry(retry())
        .with_client_options(client_options(endpoint.as_deref(), auth)?))
}
