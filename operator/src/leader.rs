//! Leader election over a `coordination.k8s.io/v1` Lease, so two operator replicas never
//! reconcile at once. It follows client-go's `leaderelection`:
//!
//! - Writes use the Lease's resourceVersion (optimistic concurrency): two replicas racing for an
//!   expired lease cannot both win, and a replica leads only after a write of its own succeeded.
//! - A follower judges expiry by its own monotonic clock: a lease is expired once its record has
//!   not changed for `lease_duration` since this replica first saw it, whatever the `renewTime`
//!   says (the holder's wall clock may differ from ours).
//! - A leader keeps leading while renewals fail for less than `renew_deadline` (shorter than the
//!   lease, so it stops before any follower may take over) and steps down after that, or at once
//!   when it sees another holder. One failed renewal during an API server blip is not a loss.
//! - On shutdown the leader releases the lease (client-go's `ReleaseOnCancel`): holder cleared,
//!   duration 1 s, written with resourceVersion, so a standby takes over at once instead of
//!   waiting out the lease.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a lease holds without renewal (written into the Lease).
pub const LEASE_SECONDS: i32 = 15;

/// The election's clock settings; the defaults are client-go's (15 s, 10 s, 2 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long followers wait, from when they last saw the record change, before taking over.
    pub lease_duration: Duration,
    /// How long a leader keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// Pause between rounds (renewals, and a follower's attempts).
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(LEASE_SECONDS as u64),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do with a lease, given who holds it and whether it expired (pure, unit-tested).
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Create,
    Renew,
    TakeOver,
    Wait,
}

/// `expired`: the record has not changed for a lease duration by this replica's own clock.
pub fn decide(lease: Option<&Lease>, me: &str, expired: bool) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let holder = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .unwrap_or("");
    if holder == me {
        Decision::Renew
    } else if holder.is_empty() || expired {
        // An empty holder is a released lease: free at once.
        Decision::TakeOver
    } else {
        Decision::Wait
    }
}

/// The outcome of one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// Our write succeeded: we hold the lease until `lease_duration` after it.
    Leading,
    /// Someone else holds a valid lease.
    HeldBy(String),
    /// Our write lost a race (409): someone else wrote first.
    Conflict,
}

/// The record as last seen and when (by our monotonic clock) it last changed.
struct Observed {
    spec: Option<LeaseSpec>,
    since: Instant,
}

pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    observed: Option<Observed>,
    /// The Lease as our last successful write left it (its resourceVersion is what a release
    /// must carry).
    held: Option<Lease>,
}

impl LeaseLock {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self::with_timing(client, namespace, name, identity, Timing::default())
    }

    pub fn with_timing(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            timing,
            observed: None,
            held: None,
        }
    }

    fn spec(&self, now: jiff::Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.lease_duration.as_secs() as i32),
            renew_time: Some(MicroTime(now)),
            acquire_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Records the spec just read; returns whether it has stood unchanged for a lease duration.
    fn observe(&mut self, spec: Option<&LeaseSpec>) -> bool {
        let now = Instant::now();
        match &self.observed {
            Some(o) if o.spec.as_ref() == spec => {}
            _ => {
                self.observed = Some(Observed {
                    spec: spec.cloned(),
                    since: now,
                })
            }
        }
        let duration = spec
            .and_then(|s| s.lease_duration_seconds)
            .map(|s| Duration::from_secs(s.max(0) as u64))
            .unwrap_or(self.timing.lease_duration);
        self.observed
            .as_ref()
            .is_some_and(|o| now.duration_since(o.since) >= duration)
    }

    /// One round: read the lease, then create, renew or take it over when that is due.
    pub async fn round(&mut self) -> kube::Result<Round> {
        let now = jiff::Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let expired = self.observe(current.as_ref().and_then(|l| l.spec.as_ref()));
        let decision = decide(current.as_ref(), &self.identity, expired);
        let written = match (decision, current) {
            (Decision::Wait, current) => {
                let holder = current
                    .and_then(|l| l.spec)
                    .and_then(|s| s.holder_identity)
                    .unwrap_or_default();
                return Ok(Round::HeldBy(holder));
            }
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(now, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (d, Some(mut lease)) => {
                let old = lease.spec.clone().unwrap_or_default();
                let mut spec = self.spec(now, old.lease_transitions.unwrap_or(0));
                if d == Decision::Renew {
                    spec.acquire_time = old.acquire_time;
                } else {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                lease.spec = Some(spec);
                // replace carries resourceVersion: a concurrent writer makes this a 409.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(lease) => {
                self.observe(lease.spec.as_ref());
                self.held = Some(lease);
                Ok(Round::Leading)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                self.held = None;
                Ok(Round::Conflict)
            }
            Err(e) => Err(e),
        }
    }

    /// One round, as whether this replica leads afterwards.
    pub async fn try_acquire(&mut self) -> kube::Result<bool> {
        Ok(self.round().await? == Round::Leading)
    }

    /// Gives the lease up (client-go's ReleaseOnCancel): an update with the resourceVersion of
    /// our last write, holder cleared and a 1 s duration, so a standby takes over at its next
    /// round. A conflict means the lease is no longer ours to release.
    pub async fn release(&mut self) -> kube::Result<bool> {
        let Some(mut lease) = self.held.take() else {
            return Ok(false);
        };
        let old = lease.spec.clone().unwrap_or_default();
        let now = MicroTime(jiff::Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(now.clone()),
            acquire_time: Some(now),
            lease_transitions: old.lease_transitions,
            ..Default::default()
        });
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs the election until `stop` completes, publishing whether this replica leads. When it
    /// stops while leading it releases the lease; the caller stops it only after the controllers
    /// have stopped, so the lease is renewed for as long as they may still write.
    pub async fn run(mut self, leading: watch::Sender<bool>, stop: impl Future<Output = ()>) {
        let Timing {
            renew_deadline,
            retry_period,
            ..
        } = self.timing;
        let mut is_leader = false;
        // While leading: when the first of the current run of failed renewals began. Like
        // client-go, the leader gives up once renewals have failed for `renew_deadline`; its
        // last successful write is then at least a retry period older, so it stops
        // `retry_period + renew_deadline` (< `lease_duration`) after it, before any follower,
        // counting from when it saw that write, may take over.
        let mut failing_since: Option<Instant> = None;
        tokio::pin!(stop);
        loop {
            let started = Instant::now();
            if is_leader && failing_since.is_some_and(|at| started >= at + renew_deadline) {
                self.step_down("renewals failed for the whole renew deadline");
                is_leader = false;
                failing_since = None;
                leading.send_replace(false);
            }
            // A round may hang when the API server does; a leader must still step down on time.
            let budget = match failing_since {
                Some(at) if is_leader => (at + renew_deadline).saturating_duration_since(started),
                _ => renew_deadline,
            };
            let outcome = tokio::select! {
                r = tokio::time::timeout(budget, self.round()) => r,
                () = &mut stop => break,
            };
            let failure = match outcome {
                Ok(Ok(Round::Leading)) => None,
                Ok(Ok(Round::HeldBy(holder))) => {
                    if is_leader {
                        // Someone took it: we lost it already, stop at once.
                        self.step_down(&format!("{holder} holds the lease"));
                        is_leader = false;
                        failing_since = None;
                    }
                    leading.send_replace(false);
                    if self.sleep_or_stop(retry_period, &mut stop).await {
                        break;
                    }
                    continue;
                }
                Ok(Ok(Round::Conflict)) => Some("lost a race for the lease".to_string()),
                Ok(Err(e)) => Some(format!("leader election round failed: {e}")),
                Err(_) => Some(format!("leader election round timed out after {budget:?}")),
            };
            match failure {
                None => {
                    if !is_leader {
                        tracing::info!(lease = %self.name, identity = %self.identity, "leading");
                    }
                    is_leader = true;
                    failing_since = None;
                }
                Some(why) if is_leader => {
                    let since = *failing_since.get_or_insert(started);
                    tracing::warn!(lease = %self.name, reason = %why, failing_for = ?since.elapsed(), "cannot renew the lease; still leading until the renew deadline");
                    if since.elapsed() >= renew_deadline {
                        self.step_down(&why);
                        is_leader = false;
                        failing_since = None;
                    }
                }
                Some(why) => {
                    tracing::warn!(lease = %self.name, reason = %why, "leader election round failed")
                }
            }
            // send_replace: publish even when nobody listens at the moment (never stop on it).
            leading.send_replace(is_leader);
            // A failing leader also wakes at its deadline, so it steps down on time.
            let pause = match failing_since {
                Some(at) if is_leader => retry_period
                    .min((at + renew_deadline).saturating_duration_since(Instant::now())),
                _ => retry_period,
            };
            if self.sleep_or_stop(pause, &mut stop).await {
                break;
            }
        }
        if is_leader {
            match self.release().await {
                Ok(true) => tracing::info!(lease = %self.name, "released the lease"),
                Ok(false) => {
                    tracing::info!(lease = %self.name, "the lease was no longer ours to release")
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "cannot release the lease; it expires on its own")
                }
            }
        }
        leading.send_replace(false);
    }

    /// Leadership is gone: forget our copy of the lease, so nothing is released in our name.
    fn step_down(&mut self, why: &str) {
        tracing::warn!(lease = %self.name, identity = %self.identity, reason = %why, "lost leadership");
        self.held = None;
    }

    /// Sleeps `pause`; true when `stop` completed first.
    async fn sleep_or_stop(
        &self,
        pause: Duration,
        stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        tokio::select! {
            () = tokio::time::sleep(pause) => false,
            () = stop.as_mut() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(jiff::Timestamp::from_second(1_000_000).unwrap())),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, "a", false), Decision::Create);
        assert_eq!(decide(Some(&lease(Some("a"))), "a", false), Decision::Renew);
        assert_eq!(decide(Some(&lease(Some("a"))), "a", true), Decision::Renew);
        assert_eq!(decide(Some(&lease(Some("b"))), "a", false), Decision::Wait);
        assert_eq!(
            decide(Some(&lease(Some("b"))), "a", true),
            Decision::TakeOver
        );
    }

    #[test]
    fn a_released_lease_is_free_at_once() {
        assert_eq!(decide(Some(&lease(None)), "a", false), Decision::TakeOver);
        assert_eq!(
            decide(Some(&lease(Some(""))), "a", false),
            Decision::TakeOver
        );
    }
}
