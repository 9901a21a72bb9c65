//! Which S3 operation a request is, decided once: the same value names the request in metrics and
//! logs and picks its handler, so the two cannot disagree.

use axum::http::{Method, StatusCode};

use super::error::{S3Error, S3Result};
use super::{check_key, valid_bucket, Request};

/// The operations this gateway implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ListBuckets,
    GetBucketLocation,
    GetBucketVersioning,
    ListMultipartUploads,
    /// ListObjects and ListObjectsV2 (`list-type=2`).
    ListObjects {
        v2: bool,
    },
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    DeleteObjects,
    ListParts,
    GetObject,
    HeadObject,
    UploadPart,
    CopyObject,
    PutObject,
    AbortMultipartUpload,
    DeleteObject,
    CreateMultipartUpload,
    CompleteMultipartUpload,
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

impl Operation {
    /// The operation `req` asks for, or why it cannot be served: an unsupported sub-resource, a
    /// method not allowed on the resource, an invalid bucket name or key.
    pub fn of(req: &Request) -> S3Result<Self> {
        if let Some((k, _)) = req
            .query
            .iter()
            .find(|(k, _)| UNSUPPORTED_SUBRESOURCES.contains(&k.as_str()))
        {
            return Err(S3Error::not_implemented(format!(
                "the '{k}' sub-resource is not supported by the Alluvium S3 gateway"
            )));
        }
        if req.bucket.is_empty() {
            return match req.method {
                Method::GET => Ok(Self::ListBuckets),
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
                Method::GET if req.has("uploads") => Ok(Self::ListMultipartUploads),
                Method::GET if req.has("location") => Ok(Self::GetBucketLocation),
                Method::GET if req.has("versioning") => Ok(Self::GetBucketVersioning),
                Method::GET => Ok(Self::ListObjects {
                    v2: req.param("list-type") == Some("2"),
                }),
                Method::PUT => Ok(Self::CreateBucket),
                Method::DELETE => Ok(Self::DeleteBucket),
                Method::HEAD => Ok(Self::HeadBucket),
                Method::POST if req.has("delete") => Ok(Self::DeleteObjects),
                _ => Err(S3Error::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    format!("{} is not allowed on a bucket", req.method),
                )),
            };
        }
        check_key(&req.key)?;
        match req.method {
            Method::GET if req.has("uploadId") => Ok(Self::ListParts),
            Method::GET => Ok(Self::GetObject),
            Method::HEAD => Ok(Self::HeadObject),
            Method::PUT if req.has("uploadId") => Ok(Self::UploadPart),
            Method::PUT if req.headers.contains_key("x-amz-copy-source") => Ok(Self::CopyObject),
            Method::PUT => Ok(Self::PutObject),
            Method::DELETE if req.has("uploadId") => Ok(Self::AbortMultipartUpload),
            Method::DELETE => Ok(Self::DeleteObject),
            Method::POST if req.has("uploads") => Ok(Self::CreateMultipartUpload),
            Method::POST if req.has("uploadId") => Ok(Self::CompleteMultipartUpload),
            _ => Err(S3Error::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{} is not allowed on an object", req.method),
            )),
        }
    }

    /// The name AWS gives the operation: the `op` label of the gateway's metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::ListBuckets => "ListBuckets",
            Self::GetBucketLocation => "GetBucketLocation",
            Self::GetBucketVersioning => "GetBucketVersioning",
            Self::ListMultipartUploads => "ListMultipartUploads",
            Self::ListObjects { v2: false } => "ListObjects",
            Self::ListObjects { v2: true } => "ListObjectsV2",
            Self::CreateBucket => "CreateBucket",
            Self::DeleteBucket => "DeleteBucket",
            Self::HeadBucket => "HeadBucket",
            Self::DeleteObjects => "DeleteObjects",
            Self::ListParts => "ListParts",
            Self::GetObject => "GetObject",
            Self::HeadObject => "HeadObject",
            Self::UploadPart => "UploadPart",
            Self::CopyObject => "CopyObject",
            Self::PutObject => "PutObject",
            Self::AbortMultipartUpload => "AbortMultipartUpload",
            Self::DeleteObject => "DeleteObject",
            Self::CreateMultipartUpload => "CreateMultipartUpload",
            Self::CompleteMultipartUpload => "CompleteMultipartUpload",
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, Uri};

    use super::*;

    fn req(method: Method, path: &str, query: &[(&str, &str)]) -> Request {
        let path = path.strip_prefix('/').unwrap_or(path);
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        Request {
            method,
            uri: Uri::from_static("/"),
            headers: HeaderMap::new(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            bucket: bucket.into(),
            key: key.into(),
            user: "alice".into(),
            payload_hash: String::new(),
            chunk_signer: None,
        }
    }

    fn op(method: Method, path: &str, query: &[(&str, &str)]) -> S3Result<Operation> {
        Operation::of(&req(method, path, query))
    }

    fn refused(r: S3Result<Operation>) -> String {
        match r {
            Ok(op) => panic!("served as {op:?}"),
            Err(e) => e.code.to_string(),
        }
    }

    #[test]
    fn bucket_sub_resources_are_their_own_operations() {
        let get = |q| op(Method::GET, "/b1b", q).unwrap();
        assert_eq!(get(&[("location", "")]), Operation::GetBucketLocation);
        assert_eq!(get(&[("versioning", "")]), Operation::GetBucketVersioning);
        assert_eq!(get(&[("uploads", "")]), Operation::ListMultipartUploads);
        assert_eq!(get(&[]).name(), "ListObjects");
        assert_eq!(get(&[("list-type", "2")]).name(), "ListObjectsV2");
    }

    #[test]
    fn objects_by_method_and_parameters() {
        let key = "/b1b/a/k";
        assert_eq!(op(Method::GET, key, &[]).unwrap(), Operation::GetObject);
        assert_eq!(
            op(Method::GET, key, &[("uploadId", "u")]).unwrap(),
            Operation::ListParts
        );
        assert_eq!(
            op(Method::POST, key, &[("uploads", "")]).unwrap(),
            Operation::CreateMultipartUpload
        );
        assert_eq!(
            op(Method::POST, key, &[("uploadId", "u")]).unwrap(),
            Operation::CompleteMultipartUpload
        );
        let mut copy = req(Method::PUT, key, &[]);
        copy.headers
            .insert("x-amz-copy-source", HeaderValue::from_static("/b1b/x"));
        assert_eq!(Operation::of(&copy).unwrap(), Operation::CopyObject);
    }

    /// Requests no handler serves are refused here, not counted under an operation they are not
    /// (a POST to a bucket without `?delete` used to be counted as DeleteObjects).
    #[test]
    fn what_no_handler_serves_is_refused() {
        assert_eq!(refused(op(Method::POST, "/b1b", &[])), "MethodNotAllowed");
        assert_eq!(refused(op(Method::POST, "/b1b/k", &[])), "MethodNotAllowed");
        assert_eq!(refused(op(Method::PUT, "/", &[])), "MethodNotAllowed");
        assert_eq!(
            refused(op(Method::GET, "/b1b/k", &[("acl", "")])),
            "NotImplemented"
        );
        assert_eq!(
            refused(op(Method::GET, "/Bad_Bucket", &[])),
            "InvalidBucketName"
        );
        assert_eq!(
            refused(op(Method::GET, "/b1b/a/../k", &[])),
            "InvalidArgument"
        );
    }
}
