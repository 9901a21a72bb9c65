//! Listening sockets, bound the same way by every server.

use tokio::net::TcpListener;

use crate::{Error, Result};

/// Binds `what` (for the error: "the master's gRPC port") on `host:port`; port 0 picks a free
/// port. A taken or forbidden address is an UNAVAILABLE error that names all three.
pub async fn bind(host: &str, port: u16, what: &str) -> Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| Error::unavailable(format!("cannot bind {what} on {host}:{port}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_named() {
        let first = bind("127.0.0.1", 0, "the first port").await.unwrap();
        let port = first.local_addr().unwrap().port();
        let e = bind("127.0.0.1", port, "the test's port")
            .await
            .unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::Unavailable);
        let want = format!("cannot bind the test's port on 127.0.0.1:{port}: ");
        assert!(e.message.starts_with(&want), "{e}");
    }
}
