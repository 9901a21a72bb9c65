//! The gateway process: binds the S3 and WebHDFS listeners and serves both until shut down.

use std::net::SocketAddr;
use std::sync::Arc;

use alluvium_common::net::bind;
use alluvium_common::{Config, Error, Result};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::s3::auth::Credentials;
use crate::users::UserFileSystems;

/// What every handler of both gateways shares.
#[derive(Clone)]
pub struct GatewayState {
    pub fss: Arc<UserFileSystems>,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<Registry>,
    pub credentials: Arc<Credentials>,
    /// Where WebHDFS two-step CREATE redirects point (unset when WebHDFS is off).
    pub webhdfs_addr: Option<SocketAddr>,
}

pub struct ProxyServer {
    s3_addr: Option<SocketAddr>,
    webhdfs_addr: Option<SocketAddr>,
    stop: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

impl ProxyServer {
    /// Binds S3 on proxy.bind_host:proxy.s3_port and WebHDFS on proxy.webhdfs_port (0 = free
    /// port); talks to the master at config.master_address.
    pub async fn start(config: Config) -> Result<ProxyServer> {
        let pc = &config.proxy;
        if !pc.s3_enabled && !pc.webhdfs_enabled {
            return Err(Error::invalid_argument(
                "proxy: both gateways are disabled (proxy.s3_enabled and proxy.webhdfs_enabled are false)",
            ));
        }
        let s3_listener = match pc.s3_enabled {
            true => Some(bind(&pc.bind_host, pc.s3_port, "the S3 gateway").await?),
            false => None,
        };
        let webhdfs_listener = match pc.webhdfs_enabled {
            true => Some(bind(&pc.bind_host, pc.webhdfs_port, "the WebHDFS gateway").await?),
            false => None,
        };
        let s3_addr = s3_listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let webhdfs_addr = webhdfs_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let metrics = Arc::new(Metrics::default());
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let state = GatewayState {
            fss: UserFileSystems::new(&config).await?,
            metrics,
            registry: Arc::new(registry),
            credentials: Arc::new(Credentials::from_config(pc)),
            webhdfs_addr,
        };
        if pc.s3_enabled && pc.s3_credentials.is_empty() {
            tracing::warn!(
                "no proxy.s3_credentials configured: the S3 gateway refuses every request"
            );
        }
        let webhdfs = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/metrics", get(metrics_text))
            .fallback(crate::webhdfs::handle)
            .with_state(state.clone());
        let s3 = Router::new().fallback(crate::s3::handle).with_state(state);
        let mut stop = Vec::new();
        let mut tasks = Vec::new();
        let served = [(s3_listener, s3), (webhdfs_listener, webhdfs)]
            .into_iter()
            .filter_map(|(l, app)| Some((l?, app)));
        for (listener, app) in served {
            let (tx, rx) = oneshot::channel::<()>();
            stop.push(tx);
            tasks.push(tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
            }));
        }
        tracing::info!(s3 = ?s3_addr, webhdfs = ?webhdfs_addr, master = %config.master_address, "gateways serving");
        Ok(ProxyServer {
            s3_addr,
            webhdfs_addr,
            stop,
            tasks,
        })
    }

    /// The S3 gateway's address, when it is enabled.
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.s3_addr
    }

    /// The WebHDFS gateway's address, when it is enabled.
    pub fn webhdfs_addr(&self) -> Option<SocketAddr> {
        self.webhdfs_addr
    }

    /// Stops accepting, lets requests in flight finish, then returns.
    pub async fn shutdown(self) -> Result<()> {
        for tx in self.stop {
            let _ = tx.send(());
        }
        for t in self.tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Error::internal(format!("gateway server failed: {e}"))),
                Err(e) => return Err(Error::internal(format!("gateway task failed: {e}"))),
            }
        }
        Ok(())
    }
}

async fn metrics_text(
    axum::extract::State(st): axum::extract::State<GatewayState>,
) -> axum::response::Response {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &st.registry).is_err() {
        out.clear();
    }
    let mut r = axum::response::Response::new(axum::body::Body::from(out));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
