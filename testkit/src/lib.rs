//! Test-only helpers shared by the crates' tests (a dev-dependency only).
//!
//! Tests wait for a condition, never for a fixed time: a sleep is too short on a loaded CI
//! machine and too long everywhere else. Each helper panics naming what it waited for.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often the async helpers look again (their conditions are cheap: in-process state or a
/// loopback RPC).
const POLL: Duration = Duration::from_millis(10);
/// How often [`wait_for`] looks again: its conditions often ask another process.
const POLL_BLOCKING: Duration = Duration::from_millis(50);

/// Polls the async condition `f` until it holds; panics naming `what` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a condition that needs no `.await`.
pub async fn eventually_sync(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    eventually(what, timeout, || std::future::ready(f())).await
}

/// Polls `f` on this thread (blocking it) until it holds; panics naming `what` after `timeout`.
/// For tests that drive servers in other processes or threads.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL_BLOCKING);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn waits_until_the_condition_holds() {
        let n = AtomicU32::new(0);
        eventually_sync("three looks", Duration::from_secs(5), || {
            n.fetch_add(1, Ordering::SeqCst) >= 2
        })
        .await;
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[test]
    #[should_panic(expected = "timed out after 50ms waiting for the impossible")]
    fn names_what_it_waited_for() {
        wait_for("the impossible", Duration::from_millis(50), || false);
    }
}
