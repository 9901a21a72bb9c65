//! Request-size limits the gateways enforce themselves, so an oversized request gets the error
//! body its client understands (S3 XML, Hadoop's `RemoteException`) instead of the bare 431 that
//! the HTTP layer sends once its own buffer (about 400 KiB, or more than 100 headers) overflows.

use axum::http::HeaderMap;

/// S3 refuses request header sections above 8 KiB (`RequestHeaderSectionTooLarge`).
pub const S3_MAX_HEADER_BYTES: usize = 8 * 1024;

/// S3 keeps at most 2 KiB of user metadata (`x-amz-meta-*` names and values) per object.
pub const S3_MAX_USER_METADATA_BYTES: usize = 2 * 1024;

/// Hadoop's HTTP server default (`hadoop.http.max.request.header.size`).
pub const WEBHDFS_MAX_HEADER_BYTES: usize = 64 * 1024;

/// The size of a header section as it went over the wire: `name: value\r\n` per header.
pub fn header_section_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn counts_names_values_and_separators() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("a"));
        h.append("x-a", HeaderValue::from_static("bc"));
        assert_eq!(header_section_bytes(&h), (4 + 1 + 4) + (3 + 2 + 4));
    }
}
