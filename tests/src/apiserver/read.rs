//! Read verbs: LIST (selectors, pagination, tables), WATCH and `pods/log`.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::error::ApiError;
use super::handlers::json_response;
use super::logs::LogRequest;
use super::ops::{key_for, to_served};
use super::request::Query;
use super::resources::ResourceType;
use super::selector::{FieldSelector, LabelSelector};
use super::state::ApiServer;
use super::table;
use super::watch::{self, WatchRequest};

pub(super) fn selectors(
    rt: &ResourceType,
    query: &Query,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""), &rt.field_labels)
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

/// LIST with selectors and `limit`/`continue` ("Retrieving large results sets in chunks").
/// The continue token encodes the list's resourceVersion and the last key returned; a token older
/// than the retained history is 410 Expired. Pages are cut from the current state (not an MVCC
/// snapshot at the first page's resourceVersion).
pub(super) fn list(
    server: &ApiServer,
    rt: &ResourceType,
    ns: Option<&str>,
    query: &Query,
    table_include: Option<&str>,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(rt, query)?;
    let limit = query.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let st = server.inner.store.lock();
    let (list_rv, after) = match query.get("continue") {
        Some(tok) => {
            let raw = b64
                .decode(tok)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("continue key is not valid: illegal base64 data")
                })?;
            let rv = raw["rv"].as_u64().unwrap_or(0);
            if rv < st.compacted_rv() {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            (rv, raw["after"].as_str().map(str::to_owned))
        }
        None => (st.current_rv(), None),
    };
    let mut matched: Vec<(String, Value)> = st
        .list(&rt.storage_group, &rt.storage_resource, ns)
        .into_iter()
        .map(|(k, o)| (format!("{}/{}", k.namespace, k.name), to_served(rt, o)))
        .filter(|(_, o)| labels.matches_object(o) && fields.matches(o))
        .filter(|(k, _)| after.as_deref().is_none_or(|a| k.as_str() > a))
        .collect();
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(limit) = limit
        && matched.len() > limit
    {
        let remaining = matched.len() - limit;
        matched.truncate(limit);
        let last = matched.last().map(|(k, _)| k.clone()).unwrap_or_default();
        meta["continue"] = json!(b64.encode(
            serde_json::to_vec(&json!({"rv": list_rv, "after": last})).unwrap_or_default()
        ));
        if query.get("labelSelector").is_none() && query.get("fieldSelector").is_none() {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    let items: Vec<Value> = matched.into_iter().map(|(_, o)| o).collect();
    let out = match table_include {
        Some(inc) => table::table(rt, &items, &meta, inc, true),
        None => {
            json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": meta, "items": items})
        }
    };
    Ok(json_response(StatusCode::OK, &out, &[]))
}

pub(super) fn watch_response(
    server: &ApiServer,
    rt: ResourceType,
    namespace: Option<String>,
    query: &Query,
    table: Option<String>,
    path: String,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(&rt, query)?;
    let send_initial_events = query.get("sendInitialEvents").map(|v| v == "true");
    if send_initial_events == Some(true)
        && query.get("resourceVersionMatch") != Some("NotOlderThan")
    {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            vec![super::error::Cause::new(
                "FieldValueForbidden",
                "resourceVersionMatch",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )],
        ));
    }
    let timeout = query
        .int("timeoutSeconds")?
        .map_or(server.inner.config.default_watch_timeout, |s| {
            Duration::from_secs(s.max(0) as u64)
        });
    let req = WatchRequest {
        rt,
        namespace,
        labels,
        fields,
        resource_version: query.get("resourceVersion").map(str::to_owned),
        send_initial_events,
        bookmarks: query.flag("allowWatchBookmarks"),
        timeout,
        table,
        path,
    };
    let rx = watch::start(server, req)?;
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// `GET pods/<name>/log` (`PodLogOptions`: container, follow, tailLines, limitBytes).
pub(super) fn pod_log(
    server: &ApiServer,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let pod = {
        let st = server.inner.store.lock();
        st.get(&key_for(rt, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found("", "pods", name))?
    };
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let init: Vec<String> = pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let container = match query.get("container") {
        Some(c) if containers.iter().chain(&init).any(|x| x == c) => c.to_owned(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    let lr = LogRequest {
        namespace: ns.into(),
        pod: name.into(),
        container: container.clone(),
        follow: query.flag("follow"),
        tail_lines: query.int("tailLines")?.map(|n| n.max(0) as usize),
        limit_bytes: query.int("limitBytes")?.map(|n| n.max(0) as usize),
    };
    let stream = server.logs().open(&lr).ok_or_else(|| {
        ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        ))
    })?;
    let body = Body::from_stream(futures::StreamExt::map(
        stream,
        Ok::<_, std::convert::Infallible>,
    ));
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}
