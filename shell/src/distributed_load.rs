//! `distributedLoad`: loads a directory tree from the UFS into the caches of all workers.
//!
//! - Blocks are spread over every live worker (each block goes to the workers that received the
//!   fewest bytes so far in this run), with `--replication N` copies on distinct workers.
//! - `--parallelism N` files are loaded at the same time; each block is read from the UFS by the
//!   worker that caches it (`CacheBlock`), so the data never passes through this process.
//! - Progress shows files, bytes, rate and ETA (a bar on a terminal, plain lines otherwise).
//! - The run is resumable: every finished file is appended to a state file under
//!   `~/.cache/alluvium/distributed-load/` (keyed by master, path and replication). Re-running
//!   after an interruption or a failure skips files recorded there whose length and modification
//!   time are unchanged; files already cached with enough copies count as done too. The state file
//!   is removed once a run finishes without failures, so a later run checks the cache afresh.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use alluvium_common::{ByteSize, Error, ErrorCode, Result};
use alluvium_proto::{self as pb, FileInfo, WorkerInfo};
use futures::StreamExt;
use md5::{Digest, Md5};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::out;
use super::progress::Progress;
use alluvium_client::FileSystem;

/// What the user asked for.
#[derive(Debug, Clone, Copy)]
pub struct LoadArgs {
    pub replication: u32,
    pub parallelism: usize,
    /// Forget the state of an earlier run.
    pub restart: bool,
}

/// The first line of a state file: which load it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    master: String,
    path: String,
    replication: u32,
}

/// A finished file, as recorded in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Done {
    path: String,
    length: u64,
    mtime: i64,
}

impl Done {
    fn of(f: &FileInfo) -> Self {
        Done {
            path: f.path.clone(),
            length: f.length,
            mtime: f.last_modification_time_ms,
        }
    }
}

/// Where state files live: `$XDG_CACHE_HOME/alluvium/distributed-load`, or `~/.cache/...`.
pub fn state_dir() -> Result<PathBuf> {
    let base =
        match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                Some(h) => PathBuf::from(h).join(".cache"),
                None => return Err(Error::failed_precondition(
                    "neither XDG_CACHE_HOME nor HOME is set: nowhere to keep the resumable state",
                )),
            },
        };
    Ok(base.join("alluvium").join("distributed-load"))
}

/// The state file of one load: named by a hash of what identifies it.
pub fn state_file(dir: &Path, master: &str, path: &str, replication: u32) -> PathBuf {
    let digest = Md5::digest(format!("{master}\n{path}\n{replication}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}.jsonl"))
}

/// Reads the finished files of an earlier run. A torn last line (the process was killed while
/// writing it) and a file of another load are ignored.
fn read_state(file: &Path, header: &Header) -> Result<HashSet<Done>> {
    let f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(super::copy::local_err(file, e)),
    };
    let mut lines = std::io::BufReader::new(f).lines();
    let first = match lines.next() {
        Some(Ok(l)) => l,
        _ => return Ok(HashSet::new()),
    };
    if serde_json::from_str::<Header>(&first).ok().as_ref() != Some(header) {
        return Ok(HashSet::new());
    }
    Ok(lines
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str::<Done>(&l).ok())
        .collect())
}

/// Appends finished files to the state file, one JSON line each, as they finish.
struct StateWriter {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl StateWriter {
    fn open(path: &Path, header: &Header, keep: bool) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| super::copy::local_err(dir, e))?;
        }
        let err = |e| super::copy::local_err(path, e);
        let mut opts = std::fs::OpenOptions::new();
        if keep {
            opts.read(true).append(true).create(true);
        } else {
            opts.write(true).create(true).truncate(true);
        }
        let mut file = opts.open(path).map_err(err)?;
        let len = file.metadata().map_err(err)?.len();
        if len == 0 {
            let line = serde_json::to_string(header).unwrap_or_default();
            writeln!(file, "{line}").map_err(err)?;
        } else {
            // A torn last line (killed mid-write) is closed, so the next record starts clean.
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1)).map_err(err)?;
            file.read_exact(&mut last).map_err(err)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(err)?;
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    fn record(&self, d: &Done) -> Result<()> {
        let line = serde_json::to_string(d).unwrap_or_default();
        // One write per line, so a kill leaves at most one torn line at the end.
        self.file
            .lock()
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| super::copy::local_err(&self.path, e))
    }
}

/// Chooses workers for each block: the ones that received the fewest bytes so far.
struct Planner {
    workers: Vec<WorkerInfo>,
    assigned: Mutex<Vec<(u64, u64)>>,
    failed: Mutex<HashSet<u64>>,
}

impl Planner {
    fn new(workers: Vec<WorkerInfo>) -> Self {
        let n = workers.len();
        Self {
            workers,
            assigned: Mutex::new(vec![(0, 0); n]),
            failed: Mutex::new(HashSet::new()),
        }
    }

    /// Up to `n` workers not in `exclude`, least loaded first; counts `len` bytes on each.
    fn pick(&self, n: usize, exclude: &[u64], len: u64) -> Vec<WorkerInfo> {
        let failed = self.failed.lock().clone();
        let mut assigned = self.assigned.lock();
        let mut idx: Vec<usize> = (0..self.workers.len())
            .filter(|&i| {
                let id = self.workers[i].id;
                !exclude.contains(&id) && !failed.contains(&id)
            })
            .collect();
        idx.sort_by_key(|&i| (assigned[i].0, self.workers[i].id));
        idx.truncate(n);
        for &i in &idx {
            assigned[i].0 += len;
            assigned[i].1 += 1;
        }
        idx.into_iter().map(|i| self.workers[i].clone()).collect()
    }

    fn fail(&self, id: u64, len: u64) {
        self.failed.lock().insert(id);
        if let Some(i) = self.workers.iter().position(|w| w.id == id) {
            let mut a = self.assigned.lock();
            a[i].0 = a[i].0.saturating_sub(len);
            a[i].1 = a[i].1.saturating_sub(1);
        }
    }

    /// `host:port: N blocks` for every worker that received blocks.
    fn spread(&self) -> Vec<String> {
        let a = self.assigned.lock();
        self.workers
            .iter()
            .zip(a.iter())
            .filter(|(_, (_, blocks))| *blocks > 0)
            .map(|(w, (bytes, blocks))| {
                format!(
                    "{}: {blocks} blocks ({})",
                    worker_name(w),
                    ByteSize::human(*bytes)
                )
            })
            .collect()
    }
}

fn worker_name(w: &WorkerInfo) -> String {
    w.address
        .as_ref()
        .map(|a| format!("{}:{}", a.host, a.rpc_port))
        .unwrap_or_else(|| format!("worker {}", w.id))
}

/// What loading one file did.
#[derive(Debug, Default, Clone, Copy)]
struct FileOutcome {
    blocks_loaded: u64,
    bytes_loaded: u64,
    /// Blocks with fewer copies than asked, because the file is not in the UFS to copy from.
    under_replicated: u64,
}

/// Runs `distributedLoad` on one path.
pub async fn run(fs: &FileSystem, path: &str, args: LoadArgs) -> Result<()> {
    let root = fs
        .get_status(path)
        .await
        .map_err(|e| alluvium_client::with_path(e, path))?;
    let mut files = Vec::new();
    if root.is_folder {
        fs.list_status_each(&root.path, true, |f| {
            if !f.is_folder {
                files.push(f)
            }
        })
        .await
        .map_err(|e| alluvium_client::with_path(e, &root.path))?;
    } else {
        files.push(root.clone());
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let workers: Vec<WorkerInfo> = fs
        .workers()
        .await?
        .into_iter()
        .filter(|w| w.state == "LIVE" && w.address.is_some())
        .collect();
    if workers.is_empty() {
        return Err(alluvium_client::no_live_worker(&root.path));
    }
    let replication = (args.replication.max(1) as usize).min(workers.len());
    if replication < args.replication as usize {
        out::line(format!(
            "Replication {} asked, but only {} live workers: loading {replication} copies of each block",
            args.replication,
            workers.len()
        ));
    }
    let header = Header {
        master: fs.config().master_address.clone(),
        path: root.path.clone(),
        replication: replication as u32,
    };
    // The state is a convenience: where it cannot be kept (no HOME, a read-only file system in
    // a pod), the load still runs, only without resuming.
    let state_path =
        state_dir().map(|d| state_file(&d, &header.master, &root.path, header.replication));
    let finished = match (&state_path, args.restart) {
        (Ok(p), false) => read_state(p, &header).unwrap_or_default(),
        _ => HashSet::new(),
    };
    let total_files = files.len();
    let (resumed, todo): (Vec<FileInfo>, Vec<FileInfo>) = files
        .into_iter()
        .partition(|f| finished.contains(&Done::of(f)));
    if !resumed.is_empty() {
        out::line(format!(
            "Resuming the load of {}: {} of {total_files} files were loaded by an earlier run",
            root.path,
            resumed.len()
        ));
    }
    let writer = match &state_path {
        Ok(p) => StateWriter::open(p, &header, !args.restart),
        Err(e) => Err(e.clone()),
    };
    let writer = match writer {
        Ok(w) => Some(w),
        Err(e) => {
            out::line(format!(
                "Not keeping a resumable state ({}): an interrupted run will start over",
                e.message
            ));
            None
        }
    };
    let planner = Planner::new(workers);
    let total_bytes: u64 = todo.iter().map(|f| f.length).sum();
    let progress = Progress::with_files("distributedLoad", total_bytes, todo.len() as u64);
    let started = std::time::Instant::now();
    let results: Vec<(String, Result<FileOutcome>)> = futures::stream::iter(todo)
        .map(|f| {
            let (planner, progress, writer) = (&planner, &progress, writer.as_ref());
            async move {
                let r = load_file(fs, &f, replication, planner, progress).await;
                if let (Ok(_), Some(w)) = (&r, writer) {
                    if let Err(e) = w.record(&Done::of(&f)) {
                        tracing::warn!(error = %e, "cannot record a finished file in the load state");
                    }
                }
                progress.file_done();
                let what = match &r {
                    Ok(o) if o.blocks_loaded == 0 => format!(
                        "{} was already cached ({})",
                        f.path,
                        ByteSize::human(f.length)
                    ),
                    Ok(o) => format!(
                        "Loaded {} ({}, {} blocks)",
                        f.path,
                        ByteSize::human(f.length),
                        o.blocks_loaded
                    ),
                    Err(e) => format!("Failed {}: {}", f.path, e.message),
                };
                if progress.is_bar() {
                    progress.println(what);
                } else {
                    progress.println(format!("{what} {}", progress.status()));
                }
                (f.path, r)
            }
        })
        .buffer_unordered(args.parallelism.max(1))
        .collect()
        .await;
    progress.finish();

    let mut loaded_files = 0u64;
    let mut cached_files = 0u64;
    let mut blocks = 0u64;
    let mut bytes = 0u64;
    let mut under = 0u64;
    let mut failures: Vec<(String, Error)> = Vec::new();
    for (p, r) in results {
        match r {
            Ok(o) => {
                if o.blocks_loaded > 0 {
                    loaded_files += 1;
                } else {
                    cached_files += 1;
                }
                blocks += o.blocks_loaded;
                bytes += o.bytes_loaded;
                under += o.under_replicated;
            }
            Err(e) => failures.push((p, e)),
        }
    }
    out::line(format!(
        "distributedLoad {}: {total_files} files: {loaded_files} loaded, {cached_files} already cached, {} done by an earlier run, {} failed; {blocks} blocks ({}) read from the UFS in {} (replication {replication})",
        root.path,
        resumed.len(),
        failures.len(),
        ByteSize::human(bytes),
        humantime::format_duration(std::time::Duration::from_millis(
            started.elapsed().as_millis() as u64
        )),
    ));
    let spread = planner.spread();
    if !spread.is_empty() {
        out::line(format!("Blocks per worker: {}", spread.join(", ")));
    }
    if under > 0 {
        out::line(format!(
            "{under} blocks have fewer than {replication} copies: their files are not persisted, so no UFS copy exists to cache more from"
        ));
    }
    if let Some((p, first)) = failures.first() {
        let resume = match (&state_path, &writer) {
            (Ok(sp), Some(_)) => format!(
                "finished files are recorded in {}, re-run to resume",
                sp.display()
            ),
            _ => "re-run to retry".to_string(),
        };
        return Err(Error::new(
            first.code,
            format!(
                "{}: {} of {total_files} files failed (first: {p}: {}); {resume}",
                root.path,
                failures.len(),
                first
                    .message
                    .strip_prefix(&format!("{p}: "))
                    .unwrap_or(&first.message),
            ),
        ));
    }
    // Done: a later run checks the cache afresh instead of trusting an old record.
    if let (Ok(sp), Some(_)) = (&state_path, &writer) {
        let _ = std::fs::remove_file(sp);
    }
    Ok(())
}

/// Caches every block of one file on `replication` distinct workers.
async fn load_file(
    fs: &FileSystem,
    f: &FileInfo,
    replication: usize,
    planner: &Planner,
    progress: &Progress,
) -> Result<FileOutcome> {
    let info = fs
        .get_status(&f.path)
        .await
        .map_err(|e| alluvium_client::with_path(e, &f.path))?;
    if !info.completed {
        return Err(Error::failed_precondition(format!(
            "{}: still being written",
            info.path
        )));
    }
    let mut outcome = FileOutcome::default();
    for b in &info.blocks {
        let mut have: Vec<u64> = b.locations.iter().map(|l| l.worker_id).collect();
        let need = replication.saturating_sub(have.len());
        if need == 0 {
            progress.inc(b.length);
            continue;
        }
        if !info.persisted {
            if have.is_empty() {
                return Err(Error::unavailable(format!(
                    "{}: block {} is lost (no worker holds it and the file is not persisted)",
                    info.path, b.block_id
                )));
            }
            outcome.under_replicated += 1;
            progress.inc(b.length);
            continue;
        }
        let mut copies = 0;
        let mut last_err: Option<Error> = None;
        while copies < need {
            let targets = planner.pick(need - copies, &have, b.length);
            if targets.is_empty() {
                break;
            }
            let tries = targets.iter().map(|w| cache_on(fs, &info, b, w));
            let results = futures::future::join_all(tries).await;
            for (w, r) in targets.iter().zip(results) {
                have.push(w.id);
                match r {
                    Ok(loaded) => {
                        copies += 1;
                        if loaded {
                            outcome.blocks_loaded += 1;
                            outcome.bytes_loaded += b.length;
                        }
                    }
                    Err(e) if e.code == ErrorCode::Unavailable => {
                        // That worker is gone: the next pick avoids it.
                        planner.fail(w.id, b.length);
                        last_err = Some(e);
                    }
                    Err(e) => return Err(alluvium_client::with_path(e, &info.path)),
                }
            }
        }
        if copies == 0 {
            return Err(last_err
                .map(|e| alluvium_client::with_path(e, &info.path))
                .unwrap_or_else(|| alluvium_client::no_live_worker(&info.path)));
        }
        progress.inc(b.length);
    }
    Ok(outcome)
}

/// Asks worker `w` to read block `b` from the UFS into its cache. True when it was read.
async fn cache_on(
    fs: &FileSystem,
    f: &FileInfo,
    b: &pb::BlockInfo,
    w: &WorkerInfo,
) -> Result<bool> {
    fs.cache_block_on(w, f, b)
        .await
        .map_err(|e| e.context(format!("worker {}", worker_name(w))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: u64) -> WorkerInfo {
        WorkerInfo {
            id,
            state: "LIVE".into(),
            address: Some(pb::WorkerNetAddress {
                host: "h".into(),
                rpc_port: id as u32,
                http_port: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn blocks_spread_over_every_worker() {
        let p = Planner::new(vec![worker(1), worker(2), worker(3)]);
        let mut count = [0u32; 4];
        for _ in 0..9 {
            for w in p.pick(1, &[], 10) {
                count[w.id as usize] += 1;
            }
        }
        assert_eq!(&count[1..], &[3, 3, 3]);
        // Replicas land on distinct workers, never on one that holds the block already.
        let two = p.pick(2, &[1], 10);
        assert_eq!(two.len(), 2);
        assert!(two.iter().all(|w| w.id != 1));
        assert_ne!(two[0].id, two[1].id);
        // A failed worker is not picked again.
        p.fail(2, 10);
        assert!(p.pick(3, &[], 10).iter().all(|w| w.id != 2));
        assert_eq!(p.spread().len(), 3);
    }

    #[test]
    fn state_survives_a_torn_line_and_ignores_other_loads() {
        let d = tempfile::tempdir().unwrap();
        let header = Header {
            master: "m:1".into(),
            path: "/d".into(),
            replication: 1,
        };
        let file = state_file(d.path(), "m:1", "/d", 1);
        assert_ne!(file, state_file(d.path(), "m:1", "/d", 2));
        assert_ne!(file, state_file(d.path(), "m:2", "/d", 1));
        let w = StateWriter::open(&file, &header, true).unwrap();
        let a = Done {
            path: "/d/a".into(),
            length: 3,
            mtime: 9,
        };
        w.record(&a).unwrap();
        drop(w);
        // A kill in the middle of the next line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(b"{\"path\":\"/d/b\",\"len").unwrap();
        let got = read_state(&file, &header).unwrap();
        assert_eq!(got, HashSet::from([a.clone()]));
        // Appending again keeps what was there.
        let w = StateWriter::open(&file, &header, true).unwrap();
        let b = Done {
            path: "/d/c".into(),
            length: 1,
            mtime: 1,
        };
        w.record(&b).unwrap();
        assert_eq!(
            read_state(&file, &header).unwrap(),
            HashSet::from([a.clone(), b.clone()])
        );
        let other = Header {
            path: "/e".into(),
            ..header.clone()
        };
        assert!(read_state(&file, &other).unwrap().is_empty());
        // Restarting truncates.
        StateWriter::open(&file, &header, false).unwrap();
        assert!(read_state(&file, &header).unwrap().is_empty());
        assert!(read_state(&d.path().join("none"), &header)
            .unwrap()
            .is_empty());
    }
}
