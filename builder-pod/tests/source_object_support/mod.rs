//! Real servers on loopback for the object-source tests: an HTTPS server with a test CA
//! (python3's http.server behind ssl, `https_server.py`), a moto S3 server that enforces
//! credentials (`s3_setup.py`), and archive builders for ordinary and hostile contexts.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

// Through `../builder-pod/` so that other crates' tests (tests/tests/e2e_sources.rs) that
// include this module with `#[path]` find the scripts too.
const SUPPORT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../builder-pod/tests/source_object_support"
);

/// Where scripts/install-deps puts the moto virtualenv.
pub const MOTO_VENV: &str = "/opt/stratum-moto";

/// A test CA and a server certificate for 127.0.0.1 signed by it (openssl CLI).
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    pub fn generate(dir: &Path) -> Self {
        let ca_key = dir.join("ca.key");
        let ca = dir.join("ca.crt");
        let key = dir.join("server.key");
        let csr = dir.join("server.csr");
        let cert = dir.join("server.crt");
        let ext = dir.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", s(&ca_key), "-out", s(&ca), "-days", "2"],
                &["-subj", "/CN=stratum object-source test CA"],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    s(&key),
                    "-out",
                    s(&csr),
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        openssl(&[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&ca),
            "-CAkey",
            s(&ca_key),
            "-CAcreateserial",
            "-out",
            s(&cert),
            "-days",
            "2",
            "-extfile",
            s(&ext),
        ]);
        Self { ca, cert, key }
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The HTTPS server of `https_server.py`; killed on drop.
pub struct HttpsServer {
    pub dir: tempfile::TempDir,
    pub certs: Certs,
    pub port: u16,
    child: Child,
}

impl HttpsServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certs = Certs::generate(dir.path());
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let mut child = Command::new("python3")
            .arg(format!("{SUPPORT}/https_server.py"))
            .args([
                &root,
                &certs.cert,
                &certs.key,
                &dir.path().join("requests.log"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("https_server.py printed {line:?} instead of its port")
        });
        Self {
            dir,
            certs,
            port,
            child,
        }
    }

    /// `https://127.0.0.1:PORT/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }

    /// Puts `bytes` at `root/<name>` (served as `/files/<name>`, `/basic/<name>`, …).
    pub fn put(&self, name: &str, bytes: &[u8]) {
        let path = self.dir.path().join("root").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// The requests seen so far, as JSON objects {method, path, headers}.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("requests.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A secret directory trusting the test CA (`ca.crt`) plus `files`.
    pub fn secret(&self, files: &[(&str, &str)]) -> tempfile::TempDir {
        let ca = std::fs::read_to_string(&self.certs.ca).unwrap();
        let mut all = vec![("ca.crt", ca.as_str())];
        all.extend_from_slice(files);
        secret(&all)
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory laid out like a mounted Secret: one file per key.
pub fn secret(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in files {
        std::fs::write(dir.path().join(key), value).unwrap();
    }
    dir
}

/// A moto S3 server that checks signatures, with one bucket of objects; killed on drop.
pub struct Moto {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Moto {
    pub fn start(bucket: &str, objects: &[(&str, &[u8])]) -> Self {
        let python = format!("{MOTO_VENV}/bin/python");
        assert!(
            Path::new(&python).exists(),
            "{python} is missing: run scripts/install-deps (it installs moto[server] there)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let child = Command::new(format!("{MOTO_VENV}/bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Three unauthenticated IAM calls, then every request must be signed by a real key.
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut uploads = Vec::new();
        for (name, bytes) in objects {
            let path = dir.path().join(format!("upload-{}", uploads.len()));
            std::fs::write(&path, bytes).unwrap();
            uploads.push(format!("{name}={}", path.display()));
        }
        let out = Command::new(&python)
            .arg(format!("{SUPPORT}/s3_setup.py"))
            .arg(&endpoint)
            .arg(bucket)
            .args(&uploads)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "s3_setup.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let keys = String::from_utf8(out.stdout).unwrap();
        let (id, secret) = keys.trim().split_once(' ').unwrap();
        Self {
            endpoint,
            access_key_id: id.to_owned(),
            secret_access_key: secret.to_owned(),
            child,
            _dir: dir,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where scripts/install-deps puts Azurite (npm).
pub const AZURITE_PREFIX: &str = "/opt/stratum-azurite";
/// Azurite's well-known development account and key (public, documented by Microsoft).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An Azurite blob service with one container of blobs; killed on drop.
pub struct Azurite {
    /// Path-style endpoint: `http://127.0.0.1:PORT/devstoreaccount1`.
    pub endpoint: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Azurite {
    pub fn start(container: &str, blobs: &[(&str, &[u8])]) -> Self {
        let bin = format!("{AZURITE_PREFIX}/node_modules/.bin/azurite-blob");
        assert!(
            Path::new(&bin).exists(),
            "{bin} is missing: run scripts/install-deps (it installs azurite from npm there)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("azurite.log")).unwrap();
        let child = Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path().join("data"))
            .args(["--silent", "--skipApiVersionCheck"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("azurite-blob");
        let deadline = Instant::now() + Duration::from_secs(90);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "azurite-blob did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let endpoint = format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}");
        let mut uploads = Vec::new();
        for (name, bytes) in blobs {
            let path = dir.path().join(format!("upload-{}", uploads.len()));
            std::fs::write(&path, bytes).unwrap();
            uploads.push(format!("{name}={}", path.display()));
        }
        let out = Command::new("python3")
            .arg(format!("{SUPPORT}/azure_setup.py"))
            .args([&endpoint, AZURITE_ACCOUNT, AZURITE_KEY, container])
            .args(&uploads)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "azure_setup.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            endpoint,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One tar entry with a raw name (the `tar` crate's builder refuses `..` and absolute names,
/// which hostile fixtures need).
pub enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// A tar of `entries`, names written verbatim (GNU long names when over 100 bytes).
pub fn tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let (name, kind, body, link): (&str, tar::EntryType, &[u8], Option<&str>) = match entry {
            Entry::File(name, body) => (name, tar::EntryType::Regular, body, None),
            Entry::Dir(name) => (name, tar::EntryType::Directory, b"", None),
            Entry::Symlink(name, target) => (name, tar::EntryType::Symlink, b"", Some(target)),
            Entry::Hardlink(name, target) => (name, tar::EntryType::Link, b"", Some(target)),
        };
        if name.len() > 100 {
            let mut long = tar::Header::new_gnu();
            long.set_entry_type(tar::EntryType::GNULongName);
            long.set_size(name.len() as u64 + 1);
            long.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
            long.set_cksum();
            out.extend_from_slice(long.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            pad(&mut out);
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(body.len() as u64);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_mtime(1_700_000_000);
        let gnu = header.as_gnu_mut().unwrap();
        let n = name.len().min(100);
        gnu.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        if let Some(link) = link {
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        pad(&mut out);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(512) * 512, 0);
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// One zip entry.
pub enum ZipEntry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

pub fn zip(entries: &[ZipEntry<'_>]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for entry in entries {
        match entry {
            ZipEntry::File(name, body) => {
                writer.start_file(*name, options).unwrap();
                writer.write_all(body).unwrap();
            }
            ZipEntry::Dir(name) => writer.add_directory(*name, options).unwrap(),
            ZipEntry::Symlink(name, target) => writer.add_symlink(*name, *target, options).unwrap(),
        }
    }
    writer.finish().unwrap().into_inner()
}

/// Every path under `dir`, relative, sorted (to show that nothing else was written).
pub fn tree(dir: &Path) -> Vec<String> {
    let mut paths: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    paths.sort();
    paths
}
