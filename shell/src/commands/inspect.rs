//! Reading and inspecting paths: `ls`, `cat`/`head`/`tail`, `checksum`, `du`, `test`.

use super::*;

pub(super) async fn ls(
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
pub(super) async fn cat(fs: &FileSystem, path: &str, offset: u64, len: u64) -> Result<()> {
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

pub(super) async fn md5_of(fs: &FileSystem, path: &str) -> Result<String> {
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

pub(super) async fn du(
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

#[allow(clippy::too_many_arguments)]
pub(super) async fn test(
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
