//! The block transfer protocol: cached block bytes from a worker to a remote client over a plain
//! TCP connection, without gRPC's per-message encode and decode copies and HTTP/2 framing.
//!
//! It shares the worker's gRPC port: a connection that opens with [`MAGIC`] is a block transfer
//! connection, anything else (an HTTP/2 preface starts with `PRI `) is handed to gRPC. So no new
//! port, Service or network policy is needed, and an older worker simply rejects the connection
//! (the client then falls back to the `ReadBlock` gRPC stream).
//!
//! ```text
//! client → worker, once per connection:
//!   hello    = MAGIC(4) VERSION(1) secret_len(u16) secret(secret_len)
//! worker → client, when the hello is accepted (an error reply when not):
//!   ack      = MAGIC(4) VERSION(1)
//! then any number of requests, one at a time (a client may send its first with the hello):
//!   request  = OP_READ(1) block_id(u64) offset(u64) length(u64, 0 = to the block's end)
//! worker → client, per request:
//!   reply    = STATUS_OK(1) length(u64) <length raw bytes>
//!            | STATUS_ERROR(1) grpc_code(i32) message_len(u32) message(message_len)
//! ```
//! Integers are big-endian. After an error reply the connection stays usable; after a bad hello
//! (wrong secret, unknown version) the worker sends an error reply and closes it. The ack is what
//! tells a client it reached an Alluvium worker: any other server (an HTTP/2 one answers a
//! connection with its SETTINGS frame) fails the handshake instead of being misread as data.

/// The first bytes of a block transfer connection. Never the start of an HTTP/2 preface.
pub const MAGIC: [u8; 4] = *b"ALVD";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Bytes of the fixed part of the hello (magic, version, secret length).
pub const HELLO_FIXED_LEN: usize = 7;
/// Longest cluster secret a hello may carry.
pub const MAX_SECRET_LEN: usize = 4096;
/// Bytes of a request.
pub const REQUEST_LEN: usize = 25;
/// Longest error message in a reply.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

pub const OP_READ: u8 = 1;
pub const STATUS_OK: u8 = 0;
pub const STATUS_ERROR: u8 = 1;

/// What the worker answers an accepted hello with.
pub const HELLO_ACK: [u8; 5] = [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION];

/// The hello a client sends first, carrying the cluster secret (empty when none is configured).
pub fn encode_hello(secret: &[u8]) -> Result<Vec<u8>, String> {
    if secret.len() > MAX_SECRET_LEN {
        return Err(format!(
            "the cluster secret is {} bytes, longer than the {MAX_SECRET_LEN} a block transfer hello carries",
            secret.len()
        ));
    }
    let mut b = Vec::with_capacity(HELLO_FIXED_LEN + secret.len());
    b.extend_from_slice(&MAGIC);
    b.push(VERSION);
    b.extend_from_slice(&(secret.len() as u16).to_be_bytes());
    b.extend_from_slice(secret);
    Ok(b)
}

/// The secret length announced by the fixed part of a hello, once magic and version are checked.
pub fn decode_hello_fixed(b: &[u8; HELLO_FIXED_LEN]) -> Result<usize, String> {
    if b[..4] != MAGIC {
        return Err("not a block transfer connection".into());
    }
    if b[4] != VERSION {
        return Err(format!(
            "block transfer protocol version {} is not supported (this worker speaks {VERSION})",
            b[4]
        ));
    }
    let len = u16::from_be_bytes([b[5], b[6]]) as usize;
    if len > MAX_SECRET_LEN {
        return Err(format!(
            "block transfer hello announces a {len}-byte secret (at most {MAX_SECRET_LEN})"
        ));
    }
    Ok(len)
}

/// Read `length` bytes (0 = to the end) of `block_id` from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    pub block_id: u64,
    pub offset: u64,
    pub length: u64,
}

impl ReadRequest {
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[0] = OP_READ;
        b[1..9].copy_from_slice(&self.block_id.to_be_bytes());
        b[9..17].copy_from_slice(&self.offset.to_be_bytes());
        b[17..25].copy_from_slice(&self.length.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8; REQUEST_LEN]) -> Result<Self, String> {
        if b[0] != OP_READ {
            return Err(format!("unknown block transfer operation {}", b[0]));
        }
        let u = |r: std::ops::Range<usize>| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[r]);
            u64::from_be_bytes(a)
        };
        Ok(ReadRequest {
            block_id: u(1..9),
            offset: u(9..17),
            length: u(17..25),
        })
    }
}

/// The header of a successful reply: `length` raw bytes follow.
pub fn encode_ok(length: u64) -> [u8; 9] {
    let mut b = [0u8; 9];
    b[0] = STATUS_OK;
    b[1..].copy_from_slice(&length.to_be_bytes());
    b
}

/// An error reply: a gRPC status code and a message (cut to [`MAX_MESSAGE_LEN`]).
pub fn encode_error(code: tonic::Code, message: &str) -> Vec<u8> {
    let mut end = message.len().min(MAX_MESSAGE_LEN);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let msg = &message.as_bytes()[..end];
    let mut b = Vec::with_capacity(9 + msg.len());
    b.push(STATUS_ERROR);
    b.extend_from_slice(&(code as i32).to_be_bytes());
    b.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    b.extend_from_slice(msg);
    b
}

/// The code and message length of an error reply's fixed part (the 8 bytes after its status).
pub fn decode_error_fixed(b: &[u8; 8]) -> Result<(tonic::Code, usize), String> {
    let code = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if len > MAX_MESSAGE_LEN {
        return Err(format!(
            "block transfer error message of {len} bytes (at most {MAX_MESSAGE_LEN})"
        ));
    }
    Ok((tonic::Code::from_i32(code), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_rejects_what_it_must() {
        let h = encode_hello(b"s3cret").unwrap();
        let fixed: [u8; HELLO_FIXED_LEN] = h[..HELLO_FIXED_LEN].try_into().unwrap();
        assert_eq!(decode_hello_fixed(&fixed), Ok(6));
        assert_eq!(&h[HELLO_FIXED_LEN..], b"s3cret");
        // An HTTP/2 preface is not a hello.
        let preface: [u8; HELLO_FIXED_LEN] = *b"PRI * H";
        assert!(decode_hello_fixed(&preface).is_err());
        let mut v2 = fixed;
        v2[4] = 2;
        assert!(decode_hello_fixed(&v2).unwrap_err().contains("version 2"));
        let mut long = fixed;
        long[5..7].copy_from_slice(&(MAX_SECRET_LEN as u16 + 1).to_be_bytes());
        assert!(decode_hello_fixed(&long).is_err());
        assert!(encode_hello(&vec![b'x'; MAX_SECRET_LEN + 1]).is_err());
    }

    #[test]
    fn request_round_trips() {
        let r = ReadRequest {
            block_id: u64::MAX - 3,
            offset: 1 << 40,
            length: 4096,
        };
        assert_eq!(ReadRequest::decode(&r.encode()), Ok(r));
        let mut bad = r.encode();
        bad[0] = 9;
        assert!(ReadRequest::decode(&bad).is_err());
    }

    #[test]
    fn replies_encode_their_parts() {
        assert_eq!(encode_ok(7), [0, 0, 0, 0, 0, 0, 0, 0, 7]);
        let e = encode_error(tonic::Code::NotFound, "block 5 is not cached");
        assert_eq!(e[0], STATUS_ERROR);
        let fixed: [u8; 8] = e[1..9].try_into().unwrap();
        assert_eq!(
            decode_error_fixed(&fixed),
            Ok((tonic::Code::NotFound, "block 5 is not cached".len()))
        );
        // Long messages are cut on a character boundary.
        let long = "é".repeat(MAX_MESSAGE_LEN);
        let e = encode_error(tonic::Code::Internal, &long);
        assert!(e.len() - 9 <= MAX_MESSAGE_LEN);
        assert!(std::str::from_utf8(&e[9..]).is_ok());
    }
}
