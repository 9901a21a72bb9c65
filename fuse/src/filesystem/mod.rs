//! The kernel's requests served from Alluvium. fuser calls these methods on its own threads
//! (several, see `threads=`); each one blocks its thread on the async client through a tokio
//! runtime handle, so requests run in parallel and never block the runtime's own threads.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alluvium_common::{Error, Reason, Result};
use alluvium_proto::{FileInfo, ReadType, WriteType};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};
use parking_lot::Mutex;

use crate::errno::errno_of;
use crate::handles::{DirHandle, ExistingHandle, Handle, Handles, WriteHandle};
use crate::inodes::{InodeTable, ROOT};
use crate::options::FuseOptions;
use crate::users::Users;
use alluvium_client::FileSystem;
use alluvium_client::{CreateDirectoryOptions, CreateFileOptions, DeleteOptions};

/// `st_blksize`: programs size their buffers by it; large buffers make fewer, larger reads.
const BLKSIZE: u32 = 1 << 20;

mod attr;
mod dir;
mod open;
mod read;
mod rename;
mod write;

use attr::AttrChanges;

pub struct AlluviumFuse {
    pub(super) rt: tokio::runtime::Handle,
    pub(super) opts: FuseOptions,
    pub(super) users: Users,
    pub(super) inodes: InodeTable,
    pub(super) handles: Handles,
    /// Files being written through this mount: inode → bytes written so far.
    pub(super) writing: Mutex<HashMap<u64, Arc<AtomicU64>>>,
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
    pub(super) fn fail(&self, op: &str, path: &str, e: &Error) -> Errno {
        let n = errno_of(e);
        if n == Errno::EIO {
            tracing::warn!(op, path, code = e.code.as_str(), error = %e.message, "fuse: EIO");
        } else {
            tracing::debug!(op, path, code = e.code.as_str(), error = %e.message, errno = ?n, "fuse: error");
        }
        n
    }

    /// Runs `fut` with the client of the calling user on the runtime; errors become errnos.
    pub(super) fn exec<T, F, Fut>(
        &self,
        uid: u32,
        op: &str,
        path: &str,
        f: F,
    ) -> std::result::Result<T, Errno>
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

    pub(super) fn write_type(&self) -> WriteType {
        self.opts.write_type.unwrap_or(WriteType::Unspecified)
    }

    pub(super) fn read_type(&self) -> ReadType {
        self.opts.read_type.unwrap_or(ReadType::Unspecified)
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
            fs.get_attributes(path).await
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
            fs.get_attributes(path).await
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
        let changes = AttrChanges {
            mode,
            uid,
            gid,
            size,
            atime_ms: atime.map(time_or_now_ms),
            mtime_ms: mtime.map(time_or_now_ms),
        };
        if changes.any() && self.opts.read_only {
            return reply.error(Errno::EROFS);
        }
        // The handle a size change came through (ftruncate).
        let writer = fh.and_then(|fh| self.handles.get(fh.0));
        let path = path.as_str();
        let pid = req.pid();
        let r = self.exec(req.uid(), "setattr", path, |fs| async move {
            self.set_attr(&fs, path, ino.0, pid, writer, changes).await
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
            fs.get_attributes(path).await
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
            if fs.get_attributes(path).await?.is_folder {
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
            let info = fs.get_attributes(path).await?;
            if !info.is_folder {
                return Err(Error::invalid_argument(format!("{path}: not a directory"))
                    .with_reason(Reason::NotADirectory));
            }
            // Checked here too, so the errno is right whatever the master's wording.
            if !fs.list_page(path, "", 1).await?.is_empty() {
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
            self.posix_rename(&fs, src, dst, no_replace).await
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
        if flags.acc_mode() != OpenAccMode::O_RDONLY && self.opts.read_only {
            return reply.error(Errno::EROFS);
        }
        let path = path.as_str();
        let pid = req.pid();
        let r = self.exec(uid, "open", path, |fs| async move {
            self.open_handle(&fs, path, ino.0, uid, pid, flags).await
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
                let fh = self
                    .handles
                    .insert(self.write_handle(path, ino, out, req.pid()));
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
        let r = self.rt.block_on(self.write_to(&h, req.pid(), offset, data));
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
        let r = self.rt.block_on(self.flush_handle(&h, pid));
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
        let r = self.rt.block_on(self.release_handle(h));
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
            let info = fs.get_attributes(path).await?;
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
        let r = self.rt.block_on(self.fill_dir(&h, ino, offset, &mut reply));
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
