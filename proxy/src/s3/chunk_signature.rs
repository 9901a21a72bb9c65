//! Signatures of `aws-chunked` bodies signed with SigV4 (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`
//! and `...-PAYLOAD-TRAILER`): every chunk carries the HMAC of its data chained to the signature
//! before it, starting from the request's own (seed) signature, so a body spliced or altered in
//! flight is refused even though the header signature covered none of its bytes.

use sha2::{Digest, Sha256};

use super::auth::hmac;

/// SHA-256 of the empty string, part of every chunk's string to sign.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The chain state for one request body.
#[derive(Clone)]
pub struct ChunkSigner {
    key: Vec<u8>,
    amz_date: String,
    scope: String,
    previous: String,
    /// The body ends with trailing headers (`x-amz-trailer-signature` among them).
    pub signed_trailer: bool,
}

// The signing key is a secret: keep it out of debug output and logs.
impl std::fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSigner")
            .field("scope", &self.scope)
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ChunkSigner {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key && self.scope == o.scope && self.previous == o.previous
    }
}
impl Eq for ChunkSigner {}

impl ChunkSigner {
    pub fn new(
        key: Vec<u8>,
        amz_date: &str,
        scope: &str,
        seed_signature: &str,
        signed_trailer: bool,
    ) -> Self {
        Self {
            key,
            amz_date: amz_date.to_string(),
            scope: scope.to_string(),
            previous: seed_signature.to_ascii_lowercase(),
            signed_trailer,
        }
    }

    /// Checks the signature of a chunk whose data hashed to `data_sha256`, and advances the chain.
    pub fn verify_chunk(&mut self, data_sha256: &[u8], claimed: &str) -> Result<(), String> {
        let expected = self.expected_chunk(data_sha256);
        self.advance(expected, claimed, "chunk")
    }

    /// Checks `x-amz-trailer-signature` over the trailing headers (each `name:value\n`).
    pub fn verify_trailer(&mut self, canonical_trailer: &str, claimed: &str) -> Result<(), String> {
        let expected = self.expected_trailer(canonical_trailer);
        self.advance(expected, claimed, "trailer")
    }

    /// The signature the next chunk must carry (what a client computes).
    pub fn expected_chunk(&self, data_sha256: &[u8]) -> String {
        self.sign(&format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex::encode(data_sha256)
        ))
    }

    /// The signature the trailer must carry after the final chunk.
    pub fn expected_trailer(&self, canonical_trailer: &str) -> String {
        self.sign(&format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex::encode(Sha256::digest(canonical_trailer.as_bytes()))
        ))
    }

    fn sign(&self, to_sign: &str) -> String {
        hex::encode(hmac(&self.key, to_sign.as_bytes()))
    }

    fn advance(&mut self, expected: String, claimed: &str, what: &str) -> Result<(), String> {
        if !super::auth::constant_time_eq(expected.as_bytes(), claimed.as_bytes()) {
            return Err(format!(
                "the {what} signature does not match the data sent (chained from the request signature)"
            ));
        }
        self.previous = expected;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::auth::signing_key;

    /// AWS's published example of a signed streaming PUT (sigv4-streaming): 64 KiB + 1 KiB of
    /// `a` and the final empty chunk.
    pub fn aws_example() -> ChunkSigner {
        ChunkSigner::new(
            signing_key(
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "20130524",
                "us-east-1",
            ),
            "20130524T000000Z",
            "20130524/us-east-1/s3/aws4_request",
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
            false,
        )
    }

    #[test]
    fn aws_documented_chain_verifies_and_a_changed_byte_does_not() {
        let mut s = aws_example();
        let c1 = Sha256::digest(vec![b'a'; 65536]);
        let c2 = Sha256::digest(vec![b'a'; 1024]);
        let end = Sha256::digest(b"");
        s.verify_chunk(
            &c1,
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        )
        .unwrap();
        s.verify_chunk(
            &c2,
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        )
        .unwrap();
        s.verify_chunk(
            &end,
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        )
        .unwrap();

        let mut s = aws_example();
        let mut bad = vec![b'a'; 65536];
        bad[10] = b'b';
        assert!(s
            .verify_chunk(
                &Sha256::digest(&bad),
                "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            )
            .is_err());
    }
}
