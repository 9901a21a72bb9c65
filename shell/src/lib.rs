//! The `alluvium fs` and `alluvium fsadmin` commands, with Alluxio's names (kebab-case aliases
//! too). Each command prints its result to stdout and returns an error whose message names the
//! path and the reason; the binary prints it as `alluvium: <command>: <message>`.

pub mod copy;
pub mod distributed_load;
pub mod format;
pub mod glob;
pub mod metrics_report;
pub mod out;
pub mod progress;
pub mod usage;

mod admin;
mod commands;
mod consistency;

use clap::{Args, Subcommand, ValueEnum};

use alluvium_common::{Config, Result};

/// Options shared by commands that create files.
#[derive(Debug, Clone, Args, Default)]
pub struct WriteArgs {
    /// Write type: MUST_CACHE, CACHE_THROUGH, THROUGH or ASYNC_THROUGH (default: client.write_type).
    #[arg(long = "write-type", short = 'w', value_name = "TYPE")]
    pub write_type: Option<String>,
    /// Block size of new files, e.g. 64MiB (default: client.block_size or the master's).
    #[arg(long = "block-size", value_name = "SIZE")]
    pub block_size: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TtlActionArg {
    Delete,
    Free,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ReportCategory {
    #[default]
    Summary,
    Capacity,
    Ufs,
    Metrics,
}

#[derive(Debug, Clone, Subcommand)]
pub enum FsCommand {
    /// List a directory (or show a file): mode, owner, group, size, persistence, time, in-memory %.
    #[command(name = "ls", disable_help_flag = true)]
    Ls {
        /// List subdirectories recursively.
        #[arg(short = 'R')]
        recursive: bool,
        /// Human-readable sizes.
        #[arg(short = 'h')]
        human: bool,
        /// Only pinned files.
        #[arg(short = 'p')]
        pinned: bool,
        #[arg(long)]
        json: bool,
        #[arg(long, action = clap::ArgAction::Help, help = "Print help")]
        help: Option<bool>,
        #[arg(default_value = "/")]
        paths: Vec<String>,
    },
    /// Create directories.
    #[command(name = "mkdir")]
    Mkdir {
        /// Create parents as needed; no error if it exists.
        #[arg(short = 'p')]
        parents: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Create empty files.
    #[command(name = "touch")]
    Touch {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Print files to stdout.
    #[command(name = "cat")]
    Cat {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Print the first bytes of a file.
    #[command(name = "head")]
    Head {
        /// Bytes to print.
        #[arg(short = 'c', default_value = "1024", value_name = "N")]
        bytes: String,
        path: String,
    },
    /// Print the last bytes of a file.
    #[command(name = "tail")]
    Tail {
        #[arg(short = 'c', default_value = "1024", value_name = "N")]
        bytes: String,
        path: String,
    },
    /// Remove files or directories.
    #[command(name = "rm")]
    Rm {
        #[arg(short = 'R', short_alias = 'r')]
        recursive: bool,
        /// Remove from Alluvium only, keep the UFS copy.
        #[arg(long = "alluvium-only", alias = "alluvium_only", alias = "alluxioOnly")]
        alluvium_only: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Rename or move.
    #[command(name = "mv")]
    Mv { src: String, dst: String },
    /// Copy inside the namespace, or from/to the local file system with a file:// prefix.
    #[command(name = "cp")]
    Cp {
        #[arg(short = 'R', short_alias = 'r')]
        recursive: bool,
        #[command(flatten)]
        write: WriteArgs,
        src: String,
        dst: String,
    },
    /// Copy a local file or directory into the namespace.
    #[command(name = "copyFromLocal", alias = "copy-from-local", alias = "put")]
    CopyFromLocal {
        #[command(flatten)]
        write: WriteArgs,
        src: String,
        dst: String,
    },
    /// Copy a file or directory to the local file system.
    #[command(name = "copyToLocal", alias = "copy-to-local", alias = "get")]
    CopyToLocal { src: String, dst: String },
    /// Show the status of paths.
    #[command(name = "stat")]
    Stat {
        /// Format with specifiers: %N name, %n path, %z size, %u owner, %g group, %y/%Y mtime,
        /// %b blocks, %a/%A mode, %F type, %i id, %o block size, %p persistence.
        #[arg(short = 'f', value_name = "FORMAT")]
        format: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Space used by files, and how much is cached.
    #[command(name = "du", disable_help_flag = true)]
    Du {
        /// One line per argument.
        #[arg(short = 's')]
        summarize: bool,
        #[arg(short = 'h')]
        human: bool,
        #[arg(long)]
        json: bool,
        #[arg(long, action = clap::ArgAction::Help, help = "Print help")]
        help: Option<bool>,
        #[arg(default_value = "/")]
        paths: Vec<String>,
    },
    /// Keep files in the top tier.
    #[command(name = "pin")]
    Pin {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    #[command(name = "unpin")]
    Unpin {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Drop cached blocks of persisted files.
    #[command(name = "free")]
    Free {
        /// Also free pinned files.
        #[arg(short = 'f', long = "force")]
        force: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Persist files to the UFS and wait until they are.
    #[command(name = "persist")]
    Persist {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Cache files from the UFS into workers.
    #[command(name = "load")]
    Load {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Load a directory tree into the caches of all workers: blocks spread over every worker,
    /// N files at a time, with progress; an interrupted run resumes where it stopped.
    #[command(name = "distributedLoad", alias = "distributed-load")]
    DistributedLoad {
        /// Cached copies of each block, on distinct workers.
        #[arg(long, default_value_t = 1, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=64))]
        replication: u32,
        /// Files loaded at the same time.
        #[arg(long, default_value_t = 4, value_name = "N", alias = "active-jobs",
              value_parser = clap::value_parser!(u32).range(1..=1024))]
        parallelism: u32,
        /// Ignore what an earlier, interrupted run finished and load everything again.
        #[arg(long)]
        restart: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Compare the namespace with the UFS: entries missing on either side, a file in one and a
    /// directory in the other, or changed content. Exits 7 when inconsistencies remain.
    #[command(name = "checkConsistency", alias = "check-consistency")]
    CheckConsistency {
        /// Check the whole tree (default: the path and its direct children).
        #[arg(short = 'R')]
        recursive: bool,
        /// Repair: bring each inconsistent entry in line with the UFS (the source of truth).
        #[arg(short = 'r', long = "repair")]
        repair: bool,
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Mount a UFS at a path; without arguments, print the mount table.
    #[command(name = "mount")]
    Mount {
        #[arg(long = "readonly", alias = "read-only")]
        readonly: bool,
        #[arg(long)]
        shared: bool,
        /// UFS option key=value (repeatable).
        #[arg(long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
        #[arg(requires = "uri")]
        path: Option<String>,
        uri: Option<String>,
    },
    #[command(name = "unmount", alias = "umount")]
    Unmount { path: String },
    /// Where each block of a file is cached.
    #[command(name = "location")]
    Location {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Test a path: exit 0 when true, non-zero otherwise.
    #[command(name = "test")]
    Test {
        /// Is a directory.
        #[arg(short = 'd', group = "check")]
        dir: bool,
        /// Exists.
        #[arg(short = 'e', group = "check")]
        exists: bool,
        /// Is a file.
        #[arg(short = 'f', group = "check")]
        file: bool,
        /// Is not empty (a file with bytes, a directory with entries).
        #[arg(short = 's', group = "check")]
        nonempty: bool,
        /// Is a zero-length file.
        #[arg(short = 'z', group = "check")]
        zero: bool,
        path: String,
    },
    #[command(name = "chmod")]
    Chmod {
        #[arg(short = 'R')]
        recursive: bool,
        /// Octal (755) or symbolic (u+x,go-w).
        mode: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    #[command(name = "chown")]
    Chown {
        #[arg(short = 'R')]
        recursive: bool,
        /// OWNER or OWNER:GROUP.
        owner: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    #[command(name = "chgrp")]
    Chgrp {
        #[arg(short = 'R')]
        recursive: bool,
        group: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Set a time to live (ms, or e.g. 1h30m), counted from creation.
    #[command(name = "setTtl", alias = "set-ttl")]
    SetTtl {
        #[arg(long, value_enum, default_value = "delete")]
        action: TtlActionArg,
        path: String,
        ttl: String,
    },
    #[command(name = "unsetTtl", alias = "unset-ttl")]
    UnsetTtl { path: String },
    /// Number of files and folders and total size under paths.
    #[command(name = "count", disable_help_flag = true)]
    Count {
        #[arg(short = 'h')]
        human: bool,
        #[arg(long)]
        json: bool,
        #[arg(long, action = clap::ArgAction::Help, help = "Print help")]
        help: Option<bool>,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// MD5 of a file's content (same hex as md5sum).
    #[command(name = "checksum")]
    Checksum {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Re-read UFS metadata under a path now.
    #[command(name = "loadMetadata", alias = "load-metadata")]
    LoadMetadata {
        #[arg(short = 'R')]
        recursive: bool,
        /// Accepted for Alluxio's habits: loading always re-reads the UFS.
        #[arg(short = 'F')]
        force: bool,
        path: String,
    },
    #[command(name = "masterInfo", alias = "master-info")]
    MasterInfo {
        #[arg(long)]
        json: bool,
    },
    #[command(name = "getCapacityBytes", alias = "get-capacity-bytes")]
    GetCapacityBytes,
    #[command(name = "getUsedBytes", alias = "get-used-bytes")]
    GetUsedBytes,
}

impl FsCommand {
    /// The command's Alluxio name, for error lines.
    pub fn name(&self) -> &'static str {
        match self {
            FsCommand::Ls { .. } => "ls",
            FsCommand::Mkdir { .. } => "mkdir",
            FsCommand::Touch { .. } => "touch",
            FsCommand::Cat { .. } => "cat",
            FsCommand::Head { .. } => "head",
            FsCommand::Tail { .. } => "tail",
            FsCommand::Rm { .. } => "rm",
            FsCommand::Mv { .. } => "mv",
            FsCommand::Cp { .. } => "cp",
            FsCommand::CopyFromLocal { .. } => "copyFromLocal",
            FsCommand::CopyToLocal { .. } => "copyToLocal",
            FsCommand::Stat { .. } => "stat",
            FsCommand::Du { .. } => "du",
            FsCommand::Pin { .. } => "pin",
            FsCommand::Unpin { .. } => "unpin",
            FsCommand::Free { .. } => "free",
            FsCommand::Persist { .. } => "persist",
            FsCommand::Load { .. } => "load",
            FsCommand::DistributedLoad { .. } => "distributedLoad",
            FsCommand::CheckConsistency { .. } => "checkConsistency",
            FsCommand::Mount { .. } => "mount",
            FsCommand::Unmount { .. } => "unmount",
            FsCommand::Location { .. } => "location",
            FsCommand::Test { .. } => "test",
            FsCommand::Chmod { .. } => "chmod",
            FsCommand::Chown { .. } => "chown",
            FsCommand::Chgrp { .. } => "chgrp",
            FsCommand::SetTtl { .. } => "setTtl",
            FsCommand::UnsetTtl { .. } => "unsetTtl",
            FsCommand::Count { .. } => "count",
            FsCommand::Checksum { .. } => "checksum",
            FsCommand::LoadMetadata { .. } => "loadMetadata",
            FsCommand::MasterInfo { .. } => "masterInfo",
            FsCommand::GetCapacityBytes => "getCapacityBytes",
            FsCommand::GetUsedBytes => "getUsedBytes",
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum FsadminCommand {
    /// Print the cluster: summary (default), capacity per worker and tier, ufs (mount table),
    /// metrics (the master's counters and gauges).
    #[command(name = "report")]
    Report {
        #[arg(value_enum)]
        category: Option<ReportCategory>,
        #[arg(long)]
        json: bool,
    },
}

impl FsadminCommand {
    pub fn name(&self) -> &'static str {
        match self {
            FsadminCommand::Report { .. } => "report",
        }
    }
}

/// Runs one `alluvium fs` command.
pub async fn run_fs(config: &Config, cmd: FsCommand) -> Result<()> {
    let fs = alluvium_client::FileSystem::connect(config).await?;
    commands::run(&fs, cmd).await
}

/// Runs one `alluvium fsadmin` command.
pub async fn run_fsadmin(config: &Config, cmd: FsadminCommand) -> Result<()> {
    let fs = alluvium_client::FileSystem::connect(config).await?;
    match cmd {
        FsadminCommand::Report { category, json } => {
            admin::report(&fs, category.unwrap_or_default(), json).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: FsCommand,
    }

    fn parse(args: &[&str]) -> FsCommand {
        let mut v = vec!["fs"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap().cmd
    }

    #[derive(Parser)]
    struct AdminCli {
        #[command(subcommand)]
        cmd: FsadminCommand,
    }

    #[test]
    fn command_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        AdminCli::command().debug_assert();
        let a = AdminCli::try_parse_from(["fsadmin", "report", "capacity", "--json"]).unwrap();
        match a.cmd {
            FsadminCommand::Report { category, json } => {
                assert_eq!(category, Some(ReportCategory::Capacity));
                assert!(json);
            }
        }
        let a = AdminCli::try_parse_from(["fsadmin", "report"]).unwrap();
        assert_eq!(a.cmd.name(), "report");
        assert!(AdminCli::try_parse_from(["fsadmin", "report", "bogus"]).is_err());
    }

    #[test]
    fn alluxio_names_and_aliases() {
        assert_eq!(
            parse(&["copyFromLocal", "/a", "/b"]).name(),
            "copyFromLocal"
        );
        assert_eq!(
            parse(&["copy-from-local", "/a", "/b"]).name(),
            "copyFromLocal"
        );
        assert_eq!(parse(&["setTtl", "/a", "10s"]).name(), "setTtl");
        assert_eq!(
            parse(&["set-ttl", "--action", "free", "/a", "10s"]).name(),
            "setTtl"
        );
    }

    #[test]
    fn ls_takes_dash_h_as_human() {
        match parse(&["ls", "-R", "-h", "-p", "/x"]) {
            FsCommand::Ls {
                recursive,
                human,
                pinned,
                paths,
                ..
            } => {
                assert!(recursive && human && pinned);
                assert_eq!(paths, vec!["/x"]);
            }
            _ => panic!("not ls"),
        }
        match parse(&["ls"]) {
            FsCommand::Ls { paths, .. } => assert_eq!(paths, vec!["/"]),
            _ => panic!("not ls"),
        }
        match parse(&["du", "-sh", "/x"]) {
            FsCommand::Du {
                summarize, human, ..
            } => assert!(summarize && human),
            _ => panic!("not du"),
        }
    }

    #[test]
    fn flags_parse() {
        match parse(&["rm", "-R", "--alluvium-only", "/a"]) {
            FsCommand::Rm {
                recursive,
                alluvium_only,
                ..
            } => assert!(recursive && alluvium_only),
            _ => panic!(),
        }
        match parse(&[
            "mount",
            "--readonly",
            "--option",
            "a=b",
            "--option",
            "c=d",
            "/m",
            "file:///x",
        ]) {
            FsCommand::Mount {
                readonly,
                options,
                path,
                uri,
                ..
            } => {
                assert!(readonly);
                assert_eq!(options, vec!["a=b", "c=d"]);
                assert_eq!(path.as_deref(), Some("/m"));
                assert_eq!(uri.as_deref(), Some("file:///x"));
            }
            _ => panic!(),
        }
        assert!(matches!(
            parse(&["mount"]),
            FsCommand::Mount { path: None, .. }
        ));
        match parse(&["copyFromLocal", "-w", "CACHE_THROUGH", "/l", "/a"]) {
            FsCommand::CopyFromLocal { write, .. } => {
                assert_eq!(write.write_type.as_deref(), Some("CACHE_THROUGH"))
            }
            _ => panic!(),
        }
        match parse(&["stat", "-f", "%z", "/a"]) {
            FsCommand::Stat { format, .. } => assert_eq!(format.as_deref(), Some("%z")),
            _ => panic!(),
        }
        match parse(&["head", "-c", "10", "/a"]) {
            FsCommand::Head { bytes, .. } => assert_eq!(bytes, "10"),
            _ => panic!(),
        }
        assert!(matches!(
            parse(&["test", "-d", "/a"]),
            FsCommand::Test { dir: true, .. }
        ));
        let mut v = vec!["fs", "test", "-d", "-f", "/a"];
        assert!(Cli::try_parse_from(v.drain(..)).is_err());
    }
}
