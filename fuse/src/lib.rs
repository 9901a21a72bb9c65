//! The FUSE mount: any program reads and writes Alluvium like a local folder.
//!
//! - [`run_fuse`] serves `alluvium fuse mount|unmount` (foreground until unmounted, SIGTERM or
//!   SIGINT; `--daemon` re-runs the same command detached and returns once the mount is up).
//! - [`mount_background`] is the library entry point (the CSI driver's): it mounts and serves on
//!   background threads; the returned [`FuseMountHandle`] unmounts on drop.
//!
//! Semantics: files are write-once. Creating a file and writing it sequentially, then closing it,
//! gives a complete file (completed when `close` returns). Opening an existing file for writing
//! works only with `O_TRUNC` (or when it is empty); `O_APPEND` to a non-empty file and writes at
//! other offsets fail with `EOPNOTSUPP`, never by corrupting data. Truncation only to 0.
//! Permissions are checked by the master as the calling user (its uid's name).
//!
//! The kernel connection uses fuser's pure-Rust mount (mount(2), as root) and serves requests
//! on `threads=` threads (fuser's multi-threaded session).

mod errno;
mod filesystem;
mod handles;
mod inodes;
pub mod mount_table;
mod options;
mod users;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alluvium_common::path::normalize;
use alluvium_common::{Config, Error, Result};
use fuser::{MountOption, SessionACL};

pub use errno::errno_of;
pub use options::FuseOptions;

use filesystem::AlluviumFuse;
use mount_table::umount;
use users::Users;

/// `alluvium fuse ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum FuseCommand {
    /// Mount an Alluvium directory (ALLUVIUM_PATH) at a local directory (MOUNTPOINT)
    Mount {
        /// Alluvium directory shown at the mount point (e.g. `/` or `/datasets`).
        alluvium_path: String,
        /// Local empty directory to mount on.
        mountpoint: PathBuf,
        /// Mount options, comma-separated or repeated: ro, allow_other, allow_root,
        /// attr_timeout=1s, entry_timeout=1s, kernel_cache|no_kernel_cache, direct_io,
        /// max_readahead=1MiB, threads=4, write_type=CACHE_THROUGH, read_type=CACHE, retry=15s,
        /// fsname=NAME.
        #[arg(short = 'o')]
        options: Vec<String>,
        /// Run in the background; returns once the mount is ready.
        #[arg(long)]
        daemon: bool,
    },
    /// Unmount a FUSE mount point
    Unmount { mountpoint: PathBuf },
}

/// Runs a `fuse` command. A foreground mount returns after it is unmounted (`alluvium fuse
/// unmount`, `umount`) or on SIGTERM/SIGINT, which unmount it cleanly first.
pub async fn run_fuse(config: &Config, cmd: FuseCommand) -> Result<()> {
    match cmd {
        FuseCommand::Unmount { mountpoint } => {
            tokio::task::spawn_blocking(move || unmount_path(&mountpoint))
                .await
                .map_err(|e| Error::internal(format!("unmount task failed: {e}")))?
        }
        FuseCommand::Mount {
            alluvium_path,
            mountpoint,
            options,
            daemon,
        } => {
            let opts = FuseOptions::parse(&options)?;
            if daemon {
                return spawn_daemon(&mountpoint);
            }
            let config = config.clone();
            let mp = mountpoint.clone();
            let mut handle = tokio::task::spawn_blocking(move || {
                mount_background(&config, &alluvium_path, &mp, &opts)
            })
            .await
            .map_err(|e| Error::internal(format!("mount task failed: {e}")))??;
            eprintln!(
                "mounted {} at {} (stop with Ctrl-C, SIGTERM or `alluvium fuse unmount {}`)",
                handle.alluvium_path,
                mountpoint.display(),
                mountpoint.display()
            );
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .map_err(|e| Error::internal(format!("cannot watch SIGTERM: {e}")))?;
            tokio::select! {
                _ = handle.ended() => {
                    tracing::info!(mountpoint = %mountpoint.display(), "fuse: unmounted");
                    return Ok(());
                }
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!(mountpoint = %mountpoint.display(), "fuse: signal received, unmounting");
            tokio::task::spawn_blocking(move || handle.unmount_for_exit())
                .await
                .map_err(|e| Error::internal(format!("unmount task failed: {e}")))?
        }
    }
}

/// A live mount. Unmounts on drop (lazily when busy) and on [`FuseMountHandle::unmount`].
pub struct FuseMountHandle {
    mountpoint: PathBuf,
    alluvium_path: String,
    session: Option<fuser::BackgroundSession>,
    ended: Option<tokio::sync::oneshot::Receiver<()>>,
    /// The runtime serving requests when the caller had no multi-threaded one.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for FuseMountHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FuseMountHandle")
            .field("mountpoint", &self.mountpoint)
            .field("alluvium_path", &self.alluvium_path)
            .finish()
    }
}

/// Mounts `alluvium_path` at `mountpoint` and serves it on background threads.
///
/// Requests run on the current tokio runtime when it is multi-threaded, else on a runtime the
/// handle owns. Fails when the path is not an Alluvium directory or the mount point is unusable.
pub fn mount_background(
    config: &Config,
    alluvium_path: &str,
    mountpoint: &Path,
    opts: &FuseOptions,
) -> Result<FuseMountHandle> {
    let root = normalize(alluvium_path)?;
    let (rt, runtime) = match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => (h, None),
        _ => {
            let owned = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("alluvium-fuse-rt")
                .enable_all()
                .build()
                .map_err(|e| Error::internal(format!("cannot start the fuse runtime: {e}")))?;
            (owned.handle().clone(), Some(owned))
        }
    };
    let meta = std::fs::metadata(mountpoint).map_err(|e| {
        Error::invalid_argument(format!(
            "mount point {}: {e} (create an empty directory first)",
            mountpoint.display()
        ))
    })?;
    if !meta.is_dir() {
        return Err(Error::invalid_argument(format!(
            "mount point {}: not a directory",
            mountpoint.display()
        )));
    }

    let mut config = config.clone();
    // One retry bound for the whole mount: the master client's and the read path's.
    config.client.retry_duration = opts.retry;
    let users = {
        let config = config.clone();
        let root = root.clone();
        block_on_elsewhere(&rt, async move {
            let own = alluvium_client::FileSystem::connect(&config).await?;
            let info = own.get_status(&root).await?;
            if !info.is_folder {
                return Err(Error::invalid_argument(format!(
                    "{root}: not a directory (a FUSE mount shows a directory)"
                )));
            }
            Ok(Users::new(config, own))
        })??
    };

    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let fs = AlluviumFuse::new(rt, opts.clone(), users, &root, ended_tx);
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = mount_options(opts, &root);
    fuse_config.acl = if opts.allow_other {
        SessionACL::All
    } else if opts.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    fuse_config.n_threads = Some(opts.threads);
    fuse_config.clone_fd = opts.threads > 1;
    let session = fuser::Session::new(fs, mountpoint, &fuse_config)
        .and_then(fuser::Session::spawn)
        .map_err(|e| {
            Error::unavailable(format!(
                "cannot mount {root} at {}: {e} (needs /dev/fuse and root, or fusermount3)",
                mountpoint.display()
            ))
        })?;
    tracing::info!(root = %root, mountpoint = %mountpoint.display(), threads = opts.threads, read_only = opts.read_only, "fuse: mounted");
    Ok(FuseMountHandle {
        mountpoint: mountpoint.to_path_buf(),
        alluvium_path: root,
        session: Some(session),
        ended: Some(ended_rx),
        runtime,
    })
}

fn mount_options(opts: &FuseOptions, root: &str) -> Vec<MountOption> {
    let mut v = vec![
        MountOption::FSName(
            opts.fsname
                .clone()
                .unwrap_or_else(|| format!("alluvium:{root}")),
        ),
        MountOption::Subtype("alluvium".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    v.push(if opts.read_only {
        MountOption::RO
    } else {
        MountOption::RW
    });
    v
}

/// Runs a future on `rt` from a thread outside it (the caller may be one of its workers, where
/// `block_on` is not allowed).
fn block_on_elsewhere<F>(rt: &tokio::runtime::Handle, fut: F) -> Result<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(fut))
            .join()
            .map_err(|_| Error::internal("fuse start-up thread panicked"))
    })
}

impl FuseMountHandle {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    pub fn alluvium_path(&self) -> &str {
        &self.alluvium_path
    }

    /// Resolves when the session ends (unmounted from elsewhere, or the connection aborted).
    pub async fn ended(&mut self) {
        if let Some(rx) = self.ended.as_mut() {
            let _ = rx.await;
            self.ended = None;
        }
    }

    /// Whether the session still serves requests.
    pub fn is_active(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
    }

    /// Unmounts and waits for the serving threads. Fails (and stays mounted) when busy.
    pub fn unmount(mut self) -> Result<()> {
        if self.is_active() {
            umount(&self.mountpoint, 0)?;
        }
        self.join();
        Ok(())
    }

    /// Unmount on the way out: when busy, detach it lazily (programs holding files see errors
    /// from then on) and wait a little for the session to end.
    fn unmount_for_exit(mut self) -> Result<()> {
        if self.is_active() {
            if let Err(e) = umount(&self.mountpoint, 0) {
                tracing::warn!(mountpoint = %self.mountpoint.display(), error = %e, "fuse: busy, detaching lazily");
                umount(&self.mountpoint, libc::MNT_DETACH)?;
                let deadline = Instant::now() + Duration::from_secs(10);
                while self.is_active() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if self.is_active() {
                    // Leave the threads; the process is exiting.
                    self.session = None;
                    return Ok(());
                }
            }
        }
        self.join();
        Ok(())
    }

    fn join(&mut self) {
        if let Some(s) = self.session.take() {
            if let Err(e) = s.join() {
                tracing::warn!(mountpoint = %self.mountpoint.display(), error = %e, "fuse: session ended with an error");
            }
        }
    }
}

impl Drop for FuseMountHandle {
    fn drop(&mut self) {
        if self.is_active() {
            if umount(&self.mountpoint, 0).is_ok() {
                self.join();
            } else if let Err(e) = umount(&self.mountpoint, libc::MNT_DETACH) {
                tracing::warn!(mountpoint = %self.mountpoint.display(), error = %e, "fuse: cannot unmount");
            }
        }
        // A detached session's threads end with their last user; do not wait for them here.
        self.session = None;
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// `alluvium fuse unmount`: as root umount2(2), otherwise `fusermount3 -u`.
pub fn unmount_path(mountpoint: &Path) -> Result<()> {
    match umount(mountpoint, 0) {
        Err(e) if e.code == alluvium_common::ErrorCode::PermissionDenied => {
            let status = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(mountpoint)
                .status()
                .map_err(|_| e.clone())?;
            if status.success() {
                Ok(())
            } else {
                Err(e)
            }
        }
        other => other,
    }
}

/// Whether `path` is a FUSE mount point of this mount namespace.
pub fn is_fuse_mount(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    let want = path.as_os_str().as_bytes();
    mount_table::entries()
        .iter()
        .any(|e| e.fs_type.starts_with("fuse") && e.mount_point == want)
}

/// `--daemon`: runs this same command line again without `--daemon`, detached from the terminal
/// (own process group, no stdin, output to a log file), and returns once the mount is up.
fn spawn_daemon(mountpoint: &Path) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()
        .map_err(|e| Error::internal(format!("cannot find this program to re-run it: {e}")))?;
    let args: Vec<_> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--daemon")
        .collect();
    let log_path = std::env::temp_dir().join(format!(
        "alluvium-fuse-{}.log",
        mountpoint
            .to_string_lossy()
            .trim_matches('/')
            .replace('/', "_")
    ));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::internal(format!("cannot open {}: {e}", log_path.display())))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::internal(format!("cannot open {}: {e}", log_path.display())))?;
    let mut child = std::process::Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::internal(format!("cannot start the fuse daemon: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if is_fuse_mount(mountpoint) {
            eprintln!(
                "mounted at {} (daemon pid {}, log {})",
                mountpoint.display(),
                child.id(),
                log_path.display()
            );
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::unavailable(format!(
                "the fuse daemon exited ({status}) before mounting {}; see {}",
                mountpoint.display(),
                log_path.display()
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::unavailable(format!(
                "the fuse daemon (pid {}) did not mount {} within 60s; see {}",
                child.id(),
                mountpoint.display(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_a_mount() {
        assert!(!is_fuse_mount(Path::new("/")));
        assert!(!is_fuse_mount(Path::new("/no/such/dir")));
        let e = umount(Path::new("/no/such/dir"), 0).unwrap_err();
        assert_eq!(e.code, alluvium_common::ErrorCode::NotFound);
    }

    #[test]
    fn options_become_mount_options() {
        let o = FuseOptions::parse(&["ro"]).unwrap();
        let m = mount_options(&o, "/data");
        assert!(m.contains(&MountOption::RO));
        assert!(m.contains(&MountOption::FSName("alluvium:/data".into())));
    }
}
