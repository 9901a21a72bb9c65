//! Block ids are derived from file ids, so a block names its file without a lookup table:
//! `block_id = file_id << 24 | index`. A file has at most 2^24 blocks (1 PiB at 64 MiB blocks).

/// Bits of a block id that hold the block's index in its file.
pub const BLOCK_INDEX_BITS: u32 = 24;
pub const MAX_BLOCKS_PER_FILE: u64 = 1 << BLOCK_INDEX_BITS;
/// The largest block size a file may have (512 GiB). With at most [`MAX_BLOCKS_PER_FILE`]
/// blocks, every offset in a file then stays below 2^63: sums of sizes and offsets taken from
/// requests cannot overflow, and every size fits an `i64` (the allocator's signed arithmetic).
pub const MAX_BLOCK_SIZE: u64 = 1 << (63 - BLOCK_INDEX_BITS);

pub fn block_id(file_id: u64, index: u64) -> u64 {
    debug_assert!(index < MAX_BLOCKS_PER_FILE);
    (file_id << BLOCK_INDEX_BITS) | index
}

pub fn file_id_of(block_id: u64) -> u64 {
    block_id >> BLOCK_INDEX_BITS
}

pub fn block_index_of(block_id: u64) -> u64 {
    block_id & (MAX_BLOCKS_PER_FILE - 1)
}

/// Number of blocks of a file of `length` bytes.
pub fn block_count(length: u64, block_size: u64) -> u64 {
    if block_size == 0 {
        return 0;
    }
    length.div_ceil(block_size)
}

/// Length of block `index` of a file of `length` bytes.
pub fn block_length(length: u64, block_size: u64, index: u64) -> u64 {
    let start = index.saturating_mul(block_size);
    length.saturating_sub(start).min(block_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let b = block_id(7, 3);
        assert_eq!(file_id_of(b), 7);
        assert_eq!(block_index_of(b), 3);
    }

    #[test]
    fn lengths() {
        assert_eq!(block_count(0, 10), 0);
        assert_eq!(block_count(25, 10), 3);
        assert_eq!(block_length(25, 10, 2), 5);
        assert_eq!(block_length(25, 10, 1), 10);
        assert_eq!(block_length(25, 10, 3), 0);
    }
}
