//! Appending to a block's temporary file without copying: each chunk (`Bytes`, usually a slice
//! of a gRPC receive buffer or a UFS read) is written by a blocking-pool thread straight from its
//! buffer. (`tokio::fs::File` would first copy every chunk into its own buffer.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alluvium_common::{Error, Result};
use bytes::Bytes;

pub struct BlockWriter {
    file: Arc<std::fs::File>,
    path: PathBuf,
    written: u64,
}

impl BlockWriter {
    /// Opens the (existing, reserved) temporary file at `path` for appending.
    pub async fn open(path: &Path) -> Result<Self> {
        let p = path.to_path_buf();
        let file =
            tokio::task::spawn_blocking(move || std::fs::OpenOptions::new().append(true).open(&p))
                .await
                .map_err(|e| Error::internal(format!("block writer task failed: {e}")))?
                .map_err(|e| Error::from(e).context(format!("cannot open {}", path.display())))?;
        Ok(Self {
            file: Arc::new(file),
            path: path.to_path_buf(),
            written: 0,
        })
    }

    pub async fn write(&mut self, data: Bytes) -> Result<()> {
        let file = self.file.clone();
        let len = data.len() as u64;
        tokio::task::spawn_blocking(move || (&*file).write_all(&data))
            .await
            .map_err(|e| Error::internal(format!("block writer task failed: {e}")))?
            .map_err(|e| Error::from(e).context(format!("cannot write {}", self.path.display())))?;
        self.written += len;
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }
}
