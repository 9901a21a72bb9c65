//! One storage dir of a tier: its on-disk layout and the start-up scan.
//!
//! Layout: committed blocks at `<dir>/blocks/<block_id>`, in-progress writes at
//! `<dir>/tmp/<session>-<block_id>`. A block file is never modified after it is committed (only
//! renamed into place or deleted), which is what makes mmap reads of it safe.

use std::path::{Path, PathBuf};

use alluvium_common::{Error, Result};

#[derive(Debug, Clone)]
pub struct Dir {
    pub path: PathBuf,
    /// Quota of this dir in bytes.
    pub capacity: u64,
}

impl Dir {
    pub fn new(path: impl Into<PathBuf>, capacity: u64) -> Self {
        Self {
            path: path.into(),
            capacity,
        }
    }

    pub fn blocks_dir(&self) -> PathBuf {
        self.path.join("blocks")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.path.join("tmp")
    }

    pub fn block_path(&self, block_id: u64) -> PathBuf {
        self.blocks_dir().join(block_id.to_string())
    }

    pub fn tmp_path(&self, session: u64, block_id: u64) -> PathBuf {
        self.tmp_dir().join(format!("{session}-{block_id}"))
    }

    /// Creates the layout, deletes what interrupted writes left in `tmp/`, and returns the
    /// committed blocks found as `(block_id, length)`. Files in `blocks/` whose name is not a
    /// block id are left alone (with a warning) and not counted.
    pub fn scan(&self) -> Result<Vec<(u64, u64)>> {
        let io = |what: &str, p: &Path, e: std::io::Error| {
            Error::from(e).context(format!("worker dir {}: {what}", p.display()))
        };
        let tmp = self.tmp_dir();
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io("cannot clear tmp", &tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| io("cannot create", &tmp, e))?;
        let blocks = self.blocks_dir();
        std::fs::create_dir_all(&blocks).map_err(|e| io("cannot create", &blocks, e))?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&blocks).map_err(|e| io("cannot list", &blocks, e))? {
            let entry = entry.map_err(|e| io("cannot list", &blocks, e))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else {
                tracing::warn!(file = %entry.path().display(), "ignoring a file that is not a block");
                continue;
            };
            let meta = entry
                .metadata()
                .map_err(|e| io("cannot stat", &entry.path(), e))?;
            if !meta.is_file() {
                tracing::warn!(file = %entry.path().display(), "ignoring a non-file in blocks/");
                continue;
            }
            found.push((id, meta.len()));
        }
        found.sort_unstable();
        Ok(found)
    }
}

/// Deletes a block file; one already gone is not an error.
pub(super) async fn delete_block_file(path: PathBuf) {
    match tokio::fs::remove_file(&path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot delete block file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_clears_tmp_and_finds_blocks() {
        let root = tempfile::tempdir().unwrap();
        let d = Dir::new(root.path(), 1 << 20);
        assert!(d.scan().unwrap().is_empty());
        std::fs::write(d.block_path(42), b"abc").unwrap();
        std::fs::write(d.blocks_dir().join("junk"), b"x").unwrap();
        std::fs::write(d.tmp_path(7, 43), b"partial").unwrap();
        assert_eq!(d.scan().unwrap(), vec![(42, 3)]);
        assert!(!d.tmp_path(7, 43).exists());
        assert!(d.tmp_dir().is_dir());
    }
}
