//! Credentials for object sources, read from a mounted Secret directory (one file per key, as
//! Kubernetes mounts a Secret volume). The keys are documented on `UrlSource.secret_ref` in
//! `crds/src/types/source.rs`.

use std::fmt;
use std::io;
use std::path::Path;

use super::error::ObjectError;

/// Credentials for one object source. `Debug` never prints a secret value.
#[derive(Clone, Default)]
pub struct ObjectAuth {
    pub(crate) http: Option<HttpAuth>,
    pub(crate) aws: AwsKeys,
    /// The service account JSON (`GOOGLE_SERVICE_ACCOUNT_KEY`).
    pub(crate) gcp_service_account: Option<String>,
    pub(crate) azure: AzureKeys,
    /// Extra trusted CA certificates (PEM, the `ca.crt` key, as Flux's source secrets carry
    /// it) for a store behind a private CA; added to the system roots, never replacing
    /// verification.
    pub(crate) ca_pem: Option<String>,
}

/// How an `https://` request authenticates.
#[derive(Clone)]
pub(crate) enum HttpAuth {
    /// `kubernetes.io/basic-auth`: `username` and `password`.
    Basic { username: String, password: String },
    /// A `token` key, sent as `Authorization: Bearer`.
    Bearer(String),
}

#[derive(Clone, Default)]
pub(crate) struct AwsKeys {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    /// An S3-compatible endpoint (MinIO, Ceph, a test server), `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
}

#[derive(Clone, Default)]
pub(crate) struct AzureKeys {
    pub account: Option<String>,
    pub access_key: Option<String>,
    /// A blob endpoint other than `https://<account>.blob.core.windows.net` (Azurite, a
    /// sovereign cloud), `AZURE_STORAGE_ENDPOINT`.
    pub endpoint: Option<String>,
}

impl ObjectAuth {
    /// No credentials: https requests are anonymous; `s3://`, `gs://` and `azblob://` fall back
    /// to their usual environment chains (AWS_* variables and IRSA web identity, GCP application
    /// default credentials, Azure workload identity) as `object_store`'s `from_env` reads them.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Reads the credentials from a mounted Secret: each key is a file named after it. Unknown
    /// files (the mount's `..data` links, other keys) are ignored; a key that is present but
    /// unreadable, not UTF-8 or inconsistent (a username without a password) is an error.
    pub fn from_secret_dir(dir: &Path) -> Result<Self, ObjectError> {
        let read = |key: &str| read_key(dir, key);
        let http = match (read("username")?, read("password")?, read("token")?) {
            (_, _, Some(token)) => Some(HttpAuth::Bearer(token)),
            (Some(username), Some(password), None) => Some(HttpAuth::Basic { username, password }),
            (Some(_), None, None) | (None, Some(_), None) => {
                return Err(ObjectError::Secret {
                    dir: dir.to_owned(),
                    key: "username/password".into(),
                    reason: "basic auth needs both `username` and `password`".into(),
                });
            }
            (None, None, None) => None,
        };
        let aws = AwsKeys {
            access_key_id: read("AWS_ACCESS_KEY_ID")?,
            secret_access_key: read("AWS_SECRET_ACCESS_KEY")?,
            session_token: read("AWS_SESSION_TOKEN")?,
            region: read("AWS_REGION")?,
            endpoint: read("AWS_ENDPOINT_URL")?,
        };
        if aws.access_key_id.is_some() != aws.secret_access_key.is_some() {
            return Err(ObjectError::Secret {
                dir: dir.to_owned(),
                key: "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".into(),
                reason: "set both or neither".into(),
            });
        }
        let azure = AzureKeys {
            account: read("AZURE_STORAGE_ACCOUNT_NAME")?,
            access_key: read("AZURE_STORAGE_ACCOUNT_KEY")?,
            endpoint: read("AZURE_STORAGE_ENDPOINT")?,
        };
        Ok(Self {
            http,
            aws,
            gcp_service_account: read("GOOGLE_SERVICE_ACCOUNT_KEY")?,
            azure,
            ca_pem: read("ca.crt")?,
        })
    }
}

/// One key of the Secret, with the trailing newline `kubectl create secret --from-file` keeps
/// removed (a token or key never ends in one).
fn read_key(dir: &Path, key: &str) -> Result<Option<String>, ObjectError> {
    let path = dir.join(key);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ObjectError::Secret {
                dir: dir.to_owned(),
                key: key.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    let text = String::from_utf8(bytes).map_err(|_| ObjectError::Secret {
        dir: dir.to_owned(),
        key: key.to_owned(),
        reason: "not UTF-8 text".into(),
    })?;
    let value = text.trim_end_matches(['\n', '\r']).to_owned();
    Ok((!value.is_empty()).then_some(value))
}

impl fmt::Debug for ObjectAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let http = match &self.http {
            None => "none",
            Some(HttpAuth::Basic { .. }) => "basic",
            Some(HttpAuth::Bearer(_)) => "bearer",
        };
        f.debug_struct("ObjectAuth")
            .field("http", &http)
            .field("aws_keys", &self.aws.access_key_id.is_some())
            .field("aws_endpoint", &self.aws.endpoint)
            .field("gcp_service_account", &self.gcp_service_account.is_some())
            .field("azure_account", &self.azure.account)
            .field("ca_pem", &self.ca_pem.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (key, value) in files {
            std::fs::write(dir.path().join(key), value).unwrap();
        }
        dir
    }

    #[test]
    fn reads_each_kind_of_secret() {
        let basic = secret(&[("username", "u\n"), ("password", "p w\n")]);
        let auth = ObjectAuth::from_secret_dir(basic.path()).unwrap();
        assert!(
            matches!(&auth.http, Some(HttpAuth::Basic { username, password }) if username == "u" && password == "p w")
        );

        let bearer = secret(&[("token", "t0k\r\n")]);
        let auth = ObjectAuth::from_secret_dir(bearer.path()).unwrap();
        assert!(matches!(&auth.http, Some(HttpAuth::Bearer(t)) if t == "t0k"));

        let aws = secret(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("..data", "ignored"),
        ]);
        let auth = ObjectAuth::from_secret_dir(aws.path()).unwrap();
        assert_eq!(auth.aws.access_key_id.as_deref(), Some("AKID"));
        assert_eq!(auth.aws.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(auth.http.is_none());
    }

    #[test]
    fn inconsistent_secrets_are_auth_errors_without_values() {
        for files in [
            &[("username", "only-user")][..],
            &[("AWS_ACCESS_KEY_ID", "AKID-ONLY")][..],
        ] {
            let dir = secret(files);
            let err = ObjectAuth::from_secret_dir(dir.path()).unwrap_err();
            assert_eq!(err.kind(), crate::source::SourceErrorKind::Auth);
            let message = err.to_string();
            assert!(
                !message.contains("only-user") && !message.contains("AKID-ONLY"),
                "{message}"
            );
        }
    }

    #[test]
    fn debug_never_prints_secret_values() {
        let dir = secret(&[
            ("password", "hunter2"),
            ("username", "bob"),
            ("AWS_ACCESS_KEY_ID", "AKIDSECRET"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
        ]);
        let shown = format!("{:?}", ObjectAuth::from_secret_dir(dir.path()).unwrap());
        for value in ["hunter2", "bob", "AKIDSECRET", "s3cr3t"] {
            assert!(!shown.contains(value), "{shown}");
        }
    }
}
