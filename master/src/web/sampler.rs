//! Samples the cluster's metrics every few seconds into a ring buffer, for the charts of the
//! Metrics page. It reads what Prometheus reads: the master's own `/metrics` text and each live
//! worker's `/metrics` over HTTP, keeping only the series the page draws, summed over workers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::prom_text as prom;
use alluvium_common::time::now_ms;
use alluvium_webui::ring::Ring;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::server::Shared;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept: ten minutes at [`INTERVAL`].
pub const SAMPLES: usize = 120;
/// A worker that does not answer its `/metrics` within this is skipped for the sample.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a sampled value is; the label (operation, tier, source) is the second part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Series {
    MasterOpCount,
    MasterOpSeconds,
    WorkerOpCount,
    WorkerOpSeconds,
    /// Bytes workers streamed to readers, by source (`cache`, `ufs`).
    BytesRead,
    /// Blocks dropped to make room, by tier.
    Evicted,
    /// Blocks moved down (or up) between tiers, by `FROM→TO`.
    Moved,
    ShortCircuitOpens,
    /// Bytes used per tier (a gauge).
    TierUsed,
}

/// One sample: cumulative counters (and gauges) at `t_ms`.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub t_ms: i64,
    pub values: BTreeMap<(Series, String), f64>,
    pub workers_scraped: u32,
    pub workers_failed: u32,
}

pub(crate) struct Sampler {
    shared: Arc<Shared>,
    http: reqwest::Client,
    ring: Mutex<Ring<Sample>>,
}

impl Sampler {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            http: reqwest::Client::builder()
                .timeout(SCRAPE_TIMEOUT)
                .no_proxy()
                .build()
                .unwrap_or_default(),
            ring: Mutex::new(Ring::new(SAMPLES)),
        }
    }

    /// Samples now and every [`INTERVAL`] until `stop` changes.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            self.sample_now().await;
        }
    }

    /// Takes one sample and adds it to the ring.
    pub async fn sample_now(&self) {
        let s = self.collect().await;
        self.ring.lock().push(s);
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.ring.lock().iter().cloned().collect()
    }

    async fn collect(&self) -> Sample {
        let mut sample = Sample {
            t_ms: now_ms(),
            ..Default::default()
        };
        for p in prom::parse(&self.shared.metrics.encode()) {
            let series = match p.name.as_str() {
                "alluvium_master_operation_duration_seconds_count" => Series::MasterOpCount,
                "alluvium_master_operation_duration_seconds_sum" => Series::MasterOpSeconds,
                _ => continue,
            };
            let op = p.label("operation").unwrap_or_default().to_string();
            *sample.values.entry((series, op)).or_default() += p.value;
        }
        for t in self.shared.blocks.capacity().tiers {
            sample
                .values
                .insert((Series::TierUsed, t.alias), t.used_bytes as f64);
        }
        let urls: Vec<String> = self
            .shared
            .blocks
            .workers()
            .into_iter()
            .filter(|w| w.state == "LIVE")
            .filter_map(|w| w.address)
            .filter(|a| a.http_port > 0)
            .map(|a| format!("http://{}:{}/metrics", a.host, a.http_port))
            .collect();
        let scrapes = futures::future::join_all(urls.iter().map(|u| self.scrape(u))).await;
        for (url, r) in urls.iter().zip(scrapes) {
            match r {
                Ok(text) => {
                    sample.workers_scraped += 1;
                    add_worker(&mut sample, &text);
                }
                Err(e) => {
                    sample.workers_failed += 1;
                    tracing::debug!(url = %url, error = %e, "cannot sample worker metrics");
                }
            }
        }
        sample
    }

    async fn scrape(&self, url: &str) -> Result<String, reqwest::Error> {
        self.http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    }
}

/// Adds one worker's metrics to the sample (summing over workers).
fn add_worker(sample: &mut Sample, text: &str) {
    for p in prom::parse(text) {
        let (series, label) = match p.name.as_str() {
            "alluvium_worker_operation_duration_seconds_count" => {
                (Series::WorkerOpCount, p.label("operation"))
            }
            "alluvium_worker_operation_duration_seconds_sum" => {
                (Series::WorkerOpSeconds, p.label("operation"))
            }
            "alluvium_worker_bytes_read_total" => (Series::BytesRead, p.label("source")),
            "alluvium_worker_blocks_evicted_total" => (Series::Evicted, p.label("tier")),
            "alluvium_worker_short_circuit_opens_total" => (Series::ShortCircuitOpens, Some("")),
            "alluvium_worker_blocks_moved_total" => {
                let from = p.label("from").unwrap_or_default();
                let to = p.label("to").unwrap_or_default();
                *sample
                    .values
                    .entry((Series::Moved, format!("{from}→{to}")))
                    .or_default() += p.value;
                continue;
            }
            _ => continue,
        };
        let label = label.unwrap_or_default().to_string();
        *sample.values.entry((series, label)).or_default() += p.value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_metrics_are_summed() {
        let text = "alluvium_worker_bytes_read_total{source=\"cache\"} 10\n\
                    alluvium_worker_blocks_moved_total{from=\"MEM\",to=\"SSD\"} 2\n\
                    alluvium_worker_operation_duration_seconds_count{operation=\"ReadBlock\"} 3\n\
                    alluvium_worker_other_total 9\n";
        let mut s = Sample::default();
        add_worker(&mut s, text);
        add_worker(&mut s, text);
        assert_eq!(s.values[&(Series::BytesRead, "cache".into())], 20.0);
        assert_eq!(s.values[&(Series::Moved, "MEM→SSD".into())], 4.0);
        assert_eq!(s.values[&(Series::WorkerOpCount, "ReadBlock".into())], 6.0);
        assert_eq!(s.values.len(), 3);
    }
}
