//! POSIX permission checks (owner / group / other) against the caller's identity.
//!
//! Superusers (the OS user running the master, and members of `master.supergroup`) bypass every
//! check. Rules (DESIGN.md): traversal needs `x` on every ancestor; reading a file or listing a
//! directory needs `r`; creating, deleting or renaming needs `w` and `x` on the parent; chmod needs
//! ownership; chown needs a superuser; chgrp needs ownership and membership of the new group.

use alluvium_common::identity::Caller;
use alluvium_common::{Error, Result};
use alluvium_proto::InodeRecord;

/// Permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
}

impl Access {
    fn bit(self) -> u32 {
        match self {
            Access::Read => 4,
            Access::Write => 2,
            Access::Execute => 1,
        }
    }
    fn word(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Execute => "execute",
        }
    }
}

/// Who may do what: the caller and whether it is a superuser.
#[derive(Debug, Clone)]
pub struct Checker {
    pub caller: Caller,
    pub superuser: bool,
}

/// Who counts as a superuser on this master.
#[derive(Debug, Clone)]
pub struct SuperUsers {
    pub users: Vec<String>,
    pub group: String,
}

impl SuperUsers {
    /// `master.superusers`, `master.supergroup`, and the process's user when
    /// `master.process_user_is_superuser` is on.
    pub fn from_config(config: &alluvium_common::config::MasterConfig) -> Self {
        let mut users = config.superusers.clone();
        if config.process_user_is_superuser {
            users.push(Caller::current_process().user);
        }
        Self {
            users,
            group: config.supergroup.clone(),
        }
    }

    /// The user owning `/` on a fresh namespace: the first configured superuser, else the
    /// process's user.
    pub fn owner(&self) -> String {
        self.users
            .first()
            .cloned()
            .unwrap_or_else(|| Caller::current_process().user)
    }

    pub fn is_superuser(&self, caller: &Caller) -> bool {
        self.users.contains(&caller.user)
            || (!self.group.is_empty() && caller.groups.contains(&self.group))
    }

    pub fn checker(&self, caller: Caller) -> Checker {
        Checker {
            superuser: self.is_superuser(&caller),
            caller,
        }
    }
}

impl Checker {
    /// The master's own actions (TTL checker, sync, persist): everything allowed.
    pub fn system() -> Self {
        Checker {
            caller: Caller {
                user: "alluvium-master".into(),
                groups: Vec::new(),
            },
            superuser: true,
        }
    }

    /// Whether `inode` grants `access` to the caller.
    pub fn allows(&self, inode: &InodeRecord, access: Access) -> bool {
        if self.superuser {
            return true;
        }
        let shift = if inode.owner == self.caller.user {
            6
        } else if self.caller.groups.contains(&inode.group) {
            3
        } else {
            0
        };
        (inode.mode >> shift) & access.bit() != 0
    }

    /// Fails with PERMISSION_DENIED naming `path` unless `inode` grants `access`.
    pub fn check(&self, inode: &InodeRecord, path: &str, access: Access) -> Result<()> {
        if self.allows(inode, access) {
            return Ok(());
        }
        Err(Error::permission_denied(format!(
            "{path}: user {} has no {} permission ({} {}:{} {:o})",
            self.caller.user,
            access.word(),
            if inode.is_dir { "directory" } else { "file" },
            inode.owner,
            inode.group,
            inode.mode & 0o7777
        )))
    }

    pub fn require_superuser(&self, what: &str) -> Result<()> {
        if self.superuser {
            return Ok(());
        }
        Err(Error::permission_denied(format!(
            "{what}: only a superuser may do this (user {} is not one)",
            self.caller.user
        )))
    }

    /// chmod: owner or superuser.
    pub fn check_owner(&self, inode: &InodeRecord, path: &str) -> Result<()> {
        if self.superuser || inode.owner == self.caller.user {
            return Ok(());
        }
        Err(Error::permission_denied(format!(
            "{path}: user {} is not the owner ({})",
            self.caller.user, inode.owner
        )))
    }

    /// chgrp: owner and member of the new group, or superuser.
    pub fn check_chgrp(&self, inode: &InodeRecord, path: &str, group: &str) -> Result<()> {
        self.check_owner(inode, path)?;
        if self.superuser || self.caller.groups.iter().any(|g| g == group) {
            return Ok(());
        }
        Err(Error::permission_denied(format!(
            "{path}: user {} is not a member of group {group}",
            self.caller.user
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(user: &str, groups: &[&str]) -> Caller {
        Caller {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn node(mode: u32) -> InodeRecord {
        InodeRecord {
            owner: "alice".into(),
            group: "staff".into(),
            mode,
            ..Default::default()
        }
    }

    fn su() -> SuperUsers {
        SuperUsers {
            users: vec!["root-like".into()],
            group: "supergroup".into(),
        }
    }

    #[test]
    fn owner_group_other_bits() {
        let n = node(0o640);
        let owner = su().checker(caller("alice", &[]));
        let member = su().checker(caller("bob", &["staff"]));
        let other = su().checker(caller("eve", &["other"]));
        assert!(owner.allows(&n, Access::Read) && owner.allows(&n, Access::Write));
        assert!(!owner.allows(&n, Access::Execute));
        assert!(member.allows(&n, Access::Read) && !member.allows(&n, Access::Write));
        assert!(!other.allows(&n, Access::Read));
        let e = other.check(&n, "/f", Access::Read).unwrap_err();
        assert_eq!(e.code, alluvium_common::ErrorCode::PermissionDenied);
        assert!(e.message.contains("/f") && e.message.contains("eve"), "{e}");
        // The owner's bits win even when they grant less than the group's.
        let n = node(0o070);
        assert!(!owner.allows(&n, Access::Read));
        assert!(su()
            .checker(caller("bob", &["staff"]))
            .allows(&n, Access::Read));
    }

    #[test]
    fn superusers_bypass() {
        let n = node(0);
        assert!(su()
            .checker(caller("root-like", &[]))
            .allows(&n, Access::Write));
        assert!(su()
            .checker(caller("x", &["supergroup"]))
            .allows(&n, Access::Write));
        assert!(Checker::system().allows(&n, Access::Execute));
        assert!(su()
            .checker(caller("x", &[]))
            .require_superuser("/m")
            .is_err());
    }

    #[test]
    fn chmod_chgrp_rules() {
        let n = node(0o644);
        let owner = su().checker(caller("alice", &["staff", "ml"]));
        assert!(owner.check_owner(&n, "/f").is_ok());
        assert!(owner.check_chgrp(&n, "/f", "ml").is_ok());
        assert!(owner.check_chgrp(&n, "/f", "wheel").is_err());
        let other = su().checker(caller("bob", &["ml"]));
        assert!(other.check_owner(&n, "/f").is_err());
        assert!(other.check_chgrp(&n, "/f", "ml").is_err());
    }
}
