//! Leader election against kube's mock-service seam. Single rounds are scripted call by call; the
//! election over time runs against a small fake Lease API (optimistic concurrency on
//! resourceVersion, outages that fail or hang every call) on tokio's paused clock, so minutes of
//! lease timing run in milliseconds and every instant asserted is exact.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alluvium_operator::leader::{LeaseLock, Round, Timing};
use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

type Script = Vec<(&'static str, StatusCode, Value)>;

/// What a scripted API saw: each call's method and path, and its JSON body (Null when empty).
#[derive(Default)]
struct Seen {
    lines: Vec<String>,
    bodies: Vec<Value>,
}

/// Answers calls in order from `script`, checking each method; records what it saw.
fn scripted(script: Script) -> (Client, Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let rec = seen.clone();
    let task = tokio::spawn(async move {
        for (method, status, body) in script {
            let Some((req, send)) = handle.next_request().await else {
                return;
            };
            assert_eq!(req.method().as_str(), method, "{}", req.uri());
            let line = format!("{} {}", req.method(), req.uri().path());
            let bytes = req.into_body().collect_bytes().await.unwrap_or_default();
            {
                let mut rec = rec.lock().unwrap();
                rec.lines.push(line);
                rec.bodies
                    .push(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
            }
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
    let mut lock = LeaseLock::new(client, "sys", "op", "a");
    assert!(lock.try_acquire().await.unwrap());
    assert_eq!(
        seen.lock().unwrap().lines,
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
    let mut lock = LeaseLock::new(client, "sys", "op", "a");
    assert_eq!(lock.round().await.unwrap(), Round::HeldBy("b".into()));
    assert_eq!(
        seen.lock().unwrap().lines.len(),
        1,
        "no write while b holds the lease"
    );
    task.abort();
}

#[tokio::test]
async fn racing_for_a_released_lease_loses_on_conflict() {
    let (client, seen, task) = scripted(vec![
        (
            "GET",
            StatusCode::OK,
            lease("", "2020-01-01T00:00:00.000000Z"),
        ),
        ("PUT", StatusCode::CONFLICT, status(409, "Conflict")),
    ]);
    let mut lock = LeaseLock::new(client, "sys", "op", "a");
    assert_eq!(
        lock.round().await.unwrap(),
        Round::Conflict,
        "someone else won the race"
    );
    assert_eq!(
        seen.lock().unwrap().lines[1],
        "PUT /apis/coordination.k8s.io/v1/namespaces/sys/leases/op"
    );
    task.abort();
}

#[tokio::test]
async fn the_holder_renews() {
    let (client, seen, task) = scripted(vec![
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
    let mut lock = LeaseLock::new(client, "sys", "op", "a");
    let before = jiff::Timestamp::now();
    assert!(lock.try_acquire().await.unwrap());
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.lines[1],
        "PUT /apis/coordination.k8s.io/v1/namespaces/sys/leases/op"
    );
    // The renewal: still a's lease, written against the resourceVersion read (so a concurrent
    // takeover is a conflict, not overwritten), with renewTime moved to now.
    let put = &seen.bodies[1];
    assert_eq!(put["spec"]["holderIdentity"], "a", "{put}");
    assert_eq!(put["metadata"]["resourceVersion"], "5", "{put}");
    let renewed: jiff::Timestamp = put["spec"]["renewTime"]
        .as_str()
        .expect("renewTime set")
        .parse()
        .unwrap();
    assert!(
        renewed >= before - jiff::SignedDuration::from_secs(1),
        "renewTime {renewed} is not now ({before})"
    );
    task.abort();
}

// ---------------------------------------------------------------------------------------------
// The election over time, against a fake Lease API.

/// One call the fake API saw.
#[derive(Debug, Clone)]
struct Call {
    at: Duration,
    client: &'static str,
    method: String,
    body: Value,
    /// The HTTP status answered; 0 for a failed or unanswered call.
    status: u16,
}

/// How the fake API behaves during an outage window.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outage {
    /// Every call fails at once (connection refused).
    Fail,
    /// Every call goes unanswered (a partitioned API server).
    Hang,
}

#[derive(Default)]
struct State {
    lease: Option<Value>,
    version: u64,
    calls: Vec<Call>,
    outages: Vec<(Duration, Duration, Outage)>,
    /// Answer the next PUTs with this status instead of applying them.
    fail_puts: Vec<u16>,
}

/// A Lease API with resourceVersion checks, shared by every client made from it.
#[derive(Clone)]
struct FakeApi {
    start: Instant,
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    fn with_lease(self, spec: Value) -> Self {
        {
            let mut s = self.state.lock().unwrap();
            s.version = 1;
            s.lease = Some(
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "op", "namespace": "sys", "resourceVersion": "1"},
                "spec": spec}),
            );
        }
        self
    }

    fn outage(&self, from_s: u64, to_s: u64, how: Outage) {
        self.state.lock().unwrap().outages.push((
            Duration::from_secs(from_s),
            Duration::from_secs(to_s),
            how,
        ));
    }

    fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    fn writes(&self, who: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.client == who && c.method != "GET")
            .collect()
    }

    fn answer(&self, method: &str, body: &Value) -> (u16, Value) {
        let mut s = self.state.lock().unwrap();
        let stored_rv = s.version.to_string();
        match (method, &s.lease) {
            ("GET", Some(l)) => (200, l.clone()),
            ("GET", None) => (404, status(404, "NotFound")),
            ("POST", Some(_)) => (409, status(409, "AlreadyExists")),
            ("PUT", _) if !s.fail_puts.is_empty() => {
                let code = s.fail_puts.remove(0);
                (code, status(code, "Injected"))
            }
            ("PUT", Some(_)) if body["metadata"]["resourceVersion"] != json!(stored_rv) => {
                (409, status(409, "Conflict"))
            }
            ("POST", None) | ("PUT", Some(_)) => {
                s.version += 1;
                let mut l = body.clone();
                l["metadata"]["resourceVersion"] = json!(s.version.to_string());
                l["metadata"]["namespace"] = json!("sys");
                s.lease = Some(l.clone());
                (if method == "POST" { 201 } else { 200 }, l)
            }
            _ => (404, status(404, "NotFound")),
        }
    }

    /// A client whose calls this fake answers, recorded under `who`.
    fn client(&self, who: &'static str) -> Client {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = self.clone();
        tokio::spawn(async move {
            let mut unanswered = Vec::new();
            while let Some((req, send)) = handle.next_request().await {
                let at = fake.start.elapsed();
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let method = parts.method.to_string();
                let outage = fake
                    .state
                    .lock()
                    .unwrap()
                    .outages
                    .iter()
                    .find(|(from, to, _)| *from <= at && at < *to)
                    .map(|o| o.2);
                let mut call = Call {
                    at,
                    client: who,
                    method: method.clone(),
                    body: body.clone(),
                    status: 0,
                };
                match outage {
                    Some(Outage::Fail) => send.send_error("connection refused"),
                    Some(Outage::Hang) => unanswered.push(send),
                    None => {
                        let (code, value) = fake.answer(&method, &body);
                        call.status = code;
                        send.send_response(
                            Response::builder()
                                .status(code)
                                .body(Body::from(serde_json::to_vec(&value).unwrap()))
                                .unwrap(),
                        );
                    }
                }
                fake.state.lock().unwrap().calls.push(call);
            }
        });
        Client::new(svc, "default")
    }
}

/// A running elector: its leadership over time, and the switch that stops it.
struct Elector {
    history: Arc<Mutex<Vec<(Duration, bool)>>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Elector {
    fn start(fake: &FakeApi, who: &'static str) -> Self {
        let lock = LeaseLock::with_timing(fake.client(who), "sys", "op", who, Timing::default());
        let (tx, mut rx) = watch::channel(false);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let history = Arc::new(Mutex::new(Vec::new()));
        let rec = history.clone();
        let start = fake.start;
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let v = *rx.borrow_and_update();
                let mut h = rec.lock().unwrap();
                // Changes only, from the channel's initial `false`.
                if h.last().is_some_and(|(_, last)| *last) != v {
                    h.push((start.elapsed(), v));
                }
            }
        });
        let task = tokio::spawn(lock.run(tx, async move {
            let _ = stop_rx.await;
        }));
        Self {
            history,
            stop: Some(stop),
            task,
        }
    }

    /// (when, leading) at each change of leadership.
    fn changes(&self) -> Vec<(Duration, bool)> {
        self.history.lock().unwrap().clone()
    }

    async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.unwrap();
        // Let the recorder see the last value (the clock does not move meanwhile).
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test(start_paused = true)]
async fn a_leader_keeps_leading_while_renewals_fail_for_less_than_the_renew_deadline() {
    let fake = FakeApi::new();
    // An 8 s API server blip: with client-go's timing (renew deadline 10 s) no loss.
    fake.outage(3, 11, Outage::Fail);
    let mut a = Elector::start(&fake, "a");
    tokio::time::sleep(secs(20)).await;
    a.stop().await;
    assert_eq!(
        a.changes(),
        [(secs(0), true), (secs(20), false)],
        "a led from the start until it was stopped"
    );
    let failed = fake
        .calls()
        .iter()
        .filter(|c| c.status == 0 && c.at < secs(11))
        .count();
    assert!(failed >= 3, "renewals failed during the blip: {failed}");
    // The renewals after the blip: a's own, with the resourceVersion read, acquireTime kept and
    // renewTime moving on.
    let puts: Vec<Call> = fake
        .writes("a")
        .into_iter()
        .filter(|c| c.method == "PUT" && c.at > secs(11) && c.at < secs(20))
        .collect();
    assert!(!puts.is_empty(), "a renewed after the blip");
    let first_put = fake.writes("a")[1].clone();
    for p in &puts {
        assert_eq!(p.status, 200);
        assert_eq!(p.body["spec"]["holderIdentity"], "a");
        assert_eq!(p.body["spec"]["leaseDurationSeconds"], 15);
        assert!(p.body["metadata"]["resourceVersion"].is_string());
        assert_eq!(
            p.body["spec"]["acquireTime"],
            first_put.body["spec"]["acquireTime"]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_leader_steps_down_only_once_the_renew_deadline_has_passed() {
    let fake = FakeApi::new();
    // From 3 s on the API server answers nothing at all: calls hang, they do not fail.
    fake.outage(3, 3600, Outage::Hang);
    let mut a = Elector::start(&fake, "a");
    tokio::time::sleep(secs(30)).await;
    let changes = a.changes();
    // Renewed at 0 s and 2 s; the renewal at 4 s hangs: renewals have failed since 4 s, and
    // the leader gives up 10 s (the renew deadline) later, below the 15 s lease.
    assert_eq!(
        changes,
        [(secs(0), true), (secs(14), false)],
        "stepped down when renewals had failed for the renew deadline, not before"
    );
    a.stop().await;
    assert!(
        fake.writes("a").iter().all(|c| c.at < secs(3)),
        "nothing written once the server was gone"
    );
}

#[tokio::test(start_paused = true)]
async fn a_follower_takes_over_after_a_full_lease_by_its_own_clock_and_only_by_a_write() {
    // Held by b, whose renewTime looks ancient to us (clocks differ): only our own clock counts.
    let fake = FakeApi::new().with_lease(json!({
        "holderIdentity": "b", "leaseDurationSeconds": 15,
        "renewTime": "2020-01-01T00:00:00.000000Z", "leaseTransitions": 3}));
    // The first takeover write fails: that is no leadership.
    fake.state.lock().unwrap().fail_puts.push(500);
    let mut a = Elector::start(&fake, "a");
    tokio::time::sleep(secs(25)).await;
    a.stop().await;
    let writes = fake.writes("a");
    assert_eq!(
        writes.first().map(|c| (c.at, c.status)),
        Some((secs(16), 500)),
        "no write before the record stood unchanged for 15 s by a's clock: {writes:?}"
    );
    assert_eq!(
        a.changes(),
        [(secs(18), true), (secs(25), false)],
        "leading only after the write at 18 s succeeded"
    );
    let takeover = &writes[1];
    assert_eq!(takeover.body["spec"]["holderIdentity"], "a");
    assert_eq!(takeover.body["spec"]["leaseTransitions"], 4);
    assert_eq!(takeover.body["metadata"]["resourceVersion"], "1");
}

#[tokio::test(start_paused = true)]
async fn the_leader_releases_the_lease_on_shutdown_so_a_standby_takes_over_at_once() {
    let fake = FakeApi::new();
    let mut a = Elector::start(&fake, "a");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut b = Elector::start(&fake, "b");
    tokio::time::sleep(secs(6)).await;
    assert_eq!(a.changes(), [(secs(0), true)]);
    assert!(b.changes().is_empty(), "b waits while a holds the lease");

    let stopped_at = fake.start.elapsed();
    a.stop().await;
    let release = fake.writes("a").last().cloned().unwrap();
    assert_eq!(release.at, stopped_at);
    assert_eq!(release.method, "PUT");
    assert_eq!(
        release.status, 200,
        "released with a current resourceVersion"
    );
    assert!(release.body["metadata"]["resourceVersion"].is_string());
    assert!(release.body["spec"]["holderIdentity"].is_null());
    assert_eq!(release.body["spec"]["leaseDurationSeconds"], 1);
    assert_eq!(a.changes().last(), Some(&(stopped_at, false)));

    tokio::time::sleep(secs(3)).await;
    let b_changes = b.changes();
    assert_eq!(b_changes.len(), 1, "{b_changes:?}");
    assert!(
        b_changes[0].1 && b_changes[0].0 <= stopped_at + secs(2),
        "b took over within one retry period of the release, not a lease later: {b_changes:?}"
    );
    b.stop().await;
}
