//! Metrics (`alluvium_operator_*`) and the HTTP server for `/metrics`, `/healthz`, `/readyz`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub reason: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<KindLabels, Counter>,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Family<KindLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = alluvium_common::metrics::new_registry();
        let reconciles = Family::<KindLabels, Counter>::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "operator_reconciles",
            "Reconciles run, by resource kind",
            reconciles.clone(),
        );
        registry.register(
            "operator_reconcile_failures",
            "Reconciles that failed, by kind and reason",
            failures.clone(),
        );
        registry.register(
            "operator_reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration,
        }
    }

    pub fn observe(&self, kind: &str, elapsed: Duration) {
        let l = KindLabels { kind: kind.into() };
        self.reconciles.get_or_create(&l).inc();
        self.duration
            .get_or_create(&l)
            .observe(elapsed.as_secs_f64());
    }

    pub fn failed(&self, kind: &str, reason: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                kind: kind.into(),
                reason: reason.into(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        alluvium_common::metrics::encode_text(&self.registry)
    }
}

/// Readiness as the health server reports it.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

pub fn router(metrics: Arc<Metrics>, health: Health) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State((m, _)): State<(Arc<Metrics>, Health)>| async move {
                (
                    [(header::CONTENT_TYPE, alluvium_common::metrics::CONTENT_TYPE)],
                    m.encode(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State((_, h)): State<(Arc<Metrics>, Health)>| async move {
                if h.is_ready() {
                    (StatusCode::OK, "ready").into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
                }
            }),
        )
        .with_state((metrics, health))
}

/// Serves until the task is dropped.
pub async fn serve(port: u16, metrics: Arc<Metrics>, health: Health) -> anyhow::Result<()> {
    let listener = alluvium_common::net::bind("0.0.0.0", port, "the operator's HTTP port").await?;
    tracing::info!(
        port,
        "operator HTTP server listening (/metrics, /healthz, /readyz)"
    );
    axum::serve(listener, router(metrics, health)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_metrics_and_probes() {
        let metrics = Arc::new(Metrics::new());
        metrics.observe("Cluster", Duration::from_millis(3));
        metrics.failed("Mount", "MasterUnavailable");
        let health = Health::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(metrics, health.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let m = get("/metrics").await;
        assert!(
            m.contains("alluvium_operator_reconciles_total{kind=\"Cluster\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("alluvium_operator_reconcile_failures_total"),
            "{m}"
        );
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        health.set_ready(true);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        server.abort();
    }
}
