//! Changing attributes: `chmod`, `pin`/`unpin`.

use super::*;

pub(super) async fn set_pinned(fs: &FileSystem, args: &[String], pinned: bool) -> Result<()> {
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

pub(super) async fn chmod(fs: &FileSystem, path: &str, spec: &str, recursive: bool) -> Result<()> {
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
