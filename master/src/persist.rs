//! The async-persist scheduler. Files marked TO_BE_PERSISTED (key in the `persist` column
//! family) are handed to a live worker, preferably one holding the file's first block, as a
//! `PersistCommand` in its next heartbeat response. The worker copies the file to the UFS and
//! answers with `PersistDone`; failures, lost workers and silent workers are retried with
//! exponential backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::time::now_ms;
use alluvium_common::{ids, Result};
use alluvium_proto::UfsLocation;
use parking_lot::Mutex;

use crate::block_master::BlockMaster;
use crate::namespace::{Namespace, Publish};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A worker that neither succeeded nor failed within this long is assumed to have dropped it.
const IN_FLIGHT_TIMEOUT: Duration = Duration::from_secs(600);
/// Queue entries looked at per tick.
const SCAN_LIMIT: usize = 10_000;

#[derive(Debug, Default, Clone)]
struct Job {
    attempts: u32,
    next_try_ms: i64,
    in_flight: Option<(u64, i64)>,
}

pub struct PersistScheduler {
    ns: Arc<Namespace>,
    blocks: Arc<BlockMaster>,
    base_delay: Duration,
    jobs: Mutex<HashMap<u64, Job>>,
}

impl PersistScheduler {
    pub fn new(ns: Arc<Namespace>, blocks: Arc<BlockMaster>, base_delay: Duration) -> Self {
        Self {
            ns,
            blocks,
            base_delay: base_delay.max(Duration::from_millis(100)),
            jobs: Mutex::new(HashMap::new()),
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.min(16);
        (self.base_delay * factor).min(MAX_BACKOFF)
    }

    /// One scheduling pass: hands due files to workers. Returns how many commands were queued.
    pub fn tick(&self) -> Result<usize> {
        let now = now_ms();
        let queue = self.ns.store.persist_queue(0, SCAN_LIMIT)?;
        let mut queued = 0;
        let mut seen = std::collections::HashSet::with_capacity(queue.len());
        for id in queue {
            seen.insert(id);
            let job = self.jobs.lock().get(&id).cloned().unwrap_or_default();
            if let Some((worker, since)) = job.in_flight {
                let timed_out = now - since > IN_FLIGHT_TIMEOUT.as_millis() as i64;
                if self.blocks.is_live(worker) && !timed_out {
                    continue;
                }
                tracing::warn!(
                    file_id = id,
                    worker_id = worker,
                    "persist: worker lost or silent; retrying elsewhere"
                );
                self.fail(id, now);
                continue;
            }
            if job.next_try_ms > now {
                continue;
            }
            let Some(cmd) = self.ns.persist_command(id)? else {
                self.jobs.lock().remove(&id);
                continue;
            };
            let first = (cmd.length > 0).then(|| ids::block_id(id, 0));
            let Some(worker) = self.blocks.choose_worker(first, id) else {
                continue; // no live worker: try again next tick
            };
            let path = cmd.path.clone();
            if self.blocks.queue_persist(worker, cmd) {
                self.jobs.lock().insert(
                    id,
                    Job {
                        in_flight: Some((worker, now)),
                        ..job
                    },
                );
                queued += 1;
                tracing::debug!(file_id = id, path = %path, worker_id = worker, "persist: command queued");
            }
        }
        // Forget jobs whose files left the queue (deleted, persisted).
        self.jobs.lock().retain(|id, _| seen.contains(id));
        Ok(queued)
    }

    fn fail(&self, id: u64, now: i64) {
        let mut jobs = self.jobs.lock();
        let job = jobs.entry(id).or_default();
        job.attempts += 1;
        job.in_flight = None;
        job.next_try_ms = now + self.backoff(job.attempts).as_millis() as i64;
    }

    /// A worker reports the outcome of a persist command: on success the master publishes the
    /// staged copy (or discards it when the file went meanwhile). A publish that fails or must
    /// wait is retried like a failed copy.
    pub async fn done(
        &self,
        worker: u64,
        file_id: u64,
        error: &str,
        staged: Option<&UfsLocation>,
    ) -> Result<()> {
        if !error.is_empty() {
            self.failed(worker, file_id, error);
            return Ok(());
        }
        match self.ns.publish_persisted(file_id, staged).await {
            Ok(Publish::Published) => {
                self.jobs.lock().remove(&file_id);
                self.ns.metrics.persist_done.inc();
                tracing::info!(file_id, worker_id = worker, "persist: file persisted");
            }
            Ok(Publish::Discarded) => {
                self.jobs.lock().remove(&file_id);
                tracing::debug!(
                    file_id,
                    worker_id = worker,
                    "persist: the file went meanwhile; its staged copy was removed"
                );
            }
            Ok(Publish::Deferred) => {
                self.fail(file_id, now_ms());
                tracing::debug!(
                    file_id,
                    worker_id = worker,
                    "persist: a delete or rename above the file is in progress; will retry"
                );
            }
            Err(e) => self.failed(worker, file_id, &format!("publishing the staged copy: {e}")),
        }
        Ok(())
    }

    fn failed(&self, worker: u64, file_id: u64, error: &str) {
        self.fail(file_id, now_ms());
        self.ns.metrics.persist_failed.inc();
        tracing::warn!(
            file_id,
            worker_id = worker,
            error,
            "persist: failed; will retry"
        );
    }

    /// Runs the scheduler every `interval` until `stop` fires.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.tick() {
                tracing::warn!(error = %e, "persist scheduling failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alluvium_proto::{PersistenceState, WorkerHeartbeatRequest};

    use super::*;
    use crate::metastore::MetaStore;
    use crate::testutil::{register, tiers, Env};

    #[tokio::test]
    async fn async_persist_command_flow_with_retry() {
        let env = Env::new();
        let su = env.su();
        let sched = PersistScheduler::new(
            env.ns.clone(),
            env.blocks.clone(),
            Duration::from_millis(100),
        );
        let _other = register(&env.blocks, "h0");
        let w = register(&env.blocks, "h1");
        let id = env.cached_file(&su, "/dir/f", 1500, w, true).await;
        let st = env.ns.get_status(&su, "/dir/f", false).await.unwrap();
        assert_eq!(st.persistence_state, PersistenceState::ToBePersisted as i32);
        // The command goes to the worker holding the first block.
        assert_eq!(sched.tick().unwrap(), 1);
        assert_eq!(sched.tick().unwrap(), 0, "in flight: not handed out twice");
        let hb = |worker| WorkerHeartbeatRequest {
            worker_id: worker,
            tiers: tiers(),
            non_durable_block_ids: vec![ids::block_id(id, 0)],
            ..Default::default()
        };
        let resp = env.blocks.heartbeat(hb(w)).unwrap();
        assert_eq!(resp.persist.len(), 1);
        let cmd = &resp.persist[0];
        assert_eq!(
            (cmd.file_id, cmd.path.as_str(), cmd.length),
            (id, "/dir/f", 1500)
        );
        // Staged: the master publishes it to dir/f on success.
        assert_eq!(
            cmd.ufs.as_ref().unwrap().ufs_path,
            alluvium_ufs::persist_staging_path(id)
        );
        assert_eq!(cmd.blocks.len(), 2);
        assert!(resp.durable_block_ids.is_empty());
        // The worker fails once: retried after the backoff.
        sched.done(w, id, "disk full", None).await.unwrap();
        assert_eq!(sched.tick().unwrap(), 0, "backing off");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sched.tick().unwrap() == 0 {
            assert!(std::time::Instant::now() < deadline, "never retried");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(env.blocks.heartbeat(hb(w)).unwrap().persist.len(), 1);
        // It succeeds: the file is PERSISTED, its parent too, and its blocks durable.
        env.stage_persisted_copy(id, &[7u8; 1500]);
        let staged = resp.persist[0].ufs.clone();
        sched.done(w, id, "", staged.as_ref()).await.unwrap();
        assert_eq!(
            std::fs::read(env.ufs_dir.join("dir/f")).unwrap(),
            vec![7u8; 1500]
        );
        assert!(!env
            .ufs_dir
            .join(alluvium_ufs::persist_staging_path(id))
            .exists());
        let st = env.ns.get_status(&su, "/dir/f", false).await.unwrap();
        assert_eq!(st.persistence_state, PersistenceState::Persisted as i32);
        assert!(
            env.ns
                .get_status(&su, "/dir", false)
                .await
                .unwrap()
                .persisted
        );
        assert!(env.store.persist_queue(0, 10).unwrap().is_empty());
        assert_eq!(
            env.blocks.heartbeat(hb(w)).unwrap().durable_block_ids,
            vec![ids::block_id(id, 0)]
        );
        assert_eq!(sched.tick().unwrap(), 0);
    }

    #[tokio::test]
    async fn lost_worker_commands_are_reassigned() {
        let env = Env::new();
        let su = env.su();
        let sched = PersistScheduler::new(
            env.ns.clone(),
            env.blocks.clone(),
            Duration::from_millis(100),
        );
        let w = register(&env.blocks, "h1");
        env.cached_file(&su, "/f", 10, w, true).await;
        assert_eq!(sched.tick().unwrap(), 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while env.blocks.detect_lost().is_empty() {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // No live worker: nothing to do, the file waits.
        assert_eq!(sched.tick().unwrap(), 0);
        let w2 = register(&env.blocks, "h2");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sched.tick().unwrap() == 0 {
            assert!(std::time::Instant::now() < deadline, "never reassigned");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let resp = env
            .blocks
            .heartbeat(WorkerHeartbeatRequest {
                worker_id: w2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(resp.persist.len(), 1);
    }

    fn scheduler(env: &Env) -> PersistScheduler {
        PersistScheduler::new(
            env.ns.clone(),
            env.blocks.clone(),
            Duration::from_millis(100),
        )
    }

    /// An ASYNC_THROUGH file of `len` bytes at `path` cached on a new worker, and the persist
    /// command that worker gets for it: (worker, file id, command).
    async fn file_being_persisted(
        env: &Env,
        sched: &PersistScheduler,
        path: &str,
        len: u64,
    ) -> (u64, u64, alluvium_proto::PersistCommand) {
        let w = register(&env.blocks, "h1");
        let id = env.cached_file(&env.su(), path, len, w, true).await;
        assert_eq!(sched.tick().unwrap(), 1);
        let cmd = env.blocks.heartbeat(hb(w)).unwrap().persist.remove(0);
        (w, id, cmd)
    }

    /// Retries after the backoff: the next command is handed out within a few seconds.
    async fn retried(sched: &PersistScheduler) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sched.tick().unwrap() == 0 {
            assert!(std::time::Instant::now() < deadline, "never retried");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn hb(worker: u64) -> WorkerHeartbeatRequest {
        WorkerHeartbeatRequest {
            worker_id: worker,
            tiers: tiers(),
            ..Default::default()
        }
    }

    /// Does what a worker does with a persist command: writes the file where the command says.
    fn write_as_told(env: &Env, cmd: &alluvium_proto::PersistCommand, data: &[u8]) {
        let at = env.ufs_dir.join(&cmd.ufs.as_ref().unwrap().ufs_path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, data).unwrap();
    }

    /// Files and directories in the root UFS, as a metadata sync would see them (without
    /// unfinished writes and staged copies).
    fn ufs_entries(env: &Env) -> Vec<String> {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                if alluvium_ufs::is_hidden_path(&rel) {
                    continue;
                }
                if p.is_dir() {
                    out.push(format!("{rel}/"));
                    walk(&p, base, out);
                } else {
                    out.push(rel);
                }
            }
        }
        let mut out = Vec::new();
        walk(&env.ufs_dir, &env.ufs_dir, &mut out);
        out.sort();
        out
    }

    /// The case: an empty file (no blocks for the worker to miss) deleted while a
    /// worker persists it. The copy lands, the worker reports success, and still nothing of the
    /// file is in the UFS afterwards, so no metadata sync can bring it back.
    #[tokio::test]
    async fn a_persist_ending_after_a_delete_brings_nothing_back() {
        let env = Env::with(|c| c.sync_interval = Duration::ZERO);
        let su = env.su();
        let sched = scheduler(&env);
        let (w, id, cmd) = file_being_persisted(&env, &sched, "/d/empty", 0).await;
        env.ns.delete(&su, "/d/empty", false, false).await.unwrap();
        write_as_told(&env, &cmd, b"");
        sched.done(w, id, "", cmd.ufs.as_ref()).await.unwrap();
        assert_eq!(ufs_entries(&env), Vec::<String>::new());
        // A sync of the directory (every listing syncs here) finds nothing to import.
        let mut rx = env
            .ns
            .list_status(&su, "/d", false, "", 0, 0)
            .await
            .unwrap();
        let mut listed = Vec::new();
        while let Some(page) = rx.recv().await {
            listed.extend(page.unwrap());
        }
        assert!(listed.is_empty(), "{listed:?}");
        assert_eq!(sched.tick().unwrap(), 0);
    }

    /// A file renamed while a worker persists it is published at its new path, not the old.
    #[tokio::test]
    async fn a_persist_ending_after_a_rename_lands_at_the_new_path() {
        let env = Env::new();
        let su = env.su();
        let sched = scheduler(&env);
        let (w, id, cmd) = file_being_persisted(&env, &sched, "/old", 10).await;
        env.ns.rename(&su, "/old", "/new").await.unwrap();
        write_as_told(&env, &cmd, &[5u8; 10]);
        sched.done(w, id, "", cmd.ufs.as_ref()).await.unwrap();
        assert_eq!(ufs_entries(&env), vec!["new".to_string()]);
        let st = env.ns.get_status(&su, "/new", false).await.unwrap();
        assert_eq!(st.persistence_state, PersistenceState::Persisted as i32);
    }

    /// A publish meeting a delete in progress above the file waits its turn: nothing is
    /// published, the staged copy is removed (the retry copies again, and the file will likely
    /// go), and the file still waits to be persisted.
    #[tokio::test]
    async fn a_publish_under_a_delete_in_progress_is_deferred() {
        let env = Env::new();
        let su = env.su();
        let sched = scheduler(&env);
        let (w, id, cmd) = file_being_persisted(&env, &sched, "/d/f", 10).await;
        let dir = env.ns.get_status(&su, "/d", false).await.unwrap().file_id;
        write_as_told(&env, &cmd, &[5u8; 10]);
        let detach = env
            .ns
            .publish_fence
            .begin_detach(|| env.ns.tx(), dir, "/d")
            .await
            .unwrap();
        sched.done(w, id, "", cmd.ufs.as_ref()).await.unwrap();
        assert_eq!(ufs_entries(&env), Vec::<String>::new());
        assert!(
            !env.ufs_dir
                .join(alluvium_ufs::persist_staging_path(id))
                .exists(),
            "a deferred copy stays behind"
        );
        let st = env.ns.get_status(&su, "/d/f", false).await.unwrap();
        assert_eq!(st.persistence_state, PersistenceState::ToBePersisted as i32);
        drop(detach);
        retried(&sched).await;
    }

    /// A delete that waited for a publish below it must act on what the publish left: the file
    /// (and its directory) are persisted now, so their UFS copies go too. Planned before the
    /// wait, the delete would have left `d/f` in the UFS for the next sync to bring back.
    #[tokio::test]
    async fn a_delete_that_waited_for_a_publish_removes_what_it_published() {
        let env = Env::new();
        let su = env.su();
        let sched = scheduler(&env);
        let (w, id, cmd) = file_being_persisted(&env, &sched, "/d/f", 10).await;
        write_as_told(&env, &cmd, &[5u8; 10]);
        // Another publish below /d keeps the delete waiting.
        let other = env.cached_file(&su, "/d/other", 1, w, false).await;
        let other = env.ns.tx().get(other).unwrap().unwrap();
        let holding = {
            let tx = env.ns.tx();
            env.ns
                .publish_fence
                .begin_publish(&tx, &other)
                .unwrap()
                .unwrap()
        };
        let delete = {
            let (ns, su) = (env.ns.clone(), su.clone());
            tokio::spawn(async move { ns.delete(&su, "/d", true, false).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!delete.is_finished(), "the delete did not wait");
        sched.done(w, id, "", cmd.ufs.as_ref()).await.unwrap();
        assert_eq!(ufs_entries(&env), vec!["d/".to_string(), "d/f".to_string()]);
        drop(holding);
        delete.await.unwrap().unwrap();
        assert_eq!(ufs_entries(&env), Vec::<String>::new());
    }
}
