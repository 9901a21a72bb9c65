//! Pure formatting of command output: Alluxio's `ls` columns, `stat -f` specifiers, `du`, `count`,
//! `location`, the cluster report, and JSON forms. No I/O here, so every format is unit-tested.

use alluvium_common::time::{mode_string, UtcTime};
use alluvium_common::{ByteSize, Error, Result};
use alluvium_proto::{FileInfo, MasterInfo, MountInfo, PersistenceState, TierUsage, WorkerInfo};
use serde_json::{json, Value};

/// Parses a `chmod` mode: octal (`755`, `0644`) or symbolic (`u+x,go-w`, `a=r`), applied to the
/// current bits.
pub fn parse_mode(spec: &str, current: u32) -> Result<u32> {
    let bad = || {
        Error::invalid_argument(format!(
            "invalid mode '{spec}': expected octal (e.g. 755) or symbolic (e.g. u+x,go-w)"
        ))
    };
    if !spec.is_empty() && spec.chars().all(|c| c.is_ascii_digit()) {
        let m = u32::from_str_radix(spec, 8).map_err(|_| bad())?;
        if m > 0o7777 {
            return Err(bad());
        }
        return Ok(m);
    }
    let mut mode = current & 0o7777;
    for clause in spec.split(',') {
        let op_at = clause.find(['+', '-', '=']).ok_or_else(bad)?;
        let (who, rest) = clause.split_at(op_at);
        let mut who_mask = 0u32;
        for c in who.chars() {
            who_mask |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                'a' => 0o7777,
                _ => return Err(bad()),
            };
        }
        if who.is_empty() {
            who_mask = 0o7777;
        }
        let op = rest.chars().next().ok_or_else(bad)?;
        let mut perm = 0u32;
        for c in rest[1..].chars() {
            perm |= match c {
                'r' => 0o444,
                'w' => 0o222,
                'x' => 0o111,
                's' => 0o6000,
                't' => 0o1000,
                _ => return Err(bad()),
            };
        }
        let bits = perm & who_mask;
        match op {
            '+' => mode |= bits,
            '-' => mode &= !bits,
            _ => mode = (mode & !(who_mask & 0o777)) | bits,
        }
    }
    Ok(mode)
}

/// Alluxio's `ls` timestamp: `MM-dd-yyyy HH:mm:ss:SSS` (UTC).
pub fn ls_time(ms: i64) -> String {
    let t = UtcTime::from_ms(ms);
    let (y, mo, d, milli) = (t.year, t.month, t.day, t.milli);
    format!("{mo:02}-{d:02}-{y:04} {}:{milli:03}", t.time())
}

/// `yyyy-MM-dd HH:mm:ss` (UTC), as `stat`'s `%y`.
pub fn iso_time(ms: i64) -> String {
    let t = UtcTime::from_ms(ms);
    format!("{} {}", t.date(), t.time())
}

pub fn size(bytes: u64, human: bool) -> String {
    if human {
        ByteSize::human(bytes)
    } else {
        bytes.to_string()
    }
}

pub fn persistence_state(f: &FileInfo) -> &'static str {
    match PersistenceState::try_from(f.persistence_state).unwrap_or(PersistenceState::Unspecified) {
        PersistenceState::Persisted => "PERSISTED",
        PersistenceState::ToBePersisted => "TO_BE_PERSISTED",
        PersistenceState::NotPersisted => "NOT_PERSISTED",
        PersistenceState::Unspecified if f.persisted => "PERSISTED",
        PersistenceState::Unspecified => "NOT_PERSISTED",
    }
}

/// One `ls` line: mode, owner, group, size, persistence state, modification time, in-memory
/// percentage (`DIR` for directories), path.
pub fn ls_line(f: &FileInfo, human: bool) -> String {
    let size = if f.is_folder {
        f.child_count.to_string()
    } else {
        size(f.length, human)
    };
    let mem = if f.is_folder {
        "DIR".to_string()
    } else {
        format!("{}%", f.in_memory_percentage)
    };
    format!(
        "{:<11} {:<15} {:<15} {:>15} {:>16} {:>24} {:>5} {}",
        mode_string(f.mode, f.is_folder),
        f.owner,
        f.group,
        size,
        persistence_state(f),
        ls_time(f.last_modification_time_ms),
        mem,
        f.path
    )
}

/// A file's status as JSON (`ls --json`, `stat --json`).
pub fn file_json(f: &FileInfo) -> Value {
    json!({
        "fileId": f.file_id,
        "name": f.name,
        "path": f.path,
        "folder": f.is_folder,
        "length": f.length,
        "blockSize": f.block_size,
        "blockIds": f.block_ids,
        "owner": f.owner,
        "group": f.group,
        "mode": format!("{:04o}", f.mode),
        "permission": mode_string(f.mode, f.is_folder),
        "creationTimeMs": f.creation_time_ms,
        "lastModificationTimeMs": f.last_modification_time_ms,
        "lastAccessTimeMs": f.last_access_time_ms,
        "completed": f.completed,
        "persisted": f.persisted,
        "persistenceState": persistence_state(f),
        "pinned": f.pinned,
        "ttlMs": f.ttl_ms,
        "ttlAction": ttl_action(f),
        "inMemoryPercentage": f.in_memory_percentage,
        "inAlluviumPercentage": f.in_alluvium_percentage,
        "mountPoint": f.mount_point,
        "mountId": f.mount_id,
        "ufsUri": f.ufs_uri,
        "childCount": f.child_count,
        "blocks": f.blocks.iter().map(|b| json!({
            "blockId": b.block_id,
            "offset": b.offset,
            "length": b.length,
            "locations": b.locations.iter().map(|l| json!({
                "workerId": l.worker_id,
                "host": l.address.as_ref().map(|a| a.host.clone()).unwrap_or_default(),
                "rpcPort": l.address.as_ref().map(|a| a.rpc_port).unwrap_or_default(),
                "tier": l.tier,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn ttl_action(f: &FileInfo) -> &'static str {
    match alluvium_proto::TtlAction::try_from(f.ttl_action) {
        Ok(alluvium_proto::TtlAction::Free) => "FREE",
        _ => "DELETE",
    }
}

/// The default `stat` output.
pub fn stat_text(f: &FileInfo) -> String {
    let kind = if f.is_folder { "directory" } else { "file" };
    let mut out = format!("{} is a {kind} path.\n", f.path);
    let mut line = |k: &str, v: String| {
        out.push_str(&format!("  {k:<22}{v}\n"));
    };
    line("Id:", f.file_id.to_string());
    line(
        "Size:",
        format!("{} ({})", f.length, ByteSize::human(f.length)),
    );
    if !f.is_folder {
        line("Block size:", ByteSize::human(f.block_size));
        line("Blocks:", f.block_ids.len().to_string());
        line("Complete:", f.completed.to_string());
        line("In memory:", format!("{}%", f.in_memory_percentage));
        line("In Alluvium:", format!("{}%", f.in_alluvium_percentage));
    } else {
        line("Children:", f.child_count.to_string());
    }
    line(
        "Permission:",
        format!("{} ({:04o})", mode_string(f.mode, f.is_folder), f.mode),
    );
    line("Owner:", f.owner.clone());
    line("Group:", f.group.clone());
    line("Persistence state:", persistence_state(f).to_string());
    line("Pinned:", f.pinned.to_string());
    line(
        "TTL:",
        match f.ttl_ms {
            Some(ms) => format!(
                "{} ({})",
                humantime::format_duration(std::time::Duration::from_millis(ms.max(0) as u64)),
                ttl_action(f)
            ),
            None => "none".into(),
        },
    );
    line("Created:", iso_time(f.creation_time_ms));
    line("Modified:", iso_time(f.last_modification_time_ms));
    if f.mount_point {
        line("Mount point:", "true".into());
    }
    if !f.ufs_uri.is_empty() {
        line("UFS path:", f.ufs_uri.clone());
    }
    out.pop();
    out
}

/// `stat -f FORMAT`: Alluxio's specifiers `%N` name, `%z` size, `%u` owner, `%g` group, `%y`
/// modification time (UTC), `%Y` modification time in ms, `%b` blocks; also `%n` path, `%a` octal
/// mode, `%A` permission string, `%F` type, `%i` file id, `%o` block size, `%p` persistence
/// state, `%%`; `\n` and `\t` escapes.
pub fn stat_format(fmt: &str, f: &FileInfo) -> Result<String> {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let spec = chars.next().ok_or_else(|| {
                    Error::invalid_argument(format!("format '{fmt}' ends with a lone %"))
                })?;
                match spec {
                    'N' => out.push_str(&f.name),
                    'n' => out.push_str(&f.path),
                    'z' => out.push_str(&f.length.to_string()),
                    'u' => out.push_str(&f.owner),
                    'g' => out.push_str(&f.group),
                    'y' => out.push_str(&iso_time(f.last_modification_time_ms)),
                    'Y' => out.push_str(&f.last_modification_time_ms.to_string()),
                    'b' => out.push_str(&f.block_ids.len().to_string()),
                    'a' => out.push_str(&format!("{:o}", f.mode)),
                    'A' => out.push_str(&mode_string(f.mode, f.is_folder)),
                    'F' => out.push_str(if f.is_folder {
                        "directory"
                    } else {
                        "regular file"
                    }),
                    'i' => out.push_str(&f.file_id.to_string()),
                    'o' => out.push_str(&f.block_size.to_string()),
                    'p' => out.push_str(persistence_state(f)),
                    '%' => out.push('%'),
                    other => {
                        return Err(Error::invalid_argument(format!(
                            "unknown format specifier %{other} (known: %N %n %z %u %g %y %Y %b %a %A %F %i %o %p %%)"
                        )))
                    }
                }
            }
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Sizes of a `du` row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DuSizes {
    pub size: u64,
    pub in_alluvium: u64,
    pub in_memory: u64,
}

impl DuSizes {
    pub fn of(f: &FileInfo) -> Self {
        if f.is_folder {
            return Self::default();
        }
        let pct = |p: u32| f.length.saturating_mul(p.min(100) as u64) / 100;
        Self {
            size: f.length,
            in_alluvium: pct(f.in_alluvium_percentage),
            in_memory: pct(f.in_memory_percentage),
        }
    }

    pub fn add(&mut self, o: DuSizes) {
        self.size += o.size;
        self.in_alluvium += o.in_alluvium;
        self.in_memory += o.in_memory;
    }
}

pub const DU_HEADER: &str = "File Size     In Alluvium      In Memory        Path";

fn with_pct(part: u64, whole: u64, human: bool) -> String {
    let pct = (part * 100).checked_div(whole).unwrap_or(100);
    format!("{} ({pct}%)", size(part, human))
}

pub fn du_line(s: DuSizes, path: &str, human: bool) -> String {
    format!(
        "{:<13} {:<16} {:<16} {}",
        size(s.size, human),
        with_pct(s.in_alluvium, s.size, human),
        with_pct(s.in_memory, s.size, human),
        path
    )
}

pub fn du_json(s: DuSizes, path: &str) -> Value {
    json!({"path": path, "size": s.size, "inAlluvium": s.in_alluvium, "inMemory": s.in_memory})
}

/// `count` totals: files, folders and bytes under a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub files: u64,
    pub folders: u64,
    pub bytes: u64,
}

impl Counts {
    pub fn add(&mut self, f: &FileInfo) {
        if f.is_folder {
            self.folders += 1;
        } else {
            self.files += 1;
            self.bytes += f.length;
        }
    }
}

pub fn count_text(c: Counts, human: bool) -> String {
    format!(
        "{:<25}{:<25}{:<15}\n{:<25}{:<25}{:<15}",
        "File Count",
        "Folder Count",
        "Folder Size",
        c.files,
        c.folders,
        size(c.bytes, human)
    )
}

pub fn count_json(c: Counts, path: &str) -> Value {
    json!({"path": path, "fileCount": c.files, "folderCount": c.folders, "folderSize": c.bytes})
}

/// `location`: each block with the host and tier of every worker holding it.
pub fn location_text(f: &FileInfo) -> String {
    let mut out = format!("{} with file id {} is on nodes:", f.path, f.file_id);
    if f.blocks.is_empty() {
        out.push_str("\n  (no blocks)");
    }
    for b in &f.blocks {
        out.push_str(&format!(
            "\n  block {} (offset {}, length {}): ",
            b.block_id, b.offset, b.length
        ));
        if b.locations.is_empty() {
            out.push_str("not cached");
            continue;
        }
        let locs: Vec<String> = b
            .locations
            .iter()
            .map(|l| match &l.address {
                Some(a) => format!("{}:{} ({})", a.host, a.rpc_port, l.tier),
                None => format!("worker {} ({})", l.worker_id, l.tier),
            })
            .collect();
        out.push_str(&locs.join(", "));
    }
    out
}

fn tiers_line(tiers: &[TierUsage], pick: impl Fn(&TierUsage) -> u64) -> String {
    let mut sorted: Vec<&TierUsage> = tiers.iter().collect();
    sorted.sort_by_key(|t| t.ordinal);
    sorted
        .iter()
        .map(|t| format!("{}: {}", t.alias, ByteSize::human(pick(t))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `MEM: 1.0MiB/64.0MiB, SSD: 0B/1.0GiB`: used of capacity per tier, fastest first.
fn tiers_used_of(tiers: &[TierUsage]) -> String {
    let mut sorted: Vec<&TierUsage> = tiers.iter().collect();
    sorted.sort_by_key(|t| t.ordinal);
    sorted
        .iter()
        .map(|t| {
            format!(
                "{}: {}/{}",
                t.alias,
                ByteSize::human(t.used_bytes),
                ByteSize::human(t.capacity_bytes)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Totals per tier alias over workers, fastest first: (alias, capacity, used).
fn tier_totals(workers: &[WorkerInfo]) -> Vec<(String, u64, u64)> {
    let mut by: std::collections::BTreeMap<(u32, String), (u64, u64)> = Default::default();
    for t in workers.iter().flat_map(|w| &w.tiers) {
        let e = by.entry((t.ordinal, t.alias.clone())).or_default();
        e.0 += t.capacity_bytes;
        e.1 += t.used_bytes;
    }
    by.into_iter()
        .map(|((_, alias), (cap, used))| (alias, cap, used))
        .collect()
}

fn duration_text(ms: i64) -> String {
    let secs = (ms.max(0) / 1000) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// `fsadmin report` (summary).
pub fn report_summary(m: &MasterInfo) -> String {
    let free = m.capacity_bytes.saturating_sub(m.used_bytes);
    let mut out = String::from("Alluvium cluster summary:\n");
    let mut line = |k: &str, v: String| out.push_str(&format!("    {k:<24}{v}\n"));
    line("Master Address:", m.rpc_address.clone());
    line("Web Port:", m.web_port.to_string());
    line("Started:", iso_time(m.start_time_ms));
    line("Uptime:", duration_text(m.uptime_ms));
    line("Version:", m.version.clone());
    line("Live Workers:", m.live_workers.to_string());
    line("Lost Workers:", m.lost_workers.to_string());
    line("Files:", m.file_count.to_string());
    line("Directories:", m.directory_count.to_string());
    line("Blocks:", m.block_count.to_string());
    line("Total Capacity:", ByteSize::human(m.capacity_bytes));
    if !m.tiers.is_empty() {
        line("    Tiers:", tiers_line(&m.tiers, |t| t.capacity_bytes));
    }
    line("Used Capacity:", ByteSize::human(m.used_bytes));
    if !m.tiers.is_empty() {
        line("    Tiers:", tiers_line(&m.tiers, |t| t.used_bytes));
    }
    line("Free Capacity:", ByteSize::human(free));
    line("Root UFS:", m.root_ufs.clone());
    line("Default Block Size:", ByteSize::human(m.default_block_size));
    out.pop();
    out
}

pub fn percent(used: u64, capacity: u64) -> u64 {
    used.saturating_mul(100).checked_div(capacity).unwrap_or(0)
}

/// `fsadmin report capacity`: totals, then one block per worker.
pub fn report_capacity(workers: &[WorkerInfo], now_ms: i64) -> String {
    let cap: u64 = workers.iter().map(|w| w.capacity_bytes).sum();
    let used: u64 = workers.iter().map(|w| w.used_bytes).sum();
    let mut out = format!(
        "Capacity information for all workers:\n    Total Capacity: {}\n",
        ByteSize::human(cap)
    );
    let totals = tier_totals(workers);
    for (alias, c, _) in &totals {
        out.push_str(&format!("        Tier {alias}: {}\n", ByteSize::human(*c)));
    }
    out.push_str(&format!(
        "    Used Capacity: {} ({}%)\n",
        ByteSize::human(used),
        percent(used, cap)
    ));
    for (alias, c, u) in &totals {
        out.push_str(&format!(
            "        Tier {alias}: {} ({}%)\n",
            ByteSize::human(*u),
            percent(*u, *c)
        ));
    }
    out.push_str(&format!(
        "    Free Capacity: {}\n\n",
        ByteSize::human(cap.saturating_sub(used))
    ));
    out.push_str(&format!(
        "{:<24}{:<8}{:<16}{:<16}{:<16}{}\n",
        "Worker Name", "State", "Last Heartbeat", "Capacity", "Used", "Tiers (used/capacity)"
    ));
    for w in workers {
        let name = w
            .address
            .as_ref()
            .map(|a| format!("{}:{}", a.host, a.rpc_port))
            .unwrap_or_else(|| format!("worker {}", w.id));
        let ago = if w.last_heartbeat_ms > 0 {
            format!("{}s ago", (now_ms - w.last_heartbeat_ms).max(0) / 1000)
        } else {
            "never".into()
        };
        out.push_str(&format!(
            "{:<24}{:<8}{:<16}{:<16}{:<16}{}\n",
            name,
            w.state,
            ago,
            ByteSize::human(w.capacity_bytes),
            format!(
                "{} ({}%)",
                ByteSize::human(w.used_bytes),
                percent(w.used_bytes, w.capacity_bytes)
            ),
            tiers_used_of(&w.tiers)
        ));
    }
    out.pop();
    out
}

/// One mount of the mount table: `uri on path (options)`.
pub fn mount_line(m: &MountInfo) -> String {
    let mut opts: Vec<String> = m.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
    opts.sort();
    format!(
        "{} on {} (readonly={}, shared={}, sync_interval={}, properties={{{}}})",
        m.ufs_uri,
        m.path,
        m.read_only,
        m.shared,
        humantime::format_duration(std::time::Duration::from_millis(
            m.sync_interval_ms.max(0) as u64
        )),
        opts.join(", ")
    )
}

pub fn master_json(m: &MasterInfo) -> Value {
    json!({
        "version": m.version,
        "rpcAddress": m.rpc_address,
        "webPort": m.web_port,
        "startTimeMs": m.start_time_ms,
        "uptimeMs": m.uptime_ms,
        "liveWorkers": m.live_workers,
        "lostWorkers": m.lost_workers,
        "capacityBytes": m.capacity_bytes,
        "usedBytes": m.used_bytes,
        "fileCount": m.file_count,
        "directoryCount": m.directory_count,
        "blockCount": m.block_count,
        "rootUfs": m.root_ufs,
        "defaultBlockSize": m.default_block_size,
        "tiers": m.tiers.iter().map(tier_json).collect::<Vec<_>>(),
    })
}

fn tier_json(t: &TierUsage) -> Value {
    json!({"alias": t.alias, "ordinal": t.ordinal, "capacityBytes": t.capacity_bytes, "usedBytes": t.used_bytes, "blockCount": t.block_count})
}

pub fn worker_json(w: &WorkerInfo) -> Value {
    json!({
        "id": w.id,
        "host": w.address.as_ref().map(|a| a.host.clone()).unwrap_or_default(),
        "rpcPort": w.address.as_ref().map(|a| a.rpc_port).unwrap_or_default(),
        "state": w.state,
        "lastHeartbeatMs": w.last_heartbeat_ms,
        "capacityBytes": w.capacity_bytes,
        "usedBytes": w.used_bytes,
        "blockCount": w.block_count,
        "tiers": w.tiers.iter().map(tier_json).collect::<Vec<_>>(),
    })
}

pub fn mount_json(m: &MountInfo) -> Value {
    json!({
        "mountId": m.mount_id,
        "path": m.path,
        "ufsUri": m.ufs_uri,
        "readOnly": m.read_only,
        "shared": m.shared,
        "syncIntervalMs": m.sync_interval_ms,
        "options": m.options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alluvium_proto::{BlockInfo, BlockLocation, WorkerNetAddress};

    fn file() -> FileInfo {
        FileInfo {
            file_id: 7,
            name: "b.txt".into(),
            path: "/a/b.txt".into(),
            length: 2048,
            block_size: 1024,
            block_ids: vec![1, 2],
            owner: "alice".into(),
            group: "staff".into(),
            mode: 0o644,
            creation_time_ms: 0,
            last_modification_time_ms: 1_700_000_000_123,
            completed: true,
            persisted: true,
            persistence_state: PersistenceState::Persisted as i32,
            in_memory_percentage: 50,
            in_alluvium_percentage: 100,
            ..Default::default()
        }
    }

    #[test]
    fn chmod_specs() {
        assert_eq!(parse_mode("755", 0).unwrap(), 0o755);
        assert_eq!(parse_mode("0640", 0).unwrap(), 0o640);
        assert_eq!(parse_mode("u+x", 0o644).unwrap(), 0o744);
        assert_eq!(parse_mode("go-r", 0o644).unwrap(), 0o600);
        assert_eq!(parse_mode("a=r", 0o777).unwrap(), 0o444);
        assert_eq!(parse_mode("u+x,g+w", 0o600).unwrap(), 0o720);
        assert_eq!(parse_mode("+x", 0o644).unwrap(), 0o755);
        for bad in ["", "99", "17777", "u~x", "z+x", "u+q"] {
            assert!(parse_mode(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(ls_time(0), "01-01-1970 00:00:00:000");
        assert_eq!(ls_time(1_700_000_000_123), "11-14-2023 22:13:20:123");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(iso_time(-1000), "1969-12-31 23:59:59");
    }

    #[test]
    fn ls_columns() {
        let l = ls_line(&file(), false);
        assert!(l.starts_with("-rw-r--r--  alice"), "{l}");
        assert!(l.contains(" 2048 "), "{l}");
        assert!(l.contains("PERSISTED"), "{l}");
        assert!(l.contains("11-14-2023 22:13:20:123"), "{l}");
        assert!(l.ends_with("50% /a/b.txt"), "{l}");
        assert!(ls_line(&file(), true).contains("2.0KiB"));
        let dir = FileInfo {
            is_folder: true,
            mode: 0o755,
            child_count: 3,
            path: "/a".into(),
            ..Default::default()
        };
        let l = ls_line(&dir, false);
        assert!(l.starts_with("drwxr-xr-x"), "{l}");
        assert!(l.ends_with("DIR /a"), "{l}");
        assert!(l.contains("NOT_PERSISTED"), "{l}");
    }

    #[test]
    fn stat_specifiers() {
        let f = file();
        assert_eq!(
            stat_format("%N %z %u:%g %b %Y", &f).unwrap(),
            "b.txt 2048 alice:staff 2 1700000000123"
        );
        assert_eq!(stat_format("%y", &f).unwrap(), "2023-11-14 22:13:20");
        assert_eq!(
            stat_format("%n|%a|%A|%F|%i|%o|%p|100%%\\n", &f).unwrap(),
            "/a/b.txt|644|-rw-r--r--|regular file|7|1024|PERSISTED|100%\n"
        );
        assert!(stat_format("%Q", &f).is_err());
        assert!(stat_format("abc%", &f).is_err());
        let text = stat_text(&f);
        assert!(text.starts_with("/a/b.txt is a file path."));
        assert!(text.contains("alice"));
    }

    #[test]
    fn du_and_count() {
        let s = DuSizes::of(&file());
        assert_eq!(
            s,
            DuSizes {
                size: 2048,
                in_alluvium: 2048,
                in_memory: 1024
            }
        );
        let line = du_line(s, "/a/b.txt", false);
        assert!(line.starts_with("2048"), "{line}");
        assert!(
            line.contains("2048 (100%)") && line.contains("1024 (50%)"),
            "{line}"
        );
        assert!(du_line(DuSizes::default(), "/e", false).contains("0 (100%)"));
        let mut c = Counts::default();
        c.add(&file());
        c.add(&FileInfo {
            is_folder: true,
            ..Default::default()
        });
        assert_eq!(
            c,
            Counts {
                files: 1,
                folders: 1,
                bytes: 2048
            }
        );
        let t = count_text(c, false);
        assert!(t.starts_with("File Count"));
        assert!(t.lines().nth(1).unwrap().starts_with('1'));
        assert_eq!(count_json(c, "/")["folderSize"], 2048);
    }

    #[test]
    fn locations() {
        let mut f = file();
        f.blocks = vec![
            BlockInfo {
                block_id: 1,
                length: 1024,
                offset: 0,
                locations: vec![BlockLocation {
                    worker_id: 3,
                    address: Some(WorkerNetAddress {
                        host: "w1".into(),
                        rpc_port: 29999,
                        http_port: 0,
                    }),
                    tier: "MEM".into(),
                }],
            },
            BlockInfo {
                block_id: 2,
                length: 1024,
                offset: 1024,
                locations: vec![],
            },
        ];
        let t = location_text(&f);
        assert!(
            t.contains("block 1 (offset 0, length 1024): w1:29999 (MEM)"),
            "{t}"
        );
        assert!(
            t.contains("block 2 (offset 1024, length 1024): not cached"),
            "{t}"
        );
        let j = file_json(&f);
        assert_eq!(j["blocks"][0]["locations"][0]["tier"], "MEM");
        assert_eq!(j["mode"], "0644");
    }

    #[test]
    fn reports() {
        let m = MasterInfo {
            rpc_address: "m:19998".into(),
            capacity_bytes: 4 << 30,
            used_bytes: 1 << 30,
            live_workers: 2,
            tiers: vec![TierUsage {
                alias: "MEM".into(),
                capacity_bytes: 4 << 30,
                used_bytes: 1 << 30,
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = report_summary(&m);
        assert!(s.contains("Live Workers:") && s.contains("2"), "{s}");
        assert!(
            s.lines()
                .any(|l| l.contains("Free Capacity:") && l.ends_with("3.0GiB")),
            "{s}"
        );
        assert!(s.contains("MEM: 4.0GiB"), "{s}");
        let w = WorkerInfo {
            id: 1,
            address: Some(WorkerNetAddress {
                host: "h".into(),
                rpc_port: 1,
                http_port: 2,
            }),
            state: "LIVE".into(),
            last_heartbeat_ms: 1000,
            capacity_bytes: 100,
            used_bytes: 25,
            ..Default::default()
        };
        let mut w = w;
        w.tiers = vec![
            TierUsage {
                alias: "SSD".into(),
                ordinal: 1,
                capacity_bytes: 1 << 30,
                used_bytes: 0,
                block_count: 0,
            },
            TierUsage {
                alias: "MEM".into(),
                ordinal: 0,
                capacity_bytes: 64 << 20,
                used_bytes: 1 << 20,
                block_count: 1,
            },
        ];
        let c = report_capacity(std::slice::from_ref(&w), 3500);
        assert!(c.contains("MEM: 1.0MiB/64.0MiB, SSD: 0B/1.0GiB"), "{c}");
        assert!(c.contains("        Tier MEM: 1.0MiB (1%)"), "{c}");
        assert!(c.contains("        Tier SSD: 1.0GiB\n"), "{c}");
        assert!(
            c.contains("h:1") && c.contains("2s ago") && c.contains("(25%)"),
            "{c}"
        );
        assert_eq!(worker_json(&w)["state"], "LIVE");
        let mt = MountInfo {
            path: "/m".into(),
            ufs_uri: "s3://b/x".into(),
            read_only: true,
            options: [("region".to_string(), "r".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            mount_line(&mt),
            "s3://b/x on /m (readonly=true, shared=false, sync_interval=0s, properties={region=r})"
        );
        assert_eq!(master_json(&m)["liveWorkers"], 2);
    }
}
