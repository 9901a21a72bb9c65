//! The worker's Prometheus metrics, all named `alluvium_worker_..._<unit>`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

/// Counters and gauges of one worker. Cloning shares the underlying values.
#[derive(Default, Clone)]
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
