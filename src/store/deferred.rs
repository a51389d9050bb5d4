//! Index entries a write transaction defers to its end, and their insertion: each index in key
//! order, and for a large transaction the indexes (separate trees) on several threads.
//!
//! Inserted in put order, entries land all over their trees (hashes and identities are random;
//! a source's or PR's new entries go at the end of its range, in the middle of the tree);
//! sorted, they walk each tree once, leaf after leaf. Measured on a 1M-line legacy import
//! (docs/benchmarks/log-2026-11.md). What the transaction must find before its end (a verdict
//! identity, an import key, a client key it wrote itself) it finds in the maps kept here.

use std::collections::HashMap;

use redb::{ReadableTable, Table};

use super::StoreError;
use super::postings::{self, Posting, PostingsTable};

/// A PR's counts by overall (approve, request_changes, block) and its newest verdict.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct PrDelta {
    pub by_overall: [u64; 3],
    pub last_seq: u64,
}

/// The entries, inserted when the transaction ends.
#[derive(Default)]
pub(super) struct Deferred {
    /// `(repo, sig_hash, kind, seq)` entries of `by_sig`.
    pub by_sig: Vec<(u32, String, u8, u64)>,
    /// `(repo, pr_number, seq)` entries of `pr_verdicts`.
    pub pr_verdicts: Vec<(u32, u64, u64)>,
    /// `(claim_hash, repo, seq)` entries of `claim_hashes`.
    pub claim_hashes: Vec<(u64, u32, u64)>,
    /// `(term, repo, posting)` appended to the blocks of `claim_terms`.
    pub claim_terms: Vec<(String, u32, Posting)>,
    /// `(source, seq)` entries of `events_by_source`.
    pub by_source: Vec<(String, u64)>,
    /// `(event_kind, seq)` entries of `events_by_kind`.
    pub by_kind: Vec<(String, u64)>,
    /// Verdict identities `(repo, pr_number, head_sha, audited_at)` written by this
    /// transaction, and their seqs: looked up by the identity check, inserted at the end.
    pub new_ids: HashMap<(u32, u64, String, String), u64>,
    /// Import keys and the seqs they became, when each key is looked up: a key seen twice in
    /// one transaction is a duplicate the second time, as it would be across transactions.
    pub new_keys: HashMap<Vec<u8>, u64>,
    /// Import keys known to be new (nothing looks them up).
    pub fresh_keys: Vec<(Vec<u8>, u64)>,
    /// Client keys written by this transaction: key → (seq, created ms, fingerprint).
    pub new_client_keys: HashMap<Vec<u8>, (u64, u64, u64)>,
    /// Count changes of each `(repo, pr_number)`.
    pub prs: HashMap<(u32, u64), PrDelta>,
    /// Count changes of each `(repo, pr_number, lowercase head_sha)`.
    pub heads: HashMap<(u32, u64, String), [u64; 3]>,
}

/// The index tables [`Deferred::insert`] fills, borrowed apart so that each can go to a thread.
pub(super) struct IndexTables<'a, 'txn> {
    pub import_keys: &'a mut Table<'txn, &'static [u8], u64>,
    pub by_sig: &'a mut Table<'txn, (u32, &'static str, u8, u64), ()>,
    pub verdict_ids: &'a mut Table<'txn, (u32, u64, &'static str, &'static str), u64>,
    pub pr_verdicts: &'a mut Table<'txn, (u32, u64, u64), ()>,
    pub prs: &'a mut Table<'txn, (u32, u64), (u64, u64, u64, u64)>,
    pub pr_heads: &'a mut Table<'txn, (u32, u64, &'static str), (u64, u64, u64)>,
    pub claim_hashes: &'a mut Table<'txn, (u64, u32, u64), ()>,
    pub claim_terms: &'a mut PostingsTable<'txn>,
    pub events_by_source: &'a mut Table<'txn, (&'static str, u64), ()>,
    pub events_by_kind: &'a mut Table<'txn, (&'static str, u64), ()>,
    pub client_keys: &'a mut Table<'txn, &'static [u8], (u64, u64, u64)>,
    pub client_keys_by_time: &'a mut Table<'txn, (u64, &'static [u8]), ()>,
}

/// How a transaction knows whether an import key is stored already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyCheck {
    /// Look it up in `import_keys` (and among this transaction's new keys).
    Lookup,
    /// It is new: `import_keys` holds none of the writer's puts' keys, which are distinct.
    Fresh,
}

impl Deferred {
    /// Inserts every deferred entry, each index in key order; returns how many import keys
    /// were inserted. The indexes are separate trees, so a large transaction sorts and fills
    /// them on up to one thread per core, the largest first.
    pub(super) fn insert(self, t: IndexTables<'_, '_>, check: KeyCheck) -> Result<u64, StoreError> {
        let Deferred {
            by_sig,
            pr_verdicts,
            claim_hashes,
            claim_terms,
            by_source,
            by_kind,
            new_ids,
            new_keys,
            mut fresh_keys,
            new_client_keys,
            prs,
            heads,
        } = self;
        fresh_keys.extend(new_keys);
        let keys = fresh_keys;
        let n_keys = keys.len() as u64;
        let IndexTables {
            import_keys,
            by_sig: by_sig_table,
            verdict_ids,
            pr_verdicts: pr_verdicts_table,
            prs: prs_table,
            pr_heads,
            claim_hashes: claim_hashes_table,
            claim_terms: claim_terms_table,
            events_by_source,
            events_by_kind,
            client_keys,
            client_keys_by_time,
        } = t;
        let ids: Vec<_> = new_ids.into_iter().collect();
        let prs: Vec<_> = prs.into_iter().collect();
        let heads: Vec<_> = heads.into_iter().collect();
        let client: Vec<_> = new_client_keys.into_iter().collect();
        let tasks = vec![
            sorted_task(keys, move |(key, seq)| {
                let before = import_keys.insert(key.as_slice(), seq)?;
                if before.is_some() && check == KeyCheck::Fresh {
                    return Err(StoreError::RepeatedImportKey(hex(key)));
                }
                Ok(())
            }),
            sorted_task(by_sig, move |(repo, sig_hash, kind, seq)| {
                by_sig_table.insert((*repo, sig_hash.as_str(), *kind, *seq), ())?;
                Ok(())
            }),
            sorted_task(ids, move |((repo, pr, head, at), seq)| {
                verdict_ids.insert((*repo, *pr, head.as_str(), at.as_str()), seq)?;
                Ok(())
            }),
            sorted_task(pr_verdicts, move |key| {
                pr_verdicts_table.insert(*key, ())?;
                Ok(())
            }),
            sorted_task(prs, move |(key, delta)| {
                let (a, r, b, last) = prs_table.get(*key)?.map_or((0, 0, 0, 0), |v| v.value());
                let [da, dr, db] = delta.by_overall;
                prs_table.insert(*key, (a + da, r + dr, b + db, last.max(delta.last_seq)))?;
                Ok(())
            }),
            sorted_task(heads, move |((repo, pr, head), [da, dr, db])| {
                let key = (*repo, *pr, head.as_str());
                let (a, r, b) = pr_heads.get(key)?.map_or((0, 0, 0), |v| v.value());
                pr_heads.insert(key, (a + da, r + dr, b + db))?;
                Ok(())
            }),
            sorted_task(claim_hashes, move |key| {
                claim_hashes_table.insert(*key, ())?;
                Ok(())
            }),
            {
                let size = claim_terms.len();
                let mut entries = claim_terms;
                let task: Task<'_> = Box::new(move || {
                    entries.sort_unstable();
                    postings::append_sorted(claim_terms_table, &entries)
                });
                (size, task)
            },
            sorted_task(by_source, move |(source, seq)| {
                events_by_source.insert((source.as_str(), *seq), ())?;
                Ok(())
            }),
            sorted_task(by_kind, move |(kind, seq)| {
                events_by_kind.insert((kind.as_str(), *seq), ())?;
                Ok(())
            }),
            sorted_task(client, move |(key, (seq, created, fingerprint))| {
                client_keys.insert(key.as_slice(), (*seq, *created, *fingerprint))?;
                client_keys_by_time.insert((*created, key.as_slice()), ())?;
                Ok(())
            }),
        ];
        run_largest_first(tasks)?;
        Ok(n_keys)
    }
}

/// The seq a client key was stored with, from this transaction or an earlier one.
pub(super) fn client_key_lookup(
    later: &Deferred,
    table: &impl ReadableTable<&'static [u8], (u64, u64, u64)>,
    key: &[u8],
) -> Result<Option<(u64, u64)>, StoreError> {
    if let Some(&(seq, _, fingerprint)) = later.new_client_keys.get(key) {
        return Ok(Some((seq, fingerprint)));
    }
    Ok(table.get(key)?.map(|v| {
        let (seq, _, fingerprint) = v.value();
        (seq, fingerprint)
    }))
}

/// One index's sort and inserts.
type Task<'a> = Box<dyn FnOnce() -> Result<(), StoreError> + Send + 'a>;

/// A task that sorts `entries` and gives them to `insert` in key order, with its size.
fn sorted_task<'a, T: Ord + Send + 'a>(
    mut entries: Vec<T>,
    insert: impl FnMut(&T) -> Result<(), StoreError> + Send + 'a,
) -> (usize, Task<'a>) {
    let size = entries.len();
    let task: Task<'a> = Box::new(move || {
        entries.sort_unstable();
        entries.iter().try_for_each(insert)
    });
    (size, task)
}

/// Runs `tasks`, each given with its number of entries: on this thread alone for a small
/// transaction (a thread costs more than it saves), else on up to one thread per core.
fn run_largest_first(tasks: Vec<(usize, Task<'_>)>) -> Result<(), StoreError> {
    /// Below this many entries in all, one thread does every task.
    const PARALLEL_FROM: usize = 50_000;
    let total: usize = tasks.iter().map(|(n, _)| n).sum();
    let threads = if total < PARALLEL_FROM {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    run_on(tasks, threads)
}

/// Runs `tasks` largest first on up to `threads` threads (this one among them), each task
/// taken by the next free thread. redb allows it: a write transaction is `Sync`, and each task
/// has a table of its own. After a failure or a panic the tasks not yet begun are dropped; the
/// error returned is one of the failed tasks', a panic is resumed here.
fn run_on(mut tasks: Vec<(usize, Task<'_>)>, threads: usize) -> Result<(), StoreError> {
    let threads = threads.min(tasks.len());
    // Smallest first, so that `pop` takes the largest.
    tasks.sort_by_key(|(n, _)| *n);
    let queue = std::sync::Mutex::new(tasks);
    // Never held while a task runs, so never poisoned; were it, its tasks would still be there.
    let queue = || {
        queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let next = || queue().pop();
    let drop_the_rest = || queue().clear();
    let work = || -> Result<(), StoreError> {
        while let Some((_, task)) = next() {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    drop_the_rest();
                    return Err(e);
                }
                Err(panic) => {
                    drop_the_rest();
                    std::panic::resume_unwind(panic);
                }
            }
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut result = work();
        for helper in helpers {
            let theirs = helper
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            result = result.and(theirs);
        }
        result
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    /// Tasks of `sizes` entries that record their size in `ran`; the one of size `fails`
    /// fails.
    fn tasks<'a>(
        sizes: &[usize],
        fails: usize,
        ran: &'a Mutex<Vec<usize>>,
    ) -> Vec<(usize, Task<'a>)> {
        sizes
            .iter()
            .map(|&n| {
                let task: Task<'a> = Box::new(move || {
                    ran.lock().unwrap().push(n);
                    if n == fails {
                        return Err(StoreError::BulkAborted);
                    }
                    Ok(())
                });
                (n, task)
            })
            .collect()
    }

    #[test]
    fn one_thread_runs_the_tasks_largest_first_and_none_after_a_failure() {
        let ran = Mutex::new(Vec::new());
        run_on(tasks(&[3, 40, 0, 7], usize::MAX, &ran), 1).unwrap();
        assert_eq!(*ran.lock().unwrap(), [40, 7, 3, 0]);

        let ran = Mutex::new(Vec::new());
        let failed = run_on(tasks(&[3, 40, 0, 7], 7, &ran), 1);
        assert!(matches!(failed, Err(StoreError::BulkAborted)));
        assert_eq!(
            *ran.lock().unwrap(),
            [40, 7],
            "after a failure no task begins"
        );

        // Below 50,000 entries in all, one thread, whatever the cores.
        let ran = Mutex::new(Vec::new());
        run_largest_first(tasks(&[3, 40, 0, 7], usize::MAX, &ran)).unwrap();
        assert_eq!(*ran.lock().unwrap(), [40, 7, 3, 0]);
    }

    #[test]
    fn two_threads_run_the_two_largest_tasks_at_once_and_every_task_once() {
        // The two largest tasks each wait (up to 10 s) until both have begun: only two
        // threads running at once let them through in time.
        let begun = (Mutex::new(0), Condvar::new());
        let threads = Mutex::new(Vec::new());
        let ran = Mutex::new(Vec::new());
        let mut all: Vec<(usize, Task<'_>)> = Vec::new();
        for n in [90_000, 60_000, 30_000, 20_000, 10_000] {
            let (begun, threads, ran) = (&begun, &threads, &ran);
            let task: Task<'_> = Box::new(move || {
                threads.lock().unwrap().push(std::thread::current().id());
                if n >= 60_000 {
                    let (count, both) = begun;
                    let mut count = count.lock().unwrap();
                    *count += 1;
                    both.notify_all();
                    let (count, timeout) = both
                        .wait_timeout_while(count, Duration::from_secs(10), |c| *c < 2)
                        .unwrap();
                    assert!(!timeout.timed_out() && *count == 2, "ran one at a time");
                }
                ran.lock().unwrap().push(n);
                Ok(())
            });
            all.push((n, task));
        }
        run_on(all, 2).unwrap();
        let mut ran = ran.into_inner().unwrap();
        ran.sort_unstable();
        assert_eq!(ran, [10_000, 20_000, 30_000, 60_000, 90_000]);
        let mut ids = threads.into_inner().unwrap();
        ids.sort_by_key(|id| format!("{id:?}"));
        ids.dedup();
        assert_eq!(ids.len(), 2);

        let ran = Mutex::new(Vec::new());
        let failed = run_on(tasks(&[90_000, 60_000, 30_000], 90_000, &ran), 2);
        assert!(matches!(failed, Err(StoreError::BulkAborted)));
    }

    #[test]
    #[should_panic(expected = "a task panicked")]
    fn a_panic_in_a_task_reaches_the_caller() {
        let ran = Mutex::new(Vec::new());
        let mut all = tasks(&[5, 4], usize::MAX, &ran);
        all.push((10, Box::new(|| panic!("a task panicked"))));
        let _ = run_on(all, 2);
    }
}
