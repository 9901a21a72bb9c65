//! `checkConsistency`: asks the master to compare a path with its UFS (and repair with `-r`),
//! printing each finding as it arrives.

use alluvium_common::path::normalize;
use alluvium_common::{Error, Result};
use alluvium_proto as pb;
use futures::StreamExt;
use serde_json::json;

use super::out;
use alluvium_client::with_path;
use alluvium_client::FileSystem;

/// One finding as a line: `  /path  KIND  detail[ (repaired)]`.
pub fn finding_line(i: &pb::Inconsistency) -> String {
    format!(
        "  {}  {}  {}{}",
        i.path,
        i.kind,
        i.detail,
        if i.repaired { " (repaired)" } else { "" }
    )
}

/// Checks one path; returns how many inconsistent entries remain (not repaired).
pub async fn run(
    fs: &FileSystem,
    path: &str,
    recursive: bool,
    repair: bool,
    json: bool,
) -> Result<u64> {
    let path = normalize(path)?;
    let mut stream = fs
        .check_consistency(&path, recursive, repair)
        .await
        .map_err(|e| with_path(e, &path))?;
    let mut checked = 0u64;
    let mut found: Vec<pb::Inconsistency> = Vec::new();
    let mut header_printed = false;
    while let Some(page) = stream.next().await {
        let page = page.map_err(|s| with_path(Error::from(s), &path))?;
        checked = checked.max(page.checked);
        for i in page.items {
            if !json {
                if !header_printed {
                    out::line(format!(
                        "The following entries under {path} are inconsistent with the UFS:"
                    ));
                    header_printed = true;
                }
                out::line(finding_line(&i));
            }
            found.push(i);
        }
    }
    let left = found.iter().filter(|i| !i.repaired).count() as u64;
    let repaired = found.len() as u64 - left;
    if json {
        out::line(
            serde_json::to_string_pretty(&json!({
                "path": path,
                "checked": checked,
                "consistent": left == 0,
                "repaired": repaired,
                "inconsistencies": found.iter().map(|i| json!({
                    "path": i.path,
                    "kind": i.kind,
                    "detail": i.detail,
                    "repaired": i.repaired,
                })).collect::<Vec<_>>(),
            }))
            .unwrap_or_default(),
        );
    } else if found.is_empty() {
        out::line(format!(
            "{path} is consistent with the UFS ({checked} entries checked)"
        ));
    } else if left == 0 {
        out::line(format!(
            "{path} is consistent with the UFS now: {repaired} entries repaired ({checked} checked)"
        ));
    } else {
        out::line(format!(
            "{left} of {checked} entries checked are inconsistent{}",
            if repaired > 0 {
                format!(" ({repaired} repaired)")
            } else {
                String::new()
            }
        ));
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let mut i = pb::Inconsistency {
            path: "/d/a".into(),
            kind: "MISSING_IN_UFS".into(),
            detail: "persisted file in Alluvium, missing in the UFS".into(),
            repaired: false,
        };
        assert_eq!(
            finding_line(&i),
            "  /d/a  MISSING_IN_UFS  persisted file in Alluvium, missing in the UFS"
        );
        i.repaired = true;
        assert!(finding_line(&i).ends_with(" (repaired)"));
    }
}
