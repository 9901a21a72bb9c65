//! Per-block metadata the store keeps in memory.

use std::time::Instant;

/// Where a block lives: tier index and dir index within the tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Loc {
    pub tier: usize,
    pub dir: usize,
}

/// A committed block.
#[derive(Debug, Clone)]
pub struct BlockMeta {
    pub loc: Loc,
    pub length: u64,
    /// A copy is known to be in a UFS: the block may be dropped from the last tier.
    pub durable: bool,
    /// The writer said the file is pinned (until the master's pinned set says otherwise).
    pub pinned_hint: bool,
    /// Readers and short-circuit leases holding the block: never moved or dropped while > 0.
    pub lock_count: u32,
    /// A copy to another tier is in flight; readers wait for it to finish.
    pub moving: bool,
    /// The master asked to remove it while it was locked or moving.
    pub pending_remove: bool,
    pub access_count: u64,
    /// Logical time (store-wide access counter) of the last access.
    pub last_access: u64,
}

/// A block being written: space is reserved in one dir.
#[derive(Debug, Clone)]
pub struct TempBlock {
    pub loc: Loc,
    pub reserved: u64,
    pub pinned: bool,
    pub durable: bool,
    pub created: Instant,
    /// Committing: the file is being renamed into place.
    pub committing: bool,
}
