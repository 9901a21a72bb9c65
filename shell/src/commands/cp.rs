//! `cp` between the local file system and Alluvium, and within Alluvium.

use super::*;

/// One `cp` source to `dst`.
pub(super) async fn cp_one(
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
pub(super) async fn require_dir(fs: &FileSystem, dst: &Location, arg: &str) -> Result<()> {
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
