//! The client's side of the block transfer protocol (`alluvium_proto::block_transfer`): a remote
//! worker's cached block read as raw bytes from a TCP connection, so the only copies are the
//! kernel's (worker mapping → socket → the buffer the bytes are handed out in), as in a plain
//! TCP stream. Connections are kept per worker and reused for the next block.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alluvium_common::{Config, Error, Result};
use alluvium_proto::block_transfer::{self as wire, ReadRequest, STATUS_ERROR, STATUS_OK};
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Idle connections kept per worker.
const MAX_IDLE_PER_WORKER: usize = 8;
/// Most bytes handed out by one `read_bytes` (one receive buffer's worth).
const MAX_READ: usize = 4 << 20;

/// How long a worker that did not answer the handshake is read over gRPC only.
const UNSUPPORTED_FOR: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct TransferPool {
    idle: Arc<Mutex<HashMap<String, Vec<TcpStream>>>>,
    /// Workers whose port did not answer the handshake (not an Alluvium worker of this protocol
    /// version), and since when.
    unsupported: Arc<Mutex<HashMap<String, Instant>>>,
    hello: Arc<Vec<u8>>,
    connect_timeout: Duration,
}

impl TransferPool {
    pub fn new(config: &Config) -> Result<Self> {
        let hello = wire::encode_hello(config.security.cluster_secret.as_bytes())
            .map_err(Error::invalid_argument)?;
        Ok(Self {
            idle: Arc::new(Mutex::new(HashMap::new())),
            unsupported: Arc::new(Mutex::new(HashMap::new())),
            hello: Arc::new(hello),
            connect_timeout: config.client.rpc_timeout.min(Duration::from_secs(5)),
        })
    }

    /// Asks the worker at `address` (its gRPC `host:port`) for a range of a cached block; the
    /// returned stream gives exactly the bytes of that range. A worker that does not hold the
    /// block answers NotFound.
    pub async fn read(&self, address: &str, req: ReadRequest) -> Result<BlockTransfer> {
        if let Some(since) = self.unsupported.lock().get(address) {
            if since.elapsed() < UNSUPPORTED_FOR {
                return Err(Error::unavailable(format!(
                    "worker {address} does not speak the block transfer protocol"
                )));
            }
        }
        // A pooled connection may have been closed by the worker since (restart, idle timeout):
        // then one fresh connection is tried before giving up.
        if let Some(conn) = self.take_idle(address) {
            match self.request(conn, false, address, req).await {
                Ok(t) => return Ok(t),
                Err(Failure::Reply(e)) => return Err(e),
                Err(Failure::Io(e)) => {
                    tracing::debug!(address, error = %e, "pooled block transfer connection failed; reconnecting");
                }
                Err(Failure::Protocol(e)) => {
                    tracing::debug!(address, error = %e, "pooled block transfer connection failed; reconnecting");
                }
            }
        }
        let conn = self.connect(address).await?;
        match self.request(conn, true, address, req).await {
            Ok(t) => Ok(t),
            Err(Failure::Reply(e)) => Err(e),
            Err(Failure::Io(e)) => Err(Error::unavailable(format!(
                "block transfer from worker {address}: {e}"
            ))),
            Err(Failure::Protocol(why)) => {
                self.unsupported
                    .lock()
                    .insert(address.to_string(), Instant::now());
                Err(Error::unavailable(format!(
                    "worker {address} does not speak the block transfer protocol ({why})"
                )))
            }
        }
    }

    /// A connection to `address` that has sent its hello and has no request in flight.
    fn take_idle(&self, address: &str) -> Option<TcpStream> {
        self.idle.lock().get_mut(address).and_then(|v| v.pop())
    }

    fn put_idle(&self, address: &str, conn: TcpStream) {
        let mut idle = self.idle.lock();
        let v = idle.entry(address.to_string()).or_default();
        if v.len() < MAX_IDLE_PER_WORKER {
            v.push(conn);
        }
    }

    async fn connect(&self, address: &str) -> Result<TcpStream> {
        let conn = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| {
                Error::unavailable(format!(
                    "block transfer: no connection to worker {address} within {:?}",
                    self.connect_timeout
                ))
            })?
            .map_err(|e| {
                Error::unavailable(format!(
                    "block transfer: cannot reach worker {address}: {e}"
                ))
            })?;
        let _ = conn.set_nodelay(true);
        Ok(conn)
    }

    async fn request(
        &self,
        mut conn: TcpStream,
        fresh: bool,
        address: &str,
        req: ReadRequest,
    ) -> std::result::Result<BlockTransfer, Failure> {
        if fresh {
            // The first request rides with the hello; the ack comes before its reply.
            let mut first = Vec::with_capacity(self.hello.len() + wire::REQUEST_LEN);
            first.extend_from_slice(&self.hello);
            first.extend_from_slice(&req.encode());
            conn.write_all(&first).await.map_err(Failure::Io)?;
            let head = conn.read_u8().await.map_err(Failure::Io)?;
            if head == wire::HELLO_ACK[0] {
                let mut rest = [0u8; wire::HELLO_ACK.len() - 1];
                conn.read_exact(&mut rest).await.map_err(Failure::Io)?;
                if rest[..] != wire::HELLO_ACK[1..] {
                    return Err(Failure::Protocol(format!(
                        "handshake answered with {:?}",
                        [&[head][..], &rest[..]].concat()
                    )));
                }
            } else if head == STATUS_ERROR {
                // The hello was refused: the reply explains why.
                return Err(self.error_reply(conn, address, false).await);
            } else {
                return Err(Failure::Protocol(format!(
                    "handshake answered with byte {head:#04x}"
                )));
            }
        } else {
            conn.write_all(&req.encode()).await.map_err(Failure::Io)?;
        }
        let status = conn.read_u8().await.map_err(Failure::Io)?;
        match status {
            STATUS_OK => {
                let length = conn.read_u64().await.map_err(Failure::Io)?;
                if req.length != 0 && length != req.length {
                    return Err(Failure::Protocol(format!(
                        "asked for {} bytes of block {}, told {length} follow",
                        req.length, req.block_id
                    )));
                }
                Ok(BlockTransfer {
                    conn: Some(conn),
                    remaining: length,
                    buf: BytesMut::new(),
                    pool: self.clone(),
                    address: address.to_string(),
                })
            }
            STATUS_ERROR => Err(self.error_reply(conn, address, true).await),
            other => Err(Failure::Protocol(format!(
                "unknown block transfer status {other}"
            ))),
        }
    }

    /// Reads an error reply (its status byte already read). A refused read leaves the connection
    /// usable (`reusable`); a refused hello does not (the worker closes it).
    async fn error_reply(&self, mut conn: TcpStream, address: &str, reusable: bool) -> Failure {
        let mut fixed = [0u8; 8];
        if let Err(e) = conn.read_exact(&mut fixed).await {
            return Failure::Io(e);
        }
        let (code, len) = match wire::decode_error_fixed(&fixed) {
            Ok(v) => v,
            Err(m) => return Failure::Protocol(m),
        };
        let mut msg = vec![0u8; len];
        if let Err(e) = conn.read_exact(&mut msg).await {
            return Failure::Io(e);
        }
        if reusable {
            self.put_idle(address, conn);
        }
        let message = String::from_utf8_lossy(&msg).into_owned();
        Failure::Reply(Error::from(tonic::Status::new(code, message)))
    }
}

enum Failure {
    /// The worker answered: the answer stands.
    Reply(Error),
    /// The connection failed.
    Io(std::io::Error),
    /// The other end does not speak this protocol.
    Protocol(String),
}

/// The bytes of one requested range, read straight from the worker's connection.
pub struct BlockTransfer {
    /// None once the range is read (the connection went back to the pool) or failed.
    conn: Option<TcpStream>,
    remaining: u64,
    /// Receive buffer; its space is reused once the slices handed out are dropped.
    buf: BytesMut,
    pool: TransferPool,
    address: String,
}

impl BlockTransfer {
    /// Bytes of the range not yet read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Up to `max` bytes as one `Bytes` (empty once the range is read).
    pub async fn read_bytes(&mut self, max: usize) -> Result<Bytes> {
        let want = (max.min(MAX_READ) as u64).min(self.remaining) as usize;
        if want == 0 {
            return Ok(Bytes::new());
        }
        self.buf.clear();
        self.buf.reserve(want);
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.broken());
        };
        let read = (&mut *conn).take(want as u64).read_buf(&mut self.buf).await;
        let n = read.map_err(|e| self.io_error(e))?;
        if n == 0 {
            return Err(self.ended_early());
        }
        self.consumed(n);
        Ok(self.buf.split_to(n).freeze())
    }

    /// Reads up to `dst.len()` bytes straight into `dst`: a single copy, from the socket.
    pub async fn read_into(&mut self, dst: &mut [u8]) -> Result<usize> {
        let want = (dst.len() as u64).min(self.remaining) as usize;
        if want == 0 {
            return Ok(0);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.broken());
        };
        let read = conn.read(&mut dst[..want]).await;
        let n = read.map_err(|e| self.io_error(e))?;
        if n == 0 {
            return Err(self.ended_early());
        }
        self.consumed(n);
        Ok(n)
    }

    fn consumed(&mut self, n: usize) {
        self.remaining -= n as u64;
        if self.remaining == 0 {
            if let Some(conn) = self.conn.take() {
                self.pool.put_idle(&self.address, conn);
            }
        }
    }

    fn io_error(&mut self, e: std::io::Error) -> Error {
        self.conn = None;
        Error::unavailable(format!("block transfer from worker {}: {e}", self.address))
    }

    fn ended_early(&mut self) -> Error {
        self.conn = None;
        Error::unavailable(format!(
            "worker {} closed the block transfer with {} bytes still to send",
            self.address, self.remaining
        ))
    }

    fn broken(&self) -> Error {
        Error::internal(format!(
            "block transfer from worker {} used after it failed",
            self.address
        ))
    }
}
