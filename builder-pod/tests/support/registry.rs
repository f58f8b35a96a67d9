//! A real CNCF distribution registry (Debian's `docker-registry`) for tests.
//!
//! `TestRegistry::start(Auth::…)` writes a config into a temporary directory, starts
//! `/usr/bin/docker-registry serve` on a free loopback port, and waits until `/v2/` answers.
//! Dropping the value kills the process and removes its storage.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stratum_builder::image::{Reference, Repository};
use stratum_builder::registry::{
    ClientConfig, Credential, Credentials, RegistryClient, RetryPolicy, Secret,
};

use super::token::TokenServer;

/// How the registry authenticates clients.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Anyone may pull and push.
    None,
    /// HTTP Basic against an htpasswd file made with `htpasswd -Bbn`.
    Htpasswd { user: String, pass: String },
    /// Docker token auth: a token server (in this process) issues RS256 JWTs for `user`/`pass`,
    /// which the registry verifies against the token server's certificate.
    Token { user: String, pass: String },
}

/// A running registry; killed on drop.
#[derive(Debug)]
pub struct TestRegistry {
    /// `127.0.0.1:<port>`.
    pub host_port: String,
    pub auth: Auth,
    /// The token server, for `Auth::Token`.
    pub token_server: Option<TokenServer>,
    root: tempfile::TempDir,
    child: Child,
}

impl TestRegistry {
    pub fn start(auth: Auth) -> Self {
        let root = tempfile::tempdir().expect("registry temp dir");
        let mut last_error = String::new();
        // A freshly probed port can be taken by another test before the registry binds it.
        for _ in 0..5 {
            let port = free_port();
            let token_server = match &auth {
                Auth::Token { user, pass } => Some(TokenServer::start(root.path(), user, pass)),
                _ => None,
            };
            let config = write_config(root.path(), port, &auth, token_server.as_ref());
            let log =
                std::fs::File::create(root.path().join("registry.log")).expect("registry log");
            let mut child = Command::new("/usr/bin/docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start /usr/bin/docker-registry (apt-get install docker-registry)");
            let host_port = format!("127.0.0.1:{port}");
            match wait_ready(&host_port, &mut child) {
                Ok(()) => {
                    return Self {
                        host_port,
                        auth,
                        token_server,
                        root,
                        child,
                    };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = format!(
                        "{e}: {}",
                        std::fs::read_to_string(root.path().join("registry.log"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        panic!("docker-registry did not start: {last_error}");
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host_port)
    }

    pub fn repo(&self, path: &str) -> Repository {
        Repository::parse(&format!("{}/{path}", self.host_port)).expect("test repository")
    }

    /// A reference on this registry, e.g. `reference("base/busybox:1")`.
    pub fn reference(&self, name: &str) -> Reference {
        Reference::parse(&format!("{}/{name}", self.host_port)).expect("test reference")
    }

    /// The storage directory (for tests that look at what the registry stored).
    pub fn storage(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The credentials that work for this registry (anonymous for `Auth::None`).
    pub fn credentials(&self) -> Credentials {
        self.credentials_for(&self.host_port)
    }

    /// The same credentials, filed under another name for the registry (a proxy in front).
    pub fn credentials_for(&self, host_port: &str) -> Credentials {
        let mut creds = Credentials::anonymous();
        match &self.auth {
            Auth::None => {}
            Auth::Htpasswd { user, pass } | Auth::Token { user, pass } => {
                creds.insert(
                    host_port,
                    Credential::Basic {
                        username: user.clone(),
                        password: Secret::new(pass.clone()),
                    },
                );
            }
        }
        creds
    }

    /// `user:pass` for `skopeo --creds`, if the registry needs it.
    pub fn skopeo_creds(&self) -> Option<String> {
        match &self.auth {
            Auth::None => None,
            Auth::Htpasswd { user, pass } | Auth::Token { user, pass } => {
                Some(format!("{user}:{pass}"))
            }
        }
    }

    /// A client for this registry (plain HTTP) with a fast retry policy.
    pub fn client(&self) -> RegistryClient {
        client_for(&self.host_port, self.credentials())
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A retry policy that keeps fault tests fast while still exercising every branch.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 4,
        base: Duration::from_millis(20),
        min: Duration::from_millis(10),
        max: Duration::from_millis(200),
        jitter: 0.1,
        retry_after_cap: Duration::from_secs(2),
    }
}

/// A client speaking plain HTTP to `host_port`.
pub fn client_for(host_port: &str, credentials: Credentials) -> RegistryClient {
    let mut config = ClientConfig {
        retry: fast_retry(),
        read_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    };
    config.insecure_registries.insert(host_port.to_owned());
    config
        .insecure_registries
        .insert(host_port.replace("127.0.0.1", "localhost"));
    RegistryClient::new(config, credentials).expect("registry client")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn write_config(root: &Path, port: u16, auth: &Auth, token: Option<&TokenServer>) -> PathBuf {
    let auth_section = match auth {
        Auth::None => String::new(),
        Auth::Htpasswd { user, pass } => {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("htpasswd (apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            let file = root.join("htpasswd");
            std::fs::write(&file, out.stdout).expect("write htpasswd");
            format!(
                "auth:\n  htpasswd:\n    realm: stratum-test\n    path: {}\n",
                file.display()
            )
        }
        Auth::Token { .. } => {
            let token = token.expect("token server");
            format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                token.realm(),
                super::token::SERVICE,
                super::token::ISSUER,
                token.cert_pem().display()
            )
        }
    };
    let config = format!(
        "version: 0.1\nlog:\n  accesslog:\n    disabled: true\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: stratum-test-secret\n{auth_section}",
        data = root.join("data").display(),
    );
    let path = root.join("config.yml");
    std::fs::write(&path, config).expect("write registry config");
    path
}

fn wait_ready(host_port: &str, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("docker-registry exited with {status}"));
        }
        if let Ok(mut stream) = TcpStream::connect(host_port) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
            let mut buf = [0u8; 12];
            if stream.read_exact(&mut buf).is_ok() && matches!(&buf[9..12], b"200" | b"401") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err("timed out waiting for /v2/".into())
}
