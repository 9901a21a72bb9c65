//! opendal errors to Alluvium errors, with the UFS URI as context.

use alluvium_common::{Error, ErrorCode};
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
    Error::new(code, format!("{what}: {reason}"))
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
