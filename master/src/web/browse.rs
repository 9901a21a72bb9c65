//! Browse: walk the namespace page by page; per file its attributes, blocks with their workers
//! and tiers, and the first KiB of its content.

use std::sync::Arc;

use alluvium_common::{path, Error, Result};
use alluvium_proto::{FileInfo, PersistenceState, TtlAction};
use alluvium_webui::format;
use alluvium_webui::layout::{page, PageOptions};
use alluvium_webui::reply;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::mounts::sanitize_uri;
use super::preview::{self, Preview};
use super::Web;
use crate::permission::Access;

/// Entries per page unless `limit` says otherwise, and the most a page may hold.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

#[derive(Deserialize, Default)]
pub(crate) struct BrowseQuery {
    pub path: Option<String>,
    /// Show entries after this name (the `nextAfter` of the previous page).
    pub after: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Entry {
    pub path: String,
    pub name: String,
    pub is_folder: bool,
    pub length: u64,
    pub block_size: u64,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    pub mode_string: String,
    pub completed: bool,
    pub persisted: bool,
    pub persistence_state: String,
    pub pinned: bool,
    pub ttl_ms: Option<i64>,
    pub ttl_action: Option<String>,
    pub in_memory_percentage: u32,
    pub in_alluvium_percentage: u32,
    pub creation_time_ms: i64,
    pub last_modification_time_ms: i64,
    pub child_count: u64,
    pub mount_point: bool,
    pub ufs_uri: String,
}

impl Entry {
    fn from(f: &FileInfo) -> Self {
        let persistence = PersistenceState::try_from(f.persistence_state)
            .unwrap_or(PersistenceState::Unspecified);
        Entry {
            path: f.path.clone(),
            name: if f.path == "/" {
                "/".into()
            } else {
                f.name.clone()
            },
            is_folder: f.is_folder,
            length: f.length,
            block_size: f.block_size,
            owner: f.owner.clone(),
            group: f.group.clone(),
            mode: f.mode,
            mode_string: format::mode(f.mode, f.is_folder),
            completed: f.completed,
            persisted: f.persisted,
            persistence_state: persistence
                .as_str_name()
                .trim_start_matches("PERSISTENCE_STATE_")
                .to_string(),
            pinned: f.pinned,
            ttl_ms: f.ttl_ms,
            ttl_action: f.ttl_ms.map(|_| {
                TtlAction::try_from(f.ttl_action)
                    .unwrap_or(TtlAction::Unspecified)
                    .as_str_name()
                    .trim_start_matches("TTL_ACTION_")
                    .to_string()
            }),
            in_memory_percentage: f.in_memory_percentage,
            in_alluvium_percentage: f.in_alluvium_percentage,
            creation_time_ms: f.creation_time_ms,
            last_modification_time_ms: f.last_modification_time_ms,
            child_count: f.child_count,
            mount_point: f.mount_point,
            ufs_uri: sanitize_uri(&f.ufs_uri),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Location {
    pub worker_id: u64,
    pub host: String,
    pub rpc_port: u32,
    pub tier: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Block {
    pub block_id: u64,
    pub offset: u64,
    pub length: u64,
    /// Empty when no worker caches the block.
    pub locations: Vec<Location>,
}

/// `/api/v1/browse`: a directory with one page of its entries, or a file with its blocks and
/// the first KiB of its content.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Browse {
    pub path: String,
    pub entry: Entry,
    /// Directories: this page of entries, in name order.
    pub children: Option<Vec<Entry>>,
    /// Directories: the `after` of the next page, when there is one.
    pub next_after: Option<String>,
    pub after: Option<String>,
    pub limit: u32,
    /// Files: every block, with where it is cached.
    pub blocks: Option<Vec<Block>>,
    /// Files: the first bytes of the content.
    pub preview: Option<Preview>,
}

pub(crate) async fn gather(w: &Web, q: BrowseQuery) -> Result<Browse> {
    let p = path::normalize(q.path.as_deref().unwrap_or("/"))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let ns = &w.shared.ns;
    let checker = ns.checker(Web::caller());
    let info = ns.get_status(&checker, &p, true).await?;
    let after = q.after.filter(|a| !a.is_empty());
    if info.is_folder {
        // One more than a page tells whether another page follows.
        let mut rx = ns
            .list_status(
                &checker,
                &p,
                false,
                after.as_deref().unwrap_or(""),
                limit as u64 + 1,
                limit + 1,
            )
            .await?;
        let mut children = Vec::new();
        while let Some(page) = rx.recv().await {
            children.extend(page?.iter().map(Entry::from));
        }
        let next_after = if children.len() > limit as usize {
            children.truncate(limit as usize);
            children.last().map(|e| e.name.clone())
        } else {
            None
        };
        return Ok(Browse {
            path: p,
            entry: Entry::from(&info),
            children: Some(children),
            next_after,
            after,
            limit,
            blocks: None,
            preview: None,
        });
    }
    // Content needs read permission on the file itself (stat only needs traversal).
    let walk = crate::namespace::walk(&*ns.store, &p)?;
    if !walk.found() {
        return Err(Error::not_found(format!("{p} does not exist")));
    }
    checker.check(walk.last(), &p, Access::Read)?;
    let preview = preview::read(w, &info).await;
    let blocks = info
        .blocks
        .iter()
        .map(|b| Block {
            block_id: b.block_id,
            offset: b.offset,
            length: b.length,
            locations: b
                .locations
                .iter()
                .map(|l| {
                    let a = l.address.clone().unwrap_or_default();
                    Location {
                        worker_id: l.worker_id,
                        host: a.host,
                        rpc_port: a.rpc_port,
                        tier: l.tier.clone(),
                    }
                })
                .collect(),
        })
        .collect();
    Ok(Browse {
        path: p,
        entry: Entry::from(&info),
        children: None,
        next_after: None,
        after: None,
        limit,
        blocks: Some(blocks),
        preview: Some(preview),
    })
}

pub(crate) async fn json(State(w): State<Arc<Web>>, Query(q): Query<BrowseQuery>) -> Response {
    match gather(&w, q).await {
        Ok(b) => reply::json(&b),
        Err(e) => super::json_error(&e),
    }
}

pub(crate) async fn html(State(w): State<Arc<Web>>, Query(q): Query<BrowseQuery>) -> Response {
    match gather(&w, q).await {
        Ok(b) => reply::html_page(render(&b)),
        Err(e) => super::html_error("/browse", &e),
    }
}

/// The Browse page of `path`.
pub(crate) fn link(path: &str) -> String {
    format!("/browse?path={}", encode(path))
}

fn link_after(path: &str, after: &str, limit: u32) -> String {
    let mut l = format!("{}&after={}", link(path), encode(after));
    if limit != DEFAULT_LIMIT {
        l.push_str(&format!("&limit={limit}"));
    }
    l
}

/// Percent-encodes a query value (keeps unreserved characters and `/` readable).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn crumbs(p: &str) -> Markup {
    let comps: Vec<&str> = path::components(p).collect();
    html! {
        div.crumbs {
            a href=(link("/")) { "/" }
            @for (i, c) in comps.iter().enumerate() {
                @let here = format!("/{}", comps[..=i].join("/"));
                @if i + 1 == comps.len() {
                    span { strong { (c) } }
                } @else {
                    a href=(link(&here)) { (c) } span { "/" }
                }
            }
        }
    }
}

fn render(b: &Browse) -> Markup {
    let e = &b.entry;
    let body = html! {
        (crumbs(&b.path))
        @if let Some(children) = &b.children {
            div.panel {
                table.listing {
                    thead { tr {
                        th { "Name" } th.num { "Size" } th.hide-narrow { "Mode" }
                        th.hide-narrow { "Owner" } th.hide-narrow { "Group" }
                        th.num { "In memory" } th { "Persisted" } th.hide-narrow { "Modified" }
                    } }
                    tbody {
                        @for c in children {
                            tr {
                                td.mono {
                                    a href=(link(&c.path)) { (c.name) @if c.is_folder { "/" } }
                                    @if c.mount_point { " " span.badge { "mount" } }
                                    @if c.pinned { " " span.badge.warn { "pinned" } }
                                }
                                td.num { @if c.is_folder { (c.child_count) " entries" } @else { (format::bytes(c.length)) } }
                                td.mono.hide-narrow { (c.mode_string) }
                                td.hide-narrow { (c.owner) }
                                td.hide-narrow { (c.group) }
                                td.num { @if c.is_folder { "" } @else { (c.in_memory_percentage) "%" } }
                                td { (persisted_badge(c)) }
                                td.hide-narrow { (format::timestamp_ms(c.last_modification_time_ms)) }
                            }
                        }
                    }
                }
                @if children.is_empty() {
                    p.muted { "Empty directory." }
                }
                div.pager {
                    span.muted {
                        (e.child_count) " entries"
                        @if b.after.is_some() { ", showing those after " code { (b.after.as_deref().unwrap_or_default()) } }
                    }
                    @if b.after.is_some() {
                        a.button href=(link(&b.path)) { "First page" }
                    }
                    @if let Some(next) = &b.next_after {
                        a.button rel="next" href=(link_after(&b.path, next, b.limit)) { "Next page" }
                    }
                }
            }
        } @else {
            div.panel {
                dl.props {
                    dt { "Size" } dd { (format::bytes(e.length)) " (" (e.length) " bytes)" }
                    dt { "Block size" } dd { (format::bytes(e.block_size)) }
                    dt { "Owner / group" } dd { (e.owner) " / " (e.group) }
                    dt { "Mode" } dd.mono { (e.mode_string) " (" (format!("{:04o}", e.mode)) ")" }
                    dt { "Persisted" } dd { (persisted_badge(e)) }
                    dt { "Pinned" } dd { @if e.pinned { span.badge.warn { "pinned" } } @else { "no" } }
                    dt { "TTL" } dd {
                        @match e.ttl_ms {
                            Some(ttl) => { (format::duration_ms(ttl)) " then " (e.ttl_action.as_deref().unwrap_or("DELETE").to_lowercase()) },
                            None => "none",
                        }
                    }
                    dt { "In memory" } dd { (e.in_memory_percentage) "%" }
                    dt { "In Alluvium" } dd { (e.in_alluvium_percentage) "%" }
                    dt { "Completed" } dd { @if e.completed { "yes" } @else { span.badge.warn { "being written" } } }
                    dt { "Created" } dd { (format::timestamp_ms(e.creation_time_ms)) }
                    dt { "Modified" } dd { (format::timestamp_ms(e.last_modification_time_ms)) }
                    dt { "UFS" } dd.mono { (e.ufs_uri) }
                }
            }
            h2 { "Blocks" }
            div.panel {
                @let blocks = b.blocks.as_deref().unwrap_or_default();
                @if blocks.is_empty() {
                    p.muted { "No blocks (empty file)." }
                } @else {
                    table.blocks {
                        thead { tr { th.num { "Block id" } th.num { "Offset" } th.num { "Length" } th { "Cached on" } } }
                        tbody {
                            @for blk in blocks {
                                tr {
                                    td.num.mono { (blk.block_id) }
                                    td.num { (format::bytes(blk.offset)) }
                                    td.num { (format::bytes(blk.length)) }
                                    td {
                                        @if blk.locations.is_empty() { span.muted { "not cached" } }
                                        @for l in &blk.locations {
                                            div {
                                                "worker " (l.worker_id) " "
                                                span.mono { "(" (l.host) ":" (l.rpc_port) ")" } " "
                                                span.badge { (l.tier) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(p) = &b.preview {
                h2 { "Content" }
                div.panel { (preview::render(p)) }
            }
        }
        p.muted { a href=(format!("/api/v1/browse?path={}", encode(&b.path))) { "JSON" } }
    };
    let title = if b.path == "/" {
        "Browse".to_string()
    } else {
        format!("Browse {}", e.name)
    };
    page(&super::NAV, "/browse", &title, PageOptions::default(), body)
}

fn persisted_badge(e: &Entry) -> Markup {
    html! {
        @match e.persistence_state.as_str() {
            "PERSISTED" => span.badge.ok { "persisted" },
            "TO_BE_PERSISTED" => span.badge.warn { "persisting" },
            _ => span.badge { "cache only" },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_names() {
        assert_eq!(link("/a b/c&d"), "/browse?path=/a%20b/c%26d");
        assert_eq!(encode("é"), "%C3%A9");
    }
}
