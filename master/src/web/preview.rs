//! The first KiB of a file, read through a worker like any client read: from a worker caching
//! the first block, or (when no worker caches it and the file is persisted) by a worker from the
//! UFS without caching. The master never imports the client crate (ARCHITECTURE.md: `master`
//! depends on `proto`, not `client`), so it speaks the worker's `ReadBlock` gRPC directly.

use std::time::Duration;

use alluvium_common::identity::IdentityInterceptor;
use alluvium_common::{Error, Result};
use alluvium_proto::block_worker_client::BlockWorkerClient;
use alluvium_proto::{FileInfo, ReadBlockRequest, ReadType, UfsBlockSource, WorkerNetAddress};
use maud::{html, Markup};
use serde::Serialize;

use super::Web;

/// How many bytes a preview shows.
pub const PREVIEW_BYTES: u64 = 1024;
/// A preview read never holds a page longer than this.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The start of a file's content.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Preview {
    /// Bytes read (at most [`PREVIEW_BYTES`]).
    pub bytes: u64,
    /// More content follows.
    pub truncated: bool,
    /// The bytes as text, when they are UTF-8 text.
    pub text: Option<String>,
    /// Otherwise a hex dump of the first 256 bytes.
    pub hex: Option<String>,
    /// Why nothing could be read.
    pub error: Option<String>,
}

/// Reads the preview; failures become the preview's `error` (the page still shows the file).
pub(crate) async fn read(w: &Web, info: &FileInfo) -> Preview {
    let want = info.length.min(PREVIEW_BYTES);
    let empty = Preview {
        bytes: 0,
        truncated: false,
        text: None,
        hex: None,
        error: None,
    };
    if want == 0 {
        return Preview {
            text: Some(String::new()),
            ..empty
        };
    }
    let result = tokio::time::timeout(READ_TIMEOUT, read_bytes(w, info, want))
        .await
        .unwrap_or_else(|_| {
            Err(Error::unavailable(format!(
                "reading {} took longer than {READ_TIMEOUT:?}",
                info.path
            )))
        });
    match result {
        Ok(data) => {
            let (text, hex) = match as_text(&data) {
                Some(t) => (Some(t), None),
                None => (None, Some(hex_dump(&data[..data.len().min(256)]))),
            };
            Preview {
                bytes: data.len() as u64,
                truncated: info.length > data.len() as u64,
                text,
                hex,
                error: None,
            }
        }
        Err(e) => Preview {
            error: Some(e.message),
            ..empty
        },
    }
}

async fn read_bytes(w: &Web, info: &FileInfo, want: u64) -> Result<Vec<u8>> {
    let block = info
        .blocks
        .first()
        .ok_or_else(|| Error::not_found(format!("{}: the file has no blocks", info.path)))?;
    let blocks = &w.shared.blocks;
    // A live worker caching the block, else any live worker to read it from the UFS.
    let worker = blocks
        .choose_worker(Some(block.block_id), block.block_id)
        .ok_or_else(|| Error::unavailable("no live worker to read the file through"))?;
    let cached = block.locations.iter().any(|l| l.worker_id == worker);
    if !cached && !info.persisted {
        return Err(Error::unavailable(format!(
            "{}: no live worker caches the start of the file and it is not persisted",
            info.path
        )));
    }
    let address = blocks
        .workers()
        .into_iter()
        .find(|wi| wi.id == worker)
        .and_then(|wi| wi.address)
        .ok_or_else(|| Error::unavailable(format!("worker {worker} is gone")))?;
    let req = ReadBlockRequest {
        block_id: block.block_id,
        offset: 0,
        length: want.min(block.length),
        chunk_size: 0,
        // A look at a file must not change what the cache holds.
        read_type: ReadType::NoCache as i32,
        ufs: info.persisted.then(|| UfsBlockSource {
            ufs: info.ufs.clone(),
            offset_in_file: block.offset,
            block_length: block.length,
            durable: true,
        }),
        pinned: info.pinned,
    };
    let mut client = connect(&address, w.cluster_secret.as_deref()).await?;
    let mut stream = client
        .read_block(req)
        .await
        .map_err(Error::from)?
        .into_inner();
    let mut out = Vec::with_capacity(want as usize);
    while (out.len() as u64) < want {
        match stream.message().await.map_err(Error::from)? {
            Some(m) => out.extend_from_slice(&m.data),
            None => break,
        }
    }
    out.truncate(want as usize);
    Ok(out)
}

async fn connect(
    a: &WorkerNetAddress,
    secret: Option<&str>,
) -> Result<
    BlockWorkerClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            IdentityInterceptor,
        >,
    >,
> {
    let url = format!("http://{}:{}", a.host, a.rpc_port);
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| Error::invalid_argument(format!("worker address {url}: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| Error::unavailable(format!("cannot reach worker {url}: {e}")))?;
    let identity = IdentityInterceptor::new(&Web::caller(), secret)?;
    Ok(BlockWorkerClient::with_interceptor(channel, identity)
        .max_decoding_message_size(alluvium_proto::MAX_MESSAGE_BYTES))
}

/// The bytes as text when they read as UTF-8 without control characters other than
/// whitespace. A multi-byte character cut by the end of the preview is dropped.
pub(crate) fn as_text(data: &[u8]) -> Option<String> {
    let s = match std::str::from_utf8(data) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() && data.len() - e.valid_up_to() < 4 => {
            // Valid up to a character cut at the end.
            std::str::from_utf8(&data[..e.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    let binary = s
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c'));
    (!binary).then(|| s.to_string())
}

/// `offset  hex bytes  ascii`, 16 bytes a line.
pub(crate) fn hex_dump(data: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in data.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!("{:08x}  {:<47}  {ascii}\n", i * 16, hex.join(" ")));
    }
    out
}

pub(crate) fn render(p: &Preview) -> Markup {
    html! {
        @if let Some(err) = &p.error {
            p.muted { "Cannot show the content: " (err) }
        } @else if let Some(text) = &p.text {
            @if p.bytes == 0 {
                p.muted { "Empty file." }
            } @else {
                p.muted {
                    "First " (p.bytes) " bytes"
                    @if p.truncated { " (the file goes on)" }
                    ":"
                }
                pre.preview { (text) }
            }
        } @else if let Some(hex) = &p.hex {
            p.muted { "Binary content; the first bytes in hex:" }
            pre.preview { (hex) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary() {
        assert_eq!(
            as_text(b"hello\nworld\t!").as_deref(),
            Some("hello\nworld\t!")
        );
        // "é" cut in half at the end of the preview.
        assert_eq!(as_text(&[b'a', 0xC3]).as_deref(), Some("a"));
        assert_eq!(as_text(&[0, 1, 2, 3]), None);
        assert_eq!(as_text(&[0xff, 0xfe, b'a']), None);
        let d = hex_dump(b"ABC\x00");
        assert!(d.starts_with("00000000  41 42 43 00"), "{d}");
        assert!(d.trim_end().ends_with("ABC."), "{d}");
    }
}
