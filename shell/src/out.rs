//! Writing command output to stdout. A closed pipe (`alluvium fs ls | head`) must not panic the
//! process as `println!` would: once stdout is gone, further output is dropped quietly.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Prints one line.
pub fn line(s: impl AsRef<str>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let r = out
        .write_all(s.as_ref().as_bytes())
        .and_then(|_| out.write_all(b"\n"));
    if r.is_err() {
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Whether stdout was found closed.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}
