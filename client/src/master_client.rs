//! The master's gRPC clients (namespace and block master) over one channel, with the caller's
//! identity on every call, a per-call timeout, and bounded retries while the master is
//! unreachable (UNAVAILABLE), e.g. during a master restart.

use std::future::Future;
use std::time::{Duration, Instant};

use alluvium_common::identity::{Caller, IdentityInterceptor};
use alluvium_common::{Config, Error, ErrorCode, Result};
use alluvium_proto::block_master_client::BlockMasterClient;
use alluvium_proto::file_system_master_client::FileSystemMasterClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

pub type Authed = InterceptedService<Channel, IdentityInterceptor>;
pub type FsClient = FileSystemMasterClient<Authed>;
pub type BlockClient = BlockMasterClient<Authed>;

/// The identity this client acts as: `client.user`, or the OS user running it.
pub fn caller(config: &Config) -> Caller {
    if config.client.user.trim().is_empty() {
        Caller::current_process()
    } else {
        Caller::named(config.client.user.trim())
    }
}

/// The interceptor stamping identity and the cluster secret.
pub fn interceptor(config: &Config) -> Result<IdentityInterceptor> {
    let secret = Some(config.security.cluster_secret.as_str()).filter(|s| !s.is_empty());
    IdentityInterceptor::new(&caller(config), secret)
}

/// An endpoint for `host:port` (or a full `http://` URI) that connects lazily.
pub fn endpoint(address: &str, connect_timeout: Duration) -> Result<Endpoint> {
    let uri = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    Ok(Endpoint::from_shared(uri)
        .map_err(|e| Error::invalid_argument(format!("invalid address '{address}': {e}")))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(alluvium_proto::STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(alluvium_proto::CONNECTION_WINDOW_BYTES))
        // A peer that vanishes mid-stream (a killed worker) is noticed in seconds, not at the
        // TCP timeout, so reads fall back to another location quickly.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(false))
}

#[derive(Clone)]
pub struct MasterClient {
    fs: FsClient,
    block: BlockClient,
    address: String,
    timeout: Duration,
    retry_duration: Duration,
}

impl MasterClient {
    /// Builds the clients; the connection is made on first use (and re-made after failures).
    pub fn new(config: &Config) -> Result<Self> {
        let ch = endpoint(&config.master_address, config.client.rpc_timeout)?.connect_lazy();
        let icpt = interceptor(config)?;
        let max = alluvium_proto::MAX_MESSAGE_BYTES;
        Ok(Self {
            fs: FileSystemMasterClient::with_interceptor(ch.clone(), icpt.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            block: BlockMasterClient::with_interceptor(ch, icpt)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            address: config.master_address.clone(),
            timeout: config.client.rpc_timeout,
            retry_duration: config.client.retry_duration,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs a namespace call with timeout and retries.
    pub async fn fs<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnMut(FsClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(what, self.fs.clone(), f).await
    }

    /// Runs a block-master call with timeout and retries.
    pub async fn block<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnMut(BlockClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(what, self.block.clone(), f).await
    }

    /// The raw namespace client, for streaming calls that manage their own deadline.
    pub fn fs_client(&self) -> FsClient {
        self.fs.clone()
    }

    async fn call<C: Clone, T, F, Fut>(&self, what: &str, client: C, mut f: F) -> Result<T>
    where
        F: FnMut(C) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            let result = match tokio::time::timeout(self.timeout, f(client.clone())).await {
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(status)) => Error::from(status),
                Err(_) => Error::new(
                    ErrorCode::DeadlineExceeded,
                    format!(
                        "{what}: the master at {} did not answer within {}",
                        self.address,
                        humantime::format_duration(self.timeout)
                    ),
                ),
            };
            if result.code != ErrorCode::Unavailable || started.elapsed() >= self.retry_duration {
                if result.code == ErrorCode::Unavailable {
                    return Err(Error::unavailable(format!(
                        "cannot reach the master at {} (retried for {}): {}",
                        self.address,
                        humantime::format_duration(self.retry_duration),
                        result.message
                    )));
                }
                return Err(result);
            }
            tracing::debug!(call = what, error = %result, "master unavailable, retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

/// Retries `f` while it fails with UNAVAILABLE, for at most `retry_duration`.
pub(crate) async fn retry_unavailable<T, F, Fut>(retry_duration: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        match f().await {
            Err(e) if e.code == ErrorCode::Unavailable && started.elapsed() < retry_duration => {
                tracing::debug!(error = %e, "unavailable, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_host_port_and_uris() {
        assert!(endpoint("localhost:19998", Duration::from_secs(1)).is_ok());
        assert!(endpoint("http://127.0.0.1:1", Duration::from_secs(1)).is_ok());
        assert!(endpoint("bad address with spaces", Duration::from_secs(1)).is_err());
    }

    #[tokio::test]
    async fn unreachable_master_fails_after_retry_duration() {
        // A bound-then-closed port: connections are refused at once.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut c = Config {
            master_address: format!("127.0.0.1:{port}"),
            ..Default::default()
        };
        c.client.retry_duration = Duration::from_millis(200);
        c.client.user = "tester".into();
        let m = MasterClient::new(&c).unwrap();
        let started = Instant::now();
        let err = m
            .fs("GetMasterInfo", |mut c| async move {
                c.get_master_info(alluvium_proto::Empty {}).await
            })
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable);
        assert!(err.message.contains("cannot reach the master"), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn retry_stops_on_other_errors() {
        let mut n = 0;
        let r: Result<()> = retry_unavailable(Duration::from_secs(5), || {
            n += 1;
            async { Err(Error::not_found("x")) }
        })
        .await;
        assert_eq!(r.unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(n, 1);
    }
}
