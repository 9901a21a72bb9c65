//! Mounts: path, UFS URI (credentials removed), read-only, options (secrets redacted), sync.

use std::collections::BTreeMap;
use std::sync::Arc;

use alluvium_common::time::now_ms;
use alluvium_ufs::{is_secret_option, REDACTED};
use alluvium_webui::format;
use alluvium_webui::layout::{page, PageOptions};
use alluvium_webui::reply;
use axum::extract::State;
use axum::response::Response;
use maud::html;
use serde::Serialize;

use super::{Web, NAV};
use crate::server::Shared;

/// One element of `/api/v1/mounts`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Mount {
    pub mount_id: u64,
    pub path: String,
    /// Without user info or secret query parameters.
    pub ufs_uri: String,
    pub read_only: bool,
    /// Secret values replaced by `******`.
    pub options: BTreeMap<String, String>,
    pub sync_interval_ms: i64,
    pub mounted_at_ms: i64,
    pub shared: bool,
    /// When the mount point's listing was last synced with the UFS; `None` if never.
    pub last_sync_ms: Option<i64>,
}

pub(crate) fn gather(s: &Shared) -> Vec<Mount> {
    s.ns.mount_infos()
        .into_iter()
        .map(|m| {
            let last_sync_ms = crate::namespace::walk(&*s.ns.store, &m.path)
                .ok()
                .filter(|w| w.found())
                .map(|w| w.last().last_sync_ms)
                .filter(|&t| t > 0);
            Mount {
                mount_id: m.mount_id,
                path: m.path,
                ufs_uri: sanitize_uri(&m.ufs_uri),
                read_only: m.read_only,
                // `mount_infos` redacts already; redacting again guards against a change there.
                options: m
                    .options
                    .into_iter()
                    .map(|(k, v)| {
                        let v = if is_secret_option(&k) {
                            REDACTED.to_string()
                        } else {
                            v
                        };
                        (k, v)
                    })
                    .collect(),
                sync_interval_ms: m.sync_interval_ms,
                mounted_at_ms: m.mounted_at_ms,
                shared: m.shared,
                last_sync_ms,
            }
        })
        .collect()
}

/// A URI fit to show: user info (`user:password@`) becomes `******@` and the values of secret
/// query parameters become `******`.
pub(crate) fn sanitize_uri(uri: &str) -> String {
    let (main, query) = match uri.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (uri, None),
    };
    let mut out = match main.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((_, host)) => format!("{REDACTED}@{host}"),
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => main.to_string(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_option(k) => format!("{k}={REDACTED}"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

pub(crate) async fn json(State(w): State<Arc<Web>>) -> Response {
    reply::json(&gather(&w.shared))
}

pub(crate) async fn html(State(w): State<Arc<Web>>) -> Response {
    let list = gather(&w.shared);
    let now = now_ms();
    let body = html! {
        div.panel {
            table {
                thead { tr {
                    th { "Path" } th { "UFS" } th { "Access" } th { "Options" }
                    th { "Sync interval" } th { "Last sync" } th.hide-narrow { "Mounted" }
                } }
                tbody {
                    @for m in &list {
                        tr {
                            td.mono { a href=(super::browse::link(&m.path)) { (m.path) } }
                            td.mono { (m.ufs_uri) }
                            td {
                                @if m.read_only { span.badge.warn { "read-only" } }
                                @else { span.badge.ok { "read-write" } }
                                @if m.shared { " " span.badge { "shared" } }
                            }
                            td.mono {
                                @if m.options.is_empty() { span.muted { "none" } }
                                @for (k, v) in &m.options {
                                    div { (k) "=" (v) }
                                }
                            }
                            td {
                                @if m.sync_interval_ms == 0 { "every access" }
                                @else { (format::duration_ms(m.sync_interval_ms)) }
                            }
                            td {
                                @match m.last_sync_ms {
                                    Some(t) => (format::ago(t, now)),
                                    None => span.muted { "never" },
                                }
                            }
                            td.hide-narrow { (format::timestamp_ms(m.mounted_at_ms)) }
                        }
                    }
                }
            }
        }
        p.muted { "Credentials and secret options are never shown. " a href="/api/v1/mounts" { "JSON" } }
    };
    reply::html_page(page(
        &NAV,
        "/mounts",
        "Mounts",
        PageOptions::default(),
        body,
    ))
}
