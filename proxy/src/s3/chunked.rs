//! Decoding of `aws-chunked` request bodies (`x-amz-content-sha256: STREAMING-...`): each chunk
//! is `<hex size>[;chunk-signature=...]\r\n<data>\r\n`, ended by a zero-size chunk and optional
//! trailers (e.g. `x-amz-checksum-crc32`, `x-amz-trailer-signature`). Data passes through without
//! being copied when a chunk lies inside one network frame.
//!
//! With a [`ChunkSigner`] every chunk signature (and the trailer signature, when the client
//! signed one) is checked. Data is streamed on before its chunk's signature arrives, so callers
//! must treat the stream as failed — and discard what they wrote — on any error, which every
//! upload path does (temporary file, committed only on success).

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::chunk_signature::ChunkSigner;

/// Longest chunk header or trailer line accepted.
const MAX_LINE: usize = 4096;

/// Most trailer bytes accepted after the final chunk.
const MAX_TRAILER: usize = 16 * 1024;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Broken framing or a failed read: the client sent something other than it declared.
    Framing(String),
    /// A chunk or trailer signature did not match.
    Signature(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Framing(m) | BodyError::Signature(m) => write!(f, "aws-chunked: {m}"),
        }
    }
}

fn framing(m: impl Into<String>) -> BodyError {
    BodyError::Framing(m.into())
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// A chunk header: its size and, when present, its `chunk-signature` extension.
fn parse_header(line: &[u8]) -> Result<(u64, Option<String>), BodyError> {
    let line = std::str::from_utf8(line).map_err(|_| framing("chunk header is not UTF-8"))?;
    let mut parts = line.split(';');
    let size_hex = parts.next().unwrap_or("").trim();
    let size = u64::from_str_radix(size_hex, 16)
        .map_err(|_| framing(format!("bad chunk size '{size_hex}'")))?;
    let signature = parts
        .filter_map(|p| p.trim().strip_prefix("chunk-signature="))
        .next()
        .map(str::to_string);
    Ok((size, signature))
}

pub fn decode<S, E>(
    inner: S,
    signer: Option<ChunkSigner>,
) -> impl Stream<Item = Result<Bytes, BodyError>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display + Send,
{
    async_stream::try_stream! {
        let mut inner = inner;
        let mut signer = signer;
        let mut buf = BytesMut::new();
        loop {
            let line = loop {
                if let Some(pos) = find_crlf(&buf) {
                    let line = buf.split_to(pos);
                    buf.advance(2);
                    break line;
                }
                if buf.len() > MAX_LINE {
                    Err(framing("chunk header line too long"))?;
                }
                match inner.next().await {
                    Some(c) => buf.extend_from_slice(&c.map_err(|e| framing(e.to_string()))?),
                    None => Err(framing("body ended inside a chunk header"))?,
                }
            };
            let (size, claimed) = parse_header(&line)?;
            if signer.is_some() && claimed.is_none() {
                Err(BodyError::Signature(
                    "a chunk of a signed streaming body has no chunk-signature".to_string(),
                ))?;
            }
            let mut sha = signer.as_ref().map(|_| Sha256::new());
            let mut left = size;
            while left > 0 {
                if buf.is_empty() {
                    match inner.next().await {
                        Some(c) => {
                            let c = c.map_err(|e| framing(e.to_string()))?;
                            if (c.len() as u64) <= left {
                                left -= c.len() as u64;
                                if let Some(h) = sha.as_mut() {
                                    h.update(&c);
                                }
                                yield c;
                            } else {
                                buf.extend_from_slice(&c);
                            }
                            continue;
                        }
                        None => Err(framing("body ended inside a chunk"))?,
                    }
                }
                let take = left.min(buf.len() as u64) as usize;
                left -= take as u64;
                let piece = buf.split_to(take).freeze();
                if let Some(h) = sha.as_mut() {
                    h.update(&piece);
                }
                yield piece;
            }
            if size > 0 {
                while buf.len() < 2 {
                    match inner.next().await {
                        Some(c) => buf.extend_from_slice(&c.map_err(|e| framing(e.to_string()))?),
                        None => Err(framing("body ended before a chunk's CRLF"))?,
                    }
                }
                if &buf[..2] != b"\r\n" {
                    Err(framing("chunk data is longer than its declared size"))?;
                }
                buf.advance(2);
            }
            if let (Some(s), Some(h), Some(claimed)) = (signer.as_mut(), sha, claimed.as_deref()) {
                s.verify_chunk(&h.finalize(), claimed).map_err(BodyError::Signature)?;
            }
            if size == 0 {
                break;
            }
        }
        // Trailers: read to the end (they are small), then check the trailer signature if the
        // client signed one.
        while let Some(c) = inner.next().await {
            buf.extend_from_slice(&c.map_err(|e| framing(e.to_string()))?);
            if buf.len() > MAX_TRAILER {
                Err(framing("trailer section too long"))?;
            }
        }
        if let Some(s) = signer.as_mut().filter(|s| s.signed_trailer) {
            let text = std::str::from_utf8(&buf).map_err(|_| framing("trailer is not UTF-8"))?;
            let mut canonical = String::new();
            let mut claimed = None;
            for line in text.split("\r\n").filter(|l| !l.is_empty()) {
                let (name, value) = line
                    .split_once(':')
                    .ok_or_else(|| framing(format!("bad trailer line '{line}'")))?;
                let name = name.trim().to_ascii_lowercase();
                if name == "x-amz-trailer-signature" {
                    claimed = Some(value.trim().to_string());
                } else {
                    canonical.push_str(&format!("{name}:{}\n", value.trim()));
                }
            }
            let claimed = claimed.ok_or_else(|| {
                BodyError::Signature("the signed trailer has no x-amz-trailer-signature".into())
            })?;
            s.verify_trailer(&canonical, &claimed).map_err(BodyError::Signature)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::auth::signing_key;

    async fn run_signed(
        frames: Vec<Bytes>,
        signer: Option<ChunkSigner>,
    ) -> Result<Vec<u8>, BodyError> {
        let s = futures::stream::iter(frames.into_iter().map(Ok::<_, String>));
        let mut out = Vec::new();
        let d = decode(s, signer);
        futures::pin_mut!(d);
        while let Some(c) = d.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    async fn run(frames: Vec<&'static [u8]>) -> Result<Vec<u8>, BodyError> {
        run_signed(frames.into_iter().map(Bytes::from_static).collect(), None).await
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

    fn aws_signer(signed_trailer: bool) -> ChunkSigner {
        ChunkSigner::new(
            signing_key(
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "20130524",
                "us-east-1",
            ),
            "20130524T000000Z",
            "20130524/us-east-1/s3/aws4_request",
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
            signed_trailer,
        )
    }

    /// AWS's published signed streaming body (sigv4-streaming), optionally with one byte changed.
    fn aws_body(corrupt: bool) -> Vec<u8> {
        let mut body = Vec::new();
        for (size, sig) in [
            (
                65536usize,
                "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            ),
            (
                1024,
                "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            ),
            (
                0,
                "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
            ),
        ] {
            body.extend_from_slice(format!("{size:x};chunk-signature={sig}\r\n").as_bytes());
            let mut data = vec![b'a'; size];
            if corrupt && size == 1024 {
                data[10] = b'b';
            }
            body.extend_from_slice(&data);
            if size > 0 {
                body.extend_from_slice(b"\r\n");
            }
        }
        body.extend_from_slice(b"\r\n");
        body
    }

    #[tokio::test]
    async fn verifies_the_aws_documented_signed_body_in_any_framing() {
        let body = Bytes::from(aws_body(false));
        let whole = run_signed(vec![body.clone()], Some(aws_signer(false)))
            .await
            .unwrap();
        assert_eq!(whole, vec![b'a'; 66560]);
        let pieces: Vec<Bytes> = body.chunks(7000).map(Bytes::copy_from_slice).collect();
        let split = run_signed(pieces, Some(aws_signer(false))).await.unwrap();
        assert_eq!(split.len(), 66560);
    }

    #[tokio::test]
    async fn a_changed_byte_or_a_missing_signature_is_refused() {
        let r = run_signed(vec![Bytes::from(aws_body(true))], Some(aws_signer(false))).await;
        assert!(matches!(r, Err(BodyError::Signature(_))), "{r:?}");
        let unsigned = Bytes::from_static(b"5\r\nhello\r\n0\r\n\r\n");
        let r = run_signed(vec![unsigned], Some(aws_signer(false))).await;
        assert!(matches!(r, Err(BodyError::Signature(_))), "{r:?}");
    }

    #[tokio::test]
    async fn a_signed_trailer_is_checked() {
        // The client's side of the chain: chunk, final chunk, trailer.
        let mut client = aws_signer(true);
        let sig1 = client.expected_chunk(&Sha256::digest(b"hello"));
        client
            .verify_chunk(&Sha256::digest(b"hello"), &sig1)
            .unwrap();
        let sig_end = client.expected_chunk(&Sha256::digest(b""));
        client.verify_chunk(&Sha256::digest(b""), &sig_end).unwrap();
        let sig_trailer = client.expected_trailer("x-amz-checksum-crc32:NhCmhg==\n");
        let body = |trailer_value: &str| {
            Bytes::from(format!(
                "5;chunk-signature={sig1}\r\nhello\r\n0;chunk-signature={sig_end}\r\n\
                 x-amz-checksum-crc32:{trailer_value}\r\nx-amz-trailer-signature:{sig_trailer}\r\n\r\n"
            ))
        };
        let ok = run_signed(vec![body("NhCmhg==")], Some(aws_signer(true))).await;
        assert_eq!(ok.unwrap(), b"hello");
        let r = run_signed(vec![body("AAAAAA==")], Some(aws_signer(true))).await;
        assert!(matches!(r, Err(BodyError::Signature(_))), "{r:?}");
    }
}
