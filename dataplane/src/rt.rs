//! The async runtime the data plane runs on, sized to the CPUs it may use.
//!
//! With one CPU (a pod limited to one core, or a process pinned to one) the runtime is
//! tokio's current-thread scheduler: every task runs on the one thread that drives it,
//! without the work-stealing machinery (shared queues, atomics, cross-thread wake-ups)
//! that buys nothing when there is nobody to steal from. With more, the multi-thread
//! scheduler with one worker per CPU.

use std::io;
use std::num::NonZeroUsize;

/// The number of worker threads to use: `requested`, or the CPUs this process may run on
/// (its affinity and cgroup quota, as `std::thread::available_parallelism` reads them).
pub fn worker_threads(requested: Option<NonZeroUsize>) -> NonZeroUsize {
    requested
        .or_else(|| std::thread::available_parallelism().ok())
        .unwrap_or(NonZeroUsize::MIN)
}

/// A runtime with `threads` workers (current-thread for one), timers and I/O enabled.
pub fn build(threads: NonZeroUsize) -> io::Result<tokio::runtime::Runtime> {
    if threads.get() == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.get())
            .enable_all()
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_count_wins_and_one_thread_serves_spawned_tasks() {
        let one = NonZeroUsize::MIN;
        assert_eq!(worker_threads(Some(one)), one);
        assert!(worker_threads(None).get() >= 1);
        for n in [1, 2] {
            let threads = NonZeroUsize::new(n).expect("non-zero");
            let rt = build(threads).expect("runtime");
            let sum = rt.block_on(async {
                let a = tokio::spawn(async { 20 });
                let b = tokio::task::spawn_blocking(|| 22);
                a.await.expect("task") + b.await.expect("blocking")
            });
            assert_eq!(sum, 42);
        }
    }
}
