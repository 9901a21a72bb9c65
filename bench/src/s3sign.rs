//! AWS Signature V4 for the bench's S3 GETs, signed as an AWS SDK signs them (header
//! authorization, `x-amz-content-sha256` of the empty body), using the gateway's own canonical
//! request and signing functions so both sides agree by construction.

use alluvium_common::{Error, Result};
use alluvium_proxy::s3::auth::{canonical_request, parse_query, sign};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use sha2::{Digest, Sha256};

/// SHA-256 of the empty payload.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// `20130524T000000Z` for a time in seconds since the epoch.
pub fn amz_date(unix_secs: i64) -> String {
    // The gateway's ISO 8601 formatter: 2013-05-24T00:00:00.000Z.
    let iso = alluvium_proxy::time::iso8601(unix_secs * 1000);
    format!(
        "{}{}{}T{}{}{}Z",
        &iso[0..4],
        &iso[5..7],
        &iso[8..10],
        &iso[11..13],
        &iso[14..16],
        &iso[17..19]
    )
}

/// The headers of a signed bodiless request `method host path_and_query`, `host` included.
pub fn signed_headers(
    method: &Method,
    host: &str,
    path_and_query: &str,
    key: &str,
    secret: &str,
    region: &str,
    unix_secs: i64,
) -> Result<HeaderMap> {
    let uri: Uri = path_and_query
        .parse()
        .map_err(|e| Error::invalid_argument(format!("S3 request path {path_and_query}: {e}")))?;
    let amz = amz_date(unix_secs);
    let date = &amz[..8];
    let value = |v: &str| {
        HeaderValue::from_str(v)
            .map_err(|e| Error::invalid_argument(format!("S3 header value {v}: {e}")))
    };
    let mut h = HeaderMap::new();
    h.insert("host", value(host)?);
    h.insert("x-amz-content-sha256", value(EMPTY_SHA256)?);
    h.insert("x-amz-date", value(&amz)?);
    let signed = "host;x-amz-content-sha256;x-amz-date";
    let query = parse_query(uri.query().unwrap_or(""));
    let canonical = canonical_request(method, &uri, &h, &query, signed, EMPTY_SHA256)
        .map_err(|e| Error::internal(format!("signing an S3 request: {e:?}")))?;
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let signature = sign(secret, date, region, &to_sign);
    h.insert(
        "authorization",
        value(&format!(
            "AWS4-HMAC-SHA256 Credential={key}/{scope},SignedHeaders={signed},Signature={signature}"
        ))?,
    );
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_format() {
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
    }

    // AWS's documented example "GET Bucket Lifecycle" (Signature V4, header-based) signs exactly
    // these three headers; a mismatch means the signer drifted from AWS's algorithm.
    #[test]
    fn signs_like_aws() {
        let h = signed_headers(
            &Method::GET,
            "examplebucket.s3.amazonaws.com",
            "/?lifecycle",
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
            1_369_353_600,
        )
        .unwrap();
        assert_eq!(
            h["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;x-amz-content-sha256;x-amz-date,\
             Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
        assert_eq!(h["x-amz-date"], "20130524T000000Z");
    }
}
