//! Overview: version, uptime, addresses, workers, capacity per tier, UFS capacity, counts.

use std::sync::Arc;

use alluvium_proto::TierUsage;
use alluvium_webui::chart::usage_bar;
use alluvium_webui::format;
use alluvium_webui::layout::{page, stat, PageOptions};
use alluvium_webui::reply;
use axum::extract::State;
use axum::response::Response;
use maud::html;
use serde::Serialize;

use super::mounts::sanitize_uri;
use super::{Web, NAV};
use crate::server::Shared;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Tier {
    pub alias: String,
    pub ordinal: u32,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub block_count: u64,
}

pub(crate) fn tiers(tiers: &[TierUsage]) -> Vec<Tier> {
    tiers
        .iter()
        .map(|t| Tier {
            alias: t.alias.clone(),
            ordinal: t.ordinal,
            capacity_bytes: t.capacity_bytes,
            used_bytes: t.used_bytes,
            block_count: t.block_count,
        })
        .collect()
}

/// Capacity of one mount's under-storage, where the UFS can tell (local file systems).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UfsCapacity {
    pub mount_path: String,
    pub ufs_uri: String,
    /// `None` when the UFS does not report capacity (object stores, HDFS through WebHDFS).
    pub capacity_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
}

/// `/api/v1/master`. The first fields are those of `GetMasterInfo` (kept for compatibility).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Overview {
    pub version: String,
    pub rpc_address: String,
    pub web_port: u32,
    pub start_time_ms: i64,
    pub uptime_ms: i64,
    pub live_workers: u32,
    pub lost_workers: u32,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub tiers: Vec<Tier>,
    pub file_count: u64,
    pub directory_count: u64,
    pub block_count: u64,
    pub root_ufs: String,
    pub default_block_size: u64,
    pub superuser: String,
    pub ufs: Vec<UfsCapacity>,
}

pub(crate) fn gather(s: &Shared) -> Overview {
    let i = s.master_info();
    let ufs =
        s.ns.mount_table()
            .all()
            .iter()
            .map(|mount| {
                let m = mount.info(false);
                let (capacity_bytes, used_bytes) = match mount.ufs.local_capacity() {
                    Some((cap, free)) => (Some(cap), Some(cap.saturating_sub(free))),
                    None => (None, None),
                };
                UfsCapacity {
                    mount_path: m.path,
                    ufs_uri: sanitize_uri(&m.ufs_uri),
                    capacity_bytes,
                    used_bytes,
                }
            })
            .collect();
    Overview {
        version: i.version,
        rpc_address: i.rpc_address,
        web_port: i.web_port,
        start_time_ms: i.start_time_ms,
        uptime_ms: i.uptime_ms,
        live_workers: i.live_workers,
        lost_workers: i.lost_workers,
        capacity_bytes: i.capacity_bytes,
        used_bytes: i.used_bytes,
        tiers: tiers(&i.tiers),
        file_count: i.file_count,
        directory_count: i.directory_count,
        block_count: i.block_count,
        root_ufs: sanitize_uri(&i.root_ufs),
        default_block_size: i.default_block_size,
        superuser: i.superuser,
        ufs,
    }
}

pub(crate) async fn json(State(w): State<Arc<Web>>) -> Response {
    reply::json(&gather(&w.shared))
}

pub(crate) async fn html(State(w): State<Arc<Web>>) -> Response {
    let o = gather(&w.shared);
    let workers_badge = if o.lost_workers > 0 { "warn" } else { "ok" };
    let body = html! {
        div.stats {
            (stat("Version", html! { (o.version) }))
            (stat("Uptime", html! { (format::duration_ms(o.uptime_ms)) }))
            (stat("Master address", html! { span.mono { (o.rpc_address) } }))
            (stat("Started", html! { (format::timestamp_ms(o.start_time_ms)) }))
            (stat("Workers", html! {
                (o.live_workers) " live"
                @if o.lost_workers > 0 {
                    " " span class=(format!("badge {workers_badge}")) { (o.lost_workers) " lost" }
                }
            }))
            (stat("Files", html! { (o.file_count) }))
            (stat("Directories", html! { (o.directory_count) }))
            (stat("Cached blocks", html! { (o.block_count) }))
            (stat("Block size", html! { (format::bytes(o.default_block_size)) }))
        }
        h2 { "Cache capacity" }
        div.panel {
            table {
                thead { tr { th { "Tier" } th { "Usage" } th.num { "Blocks" } } }
                tbody {
                    @for t in &o.tiers {
                        tr {
                            td { span.badge { (t.alias) } }
                            td { (usage_bar(t.used_bytes, t.capacity_bytes)) }
                            td.num { (t.block_count) }
                        }
                    }
                    tr {
                        td { strong { "Total" } }
                        td { (usage_bar(o.used_bytes, o.capacity_bytes)) }
                        td.num { (o.block_count) }
                    }
                }
            }
            @if o.tiers.is_empty() {
                p.muted { "No live worker reports any tier yet." }
            }
        }
        h2 { "Under storage" }
        div.panel {
            table {
                thead { tr { th { "Mount" } th { "UFS" } th { "Capacity" } } }
                tbody {
                    @for u in &o.ufs {
                        tr {
                            td.mono { a href=(super::browse::link(&u.mount_path)) { (u.mount_path) } }
                            td.mono { (u.ufs_uri) }
                            td {
                                @match (u.used_bytes, u.capacity_bytes) {
                                    (Some(used), Some(cap)) => (usage_bar(used, cap)),
                                    _ => span.muted { "not reported by this UFS" },
                                }
                            }
                        }
                    }
                }
            }
        }
        p.muted {
            "Superuser: " (o.superuser) ". "
            a href="/browse" { "Browse the namespace" } " · "
            a href="/api/v1/master" { "JSON" }
        }
    };
    reply::html_page(page(&NAV, "/", "Overview", PageOptions::default(), body))
}
