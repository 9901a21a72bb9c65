//! The block master: registered workers, where each block is cached, and what each worker must
//! do next (blocks to remove, files to persist), handed out in heartbeat responses.
//!
//! Locations live in memory only: after a master restart, workers learn they are unknown from
//! their next heartbeat (`register = true`) and report every block again. File metadata (which
//! blocks still belong to a file, which files are persisted or pinned) comes from the metastore;
//! it is read before the lock is taken, never under it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::time::now_ms;
use alluvium_common::{ids, Error, Result};
use alluvium_proto::{
    BlockInfo, BlockLocation, CommitBlockRequest, InodeRecord, PersistCommand,
    RegisterWorkerRequest, RegisterWorkerResponse, TierUsage, WorkerHeartbeatRequest,
    WorkerHeartbeatResponse, WorkerInfo, WorkerNetAddress,
};
use parking_lot::{Mutex, RwLock};

use crate::inode;
use crate::metastore::MetaStore;
use crate::metrics::Metrics;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    worker: u64,
    tier: String,
    ordinal: u32,
}

#[derive(Debug, Default)]
struct BlockMeta {
    /// Length as committed by a worker; `None` when only learned from a registration.
    length: Option<u64>,
    locations: Vec<Location>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerState {
    Live,
    Lost,
}

#[derive(Debug)]
struct Worker {
    id: u64,
    address: WorkerNetAddress,
    tiers: Vec<TierUsage>,
    state: WorkerState,
    start_time_ms: i64,
    last_heartbeat_ms: i64,
    blocks: HashSet<u64>,
    to_remove: HashSet<u64>,
    to_persist: Vec<PersistCommand>,
}

impl Worker {
    fn ordinal_of(&self, tier: &str) -> u32 {
        self.tiers
            .iter()
            .find(|t| t.alias.eq_ignore_ascii_case(tier))
            .map(|t| t.ordinal)
            .unwrap_or(u32::MAX)
    }
}

#[derive(Default)]
struct Inner {
    workers: HashMap<u64, Worker>,
    // Ordered, so the blocks of one file (a contiguous id range) are found without a scan.
    blocks: BTreeMap<u64, BlockMeta>,
    next_worker_id: u64,
    /// Files deleted or freed recently. A report checked against the metastore just before the
    /// file went away must not bring a location back, so reports are checked here again under
    /// the lock. Bounded: cleared when it grows past `TOMBSTONES`.
    tombstones: HashSet<u64>,
}

const TOMBSTONES: usize = 100_000;

impl Inner {
    fn dead(&self, block: u64) -> bool {
        self.tombstones.contains(&ids::file_id_of(block))
    }
}

/// Capacity and usage summed over live workers.
#[derive(Debug, Default, Clone)]
pub struct Capacity {
    pub live_workers: u32,
    pub lost_workers: u32,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub tiers: Vec<TierUsage>,
    pub block_count: u64,
}

pub struct BlockMaster {
    inner: Mutex<Inner>,
    store: Arc<dyn MetaStore>,
    pinned: RwLock<HashSet<u64>>,
    worker_timeout: Duration,
    heartbeat_interval: Duration,
    metrics: Arc<Metrics>,
}

/// Whether a reported block belongs to an existing file (else the worker must drop it).
enum Verdict {
    Keep(Option<Box<InodeRecord>>),
    Orphan,
}

impl BlockMaster {
    pub fn new(
        store: Arc<dyn MetaStore>,
        worker_timeout: Duration,
        heartbeat_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let pinned = store.pinned()?.into_iter().collect();
        // Worker ids start from the start time so ids handed out by an earlier run of the master
        // are never confused with new ones.
        let next_worker_id = (now_ms().max(1) as u64) << 10;
        Ok(Self {
            inner: Mutex::new(Inner {
                next_worker_id,
                ..Default::default()
            }),
            store,
            pinned: RwLock::new(pinned),
            worker_timeout,
            heartbeat_interval,
            metrics,
        })
    }

    /// Looks up the files of `blocks` (one metastore read per file).
    fn verdicts(&self, blocks: impl Iterator<Item = u64>) -> Result<HashMap<u64, Verdict>> {
        let mut files: HashMap<u64, Option<InodeRecord>> = HashMap::new();
        let mut out = HashMap::new();
        for b in blocks {
            let fid = ids::file_id_of(b);
            let rec = match files.get(&fid) {
                Some(r) => r.clone(),
                None => {
                    let r = self.store.get_inode(fid)?;
                    files.insert(fid, r.clone());
                    r
                }
            };
            let v = match rec {
                Some(r) if inode::owns_block(&r, b) => Verdict::Keep(Some(Box::new(r))),
                _ => Verdict::Orphan,
            };
            out.insert(b, v);
        }
        Ok(out)
    }

    pub fn register(&self, req: RegisterWorkerRequest) -> Result<RegisterWorkerResponse> {
        let address = req
            .address
            .clone()
            .filter(|a| !a.host.is_empty() && a.rpc_port != 0)
            .ok_or_else(|| {
                Error::invalid_argument("RegisterWorker: address with host and rpc_port required")
            })?;
        let reported: Vec<(u64, String)> = req
            .blocks
            .iter()
            .flat_map(|t| t.block_ids.iter().map(move |b| (*b, t.tier.clone())))
            .collect();
        let verdicts = self.verdicts(reported.iter().map(|(b, _)| *b))?;
        let now = now_ms();
        let mut inner = self.inner.lock();
        let existing = inner
            .workers
            .values()
            .find(|w| w.address.host == address.host && w.address.rpc_port == address.rpc_port)
            .map(|w| w.id);
        let id = match existing {
            Some(id) => {
                // The same worker again (restarted, or back from LOST): forget what it held.
                let old: Vec<u64> = inner.workers[&id].blocks.iter().copied().collect();
                for b in old {
                    drop_location(&mut inner.blocks, b, id);
                }
                id
            }
            None => {
                inner.next_worker_id += 1;
                inner.next_worker_id
            }
        };
        let mut worker = Worker {
            id,
            address: address.clone(),
            tiers: req.tiers.clone(),
            state: WorkerState::Live,
            start_time_ms: now,
            last_heartbeat_ms: now,
            blocks: HashSet::new(),
            to_remove: HashSet::new(),
            to_persist: Vec::new(),
        };
        let mut orphans = 0usize;
        for (b, tier) in reported {
            match verdicts.get(&b) {
                Some(Verdict::Keep(rec)) if !inner.dead(b) => {
                    let ordinal = worker.ordinal_of(&tier);
                    worker.blocks.insert(b);
                    let meta = inner.blocks.entry(b).or_default();
                    if meta.length.is_none() {
                        meta.length = rec.as_ref().filter(|r| r.completed).map(|r| {
                            ids::block_length(r.length, r.block_size, ids::block_index_of(b))
                        });
                    }
                    add_location(meta, id, &tier, ordinal);
                }
                _ => {
                    orphans += 1;
                    worker.to_remove.insert(b);
                }
            }
        }
        let block_count = worker.blocks.len();
        inner.workers.insert(id, worker);
        drop(inner);
        self.metrics.worker_registrations.inc();
        tracing::info!(worker_id = id, host = %address.host, port = address.rpc_port, blocks = block_count, orphans, "worker registered");
        Ok(RegisterWorkerResponse {
            worker_id: id,
            pinned_file_ids: self.pinned_ids(),
            heartbeat_interval_ms: self.heartbeat_interval.as_millis() as i64,
        })
    }

    pub fn heartbeat(&self, req: WorkerHeartbeatRequest) -> Result<WorkerHeartbeatResponse> {
        let known = {
            let inner = self.inner.lock();
            matches!(inner.workers.get(&req.worker_id), Some(w) if w.state == WorkerState::Live)
        };
        if !known {
            return Ok(WorkerHeartbeatResponse {
                register: true,
                ..Default::default()
            });
        }
        let verdicts = self.verdicts(req.added_blocks.iter().map(|b| b.block_id))?;
        // Durable: the block's file is persisted (one metastore read per file).
        let mut persisted: HashMap<u64, bool> = HashMap::new();
        let mut durable = Vec::new();
        for b in &req.non_durable_block_ids {
            let fid = ids::file_id_of(*b);
            let p = match persisted.get(&fid) {
                Some(p) => *p,
                None => {
                    let p = self
                        .store
                        .get_inode(fid)?
                        .is_some_and(|r| inode::is_persisted(&r));
                    persisted.insert(fid, p);
                    p
                }
            };
            if p {
                durable.push(*b);
            }
        }
        let now = now_ms();
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let Some(worker) = inner.workers.get_mut(&req.worker_id) else {
            return Ok(WorkerHeartbeatResponse {
                register: true,
                ..Default::default()
            });
        };
        if worker.state != WorkerState::Live {
            return Ok(WorkerHeartbeatResponse {
                register: true,
                ..Default::default()
            });
        }
        worker.last_heartbeat_ms = now;
        if !req.tiers.is_empty() {
            worker.tiers = req.tiers.clone();
        }
        for b in &req.removed_block_ids {
            worker.blocks.remove(b);
            worker.to_remove.remove(b);
            drop_location(&mut inner.blocks, *b, req.worker_id);
        }
        for added in &req.added_blocks {
            match verdicts.get(&added.block_id) {
                Some(Verdict::Keep(_))
                    if !inner.tombstones.contains(&ids::file_id_of(added.block_id)) =>
                {
                    let ordinal = worker.ordinal_of(&added.tier);
                    worker.blocks.insert(added.block_id);
                    let meta = inner.blocks.entry(added.block_id).or_default();
                    if added.length > 0 || meta.length.is_none() {
                        meta.length = Some(added.length);
                    }
                    add_location(meta, req.worker_id, &added.tier, ordinal);
                }
                _ => {
                    worker.to_remove.insert(added.block_id);
                }
            }
        }
        let remove_block_ids: Vec<u64> = worker.to_remove.drain().collect();
        let persist = std::mem::take(&mut worker.to_persist);
        drop(guard);
        self.metrics.heartbeats.inc();
        Ok(WorkerHeartbeatResponse {
            register: false,
            remove_block_ids,
            pinned_file_ids: self.pinned_ids(),
            durable_block_ids: durable,
            persist,
        })
    }

    pub fn commit_block(&self, req: &CommitBlockRequest) -> Result<()> {
        let verdicts = self.verdicts(std::iter::once(req.block_id))?;
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let dead = inner.dead(req.block_id);
        let worker = match inner.workers.get_mut(&req.worker_id) {
            Some(w) if w.state == WorkerState::Live => w,
            _ => {
                return Err(Error::failed_precondition(format!(
                    "CommitBlock: worker {} is not registered with this master; register again",
                    req.worker_id
                )))
            }
        };
        if dead || !matches!(verdicts.get(&req.block_id), Some(Verdict::Keep(_))) {
            worker.to_remove.insert(req.block_id);
            return Err(Error::not_found(format!(
                "CommitBlock: block {} belongs to no file being written or complete (file {} deleted?)",
                req.block_id,
                ids::file_id_of(req.block_id)
            )));
        }
        let ordinal = worker.ordinal_of(&req.tier);
        if worker.blocks.insert(req.block_id) {
            // Count the block in the worker's usage now rather than at its next heartbeat (which
            // replaces the figure with the worker's own), so a report right after a write or a
            // load is not stale.
            if let Some(t) = worker.tiers.iter_mut().find(|t| t.alias == req.tier) {
                t.used_bytes = t.used_bytes.saturating_add(req.length);
            }
        }
        // A block committed again (re-cached right after a free) must not be removed by the
        // removal still queued for this worker.
        worker.to_remove.remove(&req.block_id);
        let meta = inner.blocks.entry(req.block_id).or_default();
        meta.length = Some(req.length);
        add_location(meta, req.worker_id, &req.tier, ordinal);
        drop(guard);
        self.metrics.blocks_committed.inc();
        tracing::debug!(worker_id = req.worker_id, block_id = req.block_id, length = req.length, tier = %req.tier, "block committed");
        Ok(())
    }

    /// Drops every cached block of deleted `files` and tells their workers to remove them.
    pub fn remove_files(&self, files: &[u64]) {
        self.drop_files(files, true);
    }

    /// Drops every cached block of `files` (freed: they may be cached again later).
    pub fn free_files(&self, files: &[u64]) {
        self.drop_files(files, false);
    }

    fn drop_files(&self, files: &[u64], deleted: bool) {
        if files.is_empty() {
            return;
        }
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if deleted {
            if inner.tombstones.len() + files.len() > TOMBSTONES {
                inner.tombstones.clear();
            }
            inner.tombstones.extend(files.iter().copied());
        }
        let mut blocks = Vec::new();
        for f in files {
            let range = ids::block_id(*f, 0)..ids::block_id(f.saturating_add(1), 0);
            blocks.extend(inner.blocks.range(range).map(|(b, _)| *b));
        }
        for b in &blocks {
            if let Some(meta) = inner.blocks.remove(b) {
                for loc in meta.locations {
                    if let Some(w) = inner.workers.get_mut(&loc.worker) {
                        w.blocks.remove(b);
                        if w.state == WorkerState::Live {
                            w.to_remove.insert(*b);
                        }
                    }
                }
            }
        }
    }

    /// Committed length of a block with at least one location, `None` if nowhere cached.
    pub fn committed_length(&self, block: u64) -> Option<Option<u64>> {
        let inner = self.inner.lock();
        inner
            .blocks
            .get(&block)
            .filter(|m| !m.locations.is_empty())
            .map(|m| m.length)
    }

    /// Block infos of a file, with locations.
    pub fn block_infos(&self, r: &InodeRecord) -> Vec<BlockInfo> {
        let inner = self.inner.lock();
        (0..ids::block_count(r.length, r.block_size))
            .map(|i| {
                let id = ids::block_id(r.id, i);
                let locations = inner
                    .blocks
                    .get(&id)
                    .map(|m| {
                        m.locations
                            .iter()
                            .filter_map(|l| {
                                inner.workers.get(&l.worker).map(|w| BlockLocation {
                                    worker_id: l.worker,
                                    address: Some(w.address.clone()),
                                    tier: l.tier.clone(),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                BlockInfo {
                    block_id: id,
                    length: ids::block_length(r.length, r.block_size, i),
                    offset: i * r.block_size,
                    locations,
                }
            })
            .collect()
    }

    /// (in the top tier, anywhere) as percentages of the file's bytes.
    pub fn percentages(&self, r: &InodeRecord) -> (u32, u32) {
        if r.is_dir || r.length == 0 {
            return (0, 0);
        }
        let inner = self.inner.lock();
        let (mut mem, mut any) = (0u64, 0u64);
        for i in 0..ids::block_count(r.length, r.block_size) {
            let Some(meta) = inner.blocks.get(&ids::block_id(r.id, i)) else {
                continue;
            };
            if meta.locations.is_empty() {
                continue;
            }
            let len = ids::block_length(r.length, r.block_size, i);
            any += len;
            if meta.locations.iter().any(|l| l.ordinal == 0) {
                mem += len;
            }
        }
        let pct = |x: u64| ((x as u128 * 100) / r.length as u128) as u32;
        (pct(mem), pct(any))
    }

    /// A live worker holding `block`, else any live worker (round-robin by id), for persisting.
    pub fn choose_worker(&self, block: Option<u64>, salt: u64) -> Option<u64> {
        let inner = self.inner.lock();
        if let Some(b) = block {
            if let Some(meta) = inner.blocks.get(&b) {
                if let Some(l) = meta.locations.iter().find(|l| {
                    inner
                        .workers
                        .get(&l.worker)
                        .is_some_and(|w| w.state == WorkerState::Live)
                }) {
                    return Some(l.worker);
                }
            }
        }
        let mut live: Vec<u64> = inner
            .workers
            .values()
            .filter(|w| w.state == WorkerState::Live)
            .map(|w| w.id)
            .collect();
        if live.is_empty() {
            return None;
        }
        live.sort_unstable();
        Some(live[(salt % live.len() as u64) as usize])
    }

    pub fn is_live(&self, worker: u64) -> bool {
        matches!(self.inner.lock().workers.get(&worker), Some(w) if w.state == WorkerState::Live)
    }

    /// Queues a persist command for `worker`'s next heartbeat.
    pub fn queue_persist(&self, worker: u64, cmd: PersistCommand) -> bool {
        let mut inner = self.inner.lock();
        match inner.workers.get_mut(&worker) {
            Some(w) if w.state == WorkerState::Live => {
                w.to_persist.push(cmd);
                true
            }
            _ => false,
        }
    }

    /// Declares workers silent longer than the timeout LOST and drops their locations.
    pub fn detect_lost(&self) -> Vec<u64> {
        let cutoff = now_ms() - self.worker_timeout.as_millis() as i64;
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let mut lost = Vec::new();
        for w in inner.workers.values_mut() {
            if w.state == WorkerState::Live && w.last_heartbeat_ms < cutoff {
                w.state = WorkerState::Lost;
                w.to_remove.clear();
                w.to_persist.clear();
                for b in w.blocks.drain() {
                    drop_location(&mut inner.blocks, b, w.id);
                }
                lost.push(w.id);
            }
        }
        drop(guard);
        for id in &lost {
            self.metrics.workers_lost.inc();
            tracing::warn!(worker_id = id, timeout = ?self.worker_timeout, "worker lost: no heartbeat within the timeout; its block locations are dropped");
        }
        lost
    }

    pub fn set_pinned(&self, file_id: u64, pinned: bool) {
        let mut p = self.pinned.write();
        if pinned {
            p.insert(file_id);
        } else {
            p.remove(&file_id);
        }
    }

    pub fn pinned_ids(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.pinned.read().iter().copied().collect();
        v.sort_unstable();
        v
    }

    pub fn workers(&self) -> Vec<WorkerInfo> {
        let inner = self.inner.lock();
        let mut v: Vec<WorkerInfo> = inner
            .workers
            .values()
            .map(|w| WorkerInfo {
                id: w.id,
                address: Some(w.address.clone()),
                state: match w.state {
                    WorkerState::Live => "LIVE".into(),
                    WorkerState::Lost => "LOST".into(),
                },
                last_heartbeat_ms: w.last_heartbeat_ms,
                start_time_ms: w.start_time_ms,
                tiers: w.tiers.clone(),
                block_count: w.blocks.len() as u64,
                capacity_bytes: w.tiers.iter().map(|t| t.capacity_bytes).sum(),
                used_bytes: w.tiers.iter().map(|t| t.used_bytes).sum(),
            })
            .collect();
        v.sort_by_key(|w| w.id);
        v
    }

    pub fn capacity(&self) -> Capacity {
        let inner = self.inner.lock();
        let mut c = Capacity {
            block_count: inner
                .blocks
                .values()
                .filter(|m| !m.locations.is_empty())
                .count() as u64,
            ..Default::default()
        };
        let mut tiers: Vec<TierUsage> = Vec::new();
        for w in inner.workers.values() {
            if w.state != WorkerState::Live {
                c.lost_workers += 1;
                continue;
            }
            c.live_workers += 1;
            for t in &w.tiers {
                c.capacity_bytes += t.capacity_bytes;
                c.used_bytes += t.used_bytes;
                match tiers.iter_mut().find(|x| x.alias == t.alias) {
                    Some(x) => {
                        x.capacity_bytes += t.capacity_bytes;
                        x.used_bytes += t.used_bytes;
                        x.block_count += t.block_count;
                        x.ordinal = x.ordinal.min(t.ordinal);
                    }
                    None => tiers.push(t.clone()),
                }
            }
        }
        tiers.sort_by_key(|t| (t.ordinal, t.alias.clone()));
        c.tiers = tiers;
        c
    }
}

fn add_location(meta: &mut BlockMeta, worker: u64, tier: &str, ordinal: u32) {
    match meta.locations.iter_mut().find(|l| l.worker == worker) {
        // A block moved to another tier of the same worker.
        Some(l) => {
            l.tier = tier.to_string();
            l.ordinal = ordinal;
        }
        None => meta.locations.push(Location {
            worker,
            tier: tier.to_string(),
            ordinal,
        }),
    }
}

fn drop_location(blocks: &mut BTreeMap<u64, BlockMeta>, block: u64, worker: u64) {
    if let Some(meta) = blocks.get_mut(&block) {
        meta.locations.retain(|l| l.worker != worker);
        if meta.locations.is_empty() {
            blocks.remove(&block);
        }
    }
}

#[cfg(test)]
mod tests {
    use alluvium_proto::{BlockReport, TierBlocks};

    use super::*;
    use crate::metastore::MetaStore;
    use crate::testutil::{register, tiers, Env};

    fn hb(worker: u64) -> WorkerHeartbeatRequest {
        WorkerHeartbeatRequest {
            worker_id: worker,
            tiers: tiers(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn register_heartbeat_deltas_and_orphans() {
        let env = Env::new();
        let su = env.su();
        let w = register(&env.blocks, "h1");
        let id = env.cached_file(&su, "/f", 2048, w, false).await;
        let (b0, b1) = (ids::block_id(id, 0), ids::block_id(id, 1));
        // A second worker reports a copy of b1 (moved to SSD) plus an orphan of no file.
        let w2 = register(&env.blocks, "h2");
        let orphan = ids::block_id(999_999, 0);
        let beyond = ids::block_id(id, 5); // past the end of a complete file
        let mut req = hb(w2);
        req.added_blocks = vec![
            BlockReport {
                block_id: b1,
                tier: "SSD".into(),
                length: 1024,
            },
            BlockReport {
                block_id: orphan,
                tier: "MEM".into(),
                length: 1,
            },
            BlockReport {
                block_id: beyond,
                tier: "MEM".into(),
                length: 1,
            },
        ];
        let resp = env.blocks.heartbeat(req).unwrap();
        assert!(!resp.register);
        let mut removed = resp.remove_block_ids.clone();
        removed.sort_unstable();
        let mut want = vec![orphan, beyond];
        want.sort_unstable();
        assert_eq!(removed, want);
        let rec = env.store.get_inode(id).unwrap().unwrap();
        let infos = env.blocks.block_infos(&rec);
        assert_eq!(infos[1].locations.len(), 2);
        // Worker 1 drops b0: the file is only partly cached now.
        let mut req = hb(w);
        req.removed_block_ids = vec![b0];
        env.blocks.heartbeat(req).unwrap();
        // b1 is still in MEM on worker 1 (and on SSD on worker 2).
        assert_eq!(env.blocks.percentages(&rec), (50, 50));
        // Capacity sums live workers per tier.
        let c = env.blocks.capacity();
        assert_eq!((c.live_workers, c.capacity_bytes), (2, 2 * (11u64 << 30)));
        assert_eq!(c.tiers[0].alias, "MEM");
        assert_eq!(c.block_count, 1);
        // Registration with orphans queues their removal for the first heartbeat.
        let resp = env
            .blocks
            .register(RegisterWorkerRequest {
                address: Some(WorkerNetAddress {
                    host: "h3".into(),
                    rpc_port: 1,
                    http_port: 2,
                }),
                tiers: tiers(),
                blocks: vec![TierBlocks {
                    tier: "MEM".into(),
                    block_ids: vec![orphan, b0],
                }],
                non_durable_block_ids: vec![b0],
            })
            .unwrap();
        let resp = env.blocks.heartbeat(hb(resp.worker_id)).unwrap();
        assert_eq!(resp.remove_block_ids, vec![orphan]);
        assert_eq!(env.blocks.percentages(&rec), (100, 100));
        // Deleting the file queues removal at every holder.
        env.ns.delete(&su, "/f", false, false).await.unwrap();
        let resp = env.blocks.heartbeat(hb(w2)).unwrap();
        assert_eq!(resp.remove_block_ids, vec![b1]);
        // Committing a block of a deleted file is refused and the block sent back.
        assert!(env
            .blocks
            .commit_block(&CommitBlockRequest {
                worker_id: w,
                block_id: b0,
                length: 1,
                tier: "MEM".into()
            })
            .is_err());
        assert!(env
            .blocks
            .heartbeat(hb(w))
            .unwrap()
            .remove_block_ids
            .contains(&b0));
    }

    #[tokio::test]
    async fn committed_blocks_count_as_used_until_the_next_heartbeat() {
        let env = Env::new();
        let su = env.su();
        let w = register(&env.blocks, "h1");
        assert_eq!(env.blocks.capacity().used_bytes, 1 << 20);
        env.cached_file(&su, "/f", 2048, w, false).await;
        assert_eq!(env.blocks.capacity().used_bytes, (1 << 20) + 2048);
        // The heartbeat's own figure replaces the estimate.
        env.blocks.heartbeat(hb(w)).unwrap();
        assert_eq!(env.blocks.capacity().used_bytes, 1 << 20);
    }

    #[tokio::test]
    async fn reports_racing_a_delete_do_not_resurrect_locations() {
        let env = Env::new();
        let su = env.su();
        let w = register(&env.blocks, "h1");
        let id = env.cached_file(&su, "/f", 10, w, false).await;
        // The namespace dropped the file's blocks (its record may still be readable by a report
        // checked just before): a late report of the block is sent back.
        env.blocks.remove_files(&[id]);
        let mut req = hb(w);
        req.added_blocks = vec![BlockReport {
            block_id: ids::block_id(id, 0),
            tier: "MEM".into(),
            length: 10,
        }];
        let resp = env.blocks.heartbeat(req).unwrap();
        assert!(resp.remove_block_ids.contains(&ids::block_id(id, 0)));
        assert!(env.blocks.committed_length(ids::block_id(id, 0)).is_none());
    }

    #[tokio::test]
    async fn lost_workers_and_reregistration() {
        let env = Env::new();
        let su = env.su();
        let w = register(&env.blocks, "h1");
        let id = env.cached_file(&su, "/f", 10, w, false).await;
        let rec = env.store.get_inode(id).unwrap().unwrap();
        assert_eq!(env.blocks.percentages(&rec), (100, 100));
        // Silent for longer than the timeout (200ms in tests): lost, locations dropped.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while env.blocks.detect_lost().is_empty() {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(env.blocks.percentages(&rec), (0, 0));
        assert_eq!(env.blocks.workers()[0].state, "LOST");
        assert!(env.blocks.heartbeat(hb(w)).unwrap().register);
        // Coming back from LOST with the same address keeps the id.
        assert_eq!(register(&env.blocks, "h1"), w);
        assert!(!env.blocks.heartbeat(hb(w)).unwrap().register);
        // After a master restart, old ids are unknown: the worker must register again and
        // report its blocks; locations are rebuilt from the report.
        let env = env.restart();
        assert!(env.blocks.heartbeat(hb(w)).unwrap().register);
        let resp = env
            .blocks
            .register(RegisterWorkerRequest {
                address: Some(WorkerNetAddress {
                    host: "h1".into(),
                    rpc_port: 29999,
                    http_port: 30000,
                }),
                tiers: tiers(),
                blocks: vec![TierBlocks {
                    tier: "MEM".into(),
                    block_ids: vec![ids::block_id(id, 0)],
                }],
                non_durable_block_ids: vec![],
            })
            .unwrap();
        assert_ne!(resp.worker_id, w);
        let rec = env.store.get_inode(id).unwrap().unwrap();
        assert_eq!(env.blocks.percentages(&rec), (100, 100));
        assert_eq!(
            env.blocks.block_infos(&rec)[0].locations[0].worker_id,
            resp.worker_id
        );
    }

    #[tokio::test]
    async fn durable_and_pinned_ids() {
        let env = Env::new();
        let su = env.su();
        let w = register(&env.blocks, "h1");
        let cached = env.cached_file(&su, "/c", 10, w, false).await;
        let persisted = env.through_file(&su, "/p", b"0123456789").await;
        let (bc, bp) = (ids::block_id(cached, 0), ids::block_id(persisted, 0));
        let mut req = hb(w);
        req.non_durable_block_ids = vec![bc, bp];
        let resp = env.blocks.heartbeat(req).unwrap();
        assert_eq!(resp.durable_block_ids, vec![bp]);
        assert!(resp.pinned_file_ids.is_empty());
        env.ns
            .set_attribute(
                &su,
                &alluvium_proto::SetAttributeRequest {
                    path: "/c".into(),
                    pinned: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            env.blocks.heartbeat(hb(w)).unwrap().pinned_file_ids,
            vec![cached]
        );
        // The pinned set is persisted.
        let env = env.restart();
        assert_eq!(env.blocks.pinned_ids(), vec![cached]);
    }
}
