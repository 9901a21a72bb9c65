//! Who is calling. Simple authentication, as in Alluxio: the client sends its OS user name (or a
//! configured login name) and groups on every call; the master checks POSIX permissions against
//! them. When a cluster secret is configured, every call must also carry it, so only holders of the
//! secret can talk to the cluster at all.

use alluvium_proto::{GROUPS_HEADER, SECRET_HEADER, USER_HEADER};
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::error::{Error, Result};

/// The identity of a caller, as the master sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub groups: Vec<String>,
}

impl Caller {
    /// The user running this process and its groups.
    pub fn current_process() -> Self {
        let user = uzers::get_current_username()
            .map(|u| u.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("uid{}", uzers::get_current_uid()));
        Caller {
            groups: os_groups(&user),
            user,
        }
    }

    /// A named user with the groups the OS knows for it (if any).
    pub fn named(user: &str) -> Self {
        Caller {
            user: user.to_string(),
            groups: os_groups(user),
        }
    }

    /// Reads the caller from gRPC metadata. A call without a user name is refused.
    pub fn from_metadata(md: &MetadataMap) -> Result<Self> {
        let user = md
            .get(USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                Error::permission_denied(format!("request carries no user name ({USER_HEADER})"))
            })?;
        let groups = md
            .get(GROUPS_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Caller {
            user: user.to_string(),
            groups,
        })
    }

    pub fn from_request<T>(req: &Request<T>) -> Result<Self> {
        Self::from_metadata(req.metadata())
    }

    /// The primary group (the first one), or the user name when the OS knows no group.
    pub fn primary_group(&self) -> &str {
        self.groups
            .first()
            .map(String::as_str)
            .unwrap_or(&self.user)
    }
}

fn os_groups(user: &str) -> Vec<String> {
    let Some(u) = uzers::get_user_by_name(user) else {
        return Vec::new();
    };
    let primary = u.primary_group_id();
    let mut groups: Vec<String> = Vec::new();
    if let Some(g) = uzers::get_group_by_gid(primary) {
        groups.push(g.name().to_string_lossy().into_owned());
    }
    if let Some(all) = uzers::get_user_groups(user, primary) {
        for g in all {
            let name = g.name().to_string_lossy().into_owned();
            if !groups.contains(&name) {
                groups.push(name);
            }
        }
    }
    groups
}

/// Client side: stamps identity and the cluster secret on every outgoing call.
#[derive(Clone)]
pub struct IdentityInterceptor {
    user: AsciiMetadataValue,
    groups: AsciiMetadataValue,
    secret: Option<AsciiMetadataValue>,
}

impl IdentityInterceptor {
    pub fn new(caller: &Caller, secret: Option<&str>) -> Result<Self> {
        let ascii = |what: &str, v: &str| {
            v.parse::<AsciiMetadataValue>()
                .map_err(|_| Error::invalid_argument(format!("{what} must be ASCII")))
        };
        Ok(Self {
            user: ascii("user name", &caller.user)?,
            groups: ascii("group names", &caller.groups.join(","))?,
            secret: secret.map(|s| ascii("cluster secret", s)).transpose()?,
        })
    }
}

impl std::fmt::Debug for IdentityInterceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityInterceptor")
            .field("user", &self.user)
            .field("secret", &self.secret.as_ref().map(|_| "******"))
            .finish()
    }
}

impl Interceptor for IdentityInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let md = req.metadata_mut();
        md.insert(USER_HEADER, self.user.clone());
        if !self.groups.is_empty() {
            md.insert(GROUPS_HEADER, self.groups.clone());
        }
        if let Some(s) = &self.secret {
            md.insert(SECRET_HEADER, s.clone());
        }
        Ok(req)
    }
}

/// Server side: refuses calls that do not carry the configured cluster secret.
#[derive(Clone, Default)]
pub struct SecretCheck {
    secret: Option<String>,
}

impl SecretCheck {
    pub fn new(secret: Option<String>) -> Self {
        Self {
            secret: secret.filter(|s| !s.is_empty()),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.secret.is_some()
    }

    /// Whether `given` is acceptable: anything when no secret is configured, else the secret
    /// itself (compared in constant time). For connections that carry no gRPC metadata.
    pub fn accepts(&self, given: &[u8]) -> bool {
        match &self.secret {
            None => true,
            Some(expected) => constant_time_eq(given, expected.as_bytes()),
        }
    }

    /// Whether the metadata carries the configured secret (compared in constant time).
    pub fn holds_secret(&self, md: &MetadataMap) -> bool {
        let Some(expected) = &self.secret else {
            return false;
        };
        let given = md
            .get(SECRET_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        constant_time_eq(given.as_bytes(), expected.as_bytes())
    }
}

impl Interceptor for SecretCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        if self.secret.is_none() || self.holds_secret(req.metadata()) {
            Ok(req)
        } else {
            Err(Status::unauthenticated(
                "missing or wrong cluster secret (security.cluster_secret)",
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_through_metadata() {
        let caller = Caller {
            user: "alice".into(),
            groups: vec!["staff".into(), "ml".into()],
        };
        let mut i = IdentityInterceptor::new(&caller, Some("s3cret")).unwrap();
        let req = i.call(Request::new(())).unwrap();
        assert_eq!(Caller::from_request(&req).unwrap(), caller);
        let mut check = SecretCheck::new(Some("s3cret".into()));
        assert!(check.call(req).is_ok());
    }

    #[test]
    fn wrong_or_missing_secret_is_refused() {
        let caller = Caller::named("bob");
        let mut check = SecretCheck::new(Some("right".into()));
        let mut i = IdentityInterceptor::new(&caller, Some("wrong")).unwrap();
        assert!(check.call(i.call(Request::new(())).unwrap()).is_err());
        let mut i = IdentityInterceptor::new(&caller, None).unwrap();
        assert!(check.call(i.call(Request::new(())).unwrap()).is_err());
        // No secret configured: everything passes.
        assert!(SecretCheck::new(None).call(Request::new(())).is_ok());
        assert!(SecretCheck::new(None).accepts(b"anything"));
        assert!(check.accepts(b"right"));
        assert!(!check.accepts(b"wrong") && !check.accepts(b""));
    }

    #[test]
    fn missing_user_is_refused() {
        let req = Request::new(());
        assert!(Caller::from_request(&req).is_err());
    }
}
