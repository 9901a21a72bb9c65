//! Reading an open file: sequential reads continue one stream (read-ahead), positioned reads
//! use a stream per block, and a read that fails while a worker is away is retried with fresh
//! block locations (bounded by `retry=`).

use std::time::{Duration, Instant};

use alluvium_common::{ErrorCode, Result};
use bytes::{Bytes, BytesMut};

use super::AlluviumFuse;
use crate::errno::is_transient;
use crate::handles::{ReadHandle, RANDOM_STREAMS};
use alluvium_client::OpenFileOptions;
use alluvium_client::{FileInStream, FileSystem};

/// How long opening a file for reading waits for a writer in this mount to complete it.
const WAIT_FOR_WRITER: Duration = Duration::from_secs(5);

impl AlluviumFuse {
    /// Opens a file for reading; waits briefly when this mount is still writing it (a `cp`
    /// followed at once by `cat`: the kernel's release of the writer may trail the reader's
    /// open).
    pub(super) async fn open_reader(
        &self,
        fs: &FileSystem,
        ino: u64,
        path: &str,
    ) -> Result<FileInStream> {
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

    /// Reads `size` bytes at `offset`, re-opening streams with fresh block locations while a
    /// worker is unavailable (bounded by `retry=`).
    pub(super) async fn read_handle(
        &self,
        r: &mut ReadHandle,
        offset: u64,
        size: u32,
    ) -> Result<Bytes> {
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

    pub(super) async fn reopen(&self, r: &ReadHandle) -> Result<FileInStream> {
        let fs = self.users.client(r.uid).await?;
        let opts = OpenFileOptions {
            read_type: self.read_type(),
        };
        fs.open_file(&r.path, opts).await
    }

    /// A positioned read on the stream that holds the offset's block (opened on demand; the
    /// least recently used one is closed beyond [`RANDOM_STREAMS`]).
    pub(super) async fn read_random(
        &self,
        r: &mut ReadHandle,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
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
}
