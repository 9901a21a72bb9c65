//! Running work that may block (a RocksDB commit that syncs its WAL, waiting for a lock held
//! through one, filling page tables of a large mapping) from async code without stalling the
//! runtime's other tasks.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f` on the current thread after telling a multi-threaded tokio runtime that this thread
/// will block, so the runtime moves its other tasks to another thread
/// ([`tokio::task::block_in_place`]). Unlike `spawn_blocking` it borrows freely and costs no hand-off
/// to another thread when the runtime is idle.
///
/// On a current-thread runtime (unit tests) or outside a runtime there is nobody to hand tasks
/// to, and `f` runs inline.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn runs_inline_outside_a_runtime() {
        assert_eq!(blocking(|| 7), 7);
    }

    #[tokio::test]
    async fn runs_inline_on_a_current_thread_runtime() {
        assert_eq!(blocking(|| 7), 7);
    }

    /// The reason it exists: while one task blocks inside `blocking`, another task spawned on
    /// the same runtime still runs. The runtime has one worker thread, so without
    /// `block_in_place` the other task could not run until the deadline passed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn other_tasks_run_while_one_blocks() {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let other = tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
        // With one worker thread, the spawned task can only run if this thread gives it up.
        let saw = blocking(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !ran.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            ran.load(Ordering::SeqCst)
        });
        assert!(saw, "the other task never ran while this one blocked");
        other.await.unwrap();
    }
}
