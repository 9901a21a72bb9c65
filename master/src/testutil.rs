//! Test fixtures: a namespace on a real RocksDB and a local-fs UFS, both in temp dirs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::config::MasterConfig;
use alluvium_common::identity::Caller;
use alluvium_common::ByteSize;
use alluvium_proto::{
    CommitBlockRequest, CompleteFileRequest, CreateDirectoryRequest, CreateFileRequest,
    RegisterWorkerRequest, TierUsage, WorkerNetAddress, WriteType,
};

use crate::block_master::BlockMaster;
use crate::metastore::{MetaStore, RocksStore};
use crate::metastore_cache::CachingStore;
use crate::metrics::Metrics;
use crate::namespace::Namespace;
use crate::permission::Checker;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub ufs_dir: PathBuf,
    pub store: Arc<RocksStore>,
    pub blocks: Arc<BlockMaster>,
    pub ns: Arc<Namespace>,
    pub config: MasterConfig,
}

pub fn config_in(dir: &std::path::Path) -> MasterConfig {
    MasterConfig {
        metastore_dir: dir.join("meta"),
        root_ufs: dir.join("ufs").display().to_string(),
        default_block_size: ByteSize(1024),
        sync_interval: Duration::from_secs(3600),
        worker_timeout: Duration::from_millis(200),
        ..Default::default()
    }
}

impl Env {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut MasterConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path());
        f(&mut config);
        Self::open(dir, config)
    }

    pub fn open(dir: tempfile::TempDir, config: MasterConfig) -> Self {
        let store = Arc::new(RocksStore::open(&config.metastore_dir, false).unwrap());
        // Through the same cache layer the server puts in front of RocksDB, so every namespace
        // test also checks that the cache never serves a stale inode or entry.
        let rocks: Arc<dyn MetaStore> = store.clone();
        let dyn_store: Arc<dyn MetaStore> =
            Arc::new(CachingStore::new(rocks, config.metadata_cache_entries));
        let metrics = Arc::new(Metrics::new());
        let blocks = Arc::new(
            BlockMaster::new(
                dyn_store.clone(),
                config.worker_timeout,
                config.heartbeat_interval,
                metrics.clone(),
            )
            .unwrap(),
        );
        let ns = Arc::new(Namespace::open(dyn_store, blocks.clone(), metrics, &config).unwrap());
        Env {
            ufs_dir: dir.path().join("ufs"),
            dir,
            store,
            blocks,
            ns,
            config,
        }
    }

    /// Closes the store and opens everything again on the same dirs (a master restart).
    pub fn restart(self) -> Self {
        let Env {
            dir, store, config, ..
        } = self;
        store.close().unwrap();
        Self::open(dir, config)
    }

    pub fn su(&self) -> Checker {
        self.ns.checker(Caller::current_process())
    }

    pub fn user(&self, name: &str, groups: &[&str]) -> Checker {
        self.ns.checker(Caller {
            user: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        })
    }

    pub async fn mkdir(&self, c: &Checker, path: &str, mode: u32) {
        self.ns
            .create_directory(
                c,
                &CreateDirectoryRequest {
                    path: path.into(),
                    recursive: true,
                    mode: Some(mode),
                    allow_exists: false,
                    write_type: WriteType::CacheThrough as i32,
                },
            )
            .await
            .unwrap();
    }

    /// A file written THROUGH: `data` in the UFS, completed as persisted.
    pub async fn through_file(&self, c: &Checker, path: &str, data: &[u8]) -> u64 {
        let info = self
            .ns
            .create_file(
                c,
                &CreateFileRequest {
                    path: path.into(),
                    write_type: WriteType::Through as i32,
                    recursive: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let res = self.ns.mount_table().resolve(path).unwrap();
        let mut w = res.mount.ufs.writer(&res.rel).await.unwrap();
        w.write(bytes::Bytes::copy_from_slice(data)).await.unwrap();
        w.close().await.unwrap();
        self.ns
            .complete_file(
                c,
                &CompleteFileRequest {
                    path: path.into(),
                    file_id: info.file_id,
                    length: data.len() as u64,
                    persisted: true,
                    async_persist: false,
                },
            )
            .await
            .unwrap();
        info.file_id
    }

    /// A file cached on `worker` (MUST_CACHE or ASYNC_THROUGH), blocks committed, completed.
    pub async fn cached_file(
        &self,
        c: &Checker,
        path: &str,
        len: u64,
        worker: u64,
        async_persist: bool,
    ) -> u64 {
        let wt = if async_persist {
            WriteType::AsyncThrough
        } else {
            WriteType::MustCache
        };
        let info = self
            .ns
            .create_file(
                c,
                &CreateFileRequest {
                    path: path.into(),
                    write_type: wt as i32,
                    recursive: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let bs = info.block_size;
        for i in 0..alluvium_common::ids::block_count(len, bs) {
            self.blocks
                .commit_block(&CommitBlockRequest {
                    worker_id: worker,
                    block_id: alluvium_common::ids::block_id(info.file_id, i),
                    length: alluvium_common::ids::block_length(len, bs, i),
                    tier: "MEM".into(),
                })
                .unwrap();
        }
        self.ns
            .complete_file(
                c,
                &CompleteFileRequest {
                    path: path.into(),
                    file_id: info.file_id,
                    length: len,
                    persisted: false,
                    async_persist,
                },
            )
            .await
            .unwrap();
        info.file_id
    }

    /// Does a worker's part of a persist of file `id` in the root mount: writes `data` to the
    /// file's staging path.
    pub fn stage_persisted_copy(&self, id: u64, data: &[u8]) {
        let staged = self.ufs_dir.join(alluvium_ufs::persist_staging_path(id));
        std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
        std::fs::write(staged, data).unwrap();
    }
}

pub fn tiers() -> Vec<TierUsage> {
    vec![
        TierUsage {
            alias: "MEM".into(),
            ordinal: 0,
            capacity_bytes: 1 << 30,
            used_bytes: 1 << 20,
            block_count: 0,
        },
        TierUsage {
            alias: "SSD".into(),
            ordinal: 1,
            capacity_bytes: 10 << 30,
            used_bytes: 0,
            block_count: 0,
        },
    ]
}

pub fn register(blocks: &BlockMaster, host: &str) -> u64 {
    blocks
        .register(RegisterWorkerRequest {
            address: Some(WorkerNetAddress {
                host: host.into(),
                rpc_port: 29999,
                http_port: 30000,
            }),
            tiers: tiers(),
            blocks: Vec::new(),
            non_durable_block_ids: Vec::new(),
        })
        .unwrap()
        .worker_id
}
