//! Client-side counters: where read bytes came from and how much was written. Cheap atomics, so
//! tests and tools can check which data path a read took.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ClientMetrics {
    /// Bytes copied out of a local worker's block file (mmap).
    pub bytes_read_short_circuit: AtomicU64,
    /// Bytes streamed from a worker that held the block.
    pub bytes_read_remote: AtomicU64,
    /// Bytes a worker read through from the UFS for this client.
    pub bytes_read_ufs: AtomicU64,
    /// Bytes written into a local worker's tier files.
    pub bytes_written_short_circuit: AtomicU64,
    /// Bytes streamed to a worker (WriteBlock).
    pub bytes_written_remote: AtomicU64,
    /// Bytes streamed to the UFS through a worker (THROUGH).
    pub bytes_written_ufs: AtomicU64,
    /// Times a block location failed and the next one was tried.
    pub read_fallbacks: AtomicU64,
}

/// A plain copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientMetricsSnapshot {
    pub bytes_read_short_circuit: u64,
    pub bytes_read_remote: u64,
    pub bytes_read_ufs: u64,
    pub bytes_written_short_circuit: u64,
    pub bytes_written_remote: u64,
    pub bytes_written_ufs: u64,
    pub read_fallbacks: u64,
}

impl ClientMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ClientMetricsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientMetricsSnapshot {
            bytes_read_short_circuit: g(&self.bytes_read_short_circuit),
            bytes_read_remote: g(&self.bytes_read_remote),
            bytes_read_ufs: g(&self.bytes_read_ufs),
            bytes_written_short_circuit: g(&self.bytes_written_short_circuit),
            bytes_written_remote: g(&self.bytes_written_remote),
            bytes_written_ufs: g(&self.bytes_written_ufs),
            read_fallbacks: g(&self.read_fallbacks),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let m = ClientMetrics::default();
        ClientMetrics::add(&m.bytes_read_remote, 5);
        ClientMetrics::add(&m.bytes_read_remote, 7);
        ClientMetrics::add(&m.bytes_read_ufs, 1);
        let s = m.snapshot();
        assert_eq!(s.bytes_read_remote, 12);
        assert_eq!(s.bytes_read_ufs, 1);
        assert_eq!(s.bytes_read_short_circuit, 0);
    }
}
