//! The master's HTTP endpoints on the web port: Prometheus metrics, JSON status, health.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::server::Shared;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/master", get(master))
        .route("/api/v1/workers", get(workers))
        .route("/api/v1/mounts", get(mounts))
        .route("/healthz", get(healthz))
        .with_state(shared)
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    s.refresh_gauges();
    (
        [(header::CONTENT_TYPE, alluvium_common::metrics::CONTENT_TYPE)],
        s.metrics.encode(),
    )
        .into_response()
}

fn tiers_json(tiers: &[alluvium_proto::TierUsage]) -> Value {
    tiers
        .iter()
        .map(|t| {
            json!({
                "alias": t.alias,
                "ordinal": t.ordinal,
                "capacityBytes": t.capacity_bytes,
                "usedBytes": t.used_bytes,
                "blockCount": t.block_count,
            })
        })
        .collect()
}

async fn master(State(s): State<Arc<Shared>>) -> Json<Value> {
    let i = s.master_info();
    Json(json!({
        "version": i.version,
        "rpcAddress": i.rpc_address,
        "webPort": i.web_port,
        "startTimeMs": i.start_time_ms,
        "uptimeMs": i.uptime_ms,
        "liveWorkers": i.live_workers,
        "lostWorkers": i.lost_workers,
        "capacityBytes": i.capacity_bytes,
        "usedBytes": i.used_bytes,
        "tiers": tiers_json(&i.tiers),
        "fileCount": i.file_count,
        "directoryCount": i.directory_count,
        "blockCount": i.block_count,
        "rootUfs": i.root_ufs,
        "defaultBlockSize": i.default_block_size,
        "superuser": i.superuser,
    }))
}

async fn workers(State(s): State<Arc<Shared>>) -> Json<Value> {
    let list: Vec<Value> = s
        .blocks
        .workers()
        .into_iter()
        .map(|w| {
            let a = w.address.unwrap_or_default();
            json!({
                "id": w.id,
                "host": a.host,
                "rpcPort": a.rpc_port,
                "httpPort": a.http_port,
                "state": w.state,
                "lastHeartbeatMs": w.last_heartbeat_ms,
                "startTimeMs": w.start_time_ms,
                "blockCount": w.block_count,
                "capacityBytes": w.capacity_bytes,
                "usedBytes": w.used_bytes,
                "tiers": tiers_json(&w.tiers),
            })
        })
        .collect();
    Json(Value::Array(list))
}

async fn mounts(State(s): State<Arc<Shared>>) -> Json<Value> {
    let list: Vec<Value> =
        s.ns.mount_infos()
            .into_iter()
            .map(|m| {
                json!({
                    "mountId": m.mount_id,
                    "path": m.path,
                    "ufsUri": m.ufs_uri,
                    "readOnly": m.read_only,
                    "options": m.options.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                    "syncIntervalMs": m.sync_interval_ms,
                    "mountedAtMs": m.mounted_at_ms,
                    "shared": m.shared,
                })
            })
            .collect();
    Json(Value::Array(list))
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}
