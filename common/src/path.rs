//! Namespace paths: absolute, `/`-separated, normalized. `.` and empty components vanish, `..`
//! goes up one level and is refused when it would climb above the root, so no path can name
//! anything outside the namespace (nor, through a mount, outside the mount's UFS root).

use crate::error::{Error, Result};

/// The longest namespace path, in bytes (Linux's PATH_MAX). Longer ones are refused before
/// anything else looks at them, and error messages never echo more than a prefix of a path.
pub const MAX_PATH_BYTES: usize = 4096;

/// Normalizes an absolute namespace path. Errors on relative paths, NUL bytes, `..` above `/`,
/// and paths longer than [`MAX_PATH_BYTES`].
pub fn normalize(path: &str) -> Result<String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(Error::invalid_argument(format!(
            "{}: path of {} bytes is longer than the {MAX_PATH_BYTES} allowed",
            shortened(path),
            path.len()
        )));
    }
    if !path.starts_with('/') {
        return Err(Error::invalid_argument(format!(
            "{path}: path must be absolute (start with /)"
        )));
    }
    if path.contains('\0') {
        return Err(Error::invalid_argument("path contains a NUL byte"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Error::invalid_argument(format!(
                        "{path}: path escapes the root with '..'"
                    )));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The components of a normalized path (none for `/`).
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// The parent of a normalized path; `None` for the root.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last component of a normalized path (`""` for the root).
pub fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// Joins a normalized directory path and a child name.
pub fn join(dir: &str, child: &str) -> String {
    if dir == "/" {
        format!("/{child}")
    } else {
        format!("{dir}/{child}")
    }
}

/// Whether `ancestor` is `path` or one of its ancestors (both normalized).
pub fn is_ancestor_or_self(ancestor: &str, path: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

/// `path` relative to its ancestor `base` (both normalized): `""` when equal.
pub fn relative_to<'a>(base: &str, path: &'a str) -> Option<&'a str> {
    if !is_ancestor_or_self(base, path) {
        return None;
    }
    if base == "/" {
        return Some(path.trim_start_matches('/'));
    }
    Some(path[base.len()..].trim_start_matches('/'))
}

/// The longest prefix of `s` of at most `max_bytes` bytes that ends on a character boundary.
pub fn prefix(s: &str, max_bytes: usize) -> &str {
    let mut end = s.len().min(max_bytes);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// At most 64 bytes of `s`, with an ellipsis when cut, for messages about overlong input.
pub fn shortened(s: &str) -> String {
    let p = prefix(s, 64);
    if p.len() < s.len() {
        format!("{p}…")
    } else {
        s.to_string()
    }
}

/// Checks a single file name (a path component) sent by a client or found in a UFS listing.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::invalid_argument(format!(
            "invalid file name '{name}'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("//a/./b//").unwrap(), "/a/b");
        assert_eq!(normalize("/a/b/../c").unwrap(), "/a/c");
        assert_eq!(normalize("/a/..").unwrap(), "/");
    }

    #[test]
    fn overlong_paths_are_refused_with_a_short_message() {
        let long = format!("/{}", "x".repeat(100_000));
        let e = normalize(&long).unwrap_err();
        assert!(e.message.contains("100001 bytes"), "{e}");
        assert!(
            e.message.len() < 200,
            "the message echoes the path: {} bytes",
            e.message.len()
        );
        let max = format!("/{}", "x".repeat(MAX_PATH_BYTES - 1));
        assert_eq!(normalize(&max).unwrap(), max);
    }

    #[test]
    fn refuses_escapes_and_relative() {
        assert!(normalize("/..").is_err());
        assert!(normalize("/a/../../etc").is_err());
        assert!(normalize("a/b").is_err());
        assert!(normalize("/a\0b").is_err());
    }

    #[test]
    fn parents_and_names() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(name("/a/b"), "b");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a", "x"), "/a/x");
    }

    #[test]
    fn ancestry() {
        assert!(is_ancestor_or_self("/a", "/a/b"));
        assert!(is_ancestor_or_self("/a", "/a"));
        assert!(!is_ancestor_or_self("/a", "/ab"));
        assert!(is_ancestor_or_self("/", "/x"));
        assert_eq!(relative_to("/mnt", "/mnt/x/y"), Some("x/y"));
        assert_eq!(relative_to("/mnt", "/mnt"), Some(""));
        assert_eq!(relative_to("/", "/x/y"), Some("x/y"));
        assert_eq!(relative_to("/mnt", "/other"), None);
    }

    #[test]
    fn names() {
        assert!(validate_name("ok.txt").is_ok());
        for bad in ["", ".", "..", "a/b"] {
            assert!(validate_name(bad).is_err());
        }
    }
}
