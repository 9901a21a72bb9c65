//! `alluvium bench`: each scenario runs several times against an in-process cluster (real master,
//! real worker, real gRPC over loopback, MEM tier in /dev/shm) and is reported next to a baseline
//! of this machine measured in the same run, because shared machines drift while ratios hold.
//!
//! Scenarios (`--scenarios`, default all): `seq` (sequential read and write), `random` (4 KiB
//! random reads), `metadata`, `fuse` (fio through a FUSE mount), `gateway` (S3 and WebHDFS GET),
//! `coldwarm` (a dataset behind a slow S3 UFS, read cold then warm) and `memory` (master and
//! worker RSS, measured on separate `alluvium master` / `alluvium worker` processes).

mod baseline;
mod cluster;
mod delay_proxy;
mod fio;
mod process;
mod procfs;
mod report;
mod s3sign;
mod scenarios;

use std::path::PathBuf;
use std::time::Instant;

use alluvium_common::{ByteSize, Result};

pub use report::{Figure, Report};

/// One scenario of the bench, as named on the command line.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Sequential read (short-circuit, remote) and MUST_CACHE write.
    Seq,
    /// 4 KiB random reads at 1 and 16 threads.
    Random,
    /// Create, get status, list, rename, delete at concurrency 1 and 40.
    Metadata,
    /// fio sequential and random reads through a FUSE mount.
    Fuse,
    /// S3 and WebHDFS gateway GET of the sequential file.
    Gateway,
    /// A dataset in a slow S3 UFS read cold, then warm.
    Coldwarm,
    /// Master RSS per file, worker RSS idle and under 40 readers.
    Memory,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Seq,
        Scenario::Random,
        Scenario::Metadata,
        Scenario::Fuse,
        Scenario::Gateway,
        Scenario::Coldwarm,
        Scenario::Memory,
    ];
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The same scenarios at smaller sizes (well under two minutes).
    #[arg(long)]
    pub quick: bool,
    /// Size of the sequential-I/O file (default 1GiB, quick 256MiB).
    #[arg(long, value_name = "SIZE")]
    pub size: Option<ByteSize>,
    /// Runs per scenario; the report gives median, min and max.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Files for the metadata scenarios (default 10000, quick 1000).
    #[arg(long)]
    pub files: Option<usize>,
    /// Scenarios to run, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub scenarios: Vec<Scenario>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "alluvium-bench.json", value_name = "FILE")]
    pub json: PathBuf,
}

/// Sizes of every scenario, from the flags and `--quick`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub runs: usize,
    /// Bytes of the sequential file (also read by `random`, `fuse` and `gateway`).
    pub size: u64,
    /// Files of the metadata scenarios.
    pub files: usize,
    /// Random reads per thread at 1 thread and at 16 threads.
    pub random_ops: (usize, usize),
    /// Seconds of each fio random-read run.
    pub fio_runtime_s: u64,
    /// Files and bytes of the cold/warm dataset.
    pub dataset_files: usize,
    pub dataset_bytes: u64,
    /// Files the master holds when its RSS is read.
    pub master_files: usize,
    /// Bytes of each of the 40 files the worker serves to 40 readers, and how long they read.
    pub worker_file_bytes: u64,
    pub worker_load_s: u64,
}

impl Plan {
    pub fn from_args(args: &BenchArgs) -> Plan {
        let q = args.quick;
        Plan {
            quick: q,
            runs: args.runs.max(1),
            size: args
                .size
                .map(|s| s.0)
                .unwrap_or(if q { 256 << 20 } else { 1 << 30 }),
            files: args.files.unwrap_or(if q { 1000 } else { 10_000 }),
            random_ops: if q { (10_000, 2_000) } else { (50_000, 10_000) },
            fio_runtime_s: if q { 2 } else { 10 },
            dataset_files: if q { 64 } else { 256 },
            dataset_bytes: if q { 256 << 20 } else { 2 << 30 },
            master_files: if q { 100_000 } else { 1_000_000 },
            worker_file_bytes: if q { 8 << 20 } else { 64 << 20 },
            worker_load_s: if q { 3 } else { 10 },
        }
    }
}

/// Runs the chosen scenarios, prints the Markdown table and writes the JSON report.
pub async fn run(args: BenchArgs) -> Result<Report> {
    let plan = Plan::from_args(&args);
    let chosen: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    let started = Instant::now();
    let mut report = Report::new(&plan);
    let cluster = cluster::BenchCluster::start(cluster::ClusterSpec::for_bench(plan.size)).await?;
    let result = scenarios::run_all(&cluster, &mut report, &plan, &chosen).await;
    let stopped = cluster.shutdown().await;
    // The table and JSON are written even when a scenario failed (its row says why).
    report.elapsed_s = started.elapsed().as_secs_f64();
    println!("{}", report.markdown());
    report.write_json(&args.json)?;
    eprintln!("JSON report written to {}", args.json.display());
    result?;
    stopped?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn scenarios_flag_parses_a_comma_list() {
        let cli = Cli::try_parse_from(["x", "--quick", "--scenarios", "fuse,memory"]).unwrap();
        assert_eq!(cli.bench.scenarios, vec![Scenario::Fuse, Scenario::Memory]);
        let plan = Plan::from_args(&cli.bench);
        assert_eq!(plan.master_files, 100_000);
        assert!(Cli::try_parse_from(["x", "--scenarios", "nope"]).is_err());
        let all = Cli::try_parse_from(["x"]).unwrap();
        assert!(all.bench.scenarios.is_empty());
    }
}
