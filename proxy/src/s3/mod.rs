//! The S3 API, path-style (`http://host:39999/<bucket>/<key>`): buckets are the top-level
//! directories of the namespace and keys are paths below them.

pub mod auth;
pub mod chunk_signature;
pub mod chunked;
pub mod error;
pub mod list;
pub mod meta;
pub mod multipart;
pub mod objects;
pub mod operation;
pub mod xml;

use alluvium_client::FileSystem;
use alluvium_common::path::normalize;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::server::GatewayState;
use error::{S3Error, S3Result};
use operation::Operation;

pub(crate) const GATEWAY: &str = "s3";
const MAX_KEY_BYTES: usize = 1024;

/// One authenticated request, taken apart.
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
    pub bucket: String,
    /// Empty for bucket-level requests.
    pub key: String,
    pub user: String,
    pub payload_hash: String,
    /// Set when the body is `aws-chunked` with signed chunks.
    pub chunk_signer: Option<chunk_signature::ChunkSigner>,
}

impl Request {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, k: &str) -> bool {
        self.query.iter().any(|(n, _)| n == k)
    }

    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }

    /// `/<bucket>/<key>` in the namespace.
    pub fn object_path(&self) -> String {
        format!("/{}/{}", self.bucket, self.key.trim_end_matches('/'))
    }

    pub fn bucket_path(&self) -> String {
        format!("/{}", self.bucket)
    }
}

pub fn xml_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

pub fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

/// Bucket names as S3 allows them: 3-63 of a-z 0-9 . -, starting and ending alphanumeric.
pub fn valid_bucket(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

/// A key must map to exactly one namespace path: no empty, `.` or `..` segments (a trailing `/`
/// marks a folder), nothing reserved for the gateway.
pub fn check_key(key: &str) -> S3Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "KeyTooLongError",
            format!("keys are at most {MAX_KEY_BYTES} bytes"),
        ));
    }
    let body = key.strip_suffix('/').unwrap_or(key);
    for seg in body.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\0') {
            return Err(S3Error::invalid_argument(format!(
                "key '{key}' has an empty, '.' or '..' segment; keys name paths below the bucket"
            )));
        }
        if crate::is_hidden_name(seg) {
            return Err(S3Error::invalid_argument(format!(
                "key '{key}' uses a name reserved by the gateway"
            )));
        }
    }
    let joined = format!("/b/{body}");
    match normalize(&joined) {
        Ok(n) if n == joined => Ok(()),
        _ => Err(S3Error::invalid_argument(format!(
            "key '{key}' is not a plain path"
        ))),
    }
}

/// Every request to the S3 port.
pub async fn handle(
    State(st): State<GatewayState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = std::time::Instant::now();
    let checked = check_limits(&headers).and_then(|()| authenticate(&st, &method, &uri, &headers));
    let (op, result) = match checked {
        Err(e) => ("Auth", Err(e)),
        Ok(req) => match Operation::of(&req) {
            Ok(op) => (op.name(), dispatch(&st, op, req, body).await),
            // Refused before any handler: named apart so real operations' figures stay clean.
            Err(e) => ("Unsupported", Err(e)),
        },
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let status = response.status().as_u16();
    st.metrics.request(GATEWAY, op, status);
    tracing::debug!(%method, path = %uri.path(), op, status, elapsed_ms = started.elapsed().as_millis() as u64, "s3");
    response
}

/// S3's size limits, checked before anything else so an oversized request changes nothing.
fn check_limits(headers: &HeaderMap) -> S3Result<()> {
    use crate::limits::{header_section_bytes, S3_MAX_HEADER_BYTES, S3_MAX_USER_METADATA_BYTES};
    let total = header_section_bytes(headers);
    if total > S3_MAX_HEADER_BYTES {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "RequestHeaderSectionTooLarge",
            format!(
                "Your request header section is {total} bytes; the maximum allowed is {S3_MAX_HEADER_BYTES}"
            ),
        ));
    }
    let meta: usize = headers
        .iter()
        .filter_map(|(k, v)| Some(k.as_str().strip_prefix("x-amz-meta-")?.len() + v.len()))
        .sum();
    if meta > S3_MAX_USER_METADATA_BYTES {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "MetadataTooLarge",
            format!(
                "Your metadata headers are {meta} bytes; the maximum allowed is {S3_MAX_USER_METADATA_BYTES}"
            ),
        ));
    }
    Ok(())
}

fn authenticate(
    st: &GatewayState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> S3Result<Request> {
    let now = crate::time::now_ms() / 1000;
    let auth = st.credentials.verify(method, uri, headers, now)?;
    let path = percent_encoding::percent_decode_str(uri.path())
        .decode_utf8()
        .map_err(|_| S3Error::invalid_argument("the request path is not valid UTF-8"))?;
    let path = path.strip_prefix('/').unwrap_or(&path);
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    Ok(Request {
        method: method.clone(),
        uri: uri.clone(),
        headers: headers.clone(),
        query: auth::parse_query(uri.query().unwrap_or("")),
        bucket: bucket.to_string(),
        key: key.to_string(),
        user: auth.user,
        payload_hash: auth.payload_hash,
        chunk_signer: auth.chunk_signer,
    })
}

async fn dispatch(
    st: &GatewayState,
    op: Operation,
    req: Request,
    body: Body,
) -> S3Result<Response> {
    let fs = st.fss.for_user(&req.user).await?;
    match op {
        Operation::ListBuckets => list::list_buckets(&fs, &req).await,
        Operation::GetBucketLocation => {
            bucket_info(&fs, &req).await?;
            Ok(xml_response(
                StatusCode::OK,
                "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>".into(),
            ))
        }
        Operation::GetBucketVersioning => {
            bucket_info(&fs, &req).await?;
            Ok(xml_response(
                StatusCode::OK,
                "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>"
                    .into(),
            ))
        }
        Operation::ListMultipartUploads => multipart::list_uploads(st, &fs, &req).await,
        Operation::ListObjects { .. } => list::list_objects(st, &fs, &req).await,
        Operation::CreateBucket => list::create_bucket(&fs, &req).await,
        Operation::DeleteBucket => list::delete_bucket(st, &fs, &req).await,
        Operation::HeadBucket => {
            bucket_info(&fs, &req).await?;
            Ok(empty(StatusCode::OK))
        }
        Operation::DeleteObjects => objects::delete_objects(st, &fs, &req, body).await,
        Operation::ListParts => multipart::list_parts(st, &fs, &req).await,
        Operation::GetObject => objects::get_object(st, &fs, &req, false).await,
        Operation::HeadObject => objects::get_object(st, &fs, &req, true).await,
        Operation::UploadPart => multipart::upload_part(st, &fs, &req, body).await,
        Operation::CopyObject => objects::copy_object(st, &fs, &req).await,
        Operation::PutObject => objects::put_object(st, &fs, &req, body).await,
        Operation::AbortMultipartUpload => multipart::abort(st, &fs, &req).await,
        Operation::DeleteObject => objects::delete_object(st, &fs, &req).await,
        Operation::CreateMultipartUpload => multipart::create(st, &fs, &req).await,
        Operation::CompleteMultipartUpload => multipart::complete(st, &fs, &req, body).await,
    }
}

/// The bucket's directory, or NoSuchBucket.
pub async fn bucket_info(fs: &FileSystem, req: &Request) -> S3Result<alluvium_proto::FileInfo> {
    match fs.get_status(&req.bucket_path()).await {
        Ok(i) if i.is_folder => Ok(i),
        Ok(_) => Err(S3Error::no_such_bucket(&req.bucket)),
        Err(e) if e.code == alluvium_common::ErrorCode::NotFound => {
            Err(S3Error::no_such_bucket(&req.bucket))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(valid_bucket("my-bucket.1"));
        assert!(!valid_bucket("ab"));
        assert!(!valid_bucket("Upper"));
        assert!(!valid_bucket(".alluvium_s3"));
        assert!(!valid_bucket("a..b"));
    }

    #[test]
    fn keys_map_to_one_path() {
        assert!(check_key("a/b/c.txt").is_ok());
        assert!(check_key("dir/").is_ok());
        assert!(check_key("a//b").is_err());
        assert!(check_key("../x").is_err());
        assert!(check_key("a/./b").is_err());
        assert!(check_key(".alluvium-tmp-1").is_err());
        assert!(check_key(&"k".repeat(1025)).is_err());
    }
}
