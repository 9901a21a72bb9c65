//! Copies between the local file system and the namespace, and inside the namespace: whole
//! directory trees, several files at once, with progress.

use std::path::{Path, PathBuf};

use alluvium_common::path::{join, name, normalize};
use alluvium_common::{Error, ErrorCode, Result};
use bytes::BytesMut;
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::progress::Progress;
use alluvium_client::{CreateDirectoryOptions, CreateFileOptions, FileSystem, OpenFileOptions};

/// Files copied at the same time.
const PARALLEL: usize = 4;

/// Where a copy argument points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Alluvium(String),
}

/// `file:///x` (or `file:/x`) is local; `alluvium://host:port/x` and plain `/x` are in the
/// namespace.
pub fn parse_location(arg: &str) -> Result<Location> {
    if let Some(rest) = arg.strip_prefix("file://") {
        return Ok(Location::Local(PathBuf::from(if rest.is_empty() {
            "/"
        } else {
            rest
        })));
    }
    if let Some(rest) = arg.strip_prefix("file:") {
        return Ok(Location::Local(PathBuf::from(rest)));
    }
    if let Some(rest) = arg.strip_prefix("alluvium://") {
        // Authority (host:port) up to the path; the client talks to the configured master.
        let path = rest.find('/').map_or("/", |i| &rest[i..]);
        return Ok(Location::Alluvium(normalize(path)?));
    }
    Ok(Location::Alluvium(normalize(arg)?))
}

/// An I/O error on a local path as a one-line error naming it.
pub fn local_err(path: &Path, e: std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    let reason = match e.kind() {
        K::NotFound => "no such file or directory".to_string(),
        K::PermissionDenied => "permission denied".to_string(),
        K::AlreadyExists => "already exists".to_string(),
        K::IsADirectory => "is a directory".to_string(),
        K::NotADirectory => "not a directory".to_string(),
        _ => e.to_string(),
    };
    let code = Error::from(e).code;
    Error::new(code, format!("{}: {reason}", path.display()))
}

/// The namespace target of a copy of `src_name` to `dst`: inside `dst` when it is a directory.
pub fn target_in(dst: &str, dst_is_dir: bool, src_name: &str) -> String {
    if dst_is_dir {
        join(dst, src_name)
    } else {
        dst.to_string()
    }
}

async fn alluvium_is_dir(fs: &FileSystem, path: &str) -> Result<Option<bool>> {
    match fs.get_status(path).await {
        Ok(f) => Ok(Some(f.is_folder)),
        Err(e) if e.code == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A file to copy: its source, its path relative to the copied root, and its size.
type FileEntry<P> = (P, String, u64);

/// Local files under `root` (itself if a file), with paths relative to it, and the directories.
fn walk_local(root: &Path) -> Result<(Vec<FileEntry<PathBuf>>, Vec<String>)> {
    let meta = std::fs::metadata(root).map_err(|e| local_err(root, e))?;
    if meta.is_file() {
        return Ok((
            vec![(root.to_path_buf(), String::new(), meta.len())],
            Vec::new(),
        ));
    }
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| local_err(&dir, e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| local_err(&dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let n = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                n
            } else {
                format!("{rel}/{n}")
            };
            let m = std::fs::metadata(&p).map_err(|e| local_err(&p, e))?;
            if m.is_dir() {
                dirs.push(r.clone());
                stack.push((p, r));
            } else if m.is_file() {
                files.push((p, r, m.len()));
            }
        }
    }
    Ok((files, dirs))
}

fn rel_join(base: &str, rel: &str) -> String {
    if rel.is_empty() {
        base.to_string()
    } else {
        join(base, rel)
    }
}

/// `copyFromLocal`: a file or a directory tree into the namespace.
pub async fn copy_from_local(
    fs: &FileSystem,
    src: &Path,
    dst: &str,
    opts: CreateFileOptions,
) -> Result<()> {
    let src_name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dst_dir = alluvium_is_dir(fs, dst).await?;
    let (files, dirs) = walk_local(src)?;
    let is_tree = src.is_dir();
    let base = target_in(dst, dst_dir == Some(true), &src_name);
    if is_tree {
        make_tree(fs, &base, &dirs).await?;
    }
    let total: u64 = files.iter().map(|f| f.2).sum();
    let progress = Progress::new("copyFromLocal", total);
    let result = futures::stream::iter(files.into_iter().map(|(path, rel, _)| {
        let dst = rel_join(&base, &rel);
        let opts = opts.clone();
        let progress = &progress;
        async move {
            local_file_to_alluvium(fs, &path, &dst, opts, progress).await?;
            progress.println(format!("Copied file://{} to {dst}", path.display()));
            Ok::<(), Error>(())
        }
    }))
    .buffer_unordered(PARALLEL)
    .try_collect::<Vec<()>>()
    .await;
    progress.finish();
    result.map(|_| ())
}

async fn local_file_to_alluvium(
    fs: &FileSystem,
    src: &Path,
    dst: &str,
    opts: CreateFileOptions,
    progress: &Progress,
) -> Result<()> {
    let mut file = tokio::fs::File::open(src)
        .await
        .map_err(|e| local_err(src, e))?;
    let chunk = fs.config().client.chunk_size.0.clamp(4096, 16 << 20) as usize;
    let mut out = fs.create_file(dst, opts).await?;
    let mut buf = BytesMut::with_capacity(chunk);
    loop {
        buf.reserve(chunk);
        let n = match file.read_buf(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = out.cancel().await;
                return Err(local_err(src, e));
            }
        };
        if n == 0 && buf.is_empty() {
            break;
        }
        if buf.len() >= chunk || n == 0 {
            let len = buf.len() as u64;
            if let Err(e) = out.write_bytes(buf.split().freeze()).await {
                let _ = out.cancel().await;
                return Err(e.context(dst));
            }
            progress.inc(len);
        }
        if n == 0 {
            break;
        }
    }
    out.close().await?;
    Ok(())
}

/// Namespace files under `src` (itself if a file), relative to it, and the directories.
async fn walk_alluvium(
    fs: &FileSystem,
    src: &str,
) -> Result<(bool, Vec<FileEntry<String>>, Vec<String>)> {
    let st = fs.get_status(src).await?;
    if !st.is_folder {
        return Ok((false, vec![(st.path, String::new(), st.length)], Vec::new()));
    }
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    fs.list_status_each(&st.path, true, |f| {
        let rel = alluvium_common::path::relative_to(&st.path, &f.path)
            .unwrap_or(&f.name)
            .to_string();
        if f.is_folder {
            dirs.push(rel);
        } else {
            files.push((f.path, rel, f.length));
        }
    })
    .await?;
    dirs.sort();
    Ok((true, files, dirs))
}

/// `copyToLocal`: a file or a directory tree out of the namespace.
pub async fn copy_to_local(fs: &FileSystem, src: &str, dst: &Path) -> Result<()> {
    let (is_tree, files, dirs) = walk_alluvium(fs, src).await?;
    let base = if dst.is_dir() {
        dst.join(name(src))
    } else {
        dst.to_path_buf()
    };
    if is_tree {
        tokio::fs::create_dir_all(&base)
            .await
            .map_err(|e| local_err(&base, e))?;
        for d in &dirs {
            let p = base.join(d);
            tokio::fs::create_dir_all(&p)
                .await
                .map_err(|e| local_err(&p, e))?;
        }
    }
    let total: u64 = files.iter().map(|f| f.2).sum();
    let progress = Progress::new("copyToLocal", total);
    let result = futures::stream::iter(files.into_iter().map(|(path, rel, _)| {
        let target = if rel.is_empty() {
            base.clone()
        } else {
            base.join(&rel)
        };
        let progress = &progress;
        async move {
            alluvium_file_to_local(fs, &path, &target, progress).await?;
            progress.println(format!("Copied {path} to file://{}", target.display()));
            Ok::<(), Error>(())
        }
    }))
    .buffer_unordered(PARALLEL)
    .try_collect::<Vec<()>>()
    .await;
    progress.finish();
    result.map(|_| ())
}

async fn alluvium_file_to_local(
    fs: &FileSystem,
    src: &str,
    dst: &Path,
    progress: &Progress,
) -> Result<()> {
    let mut input = fs
        .open_file(src, OpenFileOptions::from_config(fs.config())?)
        .await?;
    let mut out = tokio::fs::File::create(dst)
        .await
        .map_err(|e| local_err(dst, e))?;
    let chunk = fs.config().client.chunk_size.0.clamp(4096, 16 << 20) as usize;
    let mut buf = vec![0u8; chunk];
    let copied: Result<()> = async {
        loop {
            let n = input.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .await
                .map_err(|e| local_err(dst, e))?;
            progress.inc(n as u64);
        }
        out.flush().await.map_err(|e| local_err(dst, e))?;
        Ok(())
    }
    .await;
    let _ = input.close().await;
    if let Err(e) = copied {
        // No partial file is left behind.
        let _ = tokio::fs::remove_file(dst).await;
        return Err(e);
    }
    Ok(())
}

/// `cp` inside the namespace.
pub async fn copy_within(
    fs: &FileSystem,
    src: &str,
    dst: &str,
    recursive: bool,
    opts: CreateFileOptions,
) -> Result<()> {
    let (is_tree, files, dirs) = walk_alluvium(fs, src).await?;
    if is_tree && !recursive {
        return Err(Error::invalid_argument(format!(
            "{src}: is a directory (use cp -R)"
        )));
    }
    let dst_dir = alluvium_is_dir(fs, dst).await?;
    let base = target_in(dst, dst_dir == Some(true), name(src));
    if alluvium_common::path::is_ancestor_or_self(&normalize(src)?, &base) {
        return Err(Error::invalid_argument(format!(
            "cannot copy {src} into itself ({base})"
        )));
    }
    if is_tree {
        make_tree(fs, &base, &dirs).await?;
    }
    let total: u64 = files.iter().map(|f| f.2).sum();
    let progress = Progress::new("cp", total);
    let result = futures::stream::iter(files.into_iter().map(|(path, rel, _)| {
        let target = rel_join(&base, &rel);
        let opts = opts.clone();
        let progress = &progress;
        async move {
            alluvium_file_copy(fs, &path, &target, opts, progress).await?;
            progress.println(format!("Copied {path} to {target}"));
            Ok::<(), Error>(())
        }
    }))
    .buffer_unordered(PARALLEL)
    .try_collect::<Vec<()>>()
    .await;
    progress.finish();
    result.map(|_| ())
}

async fn alluvium_file_copy(
    fs: &FileSystem,
    src: &str,
    dst: &str,
    opts: CreateFileOptions,
    progress: &Progress,
) -> Result<()> {
    let mut input = fs
        .open_file(src, OpenFileOptions::from_config(fs.config())?)
        .await?;
    let mut out = fs.create_file(dst, opts).await?;
    let chunk = fs.config().client.chunk_size.0.clamp(4096, 16 << 20) as usize;
    let mut buf = vec![0u8; chunk];
    loop {
        let n = match input.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = out.cancel().await;
                return Err(e);
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = out.write(&buf[..n]).await {
            let _ = out.cancel().await;
            return Err(e);
        }
        progress.inc(n as u64);
    }
    let _ = input.close().await;
    out.close().await?;
    Ok(())
}

/// Creates `base` and every directory of `dirs` (relative to it) in the namespace. Existing ones
/// are fine: several copies into one tree may run at once.
async fn make_tree<S: AsRef<str>>(fs: &FileSystem, base: &str, dirs: &[S]) -> Result<()> {
    let mkdir = CreateDirectoryOptions {
        recursive: true,
        allow_exists: true,
        ..CreateDirectoryOptions::from_config(fs.config())
    };
    fs.create_directory(base, mkdir.clone()).await?;
    for d in dirs {
        fs.create_directory(&rel_join(base, d.as_ref()), mkdir.clone())
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            parse_location("file:///tmp/x").unwrap(),
            Location::Local("/tmp/x".into())
        );
        assert_eq!(
            parse_location("file:rel/x").unwrap(),
            Location::Local("rel/x".into())
        );
        assert_eq!(
            parse_location("/a//b/").unwrap(),
            Location::Alluvium("/a/b".into())
        );
        assert_eq!(
            parse_location("alluvium://m:19998/a/b").unwrap(),
            Location::Alluvium("/a/b".into())
        );
        assert_eq!(
            parse_location("alluvium://m:19998").unwrap(),
            Location::Alluvium("/".into())
        );
        assert!(parse_location("relative").is_err());
    }

    #[test]
    fn targets() {
        assert_eq!(target_in("/d", true, "f"), "/d/f");
        assert_eq!(target_in("/d/g", false, "f"), "/d/g");
        assert_eq!(target_in("/", true, "f"), "/f");
        assert_eq!(rel_join("/b", ""), "/b");
        assert_eq!(rel_join("/b", "x/y"), "/b/x/y");
    }

    #[test]
    fn local_errors_name_the_path() {
        let e = local_err(
            Path::new("/nope"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.message, "/nope: no such file or directory");
        assert_eq!(e.code, ErrorCode::NotFound);
    }

    #[test]
    fn walks_a_local_tree() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/f1"), b"12345").unwrap();
        std::fs::write(d.path().join("top"), b"1").unwrap();
        let (files, dirs) = walk_local(d.path()).unwrap();
        let mut rels: Vec<(String, u64)> = files.iter().map(|f| (f.1.clone(), f.2)).collect();
        rels.sort();
        assert_eq!(rels, vec![("a/b/f1".into(), 5), ("top".into(), 1)]);
        let mut dirs = dirs;
        dirs.sort();
        assert_eq!(dirs, vec!["a".to_string(), "a/b".to_string()]);
        let (one, none) = walk_local(&d.path().join("top")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].1, "");
        assert!(none.is_empty());
        assert!(walk_local(&d.path().join("missing")).is_err());
    }
}
