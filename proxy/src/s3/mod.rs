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
pub mod xml;

use alluvium_client::FileSystem;
use alluvium_common::path::normalize;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::server::GatewayState;
use error::{S3Error, S3Result};

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
        Ok(req) => {
            let op = op_name(&req);
            let r = dispatch(&st, req, body).await;
            (op, r)
        }
        Err(e) => ("Auth", Err(e)),
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

fn op_name(r: &Request) -> &'static str {
    let m = r.method.as_str();
    match (r.bucket.is_empty(), r.key.is_empty(), m) {
        (true, _, _) => "ListBuckets",
        (false, true, "GET") if r.has("uploads") => "ListMultipartUploads",
        (false, true, "GET") if r.param("list-type") == Some("2") => "ListObjectsV2",
        (false, true, "GET") => "ListObjects",
        (false, true, "PUT") => "CreateBucket",
        (false, true, "DELETE") => "DeleteBucket",
        (false, true, "HEAD") => "HeadBucket",
        (false, true, "POST") => "DeleteObjects",
        (false, false, "GET") if r.has("uploadId") => "ListParts",
        (false, false, "GET") => "GetObject",
        (false, false, "HEAD") => "HeadObject",
        (false, false, "PUT") if r.has("uploadId") => "UploadPart",
        (false, false, "PUT") if r.headers.contains_key("x-amz-copy-source") => "CopyObject",
        (false, false, "PUT") => "PutObject",
        (false, false, "DELETE") if r.has("uploadId") => "AbortMultipartUpload",
        (false, false, "DELETE") => "DeleteObject",
        (false, false, "POST") if r.has("uploads") => "CreateMultipartUpload",
        (false, false, "POST") => "CompleteMultipartUpload",
        _ => "Other",
    }
}

/// Sub-resources this gateway does not implement (ACLs, policies, tagging, ...).
const UNSUPPORTED_SUBRESOURCES: &[&str] = &[
    "acl",
    "policy",
    "tagging",
    "cors",
    "lifecycle",
    "website",
    "replication",
    "logging",
    "notification",
    "encryption",
    "object-lock",
    "retention",
    "legal-hold",
    "torrent",
    "restore",
    "select",
    "accelerate",
    "requestPayment",
    "analytics",
    "inventory",
    "metrics",
    "ownershipControls",
    "publicAccessBlock",
    "intelligent-tiering",
    "attributes",
];

async fn dispatch(st: &GatewayState, req: Request, body: Body) -> S3Result<Response> {
    if let Some((k, _)) = req
        .query
        .iter()
        .find(|(k, _)| UNSUPPORTED_SUBRESOURCES.contains(&k.as_str()))
    {
        return Err(S3Error::not_implemented(format!(
            "the '{k}' sub-resource is not supported by the Alluvium S3 gateway"
        )));
    }
    let fs = st.fss.for_user(&req.user).await?;
    if req.bucket.is_empty() {
        return match req.method {
            Method::GET => list::list_buckets(&fs, &req).await,
            _ => Err(S3Error::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "only GET (ListBuckets) is allowed on /",
            )),
        };
    }
    if !valid_bucket(&req.bucket) {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidBucketName",
            format!("the bucket name '{}' is not valid", req.bucket),
        ));
    }
    if req.key.is_empty() {
        return match req.method {
            Method::GET if req.has("uploads") => multipart::list_uploads(st, &fs, &req).await,
            Method::GET if req.has("location") => {
                bucket_info(&fs, &req).await?;
                Ok(xml_response(
                    StatusCode::OK,
                    "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>"
                        .into(),
                ))
            }
            Method::GET if req.has("versioning") => {
                bucket_info(&fs, &req).await?;
                Ok(xml_response(
                    StatusCode::OK,
                    "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>"
                        .into(),
                ))
            }
            Method::GET => list::list_objects(st, &fs, &req).await,
            Method::PUT => list::create_bucket(&fs, &req).await,
            Method::DELETE => list::delete_bucket(st, &fs, &req).await,
            Method::HEAD => {
                bucket_info(&fs, &req).await?;
                Ok(empty(StatusCode::OK))
            }
            Method::POST if req.has("delete") => objects::delete_objects(st, &fs, &req, body).await,
            _ => Err(S3Error::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{} is not allowed on a bucket", req.method),
            )),
        };
    }
    check_key(&req.key)?;
    match req.method {
        Method::GET if req.has("uploadId") => multipart::list_parts(st, &fs, &req).await,
        Method::GET => objects::get_object(st, &fs, &req, false).await,
        Method::HEAD => objects::get_object(st, &fs, &req, true).await,
        Method::PUT if req.has("uploadId") => multipart::upload_part(st, &fs, &req, body).await,
        Method::PUT if req.headers.contains_key("x-amz-copy-source") => {
            objects::copy_object(st, &fs, &req).await
        }
        Method::PUT => objects::put_object(st, &fs, &req, body).await,
        Method::DELETE if req.has("uploadId") => multipart::abort(st, &fs, &req).await,
        Method::DELETE => objects::delete_object(st, &fs, &req).await,
        Method::POST if req.has("uploads") => multipart::create(st, &fs, &req).await,
        Method::POST if req.has("uploadId") => multipart::complete(st, &fs, &req, body).await,
        _ => Err(S3Error::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{} is not allowed on an object", req.method),
        )),
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
