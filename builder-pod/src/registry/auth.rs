//! Registry authentication: the `WWW-Authenticate` challenge flow of the distribution spec and
//! Docker's token protocol (distribution `docs/spec/auth/token.md`, `oauth.md`).
//!
//! A registry is first asked without credentials; its 401 names the scheme. For `Basic` the
//! configured username and password go on every later request. For `Bearer` a token is fetched
//! from the challenge's `realm` for exactly the scopes an operation needs (`repository:<path>:pull`
//! for pulls, `pull,push` for pushes, plus `repository:<source>:pull` for a cross-repository
//! mount — the scope oci-client forgets, its issue #235) and cached per (host, scopes) until it
//! expires. A 401 on a request that carried a token (it expired mid-push, R3) fetches a new one
//! with the *configured* credentials — never by presenting the old bearer to the token service
//! (oras-java #846) — and the request is sent once more.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use serde::Deserialize;
use url::Url;

use super::credentials::{Credential, Secret};
use super::retry::{self, RetryPolicy};
use super::{RegistryError, error::ApiErrors};
use crate::image::Repository;

/// The access an operation needs, for token requests and cache keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Scope(Vec<String>);

impl Scope {
    pub(crate) fn pull(repo: &Repository) -> Self {
        Self(vec![format!("repository:{}:pull", repo.path())])
    }

    pub(crate) fn push(repo: &Repository) -> Self {
        Self(vec![format!("repository:{}:pull,push", repo.path())])
    }

    /// Adds pull access to `source`, for mounting a blob from it.
    pub(crate) fn and_pull(mut self, source: &Repository) -> Self {
        self.0.push(format!("repository:{}:pull", source.path()));
        self
    }

    fn key(&self) -> String {
        self.0.join(" ")
    }

    /// Whether one of our entries already grants `wanted` (`type:name:actions`), e.g.
    /// `repository:a:pull,push` covers `repository:a:pull`.
    fn covers(&self, wanted: &str) -> bool {
        let Some((resource, actions)) = wanted.rsplit_once(':') else {
            return false;
        };
        self.0.iter().any(|have| {
            have.rsplit_once(':')
                .is_some_and(|(have_resource, have_actions)| {
                    have_resource == resource
                        && actions
                            .split(',')
                            .all(|a| have_actions.split(',').any(|h| h == a))
                })
        })
    }
}

/// What a 401 asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: Url,
        service: Option<String>,
        scope: Option<String>,
        error: Option<String>,
    },
}

/// Reads the `WWW-Authenticate` headers of a 401; Bearer is preferred when several are offered.
pub(crate) fn parse_challenge(headers: &HeaderMap) -> Option<Challenge> {
    let mut basic = false;
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else { continue };
        let Ok(challenges) = http_auth::parse_challenges(text) else {
            continue;
        };
        for c in challenges {
            let param = |name: &str| {
                c.params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            if c.scheme.eq_ignore_ascii_case("bearer") {
                let Some(realm) = param("realm").and_then(|r| Url::parse(&r).ok()) else {
                    continue;
                };
                if !matches!(realm.scheme(), "http" | "https") {
                    continue;
                }
                return Some(Challenge::Bearer {
                    realm,
                    service: param("service"),
                    scope: param("scope"),
                    error: param("error"),
                });
            }
            basic |= c.scheme.eq_ignore_ascii_case("basic");
        }
    }
    basic.then_some(Challenge::Basic)
}

#[derive(Debug, Clone)]
enum HostAuth {
    Basic,
    Bearer { realm: Url, service: Option<String> },
}

#[derive(Debug)]
struct Token {
    value: Secret,
    expires_at: Instant,
}

/// Per-client authentication state: the scheme each host asked for and the cached tokens.
#[derive(Debug)]
pub(crate) struct Authenticator {
    http: reqwest::Client,
    policy: RetryPolicy,
    hosts: std::sync::Mutex<HashMap<String, HostAuth>>,
    tokens: tokio::sync::Mutex<HashMap<(String, String), Token>>,
}

/// Token lifetime when the service does not say (token.md: "defaults to 60 seconds").
const DEFAULT_TOKEN_LIFETIME: u64 = 60;
/// Refresh this much before expiry so a token does not lapse in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

impl Authenticator {
    pub(crate) fn new(http: reqwest::Client, policy: RetryPolicy) -> Self {
        Self {
            http,
            policy,
            hosts: Default::default(),
            tokens: Default::default(),
        }
    }

    fn host_auth(&self, host: &str) -> Option<HostAuth> {
        self.hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .cloned()
    }

    fn set_host_auth(&self, host: &str, auth: HostAuth) {
        self.hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(host.to_owned(), auth);
    }

    /// The `Authorization` value for a request to `host` needing `scope`, if one is known.
    pub(crate) async fn header(
        &self,
        host: &str,
        scope: &Scope,
        credential: &Credential,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        if let Credential::RegistryToken(token) = credential {
            return Ok(Some(bearer(token)));
        }
        match self.host_auth(host) {
            None => Ok(None),
            Some(HostAuth::Basic) => Ok(basic(credential)),
            Some(HostAuth::Bearer { realm, service }) => {
                let mut tokens = self.tokens.lock().await;
                let key = (host.to_owned(), scope.key());
                if let Some(token) = tokens.get(&key).filter(|t| t.expires_at > Instant::now()) {
                    return Ok(Some(bearer(&token.value)));
                }
                let token = self
                    .fetch_token(host, &realm, service.as_deref(), scope, credential)
                    .await?;
                let header = bearer(&token.value);
                tokens.insert(key, token);
                Ok(Some(header))
            }
        }
    }

    /// Handles a 401 from `host`: learns its scheme and, for Bearer, drops the cached token and
    /// fetches a new one. An error means there is nothing left to try.
    pub(crate) async fn challenged(
        &self,
        host: &str,
        scope: &Scope,
        credential: &Credential,
        sent: Option<&HeaderValue>,
        headers: &HeaderMap,
    ) -> Result<(), RegistryError> {
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            registry: host.to_owned(),
            scope: scope.key(),
            detail,
        };
        match parse_challenge(headers) {
            None => Err(unauthorized(
                "the registry answered 401 without a usable WWW-Authenticate challenge".into(),
            )),
            Some(Challenge::Basic) => {
                if !matches!(credential, Credential::Basic { .. }) {
                    return Err(unauthorized(
                        "the registry requires a username and password and none are configured"
                            .into(),
                    ));
                }
                self.set_host_auth(host, HostAuth::Basic);
                Ok(())
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope: challenge_scope,
                error,
            }) => {
                if matches!(credential, Credential::RegistryToken(_)) {
                    return Err(unauthorized(format!(
                        "the configured registrytoken was rejected{}",
                        error.map(|e| format!(" ({e})")).unwrap_or_default()
                    )));
                }
                self.set_host_auth(
                    host,
                    HostAuth::Bearer {
                        realm: realm.clone(),
                        service: service.clone(),
                    },
                );
                // Concurrent requests share one refresh: whoever holds the lock fetches, the
                // others find a token different from the one they were refused with and use it.
                let mut tokens = self.tokens.lock().await;
                let key = (host.to_owned(), scope.key());
                if let Some(token) = tokens.get(&key).filter(|t| t.expires_at > Instant::now())
                    && sent.is_none_or(|sent| *sent != bearer(&token.value))
                {
                    return Ok(());
                }
                // Ask for what the registry said it wants as well as what we need.
                let mut wanted = scope.clone();
                for extra in challenge_scope
                    .iter()
                    .flat_map(|s| s.split(' '))
                    .filter(|s| !s.is_empty())
                {
                    if !wanted.covers(extra) {
                        wanted.0.push(extra.to_owned());
                    }
                }
                let token = self
                    .fetch_token(host, &realm, service.as_deref(), &wanted, credential)
                    .await?;
                tokens.insert(key, token);
                Ok(())
            }
        }
    }

    async fn fetch_token(
        &self,
        host: &str,
        realm: &Url,
        service: Option<&str>,
        scope: &Scope,
        credential: &Credential,
    ) -> Result<Token, RegistryError> {
        let what = format!("token for {host} from {}", realm_origin(realm));
        retry::run(&self.policy, &what, || {
            self.request_token(host, realm, service, scope, credential)
        })
        .await
    }

    async fn request_token(
        &self,
        host: &str,
        realm: &Url,
        service: Option<&str>,
        scope: &Scope,
        credential: &Credential,
    ) -> Result<Token, RegistryError> {
        let request = match credential {
            // OAuth2 refresh-token grant (distribution docs/spec/auth/oauth.md).
            Credential::IdentityToken { token, .. } => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", token.expose())
                    .append_pair("client_id", "stratum")
                    .append_pair("scope", &scope.key());
                if let Some(service) = service {
                    form.append_pair("service", service);
                }
                self.http
                    .post(realm.clone())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form.finish())
            }
            _ => {
                let mut url = realm.clone();
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for s in &scope.0 {
                        query.append_pair("scope", s);
                    }
                    if let Credential::Basic { username, .. } = credential {
                        query.append_pair("account", username);
                    }
                }
                let mut request = self.http.get(url);
                if let Some(header) = basic(credential) {
                    request = request.header(reqwest::header::AUTHORIZATION, header);
                }
                request
            }
        };
        let request_line = format!("token request to {}", realm_origin(realm));
        let response = request
            .send()
            .await
            .map_err(|source| RegistryError::Transport {
                request: request_line.clone(),
                source: source.without_url(),
            })?;
        let status = response.status().as_u16();
        let retry_after = super::client::retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|source| RegistryError::Transport {
                request: request_line.clone(),
                source: source.without_url(),
            })?;
        match status {
            200 => {}
            401 | 403 => {
                return Err(RegistryError::Unauthorized {
                    registry: host.to_owned(),
                    scope: scope.key(),
                    detail: format!(
                        "the token service at {} rejected the credentials (HTTP {status})",
                        realm_origin(realm)
                    ),
                });
            }
            _ => {
                return Err(RegistryError::Status {
                    request: request_line,
                    status,
                    errors: ApiErrors::parse(&body),
                    retry_after,
                });
            }
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                request: request_line.clone(),
                detail: format!("token response is not JSON: {e}"),
            })?;
        let value = parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| RegistryError::Protocol {
                request: request_line,
                detail: "token response has no token".into(),
            })?;
        let lifetime = Duration::from_secs(
            parsed
                .expires_in
                .unwrap_or(DEFAULT_TOKEN_LIFETIME)
                .max(DEFAULT_TOKEN_LIFETIME),
        );
        Ok(Token {
            value: Secret::new(value),
            expires_at: Instant::now() + lifetime - EXPIRY_MARGIN,
        })
    }
}

/// `scheme://host[:port]` of a realm, for messages (a realm's path and query are not secret,
/// but they are noise).
fn realm_origin(realm: &Url) -> String {
    realm.origin().ascii_serialization()
}

fn bearer(token: &Secret) -> HeaderValue {
    sensitive(&format!("Bearer {}", token.expose()))
}

fn basic(credential: &Credential) -> Option<HeaderValue> {
    match credential {
        Credential::Basic { username, password } => {
            let raw = format!("{username}:{}", password.expose());
            Some(sensitive(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )))
        }
        _ => None,
    }
}

/// A header value marked sensitive, so that HTTP/2 never indexes it and hyper never prints it.
fn sensitive(value: &str) -> HeaderValue {
    let mut header = HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""));
    header.set_sensitive(true);
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(WWW_AUTHENTICATE, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let bearer = parse_challenge(&headers(&[
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="invalid_token""#,
        ]));
        assert_eq!(
            bearer,
            Some(Challenge::Bearer {
                realm: Url::parse("https://auth.example/token").unwrap(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
                error: Some("invalid_token".into()),
            })
        );
        assert_eq!(
            parse_challenge(&headers(&[r#"Basic realm="Registry Realm""#])),
            Some(Challenge::Basic)
        );
        // Bearer wins when both are offered, in one header or in two.
        let both = parse_challenge(&headers(&[
            r#"Basic realm="x", Bearer realm="http://t/token""#,
        ]));
        assert!(matches!(both, Some(Challenge::Bearer { .. })));
        let both = parse_challenge(&headers(&[
            r#"Basic realm="x""#,
            r#"Bearer realm="http://t/token""#,
        ]));
        assert!(matches!(both, Some(Challenge::Bearer { .. })));
    }

    #[test]
    fn unusable_challenges_are_ignored() {
        for value in [
            r#"Bearer service="x""#,
            r#"Bearer realm="file:///etc/passwd""#,
            "Negotiate",
            "garbage ===",
            "",
        ] {
            assert_eq!(parse_challenge(&headers(&[value])), None, "{value:?}");
        }
    }

    #[test]
    fn scopes_name_repositories_and_actions() {
        let a = Repository::parse("localhost:5000/team/app").unwrap();
        let b = Repository::parse("localhost:5000/base/busybox").unwrap();
        assert_eq!(Scope::pull(&a).key(), "repository:team/app:pull");
        assert_eq!(
            Scope::push(&a).and_pull(&b).key(),
            "repository:team/app:pull,push repository:base/busybox:pull"
        );
    }

    #[test]
    fn basic_header_encodes_user_and_password_and_is_sensitive() {
        let h = basic(&Credential::Basic {
            username: "user".into(),
            password: Secret::new("pass"),
        })
        .unwrap();
        assert_eq!(h.to_str().unwrap(), "Basic dXNlcjpwYXNz");
        assert!(h.is_sensitive());
        assert!(basic(&Credential::Anonymous).is_none());
    }
}
