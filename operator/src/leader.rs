//! Leader election over a `coordination.k8s.io/v1` Lease, so two operator replicas never
//! reconcile at once. Updates use the Lease's resourceVersion (optimistic concurrency): two
//! replicas racing for an expired lease cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

/// How long a lease holds without renewal.
pub const LEASE_SECONDS: i32 = 15;
/// How often the holder renews and others retry.
pub const RETRY: Duration = Duration::from_secs(5);

pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
}

/// What to do with a lease, given who holds it and when it was renewed (pure, unit-tested).
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Create,
    Renew,
    TakeOver,
    Wait,
}

pub fn decide(lease: Option<&Lease>, me: &str, now: jiff::Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    if spec.holder_identity.as_deref() == Some(me) {
        return Decision::Renew;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    match spec.renew_time {
        Some(MicroTime(t)) if t.as_second() + duration > now.as_second() => Decision::Wait,
        _ => Decision::TakeOver,
    }
}

impl LeaseLock {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
        }
    }

    fn spec(&self, now: jiff::Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            renew_time: Some(MicroTime(now)),
            acquire_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One round: returns whether this replica leads afterwards.
    pub async fn try_acquire(&self) -> kube::Result<bool> {
        let now = jiff::Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        match decide(current.as_ref(), &self.identity, now) {
            Decision::Wait => Ok(false),
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(now, 0)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            d @ (Decision::Renew | Decision::TakeOver) => {
                let Some(mut lease) = current else {
                    return Ok(false);
                };
                let old = lease.spec.clone().unwrap_or_default();
                let mut spec = self.spec(now, old.lease_transitions.unwrap_or(0));
                if d == Decision::Renew {
                    spec.acquire_time = old.acquire_time;
                } else {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                lease.spec = Some(spec);
                // replace carries resourceVersion: a concurrent writer makes this a 409.
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
        }
    }

    /// Keeps trying and renewing forever, publishing whether this replica leads.
    pub async fn run(self, leading: watch::Sender<bool>) {
        loop {
            let now_leading = match self.try_acquire().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "leader election round failed");
                    // Cannot renew: assume the lease is lost rather than risk two leaders.
                    false
                }
            };
            if *leading.borrow() != now_leading {
                tracing::info!(lease = %self.name, identity = %self.identity, leading = now_leading, "leadership changed");
            }
            if leading.send(now_leading).is_err() {
                return;
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: jiff::Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(renewed)),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(decide(Some(&lease("a", now)), "a", now), Decision::Renew);
        assert_eq!(decide(Some(&lease("b", now)), "a", now), Decision::Wait);
        let old = jiff::Timestamp::from_second(1_000_000 - 16).unwrap();
        assert_eq!(decide(Some(&lease("b", old)), "a", now), Decision::TakeOver);
    }
}
