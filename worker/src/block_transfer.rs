//! The worker's side of the block transfer protocol (`alluvium_proto::block_transfer`): remote
//! clients read cached blocks as raw bytes written straight from the block's mapping to the
//! socket, one kernel copy, where a `ReadBlock` gRPC stream also copies every chunk into tonic's
//! encode buffer and frames it in HTTP/2.
//!
//! It shares the gRPC port: [`route_connections`] accepts every connection, looks at its first
//! bytes, and hands HTTP/2 connections on to tonic.

use std::sync::Arc;
use std::time::Duration;

use alluvium_common::identity::SecretCheck;
use alluvium_common::{Error, Result};
use alluvium_proto::block_transfer::{
    self as wire, ReadRequest, HELLO_FIXED_LEN, MAGIC, REQUEST_LEN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::metrics::WorkerMetrics;
use crate::service::check_range;
use crate::store::BlockStore;

/// How long a new connection may take to send its first bytes before it is dropped.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);

pub struct BlockTransferServer {
    pub store: Arc<BlockStore>,
    pub metrics: WorkerMetrics,
    pub secret: SecretCheck,
}

/// Accepts connections on the worker's gRPC listener until `stop`: block transfer connections
/// are served here, every other connection goes to `grpc` (tonic's incoming stream).
pub async fn route_connections(
    listener: TcpListener,
    server: Arc<BlockTransferServer>,
    grpc: mpsc::Sender<std::io::Result<TcpStream>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: keep accepting once the pressure is gone.
                tracing::warn!(error = %e, "worker accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // TCP_NODELAY: without it, small replies and stream trailers wait for the peer's delayed
        // ACK (~40 ms per listing or block stream).
        let _ = stream.set_nodelay(true);
        let (server, grpc) = (server.clone(), grpc.clone());
        tokio::spawn(async move {
            match sniff(&stream).await {
                Some(true) => {
                    let peer = stream.peer_addr().ok();
                    if let Err(e) = server.serve(stream).await {
                        tracing::debug!(?peer, error = %e, "block transfer connection ended");
                    }
                }
                Some(false) => {
                    let _ = grpc.send(Ok(stream)).await;
                }
                None => {}
            }
        });
    }
}

/// Whether the connection opens with the block transfer magic (None: closed or silent).
async fn sniff(stream: &TcpStream) -> Option<bool> {
    let mut head = [0u8; MAGIC.len()];
    let look = async {
        loop {
            let n = stream.peek(&mut head).await.ok()?;
            if n == 0 {
                return None;
            }
            if n == head.len() || head[..n] != MAGIC[..n] {
                return Some(head[..n] == MAGIC[..]);
            }
            // A prefix of the magic so far: wait for the rest.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(SNIFF_TIMEOUT, look)
        .await
        .ok()
        .flatten()
}

impl BlockTransferServer {
    /// One connection: the hello, then read requests until the client closes it.
    async fn serve(&self, mut s: TcpStream) -> std::io::Result<()> {
        let mut fixed = [0u8; HELLO_FIXED_LEN];
        s.read_exact(&mut fixed).await?;
        let secret_len = match wire::decode_hello_fixed(&fixed) {
            Ok(n) => n,
            Err(m) => return refuse(&mut s, tonic::Code::InvalidArgument, &m).await,
        };
        let mut secret = vec![0u8; secret_len];
        s.read_exact(&mut secret).await?;
        if !self.secret.accepts(&secret) {
            let m = "missing or wrong cluster secret (security.cluster_secret)";
            return refuse(&mut s, tonic::Code::Unauthenticated, m).await;
        }
        s.write_all(&wire::HELLO_ACK).await?;
        loop {
            let mut req = [0u8; REQUEST_LEN];
            match s.read_exact(&mut req).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
            let req = match ReadRequest::decode(&req) {
                Ok(r) => r,
                Err(m) => return refuse(&mut s, tonic::Code::InvalidArgument, &m).await,
            };
            match self.open(req).await {
                Ok(data) => {
                    s.write_all(&wire::encode_ok(data.len() as u64)).await?;
                    let n = data.len() as u64;
                    s = send(s, data).await?;
                    self.metrics.read("cache", n);
                }
                Err(e) => {
                    tracing::debug!(block_id = req.block_id, error = %e, "block transfer read refused");
                    s.write_all(&wire::encode_error(e.code.to_grpc(), &e.message))
                        .await?;
                }
            }
        }
    }

    /// The requested range of a cached block, mapped and locked until the bytes are sent.
    async fn open(&self, req: ReadRequest) -> Result<bytes::Bytes> {
        let lock = self.store.lock(req.block_id).await.map_err(|e| {
            if e.code == alluvium_common::ErrorCode::NotFound {
                Error::not_found(format!(
                    "block {} is not cached on this worker",
                    req.block_id
                ))
            } else {
                e
            }
        })?;
        let (off, len) = check_range(req.block_id, req.offset, req.length, lock.length)?;
        lock.map_range(off, len)
    }
}

/// Ranges from this size on are written from a blocking thread.
const BLOCKING_SEND_BYTES: usize = 1 << 20;

/// Writes `data` (a slice of the block's mapping) to the socket: the only copy is the kernel's.
/// A large range is written from a blocking thread with a blocking socket: the kernel copies
/// inside `write(2)` are CPU work that would otherwise hold an async worker thread for the
/// whole transfer, and on a runtime of few threads the reader of the other end (in this process
/// or another) would then run in turns with it instead of beside it.
async fn send(mut s: TcpStream, data: bytes::Bytes) -> std::io::Result<TcpStream> {
    if data.len() < BLOCKING_SEND_BYTES {
        s.write_all(&data).await?;
        return Ok(s);
    }
    let std = s.into_std()?;
    std.set_nonblocking(false)?;
    let std = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut std = std;
        std.write_all(&data).map(|_| std)
    })
    .await
    .map_err(std::io::Error::other)??;
    std.set_nonblocking(true)?;
    TcpStream::from_std(std)
}

/// Sends an error reply and ends the connection. What the client already sent is drained for a
/// moment first: closing a socket with unread input sends a reset, which can destroy the reply
/// before the client reads it.
async fn refuse(s: &mut TcpStream, code: tonic::Code, message: &str) -> std::io::Result<()> {
    s.write_all(&wire::encode_error(code, message)).await?;
    s.shutdown().await?;
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut left = 64 * 1024;
        while left > 0 {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    Ok(())
}
