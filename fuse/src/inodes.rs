//! FUSE inode numbers and the Alluvium paths they stand for.
//!
//! Each node remembers its parent and its name, not its full path, so renaming a directory
//! moves its whole subtree at once. A node gets `file_id + 2` as its number when that is free
//! (stable for the life of the file; 1 is the mount root), else a number from a private range.
//! Nodes live while the kernel holds lookups on them (`forget` drops them).

use std::collections::HashMap;

use parking_lot::Mutex;

pub const ROOT: u64 = 1;
/// Parent of nodes whose entry was removed or replaced: they resolve to no path.
const DETACHED: u64 = 0;
/// Numbers handed out when `file_id + 2` is taken.
const PRIVATE_BASE: u64 = 1 << 60;

#[derive(Debug)]
struct Node {
    parent: u64,
    name: String,
    lookups: u64,
    /// File id seen at the last lookup, and what was seen at the last open (file id, length,
    /// mtime): the page cache is kept across opens only while these match.
    file_id: u64,
    cache_key: Option<(u64, u64, i64)>,
}

#[derive(Debug, Default)]
struct Inner {
    nodes: HashMap<u64, Node>,
    by_name: HashMap<(u64, String), u64>,
    next_private: u64,
}

pub struct InodeTable {
    root_path: String,
    inner: Mutex<Inner>,
}

impl InodeTable {
    /// A table whose root inode is the Alluvium directory `root_path` (normalized).
    pub fn new(root_path: &str) -> Self {
        let mut inner = Inner {
            next_private: PRIVATE_BASE,
            ..Default::default()
        };
        inner.nodes.insert(
            ROOT,
            Node {
                parent: ROOT,
                name: String::new(),
                lookups: 1,
                file_id: u64::MAX,
                cache_key: None,
            },
        );
        Self {
            root_path: root_path.trim_end_matches('/').to_string(),
            inner: Mutex::new(inner),
        }
    }

    /// The Alluvium path of a node; `None` for unknown or detached nodes.
    pub fn path(&self, ino: u64) -> Option<String> {
        let inner = self.inner.lock();
        let mut names = Vec::new();
        let mut cur = ino;
        while cur != ROOT {
            let n = inner.nodes.get(&cur)?;
            if n.parent == DETACHED || names.len() > 4096 {
                return None;
            }
            names.push(n.name.as_str());
            cur = n.parent;
        }
        let mut p = self.root_path.clone();
        for name in names.iter().rev() {
            p.push('/');
            p.push_str(name);
        }
        if p.is_empty() {
            p.push('/');
        }
        Some(p)
    }

    /// The path of `name` under `parent`.
    pub fn child_path(&self, parent: u64, name: &str) -> Option<String> {
        let p = self.path(parent)?;
        Some(if p == "/" {
            format!("/{name}")
        } else {
            format!("{p}/{name}")
        })
    }

    /// Records one kernel lookup of `name` under `parent` (file `file_id`) and returns its number.
    pub fn lookup(&self, parent: u64, name: &str, file_id: u64) -> u64 {
        let mut inner = self.inner.lock();
        let key = (parent, name.to_string());
        if let Some(&ino) = inner.by_name.get(&key) {
            if let Some(n) = inner.nodes.get_mut(&ino) {
                n.lookups += 1;
                n.file_id = file_id;
                return ino;
            }
        }
        let preferred = file_id.saturating_add(2);
        let ino = if preferred < PRIVATE_BASE && !inner.nodes.contains_key(&preferred) {
            preferred
        } else {
            inner.next_private += 1;
            inner.next_private
        };
        inner.nodes.insert(
            ino,
            Node {
                parent,
                name: name.to_string(),
                lookups: 1,
                file_id,
                cache_key: None,
            },
        );
        inner.by_name.insert(key, ino);
        ino
    }

    /// The number a directory listing shows for an entry (no lookup is counted).
    pub fn peek(&self, parent: u64, name: &str, file_id: u64) -> u64 {
        let inner = self.inner.lock();
        inner
            .by_name
            .get(&(parent, name.to_string()))
            .copied()
            .unwrap_or_else(|| file_id.saturating_add(2).min(PRIVATE_BASE - 1))
    }

    /// The kernel dropped `n` lookups of `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let mut inner = self.inner.lock();
        let gone = match inner.nodes.get_mut(&ino) {
            Some(node) => {
                node.lookups = node.lookups.saturating_sub(n);
                node.lookups == 0
            }
            None => false,
        };
        if gone {
            if let Some(node) = inner.nodes.remove(&ino) {
                let key = (node.parent, node.name);
                if inner.by_name.get(&key) == Some(&ino) {
                    inner.by_name.remove(&key);
                }
            }
        }
    }

    /// The entry `name` under `parent` is gone (unlink, rmdir).
    pub fn remove(&self, parent: u64, name: &str) {
        let mut inner = self.inner.lock();
        if let Some(ino) = inner.by_name.remove(&(parent, name.to_string())) {
            if let Some(n) = inner.nodes.get_mut(&ino) {
                n.parent = DETACHED;
            }
        }
    }

    /// `old_parent/old_name` is now `new_parent/new_name`; whatever was there before is gone.
    pub fn rename(&self, old_parent: u64, old_name: &str, new_parent: u64, new_name: &str) {
        let mut inner = self.inner.lock();
        let new_key = (new_parent, new_name.to_string());
        if let Some(replaced) = inner.by_name.remove(&new_key) {
            if let Some(n) = inner.nodes.get_mut(&replaced) {
                n.parent = DETACHED;
            }
        }
        if let Some(ino) = inner.by_name.remove(&(old_parent, old_name.to_string())) {
            if let Some(n) = inner.nodes.get_mut(&ino) {
                n.parent = new_parent;
                n.name = new_name.to_string();
            }
            inner.by_name.insert(new_key, ino);
        }
    }

    /// Records what an open saw and says whether the page cache from the previous open is still
    /// valid (same file id, length and mtime).
    pub fn open_keeps_cache(&self, ino: u64, key: (u64, u64, i64)) -> bool {
        let mut inner = self.inner.lock();
        match inner.nodes.get_mut(&ino) {
            Some(n) => n.cache_key.replace(key) == Some(key),
            None => false,
        }
    }

    /// Forgets the cache key (the file was rewritten through this mount).
    pub fn invalidate_cache(&self, ino: u64) {
        if let Some(n) = self.inner.lock().nodes.get_mut(&ino) {
            n.cache_key = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_renames_of_ancestors() {
        let t = InodeTable::new("/data");
        assert_eq!(t.path(ROOT).as_deref(), Some("/data"));
        let d = t.lookup(ROOT, "d", 10);
        assert_eq!(d, 12);
        let f = t.lookup(d, "f", 11);
        assert_eq!(t.path(f).as_deref(), Some("/data/d/f"));
        t.rename(ROOT, "d", ROOT, "e");
        assert_eq!(t.path(f).as_deref(), Some("/data/e/f"));
        assert_eq!(t.child_path(d, "g").as_deref(), Some("/data/e/g"));
        // The same name looked up again is the same node.
        assert_eq!(t.lookup(ROOT, "e", 10), d);
    }

    #[test]
    fn root_of_slash_and_removal() {
        let t = InodeTable::new("/");
        assert_eq!(t.path(ROOT).as_deref(), Some("/"));
        assert_eq!(t.child_path(ROOT, "a").as_deref(), Some("/a"));
        let a = t.lookup(ROOT, "a", 5);
        t.remove(ROOT, "a");
        assert_eq!(t.path(a), None);
        // A new file of the same name gets a new node.
        let a2 = t.lookup(ROOT, "a", 6);
        assert_ne!(a, a2);
        assert_eq!(t.path(a2).as_deref(), Some("/a"));
    }

    #[test]
    fn forget_drops_nodes_and_taken_numbers_go_private() {
        let t = InodeTable::new("/");
        let a = t.lookup(ROOT, "a", 5);
        t.lookup(ROOT, "a", 5);
        t.forget(a, 1);
        assert!(t.path(a).is_some());
        t.forget(a, 1);
        assert!(t.path(a).is_none());
        let x = t.lookup(ROOT, "x", 5);
        let y = t.lookup(ROOT, "y", 5);
        assert_eq!(x, 7);
        assert!(y > PRIVATE_BASE);
    }

    #[test]
    fn rename_over_detaches_the_target() {
        let t = InodeTable::new("/");
        let a = t.lookup(ROOT, "a", 5);
        let b = t.lookup(ROOT, "b", 6);
        t.rename(ROOT, "a", ROOT, "b");
        assert_eq!(t.path(a).as_deref(), Some("/b"));
        assert_eq!(t.path(b), None);
    }

    #[test]
    fn cache_key_changes_drop_the_page_cache() {
        let t = InodeTable::new("/");
        let a = t.lookup(ROOT, "a", 5);
        assert!(!t.open_keeps_cache(a, (5, 10, 1)));
        assert!(t.open_keeps_cache(a, (5, 10, 1)));
        assert!(!t.open_keeps_cache(a, (9, 10, 1)));
        t.invalidate_cache(a);
        assert!(!t.open_keeps_cache(a, (9, 10, 1)));
    }
}
