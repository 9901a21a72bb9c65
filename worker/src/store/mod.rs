//! The tiered block store: tiers of dirs with quotas, block metadata, eviction (policies, the
//! planner that makes room, background freeing), and [`BlockStore`], the one face the rest of the
//! worker uses.

mod block_store;
mod dir;
mod eviction;
mod lock;
mod meta;
mod report;
mod state;
mod tier;
mod write;
mod writer;

pub use block_store::BlockStore;
pub use dir::Dir;
pub use eviction::{free_above_watermarks_every, policy_from_config, EvictionPolicy, Lrfu, Lru};
pub use lock::BlockLock;
pub use report::Deltas;
pub use state::EvictionRecord;
pub use tier::{tiers_from_config, Tier};
pub use write::{Committed, Reservation, TempLocation};
pub use writer::BlockWriter;

#[cfg(test)]
mod tests;
