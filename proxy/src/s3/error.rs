//! S3 errors: the XML body and HTTP status S3 uses for each error code.

use alluvium_common::{Error, ErrorCode};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::xml::escape;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub status: StatusCode,
    /// S3's error code, e.g. `NoSuchKey`.
    pub code: &'static str,
    pub message: String,
    /// The bucket or object the request named.
    pub resource: String,
}

pub type S3Result<T> = Result<T, S3Error>;

impl S3Error {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            resource: String::new(),
        }
    }

    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = resource.into();
        self
    }

    pub fn access_denied(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AccessDenied", m)
    }
    pub fn invalid_argument(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgument", m)
    }
    pub fn invalid_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", m)
    }
    pub fn malformed_xml(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MalformedXML", m)
    }
    pub fn no_such_bucket(bucket: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            format!("The specified bucket does not exist: {bucket}"),
        )
        .with_resource(format!("/{bucket}"))
    }
    pub fn no_such_key(bucket: &str, key: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            format!("The specified key does not exist: {key}"),
        )
        .with_resource(format!("/{bucket}/{key}"))
    }
    pub fn no_such_upload(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            format!("The specified multipart upload does not exist: {id}"),
        )
    }
    pub fn not_implemented(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "NotImplemented", m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", m)
    }
}

impl From<Error> for S3Error {
    fn from(e: Error) -> Self {
        let (status, code) = match e.code {
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, "NoSuchKey"),
            ErrorCode::AlreadyExists => (StatusCode::CONFLICT, "OperationAborted"),
            ErrorCode::PermissionDenied => (StatusCode::FORBIDDEN, "AccessDenied"),
            ErrorCode::InvalidArgument => (StatusCode::BAD_REQUEST, "InvalidArgument"),
            ErrorCode::FailedPrecondition => (StatusCode::CONFLICT, "OperationAborted"),
            ErrorCode::ResourceExhausted => {
                (StatusCode::INSUFFICIENT_STORAGE, "InsufficientStorage")
            }
            ErrorCode::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
            ErrorCode::Unavailable | ErrorCode::DeadlineExceeded => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
            }
            ErrorCode::Cancelled | ErrorCode::Internal => {
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            }
        };
        S3Error::new(status, code, e.message)
    }
}

impl IntoResponse for S3Error {
    fn into_response(self) -> Response {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{:016x}</RequestId></Error>",
            self.code,
            escape(&self.message),
            escape(&self.resource),
            rand::random::<u64>(),
        );
        let mut r = Response::new(axum::body::Body::from(body));
        *r.status_mut() = self.status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        r
    }
}
