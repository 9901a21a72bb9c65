//! `alluvium master` / `alluvium worker` as child processes of the bench, so their resident memory
//! is their own (an in-process server shares the bench's heap). The binary is the running one
//! (`alluvium bench`), or `ALLUVIUM_BIN`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alluvium_common::{Config, Error, Result};

/// The `alluvium` binary: `ALLUVIUM_BIN`, else this program when it is `alluvium`.
pub fn alluvium_exe() -> Result<PathBuf> {
    let exe = match std::env::var_os("ALLUVIUM_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .map_err(|e| Error::internal(format!("cannot find this program: {e}")))?,
    };
    let out = Command::new(&exe)
        .arg("--version")
        .output()
        .map_err(|e| Error::internal(format!("cannot run {}: {e}", exe.display())))?;
    if !String::from_utf8_lossy(&out.stdout).starts_with("alluvium ") {
        return Err(Error::failed_precondition(format!(
            "{} is not the alluvium binary (set ALLUVIUM_BIN to it)",
            exe.display()
        )));
    }
    Ok(exe)
}

/// A loopback port free right now (the OS picks it; the child binds it a moment later).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::unavailable(format!("cannot find a free port: {e}")))?;
    Ok(l.local_addr()?.port())
}

/// Writes `config` as the TOML file a child reads with `--config`.
pub fn write_config(config: &Config, path: &Path) -> Result<()> {
    let text = toml::to_string(config)
        .map_err(|e| Error::internal(format!("cannot write the config as TOML: {e}")))?;
    std::fs::write(path, text)
        .map_err(|e| Error::from(e).context(format!("writing {}", path.display())))
}

/// A running `alluvium <role>`; stopped (SIGTERM, then SIGKILL) on [`ServerProcess::stop`] or drop.
pub struct ServerProcess {
    role: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `exe <role> --config <config>`, logging to `log`.
    pub fn spawn(exe: &Path, role: &'static str, config: &Path, log: &Path) -> Result<Self> {
        let out = std::fs::File::create(log)
            .map_err(|e| Error::from(e).context(format!("creating {}", log.display())))?;
        let err = out.try_clone()?;
        let child = Command::new(exe)
            .arg(role)
            .arg("--config")
            .arg(config)
            .env("ALLUVIUM_LOG", "warn")
            // The config file says everything; the bench's own environment must not override it.
            .env_remove("ALLUVIUM_CONFIG")
            .env_remove("ALLUVIUM_MASTER")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::internal(format!("cannot start alluvium {role}: {e}")))?;
        Ok(ServerProcess {
            role,
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// An error (with the end of its log) when the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(Error::internal(format!(
                "alluvium {} was stopped",
                self.role
            )));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::unavailable(format!(
                "alluvium {} exited ({status}): {}",
                self.role,
                log_tail(&self.log)
            ))),
            Err(e) => Err(Error::internal(format!(
                "cannot check alluvium {}: {e}",
                self.role
            ))),
        }
    }

    /// SIGTERM, up to 15 s for a clean shutdown, then SIGKILL.
    pub fn stop(mut self) -> Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Ok(Some(_)) = child.try_wait() {
            return Ok(());
        }
        let pid = child.id() as libc::pid_t;
        // SAFETY: signalling our own child, which has not been reaped (try_wait said running).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(Error::internal(format!(
            "alluvium {} did not stop within 15 s of SIGTERM and was killed",
            self.role
        )))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last lines of a child's log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        return format!("no output (log {})", path.display());
    }
    let mut lines = lines;
    lines.reverse();
    format!("{} (log {})", lines.join(" | "), path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_toml() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.master.rpc_port = 4321;
        c.master.metastore_dir = dir.path().join("m");
        let p = dir.path().join("c.toml");
        write_config(&c, &p).unwrap();
        let back = Config::load_with_env(Some(&p), Vec::<(String, String)>::new()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn ports_are_free() {
        let p = free_port().unwrap();
        assert!(std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
    }
}
