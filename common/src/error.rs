//! One error type for every crate. Its [`ErrorCode`] is stable: it becomes the gRPC status code on
//! the wire, the S3/WebHDFS error of the gateways, and the exit code of the command line.

use std::fmt;

/// Stable error codes. They map one to one onto gRPC codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    NotFound,
    AlreadyExists,
    PermissionDenied,
    InvalidArgument,
    /// The request is valid but the state forbids it (directory not empty, file not persisted, ...).
    FailedPrecondition,
    /// A server, worker or UFS cannot be reached now; trying later may work.
    Unavailable,
    /// No space (a full tier) or another exhausted limit.
    ResourceExhausted,
    Unimplemented,
    DeadlineExceeded,
    Cancelled,
    Internal,
}

impl ErrorCode {
    /// The upper-case name used in logs, JSON and REST answers.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorCode::Unimplemented => "UNIMPLEMENTED",
            ErrorCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// Exit code of the command line for this error. 2 is also what clap uses for bad flags.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorCode::InvalidArgument => 2,
            ErrorCode::NotFound => 3,
            ErrorCode::PermissionDenied => 4,
            ErrorCode::Unavailable | ErrorCode::DeadlineExceeded => 5,
            ErrorCode::AlreadyExists => 6,
            ErrorCode::FailedPrecondition => 7,
            ErrorCode::ResourceExhausted => 8,
            _ => 1,
        }
    }

    pub fn to_grpc(self) -> tonic::Code {
        match self {
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::FailedPrecondition => tonic::Code::FailedPrecondition,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            ErrorCode::Unimplemented => tonic::Code::Unimplemented,
            ErrorCode::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ErrorCode::Cancelled => tonic::Code::Cancelled,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    pub fn from_grpc(code: tonic::Code) -> Self {
        match code {
            tonic::Code::NotFound => ErrorCode::NotFound,
            tonic::Code::AlreadyExists => ErrorCode::AlreadyExists,
            tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
                ErrorCode::PermissionDenied
            }
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ErrorCode::InvalidArgument,
            tonic::Code::FailedPrecondition | tonic::Code::Aborted => ErrorCode::FailedPrecondition,
            tonic::Code::Unavailable => ErrorCode::Unavailable,
            tonic::Code::ResourceExhausted => ErrorCode::ResourceExhausted,
            tonic::Code::Unimplemented => ErrorCode::Unimplemented,
            tonic::Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            tonic::Code::Cancelled => ErrorCode::Cancelled,
            _ => ErrorCode::Internal,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which case of a code an error is, where one code covers cases a caller must tell apart (a
/// FUSE errno, an S3 error). It travels with the code over gRPC, so no caller reads the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A directory that must be empty is not.
    NotEmpty,
    /// A path component or target that must be a directory is a file.
    NotADirectory,
    /// A file operation named a directory.
    IsADirectory,
    /// The file is being written (or not complete yet).
    Busy,
    /// The mount is read-only.
    ReadOnly,
    /// Data the operation needs never arrived (a block no worker committed): the write failed.
    DataMissing,
}

impl Reason {
    const ALL: [Reason; 6] = [
        Reason::NotEmpty,
        Reason::NotADirectory,
        Reason::IsADirectory,
        Reason::Busy,
        Reason::ReadOnly,
        Reason::DataMissing,
    ];

    /// The name on the wire (gRPC metadata `alluvium-reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotEmpty => "not-empty",
            Reason::NotADirectory => "not-a-directory",
            Reason::IsADirectory => "is-a-directory",
            Reason::Busy => "busy",
            Reason::ReadOnly => "read-only",
            Reason::DataMissing => "data-missing",
        }
    }

    /// The reason named `s` on the wire; None for a name this version does not know.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The gRPC metadata key that carries a [`Reason`].
const REASON_KEY: &str = "alluvium-reason";

/// An error a user can act on: a stable code, the case of it where that matters, and one line
/// of text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: ErrorCode,
    pub reason: Option<Reason>,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! constructors {
    ($($name:ident => $code:ident),* $(,)?) => {
        $(
            #[doc = concat!("An error with code `", stringify!($code), "`.")]
            pub fn $name(message: impl Into<String>) -> Self {
                Self::new(ErrorCode::$code, message)
            }
        )*
    };
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        // One line, always: multi-line causes are folded so CLI output and logs stay parseable.
        if message.contains('\n') {
            message = message.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        Self {
            code,
            reason: None,
            message,
        }
    }

    /// The same error, saying which case of its code it is.
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }

    constructors! {
        not_found => NotFound,
        already_exists => AlreadyExists,
        permission_denied => PermissionDenied,
        invalid_argument => InvalidArgument,
        failed_precondition => FailedPrecondition,
        unavailable => Unavailable,
        resource_exhausted => ResourceExhausted,
        unimplemented => Unimplemented,
        internal => Internal,
    }

    /// Prefixes the message with what was being done: `"{context}: {message}"`.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

/// Adds context to any `Result<_, Error>`.
pub trait ResultExt<T> {
    fn context(self, context: impl fmt::Display) -> Result<T>;
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let mut metadata = tonic::metadata::MetadataMap::new();
        if let Some(r) = e.reason {
            metadata.insert(
                REASON_KEY,
                tonic::metadata::MetadataValue::from_static(r.as_str()),
            );
        }
        tonic::Status::with_metadata(e.code.to_grpc(), e.message, metadata)
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        let code = ErrorCode::from_grpc(s.code());
        let message = if s.message().is_empty() {
            format!("{}", s.code())
        } else if code == ErrorCode::Unavailable && s.message().contains("transport error") {
            // tonic's transport errors say little; say what failed.
            format!("cannot reach the server ({})", s.message())
        } else {
            s.message().to_string()
        };
        let reason = s.metadata().get(REASON_KEY).and_then(|v| v.to_str().ok());
        let mut e = Error::new(code, message);
        e.reason = reason.and_then(Reason::parse);
        e
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        Error::unavailable(msg)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let code = match e.kind() {
            K::NotFound => ErrorCode::NotFound,
            K::PermissionDenied => ErrorCode::PermissionDenied,
            K::AlreadyExists => ErrorCode::AlreadyExists,
            K::InvalidInput | K::InvalidData => ErrorCode::InvalidArgument,
            K::ConnectionRefused | K::ConnectionReset | K::ConnectionAborted | K::TimedOut => {
                ErrorCode::Unavailable
            }
            K::StorageFull | K::QuotaExceeded => ErrorCode::ResourceExhausted,
            K::DirectoryNotEmpty | K::NotADirectory | K::IsADirectory => {
                ErrorCode::FailedPrecondition
            }
            K::ReadOnlyFilesystem => ErrorCode::PermissionDenied,
            _ => ErrorCode::Internal,
        };
        let reason = match e.kind() {
            K::DirectoryNotEmpty => Some(Reason::NotEmpty),
            K::NotADirectory => Some(Reason::NotADirectory),
            K::IsADirectory => Some(Reason::IsADirectory),
            K::ReadOnlyFilesystem => Some(Reason::ReadOnly),
            _ => None,
        };
        let mut out = Error::new(code, e.to_string());
        out.reason = reason;
        out
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match (e.code, e.reason) {
            (_, Some(Reason::NotEmpty)) => K::DirectoryNotEmpty,
            (_, Some(Reason::NotADirectory)) => K::NotADirectory,
            (_, Some(Reason::IsADirectory)) => K::IsADirectory,
            (_, Some(Reason::ReadOnly)) => K::ReadOnlyFilesystem,
            (code, _) => match code {
                ErrorCode::NotFound => K::NotFound,
                ErrorCode::PermissionDenied => K::PermissionDenied,
                ErrorCode::AlreadyExists => K::AlreadyExists,
                ErrorCode::InvalidArgument => K::InvalidInput,
                ErrorCode::Unavailable => K::ConnectionRefused,
                ErrorCode::DeadlineExceeded => K::TimedOut,
                _ => K::Other,
            },
        };
        std::io::Error::new(kind, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_grpc() {
        for code in [
            ErrorCode::NotFound,
            ErrorCode::AlreadyExists,
            ErrorCode::PermissionDenied,
            ErrorCode::InvalidArgument,
            ErrorCode::FailedPrecondition,
            ErrorCode::Unavailable,
            ErrorCode::ResourceExhausted,
            ErrorCode::Unimplemented,
            ErrorCode::Internal,
        ] {
            let status: tonic::Status = Error::new(code, "x").into();
            assert_eq!(Error::from(status).code, code);
        }
    }

    #[test]
    fn reasons_round_trip_through_grpc() {
        for reason in Reason::ALL {
            let e = Error::failed_precondition("/d: x").with_reason(reason);
            let back = Error::from(tonic::Status::from(e.clone()));
            assert_eq!(back, e);
        }
        let plain = Error::from(tonic::Status::from(Error::failed_precondition("x")));
        assert_eq!(plain.reason, None);
    }

    #[test]
    fn io_kinds_give_reasons() {
        use std::io::ErrorKind as K;
        let e = Error::from(std::io::Error::from(K::DirectoryNotEmpty));
        assert_eq!(e.reason, Some(Reason::NotEmpty));
        let back = std::io::Error::from(e);
        assert_eq!(back.kind(), K::DirectoryNotEmpty);
    }

    #[test]
    fn messages_stay_on_one_line() {
        let e = Error::internal("first\nsecond  third");
        assert_eq!(e.message, "first second third");
    }

    #[test]
    fn context_prefixes() {
        let r: Result<()> = Err(Error::not_found("no such file"));
        let e = r.context("/a/b").unwrap_err();
        assert_eq!(e.to_string(), "/a/b: no such file");
        assert_eq!(e.code, ErrorCode::NotFound);
    }

    #[test]
    fn distinct_exit_codes() {
        let codes = [
            ErrorCode::InvalidArgument,
            ErrorCode::NotFound,
            ErrorCode::PermissionDenied,
            ErrorCode::Unavailable,
        ];
        let mut exits: Vec<i32> = codes.iter().map(|c| c.exit_code()).collect();
        exits.dedup();
        assert_eq!(exits.len(), codes.len());
        assert!(exits.iter().all(|&c| c != 0));
    }
}
