//! The fence between publishing a persisted file and deleting or renaming what holds it.
//!
//! A background persist ends with the master renaming the worker's staged copy to the file's
//! UFS path and then marking the file PERSISTED. That is UFS I/O, done outside the namespace
//! lock, so a delete or rename of the file (or of a directory above it) could run in between:
//! the delete would find the file not yet persisted and leave the UFS alone, then the publish
//! would put the file back in the UFS, and the next metadata sync would bring it back.
//!
//! Both sides register here while holding the namespace mutation lock ([`Tx`]), and each checks
//! the other in the same critical section, so one of them always sees the other:
//! - a publish begins only when no ancestor-or-self of the file is being detached (else it is
//!   deferred and retried by the persist scheduler);
//! - a delete or rename (a detach) begins only when no file below its target is being
//!   published; otherwise it waits, bounded, for those publishes to end.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use alluvium_common::{Error, Result};
use alluvium_proto::InodeRecord;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::inode::ROOT_ID;
use crate::tx::Tx;

/// Longest a delete or rename waits for publishes below it: under the client's RPC deadline.
pub(crate) const DETACH_WAIT: Duration = Duration::from_secs(20);

#[derive(Default)]
pub(crate) struct PublishFence {
    state: Mutex<FenceState>,
    /// Woken whenever a publish ends.
    publish_ended: Notify,
}

#[derive(Default)]
struct FenceState {
    /// Files whose staged copy is being renamed into place.
    publishing: HashSet<u64>,
    /// Inodes being deleted or renamed, with how many operations hold each.
    detaching: HashMap<u64, usize>,
}

/// Why a publish cannot begin now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotNow {
    /// The file or a directory above it is being deleted or renamed.
    Detaching,
    /// Another worker's copy of the same file is being published (a command handed out again
    /// after its worker was presumed lost, and both finished).
    AlreadyPublishing,
}

/// A publish in progress; ends when dropped.
pub(crate) struct PublishGuard<'a> {
    fence: &'a PublishFence,
    file: u64,
}

/// A delete or rename in progress; ends when dropped.
pub(crate) struct DetachGuard<'a> {
    fence: &'a PublishFence,
    target: u64,
}

impl PublishFence {
    /// Begins publishing `file`, unless it or a directory above it is being deleted or renamed,
    /// or another copy of it is being published. `tx` proves the caller holds the mutation lock.
    pub(crate) fn begin_publish<'a>(
        &'a self,
        tx: &Tx<'_>,
        file: &InodeRecord,
    ) -> Result<std::result::Result<PublishGuard<'a>, NotNow>> {
        let mut st = self.state.lock();
        if !st.detaching.is_empty()
            && any_ancestor_or_self(tx, file.id, |id| st.detaching.contains_key(&id))?
        {
            return Ok(Err(NotNow::Detaching));
        }
        if !st.publishing.insert(file.id) {
            return Ok(Err(NotNow::AlreadyPublishing));
        }
        Ok(Ok(PublishGuard {
            fence: self,
            file: file.id,
        }))
    }

    /// Begins detaching (deleting or renaming) `target` at `path`, once no file below it is
    /// being published. `tx` opens a transaction (taking the mutation lock) for each check.
    /// Fails with UNAVAILABLE when publishes below do not end within [`DETACH_WAIT`].
    pub(crate) async fn begin_detach<'a, 't, F>(
        &'a self,
        tx: F,
        target: u64,
        path: &str,
    ) -> Result<DetachGuard<'a>>
    where
        F: Fn() -> Tx<'t>,
    {
        let deadline = tokio::time::Instant::now() + DETACH_WAIT;
        loop {
            // Created before the check, so an end between the check and the wait is not missed.
            let ended = self.publish_ended.notified();
            {
                let tx = tx();
                let mut st = self.state.lock();
                let mut busy = false;
                for &file in &st.publishing {
                    if any_ancestor_or_self(&tx, file, |id| id == target)? {
                        busy = true;
                        break;
                    }
                }
                if !busy {
                    *st.detaching.entry(target).or_default() += 1;
                    return Ok(DetachGuard {
                        fence: self,
                        target,
                    });
                }
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return Err(Error::unavailable(format!(
                    "{path}: a file below is being persisted to the UFS right now; try again"
                )));
            }
        }
    }
}

impl Drop for PublishGuard<'_> {
    fn drop(&mut self) {
        self.fence.state.lock().publishing.remove(&self.file);
        self.fence.publish_ended.notify_waiters();
    }
}

impl Drop for DetachGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.fence.state.lock();
        if let Some(n) = st.detaching.get_mut(&self.target) {
            *n -= 1;
            if *n == 0 {
                st.detaching.remove(&self.target);
            }
        }
    }
}

/// Whether `pred` holds for `id` or any directory above it (up to the root).
fn any_ancestor_or_self(tx: &Tx<'_>, id: u64, pred: impl Fn(u64) -> bool) -> Result<bool> {
    let mut cur = id;
    loop {
        if pred(cur) {
            return Ok(true);
        }
        if cur == ROOT_ID {
            return Ok(false);
        }
        match tx.get(cur)? {
            Some(r) => cur = r.parent_id,
            None => return Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use alluvium_common::ErrorCode;

    use super::*;
    use crate::testutil::{register, Env};

    /// `/d/f` and `/e`: (env, file record, id of /d, id of /e).
    async fn tree() -> (Env, InodeRecord, u64, u64) {
        let env = Env::new();
        let su = env.su();
        let w = register(&env.blocks, "h");
        let f = env.cached_file(&su, "/d/f", 1, w, false).await;
        env.mkdir(&su, "/e", 0o755).await;
        let id = |p: &'static str| {
            let ns = env.ns.clone();
            let su = su.clone();
            async move { ns.get_status(&su, p, false).await.unwrap().file_id }
        };
        let (d, e) = (id("/d").await, id("/e").await);
        let rec = env.ns.tx().get(f).unwrap().unwrap();
        (env, rec, d, e)
    }

    fn publish<'a>(
        fence: &'a PublishFence,
        env: &Env,
        f: &InodeRecord,
    ) -> Option<PublishGuard<'a>> {
        let tx = env.ns.tx();
        fence.begin_publish(&tx, f).unwrap().ok()
    }

    #[tokio::test]
    async fn a_detach_above_a_publish_waits_for_it_to_end() {
        let (env, f, d, _) = tree().await;
        let fence = PublishFence::default();
        let publishing = publish(&fence, &env, &f).expect("nothing detaching");
        let detach = fence.begin_detach(|| env.ns.tx(), d, "/d");
        tokio::pin!(detach);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut detach)
                .await
                .is_err(),
            "the delete of /d went ahead while /d/f was being published"
        );
        drop(publishing);
        tokio::time::timeout(Duration::from_secs(5), detach)
            .await
            .expect("the delete still waits after the publish ended")
            .unwrap();
    }

    #[tokio::test]
    async fn a_detach_elsewhere_does_not_wait() {
        let (env, f, _, e) = tree().await;
        let fence = PublishFence::default();
        let _publishing = publish(&fence, &env, &f).unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            fence.begin_detach(|| env.ns.tx(), e, "/e"),
        )
        .await
        .expect("a delete of /e waited for a publish in /d")
        .unwrap();
    }

    #[tokio::test]
    async fn a_publish_below_a_detach_is_deferred_until_it_ends() {
        let (env, f, d, _) = tree().await;
        let fence = PublishFence::default();
        let detach = fence.begin_detach(|| env.ns.tx(), d, "/d").await.unwrap();
        assert!(
            publish(&fence, &env, &f).is_none(),
            "published below a delete in progress"
        );
        // Two operations on one target: the fence stays until both end.
        let again = fence
            .begin_detach(|| env.ns.tx(), f.id, "/d/f")
            .await
            .unwrap();
        drop(detach);
        assert!(
            publish(&fence, &env, &f).is_none(),
            "the file itself is being deleted"
        );
        drop(again);
        assert!(publish(&fence, &env, &f).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_detach_gives_up_with_unavailable_when_the_publish_does_not_end() {
        let (env, f, d, _) = tree().await;
        let fence = PublishFence::default();
        let _publishing = publish(&fence, &env, &f).unwrap();
        let started = tokio::time::Instant::now();
        let e = fence
            .begin_detach(|| env.ns.tx(), d, "/d")
            .await
            .err()
            .unwrap();
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(e.message.contains("/d"), "{}", e.message);
        assert_eq!(started.elapsed().as_secs(), DETACH_WAIT.as_secs());
    }
}
