//! Leader election against kube's mock-service seam: the Lease calls of each round.

use std::sync::{Arc, Mutex};

use alluvium_operator::leader::LeaseLock;
use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

type Script = Vec<(&'static str, StatusCode, Value)>;

/// Answers calls in order from `script`, checking each method; returns the paths seen.
fn scripted(script: Script) -> (Client, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    let task = tokio::spawn(async move {
        for (method, status, body) in script {
            let Some((req, send)) = handle.next_request().await else {
                return;
            };
            assert_eq!(req.method().as_str(), method, "{}", req.uri());
            rec.lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri().path()));
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        }
    });
    (Client::new(svc, "default"), seen, task)
}

fn lease(holder: &str, renew: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "op", "namespace": "sys", "resourceVersion": "5"},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renew}})
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
           "message": reason, "code": code})
}

#[tokio::test]
async fn first_replica_creates_the_lease_and_leads() {
    let (client, seen, task) = scripted(vec![
        ("GET", StatusCode::NOT_FOUND, status(404, "NotFound")),
        (
            "POST",
            StatusCode::CREATED,
            lease("a", "2026-01-01T00:00:00.000000Z"),
        ),
    ]);
    let lock = LeaseLock::new(client, "sys", "op", "a");
    assert!(lock.try_acquire().await.unwrap());
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            "GET /apis/coordination.k8s.io/v1/namespaces/sys/leases/op",
            "POST /apis/coordination.k8s.io/v1/namespaces/sys/leases",
        ]
    );
    task.abort();
}

#[tokio::test]
async fn a_fresh_lease_held_by_another_replica_means_wait() {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string();
    let (client, seen, task) = scripted(vec![("GET", StatusCode::OK, lease("b", &now))]);
    let lock = LeaseLock::new(client, "sys", "op", "a");
    assert!(!lock.try_acquire().await.unwrap());
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "no write while b holds the lease"
    );
    task.abort();
}

#[tokio::test]
async fn racing_for_an_expired_lease_loses_on_conflict() {
    let (client, seen, task) = scripted(vec![
        (
            "GET",
            StatusCode::OK,
            lease("b", "2020-01-01T00:00:00.000000Z"),
        ),
        ("PUT", StatusCode::CONFLICT, status(409, "Conflict")),
    ]);
    let lock = LeaseLock::new(client, "sys", "op", "a");
    assert!(
        !lock.try_acquire().await.unwrap(),
        "someone else won the race"
    );
    assert_eq!(
        seen.lock().unwrap()[1],
        "PUT /apis/coordination.k8s.io/v1/namespaces/sys/leases/op"
    );
    task.abort();
}

#[tokio::test]
async fn the_holder_renews() {
    let (client, _seen, task) = scripted(vec![
        (
            "GET",
            StatusCode::OK,
            lease("a", "2020-01-01T00:00:00.000000Z"),
        ),
        (
            "PUT",
            StatusCode::OK,
            lease("a", "2026-01-01T00:00:00.000000Z"),
        ),
    ]);
    let lock = LeaseLock::new(client, "sys", "op", "a");
    assert!(lock.try_acquire().await.unwrap());
    task.abort();
}
