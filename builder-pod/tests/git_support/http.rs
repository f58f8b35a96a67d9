//! Smart HTTP: a minimal HTTP/1.1 server (one request per connection) that checks basic auth
//! and runs `git http-backend` as a CGI for each request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;

pub struct HttpGit {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

#[derive(Clone)]
pub struct Options {
    /// `user:password` the server requires; `None` = anonymous.
    pub credentials: Option<(String, String)>,
    /// Answer every request with a 302 to this base URL (plus the request's path and query).
    pub redirect_to: Option<String>,
}

impl HttpGit {
    pub fn start(root: &Path, options: Options) -> HttpGit {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.to_owned();
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let root = root.clone();
                let options = options.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &root, &options);
                });
            }
        });
        HttpGit { port, stop }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for HttpGit {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, root: &Path, options: &Options) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // Object downloads are pre-authorised by the batch answer (`authenticated: true`), like
    // the signed URLs of real LFS servers.
    if let Some(oid) = target.strip_prefix("/lfs-objects/") {
        return lfs_object(&mut out, root, oid);
    }
    if let Some(base) = &options.redirect_to {
        out.write_all(
            format!(
                "HTTP/1.1 302 Found\r\nLocation: {base}{target}\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )?;
        return Ok(());
    }
    if let Some((user, password)) = &options.credentials {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        if header("authorization").as_deref() != Some(expected.as_str()) {
            out.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(());
        }
    }
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(len) = header("content-length") {
        body.resize(len.parse().unwrap_or(0), 0);
        reader.read_exact(&mut body)?;
    }
    if target.ends_with("/info/lfs/objects/batch") {
        return lfs_batch(&mut out, root, &body, &header("host").unwrap_or_default());
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cgi = Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default());
    if let Some(encoding) = header("content-encoding") {
        cgi.env("HTTP_CONTENT_ENCODING", encoding);
    }
    if let Some((user, _)) = &options.credentials {
        cgi.env("REMOTE_USER", user);
    }
    if let Some(protocol) = header("git-protocol") {
        cgi.env("GIT_PROTOCOL", protocol);
    }
    let mut child = cgi
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let mut cgi_out = BufReader::new(child.stdout.take().unwrap());
    let mut status = "200 OK".to_owned();
    let mut response_headers = String::new();
    loop {
        let mut line = String::new();
        if cgi_out.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        match line.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_owned(),
            _ => {
                response_headers.push_str(line);
                response_headers.push_str("\r\n");
            }
        }
    }
    out.write_all(
        format!("HTTP/1.1 {status}\r\n{response_headers}Connection: close\r\n\r\n").as_bytes(),
    )?;
    std::io::copy(&mut cgi_out, &mut out)?;
    let _ = writer.join();
    let _ = child.wait();
    Ok(())
}

/// The Git LFS batch API (download only): every object in `root/lfs-objects/<oid>` is offered
/// at `/lfs-objects/<oid>` on this server; others get a per-object 404 error.
fn lfs_batch(out: &mut TcpStream, root: &Path, body: &[u8], host: &str) -> std::io::Result<()> {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let objects: Vec<serde_json::Value> = request["objects"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|o| {
            let oid = o["oid"].as_str().unwrap_or("").to_owned();
            let size = o["size"].as_u64().unwrap_or(0);
            if root.join("lfs-objects").join(&oid).is_file() {
                serde_json::json!({
                    "oid": oid, "size": size, "authenticated": true,
                    "actions": {"download": {"href": format!("http://{host}/lfs-objects/{oid}")}}
                })
            } else {
                serde_json::json!({
                    "oid": oid, "size": size,
                    "error": {"code": 404, "message": "object not found"}
                })
            }
        })
        .collect();
    let body = serde_json::json!({"transfer": "basic", "objects": objects}).to_string();
    out.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.git-lfs+json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn lfs_object(out: &mut TcpStream, root: &Path, oid: &str) -> std::io::Result<()> {
    let path = root.join("lfs-objects").join(oid);
    match std::fs::read(&path) {
        Ok(bytes) if !oid.contains('/') => {
            out.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                )
                .as_bytes(),
            )?;
            out.write_all(&bytes)
        }
        _ => out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}
