//! Fault injection (issue 6 item 3): scripted API errors and delays per (verb, path substring),
//! dropped watch connections and forced 410 Gone on the next watch.
//!
//! The scripted errors are what a real control plane produces under load or during upgrades:
//! 429 TooManyRequests with `Retry-After` (API Priority and Fairness), 500/503 from an overloaded
//! or restarting apiserver, 409 from a racing writer, 410 when the watch cache was compacted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

/// The request verbs as the apiserver names them (`RequestInfo.Verb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// What a matching request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// An error `Status` with this HTTP code (and `Retry-After` header + `details.retryAfterSeconds`).
    Error {
        code: u16,
        retry_after: Option<u32>,
        message: String,
    },
    /// The request is served normally after this delay.
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct Rule {
    verb: Option<Verb>,
    path_contains: String,
    action: Action,
    /// `None`: forever.
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
struct FaultState {
    rules: Vec<Rule>,
    expire_next_watch: Vec<String>,
}

/// A shared handle on the fault script (cheap to clone; all clones see the same script).
#[derive(Debug, Clone)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
    drops: broadcast::Sender<String>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            state: Arc::default(),
            drops: broadcast::channel(64).0,
        }
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers the next `times` (None: all) matching requests with an error.
    pub fn fail(
        &self,
        verb: Option<Verb>,
        path_contains: &str,
        code: u16,
        retry_after: Option<u32>,
        times: Option<u32>,
    ) {
        self.push(
            verb,
            path_contains,
            Action::Error {
                code,
                retry_after,
                message: format!("injected fault: HTTP {code}"),
            },
            times,
        );
    }

    /// Delays the next `times` (None: all) matching requests.
    pub fn delay(
        &self,
        verb: Option<Verb>,
        path_contains: &str,
        delay: Duration,
        times: Option<u32>,
    ) {
        self.push(verb, path_contains, Action::Delay(delay), times);
    }

    fn push(
        &self,
        verb: Option<Verb>,
        path_contains: &str,
        action: Action,
        remaining: Option<u32>,
    ) {
        self.lock().rules.push(Rule {
            verb,
            path_contains: path_contains.into(),
            action,
            remaining,
        });
    }

    /// Closes every open watch whose path contains `path_contains` ("" for all), as a
    /// restarting apiserver or a broken connection would.
    pub fn drop_watches(&self, path_contains: &str) {
        let _ = self.drops.send(path_contains.to_owned());
    }

    /// The next watch whose path contains `path_contains` gets a 410 Gone ERROR event.
    pub fn expire_next_watch(&self, path_contains: &str) {
        self.lock().expire_next_watch.push(path_contains.to_owned());
    }

    /// Removes every scripted rule.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.rules.clear();
        s.expire_next_watch.clear();
    }

    /// The action for a request, consuming one use of the first matching rule.
    pub fn check(&self, verb: Verb, path: &str) -> Option<Action> {
        let mut s = self.lock();
        let idx = s.rules.iter().position(|r| {
            r.verb.is_none_or(|v| v == verb)
                && path.contains(&r.path_contains)
                && r.remaining != Some(0)
        })?;
        let rule = &mut s.rules[idx];
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        let action = rule.action.clone();
        s.rules.retain(|r| r.remaining != Some(0));
        Some(action)
    }

    pub(crate) fn take_expire(&self, path: &str) -> bool {
        let mut s = self.lock();
        match s
            .expire_next_watch
            .iter()
            .position(|p| path.contains(p.as_str()))
        {
            Some(i) => {
                s.expire_next_watch.remove(i);
                true
            }
            None => false,
        }
    }

    pub(crate) fn drop_signal(&self) -> broadcast::Receiver<String> {
        self.drops.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_verb_and_path_and_count_down() {
        let f = Faults::default();
        f.fail(Some(Verb::Create), "/pods", 500, None, Some(2));
        assert_eq!(f.check(Verb::Get, "/api/v1/namespaces/a/pods"), None);
        assert!(matches!(
            f.check(Verb::Create, "/api/v1/namespaces/a/pods"),
            Some(Action::Error { code: 500, .. })
        ));
        assert!(f.check(Verb::Create, "/api/v1/namespaces/a/pods").is_some());
        assert_eq!(
            f.check(Verb::Create, "/api/v1/namespaces/a/pods"),
            None,
            "used up"
        );
    }

    #[test]
    fn expire_next_watch_is_one_shot() {
        let f = Faults::default();
        f.expire_next_watch("widgets");
        assert!(!f.take_expire("/api/v1/pods"));
        assert!(f.take_expire("/apis/x/v1/widgets"));
        assert!(!f.take_expire("/apis/x/v1/widgets"));
    }
}
