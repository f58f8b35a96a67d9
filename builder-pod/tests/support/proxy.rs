//! A fault-injecting HTTP/1.1 proxy between the client under test and a real registry
//! (threats-and-faults §4: "a scriptable fake registry … per-request fault table … in front of a
//! real registry").
//!
//! Each request is matched against the rule table; the first active matching rule decides its
//! fault. Without one, the request is forwarded unchanged (with `X-Forwarded-Host`, so the
//! registry's `Location` headers point back at the proxy). Every request is logged with the
//! fault applied, so tests can assert what the client did (a new upload session, no retry storm).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What to do to a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer directly with this status, headers and body; the registry never sees the request.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Wait, then forward normally.
    Delay(Duration),
    /// Read this many bytes of the request body, then reset the connection (the registry never
    /// sees the request).
    ResetMidRequestBody { after: usize },
    /// Forward the request (the registry acts on it), then reset the connection instead of
    /// answering: the client cannot know the request succeeded (R4).
    ForwardThenReset,
    /// Forward; answer with the full `Content-Length` but only `keep` body bytes, then close
    /// (an unexpected EOF).
    TruncateBody { keep: usize },
    /// Forward; flip one byte in the middle of the response body (same length).
    CorruptBody,
    /// Forward; answer with only the first `keep` body bytes and a matching `Content-Length`.
    ShortBody { keep: usize },
    /// Forward; set (or with `None`, remove) a response header.
    SetHeader { name: String, value: Option<String> },
    /// Send `method path` to the registry first (`None`: the request's own path and query),
    /// then forward the request.
    UpstreamFirst {
        method: String,
        path: Option<String>,
    },
    /// Forward; if the registry answers 200, answer `307` to a "storage" URL on
    /// `localhost:<proxy port>/__cdn/<n>/…` (another host from the client's point of view)
    /// that serves that content without credentials, as a presigned URL does (R7).
    RedirectToCdn,
}

/// A row of the fault table.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Option<String>,
    pub path_contains: String,
    /// Matching requests to let through before the fault applies.
    pub skip: usize,
    /// Matching requests the fault applies to after `skip` (`usize::MAX`: all).
    pub times: usize,
    pub fault: Fault,
    seen: usize,
}

impl Rule {
    pub fn new(method: &str, path_contains: &str, fault: Fault) -> Self {
        Self {
            method: (!method.is_empty()).then(|| method.to_owned()),
            path_contains: path_contains.to_owned(),
            skip: 0,
            times: 1,
            fault,
            seen: 0,
        }
    }

    pub fn skip(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }

    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        // "Storage" requests match only rules written for them.
        if path.starts_with("/__cdn/") && !self.path_contains.contains("__cdn") {
            return false;
        }
        self.method.as_deref().is_none_or(|m| m == method) && path.contains(&self.path_contains)
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub method: String,
    pub path: String,
    /// Headers of the request, lowercased names.
    pub headers: Vec<(String, String)>,
    /// The status the client received, if it received one.
    pub status: Option<u16>,
    pub fault: Option<String>,
}

impl LogEntry {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Shared {
    rules: Vec<Rule>,
    log: Vec<LogEntry>,
    /// Content served by the "storage" URLs of `RedirectToCdn`, by number - 1.
    cdn: Vec<Vec<u8>>,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    /// `127.0.0.1:<port>`: point the client here.
    pub host_port: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy for the registry at `upstream` (`127.0.0.1:<port>`).
    pub async fn start(upstream: &str, rules: Vec<Rule>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let port = listener.local_addr().unwrap().port();
        let host_port = format!("127.0.0.1:{port}");
        let shared = Arc::new(Mutex::new(Shared {
            rules,
            ..Shared::default()
        }));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("proxy upstream client");
        let ctx = Arc::new(Context {
            upstream: upstream.to_owned(),
            port,
            http,
            shared: shared.clone(),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let _ = ctx.serve(stream).await;
                });
            }
        });
        Self {
            host_port,
            shared,
            task,
        }
    }

    /// Replaces the fault table.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.shared.lock().unwrap().rules = rules;
    }

    pub fn log(&self) -> Vec<LogEntry> {
        self.shared.lock().unwrap().log.clone()
    }

    /// Logged requests with this method whose path contains `needle`.
    pub fn requests(&self, method: &str, needle: &str) -> Vec<LogEntry> {
        self.log()
            .into_iter()
            .filter(|e| e.method == method && e.path.contains(needle))
            .collect()
    }
}

struct Context {
    upstream: String,
    port: u16,
    http: reqwest::Client,
    shared: Arc<Mutex<Shared>>,
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Context {
    async fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut stream = BufReader::new(stream);
        loop {
            let Some(request) = read_head(&mut stream).await? else {
                return Ok(());
            };
            let fault = self.pick_fault(&request);
            let fault_name = fault.as_ref().map(|f| format!("{f:?}"));
            if let Some(Fault::ResetMidRequestBody { after }) = &fault {
                // Never wait for more than the client sends: a short body is read whole.
                let len: usize = request
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut partial = vec![0u8; (*after).min(len)];
                let _ = stream.read_exact(&mut partial).await;
                self.record(&request, None, fault_name);
                return reset(stream.into_inner());
            }
            let body = read_body(&mut stream, &request).await?;
            let response = match &fault {
                Some(Fault::Respond {
                    status,
                    headers,
                    body,
                }) => Response {
                    status: *status,
                    headers: headers.clone(),
                    body: body.clone(),
                },
                Some(Fault::RedirectToCdn) => {
                    // Like a registry backed by S3: it checks access, then hands out a
                    // pre-authorised storage URL for the content.
                    let upstream = self
                        .upstream_call(&request.method, &request.path, &request.headers, body)
                        .await;
                    if upstream.status != 200 {
                        upstream
                    } else {
                        let n = {
                            let mut shared = self.shared.lock().unwrap();
                            shared.cdn.push(upstream.body);
                            shared.cdn.len()
                        };
                        let location = format!(
                            "http://localhost:{}/__cdn/{n}{}?X-Amz-Expires=600&X-Amz-Signature=sig{n}",
                            self.port, request.path
                        );
                        Response {
                            status: 307,
                            headers: vec![("Location".into(), location)],
                            body: Vec::new(),
                        }
                    }
                }
                _ if request.path.starts_with("/__cdn/") => {
                    let n: usize = request.path[7..]
                        .split('/')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    match self.shared.lock().unwrap().cdn.get(n.wrapping_sub(1)) {
                        Some(content) => Response {
                            status: 200,
                            headers: vec![],
                            body: content.clone(),
                        },
                        None => Response {
                            status: 404,
                            headers: vec![],
                            body: Vec::new(),
                        },
                    }
                }
                _ => {
                    if let Some(Fault::Delay(d)) = &fault {
                        tokio::time::sleep(*d).await;
                    }
                    if let Some(Fault::UpstreamFirst { method, path }) = &fault {
                        let path = path.as_ref().unwrap_or(&request.path);
                        let response = self.upstream_call(method, path, &[], Vec::new()).await;
                        assert!(
                            response.status < 300,
                            "proxy: {method} first answered {}",
                            response.status
                        );
                    }
                    self.upstream_call(&request.method, &request.path, &request.headers, body)
                        .await
                }
            };
            let mut response = response;
            match &fault {
                Some(Fault::ForwardThenReset) => {
                    self.record(&request, None, fault_name);
                    return reset(stream.into_inner());
                }
                Some(Fault::TruncateBody { keep }) => {
                    let full = response.body.len();
                    response.body.truncate(*keep);
                    write_response(stream.get_mut(), &request, &response, Some(full)).await?;
                    self.record(&request, Some(response.status), fault_name);
                    return reset(stream.into_inner());
                }
                Some(Fault::CorruptBody) if !response.body.is_empty() => {
                    let mid = response.body.len() / 2;
                    response.body[mid] ^= 0xff;
                }
                Some(Fault::ShortBody { keep }) => response.body.truncate(*keep),
                Some(Fault::SetHeader { name, value }) => {
                    response
                        .headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                    if let Some(value) = value {
                        response.headers.push((name.clone(), value.clone()));
                    }
                }
                _ => {}
            }
            write_response(stream.get_mut(), &request, &response, None).await?;
            self.record(&request, Some(response.status), fault_name);
        }
    }

    fn pick_fault(&self, request: &Request) -> Option<Fault> {
        let mut shared = self.shared.lock().unwrap();
        let mut chosen = None;
        for rule in shared
            .rules
            .iter_mut()
            .filter(|r| r.matches(&request.method, &request.path))
        {
            rule.seen += 1;
            let active = rule.seen > rule.skip && rule.seen - rule.skip <= rule.times;
            if active && chosen.is_none() {
                chosen = Some(rule.fault.clone());
            }
        }
        chosen
    }

    fn record(&self, request: &Request, status: Option<u16>, fault: Option<String>) {
        self.shared.lock().unwrap().log.push(LogEntry {
            method: request.method.clone(),
            path: request.path.clone(),
            headers: request.headers.clone(),
            status,
            fault,
        });
    }

    async fn upstream_call(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("http://{}{path}", self.upstream));
        for (name, value) in headers {
            if !matches!(
                name.as_str(),
                "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive"
            ) {
                request = request.header(name, value);
            }
        }
        let request = request
            .header("x-forwarded-host", format!("127.0.0.1:{}", self.port))
            .header("x-forwarded-proto", "http")
            .body(body);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Response {
                    status: 502,
                    headers: Vec::new(),
                    body: format!("proxy: {e}").into_bytes(),
                };
            }
        };
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "connection" | "transfer-encoding" | "keep-alive"
                )
            })
            .map(|(k, v)| {
                // Keep the client on the proxy even if the registry names itself.
                let v = v
                    .to_str()
                    .unwrap_or_default()
                    .replace(&self.upstream, &format!("127.0.0.1:{}", self.port));
                (k.as_str().to_owned(), v)
            })
            .collect();
        let body = response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        Response {
            status,
            headers,
            body,
        }
    }
}

async fn read_head(stream: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if stream.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Ok(Some(Request {
        method,
        path,
        headers,
    }))
}

async fn read_body(
    stream: &mut BufReader<TcpStream>,
    request: &Request,
) -> std::io::Result<Vec<u8>> {
    let header = |name: &str| request.header(name);
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size_line = String::new();
            stream.read_line(&mut size_line).await?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            stream.read_exact(&mut chunk).await?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

async fn write_response(
    stream: &mut TcpStream,
    request: &Request,
    response: &Response,
    announced_len: Option<usize>,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    let is_head = request.method == "HEAD";
    for (k, v) in &response.headers {
        // A HEAD answer keeps the registry's Content-Length (the blob size); others get ours.
        if k.eq_ignore_ascii_case("content-length") && !is_head {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !is_head {
        head.push_str(&format!(
            "content-length: {}\r\n",
            announced_len.unwrap_or(response.body.len())
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if !is_head {
        stream.write_all(&response.body).await?;
    }
    stream.flush().await
}

/// Closes with RST instead of FIN: the peer sees "connection reset".
fn reset(stream: TcpStream) -> std::io::Result<()> {
    stream.set_zero_linger()?;
    drop(stream);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A distribution error body.
pub fn error_body(code: &str, message: &str) -> Vec<u8> {
    format!(r#"{{"errors":[{{"code":"{code}","message":"{message}","detail":null}}]}}"#)
        .into_bytes()
}
