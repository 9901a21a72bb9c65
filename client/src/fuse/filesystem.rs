//! The kernel's requests served from Alluvium. fuser calls these methods on its own threads
//! (several, see `threads=`); each one blocks its thread on the async client through a tokio
//! runtime handle, so requests run in parallel and never block the runtime's own threads.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alluvium_common::{Error, ErrorCode, Reason, Result};
use alluvium_proto as pb;
use alluvium_proto::{FileInfo, ReadType, WriteType};
use bytes::{Bytes, BytesMut};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};
use futures::StreamExt;
use parking_lot::Mutex;

use super::errno::{errno_of, is_transient};
use super::handles::{
    DirEntry, DirHandle, ExistingHandle, Handle, Handles, ReadHandle, WriteHandle,
    MAX_PENDING_WRITE_BYTES, RANDOM_STREAMS,
};
use super::inodes::{InodeTable, ROOT};
use super::options::FuseOptions;
use super::users::{group_name, user_name, Users};
use crate::config::options::{
    CreateDirectoryOptions, CreateFileOptions, DeleteOptions, OpenFileOptions, SetAttributeOptions,
};
use crate::FileSystem;

/// Entries asked of the master per directory page.
const DIR_PAGE: u64 = 1000;
/// `st_blksize`: programs size their buffers by it; large buffers make fewer, larger reads.
const BLKSIZE: u32 = 1 << 20;
/// How long opening a file for reading waits for a writer in this mount to complete it.
const WAIT_FOR_WRITER: Duration = Duration::from_secs(5);

pub struct AlluviumFuse {
    rt: tokio::runtime::Handle,
    opts: FuseOptions,
    users: Users,
    inodes: InodeTable,
    handles: Handles,
    /// Files being written through this mount: inode → bytes written so far.
    writing: Mutex<HashMap<u64, Arc<AtomicU64>>>,
    /// Dropped with the file system, which tells the mount handle that the session ended.
    _ended: tokio::sync::oneshot::Sender<()>,
}

fn name_of(name: &OsStr) -> std::result::Result<&str, Errno> {
    let s = name.to_str().ok_or(Errno::EINVAL)?;
    if s.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    if s.is_empty() || s.contains('/') {
        return Err(Errno::EINVAL);
    }
    Ok(s)
}

fn time_of(ms: i64) -> SystemTime {
    if ms <= 0 {
        UNIX_EPOCH
    } else {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    }
}

/// Status without the block list (cheaper for the master; attributes do not need blocks).
async fn stat(fs: &FileSystem, path: &str) -> Result<FileInfo> {
    fs.inner
        .master
        .fs("GetStatus", |mut c| {
            let req = pb::GetStatusRequest {
                path: path.to_string(),
                with_blocks: false,
            };
            async move { c.get_status(req).await }
        })
        .await
}

/// One page of a directory listing, after `start_after`.
async fn list_page(fs: &FileSystem, path: &str, start_after: &str) -> Result<Vec<FileInfo>> {
    let req = pb::ListStatusRequest {
        path: path.to_string(),
        recursive: false,
        start_after: start_after.to_string(),
        limit: DIR_PAGE,
        page_size: DIR_PAGE as u32,
    };
    let timeout = fs.config().client.rpc_timeout;
    let mut stream =
        crate::master_client::retry_unavailable(fs.config().client.retry_duration, || {
            let mut c = fs.inner.master.fs_client();
            let req = req.clone();
            async move {
                match tokio::time::timeout(timeout, c.list_status(req)).await {
                    Ok(r) => r.map(|r| r.into_inner()).map_err(Error::from),
                    Err(_) => Err(Error::new(
                        ErrorCode::DeadlineExceeded,
                        format!("ListStatus {path}: the master did not answer in time"),
                    )),
                }
            }
        })
        .await?;
    let mut out = Vec::new();
    while let Some(page) = stream.next().await {
        out.extend(page.map_err(Error::from)?.items);
    }
    Ok(out)
}

impl AlluviumFuse {
    pub fn new(
        rt: tokio::runtime::Handle,
        opts: FuseOptions,
        users: Users,
        root_path: &str,
        ended: tokio::sync::oneshot::Sender<()>,
    ) -> Self {
        Self {
            rt,
            opts,
            users,
            inodes: InodeTable::new(root_path),
            handles: Handles::default(),
            writing: Mutex::new(HashMap::new()),
            _ended: ended,
        }
    }

    /// Maps an error to its errno, with a log line (a warning for EIO, whose cause a program
    /// cannot see).
    fn fail(&self, op: &str, path: &str, e: &Error) -> Errno {
        let n = errno_of(e);
        if n == Errno::EIO {
            tracing::warn!(op, path, code = e.code.as_str(), error = %e.message, "fuse: EIO");
        } else {
            tracing::debug!(op, path, code = e.code.as_str(), error = %e.message, errno = ?n, "fuse: error");
        }
        n
    }

    /// Runs `fut` with the client of the calling user on the runtime; errors become errnos.
    fn exec<T, F, Fut>(&self, uid: u32, op: &str, path: &str, f: F) -> std::result::Result<T, Errno>
    where
        F: FnOnce(FileSystem) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let r = self.rt.block_on(async {
            let fs = self.users.client(uid).await?;
            f(fs).await
        });
        r.map_err(|e| self.fail(op, path, &e))
    }

    fn path(&self, ino: INodeNo) -> std::result::Result<String, Errno> {
        self.inodes.path(ino.0).ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> std::result::Result<(String, String), Errno> {
        let name = name_of(name)?;
        let path = self
            .inodes
            .child_path(parent.0, name)
            .ok_or(Errno::ENOENT)?;
        Ok((name.to_string(), path))
    }

    /// As [`Self::child`], for operations that change the namespace: EROFS on a read-only mount.
    fn writable_child(
        &self,
        parent: INodeNo,
        name: &OsStr,
    ) -> std::result::Result<(String, String), Errno> {
        if self.opts.read_only {
            return Err(Errno::EROFS);
        }
        self.child(parent, name)
    }

    fn attr(&self, ino: u64, f: &FileInfo) -> FileAttr {
        let mut size = if f.is_folder { 4096 } else { f.length };
        if let Some(w) = self.writing.lock().get(&ino) {
            size = size.max(w.load(Ordering::Acquire));
        }
        let mtime = time_of(f.last_modification_time_ms);
        let atime = if f.last_access_time_ms > 0 {
            time_of(f.last_access_time_ms)
        } else {
            mtime
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime,
            mtime,
            ctime: mtime,
            crtime: time_of(f.creation_time_ms),
            kind: if f.is_folder {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: (f.mode & 0o7777) as u16,
            nlink: if f.is_folder { 2 } else { 1 },
            uid: self.users.uid_of(&f.owner),
            gid: self.users.gid_of(&f.group),
            rdev: 0,
            blksize: BLKSIZE,
            flags: 0,
        }
    }

    fn write_type(&self) -> WriteType {
        self.opts.write_type.unwrap_or(WriteType::Unspecified)
    }

    fn read_type(&self) -> ReadType {
        self.opts.read_type.unwrap_or(ReadType::Unspecified)
    }

    fn start_writing(&self, ino: u64) -> Arc<AtomicU64> {
        let w = Arc::new(AtomicU64::new(0));
        self.writing.lock().insert(ino, w.clone());
        self.inodes.invalidate_cache(ino);
        w
    }

    fn stop_writing(&self, ino: u64, written: &Arc<AtomicU64>) {
        let mut map = self.writing.lock();
        if map.get(&ino).is_some_and(|w| Arc::ptr_eq(w, written)) {
            map.remove(&ino);
        }
    }

    /// Opens a file for reading; waits briefly when this mount is still writing it (a `cp`
    /// followed at once by `cat`: the kernel's release of the writer may trail the reader's
    /// open).
    async fn open_reader(
        &self,
        fs: &FileSystem,
        ino: u64,
        path: &str,
    ) -> Result<crate::FileInStream> {
        let deadline = Instant::now() + WAIT_FOR_WRITER;
        let opts = OpenFileOptions {
            read_type: self.read_type(),
        };
        loop {
            match fs.open_file(path, opts.clone()).await {
                Err(e)
                    if e.code == ErrorCode::FailedPrecondition
                        && self.writing.lock().contains_key(&ino)
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => return other,
            }
        }
    }

    /// Completes (or, after a gap in the data, abandons) a file being written.
    async fn finish_write(&self, w: &mut WriteHandle) -> Result<()> {
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
    async fn write_at(&self, w: &mut WriteHandle, offset: u64, data: &[u8]) -> Result<()> {
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

    /// Reads `size` bytes at `offset`, re-opening streams with fresh block locations while a
    /// worker is unavailable (bounded by `retry=`).
    async fn read_handle(&self, r: &mut ReadHandle, offset: u64, size: u32) -> Result<Bytes> {
        let len = r.stream.len();
        if offset >= len {
            return Ok(Bytes::new());
        }
        let want = (size as u64).min(len - offset) as usize;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            let result = if offset == r.next {
                // Sequential: continue the stream (it reads ahead to the block's end). A read
                // inside one block is a slice of the mapped block or received message, passed
                // to the kernel without another copy.
                async {
                    r.stream.seek(offset).await?;
                    let first = r.stream.read_bytes(want).await?;
                    if first.len() == want || first.is_empty() {
                        return Ok(first);
                    }
                    let mut out = BytesMut::with_capacity(want);
                    out.extend_from_slice(&first);
                    while out.len() < want {
                        let more = r.stream.read_bytes(want - out.len()).await?;
                        if more.is_empty() {
                            break;
                        }
                        out.extend_from_slice(&more);
                    }
                    Ok(out.freeze())
                }
                .await
            } else {
                let mut buf = vec![0u8; want];
                self.read_random(r, offset, &mut buf).await.map(|n| {
                    buf.truncate(n);
                    Bytes::from(buf)
                })
            };
            match result {
                Ok(data) => {
                    if offset == r.next || !data.is_empty() {
                        // A positioned read that the next one continues becomes sequential.
                        r.next = offset + data.len() as u64;
                    }
                    return Ok(data);
                }
                Err(e) if is_transient(&e) && started.elapsed() < self.opts.retry => {
                    tracing::debug!(path = %r.path, offset, error = %e, "fuse: read failed, retrying with fresh locations");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    for (_, s) in r.random.drain(..) {
                        let _ = s.close().await;
                    }
                    if let Ok(s) = self.reopen(r).await {
                        r.stream = s;
                        r.next = u64::MAX;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn reopen(&self, r: &ReadHandle) -> Result<crate::FileInStream> {
        let fs = self.users.client(r.uid).await?;
        let opts = OpenFileOptions {
            read_type: self.read_type(),
        };
        fs.open_file(&r.path, opts).await
    }

    /// A positioned read on the stream that holds the offset's block (opened on demand; the
    /// least recently used one is closed beyond [`RANDOM_STREAMS`]).
    async fn read_random(&self, r: &mut ReadHandle, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let block_size = r.stream.info().block_size.max(1);
        let block = offset / block_size;
        let mut stream = match r.random.iter().position(|(b, _)| *b == block) {
            Some(i) => r.random.remove(i).1,
            None => {
                if r.random.len() >= RANDOM_STREAMS {
                    let (_, old) = r.random.remove(0);
                    let _ = old.close().await;
                }
                self.reopen(r).await?
            }
        };
        let result = stream.read_at(offset, buf).await;
        // Keyed by the block of the last byte read: a read across a boundary moved the stream.
        let end_block = match &result {
            Ok(n) if *n > 0 => (offset + *n as u64 - 1) / block_size,
            _ => block,
        };
        r.random.push((end_block, stream));
        result
    }

    /// Makes sure `page` holds child `index` of the directory; false past the end.
    async fn dir_seek(&self, d: &mut DirHandle, index: u64) -> Result<bool> {
        if index < d.page_start {
            d.page_start = 0;
            d.page.clear();
            d.last_page = false;
            self.dir_fetch(d, "").await?;
        }
        if d.page.is_empty() && !d.last_page && d.page_start == 0 {
            self.dir_fetch(d, "").await?;
        }
        while index >= d.page_start + d.page.len() as u64 {
            if d.last_page {
                return Ok(false);
            }
            let after = match d.page.last() {
                Some(e) => e.name.clone(),
                None => return Ok(false),
            };
            d.page_start += d.page.len() as u64;
            self.dir_fetch(d, &after).await?;
        }
        Ok(true)
    }

    async fn dir_fetch(&self, d: &mut DirHandle, after: &str) -> Result<()> {
        let fs = self.users.client(d.uid).await?;
        let items = list_page(&fs, &d.path, after).await?;
        tracing::debug!(path = %d.path, after, n = items.len(), first = ?items.first().map(|f| &f.name), last = ?items.last().map(|f| &f.name), "fuse: directory page");
        d.last_page = (items.len() as u64) < DIR_PAGE;
        d.page = items
            .into_iter()
            .map(|f| DirEntry {
                name: f.name,
                is_folder: f.is_folder,
                file_id: f.file_id,
            })
            .collect();
        Ok(())
    }

    /// Replaces a file by an empty one (truncate to 0 of a complete file).
    async fn truncate_to_zero(&self, fs: &FileSystem, path: &str, info: &FileInfo) -> Result<()> {
        let opts = CreateFileOptions {
            write_type: self.write_type(),
            mode: info.mode & 0o7777,
            recursive: false,
            overwrite: true,
            ..Default::default()
        };
        fs.create_file(path, opts).await?.close().await?;
        Ok(())
    }
}

impl fuser::Filesystem for AlluviumFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(nearest) = config.set_max_readahead(self.opts.max_readahead) {
            let _ = config.set_max_readahead(nearest);
        }
        if let Err(nearest) = config.set_max_write(1 << 20) {
            let _ = config.set_max_write(nearest);
        }
        let _ = config.set_max_background(64);
        // O_TRUNC reaches `open` (instead of a setattr after it), so replacing a file by
        // opening it with O_TRUNC works on write-once files.
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC) {
            tracing::warn!(
                ?missing,
                "fuse: kernel lacks atomic O_TRUNC; overwriting existing files will fail"
            );
        }
        tracing::info!(root = ?self.inodes.path(ROOT), "fuse: session initialized");
        Ok(())
    }

    fn destroy(&mut self) {
        tracing::info!(open_handles = self.handles.len(), "fuse: session ended");
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (name, path) = match self.child(parent, name) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        let path = path.as_str();
        match self.exec(req.uid(), "lookup", path, |fs| async move {
            stat(&fs, path).await
        }) {
            Ok(info) => {
                let ino = self.inodes.lookup(parent.0, &name, info.file_id);
                reply.entry(
                    &self.opts.entry_timeout,
                    &self.attr(ino, &info),
                    Generation(0),
                );
            }
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.inodes.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let path = path.as_str();
        match self.exec(req.uid(), "getattr", path, |fs| async move {
            stat(&fs, path).await
        }) {
            Ok(info) => reply.attr(&self.opts.attr_timeout, &self.attr(ino.0, &info)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let atime_ms = atime.map(time_or_now_ms);
        let mtime_ms = mtime.map(time_or_now_ms);
        let changes = mode.is_some()
            || uid.is_some()
            || gid.is_some()
            || size.is_some()
            || atime_ms.is_some()
            || mtime_ms.is_some();
        if changes && self.opts.read_only {
            return reply.error(Errno::EROFS);
        }
        // Size of a file this handle is writing: only "no change" (0 before any write, or the
        // current length) is possible.
        let writer = fh.and_then(|fh| self.handles.get(fh.0));
        let path = path.as_str();
        let r = self.exec(req.uid(), "setattr", path, |fs| async move {
            if mode.is_some()
                || uid.is_some()
                || gid.is_some()
                || atime_ms.is_some()
                || mtime_ms.is_some()
            {
                let opts = SetAttributeOptions {
                    mode: mode.map(|m| m & 0o7777),
                    owner: uid.map(user_name),
                    group: gid.map(group_name),
                    mtime_ms,
                    atime_ms,
                    ..Default::default()
                };
                fs.set_attribute(path, opts).await?;
            }
            if let Some(size) = size {
                let mut handled = false;
                if let Some(h) = &writer {
                    let mut h = h.lock().await;
                    match &mut *h {
                        Handle::Write(w) => {
                            if size != w.written() {
                                return Err(Error::unimplemented(format!(
                                    "{path}: cannot resize a file being written to {size} bytes \
                                     (files are written once, sequentially)"
                                )));
                            }
                            handled = true;
                        }
                        Handle::Existing(x) if size == 0 => {
                            // ftruncate(fd, 0) of an existing file: it is replaced by a new,
                            // empty one that this handle now writes.
                            let opts = CreateFileOptions {
                                write_type: self.write_type(),
                                mode: x.mode,
                                recursive: false,
                                overwrite: true,
                                ..Default::default()
                            };
                            let out = fs.create_file(path, opts).await?;
                            let written = self.start_writing(ino.0);
                            *h = Handle::Write(WriteHandle {
                                path: path.to_string(),
                                ino: ino.0,
                                out: Some(out),
                                written,
                                pending: Default::default(),
                                pending_bytes: 0,
                                failed: None,
                                writer_pid: req.pid(),
                            });
                            handled = true;
                        }
                        _ => {}
                    }
                }
                if !handled {
                    let info = stat(&fs, path).await?;
                    if info.is_folder {
                        return Err(Error::invalid_argument(format!("{path}: is a directory"))
                            .with_reason(Reason::IsADirectory));
                    }
                    if size == 0 && info.length > 0 {
                        self.truncate_to_zero(&fs, path, &info).await?;
                        self.inodes.invalidate_cache(ino.0);
                    } else if size != info.length && !(size == 0 && info.length == 0) {
                        return Err(Error::unimplemented(format!(
                            "{path}: cannot truncate to {size} bytes (only to 0: Alluvium \
                             files are write-once)"
                        )));
                    }
                }
            }
            stat(&fs, path).await
        });
        match r {
            Ok(info) => reply.attr(&self.opts.attr_timeout, &self.attr(ino.0, &info)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (name, path) = match self.writable_child(parent, name) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        let path = path.as_str();
        let r = self.exec(req.uid(), "mkdir", path, |fs| async move {
            let opts = CreateDirectoryOptions {
                recursive: false,
                allow_exists: false,
                mode: mode & !umask & 0o7777,
            };
            fs.create_directory(path, opts).await?;
            stat(&fs, path).await
        });
        match r {
            Ok(info) => {
                let ino = self.inodes.lookup(parent.0, &name, info.file_id);
                reply.entry(
                    &self.opts.entry_timeout,
                    &self.attr(ino, &info),
                    Generation(0),
                );
            }
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (name, path) = match self.writable_child(parent, name) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        let path = path.as_str();
        let r = self.exec(req.uid(), "unlink", path, |fs| async move {
            if stat(&fs, path).await?.is_folder {
                return Err(Error::invalid_argument(format!("{path}: is a directory"))
                    .with_reason(Reason::IsADirectory));
            }
            fs.delete(path, DeleteOptions::default()).await
        });
        match r {
            Ok(()) => {
                self.inodes.remove(parent.0, &name);
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (name, path) = match self.writable_child(parent, name) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        let path = path.as_str();
        let r = self.exec(req.uid(), "rmdir", path, |fs| async move {
            let info = stat(&fs, path).await?;
            if !info.is_folder {
                return Err(Error::invalid_argument(format!("{path}: not a directory"))
                    .with_reason(Reason::NotADirectory));
            }
            // Checked here too, so the errno is right whatever the master's wording.
            if !list_page(&fs, path, "").await?.is_empty() {
                return Err(
                    Error::failed_precondition(format!("{path}: directory not empty"))
                        .with_reason(Reason::NotEmpty),
                );
            }
            fs.delete(path, DeleteOptions::default()).await
        });
        match r {
            Ok(()) => {
                self.inodes.remove(parent.0, &name);
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let ((name, src), (newname, dst)) = match (
            self.writable_child(parent, name),
            self.child(newparent, newname),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        let bits = flags.bits();
        if bits & libc::RENAME_EXCHANGE != 0 {
            return reply.error(Errno::EINVAL);
        }
        let no_replace = bits & libc::RENAME_NOREPLACE != 0;
        let (src, dst) = (src.as_str(), dst.as_str());
        let r = self.exec(req.uid(), "rename", src, |fs| async move {
            if src == dst {
                return Ok(());
            }
            // POSIX rename replaces the target: a file by a file, or an empty directory by a
            // directory. The master's rename does not, so the target goes first (not atomic).
            match stat(&fs, dst).await {
                Ok(target) => {
                    if no_replace {
                        return Err(Error::already_exists(format!("{dst}: already exists")));
                    }
                    let source = stat(&fs, src).await?;
                    match (source.is_folder, target.is_folder) {
                        (false, true) => {
                            return Err(Error::invalid_argument(format!("{dst}: is a directory"))
                                .with_reason(Reason::IsADirectory))
                        }
                        (true, false) => {
                            return Err(Error::invalid_argument(format!("{dst}: not a directory"))
                                .with_reason(Reason::NotADirectory))
                        }
                        (true, true) if !list_page(&fs, dst, "").await?.is_empty() => {
                            return Err(Error::failed_precondition(format!(
                                "{dst}: directory not empty"
                            ))
                            .with_reason(Reason::NotEmpty))
                        }
                        _ => {}
                    }
                    fs.delete(dst, DeleteOptions::default()).await?;
                }
                Err(e) if e.code == ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
            fs.rename(src, dst).await
        });
        match r {
            Ok(()) => {
                self.inodes.rename(parent.0, &name, newparent.0, &newname);
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let uid = req.uid();
        let writing = flags.acc_mode() != OpenAccMode::O_RDONLY;
        if writing && self.opts.read_only {
            return reply.error(Errno::EROFS);
        }
        let path = path.as_str();
        let r = self.exec(uid, "open", path, |fs| async move {
            if writing {
                let info = stat(&fs, path).await?;
                if info.is_folder {
                    return Err(Error::invalid_argument(format!("{path}: is a directory"))
                        .with_reason(Reason::IsADirectory));
                }
                let truncate = flags.0 & libc::O_TRUNC != 0;
                if truncate || info.length == 0 {
                    let opts = CreateFileOptions {
                        write_type: self.write_type(),
                        mode: info.mode & 0o7777,
                        recursive: false,
                        overwrite: true,
                        ..Default::default()
                    };
                    let out = fs.create_file(path, opts).await?;
                    let written = self.start_writing(ino.0);
                    let h = Handle::Write(WriteHandle {
                        path: path.to_string(),
                        ino: ino.0,
                        out: Some(out),
                        written,
                        pending: Default::default(),
                        pending_bytes: 0,
                        failed: None,
                        writer_pid: req.pid(),
                    });
                    return Ok((self.handles.insert(h), FopenFlags::empty()));
                }
                if flags.0 & libc::O_APPEND != 0 {
                    return Err(Error::unimplemented(format!(
                        "{path}: cannot append to an existing file (Alluvium files are \
                         write-once; open with O_TRUNC to replace it)"
                    )));
                }
                if flags.acc_mode() == OpenAccMode::O_WRONLY {
                    let h = Handle::Existing(ExistingHandle {
                        path: path.to_string(),
                        mode: info.mode & 0o7777,
                    });
                    return Ok((self.handles.insert(h), FopenFlags::empty()));
                }
                // O_RDWR without O_TRUNC: reads work, writes will be refused.
            }
            let stream = self.open_reader(&fs, ino.0, path).await?;
            let info = stream.info();
            let key = (info.file_id, info.length, info.last_modification_time_ms);
            let mut fopen = FopenFlags::empty();
            if self.opts.direct_io {
                fopen |= FopenFlags::FOPEN_DIRECT_IO;
            } else if self.opts.kernel_cache && self.inodes.open_keeps_cache(ino.0, key) {
                fopen |= FopenFlags::FOPEN_KEEP_CACHE;
            }
            let h = Handle::Read(ReadHandle {
                path: path.to_string(),
                uid,
                stream,
                next: 0,
                random: Vec::new(),
            });
            Ok((self.handles.insert(h), fopen))
        });
        match r {
            Ok((fh, fopen)) => reply.opened(FileHandle(fh), fopen),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (name, path) = match self.writable_child(parent, name) {
            Ok(v) => v,
            Err(e) => return reply.error(e),
        };
        let path = path.as_str();
        let r = self.exec(req.uid(), "create", path, |fs| async move {
            let opts = CreateFileOptions {
                write_type: self.write_type(),
                mode: mode & !umask & 0o7777,
                recursive: false,
                // The kernel creates when it saw no such name; a file that appeared meanwhile
                // is replaced only when the caller asked to truncate.
                overwrite: flags & libc::O_TRUNC != 0 && flags & libc::O_EXCL == 0,
                ..Default::default()
            };
            fs.create_file(path, opts).await
        });
        match r {
            Ok(out) => {
                let info = out.info().clone();
                let ino = self.inodes.lookup(parent.0, &name, info.file_id);
                let written = self.start_writing(ino);
                let h = Handle::Write(WriteHandle {
                    path: path.to_string(),
                    ino,
                    out: Some(out),
                    written,
                    pending: Default::default(),
                    pending_bytes: 0,
                    failed: None,
                    writer_pid: req.pid(),
                });
                let fh = self.handles.insert(h);
                reply.created(
                    &self.opts.entry_timeout,
                    &self.attr(ino, &info),
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::empty(),
                );
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(h) = self.handles.get(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let r = self.rt.block_on(async {
            let mut h = h.lock().await;
            match &mut *h {
                Handle::Read(r) => self
                    .read_handle(r, offset, size)
                    .await
                    .map_err(|e| self.fail("read", &r.path, &e)),
                Handle::Write(WriteHandle { path, .. })
                | Handle::Existing(ExistingHandle { path, .. }) => {
                    tracing::debug!(path = %path, "fuse: read of a file open for writing");
                    Err(Errno::EOPNOTSUPP)
                }
                Handle::Dir(_) => Err(Errno::EISDIR),
            }
        });
        match r {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(h) = self.handles.get(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let r = self.rt.block_on(async {
            let mut h = h.lock().await;
            match &mut *h {
                Handle::Write(w) => {
                    if let Some(e) = w.failed {
                        return Err(e);
                    }
                    w.writer_pid = req.pid();
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
        });
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let Some(h) = self.handles.get(fh.0) else {
            return reply.ok();
        };
        // close(2) reaches us as flush, synchronously, and release only later: completing the
        // file here makes it complete when close returns (so `cp a b && other-host-reader b`
        // works). Only the writer's own close does: a flush before any write (the shell's dup2
        // for `>`) or from another process (a forked child closing its inherited copy at exec)
        // leaves the file open, and release completes it.
        let pid = req.pid();
        let r = self.rt.block_on(async {
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
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let Some(h) = self.handles.remove(fh.0) else {
            return reply.ok();
        };
        let r = self.rt.block_on(async {
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
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Data reaches workers as it is written; durability in the UFS follows the write type
        // when the file is completed.
        reply.ok();
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let uid = req.uid();
        let path = path.as_str();
        let r = self.exec(uid, "opendir", path, |fs| async move {
            let info = stat(&fs, path).await?;
            if !info.is_folder {
                return Err(Error::invalid_argument(format!("{path}: not a directory"))
                    .with_reason(Reason::NotADirectory));
            }
            Ok(())
        });
        match r {
            Ok(()) => {
                let fh = self.handles.insert(Handle::Dir(DirHandle {
                    path: path.to_string(),
                    uid,
                    page_start: 0,
                    page: Vec::new(),
                    last_page: false,
                }));
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(h) = self.handles.get(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        // Offsets: 0 = ".", 1 = "..", 2 + i = child i; each entry carries the offset of the next.
        let r = self.rt.block_on(async {
            let mut h = h.lock().await;
            let Handle::Dir(d) = &mut *h else {
                return Err(Errno::ENOTDIR);
            };
            let mut next = offset;
            loop {
                let full = match next {
                    0 => reply.add(ino, 1, FileType::Directory, "."),
                    1 => reply.add(INodeNo(ROOT), 2, FileType::Directory, ".."),
                    _ => {
                        let index = next - 2;
                        match self.dir_seek(d, index).await {
                            Ok(true) => {}
                            Ok(false) => break,
                            Err(e) => return Err(self.fail("readdir", &d.path, &e)),
                        }
                        let e = &d.page[(index - d.page_start) as usize];
                        let kind = if e.is_folder {
                            FileType::Directory
                        } else {
                            FileType::RegularFile
                        };
                        let child = self.inodes.peek(ino.0, &e.name, e.file_id);
                        reply.add(INodeNo(child), next + 1, kind, &e.name)
                    }
                };
                if full {
                    break;
                }
                next += 1;
            }
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles.remove(fh.0);
        reply.ok();
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = self.inodes.path(ROOT).unwrap_or_else(|| "/".into());
        let root = root.as_str();
        match self.exec(req.uid(), "statfs", root, |fs| async move {
            fs.master_info().await
        }) {
            Ok(m) => {
                const BSIZE: u64 = 4096;
                let blocks = m.capacity_bytes / BSIZE;
                let free = m.capacity_bytes.saturating_sub(m.used_bytes) / BSIZE;
                let files = m.file_count + m.directory_count;
                let ffree = u64::from(u32::MAX).saturating_sub(files);
                reply.statfs(
                    blocks,
                    free,
                    free,
                    files + ffree,
                    ffree,
                    BSIZE as u32,
                    255,
                    BSIZE as u32,
                );
            }
            Err(e) => reply.error(e),
        }
    }
}

/// utimensat(2) times as milliseconds since the epoch (`UTIME_NOW` is the caller's clock).
fn time_or_now_ms(t: TimeOrNow) -> i64 {
    let t = match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    };
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_millis().min(i64::MAX as u128) as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(name_of(OsStr::new("a.txt")), Ok("a.txt"));
        assert_eq!(name_of(OsStr::new("a/b")), Err(Errno::EINVAL));
        assert_eq!(
            name_of(OsStr::new(&"x".repeat(256))),
            Err(Errno::ENAMETOOLONG)
        );
    }

    #[test]
    fn times_before_the_epoch_clamp() {
        assert_eq!(time_of(-5), UNIX_EPOCH);
        assert_eq!(time_of(1500), UNIX_EPOCH + Duration::from_millis(1500));
    }
}
