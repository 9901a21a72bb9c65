//! What each `fs` command does.

use std::time::Duration;

use alluvium_common::config::parse_write_type;
use alluvium_common::path::normalize;
use alluvium_common::{ByteSize, Error, ErrorCode, Result};
use alluvium_proto::{FileInfo, TtlAction};
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use super::consistency;
use super::copy::{self, parse_location, Location};
use super::distributed_load;
use super::format;
use super::glob;
use super::out;
use super::progress::Progress;
use super::{FsCommand, TtlActionArg, WriteArgs};
use alluvium_client::{
    CreateDirectoryOptions, CreateFileOptions, DeleteOptions, FileSystem, MountOptions,
    OpenFileOptions, SetAttributeOptions,
};

/// Adds the path to an error whose message does not name it already.
pub(super) fn with_path(e: Error, path: &str) -> Error {
    if e.message.contains(path) {
        e
    } else {
        e.context(path)
    }
}

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

/// One `cp` source to `dst`.
async fn cp_one(
    fs: &FileSystem,
    src: Location,
    dst: Location,
    recursive: bool,
    opts: CreateFileOptions,
) -> Result<()> {
    match (src, dst) {
        (Location::Local(s), Location::Alluvium(d)) => {
            if s.is_dir() && !recursive {
                return Err(Error::invalid_argument(format!(
                    "{}: is a directory (use cp -R)",
                    s.display()
                )));
            }
            copy::copy_from_local(fs, &s, &d, opts).await
        }
        (Location::Alluvium(s), Location::Local(d)) => {
            let st = fs.get_status(&s).await.map_err(|e| with_path(e, &s))?;
            if st.is_folder && !recursive {
                return Err(Error::invalid_argument(format!(
                    "{s}: is a directory (use cp -R)"
                )));
            }
            copy::copy_to_local(fs, &s, &d).await
        }
        (Location::Alluvium(s), Location::Alluvium(d)) => {
            copy::copy_within(fs, &s, &d, recursive, opts).await
        }
        (Location::Local(_), Location::Local(_)) => Err(Error::invalid_argument(
            "both paths are local; one must be in Alluvium (paths without file:// are)",
        )),
    }
}

/// With several sources, the destination must be an existing directory.
async fn require_dir(fs: &FileSystem, dst: &Location, arg: &str) -> Result<()> {
    let is_dir = match dst {
        Location::Local(p) => p.is_dir(),
        Location::Alluvium(d) => match fs.get_status(d).await {
            Ok(st) => st.is_folder,
            Err(e) if e.code == ErrorCode::NotFound => false,
            Err(e) => return Err(with_path(e, d)),
        },
    };
    if is_dir {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "{arg}: several sources need an existing directory as the destination"
        )))
    }
}

async fn ls(
    fs: &FileSystem,
    path: &str,
    recursive: bool,
    human: bool,
    pinned_only: bool,
    json: bool,
) -> Result<()> {
    let st = fs.get_status(path).await.map_err(|e| with_path(e, path))?;
    let keep = |f: &FileInfo| !pinned_only || f.pinned;
    if !st.is_folder {
        if keep(&st) {
            if json {
                print_json(&serde_json::Value::Array(vec![format::file_json(&st)]));
            } else {
                out::line(format::ls_line(&st, human));
            }
        }
        return Ok(());
    }
    if json {
        let mut items = Vec::new();
        fs.list_status_each(&st.path, recursive, |f| {
            if keep(&f) {
                items.push(format::file_json(&f));
            }
        })
        .await?;
        print_json(&serde_json::Value::Array(items));
    } else {
        // Printed as pages arrive: a huge directory is never held whole.
        fs.list_status_each(&st.path, recursive, |f| {
            if keep(&f) {
                out::line(format::ls_line(&f, human));
            }
        })
        .await?;
    }
    Ok(())
}

/// Writes `[offset, offset+len)` of a file to stdout.
async fn cat(fs: &FileSystem, path: &str, offset: u64, len: u64) -> Result<()> {
    let mut input = fs
        .open_file(path, OpenFileOptions::from_config(fs.config())?)
        .await
        .map_err(|e| with_path(e, path))?;
    input.seek(offset.min(input.len())).await?;
    let mut left = len;
    let mut buf = vec![0u8; fs.config().client.chunk_size.0.clamp(4096, 16 << 20) as usize];
    let mut stdout = tokio::io::stdout();
    while left > 0 {
        let want = (buf.len() as u64).min(left) as usize;
        let n = input.read(&mut buf[..want]).await?;
        if n == 0 {
            break;
        }
        if let Err(e) = stdout.write_all(&buf[..n]).await {
            // A closed pipe (`| head`) ends the output quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(e.into());
        }
        left -= n as u64;
    }
    let _ = stdout.flush().await;
    input.close().await
}

async fn md5_of(fs: &FileSystem, path: &str) -> Result<String> {
    let mut input = fs
        .open_file(path, OpenFileOptions::from_config(fs.config())?)
        .await
        .map_err(|e| with_path(e, path))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; fs.config().client.chunk_size.0.clamp(4096, 16 << 20) as usize];
    loop {
        let n = input.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    input.close().await?;
    Ok(hex(&hasher.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn du(
    fs: &FileSystem,
    args: &[String],
    summarize: bool,
    human: bool,
    json: bool,
) -> Result<()> {
    let paths = glob::expand_all(fs, args).await?;
    let mut rows: Vec<(format::DuSizes, String)> = Vec::new();
    for p in &paths {
        let st = fs.get_status(p).await.map_err(|e| with_path(e, p))?;
        if !st.is_folder {
            rows.push((format::DuSizes::of(&st), st.path.clone()));
            continue;
        }
        let mut total = format::DuSizes::default();
        let mut each = Vec::new();
        fs.list_status_each(&st.path, true, |f| {
            if !f.is_folder {
                let s = format::DuSizes::of(&f);
                total.add(s);
                if !summarize {
                    each.push((s, f.path));
                }
            }
        })
        .await?;
        if summarize {
            rows.push((total, st.path.clone()));
        } else {
            rows.extend(each);
        }
    }
    if json {
        print_json(&serde_json::Value::Array(
            rows.iter().map(|(s, p)| format::du_json(*s, p)).collect(),
        ));
    } else {
        out::line(format::DU_HEADER);
        for (s, p) in &rows {
            out::line(format::du_line(*s, p, human));
        }
    }
    Ok(())
}

async fn set_pinned(fs: &FileSystem, args: &[String], pinned: bool) -> Result<()> {
    for p in &glob::expand_all(fs, args).await? {
        let opts = SetAttributeOptions {
            pinned: Some(pinned),
            recursive: true,
            ..Default::default()
        };
        fs.set_attribute(p, opts)
            .await
            .map_err(|e| with_path(e, p))?;
        out::line(format!(
            "{p} was successfully {}.",
            if pinned { "pinned" } else { "unpinned" }
        ));
    }
    Ok(())
}

async fn persist(fs: &FileSystem, path: &str) -> Result<()> {
    let st = fs.get_status(path).await.map_err(|e| with_path(e, path))?;
    let total = if st.is_folder {
        let mut t = 0;
        fs.list_status_each(&st.path, true, |f| {
            if !f.is_folder && !f.persisted {
                t += f.length;
            }
        })
        .await?;
        t
    } else if st.persisted {
        0
    } else {
        st.length
    };
    let progress = Progress::new("persist", total);
    let mut persisted = 0u64;
    let r = fs
        .persist_with_progress(&st.path, |f| {
            persisted += 1;
            progress.inc(f.length);
            progress.println(format!("persisted file {} with size {}", f.path, f.length));
        })
        .await;
    progress.finish();
    r.map_err(|e| with_path(e, path))?;
    if persisted == 0 {
        out::line(format!("{} is already persisted", st.path));
    }
    Ok(())
}

async fn load(fs: &FileSystem, path: &str) -> Result<()> {
    let st = fs.get_status(path).await.map_err(|e| with_path(e, path))?;
    let total = if st.is_folder {
        let mut t = 0;
        fs.list_status_each(&st.path, true, |f| {
            if !f.is_folder {
                t += f.length;
            }
        })
        .await?;
        t
    } else {
        st.length
    };
    let progress = Progress::new("load", total);
    let r = fs
        .load_with_progress(&st.path, true, |n| progress.inc(n))
        .await;
    progress.finish();
    let s = r.map_err(|e| with_path(e, path))?;
    out::line(format!(
        "{} loaded: {} blocks ({}) read from the UFS, {} already cached, {} files",
        st.path,
        s.blocks_loaded,
        ByteSize::human(s.bytes_loaded),
        s.blocks_cached,
        s.files
    ));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn test(
    fs: &FileSystem,
    path: &str,
    dir: bool,
    exists: bool,
    file: bool,
    nonempty: bool,
    zero: bool,
) -> Result<()> {
    let st = match fs.get_status(path).await {
        Ok(s) => Some(s),
        Err(e) if e.code == ErrorCode::NotFound => None,
        Err(e) => return Err(with_path(e, path)),
    };
    let (ok, why) = test_result(st.as_ref(), dir, exists, file, nonempty, zero);
    if ok {
        Ok(())
    } else {
        // Exit code 1, like test(1).
        Err(Error::new(ErrorCode::Cancelled, format!("{path}: {why}")))
    }
}

/// Evaluates `test`; the text says why it is false.
pub fn test_result(
    st: Option<&FileInfo>,
    dir: bool,
    _exists: bool,
    file: bool,
    nonempty: bool,
    zero: bool,
) -> (bool, &'static str) {
    let Some(st) = st else {
        return (false, "no such file or directory");
    };
    if dir {
        (st.is_folder, "not a directory")
    } else if file {
        (!st.is_folder, "not a file")
    } else if nonempty {
        let full = if st.is_folder {
            st.child_count > 0
        } else {
            st.length > 0
        };
        (full, "is empty")
    } else if zero {
        (!st.is_folder && st.length == 0, "is not a zero-length file")
    } else {
        (true, "")
    }
}

async fn chmod(fs: &FileSystem, path: &str, spec: &str, recursive: bool) -> Result<()> {
    let octal = spec.chars().all(|c| c.is_ascii_digit());
    let st = fs.get_status(path).await.map_err(|e| with_path(e, path))?;
    if octal || !recursive {
        let mode = format::parse_mode(spec, st.mode)?;
        let opts = SetAttributeOptions {
            mode: Some(mode),
            recursive,
            ..Default::default()
        };
        fs.set_attribute(path, opts)
            .await
            .map_err(|e| with_path(e, path))?;
    } else {
        // A symbolic change depends on each path's current bits.
        let mut all = vec![st.clone()];
        if st.is_folder {
            fs.list_status_each(&st.path, true, |f| all.push(f)).await?;
        }
        for f in all {
            let mode = format::parse_mode(spec, f.mode)?;
            let opts = SetAttributeOptions {
                mode: Some(mode),
                ..Default::default()
            };
            fs.set_attribute(&f.path, opts)
                .await
                .map_err(|e| with_path(e, &f.path))?;
        }
    }
    out::line(format!(
        "Changed permission of {} to {spec}",
        normalize(path)?
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
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
