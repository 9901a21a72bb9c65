//! Controller tests against kube's mock-service seam: a `tower_test::mock` service stands in for
//! the API server, answering each call and recording it, so each test asserts the exact API calls
//! a reconcile makes (create, update, invalid spec, delete with finalizer, error and requeue).
//! The master is a recording fake of the operator's `MasterApi` trait.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alluvium_common::ErrorCode;
use alluvium_crds::{Cluster, Mount, Tier};
use alluvium_operator::controller::{self, cluster, mount, tier, Context};
use alluvium_operator::master_api::{
    MasterApi, MasterError, MasterErrorKind, MasterTarget, MasterUsage, MountRequest, PathUsage,
};
use alluvium_operator::telemetry::Metrics;
use futures::future::BoxFuture;
use http::StatusCode;
use kube::runtime::controller::Action;
use kube::Client;
use serde_json::{json, Value};
use support::{fake_api, not_found, Call, Responder};

mod support;

/// Records calls; answers with canned values.
#[derive(Default)]
struct FakeMasters {
    calls: Mutex<Vec<String>>,
    fail_mount: bool,
    fail_unmount: bool,
}

impl MasterApi for FakeMasters {
    fn usage(&self, t: &MasterTarget) -> BoxFuture<'_, Result<MasterUsage, MasterError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("usage {}", t.endpoint));
        Box::pin(async {
            Ok(MasterUsage {
                live_workers: 1,
                lost_workers: 0,
                capacity_bytes: 11 << 30,
                used_bytes: 1 << 30,
                tiers: vec![],
            })
        })
    }
    fn ensure_mount(
        &self,
        t: &MasterTarget,
        req: MountRequest,
        changed: bool,
    ) -> BoxFuture<'_, Result<u64, MasterError>> {
        self.calls.lock().unwrap().push(format!(
            "mount {} {} {} ro={} keys={:?} changed={changed}",
            t.endpoint,
            req.path,
            req.ufs,
            req.read_only,
            req.options.keys().collect::<Vec<_>>()
        ));
        let fail = self.fail_mount;
        Box::pin(async move {
            if fail {
                Err(MasterError {
                    endpoint: "demo-master.default.svc:19998".into(),
                    what: "Mount s3://datasets/ at /datasets".into(),
                    kind: MasterErrorKind::Rejected(ErrorCode::Unavailable),
                    message: "UFS unreachable".into(),
                })
            } else {
                Ok(7)
            }
        })
    }
    fn unmount(&self, t: &MasterTarget, path: &str) -> BoxFuture<'_, Result<(), MasterError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("unmount {} {path}", t.endpoint));
        let fail = self.fail_unmount;
        Box::pin(async move {
            if fail {
                Err(MasterError::unreachable(
                    "demo-master.default.svc:19998",
                    "cannot connect",
                    "refused",
                ))
            } else {
                Ok(())
            }
        })
    }
    fn path_usage(
        &self,
        _t: &MasterTarget,
        path: &str,
    ) -> BoxFuture<'_, Result<PathUsage, MasterError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("usage-path {path}"));
        Box::pin(async {
            Ok(PathUsage {
                total_bytes: 1000,
                cached_bytes: 250,
            })
        })
    }
}

fn example<T: serde::de::DeserializeOwned>(file: &str, kind: &str, name: &str) -> Value {
    let text =
        std::fs::read_to_string(format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        if v["kind"] == kind && v["metadata"]["name"] == name {
            // Check it parses as the type too.
            let _: T = serde_json::from_value(v.clone()).unwrap();
            return v;
        }
    }
    panic!("{kind}/{name} not in {file}");
}

fn with_server_fields(mut v: Value, namespaced: bool) -> Value {
    v["metadata"]["uid"] = json!("11111111-2222-3333-4444-555555555555");
    v["metadata"]["generation"] = json!(1);
    v["metadata"]["resourceVersion"] = json!("1");
    if namespaced {
        v["metadata"]["namespace"] = json!("default");
    }
    v
}

fn tiers() -> BTreeMap<String, Value> {
    ["mem", "ssd", "hdd"]
        .into_iter()
        .map(|n| {
            (
                n.to_string(),
                with_server_fields(example::<Tier>("tiers.yaml", "Tier", n), false),
            )
        })
        .collect()
}

/// The usual API server: Alluvium objects from `objects` ("tiers/mem", "clusters/demo", ...),
/// apply echoes the object with ready pods, events are accepted, the rest is 404.
fn standard_responder(objects: BTreeMap<String, Value>) -> Responder {
    // Objects applied so far, by path: a later GET returns them, as an API server would.
    let applied: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    Arc::new(move |c: &Call| {
        if c.method == "GET" {
            if let Some(v) = applied.lock().unwrap().get(&c.path) {
                return (StatusCode::OK, v.clone());
            }
        }
        if c.method == "DELETE" {
            if let Some(v) = applied.lock().unwrap().remove(&c.path) {
                return (StatusCode::OK, v);
            }
        }
        let path = c.path.trim_end_matches("/status");
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if path.starts_with("/apis/alluvium.io/") && (c.method == "GET" || c.method == "PATCH") {
            let key = segs[segs.len().saturating_sub(2)..].join("/");
            return match objects.get(&key) {
                Some(o) => (StatusCode::OK, o.clone()),
                None => not_found(&key),
            };
        }
        match (c.method.as_str(), segs.as_slice()) {
            ("GET", [.., "secrets", name]) if *name == "datasets-s3" || *name == "root-ufs-s3" => (
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default",
                        "uid": "u-1", "resourceVersion": "1"},
                       "data": {"access_key_id": "bWluaW9hZG1pbg==", "secret_access_key": "bWluaW9hZG1pbg=="}}),
            ),
            // The operator's own cluster secret, made on the first reconcile.
            ("GET", [.., "secrets", "demo-cluster-secret"]) => (
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "demo-cluster-secret", "namespace": "default"},
                       "data": {"clusterSecret": "czNjcmV0"}}),
            ),
            ("GET", ["api", "v1", "nodes"]) => (
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {},
                       "items": [{"metadata": {"name": "node-1"}, "status": {"allocatable": {"memory": "24Gi"}}}]}),
            ),
            ("GET", [.., "jobs"]) => (
                StatusCode::OK,
                json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": []}),
            ),
            ("POST", [.., "events"]) => (StatusCode::CREATED, c.body.clone()),
            ("DELETE", _) => not_found(&c.path),
            ("PATCH", _) => {
                let mut body = c.body.clone();
                match body["kind"].as_str() {
                    Some("StatefulSet") => {
                        body["status"] = json!({"replicas": 1, "readyReplicas": 1})
                    }
                    Some("DaemonSet") => {
                        body["status"] = json!({"currentNumberScheduled": 1, "desiredNumberScheduled": 1,
                        "numberMisscheduled": 0, "numberReady": 1})
                    }
                    Some("Job") => body["status"] = json!({"active": 1}),
                    _ => {}
                }
                if c.query.contains("fieldManager") && body.get("kind").is_some() {
                    applied.lock().unwrap().insert(c.path.clone(), body.clone());
                }
                (StatusCode::OK, body)
            }
            _ => not_found(&c.path),
        }
    })
}

fn objects(extra: &[(&str, Value)]) -> BTreeMap<String, Value> {
    let mut m: BTreeMap<String, Value> = tiers()
        .into_iter()
        .map(|(k, v)| (format!("tiers/{k}"), v))
        .collect();
    for (k, v) in extra {
        m.insert((*k).to_string(), v.clone());
    }
    m
}

fn ctx(client: Client, masters: Arc<FakeMasters>) -> Arc<Context> {
    Arc::new(Context::new(
        client,
        Arc::new(Metrics::new()),
        masters,
        "test-0",
    ))
}

fn shorts(calls: &Arc<Mutex<Vec<Call>>>) -> Vec<String> {
    calls.lock().unwrap().iter().map(Call::short).collect()
}

fn find<'a>(calls: &'a [Call], method: &str, suffix: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.method == method && c.path.ends_with(suffix))
        .unwrap_or_else(|| {
            panic!(
                "no {method} …{suffix} in {:?}",
                calls.iter().map(Call::short).collect::<Vec<_>>()
            )
        })
}

/// A merge patch as the API server stores it: explicit nulls remove keys.
fn as_stored(patch: &Value) -> Value {
    match patch {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), as_stored(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn demo_cluster() -> Value {
    with_server_fields(example::<Cluster>("cluster.yaml", "Cluster", "demo"), true)
}

#[tokio::test]
async fn cluster_create_applies_every_object_then_reports_running() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[(
        "clusters/demo",
        demo_cluster(),
    )])));
    let masters = Arc::new(FakeMasters::default());
    let c: Cluster = serde_json::from_value(demo_cluster()).unwrap();
    let action = cluster::reconcile(Arc::new(c), ctx(client, masters.clone()))
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(cluster::REFRESH));
    let ns = "/api/v1/namespaces/default";
    let apps = "/apis/apps/v1/namespaces/default";
    assert_eq!(
        shorts(&calls),
        vec![
            "GET /apis/alluvium.io/v1alpha1/tiers/mem".to_string(),
            "GET /apis/alluvium.io/v1alpha1/tiers/ssd".into(),
            "GET /apis/alluvium.io/v1alpha1/tiers/hdd".into(),
            // Dereference: the root UFS credentials, the nodes (the MEM tier must fit), the
            // operator's own cluster secret.
            format!("GET {ns}/secrets/root-ufs-s3"),
            "GET /api/v1/namespaces/default".into(),
            "GET /api/v1/nodes".into(),
            format!("GET {ns}/secrets/demo-cluster-secret"),
            format!("GET {ns}/configmaps/demo-config"),
            format!("PATCH {ns}/configmaps/demo-config"),
            format!("GET {ns}/services/demo-master-headless"),
            format!("PATCH {ns}/services/demo-master-headless"),
            format!("GET {ns}/services/demo-master"),
            format!("PATCH {ns}/services/demo-master"),
            format!("GET {apps}/statefulsets/demo-master"),
            format!("PATCH {apps}/statefulsets/demo-master"),
            format!("GET {apps}/daemonsets/demo-worker"),
            format!("PATCH {apps}/daemonsets/demo-worker"),
            format!("GET {apps}/deployments/demo-proxy"),
            format!("PATCH {apps}/deployments/demo-proxy"),
            format!("GET {ns}/services/demo-proxy"),
            format!("PATCH {ns}/services/demo-proxy"),
            "PATCH /apis/alluvium.io/v1alpha1/namespaces/default/clusters/demo/status".into(),
            "POST /apis/events.k8s.io/v1/namespaces/default/events".into(),
        ]
    );
    let recorded = calls.lock().unwrap().clone();
    // Server-side apply under one field manager.
    for c in recorded.iter().filter(|c| c.method == "PATCH") {
        assert!(
            c.query.contains("fieldManager=alluvium-operator"),
            "{}",
            c.query
        );
        if !c.path.ends_with("/status") {
            assert!(c.query.contains("force=true"), "{}", c.query);
        }
    }
    let status = &find(&recorded, "PATCH", "clusters/demo/status").body["status"];
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["readyMasters"], 1);
    assert_eq!(status["readyWorkers"], 1);
    assert_eq!(status["capacity"], "11.0GiB");
    assert_eq!(status["masterEndpoint"], "demo-master.default.svc:19998");
    assert_eq!(status["conditions"][0]["type"], "Ready");
    assert_eq!(status["conditions"][0]["status"], "True");
    assert_eq!(find(&recorded, "POST", "events").body["reason"], "Running");
    assert_eq!(
        *masters.calls.lock().unwrap(),
        vec!["usage demo-master.default.svc:19998"]
    );
    task.abort();
}

/// A Cluster at rest: the second reconcile (same spec, the status the first one wrote, the
/// objects it applied) reads, and writes nothing at all.
#[tokio::test]
async fn cluster_at_rest_writes_nothing() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[(
        "clusters/demo",
        demo_cluster(),
    )])));
    let context = ctx(client, Arc::new(FakeMasters::default()));
    let c: Cluster = serde_json::from_value(demo_cluster()).unwrap();
    cluster::reconcile(Arc::new(c), context.clone())
        .await
        .unwrap();
    let first = calls.lock().unwrap().clone();
    let mut v = demo_cluster();
    v["status"] = as_stored(&find(&first, "PATCH", "clusters/demo/status").body["status"]);
    calls.lock().unwrap().clear();
    let c: Cluster = serde_json::from_value(v).unwrap();
    cluster::reconcile(Arc::new(c), context).await.unwrap();
    let writes: Vec<String> = shorts(&calls)
        .into_iter()
        .filter(|c| !c.starts_with("GET"))
        .collect();
    assert_eq!(writes, Vec::<String>::new());
    task.abort();
}

/// The cluster secret a Cluster names must exist; the status names it instead of a vague
/// "PodsNotReady", and nothing is built.
#[tokio::test]
async fn a_missing_cluster_secret_is_named_in_status() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[(
        "clusters/demo",
        demo_cluster(),
    )])));
    let mut v = demo_cluster();
    v["spec"]["security"] = json!({"clusterSecretRef": {"name": "nope", "key": "clusterSecret"}});
    let c: Cluster = serde_json::from_value(v).unwrap();
    let action = cluster::reconcile(Arc::new(c), ctx(client, Arc::new(FakeMasters::default())))
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(cluster::INVALID_RETRY));
    let recorded = calls.lock().unwrap().clone();
    assert!(!recorded
        .iter()
        .any(|c| c.method == "PATCH" && !c.path.ends_with("/status")));
    let cond = &find(&recorded, "PATCH", "/status").body["status"]["conditions"][0];
    assert_eq!(cond["reason"], "SecretNotFound");
    assert_eq!(
        cond["message"],
        "security.clusterSecretRef names Secret default/nope, which does not exist"
    );
    task.abort();
}

/// A namespace enforcing Pod Security `baseline` would refuse the workers: the Cluster says so.
#[test]
fn pod_security_baseline_is_named() {
    let r = cluster::pod_security_refusal("data", Some("baseline")).unwrap();
    assert_eq!(r.reason, "PodSecurity");
    assert!(
        r.message
            .contains("kubectl label namespace data pod-security.kubernetes.io/enforce=privileged"),
        "{}",
        r.message
    );
    assert!(cluster::pod_security_refusal("data", Some("privileged")).is_none());
    assert!(cluster::pod_security_refusal("data", None).is_none());
}

/// Without workers.maxMemory, a MEM tier larger than any node can allocate is refused.
#[tokio::test]
async fn a_mem_tier_larger_than_the_nodes_is_refused() {
    let mut v = demo_cluster();
    v["spec"]["workers"]["tiers"] = json!(["huge"]);
    let mut huge = tiers()["mem"].clone();
    huge["metadata"]["name"] = json!("huge");
    huge["spec"]["quota"] = json!("64Ti");
    let mut objs = objects(&[("clusters/demo", demo_cluster())]);
    objs.insert("tiers/huge".into(), huge);
    let (client, calls, task) = fake_api(standard_responder(objs));
    let c: Cluster = serde_json::from_value(v).unwrap();
    cluster::reconcile(Arc::new(c), ctx(client, Arc::new(FakeMasters::default())))
        .await
        .unwrap();
    let recorded = calls.lock().unwrap().clone();
    assert!(!recorded
        .iter()
        .any(|c| c.method == "PATCH" && !c.path.ends_with("/status")));
    let cond = &find(&recorded, "PATCH", "/status").body["status"]["conditions"][0];
    assert_eq!(cond["reason"], "MemoryDoesNotFit");
    assert!(
        cond["message"]
            .as_str()
            .unwrap()
            .contains("can allocate 24Gi"),
        "{cond}"
    );
    task.abort();
}

#[tokio::test]
async fn cluster_update_without_phase_change_publishes_no_event_and_removes_a_disabled_proxy() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[(
        "clusters/demo",
        demo_cluster(),
    )])));
    let context = ctx(client, Arc::new(FakeMasters::default()));
    let mut v = demo_cluster();
    v["status"] = json!({"phase": "Running", "readyMasters": 1, "readyWorkers": 1});
    let c: Cluster = serde_json::from_value(v.clone()).unwrap();
    cluster::reconcile(Arc::new(c), context.clone())
        .await
        .unwrap();
    calls.lock().unwrap().clear();
    v["spec"]["proxy"] = json!({"s3": false, "webhdfs": false});
    let c: Cluster = serde_json::from_value(v.clone()).unwrap();
    cluster::reconcile(Arc::new(c), context.clone())
        .await
        .unwrap();
    let s = shorts(&calls);
    assert!(
        s.contains(&"DELETE /apis/apps/v1/namespaces/default/deployments/demo-proxy".to_string()),
        "{s:?}"
    );
    assert!(
        s.contains(&"DELETE /api/v1/namespaces/default/services/demo-proxy".to_string()),
        "{s:?}"
    );
    assert!(
        !s.iter().any(|c| c.starts_with("POST")),
        "no event when the phase holds: {s:?}"
    );
    // Once gone, a proxy that stays off costs no DELETE on every pass.
    calls.lock().unwrap().clear();
    let c: Cluster = serde_json::from_value(v).unwrap();
    cluster::reconcile(Arc::new(c), context).await.unwrap();
    let s = shorts(&calls);
    assert!(!s.iter().any(|c| c.starts_with("DELETE")), "{s:?}");
    task.abort();
}

#[tokio::test]
async fn invalid_cluster_gets_a_clear_condition_and_no_objects() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[(
        "clusters/demo",
        demo_cluster(),
    )])));
    let mut v = demo_cluster();
    v["spec"]["workers"]["tiers"] = json!(["mem", "nvme"]);
    let c: Cluster = serde_json::from_value(v).unwrap();
    let action = cluster::reconcile(Arc::new(c), ctx(client, Arc::new(FakeMasters::default())))
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(cluster::INVALID_RETRY));
    let recorded = calls.lock().unwrap().clone();
    assert_eq!(
        recorded.iter().map(Call::short).collect::<Vec<_>>(),
        vec![
            "GET /apis/alluvium.io/v1alpha1/tiers/mem",
            "GET /apis/alluvium.io/v1alpha1/tiers/nvme",
            "PATCH /apis/alluvium.io/v1alpha1/namespaces/default/clusters/demo/status",
            "POST /apis/events.k8s.io/v1/namespaces/default/events",
        ]
    );
    let status = &recorded[2].body["status"];
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["conditions"][0]["reason"], "TierNotFound");
    assert_eq!(
        status["conditions"][0]["message"],
        "workers.tiers names Tier 'nvme', which does not exist"
    );
    assert_eq!(recorded[3].body["type"], "Warning");
    task.abort();
}

#[tokio::test]
async fn mem_tier_that_cannot_fit_is_refused() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[(
        "clusters/demo",
        demo_cluster(),
    )])));
    let mut v = demo_cluster();
    v["spec"]["workers"]["maxMemory"] = json!("1Gi");
    let c: Cluster = serde_json::from_value(v).unwrap();
    cluster::reconcile(Arc::new(c), ctx(client, Arc::new(FakeMasters::default())))
        .await
        .unwrap();
    let recorded = calls.lock().unwrap().clone();
    assert!(!recorded
        .iter()
        .any(|c| c.method == "PATCH" && !c.path.ends_with("/status")));
    let cond = &find(&recorded, "PATCH", "/status").body["status"]["conditions"][0];
    assert_eq!(cond["reason"], "MemoryDoesNotFit");
    assert!(
        cond["message"].as_str().unwrap().contains("1536Mi"),
        "{cond}"
    );
    task.abort();
}

fn running_cluster() -> Value {
    let mut c = demo_cluster();
    c["status"] = json!({"phase": "Running", "readyMasters": 1, "readyWorkers": 1});
    c
}

fn datasets_mount() -> Value {
    with_server_fields(example::<Mount>("mount.yaml", "Mount", "datasets"), true)
}

#[tokio::test]
async fn new_mount_gets_the_finalizer_first() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[
        ("clusters/demo", running_cluster()),
        ("mounts/datasets", datasets_mount()),
    ])));
    let m: Mount = serde_json::from_value(datasets_mount()).unwrap();
    let action = mount::reconcile(Arc::new(m), ctx(client, Arc::new(FakeMasters::default())))
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    let recorded = calls.lock().unwrap().clone();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].short(),
        "PATCH /apis/alluvium.io/v1alpha1/namespaces/default/mounts/datasets"
    );
    assert_eq!(
        recorded[0].body["metadata"]["finalizers"],
        json!(["alluvium.io/unmount"])
    );
    // Optimistic concurrency, and the operator's own field manager (not "unknown").
    assert_eq!(recorded[0].body["metadata"]["resourceVersion"], "1");
    assert!(
        recorded[0].query.contains("fieldManager=alluvium-operator"),
        "{}",
        recorded[0].query
    );
    task.abort();
}

#[tokio::test]
async fn mount_with_finalizer_mounts_makes_pvc_and_preloads() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[
        ("clusters/demo", running_cluster()),
        ("mounts/datasets", datasets_mount()),
    ])));
    let mut v = datasets_mount();
    v["metadata"]["finalizers"] = json!(["alluvium.io/unmount"]);
    let m: Mount = serde_json::from_value(v).unwrap();
    let masters = Arc::new(FakeMasters::default());
    let action = mount::reconcile(Arc::new(m), ctx(client, masters.clone()))
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(mount::LOADING_REFRESH));
    assert_eq!(
        shorts(&calls),
        vec![
            "GET /apis/alluvium.io/v1alpha1/namespaces/default/clusters/demo",
            "GET /api/v1/namespaces/default/secrets/demo-cluster-secret",
            "GET /api/v1/namespaces/default/secrets/datasets-s3",
            "GET /api/v1/persistentvolumes/default-datasets",
            "PATCH /api/v1/persistentvolumes/default-datasets",
            "GET /api/v1/namespaces/default/persistentvolumeclaims/datasets",
            "PATCH /api/v1/namespaces/default/persistentvolumeclaims/datasets",
            "GET /apis/batch/v1/namespaces/default/jobs",
            "GET /apis/batch/v1/namespaces/default/jobs/datasets-preload-c4d957a7b8-1",
            "PATCH /apis/batch/v1/namespaces/default/jobs/datasets-preload-c4d957a7b8-1",
            "PATCH /apis/alluvium.io/v1alpha1/namespaces/default/mounts/datasets/status",
            "POST /apis/events.k8s.io/v1/namespaces/default/events",
        ]
    );
    assert_eq!(
        *masters.calls.lock().unwrap(),
        vec![
            "mount demo-master.default.svc:19998 /datasets s3://datasets/ ro=true keys=[\"access_key_id\", \"endpoint\", \"region\", \"secret_access_key\", \"sync_interval\"] changed=true",
            "usage-path /datasets",
        ]
    );
    let recorded = calls.lock().unwrap().clone();
    let status = &find(&recorded, "PATCH", "mounts/datasets/status").body["status"];
    assert_eq!(status["phase"], "Loading");
    assert_eq!(status["mountId"], 7);
    assert_eq!(status["cachedBytes"], 250);
    assert_eq!(status["totalBytes"], 1000);
    assert_eq!(status["claimName"], "datasets");
    assert_eq!(status["preload"]["job"], "datasets-preload-c4d957a7b8-1");
    assert_eq!(status["preload"]["attempts"], 1);
    // The PV names the cluster secret, so the kubelet hands it to the CSI driver.
    let pv = &find(&recorded, "PATCH", "persistentvolumes/default-datasets").body;
    assert_eq!(
        pv["spec"]["csi"]["nodeStageSecretRef"],
        json!({"name": "demo-cluster-secret", "namespace": "default"})
    );
    // Credentials never reach status or events.
    let all = serde_json::to_string(&recorded.iter().map(|c| &c.body).collect::<Vec<_>>()).unwrap();
    assert!(
        !all.contains("minioadmin") && !all.contains("bWluaW9hZG1pbg"),
        "secret leaked"
    );
    task.abort();
}

#[tokio::test]
async fn deleting_a_mount_unmounts_deletes_the_pv_and_drops_the_finalizer() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[
        ("clusters/demo", running_cluster()),
        ("mounts/datasets", datasets_mount()),
    ])));
    let mut v = datasets_mount();
    v["metadata"]["finalizers"] = json!(["alluvium.io/unmount"]);
    v["metadata"]["deletionTimestamp"] = json!(jiff::Timestamp::now().to_string());
    v["status"] = json!({"mountId": 7});
    let m: Mount = serde_json::from_value(v).unwrap();
    let masters = Arc::new(FakeMasters::default());
    mount::reconcile(Arc::new(m), ctx(client, masters.clone()))
        .await
        .unwrap();
    assert_eq!(
        shorts(&calls),
        vec![
            "GET /apis/alluvium.io/v1alpha1/namespaces/default/clusters/demo",
            "GET /api/v1/namespaces/default/secrets/demo-cluster-secret",
            "DELETE /api/v1/persistentvolumes/default-datasets",
            "POST /apis/events.k8s.io/v1/namespaces/default/events",
            "PATCH /apis/alluvium.io/v1alpha1/namespaces/default/mounts/datasets",
        ]
    );
    assert_eq!(
        *masters.calls.lock().unwrap(),
        vec!["unmount demo-master.default.svc:19998 /datasets"]
    );
    let recorded = calls.lock().unwrap().clone();
    assert_eq!(recorded[3].body["reason"], "Unmounted");
    assert_eq!(recorded[4].body["metadata"]["finalizers"], json!([]));
    task.abort();
}

/// A Mount that was never mounted (its cluster never came up) is deleted at once: no master
/// call, no "Unmounted" event for a path never mounted.
#[tokio::test]
async fn deleting_a_never_mounted_mount_completes_without_the_master() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[(
        "mounts/datasets",
        datasets_mount(),
    )])));
    let mut v = datasets_mount();
    v["metadata"]["finalizers"] = json!(["alluvium.io/unmount"]);
    v["metadata"]["deletionTimestamp"] = json!(jiff::Timestamp::now().to_string());
    let m: Mount = serde_json::from_value(v).unwrap();
    let masters = Arc::new(FakeMasters {
        fail_unmount: true,
        ..Default::default()
    });
    mount::reconcile(Arc::new(m), ctx(client, masters.clone()))
        .await
        .unwrap();
    assert!(masters.calls.lock().unwrap().is_empty());
    let recorded = calls.lock().unwrap().clone();
    assert_eq!(
        find(&recorded, "POST", "events").body["reason"],
        "NothingToUnmount"
    );
    assert_eq!(
        find(&recorded, "PATCH", "mounts/datasets").body["metadata"]["finalizers"],
        json!([])
    );
    task.abort();
}

/// A master that cannot unmount keeps the finalizer (status says why) until the deadline;
/// past it the finalizer goes with a Warning event naming the last error. Nothing hangs.
#[tokio::test]
async fn unmount_failures_are_retried_until_the_deadline_then_abandoned() {
    let masters = Arc::new(FakeMasters {
        fail_unmount: true,
        ..Default::default()
    });
    let (client, calls, task) = fake_api(standard_responder(objects(&[
        ("clusters/demo", running_cluster()),
        ("mounts/datasets", datasets_mount()),
    ])));
    let mut v = datasets_mount();
    v["metadata"]["finalizers"] = json!(["alluvium.io/unmount"]);
    v["metadata"]["deletionTimestamp"] = json!(jiff::Timestamp::now().to_string());
    v["status"] = json!({"mountId": 7, "phase": "Mounted"});
    let m: Mount = serde_json::from_value(v.clone()).unwrap();
    let err = mount::reconcile(Arc::new(m), ctx(client.clone(), masters.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
    let recorded = calls.lock().unwrap().clone();
    let status = &find(&recorded, "PATCH", "mounts/datasets/status").body["status"];
    assert_eq!(status["phase"], "Terminating");
    assert_eq!(status["conditions"][0]["reason"], "UnmountFailed");
    assert!(!recorded
        .iter()
        .any(|c| c.method == "PATCH" && c.path.ends_with("mounts/datasets")));

    calls.lock().unwrap().clear();
    let long_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(600);
    v["metadata"]["deletionTimestamp"] = json!(long_ago.to_string());
    let m: Mount = serde_json::from_value(v).unwrap();
    mount::reconcile(Arc::new(m), ctx(client, masters))
        .await
        .unwrap();
    let recorded = calls.lock().unwrap().clone();
    let event = &find(&recorded, "POST", "events").body;
    assert_eq!(event["reason"], "UnmountAbandoned");
    assert_eq!(event["type"], "Warning");
    assert_eq!(
        find(&recorded, "PATCH", "mounts/datasets").body["metadata"]["finalizers"],
        json!([])
    );
    task.abort();
}

/// A Mount at rest (mounted, its objects applied, its status current) writes nothing.
#[tokio::test]
async fn mount_at_rest_writes_nothing() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[
        ("clusters/demo", running_cluster()),
        ("mounts/datasets", datasets_mount()),
    ])));
    let mut v = datasets_mount();
    v["metadata"]["finalizers"] = json!(["alluvium.io/unmount"]);
    v["spec"]["preload"] = json!(false);
    let masters = Arc::new(FakeMasters::default());
    let context = ctx(client, masters.clone());
    let m: Mount = serde_json::from_value(v.clone()).unwrap();
    mount::reconcile(Arc::new(m), context.clone())
        .await
        .unwrap();
    let first = calls.lock().unwrap().clone();
    v["status"] = as_stored(&find(&first, "PATCH", "mounts/datasets/status").body["status"]);
    calls.lock().unwrap().clear();
    masters.calls.lock().unwrap().clear();
    let m: Mount = serde_json::from_value(v).unwrap();
    mount::reconcile(Arc::new(m), context).await.unwrap();
    let writes: Vec<String> = shorts(&calls)
        .into_iter()
        .filter(|c| !c.starts_with("GET"))
        .collect();
    assert_eq!(writes, Vec::<String>::new());
    // Nothing changed: the master is not asked to update the mount.
    assert!(
        masters.calls.lock().unwrap()[0].ends_with("changed=false"),
        "{:?}",
        masters.calls.lock().unwrap()
    );
    task.abort();
}

#[tokio::test]
async fn master_refusing_a_mount_fails_the_status_and_requeues_with_backoff() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[
        ("clusters/demo", running_cluster()),
        ("mounts/datasets", datasets_mount()),
    ])));
    let mut v = datasets_mount();
    v["metadata"]["finalizers"] = json!(["alluvium.io/unmount"]);
    let m = Arc::new(serde_json::from_value::<Mount>(v).unwrap());
    let masters = Arc::new(FakeMasters {
        fail_mount: true,
        ..Default::default()
    });
    let context = ctx(client, masters);
    let err = mount::reconcile(m.clone(), context.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UFS unreachable"), "{err}");
    assert_eq!(
        err.reason(),
        "MasterRefused",
        "the master answered (its UFS is down): not an outage of the master"
    );
    let recorded = calls.lock().unwrap().clone();
    let status = &find(&recorded, "PATCH", "/status").body["status"];
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["conditions"][0]["reason"], "MountFailed");
    assert!(
        !recorded.iter().any(|c| c.path.contains("persistentvolume")),
        "nothing built after a failed mount"
    );
    assert_eq!(
        controller::error_policy(m.clone(), &err, context.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        controller::error_policy(m.clone(), &err, context.clone()),
        Action::requeue(Duration::from_secs(10))
    );
    assert!(context.metrics.encode().contains("MountFailed"));
    task.abort();
}

#[tokio::test]
async fn mount_waits_for_a_missing_cluster() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[(
        "mounts/datasets",
        datasets_mount(),
    )])));
    let mut v = datasets_mount();
    v["metadata"]["finalizers"] = json!(["alluvium.io/unmount"]);
    let m: Mount = serde_json::from_value(v).unwrap();
    let action = mount::reconcile(Arc::new(m), ctx(client, Arc::new(FakeMasters::default())))
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(mount::WAIT_FOR_CLUSTER));
    let recorded = calls.lock().unwrap().clone();
    let status = &find(&recorded, "PATCH", "/status").body["status"];
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["conditions"][0]["reason"], "ClusterNotFound");
    task.abort();
}

#[tokio::test]
async fn tier_status_reports_the_parsed_quota_or_the_reason() {
    let (client, calls, task) = fake_api(standard_responder(objects(&[])));
    let t: Tier = serde_json::from_value(tiers()["mem"].clone()).unwrap();
    tier::reconcile(
        Arc::new(t),
        ctx(client.clone(), Arc::new(FakeMasters::default())),
    )
    .await
    .unwrap();
    let mut bad = tiers()["mem"].clone();
    bad["spec"]["hostPath"] = json!("/mnt/ram");
    let t: Tier = serde_json::from_value(bad).unwrap();
    tier::reconcile(Arc::new(t), ctx(client, Arc::new(FakeMasters::default())))
        .await
        .unwrap();
    let recorded = calls.lock().unwrap().clone();
    let statuses: Vec<&Call> = recorded
        .iter()
        .filter(|c| c.path.ends_with("/status"))
        .collect();
    assert_eq!(statuses[0].body["status"]["phase"], "Ready");
    assert_eq!(statuses[0].body["status"]["quotaBytes"], 1u64 << 30);
    assert_eq!(statuses[1].body["status"]["phase"], "Invalid");
    assert!(statuses[1].body["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .contains("must be under /dev/shm"));
    let events: Vec<&Call> = recorded.iter().filter(|c| c.method == "POST").collect();
    assert_eq!(events.len(), 2);
    assert!(events[0].path.contains("/namespaces/default/events"));
    task.abort();
}
