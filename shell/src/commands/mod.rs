//! What each `fs` command does.

use std::time::Duration;

use alluvium_common::config::parse_write_type;
use alluvium_common::path::normalize;
use alluvium_common::{ByteSize, Error, ErrorCode, Result};
use alluvium_proto::{FileInfo, TtlAction};
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use crate::consistency;
use crate::copy::{self, parse_location, Location};
use crate::distributed_load;
use crate::format;
use crate::glob;
use crate::out;
use crate::progress::Progress;
use crate::{FsCommand, TtlActionArg, WriteArgs};
use alluvium_client::{
    with_path, CreateDirectoryOptions, CreateFileOptions, DeleteOptions, FileSystem, MountOptions,
    OpenFileOptions, SetAttributeOptions,
};

mod attrs;
mod cache;
mod cp;
mod inspect;

use attrs::{chmod, set_pinned};
use cache::{load, persist};
use cp::{cp_one, require_dir};
use inspect::{cat, du, ls, md5_of, test};

fn print_json(v: &serde_json::Value) {
    out::line(serde_json::to_string_pretty(v).unwrap_or_default());
}

fn create_options(fs: &FileSystem, w: &WriteArgs) -> Result<CreateFileOptions> {
    let mut o = CreateFileOptions::from_config(fs.config())?;
    if let Some(t) = &w.write_type {
        o.write_type = parse_write_type(t)?;
    }
    if let Some(b) = &w.block_size {
        o.block_size = b.parse::<ByteSize>()?.0;
    }
    Ok(o)
}

/// A byte count as given to `head -c`/`tail -c` (plain number or a size like 1KiB).
fn parse_count(s: &str) -> Result<u64> {
    Ok(s.parse::<ByteSize>()?.0)
}

/// A TTL: plain milliseconds (Alluxio's unit) or a duration like `1h30m`.
pub fn parse_ttl(s: &str) -> Result<Duration> {
    if let Ok(ms) = s.trim().parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    humantime::parse_duration(s.trim()).map_err(|e| {
        Error::invalid_argument(format!(
            "invalid TTL '{s}': {e} (milliseconds, or e.g. 30s, 1h30m)"
        ))
    })
}

pub async fn run(fs: &FileSystem, cmd: FsCommand) -> Result<()> {
    match cmd {
        FsCommand::Ls {
            recursive,
            human,
            pinned,
            json,
            paths,
            ..
        } => {
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                ls(fs, p, recursive, human, pinned, json).await?;
            }
            Ok(())
        }
        FsCommand::Mkdir { parents, paths } => {
            for p in &paths {
                let opts = CreateDirectoryOptions {
                    recursive: parents,
                    allow_exists: parents,
                    ..CreateDirectoryOptions::from_config(fs.config())
                };
                fs.create_directory(p, opts)
                    .await
                    .map_err(|e| with_path(e, p))?;
                out::line(format!("Successfully created directory {p}"));
            }
            Ok(())
        }
        FsCommand::Touch { paths } => {
            for p in &paths {
                let opts = CreateFileOptions::from_config(fs.config())?;
                let out = fs.create_file(p, opts).await.map_err(|e| with_path(e, p))?;
                out.close().await?;
                out::line(format!("{p} has been created"));
            }
            Ok(())
        }
        FsCommand::Cat { paths } => {
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                cat(fs, p, 0, u64::MAX).await?;
            }
            Ok(())
        }
        FsCommand::Head { bytes, path } => {
            let n = parse_count(&bytes)?;
            for p in glob::expand(fs, &path).await? {
                cat(fs, &p, 0, n).await?;
            }
            Ok(())
        }
        FsCommand::Tail { bytes, path } => {
            let n = parse_count(&bytes)?;
            for p in glob::expand(fs, &path).await? {
                let st = fs.get_status(&p).await.map_err(|e| with_path(e, &p))?;
                cat(fs, &p, st.length.saturating_sub(n), n).await?;
            }
            Ok(())
        }
        FsCommand::Rm {
            recursive,
            alluvium_only,
            paths,
        } => {
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                let opts = DeleteOptions {
                    recursive,
                    alluvium_only,
                };
                fs.delete(p, opts).await.map_err(|e| with_path(e, p))?;
                out::line(format!("{p} has been removed"));
            }
            Ok(())
        }
        FsCommand::Mv { src, dst } => {
            fs.rename(&src, &dst)
                .await
                .map_err(|e| with_path(e, &src))?;
            out::line(format!("Renamed {src} to {dst}"));
            Ok(())
        }
        FsCommand::Cp {
            recursive,
            write,
            src,
            dst,
        } => {
            let opts = create_options(fs, &write)?;
            let dst_loc = parse_location(&dst)?;
            let sources = match parse_location(&src)? {
                Location::Alluvium(s) if glob::has_wildcard(&s) => {
                    let all = glob::expand(fs, &s).await?;
                    if all.len() > 1 {
                        require_dir(fs, &dst_loc, &dst).await?;
                    }
                    all.into_iter().map(Location::Alluvium).collect()
                }
                l => vec![l],
            };
            for s in sources {
                cp_one(fs, s, dst_loc.clone(), recursive, opts.clone()).await?;
            }
            Ok(())
        }
        FsCommand::CopyFromLocal { write, src, dst } => {
            let opts = create_options(fs, &write)?;
            let src = match parse_location(&src) {
                Ok(Location::Local(p)) => p,
                // A plain path here is a local one, as in Alluxio.
                _ => std::path::PathBuf::from(&src),
            };
            let dst = match parse_location(&dst)? {
                Location::Alluvium(d) => d,
                Location::Local(_) => {
                    return Err(Error::invalid_argument(format!(
                        "{dst}: the destination must be an Alluvium path"
                    )))
                }
            };
            copy::copy_from_local(fs, &src, &dst, opts).await
        }
        FsCommand::CopyToLocal { src, dst } => {
            let src = match parse_location(&src)? {
                Location::Alluvium(s) => s,
                Location::Local(_) => {
                    return Err(Error::invalid_argument(format!(
                        "{src}: the source must be an Alluvium path"
                    )))
                }
            };
            let dst = match parse_location(&dst) {
                Ok(Location::Local(p)) => p,
                _ => std::path::PathBuf::from(&dst),
            };
            let sources = glob::expand(fs, &src).await?;
            if sources.len() > 1 && !dst.is_dir() {
                return Err(Error::invalid_argument(format!(
                    "{}: several sources need an existing directory as the destination",
                    dst.display()
                )));
            }
            for s in &sources {
                copy::copy_to_local(fs, s, &dst).await?;
            }
            Ok(())
        }
        FsCommand::Stat {
            format: fmt,
            json,
            paths,
        } => {
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                let st = fs.get_status(p).await.map_err(|e| with_path(e, p))?;
                if json {
                    print_json(&format::file_json(&st));
                } else if let Some(f) = &fmt {
                    out::line(format::stat_format(f, &st)?);
                } else {
                    out::line(format::stat_text(&st));
                }
            }
            Ok(())
        }
        FsCommand::Du {
            summarize,
            human,
            json,
            paths,
            ..
        } => du(fs, &paths, summarize, human, json).await,
        FsCommand::Pin { paths } => set_pinned(fs, &paths, true).await,
        FsCommand::Unpin { paths } => set_pinned(fs, &paths, false).await,
        FsCommand::Free { force, paths } => {
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                fs.free(p, true, force).await.map_err(|e| with_path(e, p))?;
                out::line(format!("{p} was successfully freed from Alluvium space."));
            }
            Ok(())
        }
        FsCommand::Persist { paths } => {
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                persist(fs, p).await?;
            }
            Ok(())
        }
        FsCommand::Load { paths } => {
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                load(fs, p).await?;
            }
            Ok(())
        }
        FsCommand::DistributedLoad {
            replication,
            parallelism,
            restart,
            paths,
        } => {
            let args = distributed_load::LoadArgs {
                replication,
                parallelism: parallelism as usize,
                restart,
            };
            for p in &glob::expand_all(fs, &paths).await? {
                distributed_load::run(fs, p, args).await?;
            }
            Ok(())
        }
        FsCommand::CheckConsistency {
            recursive,
            repair,
            json,
            paths,
        } => {
            let paths = glob::expand_all(fs, &paths).await?;
            let mut left = 0u64;
            let mut first: Option<String> = None;
            for p in &paths {
                let n = consistency::run(fs, p, recursive, repair, json).await?;
                if n > 0 && first.is_none() {
                    first = Some(p.clone());
                }
                left += n;
            }
            match first {
                None => Ok(()),
                Some(p) => Err(Error::failed_precondition(format!(
                    "{p}: {left} {} inconsistent with the UFS{}",
                    if left == 1 { "entry" } else { "entries" },
                    if repair {
                        " could not be repaired"
                    } else {
                        " (repair with -r)"
                    }
                ))),
            }
        }
        FsCommand::Mount {
            readonly,
            shared,
            options,
            path,
            uri,
        } => match (path, uri) {
            (Some(path), Some(uri)) => {
                let opts = MountOptions {
                    read_only: readonly,
                    shared,
                    options: MountOptions::parse_pairs(&options)?,
                };
                fs.mount(&path, &uri, opts)
                    .await
                    .map_err(|e| with_path(e, &path))?;
                out::line(format!("Mounted {uri} at {path}"));
                Ok(())
            }
            _ => {
                for m in fs.mount_table().await? {
                    out::line(format::mount_line(&m));
                }
                Ok(())
            }
        },
        FsCommand::Unmount { path } => {
            fs.unmount(&path).await.map_err(|e| with_path(e, &path))?;
            out::line(format!("Unmounted {path}"));
            Ok(())
        }
        FsCommand::Location { paths } => {
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                let st = fs.get_status(p).await.map_err(|e| with_path(e, p))?;
                out::line(format::location_text(&st));
            }
            Ok(())
        }
        FsCommand::Test {
            dir,
            exists,
            file,
            nonempty,
            zero,
            path,
        } => test(fs, &path, dir, exists, file, nonempty, zero).await,
        FsCommand::Chmod {
            recursive,
            mode,
            paths,
        } => {
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                chmod(fs, p, &mode, recursive).await?;
            }
            Ok(())
        }
        FsCommand::Chown {
            recursive,
            owner,
            paths,
        } => {
            let (user, group) = match owner.split_once(':') {
                Some((u, g)) => (u.to_string(), Some(g.to_string()).filter(|g| !g.is_empty())),
                None => (owner.clone(), None),
            };
            if user.is_empty() {
                return Err(Error::invalid_argument("chown: the owner is empty"));
            }
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                let opts = SetAttributeOptions {
                    owner: Some(user.clone()),
                    group: group.clone(),
                    recursive,
                    ..Default::default()
                };
                fs.set_attribute(p, opts)
                    .await
                    .map_err(|e| with_path(e, p))?;
                out::line(format!("Changed owner of {p} to {owner}"));
            }
            Ok(())
        }
        FsCommand::Chgrp {
            recursive,
            group,
            paths,
        } => {
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                let opts = SetAttributeOptions {
                    group: Some(group.clone()),
                    recursive,
                    ..Default::default()
                };
                fs.set_attribute(p, opts)
                    .await
                    .map_err(|e| with_path(e, p))?;
                out::line(format!("Changed group of {p} to {group}"));
            }
            Ok(())
        }
        FsCommand::SetTtl { action, path, ttl } => {
            let ttl = parse_ttl(&ttl)?;
            let action = match action {
                TtlActionArg::Delete => TtlAction::Delete,
                TtlActionArg::Free => TtlAction::Free,
            };
            for path in glob::expand(fs, &path).await? {
                let opts = SetAttributeOptions {
                    ttl: Some(ttl),
                    ttl_action: Some(action),
                    ..Default::default()
                };
                fs.set_attribute(&path, opts)
                    .await
                    .map_err(|e| with_path(e, &path))?;
                out::line(format!(
                    "TTL of path '{path}' was successfully set to {} milliseconds, with expiry action set to {}",
                    ttl.as_millis(),
                    if action == TtlAction::Free { "FREE" } else { "DELETE" }
                ));
            }
            Ok(())
        }
        FsCommand::UnsetTtl { path } => {
            for path in glob::expand(fs, &path).await? {
                let opts = SetAttributeOptions {
                    unset_ttl: true,
                    ..Default::default()
                };
                fs.set_attribute(&path, opts)
                    .await
                    .map_err(|e| with_path(e, &path))?;
                out::line(format!("TTL of path '{path}' was successfully removed."));
            }
            Ok(())
        }
        FsCommand::Count {
            human, json, paths, ..
        } => {
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                let st = fs.get_status(p).await.map_err(|e| with_path(e, p))?;
                let mut c = format::Counts::default();
                c.add(&st);
                if st.is_folder {
                    fs.list_status_each(&st.path, true, |f| c.add(&f)).await?;
                }
                if json {
                    print_json(&format::count_json(c, &st.path));
                } else {
                    out::line(format::count_text(c, human));
                }
            }
            Ok(())
        }
        FsCommand::Checksum { paths } => {
            let paths = glob::expand_all(fs, &paths).await?;
            for p in &paths {
                let hex = md5_of(fs, p).await?;
                if paths.len() == 1 {
                    out::line(format!("md5sum: {hex}"));
                } else {
                    out::line(format!("{p}: md5sum: {hex}"));
                }
            }
            Ok(())
        }
        FsCommand::LoadMetadata {
            recursive, path, ..
        } => {
            let r = fs
                .load_metadata(&path, recursive)
                .await
                .map_err(|e| with_path(e, &path))?;
            out::line(format!(
                "Loaded metadata of {path}: {} added, {} updated, {} removed",
                r.loaded, r.updated, r.removed
            ));
            Ok(())
        }
        FsCommand::MasterInfo { json } => {
            let m = fs.master_info().await?;
            if json {
                print_json(&format::master_json(&m));
            } else {
                out::line(format!("Master address: {}", m.rpc_address));
                out::line(format!("Web port: {}", m.web_port));
                out::line(format!("Version: {}", m.version));
                out::line(format!("Started: {}", format::iso_time(m.start_time_ms)));
                out::line(format!(
                    "Uptime: {}",
                    humantime::format_duration(Duration::from_secs(
                        (m.uptime_ms.max(0) / 1000) as u64
                    ))
                ));
                out::line(format!("Live workers: {}", m.live_workers));
                out::line(format!("Lost workers: {}", m.lost_workers));
                out::line(format!("Root UFS: {}", m.root_ufs));
            }
            Ok(())
        }
        FsCommand::GetCapacityBytes => {
            let m = fs.master_info().await?;
            out::line(format!("Capacity Bytes: {}", m.capacity_bytes));
            Ok(())
        }
        FsCommand::GetUsedBytes => {
            let m = fs.master_info().await?;
            out::line(format!("Used Bytes: {}", m.used_bytes));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::inspect::{hex, test_result};
    use super::*;

    #[test]
    fn ttl_values() {
        assert_eq!(parse_ttl("1500").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_ttl("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_ttl("soon").is_err());
    }

    #[test]
    fn head_counts() {
        assert_eq!(parse_count("10").unwrap(), 10);
        assert_eq!(parse_count("1KiB").unwrap(), 1024);
        assert!(parse_count("x").is_err());
    }

    #[test]
    fn md5_hex_matches_md5sum() {
        // md5sum of an empty input and of "abc".
        assert_eq!(hex(&Md5::digest(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex(&Md5::digest(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }

    #[test]
    fn tests_of_paths() {
        let file = FileInfo {
            length: 3,
            ..Default::default()
        };
        let empty = FileInfo::default();
        let dir = FileInfo {
            is_folder: true,
            child_count: 0,
            ..Default::default()
        };
        assert!(!test_result(None, false, true, false, false, false).0);
        assert!(test_result(Some(&file), false, true, false, false, false).0);
        assert!(test_result(Some(&dir), true, false, false, false, false).0);
        assert!(!test_result(Some(&file), true, false, false, false, false).0);
        assert!(test_result(Some(&file), false, false, true, false, false).0);
        assert!(test_result(Some(&file), false, false, false, true, false).0);
        assert!(!test_result(Some(&dir), false, false, false, true, false).0);
        assert!(test_result(Some(&empty), false, false, false, false, true).0);
        assert!(!test_result(Some(&dir), false, false, false, false, true).0);
    }

    #[test]
    fn paths_are_added_once() {
        let e = with_path(Error::not_found("/a/b: no such file"), "/a/b");
        assert_eq!(e.message, "/a/b: no such file");
        let e = with_path(Error::not_found("no such file or directory"), "/a/b");
        assert_eq!(e.message, "/a/b: no such file or directory");
    }
}
