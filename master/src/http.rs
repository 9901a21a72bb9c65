//! The master's HTTP server on the web port: the web UI and its JSON REST API ([`crate::web`]),
//! Prometheus metrics at `/metrics`, and `/healthz`.

use std::sync::Arc;

use alluvium_common::Config;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::server::Shared;

/// The web port's routes, and the web UI's background sampler (which stops with `stop`).
pub(crate) fn start(
    shared: Arc<Shared>,
    config: &Config,
    stop: watch::Receiver<bool>,
) -> (Router, JoinHandle<()>) {
    let (web, sampler) = crate::web::start(shared.clone(), config, stop);
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(shared)
        .merge(web);
    (router, sampler)
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    s.refresh_gauges();
    let c = s.blocks.capacity();
    s.metrics.set_tiers(&c.tiers);
    s.metrics.blocks.set(c.block_count as i64);
    s.metrics
        .uptime_seconds
        .set((alluvium_common::time::now_ms() - s.start_time_ms) / 1000);
    (
        [(header::CONTENT_TYPE, alluvium_common::metrics::CONTENT_TYPE)],
        s.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}
