//! Open files and directories of a mount, by FUSE file handle.
//!
//! A handle is behind its own async mutex: requests on one handle are served one at a time (a
//! stream has one position), requests on different handles run in parallel.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use alluvium_client::{FileInStream, FileOutStream};

/// Out-of-order writes held until the bytes before them arrive (a writer with several threads,
/// or the kernel sending two writes of one file at once). Beyond this, a write that does not
/// continue the file is refused as a random write.
pub const MAX_PENDING_WRITE_BYTES: usize = 64 << 20;

/// Streams kept per handle for positioned (random) reads, one per block recently read: a
/// stream holds one block open (a short-circuit mapping or a worker stream), so random reads
/// over a file's blocks reuse them instead of re-opening a block on every read.
pub const RANDOM_STREAMS: usize = 64;

pub struct ReadHandle {
    pub path: String,
    pub uid: u32,
    /// The sequential stream.
    pub stream: FileInStream,
    /// Where the previous sequential read ended: a read starting there continues `stream`
    /// (read-ahead); any other offset is a positioned read on `random`.
    pub next: u64,
    /// Positioned-read streams by block index, most recently used last.
    pub random: Vec<(u64, FileInStream)>,
}

pub struct WriteHandle {
    pub path: String,
    pub ino: u64,
    /// `None` once the file was completed (at flush or release) or abandoned after an error.
    pub out: Option<FileOutStream>,
    /// Bytes written in order so far (shared with `getattr` while the file is open).
    pub written: Arc<AtomicU64>,
    /// Writes beyond `written`, by offset.
    pub pending: BTreeMap<u64, Vec<u8>>,
    pub pending_bytes: usize,
    /// The first error: later calls on the handle fail the same way.
    pub failed: Option<fuser::Errno>,
    /// Thread that opened the file or wrote to it last: only its `close` completes the file at
    /// flush time (a forked child closing its inherited copy at exec also sends a flush).
    pub writer_pid: u32,
}

impl WriteHandle {
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }
}

/// One listed entry of a directory page.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub is_folder: bool,
    pub file_id: u64,
}

pub struct DirHandle {
    pub path: String,
    pub uid: u32,
    /// Index (among the children) of `page[0]`.
    pub page_start: u64,
    pub page: Vec<DirEntry>,
    /// The master has no entries after this page.
    pub last_page: bool,
}

/// An existing, non-empty file opened write-only without O_TRUNC (as `truncate(1)` does): only
/// a truncation to 0 through it is possible, which turns it into a [`WriteHandle`].
pub struct ExistingHandle {
    pub path: String,
    pub mode: u32,
}

pub enum Handle {
    Read(ReadHandle),
    Existing(ExistingHandle),
    Write(WriteHandle),
    Dir(DirHandle),
}

pub type Shared = Arc<tokio::sync::Mutex<Handle>>;

#[derive(Default)]
pub struct Handles {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Shared>>,
}

impl Handles {
    pub fn insert(&self, h: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.map
            .lock()
            .insert(fh, Arc::new(tokio::sync::Mutex::new(h)));
        fh
    }

    pub fn get(&self, fh: u64) -> Option<Shared> {
        self.map.lock().get(&fh).cloned()
    }

    pub fn remove(&self, fh: u64) -> Option<Shared> {
        self.map.lock().remove(&fh)
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }
}
