//! `alluvium fs` namespace and data commands, run as the real binary against a real master and
//! worker: every command with its main flags, its output, and its failures (missing path, bad
//! flag: one line each with the documented exit code).

mod support;

use std::process::Output;

use support::*;

/// Asserts success and returns stdout.
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}; stderr: {}; stdout: {}",
        out.status.code(),
        stderr(&out),
        stdout(&out)
    );
    stdout(&out)
}

fn one_line_error(out: &Output, code: i32, command: &str, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with(&format!("alluvium: {command}: ")), "{err}");
    assert!(err.contains(needle), "{err} should mention {needle}");
}

fn json(out: Output) -> serde_json::Value {
    let s = ok(out);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn namespace_commands_with_their_flags() {
    let c = Cluster::start(ClusterOptions::default());
    let local = c.dir.path().join("local");
    std::fs::create_dir_all(local.join("sub")).unwrap();
    let big = data(2 * 1024 * 1024 + 17, 7);
    std::fs::write(local.join("big.bin"), &big).unwrap();
    std::fs::write(local.join("sub/a.txt"), "alpha\n").unwrap();
    std::fs::write(local.join("sub/b.txt"), "bravo\n").unwrap();
    let l = local.to_str().unwrap();

    // mkdir -p, touch, copyFromLocal of a tree.
    assert!(ok(c.fs(&["mkdir", "-p", "/d/e/f"])).contains("Successfully created directory /d/e/f"));
    ok(c.fs(&["mkdir", "-p", "/d/e/f"]));
    one_line_error(&c.fs(&["mkdir", "/d/e/f"]), 6, "mkdir", "/d/e/f");
    one_line_error(&c.fs(&["mkdir", "/x/y"]), 3, "mkdir", "/x/y");
    assert!(ok(c.fs(&["touch", "/d/empty"])).contains("/d/empty has been created"));
    ok(c.fs(&["copyFromLocal", "-w", "CACHE_THROUGH", l, "/d/in"]));

    // ls: Alluxio's columns, -R, -h, -p, --json, wildcards.
    let ls = ok(c.fs(&["ls", "/d/in"]));
    let line = ls
        .lines()
        .find(|l| l.ends_with("/d/in/big.bin"))
        .expect(&ls);
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[0], "-rw-r--r--", "{line}");
    assert_eq!(cols[3], big.len().to_string(), "{line}");
    assert!(cols[4].ends_with("PERSISTED"), "{line}");
    assert_eq!(cols[7], "100%", "{line}");
    assert!(ls.contains("DIR /d/in/sub"), "{ls}");
    assert!(!ls.contains("/d/in/sub/a.txt"), "not recursive: {ls}");
    assert!(ok(c.fs(&["ls", "-R", "/d/in"])).contains("/d/in/sub/a.txt"));
    assert!(ok(c.fs(&["ls", "-h", "/d/in/big.bin"])).contains("2.0MiB"));
    assert_eq!(ok(c.fs(&["ls", "-p", "/d/in"])), "");
    let j = json(c.fs(&["ls", "--json", "/d/in/sub"]));
    let names: Vec<&str> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a.txt", "b.txt"]);
    let star = ok(c.fs(&["ls", "/d/in/sub/?.txt"]));
    assert_eq!(star.lines().count(), 2, "{star}");
    let star = ok(c.fs(&["ls", "/d/*/sub/a*"]));
    assert!(star.trim_end().ends_with("/d/in/sub/a.txt"), "{star}");
    one_line_error(&c.fs(&["ls", "/d/*/none*"]), 3, "ls", "no path matches");
    one_line_error(&c.fs(&["ls", "/missing"]), 3, "ls", "/missing");
    one_line_error(&c.fs(&["ls", "--bogus", "/"]), 2, "ls", "--bogus");

    // cat, head -c, tail -c.
    assert_eq!(ok(c.fs(&["cat", "/d/in/sub/a.txt"])), "alpha\n");
    assert_eq!(ok(c.fs(&["cat", "/d/in/sub/*.txt"])), "alpha\nbravo\n");
    assert_eq!(ok(c.fs(&["head", "-c", "3", "/d/in/sub/a.txt"])), "alp");
    assert_eq!(ok(c.fs(&["tail", "-c", "3", "/d/in/sub/b.txt"])), "vo\n");
    let head = c.fs(&["head", "-c", "1KiB", "/d/in/big.bin"]);
    assert_eq!(head.stdout, big[..1024].to_vec());
    let tail = c.fs(&["tail", "-c", "100", "/d/in/big.bin"]);
    assert_eq!(tail.stdout, big[big.len() - 100..].to_vec());
    one_line_error(&c.fs(&["head", "-c", "x", "/d/in/big.bin"]), 2, "head", "x");
    one_line_error(&c.fs(&["cat", "/d/nothing"]), 3, "cat", "/d/nothing");
    one_line_error(&c.fs(&["cat", "/d/in"]), 2, "cat", "/d/in");

    // stat, stat -f, stat --json.
    let st = ok(c.fs(&["stat", "/d/in/big.bin"]));
    assert!(st.starts_with("/d/in/big.bin is a file path."), "{st}");
    assert_eq!(
        ok(c.fs(&["stat", "-f", "%N %z %b %F", "/d/in/big.bin"])),
        format!("big.bin {} 3 regular file\n", big.len())
    );
    assert_eq!(ok(c.fs(&["stat", "-f", "%F", "/d/in"])), "directory\n");
    let j = json(c.fs(&["stat", "--json", "/d/in/big.bin"]));
    assert_eq!(j["length"], big.len() as u64);
    assert_eq!(j["blocks"].as_array().unwrap().len(), 3);
    one_line_error(&c.fs(&["stat", "-f", "%Q", "/d/in"]), 2, "stat", "%Q");

    // du -s -h --json, count --json, checksum.
    let du = ok(c.fs(&["du", "-s", "/d/in"]));
    assert!(du.starts_with("File Size"), "{du}");
    let total = big.len() + 12;
    assert!(
        du.lines().nth(1).unwrap().starts_with(&total.to_string()),
        "{du}"
    );
    assert!(ok(c.fs(&["du", "-sh", "/d/in"])).contains("2.0MiB"));
    let du_all = ok(c.fs(&["du", "/d/in"]));
    assert_eq!(du_all.lines().count(), 4, "header + 3 files: {du_all}");
    let j = json(c.fs(&["du", "-s", "--json", "/d/in"]));
    assert_eq!(j[0]["size"], total as u64);
    assert_eq!(j[0]["inAlluvium"], total as u64);
    let count = ok(c.fs(&["count", "/d/in"]));
    let nums: Vec<&str> = count.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(nums, vec!["3", "2", &total.to_string()], "{count}");
    let j = json(c.fs(&["count", "--json", "/d/in"]));
    assert_eq!(j["fileCount"], 3);
    assert_eq!(j["folderCount"], 2);
    assert_eq!(
        ok(c.fs(&["checksum", "/d/in/big.bin"])),
        format!("md5sum: {}\n", md5_hex(&big))
    );
    let sums = ok(c.fs(&["checksum", "/d/in/sub/*"]));
    assert!(
        sums.contains(&format!("/d/in/sub/a.txt: md5sum: {}", md5_hex(b"alpha\n"))),
        "{sums}"
    );

    // test -d -e -f -s -z: exit 0 when true, 1 when false.
    let t = |flag: &str, p: &str| c.fs(&["test", flag, p]).status.code();
    assert_eq!(t("-d", "/d/in"), Some(0));
    assert_eq!(t("-d", "/d/in/big.bin"), Some(1));
    assert_eq!(t("-f", "/d/in/big.bin"), Some(0));
    assert_eq!(t("-f", "/d/in"), Some(1));
    assert_eq!(t("-e", "/d/in"), Some(0));
    assert_eq!(t("-e", "/d/none"), Some(1));
    assert_eq!(t("-s", "/d/in/big.bin"), Some(0));
    assert_eq!(t("-s", "/d/empty"), Some(1));
    assert_eq!(t("-z", "/d/empty"), Some(0));
    assert_eq!(t("-z", "/d/in/big.bin"), Some(1));
    one_line_error(&c.fs(&["test", "-d", "-f", "/d"]), 2, "test", "-f");

    // chmod (octal, symbolic, -R), chown, chgrp -R.
    ok(c.fs(&["chmod", "640", "/d/in/big.bin"]));
    assert_eq!(ok(c.fs(&["stat", "-f", "%a", "/d/in/big.bin"])), "640\n");
    ok(c.fs(&["chmod", "-R", "go-rwx", "/d/in/sub"]));
    assert_eq!(
        ok(c.fs(&["stat", "-f", "%A", "/d/in/sub/a.txt"])),
        "-rw-------\n"
    );
    assert_eq!(ok(c.fs(&["stat", "-f", "%A", "/d/in/sub"])), "drwx------\n");
    one_line_error(&c.fs(&["chmod", "99x", "/d/in"]), 2, "chmod", "99x");
    ok(c.fs(&["chown", "-R", "alice:staff", "/d/in/sub"]));
    assert_eq!(
        ok(c.fs(&["stat", "-f", "%u:%g", "/d/in/sub/b.txt"])),
        "alice:staff\n"
    );
    ok(c.fs(&["chgrp", "-R", "eng", "/d/in/sub"]));
    assert_eq!(ok(c.fs(&["stat", "-f", "%g", "/d/in/sub/a.txt"])), "eng\n");
    one_line_error(&c.fs(&["chown", "bob", "/d/none"]), 3, "chown", "/d/none");

    // pin/unpin and ls -p.
    ok(c.fs(&["pin", "/d/in/big.bin"]));
    let pinned = ok(c.fs(&["ls", "-p", "/d/in"]));
    assert!(
        pinned.contains("/d/in/big.bin") && pinned.lines().count() == 1,
        "{pinned}"
    );
    ok(c.fs(&["unpin", "/d/in/big.bin"]));
    assert_eq!(ok(c.fs(&["ls", "-p", "/d/in"])), "");

    // setTtl --action free|delete, unsetTtl.
    let out = ok(c.fs(&["setTtl", "--action", "free", "/d/in/big.bin", "1h"]));
    assert!(
        out.contains("3600000 milliseconds") && out.contains("FREE"),
        "{out}"
    );
    assert!(ok(c.fs(&["stat", "/d/in/big.bin"])).contains("1h (FREE)"));
    ok(c.fs(&["unsetTtl", "/d/in/big.bin"]));
    assert!(ok(c.fs(&["stat", "/d/in/big.bin"])).contains("none"));
    one_line_error(&c.fs(&["setTtl", "/d/in", "soon"]), 2, "setTtl", "soon");
    one_line_error(
        &c.fs(&["setTtl", "--action", "explode", "/d/in", "1s"]),
        2,
        "setTtl",
        "explode",
    );
    // A TTL that expires deletes the file (the master checks every second in tests).
    ok(c.fs(&["touch", "/d/short"]));
    ok(c.fs(&["setTtl", "/d/short", "100"]));
    wait_for("TTL delete", std::time::Duration::from_secs(20), || {
        c.fs(&["test", "-e", "/d/short"]).status.code() == Some(1)
    });

    // mv, cp inside the namespace (-R), cp to/from file://, copyToLocal.
    ok(c.fs(&["mv", "/d/empty", "/d/moved"]));
    assert_eq!(t("-e", "/d/empty"), Some(1));
    assert_eq!(t("-e", "/d/moved"), Some(0));
    one_line_error(&c.fs(&["mv", "/d/none", "/d/x"]), 3, "mv", "/d/none");
    one_line_error(&c.fs(&["cp", "/d/in", "/d/copy"]), 2, "cp", "cp -R");
    ok(c.fs(&["cp", "-R", "/d/in", "/d/copy"]));
    assert_eq!(
        ok(c.fs(&["checksum", "/d/copy/big.bin"])),
        format!("md5sum: {}\n", md5_hex(&big))
    );
    ok(c.fs(&["mkdir", "/d/txt"]));
    ok(c.fs(&["cp", "/d/in/sub/*.txt", "/d/txt"]));
    assert_eq!(ok(c.fs(&["ls", "/d/txt"])).lines().count(), 2);
    one_line_error(
        &c.fs(&["cp", "/d/in/sub/*.txt", "/d/nodir"]),
        2,
        "cp",
        "directory",
    );
    let out_dir = c.dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let to = format!("file://{}/big.copy", out_dir.display());
    ok(c.fs(&["cp", "/d/in/big.bin", &to]));
    assert_eq!(std::fs::read(out_dir.join("big.copy")).unwrap(), big);
    let from = format!("file://{}", local.join("sub/a.txt").display());
    ok(c.fs(&["cp", &from, "/d/from-local.txt"]));
    assert_eq!(ok(c.fs(&["cat", "/d/from-local.txt"])), "alpha\n");
    ok(c.fs(&["copyToLocal", "/d/in/sub", out_dir.to_str().unwrap()]));
    assert_eq!(
        std::fs::read(out_dir.join("sub/b.txt")).unwrap(),
        b"bravo\n"
    );
    one_line_error(
        &c.fs(&["copyFromLocal", "/no/such/local", "/d/x"]),
        3,
        "copyFromLocal",
        "/no/such/local",
    );
    one_line_error(
        &c.fs(&["copyToLocal", "/d/none", out_dir.to_str().unwrap()]),
        3,
        "copyToLocal",
        "/d/none",
    );

    // rm: -R needed for a directory; wildcards; --alluvium-only keeps the UFS copy.
    one_line_error(&c.fs(&["rm", "/d/copy"]), 7, "rm", "/d/copy");
    ok(c.fs(&["rm", "-R", "/d/copy"]));
    assert_eq!(t("-e", "/d/copy"), Some(1));
    ok(c.fs(&["rm", "/d/txt/*"]));
    assert_eq!(ok(c.fs(&["ls", "/d/txt"])), "");
    let ufs_file = c.ufs_dir.join("d/in/sub/a.txt");
    assert!(ufs_file.exists());
    ok(c.fs(&["rm", "--alluvium-only", "/d/in/sub/a.txt"]));
    assert!(ufs_file.exists(), "the UFS copy stays");
    one_line_error(&c.fs(&["rm", "/d/none"]), 3, "rm", "/d/none");

    // masterInfo, getCapacityBytes, getUsedBytes, help.
    let info = ok(c.fs(&["masterInfo"]));
    assert!(
        info.contains(&format!("127.0.0.1:{}", c.master_rpc)) && info.contains("Live workers: 1"),
        "{info}"
    );
    let j = json(c.fs(&["masterInfo", "--json"]));
    assert_eq!(j["liveWorkers"], 1);
    assert_eq!(
        ok(c.fs(&["getCapacityBytes"])),
        format!("Capacity Bytes: {}\n", 64 * 1024 * 1024)
    );
    let used = ok(c.fs(&["getUsedBytes"]));
    assert!(used.starts_with("Used Bytes: "), "{used}");
    let help = ok(c.fs(&["help"]));
    for cmd in [
        "ls",
        "copyFromLocal",
        "distributedLoad",
        "checkConsistency",
        "loadMetadata",
        "setTtl",
        "getCapacityBytes",
        "masterInfo",
    ] {
        assert!(help.contains(cmd), "help lists {cmd}: {help}");
    }
    assert!(ok(c.fs(&["help", "distributedLoad"])).contains("--replication"));
    one_line_error(&c.fs(&["nosuch"]), 2, "fs", "nosuch");
}

#[test]
fn errors_name_the_command_and_path_with_distinct_codes() {
    let c = Cluster::start(ClusterOptions::default());
    ok(c.fs(&["mkdir", "/p"]));
    ok(c.fs(&["chmod", "700", "/p"]));
    ok(c.fs(&["touch", "/p/f"]));
    let bob = |args: &[&str]| c.fs_with_env(args, &[("ALLUVIUM_CLIENT__USER", "bob")]);
    // Permission denied as a non-super user: 4.
    for (cmd, args) in [
        ("ls", vec!["ls", "/p"]),
        ("stat", vec!["stat", "/p/f"]),
        ("cat", vec!["cat", "/p/f"]),
        ("rm", vec!["rm", "/p/f"]),
        ("touch", vec!["touch", "/p/g"]),
        ("chmod", vec!["chmod", "777", "/p"]),
        ("chown", vec!["chown", "bob", "/p"]),
        ("chgrp", vec!["chgrp", "bob", "/p"]),
        ("setTtl", vec!["setTtl", "/p", "1h"]),
        ("pin", vec!["pin", "/p"]),
        ("mv", vec!["mv", "/p/f", "/g"]),
        ("du", vec!["du", "-s", "/p"]),
        ("count", vec!["count", "/p"]),
        ("checksum", vec!["checksum", "/p/f"]),
        ("free", vec!["free", "/p"]),
        ("mount", vec!["mount", "/m", "file:///tmp"]),
        ("unmount", vec!["unmount", "/"]),
        ("loadMetadata", vec!["loadMetadata", "/p"]),
        ("checkConsistency", vec!["checkConsistency", "/p"]),
        ("distributedLoad", vec!["distributedLoad", "/p"]),
    ] {
        let out = bob(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{cmd}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{cmd}: {err}");
        assert!(
            err.starts_with(&format!("alluvium: {cmd}: ")),
            "{cmd}: {err}"
        );
        assert!(err.contains('/'), "{cmd} names the path: {err}");
    }
    // Not found: 3; invalid: 2; unavailable: 5; exists: 6.
    one_line_error(&c.fs(&["stat", "/none"]), 3, "stat", "/none");
    one_line_error(&c.fs(&["du", "/none"]), 3, "du", "/none");
    one_line_error(&c.fs(&["location", "/none"]), 3, "location", "/none");
    one_line_error(&c.fs(&["stat", "/a/../../x"]), 2, "stat", "escapes");
    one_line_error(
        &c.fs(&["distributedLoad", "--parallelism", "0", "/p"]),
        2,
        "distributedLoad",
        "--parallelism",
    );
    one_line_error(&c.fs(&["touch", "/p/f"]), 6, "touch", "/p/f");
    let out = c.fs_with_env(
        &["stat", "/"],
        &[
            ("ALLUVIUM_MASTER", "127.0.0.1:1"),
            ("ALLUVIUM_CLIENT__RETRY_DURATION", "500ms"),
        ],
    );
    one_line_error(&out, 5, "stat", "127.0.0.1:1");
}
