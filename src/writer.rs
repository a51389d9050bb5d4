//! The group-commit writer: one dedicated thread owns the write path. Requests from every
//! connection queue here; the thread takes what has queued (up to a cap, see below), commits it
//! as one durable redb transaction, then answers every request of it. A lone client pays one
//! fsync per request; many concurrent clients share fsyncs.
//!
//! Architecture invariant: a request's reply is sent only after the commit holding its records
//! returned, so a 2xx always means committed and fsync'd.
//!
//! After each commit the thread publishes the last committed seq on a watch channel, so the
//! change feed's waiting consumers wake on a commit instead of polling the database.
//!
//! Requests wait by how much work they are ([`Put::work`], summed): small (under
//! [`SMALL_WORK`]: an event, an auditor's verdict), medium, and heavy ([`HEAVY_WORK`] or more: a batch of
//! verdicts with many findings, a megabyte of events), each class in the order its requests
//! came. The commits take the classes that wait in turn, each commit at most
//! [`COMMIT_WORK`] (or one request) of one class: a request waits for at most one commit of
//! each other class besides the requests of its own class ahead of it, however much heavier
//! work is queued. No promise of order holds between requests that wait together: each is
//! answered after its own commit, and its records' seqs say the order they were committed in.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Metrics;
use crate::store::{Fault, Pace, Put, Store, StoreError, Written};

/// Below this many puts per commit, on average over the last few, requests come one at a time
/// and the commit may spin rather than sleep while its sync runs ([`Pace::Alone`]): with 16
/// clients posting events, commits average about six.
const LONE_PUTS: f64 = 1.5;

/// A request of less work than this is small: an event, an auditor's verdict with its claims
/// and up to about 20 findings.
const SMALL_WORK: usize = 16 * 1024;

/// A request of this much work or more is heavy: about 5 ms of a release build's writer (a
/// verdict with 200 findings, 64 KiB of events).
const HEAVY_WORK: usize = 64 * 1024;

/// Requests share a commit while their work adds up to at most this; a heavier one is
/// committed alone. Before there were classes, a light request queued behind 24 one-megabyte
/// batches of verdicts with findings waited 4 s for their commits (release build).
const COMMIT_WORK: usize = 1024 * 1024;

/// The classes requests wait in, lightest first.
const CLASSES: usize = 3;

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Requests that may wait for the writer or be in its commit; beyond it submissions are
    /// refused (backpressure).
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
    /// The puts' [`Put::work`], summed.
    work: usize,
    reply: oneshot::Sender<Result<Vec<Written>, WriteError>>,
}

/// A handle to submit writes; cheap to clone. The writer thread stops once every handle is
/// dropped and the queue is drained.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    depth: Arc<AtomicUsize>,
    /// When the commit running now began.
    commit_since: Arc<CommitClock>,
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
        let commit_since = Arc::new(CommitClock::new());
        // Only a wake-up signal: readers take the records from the store, so a wrong start
        // (an unreadable file, fixed by the next commit) costs a spurious read, nothing more.
        let (published, committed) = watch::channel(store.last_seq().unwrap_or(0));
        let handle = std::thread::Builder::new()
            .name("kb-writer".into())
            .spawn({
                let thread = Thread {
                    store,
                    metrics,
                    depth: thread_depth,
                    commit_since: commit_since.clone(),
                    published,
                };
                move || thread.run(config, rx)
            })
            .expect("spawning the writer thread");
        (
            Writer {
                tx,
                depth,
                commit_since,
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
        // The writer thread moves what is queued to its own queues: the depth (queued or
        // being committed) is what the capacity bounds.
        if self.depth.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            return Err(WriteError::QueueFull(self.capacity));
        }
        let work = crate::store::work_of(&puts);
        if let Err(e) = self.tx.try_send(Job { puts, work, reply }) {
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

    /// How long the commit running now has been running, if one is.
    pub fn commit_running_for(&self) -> Option<Duration> {
        self.commit_since.running_for()
    }

    /// The last committed seq, updated after every commit. A new receiver reports the value at
    /// the time of the writer's last publication as unseen: call `borrow_and_update` first.
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }
}

/// When the writer's running commit began, on a monotonic clock (a wall clock stepped back
/// would hide a stall, stepped forward fake one).
#[derive(Debug)]
struct CommitClock {
    epoch: Instant,
    /// Milliseconds from `epoch` to the start of the running commit, plus one; 0: none runs.
    since: AtomicU64,
}

impl CommitClock {
    fn new() -> CommitClock {
        CommitClock {
            epoch: Instant::now(),
            since: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn start(&self) {
        self.since.store(self.now(), Ordering::Relaxed);
    }

    fn stop(&self) {
        self.since.store(0, Ordering::Relaxed);
    }

    fn running_for(&self) -> Option<Duration> {
        match self.since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(self.now().saturating_sub(since))),
        }
    }
}

/// What the writer thread holds.
struct Thread {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    /// Requests queued or being committed ([`Writer::depth`]).
    depth: Arc<AtomicUsize>,
    /// [`Writer::commit_since`].
    commit_since: Arc<CommitClock>,
    /// The last committed seq ([`Writer::committed`]).
    published: watch::Sender<u64>,
}

impl Thread {
    fn run(self, config: WriterConfig, mut rx: mpsc::Receiver<Job>) {
        // Puts per commit, averaged over the last few commits: about one while requests come
        // one at a time (a lone client), and the cores are otherwise idle.
        let mut recent_puts = 1.0f64;
        let mut waiting = Waiting::default();
        loop {
            if waiting.is_empty() {
                match rx.blocking_recv() {
                    Some(job) => waiting.push(job),
                    None => break,
                }
            }
            // At most the queue's capacity: `submit` refuses beyond it.
            while let Ok(job) = rx.try_recv() {
                waiting.push(job);
            }
            let jobs = waiting.next_commit(&config);
            let n_puts = jobs.iter().map(|job| job.puts.len()).sum();
            recent_puts = 0.75 * recent_puts + 0.25 * n_puts as f64;
            // Requests still waiting: not alone, whatever the average says (single heavy and
            // light requests taking turns commit one at a time).
            let pace = if recent_puts < LONE_PUTS && waiting.is_empty() {
                Pace::Alone
            } else {
                Pace::Busy
            };
            self.commit(jobs, n_puts, pace);
        }
        tracing::debug!("writer thread stopped: every handle dropped and the queue drained");
    }

    /// Commits `jobs` as one transaction and answers each. They leave the queue `depth` before
    /// any is answered, so that a client that has its answer never counts itself as still
    /// queued.
    fn commit(&self, jobs: Vec<Job>, n_puts: usize, pace: Pace) {
        let (store, metrics) = (&*self.store, &*self.metrics);
        let n_jobs = jobs.len();
        let mut puts = Vec::with_capacity(n_puts);
        let mut replies = Vec::with_capacity(n_jobs);
        for job in jobs {
            replies.push((job.reply, job.puts.len()));
            puts.extend(job.puts);
        }
        let start = Instant::now();
        self.commit_since.start();
        let result = store.write_paced(&puts, pace);
        self.commit_since.stop();
        let elapsed = start.elapsed();
        if let Ok(written) = &result {
            // Before any answer: a client that has its answer sees its records in
            // `/healthz`'s last_seq, and the feed's consumers wake for them.
            self.publish(written);
        }
        self.depth.fetch_sub(n_jobs, Ordering::Relaxed);
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

    /// Publishes the highest seq a commit gave (the seqs are given in the commit, in order):
    /// taken from what it wrote, not read back, so that no read (which would wait for another
    /// committer's sync) stands between a commit and its answers.
    fn publish(&self, written: &[Written]) {
        let Some(last_seq) = written.iter().filter_map(Written::last_stored_seq).max() else {
            return;
        };
        self.published.send_if_modified(|seen| {
            let newer = last_seq > *seen;
            if newer {
                *seen = last_seq;
            }
            newer
        });
    }
}

/// The requests the writer has taken from the channel and not yet committed, by class
/// (lightest first), each class in the order its requests came.
#[derive(Default)]
struct Waiting {
    classes: [VecDeque<Job>; CLASSES],
    /// The class whose turn is next (the lightest at the start).
    turn: usize,
}

impl Waiting {
    fn push(&mut self, job: Job) {
        let class = match job.work {
            work if work < SMALL_WORK => 0,
            work if work < HEAVY_WORK => 1,
            _ => 2,
        };
        self.classes[class].push_back(job);
    }

    fn is_empty(&self) -> bool {
        self.classes.iter().all(VecDeque::is_empty)
    }

    /// The requests of the next commit (at least one; `self` must not be empty): of the first
    /// class from the one whose turn it is that has any, up to `max_batch_puts` puts and
    /// [`COMMIT_WORK`] of work.
    fn next_commit(&mut self, config: &WriterConfig) -> Vec<Job> {
        let class = (0..CLASSES)
            .map(|i| (self.turn + i) % CLASSES)
            .find(|&c| !self.classes[c].is_empty())
            .expect("next_commit with no request waiting");
        self.turn = (class + 1) % CLASSES;
        let queue = &mut self.classes[class];
        // The first always: a request heavier than a commit's budget is committed alone.
        let first = queue.pop_front().expect("the class found has a request");
        let (mut n_puts, mut work) = (first.puts.len(), first.work);
        let mut jobs = vec![first];
        while config.group_commit && n_puts < config.max_batch_puts {
            let Some(next) = queue.front() else { break };
            if work + next.work > COMMIT_WORK {
                break;
            }
            n_puts += next.puts.len();
            work += next.work;
            jobs.extend(queue.pop_front());
        }
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake;

    const K: usize = 1024;

    enum Step {
        /// A request of this much work and this many puts reaches the writer.
        Push(usize, usize),
        /// The next commit takes the requests of these works.
        Commit(&'static [usize]),
    }
    use Step::{Commit, Push};

    fn job(work: usize, n_puts: usize) -> Job {
        let put = Put::from(intake::event_record(br#"{"source":"bot"}"#, 0).unwrap());
        Job {
            puts: vec![put; n_puts],
            work,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn classes_of_work_take_turns_and_every_commit_has_a_budget() {
        let grouped = WriterConfig {
            max_batch_puts: 4,
            ..WriterConfig::default()
        };
        let wide = WriterConfig::default();
        let alone = WriterConfig {
            group_commit: false,
            ..grouped
        };
        #[rustfmt::skip]
        let cases: &[(&str, WriterConfig, &[Step])] = &[
            ("small requests share a commit up to the puts cap", grouped,
             &[Push(1, 1), Push(2, 3), Push(3, 1), Push(4, 1), Commit(&[1, 2]), Commit(&[3, 4])]),
            ("heavy requests share a commit up to the work budget", grouped,
             &[Push(300 * K, 1), Push(400 * K, 1), Push(500 * K, 1), Push(2048 * K, 1), Push(100 * K, 1),
               Commit(&[300 * K, 400 * K]), Commit(&[500 * K]), Commit(&[2048 * K]), Commit(&[100 * K])]),
            ("medium requests share a commit up to the work budget too", wide,
             &[Push(63 * K, 1), Push(63 * K, 1), Push(63 * K, 1), Push(63 * K, 1), Push(63 * K, 1),
               Push(63 * K, 1), Push(63 * K, 1), Push(63 * K, 1), Push(63 * K, 1), Push(63 * K, 1),
               Push(63 * K, 1), Push(63 * K, 1), Push(63 * K, 1), Push(63 * K, 1), Push(63 * K, 1),
               Push(63 * K, 1), Push(63 * K, 1), Push(63 * K, 1),
               Commit(&[63 * K; 16]), Commit(&[63 * K; 2])]),
            ("small requests that came after heavy ones go first, then turns", grouped,
             &[Push(1024 * K, 1), Push(2048 * K, 1), Push(1, 1), Push(3072 * K, 1), Push(2, 1),
               Commit(&[1, 2]), Commit(&[1024 * K]), Push(3, 1), Commit(&[3]), Commit(&[2048 * K]),
               Commit(&[3072 * K])]),
            ("a small request waits for one commit of each other class, however many wait", grouped,
             &[Push(1024 * K, 1), Push(1024 * K + 1, 1), Push(40 * K, 1), Push(40 * K + 1, 1),
               Push(40 * K + 2, 1), Push(40 * K + 3, 1), Push(40 * K + 4, 1), Commit(&[40 * K, 40 * K + 1, 40 * K + 2, 40 * K + 3]),
               Push(7, 1), Commit(&[1024 * K]), Commit(&[7]), Commit(&[40 * K + 4]), Commit(&[1024 * K + 1])]),
            ("the thresholds", grouped,
             &[Push(HEAVY_WORK, 1), Push(HEAVY_WORK - 1, 1), Push(SMALL_WORK, 1), Push(SMALL_WORK - 1, 1),
               Commit(&[SMALL_WORK - 1]), Commit(&[HEAVY_WORK - 1, SMALL_WORK]), Commit(&[HEAVY_WORK])]),
            ("without group commit each request is alone, classes taking turns", alone,
             &[Push(1, 1), Push(100 * K, 1), Push(2, 1), Push(200 * K, 1), Push(20 * K, 1),
               Commit(&[1]), Commit(&[20 * K]), Commit(&[100 * K]), Commit(&[2]), Commit(&[200 * K])]),
        ];
        for (name, config, steps) in cases {
            let mut waiting = Waiting::default();
            for (i, step) in steps.iter().enumerate() {
                match step {
                    Push(work, n_puts) => waiting.push(job(*work, *n_puts)),
                    Commit(expected) => {
                        let works: Vec<usize> = waiting
                            .next_commit(config)
                            .iter()
                            .map(|job| job.work)
                            .collect();
                        assert_eq!(&works, expected, "{name}: step {i}");
                    }
                }
            }
            assert!(waiting.is_empty(), "{name}: requests left over");
        }
    }
}
