//! The file-system API for synchronous code: a [`FileSystem`] that owns a tokio runtime, with
//! streams implementing `std::io::Write` and `std::io::Read + Seek`. Do not call it from inside an
//! async runtime (use [`crate::FileSystem`] there).

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use alluvium_common::{Config, Error, Result};
use bytes::Bytes;
use tokio::runtime::Runtime;

use crate::{
    ClientMetrics, CreateDirectoryOptions, CreateFileOptions, DeleteOptions, FileInStream,
    FileInfo, FileOutStream, LoadSummary, MasterInfo, MountInfo, MountOptions, OpenFileOptions,
    SetAttributeOptions, WorkerInfo,
};

#[derive(Clone)]
pub struct FileSystem {
    rt: Arc<Runtime>,
    fs: crate::FileSystem,
}

impl FileSystem {
    pub fn connect(config: &Config) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("alluvium-client")
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("cannot start the client runtime: {e}")))?;
        let fs = rt.block_on(crate::FileSystem::connect(config))?;
        Ok(Self {
            rt: Arc::new(rt),
            fs,
        })
    }

    /// The async handle, sharing connections with this one.
    pub fn async_fs(&self) -> &crate::FileSystem {
        &self.fs
    }

    pub fn metrics(&self) -> &ClientMetrics {
        self.fs.metrics()
    }

    pub fn get_status(&self, path: &str) -> Result<FileInfo> {
        self.rt.block_on(self.fs.get_status(path))
    }
    pub fn exists(&self, path: &str) -> Result<bool> {
        self.rt.block_on(self.fs.exists(path))
    }
    pub fn list_status(&self, path: &str, recursive: bool) -> Result<Vec<FileInfo>> {
        self.rt.block_on(self.fs.list_status(path, recursive))
    }
    pub fn create_directory(&self, path: &str, opts: CreateDirectoryOptions) -> Result<()> {
        self.rt.block_on(self.fs.create_directory(path, opts))
    }
    pub fn create_file(&self, path: &str, opts: CreateFileOptions) -> Result<BlockingOutStream> {
        let s = self.rt.block_on(self.fs.create_file(path, opts))?;
        Ok(BlockingOutStream {
            rt: self.rt.clone(),
            stream: Some(s),
        })
    }
    pub fn open_file(&self, path: &str, opts: OpenFileOptions) -> Result<BlockingInStream> {
        let s = self.rt.block_on(self.fs.open_file(path, opts))?;
        Ok(BlockingInStream {
            rt: self.rt.clone(),
            stream: Some(s),
        })
    }
    pub fn delete(&self, path: &str, opts: DeleteOptions) -> Result<()> {
        self.rt.block_on(self.fs.delete(path, opts))
    }
    pub fn rename(&self, src: &str, dst: &str) -> Result<()> {
        self.rt.block_on(self.fs.rename(src, dst))
    }
    pub fn set_attribute(&self, path: &str, opts: SetAttributeOptions) -> Result<()> {
        self.rt.block_on(self.fs.set_attribute(path, opts))
    }
    pub fn free(&self, path: &str, recursive: bool, forced: bool) -> Result<()> {
        self.rt.block_on(self.fs.free(path, recursive, forced))
    }
    pub fn persist(&self, path: &str) -> Result<()> {
        self.rt.block_on(self.fs.persist(path))
    }
    pub fn load(&self, path: &str, recursive: bool) -> Result<LoadSummary> {
        self.rt.block_on(self.fs.load(path, recursive))
    }
    pub fn mount(&self, path: &str, ufs_uri: &str, opts: MountOptions) -> Result<()> {
        self.rt.block_on(self.fs.mount(path, ufs_uri, opts))
    }
    pub fn unmount(&self, path: &str) -> Result<()> {
        self.rt.block_on(self.fs.unmount(path))
    }
    pub fn mount_table(&self) -> Result<Vec<MountInfo>> {
        self.rt.block_on(self.fs.mount_table())
    }
    pub fn master_info(&self) -> Result<MasterInfo> {
        self.rt.block_on(self.fs.master_info())
    }
    pub fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.rt.block_on(self.fs.workers())
    }
}

/// A file being written; `close` (or `finish`) makes it complete. Dropped unclosed, the file is
/// cancelled.
pub struct BlockingOutStream {
    rt: Arc<Runtime>,
    stream: Option<FileOutStream>,
}

impl BlockingOutStream {
    fn stream(&mut self) -> io::Result<&mut FileOutStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::other("the stream is closed"))
    }

    /// Completes the file.
    pub fn close(mut self) -> Result<FileInfo> {
        match self.stream.take() {
            Some(s) => self.rt.block_on(s.close()),
            None => Err(Error::failed_precondition("the stream is already closed")),
        }
    }

    /// Abandons the file.
    pub fn cancel(mut self) -> Result<()> {
        match self.stream.take() {
            Some(s) => self.rt.block_on(s.cancel()),
            None => Ok(()),
        }
    }

    pub fn write_bytes(&mut self, data: Bytes) -> Result<()> {
        let rt = self.rt.clone();
        let s = self.stream()?;
        rt.block_on(s.write_bytes(data))
    }
}

impl Write for BlockingOutStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let rt = self.rt.clone();
        let s = self.stream()?;
        rt.block_on(s.write(buf))?;
        Ok(buf.len())
    }

    /// Data is sent in chunks as it fills; `close` sends the rest.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BlockingOutStream {
    fn drop(&mut self) {
        if let Some(s) = self.stream.take() {
            let _ = self.rt.block_on(s.cancel());
        }
    }
}

pub struct BlockingInStream {
    rt: Arc<Runtime>,
    stream: Option<FileInStream>,
}

impl BlockingInStream {
    fn stream(&mut self) -> io::Result<&mut FileInStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::other("the stream is closed"))
    }

    pub fn len(&self) -> u64 {
        self.stream.as_ref().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let rt = self.rt.clone();
        let s = self.stream()?;
        rt.block_on(s.read_at(offset, buf))
    }

    pub fn close(mut self) -> Result<()> {
        match self.stream.take() {
            Some(s) => self.rt.block_on(s.close()),
            None => Ok(()),
        }
    }
}

impl Read for BlockingInStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rt = self.rt.clone();
        let s = self.stream()?;
        Ok(rt.block_on(s.read(buf))?)
    }
}

impl Seek for BlockingInStream {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let rt = self.rt.clone();
        let s = self.stream()?;
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => s.len().checked_add_signed(d),
            SeekFrom::Current(d) => s.position().checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        rt.block_on(s.seek(target))?;
        Ok(target)
    }
}

impl Drop for BlockingInStream {
    fn drop(&mut self) {
        if let Some(s) = self.stream.take() {
            let _ = self.rt.block_on(s.close());
        }
    }
}
