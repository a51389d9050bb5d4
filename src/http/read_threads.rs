//! The threads store reads run on: a fixed pool for each kind of read slot (light reads, heavy
//! reads), started with the server's state and stopped with it. A read sends its work here only
//! while it holds one of its kind's slots, so a pool's queue never holds more than one job a
//! thread.
//!
//! Not tokio's blocking pool: that pool starts a thread whenever none is idle at the instant
//! a task arrives, up to 512, and under a churn of short reads it grew to 430 threads though
//! only 32 reads ran at once; each thread's allocator heap kept what the answers made on it had
//! freed. 100 clients reading a 279 KB answer (`GET /events?limit=1000`) back to back took the
//! server to 1,769 MiB of RSS, never given back (a review's, at f639646; release build). Reads
//! made and freed at megabytes a request now take their memory on these few threads, which
//! stay busy, so the allocator reuses what they freed. Heavy reads (large answers, many rows
//! walked) have their own few threads for the same reason: with their answers made on the
//! blocking pool, 200 clients reading an 8.1 MB answer took the server to 1,267-1,515 MiB
//! peak RSS, against 720-796 MiB with the allocator giving freed memory back at once
//! (`MIMALLOC_PURGE_DELAY=0`; release build, 2026-12-06).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;

use super::ApiError;

type Job = Box<dyn FnOnce() + Send>;

/// The threads and the work waiting for them.
pub struct ReadThreads {
    name: &'static str,
    pool: Arc<Mutex<Pool>>,
}

/// Jobs in the order they came; the threads waiting for one, in the order they went idle (the
/// last, the warmest, takes the next job).
#[derive(Default)]
struct Pool {
    jobs: VecDeque<Job>,
    idle: Vec<Thread>,
    closed: bool,
}

fn lock(pool: &Mutex<Pool>) -> MutexGuard<'_, Pool> {
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ReadThreads {
    /// Starts `threads` threads (at least one) named `{name}-{i}`; they stop once this is
    /// dropped and their work is done.
    pub fn start(name: &'static str, threads: usize) -> ReadThreads {
        let pool = Arc::new(Mutex::new(Pool::default()));
        for i in 0..threads.max(1) {
            let pool = pool.clone();
            let started = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || work(name, &pool));
            if let Err(e) = started {
                tracing::warn!(error = %e, threads = name, "cannot start a thread for reads");
            }
        }
        ReadThreads { name, pool }
    }

    /// Runs `job` on one of the threads, the one that went idle last (its caches and its
    /// allocator's memory are the warmest); its result, or an error if it panicked (or no
    /// thread could be started).
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        {
            let mut pool = lock(&self.pool);
            if pool.closed {
                return Err(ApiError::Internal(format!(
                    "the {} threads stopped",
                    self.name
                )));
            }
            pool.jobs.push_back(Box::new(move || {
                let _ = answer.send(job());
            }));
            // None idle: a thread that finishes its job takes this one next.
            if let Some(thread) = pool.idle.pop() {
                thread.unpark();
            }
        }
        answered
            .await
            .map_err(|_| ApiError::Internal(format!("a read on the {} threads failed", self.name)))
    }
}

impl Drop for ReadThreads {
    fn drop(&mut self) {
        let mut pool = lock(&self.pool);
        pool.closed = true;
        for thread in pool.idle.drain(..) {
            thread.unpark();
        }
    }
}

fn work(name: &str, shared: &Mutex<Pool>) {
    let me = std::thread::current();
    loop {
        let job = {
            let mut pool = lock(shared);
            loop {
                if let Some(job) = pool.jobs.pop_front() {
                    // Woken by another job's arrival, or never asleep: no longer idle.
                    pool.idle.retain(|t| t.id() != me.id());
                    break Some(job);
                }
                if pool.closed {
                    break None;
                }
                if !pool.idle.iter().any(|t| t.id() == me.id()) {
                    pool.idle.push(me.clone());
                }
                drop(pool);
                // An unpark that came first makes this return at once; so may nothing at all.
                std::thread::park();
                pool = lock(shared);
            }
        };
        let Some(job) = job else {
            return;
        };
        // A job that panics answers nobody (its caller gets an error); the thread goes on.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!(threads = name, "a read panicked");
        }
    }
}
