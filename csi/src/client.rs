//! A tonic channel to a CSI plugin's unix socket: what the kubelet and the sidecars do, for
//! tests and tools.

use std::path::Path;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connects to the plugin listening on `socket` (a path, or a `unix://` endpoint).
pub async fn connect(socket: impl AsRef<Path>) -> Result<Channel, tonic::transport::Error> {
    let raw = socket.as_ref().to_string_lossy().into_owned();
    let path = crate::endpoint_path(&raw)
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|_| socket.as_ref().to_path_buf());
    // The URI is required by the API but unused: every connection goes to the socket.
    Endpoint::from_static("http://csi.local")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}
