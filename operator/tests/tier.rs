//! The Tier controller against kube's mock-service seam: its finalizer (deletion waits while a
//! Cluster names the Tier), the field manager of its writes, its events (findable by `kubectl
//! describe`), and that it writes nothing at rest.

use std::sync::{Arc, Mutex};

use alluvium_crds::Tier;
use alluvium_operator::controller::tier::{self, IN_USE_RETRY, TIER_FINALIZER};
use alluvium_operator::controller::Context;
use alluvium_operator::master_api::{
    MasterApi, MasterError, MasterTarget, MasterUsage, MountRequest, PathUsage,
};
use alluvium_operator::telemetry::Metrics;
use futures::future::BoxFuture;
use http::StatusCode;
use kube::runtime::controller::Action;
use kube::Client;
use serde_json::{json, Value};
use support::Call;

mod support;

/// A fake API server: Clusters from `clusters` for a list, writes echoed, events accepted.
fn fake_api(clusters: Vec<Value>) -> (Client, Arc<Mutex<Vec<Call>>>) {
    let (client, calls, _task) = support::fake_api(Arc::new(move |call: &Call| {
        match (call.method.as_str(), call.path.as_str()) {
            ("GET", "/apis/alluvium.io/v1alpha1/clusters") => (
                StatusCode::OK,
                json!({"apiVersion": "alluvium.io/v1alpha1", "kind": "ClusterList",
                       "metadata": {"resourceVersion": "9"}, "items": clusters}),
            ),
            ("POST", _) => (StatusCode::CREATED, call.body.clone()),
            ("PATCH", _) => (StatusCode::OK, tier_json(json!({}))),
            _ => support::not_found(&call.path),
        }
    }));
    (client, calls)
}

struct NoMasters;

impl MasterApi for NoMasters {
    fn usage(&self, _: &MasterTarget) -> BoxFuture<'_, Result<MasterUsage, MasterError>> {
        Box::pin(async {
            Err(MasterError::unreachable(
                "-",
                "no master",
                "none in these tests",
            ))
        })
    }
    fn ensure_mount(
        &self,
        _: &MasterTarget,
        _: MountRequest,
        _: bool,
    ) -> BoxFuture<'_, Result<u64, MasterError>> {
        Box::pin(async {
            Err(MasterError::unreachable(
                "-",
                "no master",
                "none in these tests",
            ))
        })
    }
    fn unmount(&self, _: &MasterTarget, _: &str) -> BoxFuture<'_, Result<(), MasterError>> {
        Box::pin(async {
            Err(MasterError::unreachable(
                "-",
                "no master",
                "none in these tests",
            ))
        })
    }
    fn path_usage(
        &self,
        _: &MasterTarget,
        _: &str,
    ) -> BoxFuture<'_, Result<PathUsage, MasterError>> {
        Box::pin(async {
            Err(MasterError::unreachable(
                "-",
                "no master",
                "none in these tests",
            ))
        })
    }
}

fn ctx(client: Client) -> Arc<Context> {
    Arc::new(Context::new(
        client,
        Arc::new(Metrics::new()),
        Arc::new(NoMasters),
        "test-0",
    ))
}

/// The `mem` Tier as the API server returns it, with `extra` merged into its top level.
fn tier_json(extra: Value) -> Value {
    let mut v = json!({
        "apiVersion": "alluvium.io/v1alpha1", "kind": "Tier",
        "metadata": {"name": "mem", "uid": "11111111-2222-3333-4444-555555555555",
                     "generation": 1, "resourceVersion": "7"},
        "spec": {"medium": "MEM", "hostPath": "/dev/shm/alluvium", "quota": "1Gi"}
    });
    if let (Some(base), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, e) in extra {
            match (base.get_mut(k), e) {
                (Some(Value::Object(b)), Value::Object(e)) => {
                    for (ek, ev) in e {
                        b.insert(ek.clone(), ev.clone());
                    }
                }
                _ => {
                    base.insert(k.clone(), e.clone());
                }
            }
        }
    }
    v
}

fn tier(extra: Value) -> Arc<Tier> {
    Arc::new(serde_json::from_value(tier_json(extra)).unwrap())
}

/// The status the controller computes for the valid `mem` Tier, as the API server stores it.
fn ready_status() -> Value {
    json!({"phase": "Ready", "quotaBytes": 1u64 << 30, "observedGeneration": 1,
           "conditions": [{"type": "Ready", "status": "True", "reason": "Valid",
                           "message": "1073741824 bytes per node", "observedGeneration": 1,
                           "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
}

fn cluster(ns: &str, name: &str, tiers: &[&str]) -> Value {
    json!({"apiVersion": "alluvium.io/v1alpha1", "kind": "Cluster",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"image": "alluvium/alluvium:dev", "workers": {"tiers": tiers},
                    "rootUfs": {"uri": "s3://root/"}}})
}

fn calls(c: &Arc<Mutex<Vec<Call>>>) -> Vec<Call> {
    c.lock().unwrap().clone()
}

fn field_manager(call: &Call) -> Option<&str> {
    call.query
        .split('&')
        .find_map(|kv| kv.strip_prefix("fieldManager="))
}

#[tokio::test]
async fn a_new_tier_gets_the_finalizer_and_every_write_names_the_operators_field_manager() {
    let (client, rec) = fake_api(vec![]);
    let action = tier::reconcile(tier(json!({})), ctx(client)).await.unwrap();
    assert_eq!(action, Action::await_change());
    let calls = calls(&rec);
    let writes: Vec<&Call> = calls.iter().filter(|c| c.method == "PATCH").collect();
    assert_eq!(writes.len(), 2, "{calls:#?}");
    let fin = writes[0];
    assert_eq!(fin.path, "/apis/alluvium.io/v1alpha1/tiers/mem");
    assert_eq!(fin.body["metadata"]["finalizers"], json!([TIER_FINALIZER]));
    assert_eq!(
        fin.body["metadata"]["resourceVersion"], "7",
        "optimistic lock"
    );
    let status = writes[1];
    assert_eq!(status.path, "/apis/alluvium.io/v1alpha1/tiers/mem/status");
    for w in writes {
        assert_eq!(field_manager(w), Some("alluvium-operator"), "{w:?}");
    }
}

#[tokio::test]
async fn deleting_a_tier_in_use_waits_and_says_which_clusters_use_it() {
    let (client, rec) = fake_api(vec![
        cluster("team-b", "big", &["mem", "ssd"]),
        cluster("team-a", "demo", &["mem"]),
        cluster("team-a", "other", &["ssd"]),
    ]);
    let deleting = json!({
        "metadata": {"deletionTimestamp": "2026-01-02T00:00:00Z", "finalizers": [TIER_FINALIZER]},
        "status": ready_status()});
    let action = tier::reconcile(tier(deleting), ctx(client)).await.unwrap();
    assert_eq!(action, Action::requeue(IN_USE_RETRY));
    let calls = calls(&rec);
    assert!(
        calls
            .iter()
            .any(|c| c.method == "GET" && c.path == "/apis/alluvium.io/v1alpha1/clusters"),
        "Clusters of every namespace are listed: {calls:#?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.method == "PATCH" && c.path.ends_with("/tiers/mem")),
        "the finalizer stays"
    );
    let status = calls
        .iter()
        .find(|c| c.path.ends_with("/tiers/mem/status"))
        .expect("status patched");
    assert_eq!(field_manager(status), Some("alluvium-operator"));
    let s = &status.body["status"];
    assert_eq!(s["usedBy"], json!(["team-a/demo", "team-b/big"]));
    let blocked = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DeletionBlocked")
        .expect("a DeletionBlocked condition");
    assert_eq!(blocked["status"], "True");
    assert_eq!(blocked["reason"], "InUse");
    assert!(blocked["message"]
        .as_str()
        .unwrap()
        .contains("team-a/demo, team-b/big"));
    let event = calls
        .iter()
        .find(|c| c.method == "POST" && c.path.ends_with("/events"))
        .expect("an event");
    assert_eq!(event.body["reason"], "InUse");
    assert_eq!(event.body["type"], "Warning");
    assert!(event.body["note"].as_str().unwrap().contains("team-b/big"));
}

#[tokio::test]
async fn deleting_an_unused_tier_removes_only_its_finalizer() {
    let (client, rec) = fake_api(vec![cluster("team-a", "other", &["ssd"])]);
    let deleting = json!({
        "metadata": {"deletionTimestamp": "2026-01-02T00:00:00Z",
                     "finalizers": ["example.com/keep", TIER_FINALIZER]},
        "status": ready_status()});
    let action = tier::reconcile(tier(deleting), ctx(client)).await.unwrap();
    assert_eq!(action, Action::await_change());
    let calls = calls(&rec);
    let patches: Vec<&Call> = calls.iter().filter(|c| c.method == "PATCH").collect();
    assert_eq!(patches.len(), 1, "{calls:#?}");
    assert_eq!(patches[0].path, "/apis/alluvium.io/v1alpha1/tiers/mem");
    assert_eq!(
        patches[0].body["metadata"]["finalizers"],
        json!(["example.com/keep"])
    );
    assert_eq!(patches[0].body["metadata"]["resourceVersion"], "7");
    assert_eq!(field_manager(patches[0]), Some("alluvium-operator"));
}

#[tokio::test]
async fn tier_reconcile_writes_nothing_at_rest_and_keeps_transition_times_when_it_does() {
    let (client, rec) = fake_api(vec![]);
    let at_rest = json!({"metadata": {"finalizers": [TIER_FINALIZER]}, "status": ready_status()});
    let ctx = ctx(client);
    for _ in 0..3 {
        tier::reconcile(tier(at_rest.clone()), ctx.clone())
            .await
            .unwrap();
    }
    let seen = calls(&rec);
    assert!(seen.is_empty(), "no call at all at rest: {seen:#?}");

    // The quota changed (generation 2) but the Tier stays valid: one status patch, and Ready=True
    // keeps the time it became true.
    let changed = json!({"metadata": {"finalizers": [TIER_FINALIZER], "generation": 2},
                         "spec": {"medium": "MEM", "hostPath": "/dev/shm/alluvium", "quota": "2Gi"},
                         "status": ready_status()});
    tier::reconcile(tier(changed), ctx).await.unwrap();
    let seen = calls(&rec);
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert!(seen[0].path.ends_with("/tiers/mem/status"));
    let status = &seen[0].body["status"];
    assert_eq!(status["quotaBytes"], 2u64 << 30);
    assert_eq!(
        status["conditions"][0]["lastTransitionTime"],
        "2026-01-01T00:00:00Z"
    );
}

#[tokio::test]
async fn an_invalid_tier_clears_the_quota_it_no_longer_has() {
    let (client, rec) = fake_api(vec![]);
    let invalid = json!({"metadata": {"finalizers": [TIER_FINALIZER]},
                         "spec": {"medium": "MEM", "hostPath": "/dev/shm/alluvium", "quota": "8"},
                         "status": ready_status()});
    tier::reconcile(tier(invalid), ctx(client)).await.unwrap();
    let calls = calls(&rec);
    let status = &calls
        .iter()
        .find(|c| c.path.ends_with("/status"))
        .expect("status patched")
        .body["status"];
    assert_eq!(status["phase"], "Invalid");
    assert!(status
        .as_object()
        .unwrap()
        .get("quotaBytes")
        .is_some_and(Value::is_null));
}

#[tokio::test]
async fn tier_events_carry_no_namespace_so_kubectl_describe_finds_them() {
    let (client, rec) = fake_api(vec![]);
    let invalid = json!({"metadata": {"finalizers": [TIER_FINALIZER]},
                         "spec": {"medium": "MEM", "hostPath": "/dev/shm/", "quota": "1Gi"},
                         "status": ready_status()});
    tier::reconcile(tier(invalid), ctx(client)).await.unwrap();
    let calls = calls(&rec);
    let event = calls
        .iter()
        .find(|c| c.method == "POST")
        .expect("an event for Ready -> Invalid");
    // The Event object lives in `default` (events are namespaced) ...
    assert_eq!(
        event.path,
        "/apis/events.k8s.io/v1/namespaces/default/events"
    );
    // ... but names a cluster-scoped object: no namespace, or describe's
    // involvedObject.namespace="" selector never matches it.
    let regarding = &event.body["regarding"];
    assert_eq!(regarding["kind"], "Tier");
    assert_eq!(regarding["name"], "mem");
    assert_eq!(regarding["uid"], "11111111-2222-3333-4444-555555555555");
    assert!(regarding.get("namespace").is_none(), "{regarding}");
    assert_eq!(event.body["type"], "Warning");
}
