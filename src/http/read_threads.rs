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
//!
//! Heavy reads' threads run behind every other thread of the server ([`Priority::Behind`]):
//! they take whatever CPU the rest leave, and only that. At the same priority, 200 clients
//! reading an 8.2 MB answer back to back took the two cores from the async workers that send
//! the answers and take the writes: `POST /event` beside them had a p50 of 103-116 ms and a p99
//! of 0.27-1.16 s (4-6 ms and 28-102 ms with these threads behind), and the large answers
//! themselves were read less often (656 to 705 in 10 s against 730 to 824), hundreds refused
//! as their pool filled (`loadgen --routes event --clients 16 --group-commit true
//! --heavy-readers 200`, three runs each, 2026-12-06).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;

use super::{ApiError, observe};

type Job = Box<dyn FnOnce() + Send>;

/// How a pool's threads are scheduled against the server's other threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// As every other thread: reads that are short and that a client waits on.
    Normal,
    /// [`BEHIND`] steps of niceness below the process (no lower than the lowest): work that
    /// could take every core, given only what the rest of the server does not use.
    Behind,
}

/// The niceness [`Priority::Behind`] adds: at 10, a thread gets about a tenth of what a
/// thread at the process's own niceness gets when both want a core (the kernel's weights).
pub const BEHIND: i32 = 10;

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
    /// Starts `threads` threads (at least one) named `{name}-{i}`, at `priority`; they stop
    /// once this is dropped and their work is done.
    pub fn start(name: &'static str, threads: usize, priority: Priority) -> ReadThreads {
        let pool = Arc::new(Mutex::new(Pool::default()));
        for i in 0..threads.max(1) {
            let pool = pool.clone();
            let started = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    if priority == Priority::Behind {
                        run_behind(name);
                    }
                    work(name, &pool)
                });
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

/// Lowers the calling thread's priority by [`BEHIND`]. Raising it back needs a privilege the
/// server does not have, so this is only for threads that do nothing else. Where it cannot be
/// done the thread runs as it is, and the log says so.
fn run_behind(name: &str) {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        // `setpriority` on a thread id sets that thread's niceness alone (Linux keeps one a
        // thread); the process's own id would be the main thread's.
        let me = Some(rustix::thread::gettid());
        let lowered = getpriority_process(me)
            .and_then(|now| setpriority_process(me, (now + BEHIND).min(MAX_NICE)));
        if let Err(e) = lowered
            && observe::sample("read-threads-priority").is_some()
        {
            tracing::warn!(threads = name, error = %e, "cannot lower the priority of a thread for heavy reads");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = name;
}

/// The highest niceness, the lowest priority.
#[cfg(target_os = "linux")]
const MAX_NICE: i32 = 19;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The niceness of the thread calling it.
    #[cfg(target_os = "linux")]
    fn niceness() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn heavy_reads_run_behind_the_other_threads_and_light_reads_do_not() {
        let ours = niceness();
        let cases = [
            (Priority::Normal, ours),
            (Priority::Behind, (ours + BEHIND).min(MAX_NICE)),
        ];
        for (priority, expected) in cases {
            let threads = ReadThreads::start("test-read", 2, priority);
            for _ in 0..4 {
                let theirs = threads.run(niceness).await.unwrap();
                assert_eq!(theirs, expected, "{priority:?}");
            }
        }
        // The calling thread, and so the rest of the server, keeps its own.
        assert_eq!(niceness(), ours);
    }

    #[tokio::test]
    async fn a_job_that_panics_fails_its_caller_and_the_thread_goes_on() {
        let threads = ReadThreads::start("test-read", 1, Priority::Normal);
        assert!(threads.run(|| panic!("a read panicked")).await.is_err());
        assert_eq!(threads.run(|| 7).await.unwrap(), 7);
    }
}
