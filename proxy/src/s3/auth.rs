//! AWS Signature Version 4, header form and presigned-URL form, checked against the configured
//! access keys. A verified request runs as the user its key maps to.

use std::collections::HashMap;

use alluvium_common::config::ProxyConfig;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use super::chunk_signature::ChunkSigner;
use super::error::{S3Error, S3Result};

/// Everything but RFC 3986's unreserved characters is encoded.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// As `STRICT`, keeping `/` (object paths).
const PATH: &AsciiSet = &STRICT.remove(b'/');

/// Largest clock difference accepted for header-signed requests, as S3 (15 minutes).
const MAX_SKEW_SECS: i64 = 15 * 60;
/// Longest validity of a presigned URL, as S3 (7 days).
const MAX_EXPIRES_SECS: i64 = 7 * 24 * 3600;

pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// `x-amz-content-sha256` of an `aws-chunked` body whose chunks are signed (with or without a
/// signed trailer).
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";

pub struct Credentials {
    keys: HashMap<String, (String, String)>,
    region: String,
}

/// Who a verified request is from, and what its payload hash claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub access_key_id: String,
    pub user: String,
    /// `x-amz-content-sha256` for header-signed requests; `UNSIGNED-PAYLOAD` for presigned ones.
    pub payload_hash: String,
    /// For a signed `aws-chunked` body: the chain its chunk signatures must follow.
    pub chunk_signer: Option<ChunkSigner>,
}

impl Credentials {
    pub fn from_config(pc: &ProxyConfig) -> Self {
        Self {
            keys: pc
                .s3_credentials
                .iter()
                .map(|c| {
                    (
                        c.access_key_id.clone(),
                        (c.secret_access_key.clone(), c.user.clone()),
                    )
                })
                .collect(),
            region: pc.region.clone(),
        }
    }

    /// Verifies the request's signature; `now` is Unix seconds.
    pub fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: i64,
    ) -> S3Result<Authenticated> {
        let query = parse_query(uri.query().unwrap_or(""));
        if let Some(auth) = headers.get("authorization") {
            let auth = auth
                .to_str()
                .map_err(|_| S3Error::access_denied("the Authorization header is not ASCII"))?;
            self.verify_header(method, uri, headers, &query, auth, now)
        } else if query.iter().any(|(k, _)| k == "X-Amz-Signature") {
            self.verify_presigned(method, uri, headers, &query, now)
        } else if query.iter().any(|(k, _)| k == "AWSAccessKeyId") {
            // boto3 and the AWS CLI still presign with Signature V2 unless told otherwise.
            self.verify_presigned_v2(method, uri, headers, &query, now)
        } else {
            Err(S3Error::access_denied(
                "anonymous requests are not allowed: sign the request with an access key (AWS Signature V4)",
            ))
        }
    }

    fn secret(&self, key_id: &str) -> S3Result<&(String, String)> {
        self.keys.get(key_id).ok_or_else(|| {
            S3Error::new(
                StatusCode::FORBIDDEN,
                "InvalidAccessKeyId",
                format!(
                    "The AWS Access Key Id you provided does not exist in our records: {key_id}"
                ),
            )
        })
    }

    fn verify_header(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        query: &[(String, String)],
        auth: &str,
        now: i64,
    ) -> S3Result<Authenticated> {
        let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationHeaderMalformed",
                "only AWS4-HMAC-SHA256 (Signature V4) is supported",
            )
        })?;
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed_headers = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                signature = Some(v);
            }
        }
        let malformed = || {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationHeaderMalformed",
                "the Authorization header needs Credential, SignedHeaders and Signature",
            )
        };
        let (credential, signed_headers, signature) = (
            credential.ok_or_else(malformed)?,
            signed_headers.ok_or_else(malformed)?,
            signature.ok_or_else(malformed)?,
        );
        let amz_date = header_str(headers, "x-amz-date")
            .ok_or_else(|| S3Error::access_denied("the request has no x-amz-date header"))?;
        let when = crate::time::parse_amz_date(amz_date).ok_or_else(|| {
            S3Error::access_denied(format!("x-amz-date '{amz_date}' is not YYYYMMDDTHHMMSSZ"))
        })?;
        if (now - when).abs() > MAX_SKEW_SECS {
            return Err(S3Error::new(
                StatusCode::FORBIDDEN,
                "RequestTimeTooSkewed",
                "The difference between the request time and the server's time is too large.",
            ));
        }
        let payload_hash = header_str(headers, "x-amz-content-sha256")
            .unwrap_or(UNSIGNED_PAYLOAD)
            .to_string();
        let checked = self.check(
            method,
            uri,
            headers,
            query,
            credential,
            signed_headers,
            signature,
            amz_date,
            &payload_hash,
        )?;
        let chunk_signer = payload_hash.starts_with(STREAMING_SIGNED).then(|| {
            ChunkSigner::new(
                checked.key,
                amz_date,
                &checked.scope,
                signature,
                payload_hash.ends_with("-TRAILER"),
            )
        });
        Ok(Authenticated {
            access_key_id: credential.split('/').next().unwrap_or("").to_string(),
            user: checked.user,
            payload_hash,
            chunk_signer,
        })
    }

    fn verify_presigned(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        query: &[(String, String)],
        now: i64,
    ) -> S3Result<Authenticated> {
        let get = |k: &str| presign_param(query, k);
        if get("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "X-Amz-Algorithm must be AWS4-HMAC-SHA256",
            ));
        }
        let amz_date = get("X-Amz-Date")?;
        let when = crate::time::parse_amz_date(amz_date).ok_or_else(|| {
            S3Error::access_denied(format!("X-Amz-Date '{amz_date}' is not YYYYMMDDTHHMMSSZ"))
        })?;
        let expires: i64 = get("X-Amz-Expires")?
            .parse()
            .ok()
            .filter(|e| (1..=MAX_EXPIRES_SECS).contains(e))
            .ok_or_else(|| {
                S3Error::new(
                    StatusCode::BAD_REQUEST,
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires must be between 1 and 604800 seconds",
                )
            })?;
        if now > when + expires {
            return Err(S3Error::access_denied("Request has expired"));
        }
        if when - now > MAX_SKEW_SECS {
            return Err(S3Error::access_denied("Request is not valid yet"));
        }
        let credential = get("X-Amz-Credential")?;
        let checked = self.check(
            method,
            uri,
            headers,
            query,
            credential,
            get("X-Amz-SignedHeaders")?,
            get("X-Amz-Signature")?,
            amz_date,
            UNSIGNED_PAYLOAD,
        )?;
        Ok(Authenticated {
            access_key_id: credential.split('/').next().unwrap_or("").to_string(),
            user: checked.user,
            payload_hash: UNSIGNED_PAYLOAD.to_string(),
            chunk_signer: None,
        })
    }

    /// Signature Version 2 presigned URLs (`AWSAccessKeyId`, `Expires`, `Signature`): the
    /// base64 HMAC-SHA1 of the method, Content-MD5, Content-Type, Expires, the x-amz-* headers and
    /// the resource (path plus sub-resources).
    fn verify_presigned_v2(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        query: &[(String, String)],
        now: i64,
    ) -> S3Result<Authenticated> {
        let get = |k: &str| presign_param(query, k);
        let key_id = get("AWSAccessKeyId")?;
        let signature = get("Signature")?;
        let expires: i64 = get("Expires")?.parse().map_err(|_| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "Expires must be a Unix time in seconds",
            )
        })?;
        if now > expires {
            return Err(S3Error::access_denied("Request has expired"));
        }
        if expires - now > MAX_EXPIRES_SECS {
            return Err(S3Error::access_denied(
                "Expires is more than 7 days in the future",
            ));
        }
        let (secret, user) = self.secret(key_id)?;
        let to_sign = string_to_sign_v2(method, uri, headers, query, &expires.to_string());
        let expected = sign_v2(secret, &to_sign);
        if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            tracing::debug!(%key_id, string_to_sign = %to_sign, "V2 signature mismatch");
            return Err(S3Error::new(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            ));
        }
        Ok(Authenticated {
            access_key_id: key_id.to_string(),
            user: user.clone(),
            payload_hash: UNSIGNED_PAYLOAD.to_string(),
            chunk_signer: None,
        })
    }

    /// Recomputes the signature; answers the key's user when it matches.
    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        query: &[(String, String)],
        credential: &str,
        signed_headers: &str,
        signature: &str,
        amz_date: &str,
        payload_hash: &str,
    ) -> S3Result<Checked> {
        // Credential = AKID/yyyymmdd/region/s3/aws4_request
        let mut parts = credential.splitn(2, '/');
        let key_id = parts.next().unwrap_or("");
        let scope = parts.next().unwrap_or("");
        let (secret, user) = self.secret(key_id)?;
        let scope_parts: Vec<&str> = scope.split('/').collect();
        if scope_parts.len() != 4
            || scope_parts[3] != "aws4_request"
            || scope_parts[2] != "s3"
            || !amz_date.starts_with(scope_parts[0])
        {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationHeaderMalformed",
                format!("the credential scope '{scope}' is not <date>/<region>/s3/aws4_request for the request date"),
            ));
        }
        if scope_parts[1] != self.region {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationHeaderMalformed",
                format!(
                    "the region '{}' is wrong; expecting '{}'",
                    scope_parts[1], self.region
                ),
            ));
        }
        let canonical =
            canonical_request(method, uri, headers, query, signed_headers, payload_hash)?;
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = signing_key(secret, scope_parts[0], scope_parts[1]);
        let expected = hex::encode(hmac(&key, to_sign.as_bytes()));
        if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            tracing::debug!(%key_id, canonical = %canonical, "signature mismatch");
            return Err(S3Error::new(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            ));
        }
        Ok(Checked {
            user: user.clone(),
            key,
            scope: scope.to_string(),
        })
    }
}

/// A verified signature: who signed, and the key and scope that later chunk signatures use.
struct Checked {
    user: String,
    key: Vec<u8>,
    scope: String,
}

/// A required query parameter of a presigned URL.
fn presign_param<'a>(query: &'a [(String, String)], k: &str) -> S3Result<&'a str> {
    query
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                format!("the presigned URL lacks {k}"),
            )
        })
}

/// Base64 HMAC-SHA1, as Signature V2 signs.
fn sign_v2(secret: &str, to_sign: &str) -> String {
    use base64::Engine;
    // HMAC accepts keys of any length; the error arm cannot happen.
    let Ok(mut mac) = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Signature V2's string to sign (query-string form: the Expires value stands for the Date).
fn string_to_sign_v2(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &[(String, String)],
    expires: &str,
) -> String {
    // Sub-resources that are part of the signed resource, in this order (sorted by name).
    const SUBRESOURCES: [&str; 22] = [
        "acl",
        "cors",
        "delete",
        "lifecycle",
        "location",
        "logging",
        "notification",
        "partNumber",
        "policy",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
    ];
    let mut amz: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-amz-"))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or("").trim().to_string(),
            )
        })
        .collect();
    amz.sort();
    let mut resource = uri.path().to_string();
    let mut sub: Vec<&(String, String)> = query
        .iter()
        .filter(|(k, _)| SUBRESOURCES.contains(&k.as_str()))
        .collect();
    sub.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (k, v)) in sub.iter().enumerate() {
        resource.push(if i == 0 { '?' } else { '&' });
        resource.push_str(k);
        if !v.is_empty() {
            resource.push('=');
            resource.push_str(v);
        }
    }
    let mut out = format!(
        "{}\n{}\n{}\n{}\n",
        method.as_str(),
        header_str(headers, "content-md5").unwrap_or(""),
        header_str(headers, "content-type").unwrap_or(""),
        expires
    );
    for (k, v) in amz {
        out.push_str(&format!("{k}:{v}\n"));
    }
    out.push_str(&resource);
    out
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Decoded query pairs in request order (`+` is literal, as AWS clients encode spaces as %20).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode_str(k).decode_utf8_lossy().into_owned(),
                percent_decode_str(v).decode_utf8_lossy().into_owned(),
            )
        })
        .collect()
}

pub fn canonical_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &[(String, String)],
    signed_headers: &str,
    payload_hash: &str,
) -> S3Result<String> {
    let path = percent_decode_str(uri.path()).decode_utf8_lossy();
    let canonical_uri = utf8_percent_encode(&path, PATH).to_string();
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| {
            (
                utf8_percent_encode(k, STRICT).to_string(),
                utf8_percent_encode(v, STRICT).to_string(),
            )
        })
        .collect();
    pairs.sort();
    let canonical_query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(S3Error::access_denied(format!(
                "signed header '{name}' is not in the request"
            )));
        }
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    Ok(format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
    ))
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; the error arm cannot happen.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn signing_key(secret: &str, date: &str, region: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, b"s3");
    hmac(&k, b"aws4_request")
}

/// Signs a request the way an AWS client does (used by tests and tools).
pub fn sign(secret: &str, date: &str, region: &str, string_to_sign: &str) -> String {
    hex::encode(hmac(
        &signing_key(secret, date, region),
        string_to_sign.as_bytes(),
    ))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use alluvium_common::config::S3Credential;

    /// AWS's documented example: GET /test.txt with a Range header
    /// (docs.aws.amazon.com, "Signature Calculations for the Authorization Header").
    #[test]
    fn aws_documented_example_verifies() {
        let mut pc = ProxyConfig::default();
        pc.s3_credentials.push(S3Credential {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            user: "alice".into(),
        });
        let creds = Credentials::from_config(&pc);
        let mut h = HeaderMap::new();
        h.insert("host", "examplebucket.s3.amazonaws.com".parse().unwrap());
        h.insert("range", "bytes=0-9".parse().unwrap());
        h.insert(
            "x-amz-content-sha256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .parse()
                .unwrap(),
        );
        h.insert("x-amz-date", "20130524T000000Z".parse().unwrap());
        h.insert("authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41".parse().unwrap());
        let uri: Uri = "/test.txt".parse().unwrap();
        let now = crate::time::parse_amz_date("20130524T000100Z").unwrap();
        let a = creds.verify(&Method::GET, &uri, &h, now).unwrap();
        assert_eq!(a.user, "alice");
        // One byte of the range changed: the signature no longer matches.
        h.insert("range", "bytes=0-8".parse().unwrap());
        let e = creds.verify(&Method::GET, &uri, &h, now).unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        // Too far from the request time.
        h.insert("range", "bytes=0-9".parse().unwrap());
        let e = creds
            .verify(&Method::GET, &uri, &h, now + 3600)
            .unwrap_err();
        assert_eq!(e.code, "RequestTimeTooSkewed");
    }

    #[test]
    fn signature_v2_presigned_urls_verify() {
        let pc = ProxyConfig {
            s3_credentials: vec![alluvium_common::config::S3Credential {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
                user: "alice".into(),
            }],
            ..ProxyConfig::default()
        };
        let creds = Credentials::from_config(&pc);
        // Signature computed independently (Python's hmac over the V2 string to sign).
        let uri: Uri = "/awsexamplebucket1/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=1No4mq5ETf02z8aet9voy6gui6E%3D"
            .parse()
            .unwrap();
        let ok = creds
            .verify(&Method::GET, &uri, &HeaderMap::new(), 1175139000)
            .unwrap();
        assert_eq!(ok.user, "alice");
        // Expired, tampered, or another method: refused.
        let e = creds
            .verify(&Method::GET, &uri, &HeaderMap::new(), 1175139621)
            .unwrap_err();
        assert_eq!(e.code, "AccessDenied");
        let e = creds
            .verify(&Method::PUT, &uri, &HeaderMap::new(), 1175139000)
            .unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        let bad: Uri = "/awsexamplebucket1/photos/other.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=1No4mq5ETf02z8aet9voy6gui6E%3D"
            .parse()
            .unwrap();
        let e = creds
            .verify(&Method::GET, &bad, &HeaderMap::new(), 1175139000)
            .unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
    }

    #[test]
    fn unknown_keys_and_anonymous_requests_are_refused() {
        let creds = Credentials::from_config(&ProxyConfig::default());
        let uri: Uri = "/b/k".parse().unwrap();
        let e = creds
            .verify(&Method::GET, &uri, &HeaderMap::new(), 0)
            .unwrap_err();
        assert_eq!(e.code, "AccessDenied");
        let mut h = HeaderMap::new();
        h.insert("x-amz-date", "20130524T000000Z".parse().unwrap());
        h.insert("authorization", "AWS4-HMAC-SHA256 Credential=NOPE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=00".parse().unwrap());
        let now = crate::time::parse_amz_date("20130524T000000Z").unwrap();
        let e = creds.verify(&Method::GET, &uri, &h, now).unwrap_err();
        assert_eq!(e.code, "InvalidAccessKeyId");
    }
}
