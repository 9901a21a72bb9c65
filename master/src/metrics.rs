//! The master's Prometheus metrics (`alluvium_master_*`).

use alluvium_common::metrics::OperationDurations;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabels {
    pub tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: String,
    pub code: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub rpcs: Family<RpcLabels, Counter>,
    pub files: Gauge,
    pub directories: Gauge,
    pub live_workers: Gauge,
    pub lost_workers_gauge: Gauge,
    pub capacity_bytes: Gauge,
    pub used_bytes: Gauge,
    pub worker_registrations: Counter,
    pub workers_lost: Counter,
    pub heartbeats: Counter,
    pub blocks_committed: Counter,
    pub ufs_sync_loaded: Counter,
    pub ufs_sync_removed: Counter,
    pub ufs_sync_updated: Counter,
    pub persist_done: Counter,
    pub persist_failed: Counter,
    pub ttl_actions: Counter,
    /// `alluvium_master_operation_duration_seconds{operation}`, filled by the gRPC server's
    /// [`alluvium_common::metrics::Timed`] wrapper.
    pub operations: OperationDurations,
    pub tier_capacity_bytes: Family<TierLabels, Gauge>,
    pub tier_used_bytes: Family<TierLabels, Gauge>,
    pub tier_blocks: Family<TierLabels, Gauge>,
    pub blocks: Gauge,
    pub uptime_seconds: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = alluvium_common::metrics::new_registry();
        let m = Self {
            rpcs: Family::default(),
            files: Gauge::default(),
            directories: Gauge::default(),
            live_workers: Gauge::default(),
            lost_workers_gauge: Gauge::default(),
            capacity_bytes: Gauge::default(),
            used_bytes: Gauge::default(),
            worker_registrations: Counter::default(),
            workers_lost: Counter::default(),
            heartbeats: Counter::default(),
            blocks_committed: Counter::default(),
            ufs_sync_loaded: Counter::default(),
            ufs_sync_removed: Counter::default(),
            ufs_sync_updated: Counter::default(),
            persist_done: Counter::default(),
            persist_failed: Counter::default(),
            ttl_actions: Counter::default(),
            operations: alluvium_common::metrics::operation_durations(),
            tier_capacity_bytes: Family::default(),
            tier_used_bytes: Family::default(),
            tier_blocks: Family::default(),
            blocks: Gauge::default(),
            uptime_seconds: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "master_rpc",
            "gRPC calls by method and status code",
            m.rpcs.clone(),
        );
        r.register("master_files", "Files in the namespace", m.files.clone());
        r.register(
            "master_directories",
            "Directories in the namespace",
            m.directories.clone(),
        );
        r.register(
            "master_live_workers",
            "Workers heartbeating",
            m.live_workers.clone(),
        );
        r.register(
            "master_lost_workers",
            "Workers declared lost",
            m.lost_workers_gauge.clone(),
        );
        r.register(
            "master_capacity_bytes",
            "Capacity of live workers",
            m.capacity_bytes.clone(),
        );
        r.register(
            "master_used_bytes",
            "Bytes used on live workers",
            m.used_bytes.clone(),
        );
        r.register(
            "master_worker_registrations",
            "Worker registrations",
            m.worker_registrations.clone(),
        );
        r.register(
            "master_workers_lost",
            "Workers declared lost",
            m.workers_lost.clone(),
        );
        r.register(
            "master_heartbeats",
            "Worker heartbeats served",
            m.heartbeats.clone(),
        );
        r.register(
            "master_blocks_committed",
            "Blocks committed by workers",
            m.blocks_committed.clone(),
        );
        r.register(
            "master_ufs_sync_loaded",
            "Entries loaded from UFS metadata",
            m.ufs_sync_loaded.clone(),
        );
        r.register(
            "master_ufs_sync_removed",
            "Entries removed because gone from the UFS",
            m.ufs_sync_removed.clone(),
        );
        r.register(
            "master_ufs_sync_updated",
            "Files refreshed because changed in the UFS",
            m.ufs_sync_updated.clone(),
        );
        r.register(
            "master_persist_done",
            "Files persisted asynchronously",
            m.persist_done.clone(),
        );
        r.register(
            "master_persist_failed",
            "Failed async persist attempts",
            m.persist_failed.clone(),
        );
        r.register(
            "master_ttl_actions",
            "Expired TTLs acted on",
            m.ttl_actions.clone(),
        );
        r.register(
            "master_operation_duration_seconds",
            "Latency of master gRPC operations, by operation",
            m.operations.clone(),
        );
        r.register(
            "master_tier_capacity_bytes",
            "Capacity of live workers, by tier",
            m.tier_capacity_bytes.clone(),
        );
        r.register(
            "master_tier_used_bytes",
            "Bytes used on live workers, by tier",
            m.tier_used_bytes.clone(),
        );
        r.register(
            "master_tier_blocks",
            "Blocks cached on live workers, by tier",
            m.tier_blocks.clone(),
        );
        r.register(
            "master_blocks",
            "Blocks with at least one cached copy",
            m.blocks.clone(),
        );
        r.register(
            "master_uptime_seconds",
            "Seconds since the master started",
            m.uptime_seconds.clone(),
        );
        Self { registry, ..m }
    }

    pub fn encode(&self) -> String {
        alluvium_common::metrics::encode_text(&self.registry)
    }

    /// Sets the per-tier gauges (before each scrape).
    pub fn set_tiers(&self, tiers: &[alluvium_proto::TierUsage]) {
        for t in tiers {
            let l = TierLabels {
                tier: t.alias.clone(),
            };
            self.tier_capacity_bytes
                .get_or_create(&l)
                .set(t.capacity_bytes as i64);
            self.tier_used_bytes
                .get_or_create(&l)
                .set(t.used_bytes as i64);
            self.tier_blocks.get_or_create(&l).set(t.block_count as i64);
        }
    }

    pub fn rpc(&self, method: &str, code: &str) {
        self.rpcs
            .get_or_create(&RpcLabels {
                method: method.to_string(),
                code: code.to_string(),
            })
            .inc();
    }
}
