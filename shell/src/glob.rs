//! Wildcards in command paths, as Alluxio's shell accepts them: `*`, `?` and `[...]` classes in any
//! path component (`/logs/2024-*/part-?`), expanded against the namespace.

use alluvium_common::path::{components, join, normalize};
use alluvium_common::{Error, Result};

use alluvium_client::FileSystem;

pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Whether `name` matches the shell pattern `pat` (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`).
pub fn glob_match(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matcher with one backtrack point for the last `*` (linear in practice).
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class_match(&p, pi, n[ni]) {
                        if matched {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        // An unclosed `[` is a literal.
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`; returns (matched, index after
/// the class), or None when the class is not closed.
fn class_match(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// The paths a command argument names: itself, or every existing match of its wildcards.
pub async fn expand(fs: &FileSystem, arg: &str) -> Result<Vec<String>> {
    if !has_wildcard(arg) {
        return Ok(vec![arg.to_string()]);
    }
    let path = normalize(arg)?;
    let mut current = vec!["/".to_string()];
    for comp in components(&path) {
        let mut next = Vec::new();
        for dir in &current {
            if has_wildcard(comp) {
                let mut names = Vec::new();
                // A prefix that is a file, or missing, simply matches nothing below it.
                let listed = fs
                    .list_status_each(dir, false, |f| names.push((f.name, f.path)))
                    .await;
                if listed.is_err() {
                    continue;
                }
                for (name, p) in names {
                    if glob_match(comp, &name) {
                        next.push(if p.is_empty() { join(dir, &name) } else { p });
                    }
                }
            } else {
                next.push(join(dir, comp));
            }
        }
        current = next;
        if current.is_empty() {
            break;
        }
    }
    current.sort();
    current.dedup();
    if current.is_empty() {
        return Err(Error::not_found(format!(
            "{arg}: no such file or directory (no path matches)"
        )));
    }
    Ok(current)
}

/// Expands every argument.
pub async fn expand_all(fs: &FileSystem, args: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for a in args {
        out.extend(expand(fs, a).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("*", ""));
        assert!(glob_match("part-?", "part-1"));
        assert!(!glob_match("part-?", "part-12"));
        assert!(glob_match("*.csv", "a.b.csv"));
        assert!(!glob_match("*.csv", "a.csv.gz"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("[abc]x", "bx"));
        assert!(!glob_match("[abc]x", "dx"));
        assert!(glob_match("[a-c]", "b"));
        assert!(glob_match("[!a-c]", "d"));
        assert!(!glob_match("[!a-c]", "a"));
        assert!(glob_match("[]]", "]"));
        assert!(glob_match("x[", "x["));
        assert!(glob_match("plain", "plain"));
        assert!(!glob_match("plain", "plains"));
        assert!(has_wildcard("/a/*") && !has_wildcard("/a/b"));
    }
}
