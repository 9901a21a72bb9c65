//! Tiers in config order: index 0 is the fastest ("top") tier.

use alluvium_common::config::WorkerConfig;
use alluvium_common::{Error, Result};

use super::dir::Dir;

#[derive(Debug, Clone)]
pub struct Tier {
    /// Upper-case alias: `MEM`, `SSD`, `HDD`, ...
    pub alias: String,
    pub ordinal: usize,
    pub dirs: Vec<Dir>,
    /// Fractions of capacity: above `high`, background eviction runs until under `low`.
    pub high_watermark: f64,
    pub low_watermark: f64,
}

impl Tier {
    pub fn capacity(&self) -> u64 {
        self.dirs.iter().map(|d| d.capacity).sum()
    }
}

/// Builds the tiers of `worker.tiers` (watermarks default to the worker-wide ones).
pub fn tiers_from_config(cfg: &WorkerConfig) -> Result<Vec<Tier>> {
    if cfg.tiers.is_empty() {
        return Err(Error::invalid_argument(
            "invalid configuration: worker.tiers is empty",
        ));
    }
    let mut tiers = Vec::with_capacity(cfg.tiers.len());
    for (ordinal, t) in cfg.tiers.iter().enumerate() {
        if t.dirs.is_empty() || t.quota.is_empty() {
            return Err(Error::invalid_argument(format!(
                "invalid configuration: worker tier {} needs dirs and quotas",
                t.alias
            )));
        }
        if t.quota.len() != 1 && t.quota.len() != t.dirs.len() {
            return Err(Error::invalid_argument(format!(
                "invalid configuration: worker tier {} needs one quota, or one per dir",
                t.alias
            )));
        }
        let high = t.high_watermark.unwrap_or(cfg.high_watermark);
        let low = t.low_watermark.unwrap_or(cfg.low_watermark);
        if !(0.0 < low && low < high && high <= 1.0) {
            return Err(Error::invalid_argument(format!(
                "invalid configuration: tier {} watermarks must satisfy 0 < low ({low}) < high ({high}) <= 1",
                t.alias
            )));
        }
        tiers.push(Tier {
            alias: t.alias.to_ascii_uppercase(),
            ordinal,
            dirs: t
                .dirs
                .iter()
                .enumerate()
                .map(|(i, p)| Dir::new(p.clone(), t.quota_of(i).0))
                .collect(),
            high_watermark: high,
            low_watermark: low,
        });
    }
    Ok(tiers)
}
