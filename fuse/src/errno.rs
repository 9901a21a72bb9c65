//! Alluvium errors as POSIX errnos. The stable [`ErrorCode`] decides; its [`Reason`] refines where
//! one code covers several POSIX cases (read-only mounts, non-empty directories).

use alluvium_common::{Error, ErrorCode, Reason};
use fuser::Errno;

/// The errno a program sees for an Alluvium error.
pub fn errno_of(e: &Error) -> Errno {
    match (e.code, e.reason) {
        (_, Some(Reason::ReadOnly)) => Errno::EROFS,
        (_, Some(Reason::NotEmpty)) => Errno::ENOTEMPTY,
        (_, Some(Reason::NotADirectory)) => Errno::ENOTDIR,
        (_, Some(Reason::IsADirectory)) => Errno::EISDIR,
        (_, Some(Reason::Busy)) => Errno::EBUSY,
        (_, Some(Reason::DataMissing)) => Errno::EIO,
        (ErrorCode::NotFound, None) => Errno::ENOENT,
        (ErrorCode::AlreadyExists, None) => Errno::EEXIST,
        (ErrorCode::PermissionDenied, None) => Errno::EACCES,
        (ErrorCode::InvalidArgument, None) => Errno::EINVAL,
        (ErrorCode::FailedPrecondition, None) => Errno::EPERM,
        (ErrorCode::ResourceExhausted, None) => Errno::ENOSPC,
        (ErrorCode::Unimplemented, None) => Errno::EOPNOTSUPP,
        (
            ErrorCode::Unavailable
            | ErrorCode::DeadlineExceeded
            | ErrorCode::Cancelled
            | ErrorCode::Internal,
            None,
        ) => Errno::EIO,
    }
}

/// Whether an error is worth retrying (the master or a worker is briefly away).
pub fn is_transient(e: &Error) -> bool {
    matches!(e.code, ErrorCode::Unavailable | ErrorCode::DeadlineExceeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_errnos() {
        let cases = [
            (Error::not_found("/a: no such file"), Errno::ENOENT),
            (
                Error::new(ErrorCode::AlreadyExists, "/a exists"),
                Errno::EEXIST,
            ),
            (
                Error::permission_denied("/a: user x lacks w"),
                Errno::EACCES,
            ),
            (
                Error::permission_denied("/m/a: mount /m is read-only")
                    .with_reason(Reason::ReadOnly),
                Errno::EROFS,
            ),
            (
                Error::failed_precondition("/d: directory is not empty")
                    .with_reason(Reason::NotEmpty),
                Errno::ENOTEMPTY,
            ),
            (Error::invalid_argument("/a: bad name"), Errno::EINVAL),
            (
                Error::invalid_argument("/a: is a directory").with_reason(Reason::IsADirectory),
                Errno::EISDIR,
            ),
            (
                Error::failed_precondition("/a: is a directory (prose alone decides nothing)"),
                Errno::EPERM,
            ),
            (
                Error::new(ErrorCode::ResourceExhausted, "tier full"),
                Errno::ENOSPC,
            ),
            (Error::unavailable("master down"), Errno::EIO),
            (
                Error::failed_precondition("/f: block 1 was not committed by any worker")
                    .with_reason(Reason::DataMissing),
                Errno::EIO,
            ),
            (Error::internal("bug"), Errno::EIO),
        ];
        for (e, want) in cases {
            assert_eq!(errno_of(&e), want, "{e}");
        }
        assert!(is_transient(&Error::unavailable("x")));
        assert!(!is_transient(&Error::not_found("x")));
    }
}
