//! rename(2) with POSIX's replace rules on top of the master's rename, which never replaces.

use alluvium_common::{Error, ErrorCode, Reason, Result};

use super::AlluviumFuse;
use alluvium_client::DeleteOptions;
use alluvium_client::FileSystem;

impl AlluviumFuse {
    /// Renames `src` to `dst`, replacing a file by a file or an empty directory by a directory
    /// (the target goes first: not atomic); `no_replace` (RENAME_NOREPLACE) refuses any target.
    pub(super) async fn posix_rename(
        &self,
        fs: &FileSystem,
        src: &str,
        dst: &str,
        no_replace: bool,
    ) -> Result<()> {
        if src == dst {
            return Ok(());
        }
        match fs.get_attributes(dst).await {
            Ok(target) => {
                if no_replace {
                    return Err(Error::already_exists(format!("{dst}: already exists")));
                }
                let source = fs.get_attributes(src).await?;
                match (source.is_folder, target.is_folder) {
                    (false, true) => {
                        return Err(Error::invalid_argument(format!("{dst}: is a directory"))
                            .with_reason(Reason::IsADirectory))
                    }
                    (true, false) => {
                        return Err(Error::invalid_argument(format!("{dst}: not a directory"))
                            .with_reason(Reason::NotADirectory))
                    }
                    (true, true) if !fs.list_page(dst, "", 1).await?.is_empty() => {
                        return Err(Error::failed_precondition(format!(
                            "{dst}: directory not empty"
                        ))
                        .with_reason(Reason::NotEmpty))
                    }
                    _ => {}
                }
                fs.delete(dst, DeleteOptions::default()).await?;
            }
            Err(e) if e.code == ErrorCode::NotFound => {}
            Err(e) => return Err(e),
        }
        fs.rename(src, dst).await
    }
}
