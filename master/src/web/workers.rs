//! Workers: address, state, last heartbeat, capacity and usage per tier, block count.

use std::sync::Arc;

use alluvium_common::time::now_ms;
use alluvium_webui::chart::usage_bar;
use alluvium_webui::format;
use alluvium_webui::layout::{page, PageOptions};
use alluvium_webui::reply;
use axum::extract::State;
use axum::response::Response;
use maud::html;
use serde::Serialize;

use super::overview::{tiers, Tier};
use super::{Web, NAV};
use crate::server::Shared;

/// One element of `/api/v1/workers`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Worker {
    pub id: u64,
    pub host: String,
    pub rpc_port: u32,
    pub http_port: u32,
    /// `LIVE` or `LOST`.
    pub state: String,
    pub last_heartbeat_ms: i64,
    pub start_time_ms: i64,
    pub block_count: u64,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub tiers: Vec<Tier>,
}

pub(crate) fn gather(s: &Shared) -> Vec<Worker> {
    s.blocks
        .workers()
        .into_iter()
        .map(|w| {
            let a = w.address.unwrap_or_default();
            Worker {
                id: w.id,
                host: a.host,
                rpc_port: a.rpc_port,
                http_port: a.http_port,
                state: w.state,
                last_heartbeat_ms: w.last_heartbeat_ms,
                start_time_ms: w.start_time_ms,
                block_count: w.block_count,
                capacity_bytes: w.capacity_bytes,
                used_bytes: w.used_bytes,
                tiers: tiers(&w.tiers),
            }
        })
        .collect()
}

pub(crate) async fn json(State(w): State<Arc<Web>>) -> Response {
    reply::json(&gather(&w.shared))
}

pub(crate) async fn html(State(w): State<Arc<Web>>) -> Response {
    let list = gather(&w.shared);
    let now = now_ms();
    let body = html! {
        div.panel {
            @if list.is_empty() {
                p.muted { "No worker has registered with this master." }
            } @else {
                table {
                    thead { tr {
                        th.num { "Id" } th { "Address" } th { "State" } th { "Last heartbeat" }
                        th.hide-narrow { "Started" } th { "Tiers" } th.num { "Blocks" }
                    } }
                    tbody {
                        @for wk in &list {
                            tr {
                                td.num { (wk.id) }
                                td.mono {
                                    (wk.host) ":" (wk.rpc_port)
                                    @if wk.http_port > 0 {
                                        br;
                                        a href=(format!("http://{}:{}/", wk.host, wk.http_port)) { "worker UI" }
                                    }
                                }
                                td {
                                    @if wk.state == "LIVE" {
                                        span.badge.ok { (wk.state) }
                                    } @else {
                                        span.badge.bad { (wk.state) }
                                    }
                                }
                                td { (format::ago(wk.last_heartbeat_ms, now)) }
                                td.hide-narrow { (format::timestamp_ms(wk.start_time_ms)) }
                                td {
                                    @for t in &wk.tiers {
                                        div { span.badge { (t.alias) } " " (t.block_count) " blocks" }
                                        (usage_bar(t.used_bytes, t.capacity_bytes))
                                    }
                                }
                                td.num { (wk.block_count) }
                            }
                        }
                    }
                }
            }
        }
        p.muted { a href="/api/v1/workers" { "JSON" } }
    };
    reply::html_page(page(
        &NAV,
        "/workers",
        "Workers",
        PageOptions::default(),
        body,
    ))
}
