//! Hadoop's JSON forms of file status, listings and summaries.

use alluvium_proto::FileInfo;
use serde_json::{json, Value};

/// `FileStatus` as `JsonUtil.toJsonMap` writes it; `pathSuffix` is empty for the path itself.
pub fn file_status(info: &FileInfo, path_suffix: &str) -> Value {
    json!({
        "accessTime": if info.last_access_time_ms > 0 { info.last_access_time_ms } else { info.last_modification_time_ms },
        "blockSize": info.block_size,
        "childrenNum": if info.is_folder { info.child_count } else { 0 },
        "fileId": info.file_id,
        "group": info.group,
        "length": if info.is_folder { 0 } else { info.length },
        "modificationTime": info.last_modification_time_ms,
        "owner": info.owner,
        "pathSuffix": path_suffix,
        "permission": format!("{:o}", info.mode & 0o7777),
        "replication": if info.is_folder { 0 } else { 1 },
        "storagePolicy": 0,
        "type": if info.is_folder { "DIRECTORY" } else { "FILE" },
    })
}

/// One entry per block, all served by this gateway (it reads from whichever worker holds it).
pub fn block_locations(info: &FileInfo, offset: u64, length: u64, host: &str) -> Value {
    let mut out = Vec::new();
    let bs = info.block_size.max(1);
    let end = offset.saturating_add(length).min(info.length);
    let mut start = offset - offset % bs;
    while start < end {
        let len = bs.min(info.length - start);
        out.push(json!({
            "cachedHosts": [],
            "corrupt": false,
            "hosts": [host],
            "names": [host],
            "offset": start,
            "length": len,
            "storageTypes": ["DISK"],
            "topologyPaths": [format!("/default-rack/{host}")],
        }));
        start += bs;
    }
    json!({ "BlockLocations": { "BlockLocation": out } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_has_hadoop_fields() {
        let info = FileInfo {
            file_id: 7,
            name: "a".into(),
            path: "/d/a".into(),
            length: 10,
            block_size: 4,
            mode: 0o644,
            owner: "u".into(),
            group: "g".into(),
            ..Default::default()
        };
        let v = file_status(&info, "a");
        assert_eq!(v["permission"], "644");
        assert_eq!(v["type"], "FILE");
        assert_eq!(v["length"], 10);
        let b = block_locations(&info, 5, 100, "h:1");
        let blocks = b["BlockLocations"]["BlockLocation"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0]["offset"], 4);
        assert_eq!(blocks[1]["length"], 2);
    }
}
