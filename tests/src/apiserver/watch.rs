//! WATCH: a chunked stream of `{"type": ..., "object": ...}` JSON lines ("Efficient detection of
//! changes" and "Watch bookmarks" in the API concepts; "Streaming lists" KEP-3157).
//!
//! - `resourceVersion` unset or `"0"`: synthetic ADDED events for the current state, then changes
//!   ("Start at Most Recent" / "Start at Any");
//! - `resourceVersion=N`: every change after N, or an ERROR event with a 410 `Expired` Status when N
//!   is older than the retained history ("too old resource version");
//! - `sendInitialEvents=true` (requires `resourceVersionMatch=NotOlderThan` and
//!   `allowWatchBookmarks=true`): the current state as ADDED events, then a BOOKMARK annotated
//!   `k8s.io/initial-events-end: "true"`;
//! - `allowWatchBookmarks=true`: periodic BOOKMARK events carrying only `metadata.resourceVersion`;
//! - `timeoutSeconds`: the server ends the stream after that long;
//! - label/field selectors: a change that makes an object leave the selection is sent as DELETED,
//!   one that makes it enter as ADDED (the watch cache's behaviour).

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::error::ApiError;
use super::ops::to_served;
use super::resources::ResourceType;
use super::selector::{FieldSelector, LabelSelector};
use super::state::ApiServer;
use super::store::{Event, EventType};
use super::table;

/// A parsed watch request.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub send_initial_events: Option<bool>,
    pub bookmarks: bool,
    pub timeout: Duration,
    /// Table output (kubectl get -w): `Some(includeObject)`.
    pub table: Option<String>,
    /// The request path, for fault matching.
    pub path: String,
}

impl WatchRequest {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches(obj)
    }
}

fn line(type_: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn expired_line(message: String) -> Bytes {
    line("ERROR", &ApiError::expired(message).status())
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta})
}

/// Turns a committed change into the event this watcher sees (if any).
fn translate(req: &WatchRequest, ev: &Event) -> Option<(EventType, Value)> {
    if ev.key.group != req.rt.storage_group || ev.key.resource != req.rt.storage_resource {
        return None;
    }
    if req
        .namespace
        .as_deref()
        .is_some_and(|ns| ns != ev.key.namespace)
    {
        return None;
    }
    let now = to_served(&req.rt, &ev.object);
    let now_matches = req.matches(&now);
    match ev.type_ {
        EventType::Added | EventType::Deleted => now_matches.then_some((ev.type_, now)),
        EventType::Modified => {
            let before = ev
                .previous
                .as_ref()
                .map(|p| req.matches(&to_served(&req.rt, p)))
                .unwrap_or(true);
            match (before, now_matches) {
                (true, true) => Some((EventType::Modified, now)),
                (false, true) => Some((EventType::Added, now)),
                (true, false) => Some((EventType::Deleted, now)),
                (false, false) => None,
            }
        }
    }
}

struct Encoder {
    table: Option<String>,
    rt: ResourceType,
    headers_sent: bool,
}

impl Encoder {
    fn encode(&mut self, type_: &str, obj: Value) -> Bytes {
        match &self.table {
            Some(include) if type_ != "BOOKMARK" && type_ != "ERROR" => {
                let t = table::table(&self.rt, &[obj], &json!({}), include, !self.headers_sent);
                self.headers_sent = true;
                line(type_, &t)
            }
            _ => line(type_, &obj),
        }
    }
}

/// Opens the watch and returns the receiving end of its event lines.
pub fn start(server: &ApiServer, req: WatchRequest) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    if req.send_initial_events == Some(true) && !req.bookmarks {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            vec![super::error::Cause::new(
                "FieldValueForbidden",
                "allowWatchBookmarks",
                "Forbidden: allowWatchBookmarks required when sendInitialEvents is true",
            )],
        ));
    }
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut enc = Encoder {
        table: req.table.clone(),
        rt: req.rt.clone(),
        headers_sent: false,
    };
    let mut initial: Vec<Bytes> = Vec::new();
    let expire = server.faults().take_expire(&req.path);
    let (live, start_rv) = {
        let st = server.inner.store.lock();
        let rv_param = req.resource_version.clone().unwrap_or_default();
        let snapshot = req.send_initial_events == Some(true)
            || (req.send_initial_events.is_none() && (rv_param.is_empty() || rv_param == "0"));
        if expire {
            initial.push(expired_line(format!(
                "too old resource version: {rv_param} ({})",
                st.current_rv()
            )));
            (None, st.current_rv())
        } else if snapshot || rv_param.is_empty() {
            if snapshot {
                for (_, obj) in st.list(
                    &req.rt.storage_group,
                    &req.rt.storage_resource,
                    req.namespace.as_deref(),
                ) {
                    let served = to_served(&req.rt, obj);
                    if req.matches(&served) {
                        initial.push(enc.encode("ADDED", served));
                    }
                }
            }
            if req.send_initial_events == Some(true) {
                initial.push(line("BOOKMARK", &bookmark(&req.rt, st.current_rv(), true)));
            }
            (Some(st.subscribe()), st.current_rv())
        } else {
            let rv: u64 = rv_param.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {rv_param}"))
            })?;
            match st.watch_from(rv) {
                Ok(ws) => {
                    for ev in &ws.backlog {
                        if let Some((t, obj)) = translate(&req, ev) {
                            initial.push(enc.encode(t.as_str(), obj));
                        }
                    }
                    (Some(ws.live), ws.current_rv)
                }
                Err(oldest) => {
                    initial.push(expired_line(format!(
                        "too old resource version: {rv} ({oldest})"
                    )));
                    (None, st.current_rv())
                }
            }
        }
    };
    let interval = server.inner.config.bookmark_interval;
    let mut drops = server.faults().drop_signal();
    tokio::spawn(async move {
        for l in initial {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let Some(mut live) = live else { return };
        let mut progress = start_rv;
        let deadline = tokio::time::sleep(req.timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if req.bookmarks => {
                    if tx.send(line("BOOKMARK", &bookmark(&req.rt, progress, false))).await.is_err() {
                        return;
                    }
                }
                sig = drops.recv() => {
                    if let Ok(filter) = sig && req.path.contains(&filter) {
                        return;
                    }
                }
                ev = live.recv() => match ev {
                    Ok(ev) => {
                        progress = progress.max(ev.rv);
                        if let Some((t, obj)) = translate(&req, &ev)
                            && tx.send(enc.encode(t.as_str(), obj)).await.is_err()
                        {
                            return;
                        }
                    }
                    // A watcher too slow for the broadcast buffer is closed, as the apiserver
                    // closes slow watchers; the client re-watches from its last resourceVersion.
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::apiserver::resources::builtins;
    use crate::apiserver::store::ObjectKey;

    fn req(labels: &str) -> WatchRequest {
        WatchRequest {
            rt: builtins()
                .into_iter()
                .find(|r| r.plural == "configmaps")
                .unwrap(),
            namespace: Some("a".into()),
            labels: LabelSelector::parse(labels).unwrap(),
            fields: FieldSelector::default(),
            resource_version: None,
            send_initial_events: None,
            bookmarks: false,
            timeout: Duration::from_secs(1),
            table: None,
            path: String::new(),
        }
    }

    fn ev(type_: EventType, ns: &str, labels: &Value, previous: Option<Value>) -> Event {
        Event {
            rv: 5,
            type_,
            key: ObjectKey::new("", "configmaps", ns, "c"),
            object: Arc::new(json!({"metadata": {"name": "c", "labels": labels}})),
            previous: previous.map(|p| Arc::new(json!({"metadata": {"name": "c", "labels": p}}))),
        }
    }

    #[test]
    fn selector_transitions() {
        let r = req("app=x");
        let t = |e: &Event| translate(&r, e).map(|(t, _)| t);
        assert_eq!(
            t(&ev(EventType::Added, "a", &json!({"app": "x"}), None)),
            Some(EventType::Added)
        );
        assert_eq!(
            t(&ev(EventType::Added, "b", &json!({"app": "x"}), None)),
            None,
            "other namespace"
        );
        assert_eq!(
            t(&ev(
                EventType::Modified,
                "a",
                &json!({"app": "x"}),
                Some(json!({}))
            )),
            Some(EventType::Added)
        );
        assert_eq!(
            t(&ev(
                EventType::Modified,
                "a",
                &json!({}),
                Some(json!({"app": "x"}))
            )),
            Some(EventType::Deleted)
        );
        assert_eq!(
            t(&ev(EventType::Modified, "a", &json!({}), Some(json!({})))),
            None
        );
    }
}
