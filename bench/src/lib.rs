//! `alluvium bench`: each scenario runs several times against an in-process cluster (real master,
//! real worker, real gRPC over loopback, MEM tier in /dev/shm) and is reported next to a baseline
//! of this machine measured in the same run, because shared machines drift while ratios hold.

mod baseline;
mod cluster;
mod report;
mod scenarios;

use std::path::PathBuf;

use alluvium_common::{ByteSize, Result};

pub use report::{Figure, Report};

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
    /// Where to write the JSON report.
    #[arg(long, default_value = "alluvium-bench.json", value_name = "FILE")]
    pub json: PathBuf,
}

/// Runs every scenario, prints the Markdown table and writes the JSON report.
pub async fn run(args: BenchArgs) -> Result<Report> {
    let size = args
        .size
        .map(|s| s.0)
        .unwrap_or(if args.quick { 256 << 20 } else { 1 << 30 });
    let files = args.files.unwrap_or(if args.quick { 1000 } else { 10_000 });
    let runs = args.runs.max(1);
    let cluster = cluster::BenchCluster::start(size).await?;
    let mut report = Report::new(size, runs, files);
    scenarios::sequential(&cluster, &mut report, size, runs).await?;
    scenarios::random_reads(&cluster, &mut report, size, runs).await?;
    scenarios::metadata(&cluster, &mut report, files).await?;
    cluster.shutdown().await?;
    println!("{}", report.markdown());
    report.write_json(&args.json)?;
    eprintln!("JSON report written to {}", args.json.display());
    Ok(report)
}
