//! Block store tests over real temp dirs.

use std::path::Path;
use std::sync::Arc;

use alluvium_common::{ids, ErrorCode};

use super::*;
use crate::metrics::WorkerMetrics;

fn tiers(root: &Path, specs: &[(&str, u64)]) -> Vec<Tier> {
    specs
        .iter()
        .enumerate()
        .map(|(i, (alias, cap))| Tier {
            alias: alias.to_string(),
            ordinal: i,
            dirs: vec![Dir::new(root.join(alias), *cap)],
            high_watermark: 0.9,
            low_watermark: 0.5,
        })
        .collect()
}

fn open(root: &Path, specs: &[(&str, u64)]) -> Arc<BlockStore> {
    BlockStore::open(
        tiers(root, specs),
        Box::new(Lru::default()),
        WorkerMetrics::default(),
    )
    .unwrap()
}

async fn put_in(
    store: &BlockStore,
    id: u64,
    len: u64,
    durable: bool,
    tier: &str,
    pinned: bool,
) -> Committed {
    let loc = store
        .reserve(&Reservation {
            session_id: 1,
            block_id: id,
            bytes: len,
            upfront: None,
            tier: tier.into(),
            pinned,
            durable,
        })
        .await
        .unwrap();
    std::fs::write(&loc.path, vec![id as u8; len as usize]).unwrap();
    store.commit(1, id, len).await.unwrap()
}

async fn put(store: &BlockStore, id: u64, len: u64, durable: bool) -> Committed {
    put_in(store, id, len, durable, "", false).await
}

fn tier_of(store: &BlockStore, id: u64) -> Option<String> {
    store.info(id).map(|(t, _)| t)
}

async fn touch(store: &Arc<BlockStore>, id: u64) {
    drop(store.lock(id).await.unwrap());
}

#[tokio::test]
async fn allocates_in_the_requested_tier_then_lower() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path(), &[("MEM", 100), ("SSD", 1000)]);
    assert_eq!(put(&store, 1, 60, false).await.tier, "MEM");
    assert_eq!(put_in(&store, 2, 10, false, "ssd", false).await.tier, "SSD");
    // MEM cannot make room (block 1 is not durable and SSD takes it: moved down).
    assert_eq!(put(&store, 3, 60, false).await.tier, "MEM");
    assert_eq!(tier_of(&store, 1).as_deref(), Some("SSD"));
    let e = store
        .reserve(&Reservation {
            block_id: 9,
            tier: "NVME".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    let usage = store.usage();
    assert_eq!((usage[0].used_bytes, usage[1].used_bytes), (60, 70));
    assert_eq!((usage[0].block_count, usage[1].block_count), (1, 2));
    // Too big for MEM (even empty) falls to SSD.
    assert_eq!(put(&store, 4, 500, false).await.tier, "SSD");
}

#[tokio::test]
async fn lru_moves_least_recent_to_the_next_tier() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path(), &[("MEM", 300), ("SSD", 1000)]);
    for id in 1..=3 {
        put(&store, id, 100, false).await;
    }
    touch(&store, 1).await;
    put(&store, 4, 100, false).await;
    assert_eq!(tier_of(&store, 2).as_deref(), Some("SSD"));
    for id in [1, 3, 4] {
        assert_eq!(tier_of(&store, id).as_deref(), Some("MEM"), "block {id}");
    }
    // The data moved intact, the old file is gone.
    let data = store.lock(2).await.unwrap().map().unwrap();
    assert_eq!(&data[..], &[2u8; 100][..]);
    assert!(!root.path().join("MEM/blocks/2").exists());
    let ev = store.recent_evictions();
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].block_id, ev[0].to.as_deref()), (2, Some("SSD")));
}

#[tokio::test]
async fn lrfu_keeps_frequently_read_blocks() {
    let root = tempfile::tempdir().unwrap();
    let store = BlockStore::open(
        tiers(root.path(), &[("MEM", 200)]),
        Box::new(Lrfu::new(0.01, 2.0)),
        WorkerMetrics::default(),
    )
    .unwrap();
    put(&store, 1, 100, true).await;
    put(&store, 2, 100, true).await;
    for _ in 0..10 {
        touch(&store, 1).await;
    }
    touch(&store, 2).await;
    put(&store, 3, 100, true).await;
    // LRU would drop 1 (read before 2's last read); LRFU keeps the frequent one.
    assert!(store.contains(1));
    assert!(!store.contains(2));
    assert!(!root.path().join("MEM/blocks/2").exists());
}

#[tokio::test]
async fn pinned_blocks_stay_in_the_top_tier() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path(), &[("MEM", 200), ("SSD", 1000)]);
    let pinned_file = 5;
    let pinned_block = ids::block_id(pinned_file, 0);
    put(&store, pinned_block, 100, false).await;
    put(&store, 7, 100, false).await;
    store.set_pinned_files([pinned_file]);
    // The pinned block is older, but the other one moves.
    put(&store, 8, 100, false).await;
    assert_eq!(tier_of(&store, pinned_block).as_deref(), Some("MEM"));
    assert_eq!(tier_of(&store, 7).as_deref(), Some("SSD"));
    // A pinned write without a tier only goes to the top tier.
    let e = store
        .reserve(&Reservation {
            block_id: ids::block_id(pinned_file, 1),
            bytes: 150,
            upfront: None,
            pinned: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceExhausted);
    assert!(
        e.message.starts_with("cannot allocate 150B in tier MEM"),
        "{e}"
    );
    assert!(!e.message.contains("SSD"), "{e}");
}

#[tokio::test]
async fn non_durable_blocks_are_never_dropped_and_the_error_says_why() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path(), &[("MEM", 1024)]);
    let pinned = ids::block_id(3, 0);
    put(&store, pinned, 256, true).await;
    store.set_pinned_files([3]);
    put(&store, 10, 256, false).await;
    put(&store, 11, 256, false).await;
    put(&store, 12, 256, true).await;
    let _reader = store.lock(12).await.unwrap();
    let e = store
        .reserve(&Reservation {
            block_id: 99,
            bytes: 64 << 10,
            upfront: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceExhausted);
    // A request bigger than the tier is capped at its dir size (the block may end shorter).
    assert_eq!(
        e.message,
        "cannot allocate 1.0KiB in tier MEM: capacity 1.0KiB, used 1.0KiB; nothing can be evicted: \
         1 block pinned, 2 not persisted, 1 locked by readers"
    );
    let e = store
        .reserve(&Reservation {
            block_id: 99,
            bytes: 64,
            upfront: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        "cannot allocate 64B in tier MEM: capacity 1.0KiB, used 1.0KiB; nothing can be evicted: \
         1 block pinned, 2 not persisted, 1 locked by readers"
    );
    for id in [pinned, 10, 11, 12] {
        assert!(store.contains(id));
    }
}

#[tokio::test]
async fn locked_blocks_are_not_evicted() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path(), &[("MEM", 200)]);
    put(&store, 1, 100, true).await;
    put(&store, 2, 100, true).await;
    let lock = store.lock(1).await.unwrap();
    let mapped = lock.map().unwrap(); // the mapping holds the lock
    put(&store, 3, 100, true).await;
    assert!(store.contains(1));
    assert!(!store.contains(2));
    drop(mapped);
    // Unlocked now: it is the least recent and goes next.
    put(&store, 4, 100, true).await;
    assert!(!store.contains(1));
}

#[tokio::test]
async fn promotion_moves_to_the_top_tier() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path(), &[("MEM", 100), ("SSD", 1000)]);
    put_in(&store, 1, 80, false, "SSD", false).await;
    put(&store, 2, 80, false).await;
    assert!(store.promote(1).await.unwrap());
    assert_eq!(tier_of(&store, 1).as_deref(), Some("MEM"));
    assert_eq!(tier_of(&store, 2).as_deref(), Some("SSD"));
    assert!(!store.promote(1).await.unwrap()); // already on top
    let d = store.take_deltas();
    let mut added: Vec<(u64, String)> = d.added.into_iter().map(|r| (r.block_id, r.tier)).collect();
    added.sort();
    assert_eq!(added, vec![(1, "MEM".into()), (2, "SSD".into())]);
    let _l = store.lock(2).await.unwrap();
    assert!(!store.promote(2).await.unwrap()); // locked: stays
}

#[tokio::test]
async fn watermarks_free_down_to_the_low_mark() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path(), &[("MEM", 1000), ("SSD", 10_000)]);
    for id in 1..=10 {
        put(&store, id, 95, false).await;
    }
    assert_eq!(store.usage()[0].used_bytes, 950);
    let n = store.free_above_watermarks().await;
    let usage = store.usage();
    assert!(usage[0].used_bytes <= 500, "{usage:?}");
    assert_eq!(usage[0].used_bytes + usage[1].used_bytes, 950);
    assert_eq!(n as u64, usage[1].block_count);
    // The oldest went first.
    assert_eq!(tier_of(&store, 1).as_deref(), Some("SSD"));
    assert_eq!(tier_of(&store, 10).as_deref(), Some("MEM"));
    assert_eq!(store.free_above_watermarks().await, 0);
}

#[tokio::test]
async fn restart_adopts_blocks_and_deletes_tmp_files() {
    let root = tempfile::tempdir().unwrap();
    {
        let store = open(root.path(), &[("MEM", 1000), ("SSD", 1000)]);
        put(&store, 1, 10, true).await;
        put_in(&store, 2, 20, true, "SSD", false).await;
        let tmp = store
            .reserve(&Reservation {
                session_id: 5,
                block_id: 3,
                bytes: 100,
                upfront: None,
                ..Default::default()
            })
            .await
            .unwrap();
        std::fs::write(&tmp.path, b"half").unwrap();
        assert!(tmp.path.exists());
    }
    let store = open(root.path(), &[("MEM", 1000), ("SSD", 1000)]);
    assert_eq!(store.info(1), Some(("MEM".into(), 10)));
    assert_eq!(store.info(2), Some(("SSD".into(), 20)));
    assert!(!store.contains(3));
    assert!(!root.path().join("MEM/tmp/5-3").exists());
    let usage = store.usage();
    assert_eq!((usage[0].used_bytes, usage[1].used_bytes), (10, 20));
    // Adopted blocks are not known durable until the master says so.
    assert_eq!(store.non_durable_ids(), vec![1, 2]);
    store.mark_durable(&[1]);
    assert_eq!(store.non_durable_ids(), vec![2]);
    let (blocks, non_durable) = store.report();
    assert_eq!(blocks[0].block_ids, vec![1]);
    assert_eq!(blocks[1].block_ids, vec![2]);
    assert_eq!(non_durable, vec![2]);
}

#[tokio::test]
async fn space_accounting_returns_to_zero() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path(), &[("MEM", 1000)]);
    let used = |s: &BlockStore| s.usage()[0].used_bytes;
    // Reserve then abort.
    let t = store
        .reserve(&Reservation {
            session_id: 1,
            block_id: 1,
            bytes: 300,
            upfront: None,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(used(&store), 300);
    assert!(store.abort(1, 1).await);
    assert!(!t.path.exists());
    assert!(!store.abort(1, 1).await);
    assert_eq!(used(&store), 0);
    // Reserve more than written: the rest is released at commit.
    let t = store
        .reserve(&Reservation {
            session_id: 2,
            block_id: 2,
            bytes: 300,
            upfront: None,
            ..Default::default()
        })
        .await
        .unwrap();
    std::fs::write(&t.path, [0u8; 50]).unwrap();
    let e = store.commit(2, 2, 60).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    store.commit(2, 2, 50).await.unwrap();
    assert_eq!(used(&store), 50);
    // Written past the reservation: grown at commit.
    let t = store
        .reserve(&Reservation {
            session_id: 3,
            block_id: 3,
            bytes: 10,
            upfront: None,
            ..Default::default()
        })
        .await
        .unwrap();
    std::fs::write(&t.path, [0u8; 40]).unwrap();
    store.commit(3, 3, 40).await.unwrap();
    assert_eq!(used(&store), 90);
    // Remove, twice; remove of a locked block waits for the reader.
    assert!(store.remove(2).await);
    assert!(!store.remove(2).await);
    let l = store.lock(3).await.unwrap();
    assert!(store.remove(3).await);
    assert!(!store.contains(3));
    assert_eq!(used(&store), 40);
    drop(l);
    assert_eq!(used(&store), 0);
    assert!(!root.path().join("MEM/blocks/3").exists());
    let d = store.take_deltas();
    let mut removed = d.removed;
    removed.sort();
    assert_eq!(removed, vec![2, 3]);
    // Duplicate writes are refused.
    put(&store, 4, 1, true).await;
    let e = store
        .reserve(&Reservation {
            session_id: 9,
            block_id: 4,
            bytes: 1,
            upfront: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadyExists);
}

#[tokio::test]
async fn several_dirs_per_tier_each_with_a_quota() {
    let root = tempfile::tempdir().unwrap();
    let mem = Tier {
        alias: "MEM".into(),
        ordinal: 0,
        dirs: vec![
            Dir::new(root.path().join("m0"), 100),
            Dir::new(root.path().join("m1"), 100),
        ],
        high_watermark: 0.9,
        low_watermark: 0.5,
    };
    let store = BlockStore::open(
        vec![mem],
        Box::new(Lru::default()),
        WorkerMetrics::default(),
    )
    .unwrap();
    put(&store, 1, 80, true).await;
    put(&store, 2, 80, true).await;
    // One per dir: neither dir could hold both.
    assert_eq!(store.dir_usage()[0], vec![80, 80]);
    assert!(root.path().join("m0/blocks/1").exists() != root.path().join("m0/blocks/2").exists());
    // The third evicts the least recent block of one dir.
    put(&store, 3, 80, true).await;
    assert!(!store.contains(1));
    assert_eq!(store.usage()[0].used_bytes, 160);
    // Bigger than any one dir, though the tier has 200 in total: the reservation is capped at
    // the dir size, and growing the block past it fails with the reason.
    store
        .reserve(&Reservation {
            block_id: 9,
            bytes: 150,
            upfront: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let e = store.grow(0, 9, 150).await.unwrap_err();
    assert!(e.message.contains("larger than the biggest dir"), "{e}");
}

/// Issue 17: "a 0-byte S3 PUT into a 64 MiB MEM tier holding 85 bytes fails", and a tier
/// admitted only as many writers as whole blocks fit. Writers that reserve as their data
/// arrives take a first part up front and grow; they are still placed where the whole block
/// could go when some tier can take it.
#[tokio::test]
async fn writers_reserve_as_their_data_arrives() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path(), &[("MEM", 64 << 10)]);
    put(&store, 1, 85, false).await; // not persisted: never evicted
    let writer = |session_id, block_id| Reservation {
        session_id,
        block_id,
        bytes: 64 << 10,
        upfront: Some(1 << 10),
        ..Default::default()
    };
    // The 0-byte file.
    let t = store.reserve(&writer(1, 2)).await.unwrap();
    assert_eq!((t.tier.as_str(), t.reserved), ("MEM", 1 << 10));
    store.commit(1, 2, 0).await.unwrap();
    assert_eq!(used(&store), 85);
    // Twenty writers of 64 KiB blocks at once in a 64 KiB tier; each grows as it writes.
    for b in 10..30 {
        store.reserve(&writer(b, b)).await.unwrap();
    }
    assert_eq!(used(&store), 85 + 20 * (1 << 10));
    store.grow(10, 10, 30 << 10).await.unwrap();
    let e = store.grow(11, 11, 40 << 10).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceExhausted, "{e}");
    // A whole-block reservation still asks for what one dir holds.
    let e = store
        .reserve(&Reservation {
            block_id: 99,
            bytes: 64 << 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ResourceExhausted, "{e}");
}

/// Placement still follows the whole block: a tier that cannot take it is passed over for one
/// that can, even though the first part would fit.
#[tokio::test]
async fn writers_that_reserve_as_they_go_are_placed_for_the_whole_block() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path(), &[("MEM", 64 << 10), ("SSD", 1 << 20)]);
    // Pinned: it never leaves MEM, so MEM can never hold a 64 KiB block again.
    put_in(&store, 1, 32 << 10, false, "MEM", true).await;
    let writer = |block_id, bytes| Reservation {
        session_id: 1,
        block_id,
        bytes,
        upfront: Some(1 << 10),
        ..Default::default()
    };
    let big = store.reserve(&writer(2, 64 << 10)).await.unwrap();
    assert_eq!((big.tier.as_str(), big.reserved), ("SSD", 1 << 10));
    let small = store.reserve(&writer(3, 16 << 10)).await.unwrap();
    assert_eq!((small.tier.as_str(), small.reserved), ("MEM", 1 << 10));
}

fn used(store: &BlockStore) -> u64 {
    store.usage().iter().map(|t| t.used_bytes).sum()
}
