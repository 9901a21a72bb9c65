//! Finding inodes by path: walking the tree from the root, with traversal checked.

use alluvium_common::{path, Error, Result};
use alluvium_proto::InodeRecord;

use crate::inode::ROOT_ID;
use crate::metastore::MetaStore;
use crate::permission::{Access, Checker};
use crate::tx::Tx;

/// Reads of inodes and edges, from the store or through a transaction.
pub(crate) trait Reader {
    fn inode(&self, id: u64) -> Result<Option<InodeRecord>>;
    fn child_id(&self, parent: u64, name: &str) -> Result<Option<u64>>;
}

impl Reader for dyn MetaStore {
    fn inode(&self, id: u64) -> Result<Option<InodeRecord>> {
        self.get_inode(id)
    }
    fn child_id(&self, parent: u64, name: &str) -> Result<Option<u64>> {
        self.get_child(parent, name)
    }
}

impl Reader for Tx<'_> {
    fn inode(&self, id: u64) -> Result<Option<InodeRecord>> {
        self.get(id)
    }
    fn child_id(&self, parent: u64, name: &str) -> Result<Option<u64>> {
        self.child(parent, name)
    }
}

/// The inodes along a path: `nodes[0]` is the root; `missing` the components not found.
pub(crate) struct Walk {
    pub nodes: Vec<InodeRecord>,
    pub missing: Vec<String>,
}

impl Walk {
    pub fn found(&self) -> bool {
        self.missing.is_empty()
    }
    /// The target when found, else the last existing node on the way.
    pub fn last(&self) -> &InodeRecord {
        self.nodes.last().expect("a walk starts at the root")
    }
    /// The directories above the target: every node walked when the target was not found.
    pub fn ancestors(&self) -> &[InodeRecord] {
        match self.found() {
            true => &self.nodes[..self.nodes.len() - 1],
            false => &self.nodes,
        }
    }
    /// The directory holding the found target, or an error for the root, which has none.
    pub fn parent(&self, p: &str) -> Result<&InodeRecord> {
        match self.ancestors() {
            [.., parent] if self.found() => Ok(parent),
            _ => Err(Error::invalid_argument(format!(
                "{p}: the root has no parent"
            ))),
        }
    }
}

pub(crate) fn walk(r: &(impl Reader + ?Sized), p: &str) -> Result<Walk> {
    let root = r
        .inode(ROOT_ID)?
        .ok_or_else(|| Error::internal("metastore has no root inode"))?;
    let mut nodes = vec![root];
    let comps: Vec<&str> = path::components(p).collect();
    for (i, c) in comps.iter().enumerate() {
        let cur = nodes.last().expect("a walk starts at the root");
        let next = if cur.is_dir {
            match r.child_id(cur.id, c)? {
                Some(id) => r.inode(id)?,
                None => None,
            }
        } else {
            None
        };
        match next {
            Some(n) => nodes.push(n),
            None => {
                return Ok(Walk {
                    nodes,
                    missing: comps[i..].iter().map(|s| s.to_string()).collect(),
                })
            }
        }
    }
    Ok(Walk {
        nodes,
        missing: Vec::new(),
    })
}

/// Checks `x` on every node but the last (the ancestors of the path's target).
pub(super) fn check_traverse(checker: &Checker, nodes: &[InodeRecord], p: &str) -> Result<()> {
    let mut cur = String::from("/");
    for (i, n) in nodes.iter().enumerate() {
        if i > 0 {
            cur = path::join(&cur, &n.name);
        }
        if n.is_dir {
            checker.check(n, &cur, Access::Execute).map_err(|e| {
                Error::permission_denied(format!("{p}: cannot traverse {cur}: {}", e.message))
            })?;
        }
    }
    Ok(())
}

/// The walk to an existing path, with traversal checked.
pub(super) fn lookup(r: &(impl Reader + ?Sized), checker: &Checker, p: &str) -> Result<Walk> {
    let w = walk(r, p)?;
    check_traverse(checker, w.ancestors(), p)?;
    if !w.found() {
        if !w.last().is_dir {
            return Err(Error::not_found(format!(
                "{p}: does not exist ({} is a file)",
                path_of_nodes(&w.nodes)
            )));
        }
        return Err(Error::not_found(format!("{p}: does not exist")));
    }
    Ok(w)
}

pub(super) fn path_of_nodes(nodes: &[InodeRecord]) -> String {
    let mut p = String::from("/");
    for n in &nodes[1..] {
        p = path::join(&p, &n.name);
    }
    p
}

pub(super) fn norm(p: &str) -> Result<String> {
    path::normalize(p)
}
