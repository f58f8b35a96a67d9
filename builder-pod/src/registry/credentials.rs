//! Registry credentials from a Docker `config.json` / Kubernetes `.dockerconfigjson`.
//!
//! Format (docker/cli `configfile`): `{"auths": {"<registry>": {"auth": base64("user:pass"),
//! "username", "password", "identitytoken", "registrytoken"}}, "credsStore", "credHelpers"}`.
//! Keys are normalised the way the Docker CLI does (`ConvertToHostname`): a scheme and any path
//! are dropped, and Docker Hub's historical keys (`https://index.docker.io/v1/`,
//! `index.docker.io`, `registry-1.docker.io`) all mean `docker.io`.
//!
//! Secrets are wrapped in [`Secret`], whose `Debug` and `Display` print `<redacted>`: no
//! credential can reach a log line, an error message or a status field by accident.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

use crate::image::reference::DOCKER_HUB;

/// A secret string. Read it with [`Secret::expose`], only where it goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How to authenticate to one registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Credential {
    #[default]
    Anonymous,
    /// Username and password: sent as HTTP Basic to the registry or to its token service.
    Basic { username: String, password: Secret },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token service.
    IdentityToken {
        username: Option<String>,
        token: Secret,
    },
    /// A bearer token used as is (`registrytoken`).
    RegistryToken(Secret),
}

/// Why a credentials file could not be used. Messages name the file and the registry key, never
/// a value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read registry credentials {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("registry credentials {source_name} are not valid docker config JSON: {reason}")]
    Json { source_name: String, reason: String },
    #[error(
        "registry credentials {source_name} use the legacy .dockercfg layout; use a docker config.json / .dockerconfigjson with an \"auths\" object"
    )]
    LegacyFormat { source_name: String },
    #[error("registry credentials {source_name}: the \"auth\" field for {key:?} is {reason}")]
    BadAuth {
        source_name: String,
        key: String,
        reason: &'static str,
    },
    #[error(
        "registry credentials for {registry} are delegated to credential helper {helper:?}, which Stratum does not run; put the credentials under \"auths\" instead"
    )]
    HelperUnsupported { registry: String, helper: String },
}

/// Credentials for any number of registries, keyed by normalised registry name.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    by_registry: BTreeMap<String, Credential>,
    helpers: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct DockerConfigFile {
    #[serde(default)]
    auths: Option<BTreeMap<String, AuthEntry>>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl Credentials {
    /// No credentials: every registry is accessed anonymously.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Reads a docker config file (`~/.docker/config.json`, a mounted `.dockerconfigjson`).
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let bytes = std::fs::read(path).map_err(|source| CredentialsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_docker_config(&bytes, &path.display().to_string())
    }

    /// Parses docker config JSON; `source_name` (a path or secret name) is used in errors.
    pub fn from_docker_config(bytes: &[u8], source_name: &str) -> Result<Self, CredentialsError> {
        let json_err = |e: serde_json::Error| CredentialsError::Json {
            source_name: source_name.to_owned(),
            // serde_json errors quote at most the token type and position, never the value.
            reason: e.to_string(),
        };
        let file: DockerConfigFile = serde_json::from_slice(bytes).map_err(json_err)?;
        let Some(auths) = file.auths else {
            let raw: BTreeMap<String, serde_json::Value> =
                serde_json::from_slice(bytes).map_err(json_err)?;
            if raw.values().any(|v| v.get("auth").is_some()) {
                return Err(CredentialsError::LegacyFormat {
                    source_name: source_name.to_owned(),
                });
            }
            return Ok(Self::from_helpers(&file.cred_helpers, file.creds_store));
        };
        let mut creds = Self::from_helpers(&file.cred_helpers, file.creds_store);
        // An exact key (`docker.io`) wins over an alias (`https://index.docker.io/v1/`).
        let mut exact = std::collections::BTreeSet::new();
        for (key, entry) in auths {
            let registry = normalize_registry(&key);
            let credential = entry.into_credential(source_name, &key)?;
            let is_exact = key == registry;
            if is_exact
                || (!exact.contains(&registry) && !creds.by_registry.contains_key(&registry))
            {
                creds.by_registry.insert(registry.clone(), credential);
            }
            if is_exact {
                exact.insert(registry);
            }
        }
        Ok(creds)
    }

    fn from_helpers(cred_helpers: &BTreeMap<String, String>, creds_store: Option<String>) -> Self {
        if let Some(store) = creds_store {
            tracing::warn!(helper = %store, "docker config names a credsStore; Stratum does not run credential helpers and uses only \"auths\"");
        }
        let helpers = cred_helpers
            .iter()
            .map(|(k, v)| (normalize_registry(k), v.clone()))
            .collect();
        Self {
            by_registry: BTreeMap::new(),
            helpers,
        }
    }

    /// Sets the credential for `registry` (any key form accepted).
    pub fn insert(&mut self, registry: &str, credential: Credential) {
        self.by_registry
            .insert(normalize_registry(registry), credential);
    }

    /// The credential for a registry name (`docker.io`, `host:5000`).
    ///
    /// A registry delegated to a credential helper with no inline entry is an error rather than
    /// a silent anonymous fallback.
    pub fn for_registry(&self, registry: &str) -> Result<Credential, CredentialsError> {
        let key = normalize_registry(registry);
        if let Some(credential) = self.by_registry.get(&key) {
            return Ok(credential.clone());
        }
        match self.helpers.get(&key) {
            Some(helper) => Err(CredentialsError::HelperUnsupported {
                registry: key,
                helper: helper.clone(),
            }),
            None => Ok(Credential::Anonymous),
        }
    }
}

impl AuthEntry {
    fn into_credential(self, source_name: &str, key: &str) -> Result<Credential, CredentialsError> {
        let present = |s: &Option<String>| s.as_deref().is_some_and(|v| !v.is_empty());
        if present(&self.registrytoken) {
            return Ok(Credential::RegistryToken(Secret::new(
                self.registrytoken.unwrap_or_default(),
            )));
        }
        let (mut username, mut password) = (self.username, self.password);
        if present(&self.auth) {
            let bad = |reason| CredentialsError::BadAuth {
                source_name: source_name.to_owned(),
                key: key.to_owned(),
                reason,
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(self.auth.unwrap_or_default().trim())
                .map_err(|_| bad("not valid base64"))?;
            let decoded =
                String::from_utf8(decoded).map_err(|_| bad("not UTF-8 after base64 decoding"))?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| bad("missing the ':' between user and password"))?;
            username = Some(user.to_owned());
            password = Some(pass.to_owned());
        }
        if present(&self.identitytoken) {
            return Ok(Credential::IdentityToken {
                username: username.filter(|u| !u.is_empty()),
                token: Secret::new(self.identitytoken.unwrap_or_default()),
            });
        }
        Ok(match (username, password) {
            (Some(username), Some(password)) if !username.is_empty() => Credential::Basic {
                username,
                password: Secret::new(password),
            },
            _ => Credential::Anonymous,
        })
    }
}

/// A credential-store key as a registry name (docker/cli `ConvertToHostname`, plus the Docker
/// Hub aliases).
pub fn normalize_registry(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_owned()
        }
        other => other.to_owned(),
    }
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
