//! `alluvium`: one thin binary over the Alluvium crates. It parses flags, loads the configuration,
//! and hands over to the crate that owns the work.

mod local;
mod logging;
mod servers;

use std::path::PathBuf;
use std::process::ExitCode;

use alluvium_common::{Config, Error};
use alluvium_shell::{FsCommand, FsadminCommand};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "alluvium",
    version,
    about = "Alluvium: a memory-centric distributed storage layer (Alluxio's design, Kubernetes-native)",
    propagate_version = true
)]
struct Cli {
    /// TOML configuration file (also ALLUVIUM_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Master address HOST:PORT (also ALLUVIUM_MASTER; overrides the config file).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    master: Option<String>,
    /// Log filter, e.g. `info` or `alluvium_worker=debug`. Without it: ALLUVIUM_LOG, else
    /// RUST_LOG (ALLUVIUM_LOG wins when both are set). Logs go to stderr, coloured only on a
    /// terminal.
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run master and worker in one process: the embedded default for one machine.
    Local(local::LocalArgs),
    /// Run the master (namespace, block master, web UI on its HTTP port).
    Master,
    /// Run a worker (tiered block cache).
    Worker,
    /// Run the gateways for existing tools: the S3 API and the WebHDFS REST API.
    Proxy,
    /// File system commands, with Alluxio's names (`alluvium fs help`).
    Fs {
        #[command(subcommand)]
        command: FsCommand,
    },
    /// Mount an Alluvium path as a local folder (FUSE): `alluvium fuse mount /data /mnt/data`.
    Fuse {
        #[command(subcommand)]
        command: alluvium_fuse::FuseCommand,
    },
    /// Cluster administration: `alluvium fsadmin report [summary|capacity|ufs]`.
    Fsadmin {
        #[command(subcommand)]
        command: FsadminCommand,
    },
    /// Measure Alluvium against this machine's limits (tmpfs, loopback TCP) in one run.
    Bench(alluvium_bench::BenchArgs),
    /// Run the Kubernetes operator (in a cluster; reconciles Cluster, Tier and Mount resources).
    Operator(alluvium_operator::OperatorArgs),
    /// Print the CustomResourceDefinitions (Tier, Cluster, Mount) as YAML.
    Crds,
    /// Run the CSI driver (csi.alluvium.io): `alluvium csi --endpoint unix:///csi/csi.sock --node-id NODE`.
    Csi(alluvium_csi::CsiArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let is_server = matches!(
        cli.command,
        Command::Local(_)
            | Command::Master
            | Command::Worker
            | Command::Proxy
            | Command::Fuse { .. }
            | Command::Operator(_)
            | Command::Csi(_)
    );
    if let Command::Crds = cli.command {
        print!("{}", alluvium_crds::crds_yaml());
        return ExitCode::SUCCESS;
    }
    logging::init(cli.log.as_deref(), is_server);

    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => return fail("config", &e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail("runtime", &Error::from(e)),
    };
    let (name, result) = runtime.block_on(async move {
        match cli.command {
            Command::Local(args) => ("local", local::run(config, args).await),
            Command::Master => ("master", servers::run_master(config).await),
            Command::Worker => ("worker", servers::run_worker(config).await),
            Command::Proxy => ("proxy", servers::run_proxy(config).await),
            Command::Fs { command } => {
                let name = command.name();
                (name, alluvium_shell::run_fs(&config, command).await)
            }
            Command::Fuse { command } => ("fuse", alluvium_fuse::run_fuse(&config, command).await),
            Command::Fsadmin { command } => (
                "fsadmin",
                alluvium_shell::run_fsadmin(&config, command).await,
            ),
            Command::Bench(args) => ("bench", alluvium_bench::run(args).await.map(|_| ())),
            Command::Operator(args) => (
                "operator",
                alluvium_operator::run(args)
                    .await
                    .map_err(|e| Error::internal(format!("{e:#}"))),
            ),
            Command::Csi(args) => ("csi", alluvium_csi::run(config, args).await),
            // Printed above, before a runtime was needed.
            Command::Crds => ("crds", Ok(())),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(name, &e),
    }
}

fn load_config(cli: &Cli) -> alluvium_common::Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(m) = &cli.master {
        config.master_address = m.clone();
    }
    Ok(config)
}

/// A command line clap refused: help and version print as usual; a mistake is one line (exit 2,
/// as for any invalid argument).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let args: Vec<String> = std::env::args().collect();
    let (command, reason) = alluvium_shell::usage::one_line(&args, &e);
    eprintln!("alluvium: {command}: {reason}");
    ExitCode::from(2)
}

/// Every failure is one line on stderr and a non-zero exit code that says what kind it was.
fn fail(command: &str, e: &Error) -> ExitCode {
    eprintln!("alluvium: {command}: {}", e.message);
    ExitCode::from(e.code.exit_code().clamp(1, 255) as u8)
}
