//! Writing a file through the mount: files are written once, sequentially. Writes that arrive
//! out of order are held until the bytes before them do (bounded); the file is completed by its
//! writer's close (flush) or at release.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use alluvium_common::{Error, ErrorCode, Result};
use fuser::Errno;

use super::AlluviumFuse;
use crate::handles::{
    DirHandle, ExistingHandle, Handle, ReadHandle, Shared, WriteHandle, MAX_PENDING_WRITE_BYTES,
};
use alluvium_client::CreateFileOptions;
use alluvium_client::{FileOutStream, FileSystem};

impl AlluviumFuse {
    /// A handle writing `out`, a new file at `path`, for the process `pid`.
    pub(super) fn write_handle(
        &self,
        path: &str,
        ino: u64,
        out: FileOutStream,
        pid: u32,
    ) -> Handle {
        Handle::Write(WriteHandle {
            path: path.to_string(),
            ino,
            out: Some(out),
            written: self.start_writing(ino),
            pending: Default::default(),
            pending_bytes: 0,
            failed: None,
            writer_pid: pid,
        })
    }

    /// Replaces the file at `path` by a new, empty one with `mode`, open for writing.
    pub(super) async fn replace_with_empty(
        &self,
        fs: &FileSystem,
        path: &str,
        mode: u32,
    ) -> Result<FileOutStream> {
        let opts = CreateFileOptions {
            write_type: self.write_type(),
            mode: mode & 0o7777,
            recursive: false,
            overwrite: true,
            ..Default::default()
        };
        fs.create_file(path, opts).await
    }

    /// write(2) on handle `h`: data at `offset`, from process `pid`.
    pub(super) async fn write_to(
        &self,
        h: &Shared,
        pid: u32,
        offset: u64,
        data: &[u8],
    ) -> std::result::Result<u32, Errno> {
        let mut h = h.lock().await;
        match &mut *h {
            Handle::Write(w) => {
                if let Some(e) = w.failed {
                    return Err(e);
                }
                w.writer_pid = pid;
                match self.write_at(w, offset, data).await {
                    Ok(()) => Ok(data.len() as u32),
                    Err(e) => {
                        let n = self.fail("write", &w.path, &e);
                        // A refused random write leaves the file intact and writable; a
                        // failed stream does not.
                        if e.code != ErrorCode::Unimplemented {
                            w.failed = Some(n);
                            if let Some(out) = w.out.take() {
                                let _ = out.cancel().await;
                            }
                            self.stop_writing(w.ino, &w.written);
                        }
                        Err(n)
                    }
                }
            }
            Handle::Read(ReadHandle { path, .. })
            | Handle::Existing(ExistingHandle { path, .. }) => {
                let e = Error::unimplemented(format!(
                    "{path}: cannot modify an existing file (Alluvium files are write-once; \
                     open with O_TRUNC to replace it)"
                ));
                Err(self.fail("write", path, &e))
            }
            Handle::Dir(_) => Err(Errno::EISDIR),
        }
    }

    /// flush (a close(2)) by process `pid`: completes the file when `pid` is its writer.
    pub(super) async fn flush_handle(
        &self,
        h: &Shared,
        pid: u32,
    ) -> std::result::Result<(), Errno> {
        let mut h = h.lock().await;
        match &mut *h {
            Handle::Write(w)
                if (w.written() > 0 || !w.pending.is_empty()) && w.writer_pid == pid =>
            {
                if let Some(e) = w.failed {
                    return Err(e);
                }
                self.finish_write(w).await.map_err(|e| {
                    let n = self.fail("flush", &w.path, &e);
                    w.failed = Some(n);
                    n
                })
            }
            _ => Ok(()),
        }
    }

    /// release: the last reference went; completes a file still being written.
    pub(super) async fn release_handle(&self, h: Shared) -> std::result::Result<(), Errno> {
        let mut h = h.lock().await;
        match std::mem::replace(
            &mut *h,
            Handle::Dir(DirHandle {
                path: String::new(),
                uid: 0,
                page_start: 0,
                page: Vec::new(),
                last_page: true,
            }),
        ) {
            Handle::Write(mut w) => {
                if let Some(e) = w.failed {
                    return Err(e);
                }
                self.finish_write(&mut w)
                    .await
                    .map_err(|e| self.fail("release", &w.path, &e))
            }
            Handle::Read(r) => {
                let _ = r.stream.close().await;
                for (_, s) in r.random {
                    let _ = s.close().await;
                }
                Ok(())
            }
            Handle::Dir(_) | Handle::Existing(_) => Ok(()),
        }
    }

    pub(super) fn start_writing(&self, ino: u64) -> Arc<AtomicU64> {
        let w = Arc::new(AtomicU64::new(0));
        self.writing.lock().insert(ino, w.clone());
        self.inodes.invalidate_cache(ino);
        w
    }

    pub(super) fn stop_writing(&self, ino: u64, written: &Arc<AtomicU64>) {
        let mut map = self.writing.lock();
        if map.get(&ino).is_some_and(|w| Arc::ptr_eq(w, written)) {
            map.remove(&ino);
        }
    }

    /// Completes (or, after a gap in the data, abandons) a file being written.
    pub(super) async fn finish_write(&self, w: &mut WriteHandle) -> Result<()> {
        let Some(out) = w.out.take() else {
            return Ok(());
        };
        self.stop_writing(w.ino, &w.written);
        if !w.pending.is_empty() {
            let _ = out.cancel().await;
            return Err(Error::internal(format!(
                "{}: writes beyond offset {} never got the bytes before them; the file was \
                 abandoned (Alluvium files are written sequentially)",
                w.path,
                w.written()
            )));
        }
        out.close().await?;
        Ok(())
    }

    /// Writes `data` at `offset` of a sequentially written file.
    pub(super) async fn write_at(
        &self,
        w: &mut WriteHandle,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        let written = w.written();
        let Some(out) = w.out.as_mut() else {
            return Err(Error::internal(format!(
                "{}: write after the file was completed (files are write-once)",
                w.path
            )));
        };
        if offset < written {
            return Err(Error::unimplemented(format!(
                "{}: random write at {offset} (file has {written} bytes): Alluvium files are \
                 written once, sequentially",
                w.path
            )));
        }
        if offset > written {
            if w.pending_bytes + data.len() > MAX_PENDING_WRITE_BYTES {
                return Err(Error::unimplemented(format!(
                    "{}: write at {offset} leaves a gap after {written} bytes: Alluvium files are \
                     written once, sequentially",
                    w.path
                )));
            }
            w.pending_bytes += data.len();
            w.pending.insert(offset, data.to_vec());
            return Ok(());
        }
        out.write(data).await?;
        let mut end = written + data.len() as u64;
        // Drain held writes that now continue the file.
        while let Some(entry) = w.pending.first_entry() {
            if *entry.key() != end {
                break;
            }
            let buf = entry.remove();
            w.pending_bytes -= buf.len();
            out.write(&buf).await?;
            end += buf.len() as u64;
        }
        w.written.store(end, Ordering::Release);
        Ok(())
    }
}
