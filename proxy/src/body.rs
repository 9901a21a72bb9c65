//! Data streams between HTTP bodies and cluster files, one chunk at a time, so an object of any
//! size passes through the gateway in bounded memory.

use std::sync::Arc;

use alluvium_client::FileInStream;
use bytes::{Bytes, BytesMut};
use futures::Stream;

use crate::metrics::Metrics;

/// Bytes read from the cluster per body chunk.
const READ_CHUNK: usize = 1 << 20;

/// Streams `len` bytes of `input` from `start`. An error midway ends the body early, which the
/// client sees as a short response (the status line is already sent by then).
pub fn file_stream(
    mut input: FileInStream,
    start: u64,
    len: u64,
    metrics: Arc<Metrics>,
    gateway: &'static str,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    async_stream::stream! {
        if let Err(e) = input.seek(start).await {
            tracing::warn!(path = %input.info().path, error = %e, "seek failed");
            yield Err(std::io::Error::other(e.message));
            return;
        }
        let mut left = len;
        while left > 0 {
            let want = left.min(READ_CHUNK as u64) as usize;
            let mut buf = BytesMut::zeroed(want);
            match input.read(&mut buf).await {
                Ok(0) => {
                    tracing::warn!(path = %input.info().path, left, "file ended early");
                    yield Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file ended early"));
                    break;
                }
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    metrics.bytes_out(gateway, n as u64);
                    yield Ok(buf.freeze());
                }
                Err(e) => {
                    tracing::warn!(path = %input.info().path, error = %e, "read failed mid-body");
                    yield Err(std::io::Error::other(e.message));
                    break;
                }
            }
        }
        let _ = input.close().await;
    }
}
