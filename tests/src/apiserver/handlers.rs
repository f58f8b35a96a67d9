//! The HTTP front: an axum `Router` that authenticates, applies scripted faults, parses the
//! request and calls the verb handlers. The same Router serves a loopback port (kubectl) and backs
//! an in-process `kube::Client` (`Client::new(router, "default")`).

use axum::Router;
use axum::extract::{Query as AxQuery, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::binding;
use super::delete::{self, DeleteOptions, Outcome, Propagation};
use super::discovery;
use super::error::ApiError;
use super::faults::{Action, Verb};
use super::openapi;
use super::ops::{self, FieldValidation, ObjectAddr, PatchType, WriteOptions, key_for, to_served};
use super::patching;
use super::protobuf;
use super::read;
use super::request::{Query, ResourcePath, Target, parse_path, verb};
use super::resources::ResourceType;
use super::state::ApiServer;
use super::table;

/// Request bodies larger than this are rejected (the apiserver's limit is 3 MiB for most writes).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// The emulator's Router.
pub fn router(server: ApiServer) -> Router {
    Router::new().fallback(dispatch).with_state(server)
}

pub(super) fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut resp = (code, axum::Json(body)).into_response();
    for w in warnings {
        // RFC 7234 warn-code 299 with the agent "-", as the apiserver sends them.
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\""))) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

async fn dispatch(State(server): State<ApiServer>, req: Request) -> Response {
    match handle(server, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn authenticate(server: &ApiServer, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &server.inner.config.token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(token.as_str()) {
        Ok(())
    } else {
        Err(ApiError::new(401, "Unauthorized", "Unauthorized"))
    }
}

async fn handle(server: ApiServer, req: Request) -> Result<Response, ApiError> {
    authenticate(&server, req.headers())?;
    let path = req.uri().path().to_owned();
    let query = Query(
        AxQuery::try_from_uri(req.uri())
            .map(|q: AxQuery<_>| q.0)
            .unwrap_or_default(),
    );
    let target = parse_path(&path).ok_or_else(|| ApiError::not_found_path(&path))?;
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v, &[]));
    let types = server.resources();
    match target {
        Target::Version => ok(json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-stratum-emulator",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "n/a", "compiler": "rustc", "platform": "linux/amd64",
        })),
        Target::Health => Ok((StatusCode::OK, "ok").into_response()),
        Target::OpenApi => Err(ApiError::not_found_path(&path)),
        Target::OpenApiV3(None) => ok(openapi::index(&types)),
        Target::OpenApiV3(Some((g, v))) => openapi::group_version(&types, &g, &v)
            .map_or_else(|| Err(ApiError::not_found_path(&path)), ok),
        Target::CoreVersions => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1")
                .to_owned();
            ok(discovery::core_versions(&host))
        }
        Target::Groups => ok(discovery::group_list(&types)),
        Target::Group(g) => {
            discovery::group(&types, &g).map_or_else(|| Err(ApiError::not_found_path(&path)), ok)
        }
        Target::GroupVersion(g, v) => discovery::resource_list(&types, &g, &v)
            .map_or_else(|| Err(ApiError::not_found_path(&path)), ok),
        Target::Resource(rp) => resource(server, req, rp, query, path).await,
    }
}

impl ApiError {
    /// The apiserver's answer for an unknown path.
    pub fn not_found_path(_path: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }
}

fn write_options(query: &Query, headers: &HeaderMap) -> Result<WriteOptions, ApiError> {
    let explicit = query.get("fieldManager").map(str::to_owned);
    // The default manager is the User-Agent up to the first '/' (prefixFromUserAgent).
    let ua_manager = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.split('/').next().unwrap_or(ua).to_owned())
        .unwrap_or_else(|| "unknown".into());
    let field_validation = match query.get("fieldValidation") {
        None | Some("Warn") => FieldValidation::Warn,
        Some("Ignore") => FieldValidation::Ignore,
        Some("Strict") => FieldValidation::Strict,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            )));
        }
    };
    Ok(WriteOptions {
        dry_run: query.get("dryRun") == Some("All"),
        manager: explicit.clone().unwrap_or(ua_manager),
        explicit_manager: explicit.is_some(),
        field_validation,
        force: query.flag("force"),
    })
}

fn parse_body(headers: &HeaderMap, bytes: &Bytes) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return protobuf::decode(bytes).map_err(|e| {
            ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("{e}; send the object as JSON (kubectl apply -f / create -f)"),
            )
        });
    }
    if ct.contains("cbor") {
        return Err(ApiError::unsupported_media_type(ct));
    }
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let trimmed = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if ct.contains("yaml") && !matches!(trimmed, Some(b'{') | Some(b'[')) {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

fn lookup(server: &ApiServer, rp: &ResourcePath) -> Result<ResourceType, ApiError> {
    let rt = server
        .find(&rp.group, &rp.version, &rp.plural)
        .ok_or_else(|| ApiError::not_found_path(""))?;
    if rp.namespace.is_some() && !rt.namespaced {
        return Err(ApiError::not_found_path(""));
    }
    match rp.subresource.as_deref() {
        None => {}
        Some("status") if rt.status_subresource => {}
        Some("log" | "binding") if rt.group.is_empty() && rt.plural == "pods" => {}
        Some(_) => return Err(ApiError::not_found_path("")),
    }
    Ok(rt)
}

async fn resource(
    server: ApiServer,
    req: Request,
    rp: ResourcePath,
    query: Query,
    path: String,
) -> Result<Response, ApiError> {
    let rt = lookup(&server, &rp)?;
    let verb = verb(req.method(), &rp, &query)?;
    match server.faults().check(verb, &path) {
        Some(Action::Error {
            code,
            retry_after,
            message,
        }) => {
            let mut e = ApiError::for_code(code, message);
            e.retry_after = retry_after;
            return Err(e);
        }
        Some(Action::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let ns = rp.namespace.clone().unwrap_or_default();
    let name = rp.name.clone().unwrap_or_default();
    let sub = rp.subresource.clone().unwrap_or_default();
    let headers = req.headers().clone();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let table_include = table::wants_table(&accept)
        .then(|| query.get("includeObject").unwrap_or("Metadata").to_owned());
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| {
            ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("request body too large or unreadable: {e}"),
            )
        })?;
    match verb {
        Verb::Get if sub == "log" => read::pod_log(&server, &rt, &ns, &name, &query),
        Verb::Get => {
            let st = server.inner.store.lock();
            let obj = st
                .get(&key_for(&rt, &ns, &name))
                .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &name))?;
            let served = to_served(&rt, obj);
            let out = match &table_include {
                Some(inc) => table::table(
                    &rt,
                    &[served],
                    &json!({"resourceVersion": st.current_rv().to_string()}),
                    inc,
                    true,
                ),
                None => served,
            };
            Ok(json_response(StatusCode::OK, &out, &[]))
        }
        Verb::List => read::list(
            &server,
            &rt,
            rp.namespace.as_deref(),
            &query,
            table_include.as_deref(),
        ),
        Verb::Watch => read::watch_response(
            &server,
            rt,
            rp.namespace.clone(),
            &query,
            table_include,
            path,
        ),
        Verb::Create if sub == "binding" => {
            let binding = parse_body(&headers, &body)?;
            let mut st = server.inner.store.lock();
            binding::bind(&server, &mut st, &rt, &ns, &name, &binding)?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                &[],
            ))
        }
        Verb::Create if !sub.is_empty() => Err(ApiError::method_not_allowed(format!(
            "POST is not supported on {}/{sub}",
            rt.plural
        ))),
        Verb::Create => {
            let opts = write_options(&query, &headers)?;
            let obj = parse_body(&headers, &body)?;
            let mut st = server.inner.store.lock();
            let r = ops::create(&server, &mut st, &rt, &ns, obj, &opts)?;
            Ok(json_response(StatusCode::CREATED, &r.object, &r.warnings))
        }
        Verb::Update => {
            let opts = write_options(&query, &headers)?;
            let obj = parse_body(&headers, &body)?;
            let mut st = server.inner.store.lock();
            let at = ObjectAddr {
                rt: &rt,
                ns: &ns,
                name: &name,
                subresource: &sub,
            };
            let r = ops::update(&server, &mut st, &at, obj, &opts)?;
            Ok(json_response(StatusCode::OK, &r.object, &r.warnings))
        }
        Verb::Patch => {
            let opts = write_options(&query, &headers)?;
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let kind = match ct.split(';').next().unwrap_or("").trim() {
                "application/merge-patch+json" => PatchType::Merge,
                "application/json-patch+json" => PatchType::Json,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+cbor"
                    if !ct.contains("cbor") =>
                {
                    PatchType::Apply
                }
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            let patch = parse_body(&headers, &body)?;
            let mut st = server.inner.store.lock();
            let at = ObjectAddr {
                rt: &rt,
                ns: &ns,
                name: &name,
                subresource: &sub,
            };
            let r = patching::patch(&server, &mut st, &at, kind, &patch, &opts)?;
            let code = if r.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &r.object, &r.warnings))
        }
        Verb::Delete => {
            let opts = delete_options(&query, &headers, &body)?;
            let mut st = server.inner.store.lock();
            let key = key_for(&rt, &ns, &name);
            match delete::delete(&server, &mut st, &rt, &key, &opts)? {
                Outcome::Pending(obj) => Ok(json_response(
                    StatusCode::ACCEPTED,
                    &to_served(&rt, &obj),
                    &[],
                )),
                Outcome::Deleted(obj) if rt.group.is_empty() && rt.plural == "pods" => {
                    Ok(json_response(StatusCode::OK, &to_served(&rt, &obj), &[]))
                }
                Outcome::Deleted(obj) => Ok(json_response(
                    StatusCode::OK,
                    &json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": obj["metadata"]["uid"]},
                    }),
                    &[],
                )),
            }
        }
        Verb::DeleteCollection => {
            let opts = delete_options(&query, &headers, &body)?;
            let (labels, fields) = read::selectors(&rt, &query)?;
            let mut st = server.inner.store.lock();
            let keys: Vec<_> = st
                .list(
                    &rt.storage_group,
                    &rt.storage_resource,
                    rp.namespace.as_deref(),
                )
                .into_iter()
                .filter(|(_, o)| {
                    let s = to_served(&rt, o);
                    labels.matches_object(&s) && fields.matches(&s)
                })
                .map(|(k, _)| k.clone())
                .collect();
            let mut items = Vec::new();
            for k in keys {
                match delete::delete(&server, &mut st, &rt, &k, &opts) {
                    Ok(Outcome::Pending(o) | Outcome::Deleted(o)) => items.push(to_served(&rt, &o)),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": {"resourceVersion": st.current_rv().to_string()}, "items": items}),
                &[],
            ))
        }
    }
}

fn delete_options(
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<DeleteOptions, ApiError> {
    let b = parse_body(headers, body)?;
    let prop = b
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(query.get("propagationPolicy"));
    let orphan = b
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or_else(|| query.get("orphanDependents").map(|v| v == "true"));
    let propagation = match (prop, orphan) {
        (Some(p), _) => Some(Propagation::parse(p)?),
        (None, Some(true)) => Some(Propagation::Orphan),
        _ => None,
    };
    Ok(DeleteOptions {
        grace_period: b
            .get("gracePeriodSeconds")
            .and_then(Value::as_i64)
            .map_or_else(|| query.int("gracePeriodSeconds"), |g| Ok(Some(g)))?,
        propagation,
        precondition_uid: b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        precondition_rv: b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
        dry_run: query.get("dryRun") == Some("All")
            || b["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "All")),
    })
}
