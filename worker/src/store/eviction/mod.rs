//! Making room: the policy that orders candidates, the pure planner that picks moves and drops,
//! carrying a plan out, and background freeing above the high watermark.

mod execute;
pub(super) mod planner;
pub(super) mod policy;
mod watermark;

pub use policy::{policy_from_config, EvictionPolicy, Lrfu, Lru};
pub use watermark::run as free_above_watermarks_every;
