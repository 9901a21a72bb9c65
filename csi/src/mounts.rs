//! The few mount(2) operations the node service needs: bind mounts (read-only by a remount, as
//! the kernel requires), unmounting every layer at a path, and telling a live mount from one
//! whose FUSE daemon died ("Transport endpoint is not connected").

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use alluvium_common::{Error, Result};
use alluvium_fuse::mount_table::{self, umount};

/// What a path looks like from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// stat(2) works.
    Live,
    /// stat(2) fails with ENOTCONN/ECONNABORTED: a FUSE mount whose daemon is gone.
    Dead,
    /// Nothing there.
    Missing,
    /// Another error (permissions, I/O).
    Error(i32),
}

/// Health of `path`.
///
/// A plain stat(2) is not enough: the kernel answers it on a FUSE mount from its attribute cache
/// (`attr_timeout`, 1 s by default) without asking the daemon, so a mount whose daemon died a
/// moment ago still looks alive, and recovery would leave it dead. statx(2) with
/// `AT_STATX_FORCE_SYNC` makes FUSE ask the daemon every time (a GETATTR, as a stat with a cold
/// cache would); other file systems answer as for stat.
pub fn health(path: &Path) -> Health {
    let Ok(c) = cpath(path) else {
        return Health::Error(libc::EINVAL);
    };
    // SAFETY: an all-zero statx is a valid value of the plain-data struct.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid NUL-terminated path and a buffer of the right type, both alive for the call.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_STATX_FORCE_SYNC,
            libc::STATX_TYPE,
            &mut buf,
        )
    };
    if rc == 0 {
        return Health::Live;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        // Kernels before 4.11 have no statx: stat is the best there is.
        Some(libc::ENOSYS) => match std::fs::metadata(path) {
            Ok(_) => Health::Live,
            Err(e) => failed(e.raw_os_error()),
        },
        errno => failed(errno),
    }
}

/// The health a failed stat of a path tells.
fn failed(errno: Option<i32>) -> Health {
    match errno {
        Some(libc::ENOTCONN) | Some(libc::ECONNABORTED) => Health::Dead,
        Some(libc::ENOENT) => Health::Missing,
        Some(code) => Health::Error(code),
        None => Health::Error(libc::EIO),
    }
}

/// `path` with its parent resolved (symlinks, `..`) but not the path itself, which may be a dead
/// mount that cannot be resolved. Mount tables list resolved paths.
pub fn resolve(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .map(|p| p.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// How many mounts are stacked at `path` in this mount namespace (0 = not a mount point).
pub fn mount_count(path: &Path) -> usize {
    mount_table::mount_count(&resolve(path))
}

pub fn is_mount_point(path: &Path) -> bool {
    mount_count(path) > 0
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::invalid_argument(format!("{}: path contains NUL", p.display())))
}

fn os_error(what: &str, p: &Path) -> Error {
    let e = std::io::Error::last_os_error();
    let msg = format!("{what} {}: {e}", p.display());
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::not_found(msg),
        Some(libc::EPERM) | Some(libc::EACCES) => {
            Error::permission_denied(format!("{msg} (the node plugin must run privileged)"))
        }
        Some(libc::EBUSY) => Error::failed_precondition(msg),
        Some(libc::EINVAL) => Error::invalid_argument(msg),
        _ => Error::internal(msg),
    }
}

/// Bind-mounts `source` on `target`; read-only needs a second, remounting call (the kernel
/// ignores MS_RDONLY on the first). `nosuid,nodev` stay set, as on the FUSE mount itself.
pub fn bind(source: &Path, target: &Path, read_only: bool) -> Result<()> {
    let (src, dst) = (cpath(source)?, cpath(target)?);
    // SAFETY: valid NUL-terminated strings; null fstype/data are allowed for MS_BIND.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(os_error(
            &format!("cannot bind-mount {} on", source.display()),
            target,
        ));
    }
    if read_only {
        if let Err(err) = remount_read_only(target) {
            // Never leave a writable mount where a read-only one was asked for.
            let _ = umount(target, libc::MNT_DETACH);
            return Err(err);
        }
    }
    Ok(())
}

/// Makes the top mount at `target` read-only (idempotent). Used after recovery, when a target's
/// mount arrived by propagation from another target's bind and carries that one's flags.
pub fn remount_read_only(target: &Path) -> Result<()> {
    let dst = cpath(target)?;
    let flags =
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    // SAFETY: valid NUL-terminated path; null source/fstype/data are allowed for a remount.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            dst.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(os_error("cannot make read-only the mount at", target));
    }
    Ok(())
}

/// Unmounts every mount stacked at `path` (recovery stacks fresh mounts over dead ones). Dead or
/// busy layers are detached lazily: the path is free at once, and the kernel drops the mount
/// when its last user goes.
pub fn unmount_all(path: &Path) -> Result<()> {
    // Bounded: each round removes one layer or fails.
    for _ in 0..64 {
        if !is_mount_point(path) {
            return Ok(());
        }
        let flags = if health(path) == Health::Dead {
            libc::MNT_DETACH
        } else {
            0
        };
        match umount(path, flags) {
            Ok(()) => {}
            Err(e) if flags == 0 => {
                tracing::debug!(path = %path.display(), error = %e, "csi: detaching lazily");
                umount(path, libc::MNT_DETACH)?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::internal(format!(
        "{}: still a mount point after 64 unmounts",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(health(d.path()), Health::Live);
        assert_eq!(health(&d.path().join("nope")), Health::Missing);
        assert!(!is_mount_point(d.path()));
        assert!(unmount_all(d.path()).is_ok());
        assert!(is_mount_point(Path::new("/")));
    }
}
