//! The worker's Prometheus metrics, all named `alluvium_worker_..._<unit>`.

use std::collections::BTreeMap;

use alluvium_common::metrics::OperationDurations;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

type Labels = Vec<(String, String)>;

fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

/// Counters and gauges of one worker. Cloning shares the underlying values.
#[derive(Clone)]
pub struct WorkerMetrics {
    bytes_read: Family<Labels, Counter>,
    bytes_written: Family<Labels, Counter>,
    short_circuit_opens: Counter,
    short_circuit_creates: Counter,
    blocks_evicted: Family<Labels, Counter>,
    blocks_moved: Family<Labels, Counter>,
    blocks_promoted: Counter,
    capacity_bytes: Family<Labels, Gauge>,
    used_bytes: Family<Labels, Gauge>,
    blocks: Family<Labels, Gauge>,
    /// `alluvium_worker_operation_duration_seconds{operation}`, filled by the gRPC server's
    /// [`alluvium_common::metrics::Timed`] wrapper.
    pub operations: OperationDurations,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self {
            bytes_read: Family::default(),
            bytes_written: Family::default(),
            short_circuit_opens: Counter::default(),
            short_circuit_creates: Counter::default(),
            blocks_evicted: Family::default(),
            blocks_moved: Family::default(),
            blocks_promoted: Counter::default(),
            capacity_bytes: Family::default(),
            used_bytes: Family::default(),
            blocks: Family::default(),
            operations: alluvium_common::metrics::operation_durations(),
        }
    }
}

/// The worker's counters at one moment, for its status page and JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CounterSnapshot {
    pub bytes_read_cache: u64,
    pub bytes_read_ufs: u64,
    pub short_circuit_opens: u64,
    pub short_circuit_creates: u64,
    pub blocks_promoted: u64,
    /// Blocks dropped, by tier.
    pub blocks_evicted: BTreeMap<String, u64>,
    /// Bytes written, by tier.
    pub bytes_written: BTreeMap<String, u64>,
}

impl WorkerMetrics {
    /// Registers every metric in `registry` (whose prefix supplies `alluvium_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "worker_bytes_read",
            "Bytes sent to readers, by source (cache or ufs)",
            self.bytes_read.clone(),
        );
        registry.register(
            "worker_bytes_written",
            "Bytes written into the block store, by tier",
            self.bytes_written.clone(),
        );
        registry.register(
            "worker_short_circuit_opens",
            "Short-circuit block opens (OpenLocalBlock)",
            self.short_circuit_opens.clone(),
        );
        registry.register(
            "worker_short_circuit_creates",
            "Short-circuit block creations (CreateLocalBlock)",
            self.short_circuit_creates.clone(),
        );
        registry.register(
            "worker_blocks_evicted",
            "Blocks dropped from the store to make room, by tier",
            self.blocks_evicted.clone(),
        );
        registry.register(
            "worker_blocks_moved",
            "Blocks moved between tiers, by source and destination tier",
            self.blocks_moved.clone(),
        );
        registry.register(
            "worker_blocks_promoted",
            "Blocks promoted to the top tier",
            self.blocks_promoted.clone(),
        );
        registry.register(
            "worker_capacity_bytes",
            "Capacity of each tier",
            self.capacity_bytes.clone(),
        );
        registry.register(
            "worker_used_bytes",
            "Bytes used (committed and reserved) in each tier",
            self.used_bytes.clone(),
        );
        registry.register(
            "worker_blocks",
            "Blocks held in each tier",
            self.blocks.clone(),
        );
        registry.register(
            "worker_operation_duration_seconds",
            "Latency of worker gRPC operations, by operation",
            self.operations.clone(),
        );
    }

    /// The counters now; per-tier ones for each of `tiers`.
    pub fn snapshot<'a>(&self, tiers: impl IntoIterator<Item = &'a str>) -> CounterSnapshot {
        // One statement per lookup: `get_or_create` returns a read guard, and a second lookup
        // that creates a label while the first guard lives would wait for itself.
        let cache = self
            .bytes_read
            .get_or_create(&label("source", "cache"))
            .get();
        let ufs = self.bytes_read.get_or_create(&label("source", "ufs")).get();
        let mut s = CounterSnapshot {
            bytes_read_cache: cache,
            bytes_read_ufs: ufs,
            short_circuit_opens: self.short_circuit_opens.get(),
            short_circuit_creates: self.short_circuit_creates.get(),
            blocks_promoted: self.blocks_promoted.get(),
            ..Default::default()
        };
        for t in tiers {
            let l = label("tier", t);
            let evicted = self.blocks_evicted.get_or_create(&l).get();
            s.blocks_evicted.insert(t.to_string(), evicted);
            let written = self.bytes_written.get_or_create(&l).get();
            s.bytes_written.insert(t.to_string(), written);
        }
        s
    }

    pub fn read(&self, source: &str, bytes: u64) {
        self.bytes_read
            .get_or_create(&label("source", source))
            .inc_by(bytes);
    }

    pub fn written(&self, tier: &str, bytes: u64) {
        self.bytes_written
            .get_or_create(&label("tier", tier))
            .inc_by(bytes);
    }

    pub fn short_circuit_open(&self) {
        self.short_circuit_opens.inc();
    }

    pub fn short_circuit_create(&self) {
        self.short_circuit_creates.inc();
    }

    pub fn evicted(&self, tier: &str) {
        self.blocks_evicted
            .get_or_create(&label("tier", tier))
            .inc();
    }

    pub fn moved(&self, from: &str, to: &str) {
        self.blocks_moved
            .get_or_create(&vec![
                ("from".to_string(), from.to_string()),
                ("to".to_string(), to.to_string()),
            ])
            .inc();
    }

    pub fn promoted(&self) {
        self.blocks_promoted.inc();
    }

    /// Sets the per-tier gauges (called before each scrape and heartbeat).
    pub fn set_tier(&self, tier: &str, capacity: u64, used: u64, blocks: u64) {
        let l = label("tier", tier);
        self.capacity_bytes.get_or_create(&l).set(capacity as i64);
        self.used_bytes.get_or_create(&l).set(used as i64);
        self.blocks.get_or_create(&l).set(blocks as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_convention() {
        let m = WorkerMetrics::default();
        let mut r = alluvium_common::metrics::new_registry();
        m.register(&mut r);
        m.read("cache", 5);
        m.written("MEM", 7);
        m.moved("MEM", "SSD");
        m.set_tier("MEM", 10, 5, 1);
        // Labels not seen yet are created on the way (a snapshot must not wait for itself).
        let snap = m.snapshot(["MEM", "SSD"]);
        assert_eq!((snap.bytes_read_cache, snap.bytes_read_ufs), (5, 0));
        assert_eq!(snap.bytes_written["MEM"], 7);
        assert_eq!(snap.blocks_evicted["SSD"], 0);
        let text = alluvium_common::metrics::encode_text(&r);
        for name in [
            "alluvium_worker_bytes_read_total{source=\"cache\"} 5",
            "alluvium_worker_bytes_written_total{tier=\"MEM\"} 7",
            "alluvium_worker_blocks_moved_total{from=\"MEM\",to=\"SSD\"} 1",
            "alluvium_worker_capacity_bytes{tier=\"MEM\"} 10",
            "alluvium_worker_short_circuit_opens_total 0",
            "alluvium_worker_blocks_promoted_total 0",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
