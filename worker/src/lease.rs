//! Short-circuit leases: a client on this host locks a block for `(session, block)` and reads its
//! file directly. The lock lasts until `CloseLocalBlock`, or until the lease runs out unrenewed
//! (calling `OpenLocalBlock` again renews it), so a client that dies cannot pin space forever.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::store::BlockLock;

struct Lease {
    lock: BlockLock,
    expires: Instant,
}

pub struct Leases {
    duration: Duration,
    map: Mutex<HashMap<(u64, u64), Lease>>,
}

/// What the client needs to read the block.
#[derive(Debug, Clone)]
pub struct LeaseInfo {
    pub path: String,
    pub length: u64,
    pub tier: String,
}

impl Leases {
    pub fn new(duration: Duration) -> Self {
        Self {
            duration,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Renews an existing lease; `None` when there is none.
    pub fn renew(&self, session: u64, block: u64) -> Option<LeaseInfo> {
        let mut map = self.map.lock();
        let lease = map.get_mut(&(session, block))?;
        lease.expires = Instant::now() + self.duration;
        Some(info(&lease.lock))
    }

    /// Starts a lease holding `lock`.
    pub fn insert(&self, session: u64, lock: BlockLock) -> LeaseInfo {
        let i = info(&lock);
        let old = self.map.lock().insert(
            (session, lock.block_id),
            Lease {
                lock,
                expires: Instant::now() + self.duration,
            },
        );
        drop(old); // releases a replaced lock outside the map's mutex
        i
    }

    /// Ends a lease. Returns whether there was one.
    pub fn close(&self, session: u64, block: u64) -> bool {
        let old = self.map.lock().remove(&(session, block));
        old.is_some()
    }

    /// Ends leases that ran out. Returns how many.
    pub fn expire(&self) -> usize {
        let now = Instant::now();
        let expired: Vec<Lease> = {
            let mut map = self.map.lock();
            let keys: Vec<(u64, u64)> = map
                .iter()
                .filter(|(_, l)| l.expires <= now)
                .map(|(k, _)| *k)
                .collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        for l in &expired {
            tracing::info!(block_id = l.lock.block_id, "short-circuit lease expired");
        }
        expired.len()
    }
}

fn info(lock: &BlockLock) -> LeaseInfo {
    LeaseInfo {
        path: lock.path.to_string_lossy().into_owned(),
        length: lock.length,
        tier: lock.tier.clone(),
    }
}

/// Ends expired leases, and aborts writes whose writer vanished (a short-circuit client that
/// died between CreateLocalBlock and CommitLocalBlock), until `shutdown`.
pub async fn run_expiry(
    leases: std::sync::Arc<Leases>,
    store: std::sync::Arc<crate::store::BlockStore>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let every = (leases.duration() / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    // Generous: a block write that takes this long has been abandoned.
    let stale_write = (leases.duration() * 10).max(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        leases.expire();
        for (session, block) in store.stale_writes(stale_write) {
            tracing::warn!(
                block_id = block,
                session,
                "aborting an abandoned block write"
            );
            store.abort(session, block).await;
        }
    }
}
