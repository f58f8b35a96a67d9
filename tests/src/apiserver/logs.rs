//! The pluggable source behind `GET .../pods/<name>/log`.
//!
//! The real apiserver proxies the request to the pod's kubelet. Here a [`LogSource`] answers it;
//! [`MemoryLogs`] is an in-memory one that the kubelet emulator (or a test) appends to.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::broadcast;

/// The `PodLogOptions` the emulator honours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
}

pub type LogStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// Produces a container's log. `None`: this container has no log yet (the apiserver then answers
/// 400 "container ... is waiting to start").
pub trait LogSource: Send + Sync + std::fmt::Debug {
    fn open(&self, req: &LogRequest) -> Option<LogStream>;
}

#[derive(Debug)]
struct Buffer {
    data: Vec<u8>,
    closed: bool,
    tx: broadcast::Sender<Option<Bytes>>,
}

/// (namespace, pod, container).
type ContainerKey = (String, String, String);

/// In-memory container logs, keyed by (namespace, pod, container).
#[derive(Debug, Default, Clone)]
pub struct MemoryLogs {
    buffers: Arc<Mutex<HashMap<ContainerKey, Buffer>>>,
}

impl MemoryLogs {
    fn with<R>(&self, ns: &str, pod: &str, container: &str, f: impl FnOnce(&mut Buffer) -> R) -> R {
        let mut all = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        let b = all
            .entry((ns.into(), pod.into(), container.into()))
            .or_insert_with(|| Buffer {
                data: Vec::new(),
                closed: false,
                tx: broadcast::channel(1024).0,
            });
        f(b)
    }

    /// Appends output of a running container (followers receive it at once).
    pub fn append(&self, ns: &str, pod: &str, container: &str, chunk: &[u8]) {
        self.with(ns, pod, container, |b| {
            b.data.extend_from_slice(chunk);
            let _ = b.tx.send(Some(Bytes::copy_from_slice(chunk)));
        });
    }

    /// Marks a (re)started container as running: `follow` streams stay open again.
    pub fn reopen(&self, ns: &str, pod: &str, container: &str) {
        self.with(ns, pod, container, |b| b.closed = false);
    }

    /// Marks the container as terminated: followers' streams end.
    pub fn close(&self, ns: &str, pod: &str, container: &str) {
        self.with(ns, pod, container, |b| {
            b.closed = true;
            let _ = b.tx.send(None);
        });
    }
}

fn tail(data: &[u8], lines: usize) -> &[u8] {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut count = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            count += 1;
            if count == lines {
                return &data[i + 1..];
            }
        }
    }
    if lines == 0 { &[] } else { data }
}

impl LogSource for MemoryLogs {
    fn open(&self, req: &LogRequest) -> Option<LogStream> {
        let all = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        let b = all.get(&(
            req.namespace.clone(),
            req.pod.clone(),
            req.container.clone(),
        ))?;
        let mut snapshot = match req.tail_lines {
            Some(n) => tail(&b.data, n).to_vec(),
            None => b.data.clone(),
        };
        if let Some(limit) = req.limit_bytes {
            snapshot.truncate(limit);
        }
        let head = futures::stream::iter([Bytes::from(snapshot)]);
        if !req.follow || b.closed {
            return Some(Box::pin(head));
        }
        let rx = b.tx.subscribe();
        let live = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(Some(chunk)) => return Some((chunk, rx)),
                    Ok(None) | Err(broadcast::error::RecvError::Closed) => return None,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                }
            }
        });
        Some(Box::pin(futures::StreamExt::chain(head, live)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc\n", 5), b"a\nb\nc\n");
        assert_eq!(tail(b"a\nb\nc", 1), b"c");
        assert_eq!(tail(b"a\n", 0), b"");
    }
}
