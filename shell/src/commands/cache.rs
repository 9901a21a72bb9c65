//! Moving data between the cache and the UFS: `persist`, `load`.

use super::*;

pub(super) async fn persist(fs: &FileSystem, path: &str) -> Result<()> {
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

pub(super) async fn load(fs: &FileSystem, path: &str) -> Result<()> {
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
