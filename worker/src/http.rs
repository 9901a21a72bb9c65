//! The worker's HTTP face: `/` (status page), `/api/v1/worker` (the same data as JSON),
//! `/metrics` (Prometheus), `/healthz`. The page and the JSON share [`gather`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::master_client::MasterClient;
use crate::metrics::{CounterSnapshot, WorkerMetrics};
use crate::store::{BlockStore, EvictionRecord};

#[derive(Clone)]
pub struct HttpState {
    pub store: Arc<BlockStore>,
    pub master: Arc<MasterClient>,
    pub metrics: WorkerMetrics,
    pub registry: Arc<Registry>,
    pub start_time_ms: i64,
}

#[derive(Serialize)]
pub(crate) struct DirJson {
    pub(crate) path: String,
    pub(crate) capacity_bytes: u64,
    pub(crate) used_bytes: u64,
}

#[derive(Serialize)]
pub(crate) struct TierJson {
    pub(crate) alias: String,
    pub(crate) ordinal: u32,
    pub(crate) capacity_bytes: u64,
    pub(crate) used_bytes: u64,
    pub(crate) block_count: u64,
    pub(crate) high_watermark: f64,
    pub(crate) low_watermark: f64,
    pub(crate) dirs: Vec<DirJson>,
}

#[derive(Serialize)]
pub(crate) struct WorkerJson {
    pub(crate) version: &'static str,
    pub(crate) worker_id: Option<u64>,
    pub(crate) host: String,
    pub(crate) rpc_port: u32,
    pub(crate) http_port: u32,
    pub(crate) start_time_ms: i64,
    pub(crate) uptime_ms: i64,
    pub(crate) capacity_bytes: u64,
    pub(crate) used_bytes: u64,
    pub(crate) block_count: u64,
    pub(crate) tiers: Vec<TierJson>,
    pub(crate) recent_evictions: Vec<EvictionRecord>,
    /// Counters since the worker started (bytes read from cache and UFS, evictions, ...).
    pub(crate) counters: CounterSnapshot,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(page))
        .route("/api/v1/worker", get(worker))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Refreshes the per-tier gauges from the store.
fn refresh_gauges(s: &HttpState) {
    for t in s.store.usage() {
        s.metrics
            .set_tier(&t.alias, t.capacity_bytes, t.used_bytes, t.block_count);
    }
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    refresh_gauges(&s);
    (
        [(CONTENT_TYPE, alluvium_common::metrics::CONTENT_TYPE)],
        alluvium_common::metrics::encode_text(&s.registry),
    )
}

async fn worker(State(s): State<HttpState>) -> Json<WorkerJson> {
    Json(gather(&s))
}

async fn page(State(s): State<HttpState>) -> Response {
    alluvium_webui::reply::html_page(crate::web::render(&gather(&s)))
}

/// Everything the status page and `/api/v1/worker` show.
pub(crate) fn gather(s: &HttpState) -> WorkerJson {
    let usage = s.store.usage();
    let dirs = s.store.dir_usage();
    let tiers: Vec<TierJson> = usage
        .iter()
        .zip(s.store.tiers())
        .enumerate()
        .map(|(t, (u, tier))| TierJson {
            alias: u.alias.clone(),
            ordinal: u.ordinal,
            capacity_bytes: u.capacity_bytes,
            used_bytes: u.used_bytes,
            block_count: u.block_count,
            high_watermark: tier.high_watermark,
            low_watermark: tier.low_watermark,
            dirs: tier
                .dirs
                .iter()
                .enumerate()
                .map(|(d, dir)| DirJson {
                    path: dir.path.display().to_string(),
                    capacity_bytes: dir.capacity,
                    used_bytes: dirs[t][d],
                })
                .collect(),
        })
        .collect();
    let addr = s.master.address();
    let counters = s.metrics.snapshot(usage.iter().map(|u| u.alias.as_str()));
    WorkerJson {
        version: alluvium_common::VERSION,
        worker_id: s.master.worker_id(),
        host: addr.host.clone(),
        rpc_port: addr.rpc_port,
        http_port: addr.http_port,
        start_time_ms: s.start_time_ms,
        uptime_ms: alluvium_common::time::now_ms() - s.start_time_ms,
        capacity_bytes: usage.iter().map(|u| u.capacity_bytes).sum(),
        used_bytes: usage.iter().map(|u| u.used_bytes).sum(),
        block_count: usage.iter().map(|u| u.block_count).sum(),
        tiers,
        recent_evictions: s.store.recent_evictions(),
        counters,
    }
}
