//! Who is calling through the mount. Each kernel request carries the caller's uid; the master
//! must check *that* user's permissions, so each uid gets its own [`FileSystem`] whose identity is
//! the uid's user name (cached; the clients connect lazily). Owner and group names coming back from
//! the master are turned into uids/gids for `stat`.

use std::collections::HashMap;

use alluvium_common::{Config, Result};
use parking_lot::Mutex;

use alluvium_client::FileSystem;

/// uid/gid shown for owners the OS does not know (`nobody`).
pub const UNKNOWN_ID: u32 = 65534;

pub struct Users {
    base: Config,
    /// The uid running this daemon: its calls use the configured identity (`client.user`).
    own_uid: u32,
    clients: Mutex<HashMap<u32, FileSystem>>,
    uids: Mutex<HashMap<String, u32>>,
    gids: Mutex<HashMap<String, u32>>,
}

/// The user name of a uid (`uid<N>` when the OS has none).
pub fn user_name(uid: u32) -> String {
    uzers::get_user_by_uid(uid)
        .map(|u| u.name().to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("uid{uid}"))
}

/// The group name of a gid (`gid<N>` when the OS has none).
pub fn group_name(gid: u32) -> String {
    uzers::get_group_by_gid(gid)
        .map(|g| g.name().to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("gid{gid}"))
}

impl Users {
    /// `base` is the configuration of the mount; `own` the client of the mounting user.
    pub fn new(base: Config, own: FileSystem) -> Self {
        let own_uid = uzers::get_current_uid();
        let mut clients = HashMap::new();
        clients.insert(own_uid, own);
        Self {
            base,
            own_uid,
            clients: Mutex::new(clients),
            uids: Mutex::new(HashMap::new()),
            gids: Mutex::new(HashMap::new()),
        }
    }

    /// The client acting as `uid`.
    pub async fn client(&self, uid: u32) -> Result<FileSystem> {
        if let Some(fs) = self.clients.lock().get(&uid) {
            return Ok(fs.clone());
        }
        let mut config = self.base.clone();
        if uid != self.own_uid {
            config.client.user = user_name(uid);
        }
        // `connect` makes no connection yet (lazy channels).
        let fs = FileSystem::connect(&config).await?;
        tracing::debug!(uid, user = %config.client.user, "fuse: new client for caller");
        Ok(self.clients.lock().entry(uid).or_insert(fs).clone())
    }

    /// The uid of an owner name.
    pub fn uid_of(&self, name: &str) -> u32 {
        if let Some(&id) = self.uids.lock().get(name) {
            return id;
        }
        let id = uzers::get_user_by_name(name)
            .map(|u| u.uid())
            .or_else(|| name.strip_prefix("uid").and_then(|n| n.parse().ok()))
            .unwrap_or(UNKNOWN_ID);
        self.uids.lock().insert(name.to_string(), id);
        id
    }

    /// The gid of a group name.
    pub fn gid_of(&self, name: &str) -> u32 {
        if let Some(&id) = self.gids.lock().get(name) {
            return id;
        }
        let id = uzers::get_group_by_name(name)
            .map(|g| g.gid())
            .or_else(|| name.strip_prefix("gid").and_then(|n| n.parse().ok()))
            .unwrap_or(UNKNOWN_ID);
        self.gids.lock().insert(name.to_string(), id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_and_ids() {
        assert_eq!(user_name(0), "root");
        assert_eq!(group_name(0), "root");
        let users = Users::new(
            Config::default(),
            FileSystem::connect(&Config::default()).await.unwrap(),
        );
        assert_eq!(users.uid_of("root"), 0);
        assert_eq!(users.gid_of("root"), 0);
        assert_eq!(users.uid_of("uid4242"), 4242);
        assert_eq!(users.uid_of("no-such-user-here"), UNKNOWN_ID);
        // Another uid gets its own client, the same one on the next call.
        let a = users.client(4242).await.unwrap();
        let b = users.client(4242).await.unwrap();
        assert!(a.is_same_client(&b));
    }
}
