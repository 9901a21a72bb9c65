//! opendal errors to Alluvium errors, with the UFS URI as context.

use alluvium_common::{Error, ErrorCode, Reason};
use opendal::ErrorKind;

/// Maps an opendal error on `what` (a UFS URI) to an Alluvium error with a one-line message.
pub fn map_err(e: opendal::Error, what: &str) -> Error {
    let code = match e.kind() {
        ErrorKind::NotFound => ErrorCode::NotFound,
        ErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
        ErrorKind::AlreadyExists => ErrorCode::AlreadyExists,
        ErrorKind::IsADirectory | ErrorKind::NotADirectory | ErrorKind::IsSameFile => {
            ErrorCode::FailedPrecondition
        }
        ErrorKind::ConditionNotMatch | ErrorKind::Conflict => ErrorCode::FailedPrecondition,
        ErrorKind::Unsupported => ErrorCode::Unimplemented,
        ErrorKind::ConfigInvalid => ErrorCode::InvalidArgument,
        ErrorKind::RangeNotSatisfied => ErrorCode::InvalidArgument,
        ErrorKind::RateLimited => ErrorCode::Unavailable,
        // Network failures, refused connections, server errors: the UFS is down or unreachable.
        _ => ErrorCode::Unavailable,
    };
    let reason = match code {
        ErrorCode::NotFound => "not found in the UFS".to_string(),
        ErrorCode::Unavailable => format!("UFS unavailable: {}", short(&e)),
        _ => short(&e),
    };
    let error = Error::new(code, format!("{what}: {reason}"));
    match e.kind() {
        ErrorKind::IsADirectory => error.with_reason(Reason::IsADirectory),
        ErrorKind::NotADirectory => error.with_reason(Reason::NotADirectory),
        _ => error,
    }
}

/// opendal's Display carries a context list; keep the kind, message and the innermost source.
fn short(e: &opendal::Error) -> String {
    let mut msg = format!("{} ({})", e.message(), e.kind());
    let mut source = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(l) = last {
        msg.push_str(": ");
        msg.push_str(&l);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_kinds_keep_their_case() {
        let e = map_err(
            opendal::Error::new(ErrorKind::IsADirectory, "read path is a dir"),
            "file:///u/d",
        );
        assert_eq!(
            (e.code, e.reason),
            (ErrorCode::FailedPrecondition, Some(Reason::IsADirectory))
        );
        assert!(e.message.starts_with("file:///u/d: "), "{e}");
        let e = map_err(
            opendal::Error::new(ErrorKind::NotADirectory, "x"),
            "file:///u/f",
        );
        assert_eq!(e.reason, Some(Reason::NotADirectory));
        let e = map_err(opendal::Error::new(ErrorKind::NotFound, "x"), "file:///u/f");
        assert_eq!((e.code, e.reason), (ErrorCode::NotFound, None));
    }
}
