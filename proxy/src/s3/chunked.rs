//! Decoding of `aws-chunked` request bodies (`x-amz-content-sha256: STREAMING-...`): each chunk
//! is `<hex size>[;chunk-signature=...]\r\n<data>\r\n`, ended by a zero-size chunk and optional
//! trailers (e.g. `x-amz-checksum-crc32`). Data passes through without being copied when a
//! chunk lies inside one network frame.

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};

/// Longest chunk header line accepted.
const MAX_HEADER: usize = 4096;

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

pub fn decode<S, E>(inner: S) -> impl Stream<Item = Result<Bytes, String>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display + Send,
{
    async_stream::try_stream! {
        let mut inner = inner;
        let mut buf = BytesMut::new();
        loop {
            let line = loop {
                if let Some(pos) = find_crlf(&buf) {
                    let line = buf.split_to(pos);
                    buf.advance(2);
                    break line;
                }
                if buf.len() > MAX_HEADER {
                    Err("aws-chunked: chunk header line too long".to_string())?;
                }
                match inner.next().await {
                    Some(c) => buf.extend_from_slice(&c.map_err(|e| e.to_string())?),
                    None => Err("aws-chunked: body ended inside a chunk header".to_string())?,
                }
            };
            let line = String::from_utf8_lossy(&line).into_owned();
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_hex, 16)
                .map_err(|_| format!("aws-chunked: bad chunk size '{size_hex}'"))?;
            if size == 0 {
                // Trailers follow; they are not needed to store the data.
                while inner.next().await.is_some() {}
                break;
            }
            let mut left = size;
            while left > 0 {
                if buf.is_empty() {
                    match inner.next().await {
                        Some(c) => {
                            let c = c.map_err(|e| e.to_string())?;
                            if (c.len() as u64) <= left {
                                left -= c.len() as u64;
                                yield c;
                            } else {
                                buf.extend_from_slice(&c);
                            }
                            continue;
                        }
                        None => Err("aws-chunked: body ended inside a chunk".to_string())?,
                    }
                }
                let take = left.min(buf.len() as u64) as usize;
                left -= take as u64;
                yield buf.split_to(take).freeze();
            }
            while buf.len() < 2 {
                match inner.next().await {
                    Some(c) => buf.extend_from_slice(&c.map_err(|e| e.to_string())?),
                    None => Err("aws-chunked: body ended before a chunk's CRLF".to_string())?,
                }
            }
            if &buf[..2] != b"\r\n" {
                Err("aws-chunked: chunk data is longer than its declared size".to_string())?;
            }
            buf.advance(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(frames: Vec<&'static [u8]>) -> Result<Vec<u8>, String> {
        let s = futures::stream::iter(
            frames
                .into_iter()
                .map(|f| Ok::<_, String>(Bytes::from_static(f))),
        );
        let mut out = Vec::new();
        let d = decode(s);
        futures::pin_mut!(d);
        while let Some(c) = d.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn decodes_across_frame_boundaries() {
        let body: &[u8] =
            b"5;chunk-signature=ab\r\nhello\r\n3\r\n wo\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n";
        assert_eq!(run(vec![body]).await.unwrap(), b"hello wo");
        let split: Vec<&'static [u8]> = body.chunks(3).collect();
        assert_eq!(run(split).await.unwrap(), b"hello wo");
    }

    #[tokio::test]
    async fn rejects_bad_framing() {
        assert!(run(vec![b"zz\r\nab"]).await.is_err());
        assert!(run(vec![b"2\r\nabc\r\n0\r\n\r\n"]).await.is_err());
        assert!(run(vec![b"5\r\nab"]).await.is_err());
    }
}
