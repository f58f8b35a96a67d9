//! Pod and container status as the kubelet reports it (pure): "Pod Lifecycle" (phases, container
//! states, conditions) and the `ContainerStatus` API reference.

use serde_json::{Value, json};

/// One container's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        message: String,
        started_at: String,
        finished_at: String,
        signal: Option<i32>,
    },
}

impl State {
    pub fn waiting(reason: &str, message: &str) -> Self {
        State::Waiting {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated {
                exit_code,
                reason,
                message,
                started_at,
                finished_at,
                signal,
            } => {
                let mut t = json!({"exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at, "containerID": ""});
                if !message.is_empty() {
                    t["message"] = json!(message);
                }
                if let Some(s) = signal {
                    t["signal"] = json!(s);
                }
                json!({"terminated": t})
            }
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self, State::Terminated { .. })
    }
}

/// What the kubelet knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    pub image: String,
    pub state: State,
    pub last_state: Option<State>,
    pub restart_count: i64,
}

impl ContainerInfo {
    pub fn new(name: &str, image: &str) -> Self {
        ContainerInfo {
            name: name.into(),
            image: image.into(),
            state: State::waiting("ContainerCreating", ""),
            last_state: None,
            restart_count: 0,
        }
    }

    pub fn to_json(&self) -> Value {
        let running = matches!(self.state, State::Running { .. });
        json!({
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "containerID": if matches!(self.state, State::Waiting { .. }) { Value::Null } else { json!(format!("emulator://{}", self.name)) },
            "ready": running,
            "started": running,
            "restartCount": self.restart_count,
            "state": self.state.to_json(),
            "lastState": self.last_state.as_ref().map(State::to_json).unwrap_or(json!({})),
        })
    }
}

/// Pod phase from container states and restart policy (the kubelet's `getPhase`): a container
/// waiting for the first time keeps the pod Pending; a restarting one counts as stopped.
pub fn phase(init_done: bool, containers: &[ContainerInfo], restart_policy: &str) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut failed) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            State::Waiting { .. } if c.last_state.is_none() => waiting += 1,
            State::Waiting { .. } => stopped += 1,
            State::Running { .. } => running += 1,
            State::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code != 0 {
                    failed += 1;
                }
            }
        }
    }
    if !init_done || waiting > 0 || containers.is_empty() {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    debug_assert!(stopped > 0);
    match restart_policy {
        "Always" => "Running",
        "OnFailure" if failed > 0 => "Running",
        _ if failed > 0 => "Failed",
        _ => "Succeeded",
    }
}

fn condition(type_: &str, ok: bool, now: &str) -> Value {
    json!({"type": type_, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now})
}

/// The full `status` object.
pub fn pod_status(
    phase: &str,
    init: &[ContainerInfo],
    containers: &[ContainerInfo],
    start_time: &str,
    now: &str,
    reason: Option<(&str, &str)>,
) -> Value {
    let init_done = init
        .iter()
        .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
    let ready = phase == "Running"
        && containers
            .iter()
            .all(|c| matches!(c.state, State::Running { .. }));
    let mut status = json!({
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", true, now),
            condition("Initialized", init_done, now),
            condition("Ready", ready, now),
            condition("ContainersReady", ready, now),
            condition("PodScheduled", true, now),
        ],
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": start_time,
        "containerStatuses": containers.iter().map(ContainerInfo::to_json).collect::<Vec<_>>(),
        "qosClass": "BestEffort",
    });
    if !init.is_empty() {
        status["initContainerStatuses"] =
            json!(init.iter().map(ContainerInfo::to_json).collect::<Vec<_>>());
    }
    if let Some((r, m)) = reason {
        status["reason"] = json!(r);
        status["message"] = json!(m);
    }
    status
}

/// The kubelet caps termination messages at 4096 bytes ("Customizing the termination message").
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;
/// `FallbackToLogsOnError`: at most the last 80 lines or 2048 bytes of the log.
pub const FALLBACK_LINES: usize = 80;
pub const FALLBACK_BYTES: usize = 2048;

/// Truncates to the byte limit on a char boundary.
pub fn truncate(msg: &str, limit: usize) -> String {
    if msg.len() <= limit {
        return msg.to_owned();
    }
    let mut end = limit;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    msg[..end].to_owned()
}

/// The tail of a log for `FallbackToLogsOnError`.
pub fn log_tail(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(FALLBACK_LINES)..].join("\n");
    let start = tail.len().saturating_sub(FALLBACK_BYTES);
    let mut s = start;
    while !tail.is_char_boundary(s) {
        s += 1;
    }
    tail[s..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(code: i32) -> State {
        State::Terminated {
            exit_code: code,
            reason: if code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            message: String::new(),
            started_at: "t".into(),
            finished_at: "t".into(),
            signal: None,
        }
    }

    fn c(state: State) -> ContainerInfo {
        ContainerInfo {
            state,
            ..ContainerInfo::new("c", "i")
        }
    }

    #[test]
    fn phase_table() {
        let running = State::Running {
            started_at: "t".into(),
        };
        let cases = [
            (
                true,
                vec![c(State::waiting("ContainerCreating", ""))],
                "Never",
                "Pending",
            ),
            (false, vec![c(running.clone())], "Never", "Pending"),
            (true, vec![c(running.clone())], "Never", "Running"),
            (true, vec![c(running), c(term(0))], "Never", "Running"),
            (true, vec![c(term(0)), c(term(0))], "Never", "Succeeded"),
            (true, vec![c(term(0)), c(term(3))], "Never", "Failed"),
            (true, vec![c(term(3))], "OnFailure", "Running"),
            (true, vec![c(term(0))], "OnFailure", "Succeeded"),
        ];
        for (init, cs, policy, want) in cases {
            assert_eq!(phase(init, &cs, policy), want, "{cs:?} {policy}");
        }
    }

    #[test]
    fn termination_message_limits() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(
            truncate(&"x".repeat(5000), TERMINATION_MESSAGE_LIMIT).len(),
            4096
        );
        let log: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let tail = log_tail(log.as_bytes());
        assert!(tail.starts_with("line 20\n") && tail.ends_with("line 99"));
    }

    #[test]
    fn status_json_shape() {
        let s = pod_status(
            "Running",
            &[],
            &[c(State::Running {
                started_at: "t".into(),
            })],
            "t0",
            "t1",
            None,
        );
        assert_eq!(s["containerStatuses"][0]["ready"], true);
        assert_eq!(s["conditions"][2]["status"], "True");
        let failed = pod_status(
            "Failed",
            &[],
            &[c(term(1))],
            "t0",
            "t1",
            Some(("DeadlineExceeded", "too long")),
        );
        assert_eq!(failed["reason"], "DeadlineExceeded");
        assert_eq!(
            failed["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            1
        );
    }
}
