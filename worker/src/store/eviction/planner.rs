//! Planning room in a tier. Pure: it reads the store's state and returns the moves and drops that
//! would make room; the store applies the plan under its lock and does the file I/O after.
//!
//! Rules: a candidate (in eviction-policy order) is moved down one tier, making room there
//! recursively; when it cannot move down (last tier, or the lower tiers cannot make room) it is
//! dropped if durable. Locked, moving and pinned blocks are never candidates.

use std::collections::HashSet;

use alluvium_common::ByteSize;

use crate::store::meta::Loc;
use crate::store::state::State;
use crate::store::tier::Tier;

#[derive(Debug, Clone, PartialEq)]
pub(in crate::store) enum Op {
    Move {
        block: u64,
        len: u64,
        from: Loc,
        to: Loc,
    },
    Drop {
        block: u64,
        len: u64,
        at: Loc,
    },
}

/// Simulated state: free bytes per dir after the planned ops, and the blocks already planned.
#[derive(Clone)]
struct Sim {
    free: Vec<Vec<i64>>,
    taken: HashSet<u64>,
    ops: Vec<Op>,
}

pub(in crate::store) struct Planner<'a> {
    inner: &'a State,
    tiers: &'a [Tier],
    exclude: Option<u64>,
    /// Candidates per tier and dir in eviction order, computed when first needed.
    cands: Vec<Option<Vec<Vec<u64>>>>,
    sim: Sim,
}

impl<'a> Planner<'a> {
    /// `exclude`: a block that must not be touched (the one being promoted).
    pub fn new(inner: &'a State, tiers: &'a [Tier], exclude: Option<u64>) -> Self {
        let free = tiers
            .iter()
            .enumerate()
            .map(|(t, tier)| {
                tier.dirs
                    .iter()
                    .enumerate()
                    .map(|(d, dir)| dir.capacity as i64 - inner.used[t][d] as i64)
                    .collect()
            })
            .collect();
        Self {
            inner,
            tiers,
            exclude,
            cands: vec![None; tiers.len()],
            sim: Sim {
                free,
                taken: HashSet::new(),
                ops: Vec::new(),
            },
        }
    }

    pub fn into_ops(self) -> Vec<Op> {
        self.sim.ops
    }

    fn candidates(&mut self, t: usize) -> &Vec<Vec<u64>> {
        if self.cands[t].is_none() {
            // One policy order over the whole tier, split by dir (keeping the order).
            let mut all: Vec<u64> = self
                .inner
                .blocks
                .iter()
                .filter(|(&id, m)| {
                    m.loc.tier == t && self.inner.evictable(id, m) && Some(id) != self.exclude
                })
                .map(|(&id, _)| id)
                .collect();
            self.inner.policy.order(&mut all, self.inner.clock);
            let mut per_dir: Vec<Vec<u64>> = vec![Vec::new(); self.tiers[t].dirs.len()];
            for id in all {
                per_dir[self.inner.blocks[&id].loc.dir].push(id);
            }
            self.cands[t] = Some(per_dir);
        }
        self.cands[t].as_ref().expect("computed above")
    }

    /// A dir of tier `t` with `bytes` free, making room if needed.
    pub fn room_in_tier(&mut self, t: usize, bytes: u64) -> Option<usize> {
        let need = signed(bytes);
        let dirs = &self.tiers[t].dirs;
        // Already free: the dir with the most room.
        if let Some(d) = (0..dirs.len())
            .filter(|&d| self.sim.free[t][d] >= need)
            .max_by_key(|&d| self.sim.free[t][d])
        {
            return Some(d);
        }
        let mut order: Vec<usize> = (0..dirs.len())
            .filter(|&d| dirs[d].capacity >= bytes)
            .collect();
        // Evict where the policy's first choice lives: the dir holding the tier's most
        // evictable block first.
        let firsts: Vec<Option<u64>> = self
            .candidates(t)
            .iter()
            .map(|c| c.first().copied())
            .collect();
        let mut global: Vec<u64> = firsts.iter().flatten().copied().collect();
        self.inner.policy.order(&mut global, self.inner.clock);
        order.sort_by_key(|&d| {
            firsts[d]
                .and_then(|f| global.iter().position(|&g| g == f))
                .unwrap_or(usize::MAX)
        });
        for d in order {
            let saved = self.sim.clone();
            if self.free_in_dir(t, d, bytes) {
                return Some(d);
            }
            self.sim = saved;
        }
        None
    }

    /// A dir of tier `t` that could hold `placed_for` bytes (after eviction), with `now` bytes
    /// made free there. Writers that reserve as their data arrives are still placed where the
    /// whole block could go, so a long write does not start in a tier it cannot finish in.
    pub fn place(&mut self, t: usize, placed_for: u64, now: u64) -> Option<usize> {
        let saved = self.sim.clone();
        let d = self.room_in_tier(t, placed_for.max(now));
        self.sim = saved;
        let d = d?;
        self.free_in_dir(t, d, now).then_some(d)
    }

    /// Makes `bytes` free in dir `d` of tier `t`. Returns whether it got there (ops planned on
    /// the way stay planned: the watermark task wants partial progress).
    pub fn free_in_dir(&mut self, t: usize, d: usize, bytes: u64) -> bool {
        let need = signed(bytes);
        if self.sim.free[t][d] >= need {
            return true;
        }
        let cands = self.candidates(t)[d].clone();
        for id in cands {
            if self.sim.free[t][d] >= need {
                break;
            }
            if self.sim.taken.contains(&id) {
                continue;
            }
            let Some(m) = self.inner.blocks.get(&id) else {
                continue;
            };
            let (len, durable, from) = (m.length, m.durable, m.loc);
            if t + 1 < self.tiers.len() {
                let saved = self.sim.clone();
                if let Some(d2) = self.room_in_tier(t + 1, len) {
                    let to = Loc {
                        tier: t + 1,
                        dir: d2,
                    };
                    self.sim.free[t + 1][d2] -= len as i64;
                    self.sim.free[t][d] += len as i64;
                    self.sim.taken.insert(id);
                    self.sim.ops.push(Op::Move {
                        block: id,
                        len,
                        from,
                        to,
                    });
                    continue;
                }
                self.sim = saved;
            }
            if durable {
                self.sim.free[t][d] += len as i64;
                self.sim.taken.insert(id);
                self.sim.ops.push(Op::Drop {
                    block: id,
                    len,
                    at: from,
                });
            }
        }
        self.sim.free[t][d] >= need
    }
}

/// Why room cannot be made in tier `t`, as one line:
/// `cannot allocate 64.0MiB in tier MEM: capacity 1.0GiB, used 1.0GiB; nothing can be evicted:
/// 3 blocks pinned, 5 not persisted, 1 locked by readers`.
pub(in crate::store) fn shortage_message(
    inner: &State,
    tiers: &[Tier],
    t: usize,
    bytes: u64,
) -> String {
    let tier = &tiers[t];
    let capacity = tier.capacity();
    let used: u64 = inner.used[t].iter().sum();
    let head = format!(
        "cannot allocate {} in tier {}",
        ByteSize::human(bytes),
        tier.alias
    );
    let biggest = tier.dirs.iter().map(|d| d.capacity).max().unwrap_or(0);
    if bytes > biggest {
        return format!(
            "{head}: larger than the biggest dir of the tier ({})",
            ByteSize::human(biggest)
        );
    }
    let (mut pinned, mut not_persisted, mut locked, mut evictable) = (0u64, 0u64, 0u64, 0u64);
    for (&id, m) in &inner.blocks {
        if m.loc.tier != t {
            continue;
        }
        if m.lock_count > 0 || m.moving || m.pending_remove {
            locked += 1;
        } else if inner.is_pinned(id, m) {
            pinned += 1;
        } else if !m.durable {
            not_persisted += 1;
        } else {
            evictable += 1;
        }
    }
    let reserved: u64 = inner
        .temps
        .values()
        .filter(|tb| tb.loc.tier == t)
        .map(|tb| tb.reserved)
        .sum();
    let plural = |n: u64| if n == 1 { "block" } else { "blocks" };
    let mut msg = format!(
        "{head}: capacity {}, used {}; {} can be evicted: {pinned} {} pinned, {not_persisted} not persisted, {locked} locked by readers",
        ByteSize::human(capacity),
        ByteSize::human(used),
        if evictable == 0 { "nothing" } else { "not enough" },
        plural(pinned),
    );
    if reserved > 0 {
        msg.push_str(&format!(
            ", {} reserved by writes in progress",
            ByteSize::human(reserved)
        ));
    }
    msg
}

/// A size from a request as the planner's signed free space: sizes past `i64::MAX` (no dir is
/// that big) saturate instead of wrapping to a negative need that every dir would satisfy.
fn signed(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}
