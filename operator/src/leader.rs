//! Lease-based leader election, so two replicas never run the same build twice (design §3).
//!
//! The algorithm is client-go's `leaderelection` with a `Lease` lock, reduced to what one
//! operator needs: every [`RETRY_PERIOD`] read the Lease; write it (create, or replace with the
//! read `resourceVersion`, so a concurrent writer gets 409 and loses) when it is free, expired or
//! ours. Expiry is judged, as in client-go, by when *this* process last saw the record change,
//! plus `leaseDurationSeconds` — never by comparing the holder's `renewTime` with the local
//! clock, so clock skew between nodes cannot make two leaders.
//!
//! A leader that cannot renew within [`RENEW_DEADLINE`] stops leading; the caller then stops the
//! controller and exits, and the replacement pod starts as a candidate again (client-go's
//! `OnStoppedLeading`). The deadline is shorter than the lease, so the old leader has stopped
//! before anyone else may take over.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::time::Instant;

/// `leaseDurationSeconds`: how long a candidate waits for a silent leader.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews and candidates look.
pub const RETRY_PERIOD: Duration = Duration::from_secs(5);
/// How long a leader keeps leading without a successful renewal.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// The Lease's name.
pub const LEASE_NAME: &str = "stratum-operator";

/// What this candidate remembers of the Lease between rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// The record as last read (holder, renew time, transitions).
    pub record: LeaseSpec,
    /// When this process first saw that record.
    pub at: Instant,
}

/// What to do this round.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Write the Lease with us as holder (acquire or renew).
    Take,
    /// Another holder's lease is live: wait.
    Follow { holder: String },
}

/// The decision of one round, from the Lease as read (`None`: it does not exist).
pub fn step(lease: Option<&LeaseSpec>, seen: Option<&Seen>, me: &str, now: Instant) -> Step {
    let Some(record) = lease else {
        return Step::Take;
    };
    let holder = record.holder_identity.clone().unwrap_or_default();
    if holder.is_empty() || holder == me {
        return Step::Take;
    }
    let duration = record
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(LEASE_DURATION, Duration::from_secs);
    // Expired only when the record has not changed for a whole lease duration *as seen here*.
    let expired = seen.is_some_and(|s| &s.record == record && now.duration_since(s.at) > duration);
    if expired {
        Step::Take
    } else {
        Step::Follow { holder }
    }
}

/// The record we write: keeps `acquireTime` while we already hold it, counts transitions.
pub fn ours(previous: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseSpec {
    let held = previous.is_some_and(|p| p.holder_identity.as_deref() == Some(me));
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
        acquire_time: if held {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if held || previous.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..LeaseSpec::default()
    }
}

/// Why a round failed (the next round tries again).
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("cannot {step} Lease {namespace}/{LEASE_NAME}: {source}")]
    Kube {
        step: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

/// One candidate.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    namespace: String,
    identity: String,
    seen: Option<Seen>,
}

impl Elector {
    pub fn new(client: Client, namespace: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            seen: None,
        }
    }

    fn error(&self, step: &'static str) -> impl FnOnce(kube::Error) -> LeaseError + '_ {
        move |source| LeaseError::Kube {
            step,
            namespace: self.namespace.clone(),
            source,
        }
    }

    /// One round: `Ok(true)` when we hold the Lease afterwards. A lost write race (409) is
    /// `Ok(false)`.
    pub async fn round(&mut self) -> Result<bool, LeaseError> {
        self.round_at(Instant::now()).await
    }

    /// [`Self::round`] with the local clock passed in (tests move it).
    pub async fn round_at(&mut self, now: Instant) -> Result<bool, LeaseError> {
        let current = self
            .api
            .get_opt(LEASE_NAME)
            .await
            .map_err(self.error("read"))?;
        let spec = current.as_ref().and_then(|l| l.spec.clone());
        if let Some(record) = &spec
            && self.seen.as_ref().is_none_or(|s| &s.record != record)
        {
            self.seen = Some(Seen {
                record: record.clone(),
                at: now,
            });
        }
        match step(spec.as_ref(), self.seen.as_ref(), &self.identity, now) {
            Step::Follow { holder } => {
                tracing::debug!(%holder, "another replica leads");
                Ok(false)
            }
            Step::Take => {
                let record = ours(spec.as_ref(), &self.identity, Timestamp::now());
                let written = match current {
                    None => {
                        let lease = Lease {
                            metadata: ObjectMeta {
                                name: Some(LEASE_NAME.into()),
                                ..ObjectMeta::default()
                            },
                            spec: Some(record),
                        };
                        self.api.create(&PostParams::default(), &lease).await
                    }
                    Some(mut lease) => {
                        // resourceVersion from the read: a concurrent writer makes this 409.
                        lease.spec = Some(record);
                        self.api
                            .replace(LEASE_NAME, &PostParams::default(), &lease)
                            .await
                    }
                };
                match written {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(self.error("write")(e)),
                }
            }
        }
    }

    /// Gives the Lease up on shutdown so a standby takes over at once (client-go's
    /// `ReleaseOnCancel`): empty holder, 1-second duration. Only when we still hold it.
    pub async fn release(&self) -> Result<(), LeaseError> {
        let Some(mut lease) = self
            .api
            .get_opt(LEASE_NAME)
            .await
            .map_err(self.error("read"))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        self.api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
            .map(drop)
            .map_err(self.error("release"))
    }
}

/// Campaigns until leading, then renews; `leading` follows. Returns when leadership is lost
/// (no successful renewal within [`RENEW_DEADLINE`]) or `stop` turns true.
pub async fn lead(
    mut elector: Elector,
    leading: tokio::sync::watch::Sender<bool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Elector {
    let mut last_renewal: Option<Instant> = None;
    loop {
        match elector.round().await {
            Ok(true) => {
                if last_renewal.is_none() {
                    tracing::info!(identity = %elector.identity, "leading");
                    let _ = leading.send(true);
                }
                last_renewal = Some(Instant::now());
            }
            // Someone else wrote the Lease since our last renewal: stop at once.
            Ok(false) if last_renewal.is_some() => {
                tracing::error!("leadership lost: another replica holds the Lease");
                let _ = leading.send(false);
                return elector;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("leader election: {e}"),
        }
        if let Some(t) = last_renewal
            && t.elapsed() > RENEW_DEADLINE
        {
            tracing::error!("leadership lost: no renewal within {RENEW_DEADLINE:?}");
            let _ = leading.send(false);
            return elector;
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY_PERIOD) => {}
            _ = stop.wait_for(|s| *s) => return elector,
        }
    }
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod tests;
