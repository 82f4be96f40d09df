//! The threads the networks' large matrix products and convolutions share.

use crate::error::{Error, Result};
use std::sync::Arc;

/// A pool of threads for the networks' matrix products, used by the networks run inside
/// [`MatmulThreads::scope`] on the calling thread. Outputs do not depend on it: the products
/// are split by output tiles, each value still summed by one thread in the same order.
///
/// Only a thread that is not itself a worker of a rayon pool may use it (the kiosk's loop,
/// `bench`): the pyramid's scales and the batch evaluations run networks side by side on
/// rayon workers with one thread each, and a worker waiting inside a nested pool could pick
/// up a second network run on top of the first.
#[derive(Clone)]
pub struct MatmulThreads {
    executor: tract_linalg::multithread::Executor,
    pool: Option<Arc<rayon::ThreadPool>>,
    threads: usize,
}

impl MatmulThreads {
    /// `threads` threads: 0 = every core, 1 = the calling thread alone.
    pub fn new(threads: usize) -> Result<Self> {
        use tract_linalg::multithread::Executor;
        let n = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        if n <= 1 {
            return Ok(MatmulThreads {
                executor: Executor::SingleThread,
                pool: None,
                threads: 1,
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("facegate-mm-{i}"))
            .num_threads(n)
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start {n} threads: {e}")))?;
        let pool = Arc::new(pool);
        Ok(MatmulThreads {
            executor: Executor::MultiThread(pool.clone()),
            pool: Some(pool),
            threads: n,
        })
    }

    /// The number of threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `f` with the networks it runs on this thread using these threads: tract's matrix
    /// products and facegate's large convolutions (`scoped_pool`).
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        with_pool(self.pool.clone(), || {
            tract_linalg::multithread::multithread_tract_scope(self.executor.clone(), f)
        })
    }
}

thread_local! {
    static POOL: std::cell::RefCell<Option<Arc<rayon::ThreadPool>>> =
        const { std::cell::RefCell::new(None) };
}

/// `f` with `pool` as this thread's network threads (none: one thread); see [`scoped_pool`].
pub(crate) fn with_pool<R>(pool: Option<Arc<rayon::ThreadPool>>, f: impl FnOnce() -> R) -> R {
    let before = POOL.with(|p| p.replace(pool));
    let out = f();
    POOL.with(|p| p.replace(before));
    out
}

/// The threads a large convolution of facegate's kernels may spread over: those of the
/// [`MatmulThreads::scope`] this thread is in, unless the thread is itself a rayon worker.
/// The kiosk's loop and `bench` set them; the detector's pyramid scales and crops, which
/// already run side by side on rayon workers, keep every convolution on its worker. The
/// values never depend on the split.
pub(crate) fn scoped_pool() -> Option<Arc<rayon::ThreadPool>> {
    if rayon::current_thread_index().is_some() {
        return None;
    }
    POOL.with(|p| p.borrow().clone())
}
