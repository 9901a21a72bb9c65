//! This mount namespace's mount table (`/proc/self/mountinfo`) and umount2(2): what the FUSE
//! mount and the CSI driver both need to find and remove mounts.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use alluvium_common::{Error, Result};

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount point, unescaped (the kernel lists resolved paths).
    pub mount_point: Vec<u8>,
    /// `fuse`, `fuse.alluvium`, `ext4`, …
    pub fs_type: String,
}

/// The mounts of this mount namespace, in mount order; empty when the table cannot be read.
pub fn entries() -> Vec<MountEntry> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines().filter_map(parse_line).collect()
}

/// How many mounts are stacked at the resolved path `path` (0: not a mount point).
pub fn mount_count(path: &Path) -> usize {
    let want = path.as_os_str().as_bytes();
    entries().iter().filter(|e| e.mount_point == want).count()
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`: the fifth field is the
/// mount point, the first after ` - ` the file system type.
fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    Some(MountEntry {
        mount_point: unescape(left.split(' ').nth(4)?),
        fs_type: right.split(' ').next().unwrap_or("").to_string(),
    })
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| {
                let v = u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8;
                u8::try_from(v + u32::from(d[2] - b'0')).ok()
            });
        if let (b'\\', Some(v)) = (b[i], octal) {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// umount2(2) of `mount_point` with `flags` (`MNT_DETACH`, …), its errno turned into a clear
/// error.
pub fn umount(mount_point: &Path, flags: libc::c_int) -> Result<()> {
    let mp = mount_point.display();
    let c = CString::new(mount_point.as_os_str().as_bytes())
        .map_err(|_| Error::invalid_argument(format!("{mp}: path contains NUL")))?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    Err(match err.raw_os_error() {
        Some(libc::EBUSY) => Error::failed_precondition(format!(
            "{mp}: busy (files or directories under it are in use; see `fuser -vm {mp}`)"
        )),
        Some(libc::EINVAL) => Error::invalid_argument(format!("{mp}: not a mount point")),
        Some(libc::ENOENT) => Error::not_found(format!("{mp}: no such directory")),
        Some(libc::EPERM | libc::EACCES) => Error::permission_denied(format!(
            "{mp}: not allowed to unmount (it takes root, or CAP_SYS_ADMIN)"
        )),
        _ => Error::internal(format!("{mp}: unmount failed: {err}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b"), b"/a b".to_vec());
        assert_eq!(unescape("/plain"), b"/plain".to_vec());
        assert_eq!(unescape("/x\\"), b"/x\\".to_vec());
        assert_eq!(unescape("/x\\04"), b"/x\\04".to_vec());
    }

    #[test]
    fn lines_parse() {
        let l = "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - fuse.alluvium alluvium:/ rw";
        let e = parse_line(l).unwrap();
        assert_eq!(e.mount_point, b"/mnt 2".to_vec());
        assert_eq!(e.fs_type, "fuse.alluvium");
        assert_eq!(parse_line("garbage"), None);
        assert!(mount_count(Path::new("/")) >= 1);
        let e = umount(Path::new("/no/such/dir"), 0).unwrap_err();
        assert_eq!(e.code, alluvium_common::ErrorCode::NotFound);
    }
}
