//! The worker's status page: capacity and blocks per tier, the tier dirs, counters, and the
//! most recent evictions. Rendered from the same data as `/api/v1/worker`.

use alluvium_common::time::now_ms;
use alluvium_webui::chart::usage_bar;
use alluvium_webui::format;
use alluvium_webui::layout::{page, stat, Nav, PageOptions};
use maud::{html, Markup};

use crate::http::WorkerJson;

pub(crate) const NAV: Nav = Nav {
    brand: "Alluvium worker",
    links: &[
        ("/", "Status"),
        ("/api/v1/worker", "JSON"),
        ("/metrics", "Prometheus"),
    ],
};

pub(crate) fn render(w: &WorkerJson) -> Markup {
    let now = now_ms();
    let c = &w.counters;
    let streamed = c.bytes_read_cache + c.bytes_read_ufs;
    let body = html! {
        div.stats {
            (stat("Worker id", html! {
                @match w.worker_id {
                    Some(id) => (id),
                    None => span.badge.warn { "not registered" },
                }
            }))
            (stat("Address", html! { (w.host) ":" (w.rpc_port) }))
            (stat("Version", html! { (w.version) }))
            (stat("Uptime", html! { (format::duration_ms(w.uptime_ms)) }))
            (stat("Blocks", html! { (w.block_count) }))
            (stat("Used", html! { (format::bytes(w.used_bytes)) " / " (format::bytes(w.capacity_bytes)) }))
        }
        h2 { "Tiers" }
        div.panel {
            table {
                thead { tr {
                    th { "Tier" } th { "Usage" } th.num { "Blocks" }
                    th.num.hide-narrow { "Watermarks (high / low)" }
                    th.num { "Bytes written" } th.num { "Dropped blocks" }
                } }
                tbody {
                    @for t in &w.tiers {
                        tr {
                            td { span.badge { (t.alias) } }
                            td { (usage_bar(t.used_bytes, t.capacity_bytes)) }
                            td.num { (t.block_count) }
                            td.num.hide-narrow {
                                (format!("{:.0}% / {:.0}%", t.high_watermark * 100.0, t.low_watermark * 100.0))
                            }
                            td.num { (format::bytes(c.bytes_written.get(&t.alias).copied().unwrap_or(0))) }
                            td.num { (c.blocks_evicted.get(&t.alias).copied().unwrap_or(0)) }
                        }
                    }
                }
            }
        }
        h2 { "Directories" }
        div.panel {
            table {
                thead { tr { th { "Tier" } th { "Path" } th { "Usage" } } }
                tbody {
                    @for t in &w.tiers {
                        @for d in &t.dirs {
                            tr {
                                td { (t.alias) }
                                td.mono { (d.path) }
                                td { (usage_bar(d.used_bytes, d.capacity_bytes)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Reads" }
        div.stats {
            (stat("Read from cache", html! { (format::bytes(c.bytes_read_cache)) }))
            (stat("Read from UFS", html! { (format::bytes(c.bytes_read_ufs)) }))
            (stat("Cache hit ratio (bytes)", html! {
                @if streamed == 0 { "-" } @else { (format::percent(c.bytes_read_cache, streamed)) }
            }))
            (stat("Short-circuit opens", html! { (c.short_circuit_opens) }))
            (stat("Promotions", html! { (c.blocks_promoted) }))
        }
        h2 { "Recent evictions" }
        div.panel {
            @if w.recent_evictions.is_empty() {
                p.muted { "No block has been moved or dropped to make room." }
            } @else {
                table {
                    thead { tr {
                        th { "When" } th.num { "Block" } th { "From" } th { "To" } th.num { "Size" }
                    } }
                    tbody {
                        @for e in w.recent_evictions.iter().rev() {
                            tr {
                                td { (format::ago(e.at_ms, now)) }
                                td.num.mono { (e.block_id) }
                                td { (e.from) }
                                td {
                                    @match &e.to {
                                        Some(t) => (t),
                                        None => span.badge.warn { "dropped" },
                                    }
                                }
                                td.num { (format::bytes(e.length)) }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&NAV, "/", "Worker status", PageOptions::default(), body)
}
