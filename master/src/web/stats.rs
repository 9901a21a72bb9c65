//! Metrics: operation rates and latencies, cache hit ratio, bytes read from cache vs UFS,
//! evictions, each over the sampler's window (the last minutes).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alluvium_webui::chart::{line_chart, Series as ChartSeries, Unit};
use alluvium_webui::format;
use alluvium_webui::layout::{page, stat, PageOptions};
use alluvium_webui::reply;
use axum::extract::State;
use axum::response::Response;
use maud::html;
use serde::Serialize;

use super::sampler::{Sample, Series, INTERVAL, SAMPLES};
use super::{Web, NAV};

/// Operations drawn per chart (the busiest in the window); the table lists all.
const TOP_OPERATIONS: usize = 6;
/// Rates in the tables are over about this long.
const RECENT_MS: i64 = 60_000;

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Summary {
    /// Bytes served from cache over bytes served from cache or UFS, in the last minute; `None`
    /// when nothing was read.
    pub cache_hit_ratio: Option<f64>,
    /// Totals since the workers started.
    pub bytes_read_cache: f64,
    pub bytes_read_ufs: f64,
    pub blocks_evicted: f64,
    pub blocks_moved: f64,
    pub short_circuit_opens: f64,
    pub workers_scraped: u32,
    pub workers_failed: u32,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Operation {
    /// `master` or `worker` (summed over workers).
    pub component: &'static str,
    pub operation: String,
    pub total: f64,
    /// Over the last minute.
    pub rate_per_sec: f64,
    pub mean_latency_ms: Option<f64>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChartData {
    pub id: &'static str,
    pub title: &'static str,
    /// `ops/s`, `ms`, `bytes/s`, `percent`, `blocks/s` or `bytes`.
    pub unit: &'static str,
    pub series: Vec<SeriesData>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SeriesData {
    pub name: String,
    /// `[time in ms, value]`.
    pub points: Vec<(i64, f64)>,
}

/// `/api/v1/metrics`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetricsView {
    pub interval_ms: u64,
    pub window_ms: u64,
    pub samples: usize,
    pub from_ms: i64,
    pub to_ms: i64,
    pub summary: Summary,
    pub operations: Vec<Operation>,
    pub charts: Vec<ChartData>,
}

pub(crate) fn gather(samples: &[Sample]) -> MetricsView {
    let interval_ms = INTERVAL.as_millis() as u64;
    let window_ms = interval_ms * SAMPLES as u64;
    let to_ms = samples.last().map(|s| s.t_ms).unwrap_or_default();
    let from_ms = to_ms - window_ms as i64;
    let last = samples.last().cloned().unwrap_or_default();
    let base = samples
        .iter()
        .rev()
        .find(|s| s.t_ms <= last.t_ms - RECENT_MS)
        .or(samples.first())
        .cloned()
        .unwrap_or_default();
    let dt = ((last.t_ms - base.t_ms) as f64 / 1000.0).max(0.0);
    let get = |s: &Sample, series: Series, label: &str| {
        s.values
            .get(&(series, label.to_string()))
            .copied()
            .unwrap_or(0.0)
    };
    let sum = |s: &Sample, series: Series| -> f64 {
        s.values
            .iter()
            .filter(|((k, _), _)| *k == series)
            // fold from +0.0: `sum` of no floats is -0.0, shown as "-0".
            .fold(0.0, |a, (_, v)| a + v)
    };
    let recent_cache = delta(
        get(&base, Series::BytesRead, "cache"),
        get(&last, Series::BytesRead, "cache"),
    );
    let recent_ufs = delta(
        get(&base, Series::BytesRead, "ufs"),
        get(&last, Series::BytesRead, "ufs"),
    );
    let summary = Summary {
        cache_hit_ratio: ratio(recent_cache, recent_ufs),
        bytes_read_cache: get(&last, Series::BytesRead, "cache"),
        bytes_read_ufs: get(&last, Series::BytesRead, "ufs"),
        blocks_evicted: sum(&last, Series::Evicted),
        blocks_moved: sum(&last, Series::Moved),
        short_circuit_opens: sum(&last, Series::ShortCircuitOpens),
        workers_scraped: last.workers_scraped,
        workers_failed: last.workers_failed,
    };

    let mut operations = Vec::new();
    for (component, count, secs) in [
        ("master", Series::MasterOpCount, Series::MasterOpSeconds),
        ("worker", Series::WorkerOpCount, Series::WorkerOpSeconds),
    ] {
        for op in labels(std::slice::from_ref(&last), count) {
            let dc = delta(get(&base, count, &op), get(&last, count, &op));
            let ds = delta(get(&base, secs, &op), get(&last, secs, &op));
            operations.push(Operation {
                component,
                total: get(&last, count, &op),
                rate_per_sec: if dt > 0.0 { dc / dt } else { 0.0 },
                mean_latency_ms: (dc > 0.0).then(|| ds / dc * 1000.0),
                operation: op,
            });
        }
    }
    operations.sort_by(|a, b| {
        b.rate_per_sec
            .total_cmp(&a.rate_per_sec)
            .then(b.total.total_cmp(&a.total))
    });

    let mut charts = Vec::new();
    for (component, count, secs, ids) in [
        (
            "Master",
            Series::MasterOpCount,
            Series::MasterOpSeconds,
            ("master-ops", "master-latency"),
        ),
        (
            "Worker",
            Series::WorkerOpCount,
            Series::WorkerOpSeconds,
            ("worker-ops", "worker-latency"),
        ),
    ] {
        let ops = busiest(samples, count);
        charts.push(ChartData {
            id: ids.0,
            title: if component == "Master" {
                "Master operations per second"
            } else {
                "Worker operations per second"
            },
            unit: "ops/s",
            series: ops
                .iter()
                .map(|op| SeriesData {
                    name: op.clone(),
                    points: rate_points(samples, |s| get(s, count, op)),
                })
                .collect(),
        });
        charts.push(ChartData {
            id: ids.1,
            title: if component == "Master" {
                "Master mean latency"
            } else {
                "Worker mean latency (to first response)"
            },
            unit: "ms",
            series: ops
                .iter()
                .map(|op| SeriesData {
                    name: op.clone(),
                    points: pairs(samples)
                        .filter_map(|(a, b)| {
                            let dc = delta(get(a, count, op), get(b, count, op));
                            let ds = delta(get(a, secs, op), get(b, secs, op));
                            (dc > 0.0).then(|| (b.t_ms, ds / dc * 1000.0))
                        })
                        .collect(),
                })
                .collect(),
        });
    }
    charts.push(ChartData {
        id: "bytes-read",
        title: "Bytes read from cache vs UFS",
        unit: "bytes/s",
        series: ["cache", "ufs"]
            .iter()
            .map(|src| SeriesData {
                name: src.to_string(),
                points: rate_points(samples, |s| get(s, Series::BytesRead, src)),
            })
            .collect(),
    });
    charts.push(ChartData {
        id: "hit-ratio",
        title: "Cache hit ratio (bytes)",
        unit: "percent",
        series: vec![SeriesData {
            name: "hit ratio".into(),
            points: pairs(samples)
                .filter_map(|(a, b)| {
                    let c = delta(
                        get(a, Series::BytesRead, "cache"),
                        get(b, Series::BytesRead, "cache"),
                    );
                    let u = delta(
                        get(a, Series::BytesRead, "ufs"),
                        get(b, Series::BytesRead, "ufs"),
                    );
                    ratio(c, u).map(|r| (b.t_ms, r * 100.0))
                })
                .collect(),
        }],
    });
    let mut evictions: Vec<SeriesData> = labels(samples, Series::Evicted)
        .into_iter()
        .map(|t| SeriesData {
            points: rate_points(samples, |s| get(s, Series::Evicted, &t)),
            name: format!("dropped from {t}"),
        })
        .collect();
    evictions.extend(
        labels(samples, Series::Moved)
            .into_iter()
            .map(|m| SeriesData {
                points: rate_points(samples, |s| get(s, Series::Moved, &m)),
                name: format!("moved {m}"),
            }),
    );
    charts.push(ChartData {
        id: "evictions",
        title: "Evictions (blocks per second)",
        unit: "blocks/s",
        series: evictions,
    });
    charts.push(ChartData {
        id: "tier-used",
        title: "Cache used per tier",
        unit: "bytes",
        series: labels(samples, Series::TierUsed)
            .into_iter()
            .map(|t| SeriesData {
                points: samples
                    .iter()
                    .filter_map(|s| {
                        s.values
                            .get(&(Series::TierUsed, t.clone()))
                            .map(|v| (s.t_ms, *v))
                    })
                    .collect(),
                name: t,
            })
            .collect(),
    });

    MetricsView {
        interval_ms,
        window_ms,
        samples: samples.len(),
        from_ms,
        to_ms,
        summary,
        operations,
        charts,
    }
}

/// Growth of a counter; a counter that went down was reset (a worker restarted).
fn delta(before: f64, after: f64) -> f64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

fn ratio(hits: f64, misses: f64) -> Option<f64> {
    (hits + misses > 0.0).then(|| hits / (hits + misses))
}

fn pairs(samples: &[Sample]) -> impl Iterator<Item = (&Sample, &Sample)> {
    samples.windows(2).map(|w| (&w[0], &w[1]))
}

/// Per-second rate of a counter between consecutive samples.
fn rate_points(samples: &[Sample], value: impl Fn(&Sample) -> f64) -> Vec<(i64, f64)> {
    pairs(samples)
        .filter(|(a, b)| b.t_ms > a.t_ms)
        .map(|(a, b)| {
            let dt = (b.t_ms - a.t_ms) as f64 / 1000.0;
            (b.t_ms, delta(value(a), value(b)) / dt)
        })
        .collect()
}

/// Every label of `series` seen in the samples.
fn labels(samples: &[Sample], series: Series) -> Vec<String> {
    let set: BTreeSet<String> = samples
        .iter()
        .flat_map(|s| s.values.keys())
        .filter(|(k, _)| *k == series)
        .map(|(_, l)| l.clone())
        .collect();
    set.into_iter().collect()
}

/// The operations with the most calls in the window.
fn busiest(samples: &[Sample], count: Series) -> Vec<String> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Vec::new();
    };
    let mut calls: BTreeMap<String, f64> = BTreeMap::new();
    for op in labels(samples, count) {
        let key = (count, op.clone());
        let a = first.values.get(&key).copied().unwrap_or(0.0);
        let b = last.values.get(&key).copied().unwrap_or(0.0);
        calls.insert(op, delta(a, b));
    }
    let mut v: Vec<(String, f64)> = calls.into_iter().filter(|(_, c)| *c > 0.0).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.into_iter()
        .take(TOP_OPERATIONS)
        .map(|(op, _)| op)
        .collect()
}

pub(crate) async fn json(State(w): State<Arc<Web>>) -> Response {
    reply::json(&gather(&w.sampler.samples()))
}

pub(crate) async fn html(State(w): State<Arc<Web>>) -> Response {
    let v = gather(&w.sampler.samples());
    let s = &v.summary;
    let body = html! {
        p.muted {
            "Sampled every " (format::duration_ms(v.interval_ms as i64)) " from the master's and the workers' "
            code { "/metrics" } "; charts cover the last " (format::duration_ms(v.window_ms as i64))
            " (" (v.samples) " samples so far). The page reloads itself every 10 s."
        }
        div.stats {
            (stat("Cache hit ratio (last minute)", html! {
                @match s.cache_hit_ratio {
                    Some(r) => (format!("{:.1}%", r * 100.0)),
                    None => span.muted { "no reads" },
                }
            }))
            (stat("Read from cache", html! { (format::bytes(s.bytes_read_cache as u64)) }))
            (stat("Read from UFS", html! { (format::bytes(s.bytes_read_ufs as u64)) }))
            (stat("Blocks evicted", html! { (format::number(s.blocks_evicted)) }))
            (stat("Blocks moved between tiers", html! { (format::number(s.blocks_moved)) }))
            (stat("Short-circuit opens", html! { (format::number(s.short_circuit_opens)) }))
            (stat("Workers sampled", html! {
                (s.workers_scraped)
                @if s.workers_failed > 0 { " " span.badge.bad { (s.workers_failed) " unreachable" } }
            }))
        }
        div.charts {
            @for c in &v.charts {
                (line_chart(c.title, unit_of(c.unit), v.from_ms, v.to_ms, &c.series.iter().map(|s| ChartSeries {
                    name: s.name.clone(),
                    points: s.points.clone(),
                }).collect::<Vec<_>>()))
            }
        }
        h2 { "Operations" }
        div.panel {
            @if v.operations.is_empty() {
                p.muted { "No operation recorded yet." }
            } @else {
                table {
                    thead { tr {
                        th { "Component" } th { "Operation" } th.num { "Total" }
                        th.num { "Per second (last minute)" } th.num { "Mean latency (last minute)" }
                    } }
                    tbody {
                        @for o in &v.operations {
                            tr {
                                td { (o.component) }
                                td.mono { (o.operation) }
                                td.num { (format::number(o.total)) }
                                td.num { (format::number(o.rate_per_sec)) }
                                td.num {
                                    @match o.mean_latency_ms {
                                        Some(ms) => (format!("{} ms", format::number(ms))),
                                        None => "-",
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        p.muted {
            "Latency is measured until the response starts (for streams, the first message). "
            a href="/api/v1/metrics" { "JSON" } " · " a href="/metrics" { "Prometheus" }
        }
    };
    reply::html_page(page(
        &NAV,
        "/stats",
        "Metrics",
        PageOptions { refresh_secs: 10 },
        body,
    ))
}

fn unit_of(unit: &str) -> Unit {
    match unit {
        "bytes/s" => Unit::BytesPerSec,
        "bytes" => Unit::Bytes,
        "percent" => Unit::Percent,
        "ms" => Unit::Plain(" ms"),
        _ => Unit::Plain("/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: i64, values: &[(Series, &str, f64)]) -> Sample {
        Sample {
            t_ms: t,
            values: values
                .iter()
                .map(|(s, l, v)| ((*s, l.to_string()), *v))
                .collect(),
            workers_scraped: 1,
            workers_failed: 0,
        }
    }

    #[test]
    fn rates_latencies_and_hit_ratio() {
        let samples = vec![
            sample(
                0,
                &[
                    (Series::MasterOpCount, "GetStatus", 10.0),
                    (Series::MasterOpSeconds, "GetStatus", 1.0),
                    (Series::BytesRead, "cache", 0.0),
                    (Series::BytesRead, "ufs", 0.0),
                ],
            ),
            sample(
                5000,
                &[
                    (Series::MasterOpCount, "GetStatus", 20.0),
                    (Series::MasterOpSeconds, "GetStatus", 1.02),
                    (Series::BytesRead, "cache", 300.0),
                    (Series::BytesRead, "ufs", 100.0),
                    (Series::Evicted, "MEM", 2.0),
                ],
            ),
        ];
        let v = gather(&samples);
        assert_eq!(v.operations.len(), 1);
        let op = &v.operations[0];
        assert_eq!(
            (op.component, op.operation.as_str()),
            ("master", "GetStatus")
        );
        assert!((op.rate_per_sec - 2.0).abs() < 1e-9, "{op:?}");
        assert!((op.mean_latency_ms.unwrap() - 2.0).abs() < 1e-6, "{op:?}");
        assert_eq!(v.summary.cache_hit_ratio, Some(0.75));
        assert_eq!(v.summary.blocks_evicted, 2.0);
        let ops = v.charts.iter().find(|c| c.id == "master-ops").unwrap();
        assert_eq!(ops.series[0].points, vec![(5000, 2.0)]);
        let hit = v.charts.iter().find(|c| c.id == "hit-ratio").unwrap();
        assert_eq!(hit.series[0].points, vec![(5000, 75.0)]);
        // A counter that went down was reset.
        assert_eq!(delta(10.0, 3.0), 3.0);
    }

    #[test]
    fn empty_window() {
        let v = gather(&[]);
        assert!(v.operations.is_empty());
        assert_eq!(v.summary.cache_hit_ratio, None);
    }
}
