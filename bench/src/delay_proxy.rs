//! A reverse HTTP proxy on loopback that waits a fixed time before forwarding each request: an
//! object store "far away" (20 ms per request) made from one close by. Bodies stream both ways;
//! the `Host` header is kept, so Signature V4 signed for the proxy's address still verifies
//! upstream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::{Error, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Inner {
    upstream: String,
    delay: Duration,
    http: reqwest::Client,
    requests: AtomicU64,
}

pub struct DelayProxy {
    addr: SocketAddr,
    inner: Arc<Inner>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1): never forwarded.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter(|(k, _)| !is_hop_by_hop(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl DelayProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`) after
    /// `delay` per request.
    pub async fn start(upstream: &str, delay: Duration) -> Result<DelayProxy> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::internal(format!("delay proxy: HTTP client: {e}")))?;
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            delay,
            http,
            requests: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::unavailable(format!("delay proxy: cannot bind: {e}")))?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(forward).with_state(inner.clone());
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        Ok(DelayProxy {
            addr,
            inner,
            stop,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Requests forwarded so far.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::internal(format!("delay proxy failed: {e}"))),
            Err(e) => Err(Error::internal(format!("delay proxy task failed: {e}"))),
        }
    }
}

async fn forward(State(st): State<Arc<Inner>>, req: Request) -> Response {
    tokio::time::sleep(st.delay).await;
    st.requests.fetch_add(1, Ordering::Relaxed);
    match forward_now(&st, req).await {
        Ok(r) => r,
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("delay proxy: upstream {}: {e}", st.upstream),
        )
            .into_response(),
    }
}

async fn forward_now(st: &Inner, req: Request) -> std::result::Result<Response, reqwest::Error> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let has_body = parts.headers.contains_key("content-length")
        || parts.headers.contains_key("transfer-encoding");
    // `Host` is among the forwarded headers: the client keeps a Host that is already set.
    let mut out = st
        .http
        .request(parts.method.clone(), format!("{}{path}", st.upstream))
        .headers(end_to_end(&parts.headers));
    if has_body {
        out = out.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let resp = out.send().await?;
    let mut r = Response::builder().status(resp.status());
    if let Some(h) = r.headers_mut() {
        *h = end_to_end(resp.headers());
    }
    Ok(r.body(Body::from_stream(resp.bytes_stream()))
        .unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, format!("delay proxy: {e}")).into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::time::Instant;

    /// An upstream that echoes what it received: method, Host and body.
    async fn upstream() -> (SocketAddr, oneshot::Sender<()>) {
        async fn echo(req: Request) -> Response {
            let host = req.headers()["host"].to_str().unwrap().to_string();
            let method = req.method().to_string();
            let path = req.uri().to_string();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap();
            let text = format!("{method} {path} host={host} body={}", body.len());
            ([("x-upstream", "yes")], text).into_response()
        }
        async fn sized() -> Response {
            Response::builder()
                .header("content-length", "12345")
                .body(Body::empty())
                .unwrap()
        }
        let app = Router::new()
            .route("/sized", get(sized).head(sized))
            .fallback(echo);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        (addr, tx)
    }

    #[tokio::test]
    async fn forwards_after_the_delay_keeping_host_and_bodies() {
        let (up, stop_up) = upstream().await;
        let proxy = DelayProxy::start(&format!("http://{up}"), Duration::from_millis(20))
            .await
            .unwrap();
        let c = reqwest::Client::builder().no_proxy().build().unwrap();

        let t = Instant::now();
        let r = c
            .get(format!("{}/bucket/key?x=1", proxy.url()))
            .send()
            .await
            .unwrap();
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-upstream"], "yes");
        let text = r.text().await.unwrap();
        // The Host the client signed for (the proxy's), not the upstream's.
        assert_eq!(
            text,
            format!("GET /bucket/key?x=1 host={} body=0", proxy.addr())
        );

        let r = c
            .put(format!("{}/bucket/up", proxy.url()))
            .body(vec![1u8; 70_000])
            .send()
            .await
            .unwrap();
        assert!(r.text().await.unwrap().ends_with("body=70000"));

        // HEAD keeps the upstream's Content-Length (what object stores answer stat with).
        let r = c
            .head(format!("{}/sized", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-length"], "12345");
        assert_eq!(proxy.requests(), 3);
        proxy.shutdown().await.unwrap();
        let _ = stop_up.send(());
    }

    #[tokio::test]
    async fn unreachable_upstream_is_a_bad_gateway() {
        // A port nothing listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let proxy = DelayProxy::start(&format!("http://127.0.0.1:{port}"), Duration::ZERO)
            .await
            .unwrap();
        let c = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = c.get(format!("{}/x", proxy.url())).send().await.unwrap();
        assert_eq!(r.status(), 502);
        proxy.shutdown().await.unwrap();
    }
}
