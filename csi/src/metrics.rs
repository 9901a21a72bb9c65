//! Prometheus metrics of the plugin (`alluvium_csi_*`) and the optional `/metrics` server.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::{Error, Result};
use axum::http::header;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
    /// gRPC status code name (`OK`, `INVALID_ARGUMENT`, ...).
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationOnly {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `staged` or `published`.
    pub kind: String,
}

pub struct CsiMetrics {
    registry: Registry,
    operations: Family<OperationLabels, Counter>,
    duration: Family<OperationOnly, Histogram>,
    /// Mounts the node service holds now, by kind.
    pub mounts: Family<KindLabels, Gauge>,
    /// Mounts brought back after a restart, by kind.
    pub recovered: Family<KindLabels, Counter>,
    /// Seconds from process start until every recorded mount was back (last recovery).
    pub recovery_seconds: Gauge<f64, AtomicU64>,
}

impl Default for CsiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CsiMetrics {
    pub fn new() -> Self {
        let mut registry = alluvium_common::metrics::new_registry();
        let operations = Family::<OperationLabels, Counter>::default();
        let duration = Family::<OperationOnly, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 18))
        });
        let mounts = Family::<KindLabels, Gauge>::default();
        let recovered = Family::<KindLabels, Counter>::default();
        let recovery_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "csi_operations",
            "CSI calls answered, by operation and gRPC code",
            operations.clone(),
        );
        registry.register(
            "csi_operation_duration_seconds",
            "Time to answer a CSI call, by operation",
            duration.clone(),
        );
        registry.register(
            "csi_mounts",
            "Mounts held by the node service (staged FUSE mounts, published bind mounts)",
            mounts.clone(),
        );
        registry.register(
            "csi_recovered_mounts",
            "Mounts re-established after a plugin restart",
            recovered.clone(),
        );
        registry.register(
            "csi_recovery_seconds",
            "Seconds from plugin start until every recorded mount was back (last recovery)",
            recovery_seconds.clone(),
        );
        Self {
            registry,
            operations,
            duration,
            mounts,
            recovered,
            recovery_seconds,
        }
    }

    pub fn observe(&self, operation: &str, code: tonic::Code, elapsed: Duration) {
        self.operations
            .get_or_create(&OperationLabels {
                operation: operation.into(),
                code: code_name(code).into(),
            })
            .inc();
        self.duration
            .get_or_create(&OperationOnly {
                operation: operation.into(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn set_mounts(&self, staged: usize, published: usize) {
        for (kind, n) in [("staged", staged), ("published", published)] {
            self.mounts
                .get_or_create(&KindLabels { kind: kind.into() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn encode(&self) -> String {
        alluvium_common::metrics::encode_text(&self.registry)
    }

    /// Times a call, counts its outcome, and logs failures (one line with the code).
    pub async fn call<T>(
        &self,
        operation: &'static str,
        fut: impl std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    ) -> std::result::Result<tonic::Response<T>, tonic::Status> {
        let start = std::time::Instant::now();
        let result = fut.await;
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        self.observe(operation, code, start.elapsed());
        match result {
            Ok(v) => {
                tracing::debug!(
                    operation,
                    elapsed_ms = start.elapsed().as_millis() as u64,
                    "csi: ok"
                );
                Ok(tonic::Response::new(v))
            }
            Err(s) => {
                tracing::info!(
                    operation,
                    code = code_name(s.code()),
                    message = s.message(),
                    "csi: call failed"
                );
                Err(s)
            }
        }
    }
}

/// The upper-case gRPC code name, as the CSI spec and logs spell it.
pub fn code_name(c: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match c {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Serves `/metrics` on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<CsiMetrics>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::unavailable(format!("cannot listen on {addr} for /metrics: {e}")))?;
    tracing::info!(%addr, "csi: serving /metrics");
    let app = Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(m): axum::extract::State<Arc<CsiMetrics>>| async move {
                    (
                        [(header::CONTENT_TYPE, alluvium_common::metrics::CONTENT_TYPE)],
                        m.encode(),
                    )
                },
            ),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(metrics);
    axum::serve(listener, app)
        .await
        .map_err(|e| Error::internal(format!("/metrics server on {addr}: {e}")))
}
