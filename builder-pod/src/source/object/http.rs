//! `https://` (and `http://`) objects: a plain GET with reqwest, which follows redirects and
//! keeps presigned query strings intact (an object_store `Path` cannot carry them).
//!
//! Trust: the client verifies certificates against the system roots through rustls'
//! platform verifier; a private CA is added the standard way, by pointing `SSL_CERT_FILE` at a
//! PEM bundle that includes it. Verification is never disabled.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, ETAG, HeaderMap, LAST_MODIFIED, RANGE,
};
use reqwest::redirect;
use url::Url;

use super::ObjectVersion;
use super::auth::{HttpAuth, ObjectAuth};
use super::error::{ObjectError, status_error};
use super::url::redact;

/// Redirects followed before giving up (curl's and reqwest's usual bound).
const MAX_REDIRECTS: usize = 10;

fn client(auth: &ObjectAuth, shown: &str) -> Result<Client, ObjectError> {
    let extra_roots = match &auth.ca_pem {
        Some(pem) => reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
            ObjectError::Secret {
                dir: "the source secret".into(),
                key: "ca.crt".into(),
                reason: format!("not a PEM certificate bundle: {e}"),
            }
        })?,
        None => Vec::new(),
    };
    Client::builder()
        .tls_certs_merge(extra_roots)
        .user_agent(concat!("stratum/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // Per read in the blocking client: a stalled server fails the fetch, a slow one does not.
        .timeout(Duration::from_secs(120))
        // A redirect may go to another host (a CDN, presigned storage) — reqwest drops the
        // Authorization header then — but never from https down to plain http, which would
        // expose the rest of the exchange (threats §2.6 #37: redirects restricted).
        .redirect(redirect::Policy::custom(|attempt| {
            let downgrade = attempt.url().scheme() == "http"
                && attempt.previous().iter().any(|u| u.scheme() == "https");
            if downgrade {
                attempt.error("refusing a redirect from https to http")
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| transport_error(shown, e))
}

fn request(
    client: &Client,
    method: reqwest::Method,
    url: &Url,
    auth: &ObjectAuth,
) -> RequestBuilder {
    let request = client.request(method, url.clone());
    match &auth.http {
        Some(HttpAuth::Basic { username, password }) => {
            request.basic_auth(username, Some(password))
        }
        Some(HttpAuth::Bearer(token)) => request.header(AUTHORIZATION, format!("Bearer {token}")),
        None => request,
    }
}

/// Sends the request; a transport failure or a non-2xx status becomes a typed error.
fn send(request: RequestBuilder, shown: &str) -> Result<Response, ObjectError> {
    let response = request.send().map_err(|e| transport_error(shown, e))?;
    let status = response.status();
    if status.is_success() {
        Ok(response)
    } else {
        Err(status_error(shown, status.as_u16()))
    }
}

/// A transport error, described without its URL (reqwest's Display includes it, query and all)
/// but with its causes (connection refused, certificate unknown, …).
pub(crate) fn transport_error(shown: &str, err: reqwest::Error) -> ObjectError {
    let refused_redirect = err.is_redirect();
    let err = err.without_url();
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    if detail.contains("certificate") || detail.contains("UnknownIssuer") {
        detail.push_str(
            " (a server with a private CA needs SSL_CERT_FILE pointing at a bundle that includes \
             it)",
        );
    }
    if refused_redirect {
        // Our policy said no (a downgrade to http, a loop): retrying will not change it.
        return ObjectError::Redirect {
            url: shown.to_owned(),
            detail,
        };
    }
    ObjectError::Unavailable {
        url: shown.to_owned(),
        detail,
    }
}

/// HEAD the object; servers that refuse HEAD are asked for the first byte instead (some
/// presigned URLs are signed for GET only and answer a HEAD with 403).
pub(crate) fn probe(url: &Url, auth: &ObjectAuth) -> Result<ObjectVersion, ObjectError> {
    let shown = redact(url.as_str());
    let client = client(auth, &shown)?;
    let first_byte = || {
        send(
            request(&client, reqwest::Method::GET, url, auth).header(RANGE, "bytes=0-0"),
            &shown,
        )
    };
    let response = match send(request(&client, reqwest::Method::HEAD, url, auth), &shown) {
        Ok(response) => response,
        Err(ObjectError::HttpStatus {
            status: 405 | 501, ..
        }) => first_byte()?,
        Err(ObjectError::Auth { .. }) if url.query().is_some() => first_byte()?,
        Err(err) => return Err(err),
    };
    Ok(version(response.headers()))
}

/// GETs the object: the response streams the body.
pub(crate) fn get(url: &Url, auth: &ObjectAuth) -> Result<(Response, ObjectVersion), ObjectError> {
    let shown = redact(url.as_str());
    let client = client(auth, &shown)?;
    let response = send(request(&client, reqwest::Method::GET, url, auth), &shown)?;
    let version = version(response.headers());
    Ok((response, version))
}

fn version(headers: &HeaderMap) -> ObjectVersion {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // A ranged answer's Content-Length is the range; the total follows the `/` of Content-Range.
    let size = match text(CONTENT_RANGE) {
        Some(range) => range.rsplit('/').next().and_then(|n| n.parse().ok()),
        None => text(CONTENT_LENGTH).and_then(|n| n.parse().ok()),
    };
    ObjectVersion {
        etag: text(ETAG),
        last_modified: text(LAST_MODIFIED),
        size,
    }
}
