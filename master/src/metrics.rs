//! The master's Prometheus metrics (`alluvium_master_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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
        Self { registry, ..m }
    }

    pub fn encode(&self) -> String {
        alluvium_common::metrics::encode_text(&self.registry)
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
