//! A fake Kubernetes API server for controller tests, on kube's mock-service seam: a
//! `tower_test::mock` service answers each call through a responder and records it, so a test
//! asserts the exact API calls a reconcile makes.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

/// One API call as the fake API server saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Call {
    pub fn short(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

pub type Responder = Arc<dyn Fn(&Call) -> (StatusCode, Value) + Send + Sync>;

/// Starts a fake API server; returns the client and the record of calls.
pub fn fake_api(
    respond: Responder,
) -> (Client, Arc<Mutex<Vec<Call>>>, tokio::task::JoinHandle<()>) {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let rec = calls.clone();
    let task = tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let call = Call {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or("").to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (status, value) = respond(&call);
            rec.lock().unwrap().push(call);
            let resp = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&value).unwrap()))
                .unwrap();
            send.send_response(resp);
        }
    });
    (Client::new(svc, "default"), calls, task)
}

pub fn not_found(what: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
               "message": format!("{what} not found"), "code": 404}),
    )
}
