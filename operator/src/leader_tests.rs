use std::sync::{Arc, Mutex};

use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use super::*;

fn spec(holder: Option<&str>, duration: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: holder.map(str::to_owned),
        lease_duration_seconds: Some(duration),
        renew_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
        ..LeaseSpec::default()
    }
}

#[test]
fn step_table() {
    let t0 = Instant::now();
    let other = spec(Some("b"), 15);
    let seen_at = |record: &LeaseSpec, at| Seen {
        record: record.clone(),
        at,
    };
    let later = |s| t0 + Duration::from_secs(s);
    let follow = Step::Follow { holder: "b".into() };
    type Case<'a> = (&'a str, Option<&'a LeaseSpec>, Option<Seen>, Instant, Step);
    let cases: [Case<'_>; 8] = [
        ("no lease", None, None, t0, Step::Take),
        ("ours", Some(&spec(Some("a"), 15)), None, t0, Step::Take),
        ("released", Some(&spec(None, 1)), None, t0, Step::Take),
        (
            "empty holder",
            Some(&spec(Some(""), 15)),
            None,
            t0,
            Step::Take,
        ),
        (
            "first sight of another's",
            Some(&other),
            None,
            t0,
            follow.clone(),
        ),
        (
            "another's, seen 10 s",
            Some(&other),
            Some(seen_at(&other, t0)),
            later(10),
            follow.clone(),
        ),
        (
            "another's, unchanged 16 s",
            Some(&other),
            Some(seen_at(&other, t0)),
            later(16),
            Step::Take,
        ),
        // The record changed (renewed) since we looked: the clock restarts, whatever renewTime says.
        (
            "another's, renewed",
            Some(&other),
            Some(seen_at(&spec(Some("b"), 14), t0)),
            later(16),
            follow,
        ),
    ];
    for (name, lease, seen, now, want) in cases {
        assert_eq!(step(lease, seen.as_ref(), "a", now), want, "{name}");
    }
}

#[test]
fn our_record_keeps_acquire_time_and_counts_transitions() {
    let t = Timestamp::from_second(1_000).unwrap();
    let fresh = ours(None, "a", t);
    assert_eq!(fresh.holder_identity.as_deref(), Some("a"));
    assert_eq!(fresh.lease_duration_seconds, Some(15));
    assert_eq!(fresh.lease_transitions, Some(0));
    let t2 = Timestamp::from_second(1_005).unwrap();
    let renewed = ours(Some(&fresh), "a", t2);
    assert_eq!(renewed.acquire_time, fresh.acquire_time);
    assert_eq!(renewed.renew_time, Some(MicroTime(t2)));
    assert_eq!(renewed.lease_transitions, Some(0));
    let taken = ours(Some(&renewed), "b", t2);
    assert_eq!(taken.acquire_time, Some(MicroTime(t2)));
    assert_eq!(taken.lease_transitions, Some(1));
}

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/op/leases/stratum-operator";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/op/leases";

/// An apiserver with one Lease and optimistic concurrency on `resourceVersion`.
#[derive(Default)]
struct Fake {
    lease: Option<Value>,
    version: u64,
    /// Another writer updates the Lease right after the next read.
    race_next_read: bool,
    calls: Vec<String>,
}

fn respond(code: u16, body: &Value) -> http::Response<Body> {
    http::Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn status(code: u16) -> Value {
    let reason = if code == 404 { "NotFound" } else { "Conflict" };
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "reason": reason, "message": reason, "code": code})
}

impl Fake {
    fn store(&mut self, mut lease: Value) -> Value {
        self.version += 1;
        lease["metadata"]["resourceVersion"] = json!(self.version.to_string());
        lease["apiVersion"] = json!("coordination.k8s.io/v1");
        lease["kind"] = json!("Lease");
        self.lease = Some(lease.clone());
        lease
    }

    fn handle(&mut self, method: &str, path: &str, body: Value) -> http::Response<Body> {
        self.calls.push(format!("{method} {path}"));
        match (method, path, self.lease.clone()) {
            ("GET", LEASE, None) => respond(404, &status(404)),
            ("GET", LEASE, Some(lease)) => {
                if std::mem::take(&mut self.race_next_read) {
                    self.store(lease.clone());
                }
                respond(200, &lease)
            }
            ("POST", LEASES, None) => {
                let stored = self.store(body);
                respond(201, &stored)
            }
            ("POST", LEASES, Some(_)) => respond(409, &status(409)),
            ("PUT", LEASE, Some(lease)) => {
                if body["metadata"]["resourceVersion"] != lease["metadata"]["resourceVersion"] {
                    return respond(409, &status(409));
                }
                let stored = self.store(body);
                respond(200, &stored)
            }
            _ => respond(404, &status(404)),
        }
    }

    fn holder(&self) -> Value {
        self.lease.as_ref().unwrap()["spec"]["holderIdentity"].clone()
    }
}

fn fake_client() -> (Client, Arc<Mutex<Fake>>) {
    let fake = Arc::new(Mutex::new(Fake::default()));
    let state = fake.clone();
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let state = state.clone();
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let response =
                state
                    .lock()
                    .unwrap()
                    .handle(parts.method.as_str(), parts.uri.path(), body);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    (Client::new(service, "default"), fake)
}

fn take_calls(fake: &Arc<Mutex<Fake>>) -> Vec<String> {
    std::mem::take(&mut fake.lock().unwrap().calls)
}

#[tokio::test]
async fn two_candidates_one_leader_and_takeover_after_expiry() {
    let (client, fake) = fake_client();
    let mut a = Elector::new(client.clone(), "op", "a");
    let mut b = Elector::new(client, "op", "b");
    let t0 = Instant::now();
    let at = |s| t0 + Duration::from_secs(s);

    assert!(a.round_at(at(0)).await.unwrap(), "a creates the Lease");
    assert_eq!(
        take_calls(&fake),
        [format!("GET {LEASE}"), format!("POST {LEASES}")]
    );
    assert!(!b.round_at(at(0)).await.unwrap(), "b follows a live lease");
    assert_eq!(take_calls(&fake), [format!("GET {LEASE}")]);
    assert!(a.round_at(at(5)).await.unwrap(), "a renews");
    assert_eq!(
        take_calls(&fake),
        [format!("GET {LEASE}"), format!("PUT {LEASE}")]
    );

    // a renews every round: b never takes over, however long it watches.
    for s in (10..=60).step_by(5) {
        assert!(a.round_at(at(s)).await.unwrap());
        assert!(
            !b.round_at(at(s)).await.unwrap(),
            "b took a live lease at {s} s"
        );
    }
    // a goes silent: b waits a whole lease duration from when it saw the last renewal.
    assert!(!b.round_at(at(70)).await.unwrap());
    assert!(
        b.round_at(at(76)).await.unwrap(),
        "b takes the expired lease"
    );
    assert_eq!(fake.lock().unwrap().holder(), "b");
    assert_eq!(
        fake.lock().unwrap().lease.as_ref().unwrap()["spec"]["leaseTransitions"],
        1
    );
    // a comes back: it sees b's fresh record and follows.
    assert!(!a.round_at(at(77)).await.unwrap());
}

#[tokio::test]
async fn a_concurrent_write_wins_the_race() {
    let (client, fake) = fake_client();
    let mut a = Elector::new(client.clone(), "op", "a");
    assert!(a.round().await.unwrap());
    fake.lock().unwrap().race_next_read = true;
    assert!(
        !a.round().await.unwrap(),
        "a stale resourceVersion must lose (409)"
    );
}

#[tokio::test]
async fn release_hands_over_at_once() {
    let (client, fake) = fake_client();
    let mut a = Elector::new(client.clone(), "op", "a");
    let mut b = Elector::new(client, "op", "b");
    assert!(a.round().await.unwrap());
    b.release().await.unwrap(); // not b's: untouched
    assert_eq!(fake.lock().unwrap().holder(), "a");
    a.release().await.unwrap();
    assert_eq!(fake.lock().unwrap().holder(), Value::Null);
    assert!(
        b.round().await.unwrap(),
        "b takes a released lease without waiting"
    );
}

#[tokio::test]
async fn a_leader_that_cannot_renew_stops_leading() {
    let (client, fake) = fake_client();
    let a = Elector::new(client.clone(), "op", "a");
    let (leading_tx, mut leading) = tokio::sync::watch::channel(false);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(lead(a, leading_tx, stop));
    leading.wait_for(|l| *l).await.unwrap();
    // Another replica takes the Lease (as after a partition): a must stop, not keep building.
    {
        let mut f = fake.lock().unwrap();
        let mut lease = f.lease.clone().unwrap();
        lease["spec"]["holderIdentity"] = json!("b");
        f.store(lease);
    }
    let elector = task.await.unwrap();
    assert!(!*leading.borrow());
    assert_eq!(elector.identity, "a");
}
