//! A Docker token service for the token-auth test registry (distribution docs/spec/auth/token.md
//! and jwt.md): `GET /token?service=…&scope=…` with HTTP Basic credentials answers
//! `{"token": <RS256 JWT>, "expires_in": …}` granting the requested scopes. The JWT carries the
//! signing certificate in `x5c`; the registry trusts it through `rootcertbundle`. Signing uses the
//! `openssl` command, so the test needs no crypto crate.
//!
//! Every request is recorded, so tests can assert how the client authenticated (R3: a refresh
//! must present the configured credentials, never the expired bearer).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

pub const SERVICE: &str = "stratum-test-registry";
pub const ISSUER: &str = "stratum-test-token-issuer";

/// One request the token service received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The username of valid Basic credentials, if any were sent.
    pub basic_user: Option<String>,
    /// Whether this was a valid OAuth2 refresh-token grant (an `identitytoken` login).
    pub refresh_grant: bool,
    /// Whether the request carried `Authorization: Bearer` (a client presenting an old token).
    pub presented_bearer: bool,
    pub scopes: Vec<String>,
    /// Whether a token was issued.
    pub granted: bool,
}

#[derive(Debug)]
pub struct TokenServer {
    port: u16,
    dir: PathBuf,
    pub requests: Arc<Mutex<Vec<TokenRequest>>>,
}

impl TokenServer {
    pub fn start(dir: &Path, user: &str, pass: &str) -> Self {
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=stratum-test-token",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .expect("openssl")
            .success();
        assert!(ok, "openssl req failed");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("openssl x509");
        assert!(der.status.success());
        let x5c = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
        let listener = TcpListener::bind("127.0.0.1:0").expect("token server port");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            key,
            x5c,
            user: user.to_owned(),
            pass: pass.to_owned(),
            requests: requests.clone(),
        });
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                std::thread::spawn(move || {
                    let _ = state.serve(stream);
                });
            }
        });
        Self {
            port,
            dir: dir.to_owned(),
            requests,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    pub fn cert_pem(&self) -> PathBuf {
        self.dir.join("token.crt")
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

struct State {
    key: PathBuf,
    x5c: String,
    user: String,
    pass: String,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
}

impl State {
    fn serve(&self, stream: std::net::TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let (mut authorization, mut content_length) = (None, 0usize);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_owned());
            } else if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; content_length];
        reader.read_exact(&mut body)?;
        let target = request_line.split_whitespace().nth(1).unwrap_or("/");
        let url = url::Url::parse(&format!("http://x{target}")).expect("request target");
        // GET carries the parameters in the query; the OAuth2 POST (docs/spec/auth/oauth.md) in
        // a form body, with the scopes space-separated.
        let post = request_line.starts_with("POST ");
        let params: Vec<(String, String)> = if post {
            url::form_urlencoded::parse(&body).into_owned().collect()
        } else {
            url.query_pairs().into_owned().collect()
        };
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let scopes: Vec<String> = if post {
            param("scope")
                .map(|s| s.split(' ').map(str::to_owned).collect())
                .unwrap_or_default()
        } else {
            params
                .iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.clone())
                .collect()
        };
        let presented_bearer = authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer "));
        let basic_user = authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
            .filter(|(u, p)| *u == self.user && *p == self.pass)
            .map(|(u, _)| u);
        // The password doubles as the refresh token an `identitytoken` login would have stored.
        let refresh_grant = post
            && param("grant_type").as_deref() == Some("refresh_token")
            && param("refresh_token").as_deref() == Some(self.pass.as_str());
        let granted =
            (basic_user.is_some() || refresh_grant) && param("service").as_deref() == Some(SERVICE);
        self.requests.lock().unwrap().push(TokenRequest {
            basic_user,
            refresh_grant,
            presented_bearer,
            scopes: scopes.clone(),
            granted,
        });
        let mut out = stream;
        if !granted {
            let body = r#"{"details":"incorrect username or password"}"#;
            write!(
                out,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            return Ok(());
        }
        let token = self.sign(&self.user, &scopes);
        let body = format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":300}}"#);
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn sign(&self, subject: &str, scopes: &[String]) -> String {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|s| {
                let mut parts = s.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": subject, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", rand::random::<u64>()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl dgst");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(signing_input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().expect("openssl dgst output");
        assert!(out.status.success(), "openssl dgst failed");
        format!("{signing_input}.{}", b64(&out.stdout))
    }
}
