//! Controllers for the three kinds and what they share: the context, status conditions, events
//! on state changes, and requeue with backoff on errors.

pub mod cluster;
pub mod mount;
pub mod tier;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alluvium_crds::{Cluster, Mount, Tier};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, PersistentVolumeClaim, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{reflector, watcher, PredicateConfig, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::master_api::{MasterApi, MasterError};
use crate::telemetry::Metrics;

/// Why a reconcile failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The master refused or could not be reached.
    #[error("{0}")]
    Master(#[from] MasterError),
    /// A Secret the spec names is missing or lacks its key.
    #[error("{0}")]
    SecretNotFound(String),
    /// Unmounting on deletion failed; retried until the deadline, then abandoned.
    #[error("{0}")]
    Unmount(String),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesApi",
            Error::Master(e) if e.is_unreachable() => "MasterUnavailable",
            Error::Master(_) => "MasterRefused",
            Error::SecretNotFound(_) => "SecretNotFound",
            Error::Unmount(_) => "UnmountFailed",
        }
    }
}

/// What makes a reconcile worth running for the watched object itself: a new spec
/// (generation), a finalizer change, deletion. Status writes (the operator's own) and
/// resourceVersion churn are ignored, so writing status never triggers the next reconcile.
pub fn spec_changes<K: kube::Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let m = obj.meta();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    m.generation.hash(&mut h);
    m.finalizers.hash(&mut h);
    m.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// Whether `obj` carries finalizer `name`.
pub fn has_finalizer<K: kube::Resource>(obj: &K, name: &str) -> bool {
    obj.meta()
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == name))
}

/// Adds or removes finalizer `name` with a merge patch carrying the object's resourceVersion
/// (a concurrent change makes it a conflict, retried by the next reconcile), under the
/// operator's field manager.
pub async fn set_finalizer<K>(api: &Api<K>, obj: &K, name: &str, present: bool) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut list: Vec<String> = obj.meta().finalizers.clone().unwrap_or_default();
    list.retain(|f| f != name);
    if present {
        list.push(name.to_string());
    }
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": list,
            "resourceVersion": obj.meta().resource_version,
        }
    });
    let obj_name = obj.meta().name.clone().unwrap_or_default();
    api.patch(
        &obj_name,
        &crate::apply::patch_params(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// What every reconcile gets.
pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub masters: Arc<dyn MasterApi>,
    pub recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        masters: Arc<dyn MasterApi>,
        identity: &str,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::names::FIELD_MANAGER.into(),
            instance: Some(identity.into()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            masters,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes an event; failing to publish is logged, never fatal.
    pub async fn event(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, reference).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }

    /// Delay before retrying `key` after its `n`th consecutive failure: 5s doubling to 5 min.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// 5s, 10s, 20s, ... capped at 300s.
pub fn backoff_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    Duration::from_secs((5u64 << exp).min(300))
}

/// A message without the request ids object stores put in errors (the master passes them
/// through): the same failure then reads the same on every retry, so retrying it does not
/// rewrite status each time.
pub fn without_request_ids(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("request_id: \"") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "request_id: \"".len()..];
        match after.find('"') {
            Some(j) => rest = &after[j + 1..],
            None => {
                rest = "";
                break;
            }
        }
        out.push_str("request_id: …");
    }
    out.push_str(rest);
    out
}

/// A condition, keeping the previous transition time when its status did not change. Its
/// message carries no request ids (see [`without_request_ids`]).
pub fn condition(
    previous: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(jiff::Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: without_request_ids(&message.into()),
        observed_generation: generation,
        last_transition_time: last,
    }
}

/// A status as a merge-patch body. Merge patches leave absent keys alone, so fields that are
/// now unknown (`clearable`) are sent as explicit nulls instead of keeping stale values.
pub fn status_patch<S: serde::Serialize>(status: &S, clearable: &[&str]) -> serde_json::Value {
    let mut v = serde_json::to_value(status).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        for key in clearable {
            map.entry(key.to_string())
                .or_insert(serde_json::Value::Null);
        }
    }
    serde_json::json!({ "status": v })
}

fn key<K: kube::Resource>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        std::any::type_name::<K>(),
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

/// Error policy shared by the controllers: count the failure, requeue with backoff.
pub fn error_policy<K: kube::Resource>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    let kind = std::any::type_name::<K>()
        .rsplit("::")
        .next()
        .unwrap_or("?");
    ctx.metrics.failed(kind, err.reason());
    let delay = ctx.backoff(&key(obj.as_ref()));
    tracing::warn!(kind, name = ?obj.meta().name, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Waits for leadership, then runs every controller until shutdown or lost leadership (an error,
/// so the process exits and its restart re-joins the election).
pub async fn run_when_leader(
    ctx: Arc<Context>,
    namespace: Option<String>,
    mut leading: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    while !*leading.borrow() {
        tracing::info!("waiting for leadership");
        leading.changed().await?;
    }
    tracing::info!(namespace = ?namespace, "leading: starting controllers");
    let lost = async move {
        loop {
            if leading.changed().await.is_err() || !*leading.borrow() {
                return;
            }
        }
    };
    tokio::select! {
        () = run_controllers(ctx, namespace) => Ok(()),
        () = lost => anyhow::bail!("lost leadership; exiting so a restart re-joins the election"),
    }
}

fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A controller triggered by [`spec_changes`] of its own kind (plus whatever it owns/watches).
fn controller_for<K>(api: Api<K>, wc: watcher::Config) -> Controller<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let trigger = reflector(writer, watcher(api, wc))
        .applied_objects()
        .predicate_filter(spec_changes::<K>, PredicateConfig::default());
    Controller::for_stream(trigger, reader)
}

async fn run_controllers(ctx: Arc<Context>, ns: Option<String>) {
    let client = ctx.client.clone();
    let wc = watcher::Config::default();
    let clusters = controller_for(api::<Cluster>(&client, &ns), wc.clone());
    let cluster_store = clusters.store();
    let clusters = clusters
        .owns(api::<ConfigMap>(&client, &ns), wc.clone())
        .owns(api::<Service>(&client, &ns), wc.clone())
        .owns(api::<StatefulSet>(&client, &ns), wc.clone())
        .owns(api::<DaemonSet>(&client, &ns), wc.clone())
        .owns(api::<Deployment>(&client, &ns), wc.clone())
        // A Tier change re-reconciles every cluster naming it.
        .watches(Api::<Tier>::all(client.clone()), wc.clone(), move |tier| {
            let name = tier.metadata.name.clone().unwrap_or_default();
            cluster_store
                .state()
                .into_iter()
                .filter(|c| c.spec.workers.tiers.contains(&name))
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(cluster::reconcile, error_policy, ctx.clone())
        .for_each(|r| async move { log_result("Cluster", r) });
    let mounts = controller_for(api::<Mount>(&client, &ns), wc.clone())
        .owns(api::<Job>(&client, &ns), wc.clone())
        .owns(api::<PersistentVolumeClaim>(&client, &ns), wc.clone())
        .shutdown_on_signal()
        .run(mount::reconcile, error_policy, ctx.clone())
        .for_each(|r| async move { log_result("Mount", r) });
    let tiers = controller_for(Api::<Tier>::all(client.clone()), wc.clone())
        // A Cluster that lets go of a Tier (changed or deleted) lets a waiting deletion of the
        // Tier finish at once, instead of at the Tier's next in-use check.
        .watches(api::<Cluster>(&client, &ns), wc, |cluster| {
            cluster
                .spec
                .workers
                .tiers
                .iter()
                .map(|t| ObjectRef::<Tier>::new(t))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(tier::reconcile, error_policy, ctx.clone())
        .for_each(|r| async move { log_result("Tier", r) });
    futures::join!(clusters, mounts, tiers);
}

fn log_result<T: std::fmt::Debug, E: std::fmt::Display>(kind: &str, r: Result<T, E>) {
    match r {
        Ok(o) => tracing::debug!(kind, object = ?o, "reconciled"),
        Err(e) => tracing::debug!(kind, error = %e, "reconcile error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_patch_clears_unknown_fields() {
        let s = alluvium_crds::ClusterStatus::default();
        let v = status_patch(&s, &["capacity", "used"]);
        assert!(v["status"]["capacity"].is_null());
        assert!(v["status"].as_object().unwrap().contains_key("used"));
        assert_eq!(v["status"]["readyMasters"], 0);
    }

    #[test]
    fn request_ids_do_not_make_each_failure_new() {
        let a = "S3Error { code: \"NoSuchBucket\", request_id: \"abc\" } (ConfigInvalid)";
        let b = "S3Error { code: \"NoSuchBucket\", request_id: \"xyz\" } (ConfigInvalid)";
        assert_eq!(without_request_ids(a), without_request_ids(b));
        assert_eq!(
            without_request_ids(a),
            "S3Error { code: \"NoSuchBucket\", request_id: … } (ConfigInvalid)"
        );
        assert_eq!(without_request_ids("plain"), "plain");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_delay(1), Duration::from_secs(5));
        assert_eq!(backoff_delay(2), Duration::from_secs(10));
        assert_eq!(backoff_delay(4), Duration::from_secs(40));
        assert_eq!(backoff_delay(50), Duration::from_secs(300));
    }

    #[test]
    fn condition_keeps_transition_time_while_status_holds() {
        let t = Time(jiff::Timestamp::from_second(1_000).unwrap());
        let prev = vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Running".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: t.clone(),
        }];
        assert_eq!(
            condition(&prev, "Ready", true, "Running", "", None).last_transition_time,
            t
        );
        assert_ne!(
            condition(&prev, "Ready", false, "Degraded", "", None).last_transition_time,
            t
        );
    }
}
