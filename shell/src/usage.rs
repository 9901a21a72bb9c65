//! Command-line mistakes (a bad flag, a missing argument, an unknown command) as one line, like
//! every other failure: `alluvium: <command>: <reason> (see '<help command>')`. clap's own report
//! spans several lines with usage text, which scripts and logs cannot match on.

/// Global options that take a value (`--config FILE`): their value is not a command word.
const VALUED_GLOBALS: [&str; 3] = ["--config", "--master", "--log"];

/// Commands whose first word is itself a command (`alluvium fs ls`).
const GROUPS: [&str; 3] = ["fs", "fsadmin", "fuse"];

/// The command words of a command line: `["fs", "ls"]` for `alluvium --master m fs ls -R /`.
pub fn command_words(args: &[String]) -> Vec<String> {
    let mut words = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if VALUED_GLOBALS.contains(&a.as_str()) {
            i += 2;
            continue;
        }
        if a.starts_with('-') {
            i += 1;
            continue;
        }
        words.push(a.clone());
        if words.len() == 2 || !GROUPS.contains(&words[0].as_str()) {
            break;
        }
        i += 1;
    }
    words
}

/// The command to name in the error line and one line of reason for a refused command line.
pub fn one_line(args: &[String], err: &clap::Error) -> (String, String) {
    use clap::error::ErrorKind;
    let words = command_words(args);
    let unknown_command = matches!(
        err.kind(),
        ErrorKind::InvalidSubcommand | ErrorKind::MissingSubcommand
    );
    // An unknown `fs` command is reported against `fs` itself.
    let (command, help) = match words.as_slice() {
        // As the errors of running commands: `fs` ones are named by their command, `fsadmin`
        // and `fuse` ones by the group.
        [group, sub] if group == "fs" && !unknown_command => {
            (sub.clone(), format!("alluvium {group} {sub} --help"))
        }
        [group, sub] if GROUPS.contains(&group.as_str()) && !unknown_command => {
            (group.clone(), format!("alluvium {group} {sub} --help"))
        }
        [group, ..] if GROUPS.contains(&group.as_str()) => {
            (group.clone(), format!("alluvium {group} --help"))
        }
        [cmd, ..] if !unknown_command => (cmd.clone(), format!("alluvium {cmd} --help")),
        _ => ("alluvium".to_string(), "alluvium --help".to_string()),
    };
    // The first paragraph: `required arguments were not provided:` continues on the next lines.
    let rendered = err.to_string();
    let paragraph: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let joined = paragraph.join(" ");
    let reason = joined.strip_prefix("error: ").unwrap_or(&joined);
    let reason = if reason.is_empty() {
        "invalid command line"
    } else {
        reason
    };
    (command, format!("{reason} (see '{help}')"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    #[derive(Parser, Debug)]
    struct Cli {
        #[arg(long, global = true)]
        master: Option<String>,
        #[command(subcommand)]
        cmd: Top,
    }

    #[derive(Subcommand, Debug)]
    enum Top {
        Fs {
            #[command(subcommand)]
            cmd: super::super::FsCommand,
        },
    }

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn line(s: &str) -> (String, String) {
        let a = args(s);
        let e = Cli::try_parse_from(&a).unwrap_err();
        one_line(&a, &e)
    }

    #[test]
    fn words() {
        assert_eq!(
            command_words(&args("alluvium --master m:1 fs ls -R /")),
            vec!["fs", "ls"]
        );
        assert_eq!(
            command_words(&args("alluvium local --ufs /x")),
            vec!["local"]
        );
        assert!(command_words(&args("alluvium")).is_empty());
    }

    #[test]
    fn one_line_each() {
        let (c, m) = line("alluvium fs ls --bogus");
        assert_eq!(c, "ls");
        assert!(
            m.contains("--bogus") && m.ends_with("(see 'alluvium fs ls --help')"),
            "{m}"
        );
        assert!(!m.contains('\n'));
        let (c, m) = line("alluvium --master x fs nosuch /a");
        assert_eq!(c, "fs");
        assert!(m.contains("nosuch"), "{m}");
        let (c, m) = line("alluvium fs distributedLoad --replication 0 /a");
        assert_eq!(c, "distributedLoad");
        assert!(m.contains("replication") || m.contains("0"), "{m}");
        let (c, m) = line("alluvium fs mkdir");
        assert_eq!(c, "mkdir");
        assert!(m.contains("required") && m.contains("<PATHS>"), "{m}");
    }
}
