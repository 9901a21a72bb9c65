//! The tiered block store: tiers of dirs with quotas, block metadata, eviction policies, the
//! allocator that makes room, and [`BlockStore`], the one face the rest of the worker uses.

mod allocator;
mod dir;
mod eviction;
mod meta;
#[allow(clippy::module_inception)]
mod store;
mod tier;
mod writer;

pub use dir::Dir;
pub use eviction::{policy_from_config, EvictionPolicy, Lrfu, Lru};
pub use store::{
    BlockLock, BlockStore, Committed, Deltas, EvictionRecord, Reservation, TempLocation,
};
pub use tier::{tiers_from_config, Tier};
pub use writer::BlockWriter;

#[cfg(test)]
mod tests;
