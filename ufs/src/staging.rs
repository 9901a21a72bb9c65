//! Where a background persist writes a file before the master publishes it.
//!
//! An async persist runs on a worker while the namespace goes on changing: the file may be
//! deleted or renamed before the copy ends. Writing the copy straight to the file's UFS path
//! would bring a deleted file back at the next metadata sync. So the worker writes to a staging
//! path of the mount (hidden from listings and stats), and the master renames it into place only
//! if the file is still there, or removes it.

use crate::ufs::is_temporary_name;

/// The staging directory at the root of a mount's UFS. Its name is a temporary name, so
/// listings and stats skip it and a metadata sync never imports it.
pub const PERSIST_STAGING_DIR: &str = ".alluvium-ufs-tmp-persist";

/// The staging path (relative to the mount's UFS root) of file `file_id`.
pub fn persist_staging_path(file_id: u64) -> String {
    format!("{PERSIST_STAGING_DIR}/{file_id:016x}")
}

/// Whether `rel` (relative to a mount's UFS root) lies under a temporary name: an unfinished
/// write or the persist staging directory.
pub fn is_hidden_path(rel: &str) -> bool {
    rel.split('/').any(is_temporary_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_paths_are_hidden() {
        assert!(is_temporary_name(PERSIST_STAGING_DIR));
        assert!(is_hidden_path(&persist_staging_path(42)));
        assert_eq!(
            persist_staging_path(42),
            ".alluvium-ufs-tmp-persist/000000000000002a"
        );
        assert!(!is_hidden_path("data/file.txt"));
        assert!(!is_hidden_path(".hidden/file.txt"));
    }
}
