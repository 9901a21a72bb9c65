//! WebHDFS errors: Hadoop's JSON `RemoteException`, with the Java exception class Hadoop's client
//! turns back into the matching `IOException` subclass, and the HTTP status the NameNode uses.

use alluvium_common::{Error, ErrorCode};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteException {
    pub status: StatusCode,
    /// Fully qualified Java class name, e.g. `java.io.FileNotFoundException`.
    pub java_class: &'static str,
    pub message: String,
}

impl RemoteException {
    pub fn new(status: StatusCode, java_class: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            java_class,
            message: message.into(),
        }
    }

    pub fn illegal_argument(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "java.lang.IllegalArgumentException",
            message,
        )
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "java.lang.UnsupportedOperationException",
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "java.io.FileNotFoundException",
            message,
        )
    }

    /// The simple class name Hadoop puts in the `exception` field.
    pub fn exception(&self) -> &'static str {
        self.java_class
            .rsplit('.')
            .next()
            .unwrap_or(self.java_class)
    }
}

impl From<Error> for RemoteException {
    fn from(e: Error) -> Self {
        // Statuses follow the NameNode's ExceptionHandler: IOExceptions are 403, argument
        // errors 400, missing files 404.
        let (status, class) = match e.code {
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, "java.io.FileNotFoundException"),
            ErrorCode::AlreadyExists => (
                StatusCode::FORBIDDEN,
                "org.apache.hadoop.fs.FileAlreadyExistsException",
            ),
            ErrorCode::PermissionDenied => (
                StatusCode::FORBIDDEN,
                "org.apache.hadoop.security.AccessControlException",
            ),
            ErrorCode::InvalidArgument => (
                StatusCode::BAD_REQUEST,
                "java.lang.IllegalArgumentException",
            ),
            ErrorCode::Unimplemented => (
                StatusCode::BAD_REQUEST,
                "java.lang.UnsupportedOperationException",
            ),
            ErrorCode::FailedPrecondition | ErrorCode::ResourceExhausted => {
                (StatusCode::FORBIDDEN, "java.io.IOException")
            }
            ErrorCode::Unavailable | ErrorCode::DeadlineExceeded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "org.apache.hadoop.ipc.RetriableException",
            ),
            ErrorCode::Cancelled | ErrorCode::Internal => {
                (StatusCode::INTERNAL_SERVER_ERROR, "java.io.IOException")
            }
        };
        Self::new(status, class, e.message)
    }
}

impl IntoResponse for RemoteException {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "RemoteException": {
                "exception": self.exception(),
                "javaClassName": self.java_class,
                "message": self.message,
            }
        });
        super::json_response(self.status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_hadoop_classes() {
        let r = RemoteException::from(Error::not_found("/a: not found"));
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.exception(), "FileNotFoundException");
        let r = RemoteException::from(Error::already_exists("/a exists"));
        assert_eq!(
            r.java_class,
            "org.apache.hadoop.fs.FileAlreadyExistsException"
        );
        let r = RemoteException::from(Error::permission_denied("no"));
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.exception(), "AccessControlException");
        let r = RemoteException::from(Error::internal("boom"));
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
