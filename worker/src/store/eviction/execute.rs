//! Carrying out a plan of moves and drops (eviction, promotion): the metadata changes under the
//! lock, then the file copies and deletes after it.

use std::path::PathBuf;

use alluvium_common::time::now_ms;
use alluvium_common::Result;

use super::planner::{Op, Planner};

use crate::store::block_store::BlockStore;
use crate::store::dir::delete_block_file;
use crate::store::meta::Loc;
use crate::store::state::not_cached;
use crate::store::state::EvictionRecord;
use crate::store::state::State;

/// File work decided under the lock, done after it.
pub(in crate::store) enum Exec {
    Delete(PathBuf),
    Move {
        block: u64,
        len: u64,
        from: Loc,
        to: Loc,
        promote: bool,
    },
}

impl BlockStore {
    /// Moves a block of a lower tier to the top tier, making room there. Best effort: returns
    /// false (and leaves the block where it is) when it is locked, moving, or room cannot be made.
    pub async fn promote(&self, block_id: u64) -> Result<bool> {
        let execs = {
            let mut inner = self.inner.lock();
            let Some(m) = inner.blocks.get(&block_id) else {
                return Err(not_cached(block_id));
            };
            if m.loc.tier == 0 || m.lock_count > 0 || m.moving || m.pending_remove {
                return Ok(false);
            }
            let (from, len) = (m.loc, m.length);
            let mut planner = Planner::new(&inner, &self.tiers, Some(block_id));
            let Some(d) = planner.room_in_tier(0, len) else {
                tracing::debug!(block_id, "no room to promote");
                return Ok(false);
            };
            let mut ops = planner.into_ops();
            ops.push(Op::Move {
                block: block_id,
                len,
                from,
                to: Loc { tier: 0, dir: d },
            });
            let mut execs = self.apply(&mut inner, ops);
            if let Some(Exec::Move { promote, .. }) = execs.last_mut() {
                *promote = true;
            }
            execs
        };
        Ok(self.execute(execs).await)
    }

    /// Applies planned ops to the metadata (under the lock) and returns the file work.
    pub(in crate::store) fn apply(&self, inner: &mut State, ops: Vec<Op>) -> Vec<Exec> {
        let mut execs = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Drop { block, len, at } => {
                    if inner.forget(block).is_none() {
                        continue;
                    }
                    inner.record(EvictionRecord {
                        block_id: block,
                        from: self.alias(at.tier).to_string(),
                        to: None,
                        length: len,
                        at_ms: now_ms(),
                    });
                    self.metrics.evicted(self.alias(at.tier));
                    tracing::debug!(
                        block_id = block,
                        tier = self.alias(at.tier),
                        "dropping block"
                    );
                    execs.push(Exec::Delete(
                        self.tiers[at.tier].dirs[at.dir].block_path(block),
                    ));
                }
                Op::Move {
                    block,
                    len,
                    from,
                    to,
                } => {
                    let Some(m) = inner.blocks.get_mut(&block) else {
                        continue;
                    };
                    m.moving = true;
                    inner.sub_used(from, len);
                    inner.add_used(to, len);
                    execs.push(Exec::Move {
                        block,
                        len,
                        from,
                        to,
                        promote: false,
                    });
                }
            }
        }
        execs
    }

    /// Does the file work of applied ops, in order (lower tiers first, so space is freed before
    /// it is filled). Returns whether every move succeeded.
    pub(in crate::store) async fn execute(&self, execs: Vec<Exec>) -> bool {
        let mut ok = true;
        for e in execs {
            match e {
                Exec::Delete(path) => delete_block_file(path).await,
                Exec::Move {
                    block,
                    len,
                    from,
                    to,
                    promote,
                } => ok &= self.finish_move(block, len, from, to, promote).await,
            }
        }
        ok
    }

    pub(in crate::store) async fn finish_move(
        &self,
        block: u64,
        len: u64,
        from: Loc,
        to: Loc,
        promote: bool,
    ) -> bool {
        let src = self.tiers[from.tier].dirs[from.dir].block_path(block);
        let dst = self.tiers[to.tier].dirs[to.dir].block_path(block);
        // Same filesystem: a hard link is instant and leaves the old name valid until the switch.
        let copied = match tokio::fs::hard_link(&src, &dst).await {
            Ok(()) => Ok(len),
            Err(_) => tokio::fs::copy(&src, &dst).await,
        };
        let (from_alias, to_alias) = (self.alias(from.tier), self.alias(to.tier));
        let (delete, ok) = {
            let mut inner = self.inner.lock();
            let Some(m) = inner.blocks.get_mut(&block) else {
                return false;
            };
            m.moving = false;
            match &copied {
                Ok(_) => {
                    m.loc = to;
                    let remove_now = m.pending_remove && m.lock_count == 0;
                    inner.note_added(block, to.tier, len);
                    if !promote {
                        inner.record(EvictionRecord {
                            block_id: block,
                            from: from_alias.to_string(),
                            to: Some(to_alias.to_string()),
                            length: len,
                            at_ms: now_ms(),
                        });
                    }
                    let mut delete = vec![src.clone()];
                    if remove_now && inner.forget(block).is_some() {
                        delete.push(dst.clone());
                    }
                    (delete, true)
                }
                Err(_) => {
                    inner.sub_used(to, len);
                    inner.add_used(from, len);
                    let mut delete = vec![dst.clone()];
                    if inner.removable_now(block) && inner.forget(block).is_some() {
                        delete.push(src.clone());
                    }
                    (delete, false)
                }
            }
        };
        self.moved.notify_waiters();
        match copied {
            Ok(_) if promote => {
                self.metrics.promoted();
                tracing::debug!(block_id = block, from = from_alias, "promoted");
            }
            Ok(_) => {
                self.metrics.moved(from_alias, to_alias);
                tracing::debug!(block_id = block, from = from_alias, to = to_alias, "moved");
            }
            Err(ref e) => {
                tracing::warn!(block_id = block, from = %src.display(), to = %dst.display(), error = %e, "moving a block failed; it stays where it was")
            }
        }
        for p in delete {
            delete_block_file(p).await;
        }
        ok
    }
}
