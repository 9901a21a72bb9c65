//! Inodes: the [`InodeRecord`] helpers shared by the namespace, sync, TTL and persist code.

use alluvium_common::ids;
use alluvium_proto::{InodeRecord, PersistenceState, TtlAction, WriteType};

/// The root directory's inode id. Ids below [`FIRST_INODE_ID`] are reserved.
pub const ROOT_ID: u64 = 1;
pub const FIRST_INODE_ID: u64 = 2;

/// Default permission bits.
pub const DEFAULT_FILE_MODE: u32 = 0o644;
pub const DEFAULT_DIR_MODE: u32 = 0o755;

pub fn is_persisted(r: &InodeRecord) -> bool {
    r.persistence_state == PersistenceState::Persisted as i32
}

pub fn persistence(r: &InodeRecord) -> PersistenceState {
    PersistenceState::try_from(r.persistence_state).unwrap_or(PersistenceState::NotPersisted)
}

pub fn ttl_action(r: &InodeRecord) -> TtlAction {
    match TtlAction::try_from(r.ttl_action) {
        Ok(TtlAction::Free) => TtlAction::Free,
        _ => TtlAction::Delete,
    }
}

pub fn write_type(r: &InodeRecord) -> WriteType {
    WriteType::try_from(r.write_type).unwrap_or(WriteType::Unspecified)
}

/// When the inode's TTL expires (creation time + ttl), if it has one.
pub fn ttl_expiry(r: &InodeRecord) -> Option<i64> {
    r.ttl_ms
        .map(|t| r.creation_time_ms.saturating_add(t.max(0)))
}

/// The file's block ids, derived from its id and length (whether cached or not).
pub fn block_ids(r: &InodeRecord) -> Vec<u64> {
    if r.is_dir {
        return Vec::new();
    }
    (0..ids::block_count(r.length, r.block_size))
        .map(|i| ids::block_id(r.id, i))
        .collect()
}

/// Block ids a worker may hold for this file: every index while it is being written, the
/// derived ones once complete.
pub fn owns_block(r: &InodeRecord, block_id: u64) -> bool {
    if r.is_dir || ids::file_id_of(block_id) != r.id {
        return false;
    }
    !r.completed || ids::block_index_of(block_id) < ids::block_count(r.length, r.block_size)
}

/// A new directory record.
pub fn new_dir(
    id: u64,
    parent_id: u64,
    name: &str,
    owner: &str,
    group: &str,
    mode: u32,
    now: i64,
) -> InodeRecord {
    InodeRecord {
        id,
        parent_id,
        name: name.to_string(),
        is_dir: true,
        owner: owner.to_string(),
        group: group.to_string(),
        mode: mode & 0o7777,
        creation_time_ms: now,
        last_modification_time_ms: now,
        last_access_time_ms: now,
        completed: true,
        persistence_state: PersistenceState::NotPersisted as i32,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_derive_from_file_id() {
        let r = InodeRecord {
            id: 9,
            length: 25,
            block_size: 10,
            completed: true,
            ..Default::default()
        };
        assert_eq!(
            block_ids(&r),
            vec![
                ids::block_id(9, 0),
                ids::block_id(9, 1),
                ids::block_id(9, 2)
            ]
        );
        assert!(owns_block(&r, ids::block_id(9, 2)));
        assert!(!owns_block(&r, ids::block_id(9, 3)));
        assert!(!owns_block(&r, ids::block_id(8, 0)));
        let writing = InodeRecord {
            completed: false,
            ..r.clone()
        };
        assert!(owns_block(&writing, ids::block_id(9, 7)));
    }

    #[test]
    fn ttl_expires_from_creation() {
        let r = InodeRecord {
            creation_time_ms: 1000,
            ttl_ms: Some(500),
            ..Default::default()
        };
        assert_eq!(ttl_expiry(&r), Some(1500));
        assert_eq!(ttl_action(&r), TtlAction::Delete);
    }
}
