//! The group-commit writer: one dedicated thread owns the write path. Requests from every
//! connection queue here; the thread takes whatever has queued (up to a cap), commits it as one
//! durable redb transaction, then answers every waiting request. A lone client pays one fsync
//! per request; many concurrent clients share fsyncs.
//!
//! Architecture invariant: a request's reply is sent only after the commit holding its records
//! returned, so a 2xx always means committed and fsync'd.
//!
//! After each commit the thread publishes the last committed seq on a watch channel, so the
//! change feed's waiting consumers wake on a commit instead of polling the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Metrics;
use crate::store::{Fault, Pace, Put, Store, StoreError, Written};

/// Below this many puts per commit, on average over the last few, requests come one at a time
/// and the commit may spin rather than sleep while its sync runs ([`Pace::Alone`]): with 16
/// clients posting events, commits average about six.
const LONE_PUTS: f64 = 1.5;

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Requests that may wait for the writer; beyond it submissions are refused (backpressure).
    pub queue_capacity: usize,
    /// Most puts committed in one transaction (a single larger request is still committed whole).
    pub max_batch_puts: usize,
    /// When false, every request gets its own transaction: the baseline the benchmark compares.
    pub group_commit: bool,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_capacity: 1024,
            max_batch_puts: 4096,
            group_commit: true,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("the write queue is full ({0} requests waiting); retry shortly")]
    QueueFull(usize),
    #[error("the writer has shut down")]
    Closed,
    #[error("the commit failed: {0}")]
    Store(String),
    /// The storage is failing (I/O error, full disk): the store is recovering by itself.
    #[error("{0}")]
    Fault(Fault),
    /// The commit failed in a way that leaves it unknown whether it will be stored (the store
    /// recovers by itself); a retry with the same idempotency key learns the outcome.
    #[error("{0}")]
    MaybeCommitted(String),
}

struct Job {
    puts: Vec<Put>,
    reply: oneshot::Sender<Result<Vec<Written>, WriteError>>,
}

/// A handle to submit writes; cheap to clone. The writer thread stops once every handle is
/// dropped and the queue is drained.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    depth: Arc<AtomicUsize>,
    capacity: usize,
    committed: watch::Receiver<u64>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("depth", &self.depth())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer thread.
    pub fn spawn(
        store: Arc<Store>,
        config: WriterConfig,
        metrics: Arc<Metrics>,
    ) -> (Writer, JoinHandle<()>) {
        let capacity = config.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let depth = Arc::new(AtomicUsize::new(0));
        let thread_depth = depth.clone();
        // Only a wake-up signal: readers take the records from the store, so a wrong start
        // (an unreadable file, fixed by the next commit) costs a spurious read, nothing more.
        let (published, committed) = watch::channel(store.last_seq().unwrap_or(0));
        let handle = std::thread::Builder::new()
            .name("kb-writer".into())
            .spawn(move || run(store, config, metrics, rx, thread_depth, published))
            .expect("spawning the writer thread");
        (
            Writer {
                tx,
                depth,
                capacity,
                committed,
            },
            handle,
        )
    }

    /// Queues `puts` to be committed in order in one transaction (possibly shared with other
    /// requests) and waits for the commit. Refuses at once when the queue is full.
    pub async fn submit(&self, puts: Vec<Put>) -> Result<Vec<Written>, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.depth.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(Job { puts, reply }) {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => WriteError::QueueFull(self.capacity),
                mpsc::error::TrySendError::Closed(_) => WriteError::Closed,
            });
        }
        answer.await.unwrap_or(Err(WriteError::Closed))
    }

    /// Whether the writer thread has stopped (it no longer accepts work).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Requests queued or being committed right now.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// The last committed seq, updated after every commit. A new receiver reports the value at
    /// the time of the writer's last publication as unseen: call `borrow_and_update` first.
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }
}

fn run(
    store: Arc<Store>,
    config: WriterConfig,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Job>,
    depth: Arc<AtomicUsize>,
    published: watch::Sender<u64>,
) {
    // Puts per commit, averaged over the last few commits: about one while requests come one
    // at a time (a lone client), and the cores are otherwise idle.
    let mut recent_puts = 1.0f64;
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        let mut n_puts = jobs[0].puts.len();
        if config.group_commit {
            while n_puts < config.max_batch_puts {
                match rx.try_recv() {
                    Ok(job) => {
                        n_puts += job.puts.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        recent_puts = 0.75 * recent_puts + 0.25 * n_puts as f64;
        let pace = if recent_puts < LONE_PUTS {
            Pace::Alone
        } else {
            Pace::Busy
        };
        commit(&store, &metrics, &depth, jobs, n_puts, pace);
        // Read back rather than taken from the answers, so that whatever the commit did (or
        // failed to do) the value is the store's own; a read costs microseconds next to the
        // commit's fsync, and the replies have already gone.
        if let Ok(last_seq) = store.last_seq() {
            published.send_if_modified(|seen| {
                let newer = last_seq > *seen;
                if newer {
                    *seen = last_seq;
                }
                newer
            });
        }
    }
    tracing::debug!("writer thread stopped: every handle dropped and the queue drained");
}

/// Commits `jobs` as one transaction and answers each. They leave the queue `depth` before any
/// is answered, so that a client that has its answer never counts itself as still queued.
fn commit(
    store: &Store,
    metrics: &Metrics,
    depth: &AtomicUsize,
    jobs: Vec<Job>,
    n_puts: usize,
    pace: Pace,
) {
    let n_jobs = jobs.len();
    let mut puts = Vec::with_capacity(n_puts);
    let mut replies = Vec::with_capacity(n_jobs);
    for job in jobs {
        replies.push((job.reply, job.puts.len()));
        puts.extend(job.puts);
    }
    let start = Instant::now();
    let result = store.write_paced(&puts, pace);
    let elapsed = start.elapsed();
    depth.fetch_sub(n_jobs, Ordering::Relaxed);
    metrics.record_commit(n_jobs, n_puts, elapsed, result.is_ok());
    tracing::trace!(
        requests = n_jobs,
        puts = n_puts,
        micros = elapsed.as_micros() as u64,
        "commit"
    );
    match result {
        Ok(written) => {
            store.note_commit();
            let mut rest = written.into_iter();
            for (reply, n) in replies {
                // A requester that went away (client disconnected) just doesn't hear back;
                // its records are committed all the same.
                let _ = reply.send(Ok(rest.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            // An I/O failure poisons the database until it is reopened: the store records the
            // fault and recovers in the background; meanwhile every commit fails fast with it.
            let error = match store.note_error(&e) {
                Some(fault) => WriteError::Fault(fault),
                None if matches!(e, StoreError::MaybeStored(_)) => {
                    tracing::error!(error = %e, requests = n_jobs, "commit failed; it may be stored");
                    WriteError::MaybeCommitted(e.to_string())
                }
                None => {
                    tracing::error!(error = %e, requests = n_jobs, "commit failed; nothing of it stored");
                    WriteError::Store(e.to_string())
                }
            };
            for (reply, _) in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
