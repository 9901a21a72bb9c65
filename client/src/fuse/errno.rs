//! Alluvium errors as POSIX errnos. The stable [`ErrorCode`] decides, the message refines where one
//! code covers several POSIX cases (read-only mounts, non-empty directories).

use alluvium_common::{Error, ErrorCode};
use fuser::Errno;

/// The errno a program sees for an Alluvium error.
pub fn errno_of(e: &Error) -> Errno {
    let msg = e.message.to_ascii_lowercase();
    match e.code {
        ErrorCode::NotFound => Errno::ENOENT,
        ErrorCode::AlreadyExists => Errno::EEXIST,
        ErrorCode::PermissionDenied if msg.contains("read-only") => Errno::EROFS,
        ErrorCode::PermissionDenied => Errno::EACCES,
        ErrorCode::InvalidArgument | ErrorCode::FailedPrecondition => {
            if msg.contains("not empty") {
                Errno::ENOTEMPTY
            } else if msg.contains("not a directory") {
                Errno::ENOTDIR
            } else if msg.contains("is a directory") {
                Errno::EISDIR
            } else if msg.contains("being written") || msg.contains("not complete") {
                Errno::EBUSY
            } else if e.code == ErrorCode::InvalidArgument {
                Errno::EINVAL
            } else {
                Errno::EPERM
            }
        }
        ErrorCode::ResourceExhausted => Errno::ENOSPC,
        ErrorCode::Unimplemented => Errno::EOPNOTSUPP,
        ErrorCode::Unavailable
        | ErrorCode::DeadlineExceeded
        | ErrorCode::Cancelled
        | ErrorCode::Internal => Errno::EIO,
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
                Error::permission_denied("/m/a: mount /m is read-only"),
                Errno::EROFS,
            ),
            (
                Error::failed_precondition("/d: directory is not empty"),
                Errno::ENOTEMPTY,
            ),
            (Error::invalid_argument("/a: bad name"), Errno::EINVAL),
            (Error::invalid_argument("/a: is a directory"), Errno::EISDIR),
            (
                Error::new(ErrorCode::ResourceExhausted, "tier full"),
                Errno::ENOSPC,
            ),
            (Error::unavailable("master down"), Errno::EIO),
            (Error::internal("bug"), Errno::EIO),
        ];
        for (e, want) in cases {
            assert_eq!(errno_of(&e), want, "{e}");
        }
        assert!(is_transient(&Error::unavailable("x")));
        assert!(!is_transient(&Error::not_found("x")));
    }
}
