//! The worker's HTTP face: `/metrics` (Prometheus), `/api/v1/worker` (JSON status), `/healthz`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::master_client::MasterClient;
use crate::metrics::WorkerMetrics;
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
struct DirJson {
    path: String,
    capacity_bytes: u64,
    used_bytes: u64,
}

#[derive(Serialize)]
struct TierJson {
    alias: String,
    ordinal: u32,
    capacity_bytes: u64,
    used_bytes: u64,
    block_count: u64,
    high_watermark: f64,
    low_watermark: f64,
    dirs: Vec<DirJson>,
}

#[derive(Serialize)]
struct WorkerJson {
    version: &'static str,
    worker_id: Option<u64>,
    host: String,
    rpc_port: u32,
    http_port: u32,
    start_time_ms: i64,
    uptime_ms: i64,
    capacity_bytes: u64,
    used_bytes: u64,
    block_count: u64,
    tiers: Vec<TierJson>,
    recent_evictions: Vec<EvictionRecord>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
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
    Json(WorkerJson {
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
    })
}
