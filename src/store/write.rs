//! The write path: a batch of records committed in one durable write transaction, with every
//! index and counter updated in that same transaction.
//!
//! The index entries (import keys, sig_hashes, claim hashes, event sources and kinds) are
//! inserted at the end of the transaction, each index in key order: inserted in put order they
//! land all over their trees (the hashes are random; a source's or kind's new entries go at the
//! end of its range, in the middle of the tree), sorted they walk each tree once, leaf after
//! leaf. The indexes are separate trees, so a large transaction fills them on several threads.
//! Measured on a 1M-line legacy import (docs/BENCHMARKS.md). Inside the transaction two of them
//! are read: the sig_hash index by the identity check, for verdicts committed earlier (this
//! transaction's it finds in `new_verdicts`), and the import keys by the duplicate check (this
//! transaction's it finds in `new_keys`). So the result at commit is the same.
//!
//! [`BulkWriter`] (the legacy import) keeps one transaction open across many calls and defers
//! those entries to its commit, so that each index is built in one sorted pass per transaction.

use foldhash::HashMap;

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use super::codec::encode;
use super::meta::{self, CounterDeltas};
use super::read::verdict_entry;
use super::tables::*;
use super::values::{EventValue, OutcomeValue, VerdictValue};
use super::{Store, StoreError};
use crate::model::{ObservedOp, OutcomeRow, Verdict};

/// A verdict with the records it implies. The outcome row and the event are stored only when
/// the verdict itself is new, so a repeated verdict adds nothing at all.
#[derive(Debug, Clone)]
pub struct NewVerdict {
    pub verdict: Verdict,
    /// The KB row (`kind:"audit"`) to store with it, if any.
    pub outcome_line: Option<String>,
    /// The observer event to store with it, if any.
    pub event: Option<NewEvent>,
    pub received_at_ms: u64,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub op: ObservedOp,
    /// The exact `ops.jsonl` line for this event.
    pub line: String,
    pub body: Option<String>,
    pub source_original: Option<String>,
    pub received_at_ms: u64,
}

#[derive(Debug, Clone)]
pub struct NewOutcome {
    pub row: OutcomeRow,
    pub received_at_ms: u64,
}

#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "records live briefly in one batch; boxing would add an allocation per verdict"
)]
pub enum Record {
    Verdict(NewVerdict),
    Event(NewEvent),
    Outcome(NewOutcome),
}

/// One record to write, with the import identity of the legacy line it came from, if any: a
/// record whose import key is already stored is a duplicate.
#[derive(Debug, Clone)]
pub struct Put {
    pub record: Record,
    pub import_key: Option<Vec<u8>>,
}

impl From<Record> for Put {
    fn from(record: Record) -> Put {
        Put {
            record,
            import_key: None,
        }
    }
}

/// What became of one [`Put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Stored under `seq`; a verdict's outcome row and event got the seqs that follow it.
    Stored {
        seq: u64,
        outcome_seq: Option<u64>,
        event_seq: Option<u64>,
    },
    /// Already stored (same verdict identity or same import key) under `seq`; nothing written.
    Duplicate { seq: u64 },
}

impl Written {
    pub fn seq(&self) -> u64 {
        match *self {
            Written::Stored { seq, .. } | Written::Duplicate { seq } => seq,
        }
    }
}

impl Store {
    /// Writes `puts` in order in one write transaction and commits it durably (fsync) before
    /// returning. Either every put is applied or, on error, none is.
    pub fn write(&self, puts: &[Put]) -> Result<Vec<Written>, StoreError> {
        let txn = self.begin_write()?;
        let mut later = Deferred::default();
        let written = {
            let mut t = Tables::open(&txn, &mut later)?;
            let written = write_in(&mut t, puts, KeyCheck::Lookup)?;
            t.insert_deferred(KeyCheck::Lookup)?;
            written
        };
        txn.commit()?;
        Ok(written)
    }

    /// A writer for many batches of puts per transaction (the legacy import): see
    /// [`BulkWriter`].
    pub fn bulk_writer(&self) -> BulkWriter<'_> {
        BulkWriter {
            store: self,
            txn: None,
            later: Deferred::default(),
            n_keys: Some(0),
            failed: false,
        }
    }
}

/// Writes batches of puts into one write transaction, held open until [`BulkWriter::commit`]
/// (the next write begins a new one). The index entries of the whole transaction are inserted
/// at its commit, sorted: each tree is then built in one pass instead of being walked once per
/// batch. Nothing is durable before `commit` returns; dropping the writer without it, or a
/// failed write or commit, rolls the open transaction back, and after a failure every later
/// call fails too (what the transaction had answered is gone).
///
/// The puts given to one writer must not repeat an import key (the import numbers each line's
/// occurrences, so its keys are distinct). While the `import_keys` table holds only keys this
/// writer committed (it was empty when the writer began), no lookup is needed to know a key is
/// new, and none is done; a repeated key is then found when the keys are inserted and fails
/// the commit. Otherwise each key is looked up, as [`Store::write`] does.
pub struct BulkWriter<'s> {
    store: &'s Store,
    txn: Option<WriteTransaction>,
    later: Deferred,
    /// `Some(n)`: `import_keys` held exactly the `n` keys this writer committed when its
    /// transactions began, so its keys are new without a lookup.
    n_keys: Option<u64>,
    /// A write or commit failed: what the open transaction had answered is gone, so the
    /// writer refuses to go on.
    failed: bool,
}

impl BulkWriter<'_> {
    /// Applies `puts` in order in the open transaction (beginning one if none is open).
    pub fn write(&mut self, puts: &[Put]) -> Result<Vec<Written>, StoreError> {
        if self.failed {
            return Err(StoreError::BulkAborted);
        }
        let txn = match &mut self.txn {
            Some(txn) => txn,
            slot @ None => {
                let txn = self.store.begin_write()?;
                let n_stored = txn.open_table(IMPORT_KEYS)?.len()?;
                if self.n_keys != Some(n_stored) {
                    self.n_keys = None;
                }
                slot.insert(txn)
            }
        };
        let check = KeyCheck::given(self.n_keys);
        let written =
            Tables::open(txn, &mut self.later).and_then(|mut t| write_in(&mut t, puts, check));
        if written.is_err() {
            // Part of `puts` may be applied: nothing of this transaction may be committed.
            self.txn = None;
            self.later = Deferred::default();
            self.failed = true;
        }
        written
    }

    /// Inserts the deferred index entries and commits the open transaction durably, if any.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if self.failed {
            return Err(StoreError::BulkAborted);
        }
        let Some(txn) = self.txn.take() else {
            return Ok(());
        };
        let mut later = std::mem::take(&mut self.later);
        let check = KeyCheck::given(self.n_keys);
        let inserted = Tables::open(&txn, &mut later).and_then(|mut t| t.insert_deferred(check));
        let committed = inserted.and_then(|n_new_keys| Ok((n_new_keys, txn.commit()?)));
        match committed {
            Ok((n_new_keys, ())) => {
                self.n_keys = self.n_keys.map(|n| n + n_new_keys);
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

/// How a transaction knows whether an import key is stored already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyCheck {
    /// Look it up in `import_keys` (and among this transaction's new keys).
    Lookup,
    /// It is new: `import_keys` holds none of the writer's puts' keys, which are distinct.
    Fresh,
}

/// The index entries, inserted in key order when the transaction ends, and what the
/// transaction must find of them before then.
#[derive(Default)]
struct Deferred {
    /// `(sig_hash, kind, seq)` entries of `sig_index`.
    by_sig: Vec<(String, u8, u64)>,
    /// `(claim_hash, seq, sig_hash)` entries of `claims`.
    claims: Vec<(u64, u64, String)>,
    /// `(source, seq)` entries of `events_by_source`.
    by_source: Vec<(String, u64)>,
    /// `(event_kind, seq)` entries of `events_by_kind`.
    by_kind: Vec<(String, u64)>,
    /// The seqs of the verdicts this transaction wrote, by sig_hash (their `sig_index` entries
    /// wait in `by_sig`), for the identity check.
    new_verdicts: HashMap<String, Vec<u64>>,
    /// Import keys and the seqs they became, with [`KeyCheck::Lookup`]: a key seen twice in
    /// one transaction is a duplicate the second time, as it would be across transactions.
    new_keys: HashMap<Vec<u8>, u64>,
    /// The same with [`KeyCheck::Fresh`], where nothing looks them up.
    fresh_keys: Vec<(Vec<u8>, u64)>,
}

impl KeyCheck {
    /// Fresh while the writer knows `import_keys` holds only its own keys.
    fn given(n_keys: Option<u64>) -> KeyCheck {
        match n_keys {
            Some(_) => KeyCheck::Fresh,
            None => KeyCheck::Lookup,
        }
    }
}

impl Deferred {
    /// Inserts every deferred entry, each index in key order; returns how many import keys
    /// were inserted. The five indexes are separate trees, so a large transaction sorts and
    /// fills them on up to one thread per core, the largest first.
    fn insert(self, t: IndexTables<'_, '_>, check: KeyCheck) -> Result<u64, StoreError> {
        let Deferred {
            by_sig,
            claims,
            by_source,
            by_kind,
            new_verdicts: _,
            new_keys,
            mut fresh_keys,
        } = self;
        fresh_keys.extend(new_keys);
        let keys = fresh_keys;
        let n_keys = keys.len() as u64;
        let IndexTables {
            import_keys,
            sig_index,
            claims: claims_table,
            events_by_source,
            events_by_kind,
        } = t;
        let tasks = vec![
            sorted_task(keys, move |(key, seq)| {
                let before = import_keys.insert(key.as_slice(), seq)?;
                if before.is_some() && check == KeyCheck::Fresh {
                    return Err(StoreError::RepeatedImportKey(hex(key)));
                }
                Ok(())
            }),
            sorted_task(by_sig, move |(sig_hash, kind, seq)| {
                sig_index.insert((sig_hash.as_str(), *kind, *seq), ())?;
                Ok(())
            }),
            sorted_task(claims, move |(hash, seq, sig_hash)| {
                claims_table.insert((*hash, *seq), sig_hash.as_str())?;
                Ok(())
            }),
            sorted_task(by_source, move |(source, seq)| {
                events_by_source.insert((source.as_str(), *seq), ())?;
                Ok(())
            }),
            sorted_task(by_kind, move |(kind, seq)| {
                events_by_kind.insert((kind.as_str(), *seq), ())?;
                Ok(())
            }),
        ];
        run_largest_first(tasks)?;
        Ok(n_keys)
    }
}

/// The index tables [`Deferred::insert`] fills, borrowed apart so that each can go to a thread.
struct IndexTables<'a, 'txn> {
    import_keys: &'a mut Table<'txn, &'static [u8], u64>,
    sig_index: &'a mut Table<'txn, (&'static str, u8, u64), ()>,
    claims: &'a mut Table<'txn, (u64, u64), &'static str>,
    events_by_source: &'a mut Table<'txn, (&'static str, u64), ()>,
    events_by_kind: &'a mut Table<'txn, (&'static str, u64), ()>,
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

struct Tables<'txn> {
    meta: Table<'txn, &'static str, u64>,
    verdicts: Table<'txn, u64, &'static [u8]>,
    outcomes: Table<'txn, u64, &'static [u8]>,
    events: Table<'txn, u64, &'static [u8]>,
    sig_index: Table<'txn, (&'static str, u8, u64), ()>,
    claims: Table<'txn, (u64, u64), &'static str>,
    events_by_source: Table<'txn, (&'static str, u64), ()>,
    events_by_kind: Table<'txn, (&'static str, u64), ()>,
    import_keys: Table<'txn, &'static [u8], u64>,
    later: &'txn mut Deferred,
}

impl<'txn> Tables<'txn> {
    fn open(
        txn: &'txn WriteTransaction,
        later: &'txn mut Deferred,
    ) -> Result<Tables<'txn>, StoreError> {
        Ok(Tables {
            meta: txn.open_table(META)?,
            verdicts: txn.open_table(VERDICTS_BY_SEQ)?,
            outcomes: txn.open_table(OUTCOMES)?,
            events: txn.open_table(EVENTS)?,
            sig_index: txn.open_table(SIG_INDEX)?,
            claims: txn.open_table(CLAIMS)?,
            events_by_source: txn.open_table(EVENTS_BY_SOURCE)?,
            events_by_kind: txn.open_table(EVENTS_BY_KIND)?,
            import_keys: txn.open_table(IMPORT_KEYS)?,
            later,
        })
    }

    /// Inserts the entries waiting in `later` into these tables (see [`Deferred::insert`]).
    fn insert_deferred(&mut self, check: KeyCheck) -> Result<u64, StoreError> {
        let tables = IndexTables {
            import_keys: &mut self.import_keys,
            sig_index: &mut self.sig_index,
            claims: &mut self.claims,
            events_by_source: &mut self.events_by_source,
            events_by_kind: &mut self.events_by_kind,
        };
        std::mem::take(&mut *self.later).insert(tables, check)
    }

    /// The seq of the verdict with this identity, if one is stored (or was written earlier in
    /// this transaction): the sig_hash's few verdicts, its verdict range of `sig_index` (and
    /// `new_verdicts`), read by seq.
    fn verdict_with_identity(
        &self,
        v: &Verdict,
        sig_hash: &str,
    ) -> Result<Option<u64>, StoreError> {
        let range = (sig_hash, KIND_VERDICT, 0)..=(sig_hash, KIND_VERDICT, u64::MAX);
        let mut seqs = Vec::new();
        for row in self.sig_index.range(range)? {
            seqs.push(row?.0.value().2);
        }
        if let Some(new) = self.later.new_verdicts.get(sig_hash) {
            seqs.extend_from_slice(new);
        }
        for seq in seqs {
            let bytes = self.verdicts.get(seq)?.ok_or(StoreError::Dangling {
                index: "sig_index",
                seq,
            })?;
            let stored = verdict_entry(sig_hash, seq, bytes.value())?.value;
            if stored.pr_number == v.pr_number
                && stored.head_sha == v.head_sha
                && stored.audited_at == v.audited_at
            {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }
}

/// Applies `puts` in `t`'s transaction, leaving their index entries in `t.later`.
fn write_in(t: &mut Tables<'_>, puts: &[Put], check: KeyCheck) -> Result<Vec<Written>, StoreError> {
    let mut last_seq = meta::get(&t.meta, meta::LAST_SEQ)?;
    let mut counters = CounterDeltas::default();
    let mut written = Vec::with_capacity(puts.len());
    for put in puts {
        if let (Some(key), KeyCheck::Lookup) = (&put.import_key, check) {
            let stored = match t.later.new_keys.get(key.as_slice()) {
                Some(&seq) => Some(seq),
                None => t.import_keys.get(key.as_slice())?.map(|seq| seq.value()),
            };
            if let Some(seq) = stored {
                written.push(Written::Duplicate { seq });
                continue;
            }
        }
        let result = match &put.record {
            Record::Verdict(v) => put_verdict(t, &mut last_seq, &mut counters, v)?,
            Record::Event(e) => {
                let seq = put_event(t, &mut last_seq, &mut counters, e)?;
                Written::Stored {
                    seq,
                    outcome_seq: None,
                    event_seq: None,
                }
            }
            Record::Outcome(o) => {
                let seq = put_outcome(
                    t,
                    &mut last_seq,
                    &mut counters,
                    &o.row.line,
                    &o.row.sig_hash,
                    &o.row.kind,
                    o.received_at_ms,
                )?;
                Written::Stored {
                    seq,
                    outcome_seq: None,
                    event_seq: None,
                }
            }
        };
        if let (Some(key), Written::Stored { seq, .. }) = (&put.import_key, result) {
            match check {
                KeyCheck::Lookup => t.later.new_keys.insert(key.clone(), seq),
                KeyCheck::Fresh => {
                    t.later.fresh_keys.push((key.clone(), seq));
                    None
                }
            };
        }
        written.push(result);
    }
    t.meta.insert(meta::LAST_SEQ, last_seq)?;
    counters.apply(&mut t.meta)?;
    Ok(written)
}

fn put_verdict(
    t: &mut Tables<'_>,
    last_seq: &mut u64,
    counters: &mut CounterDeltas,
    new: &NewVerdict,
) -> Result<Written, StoreError> {
    let v = &new.verdict;
    let sig_hash = v.sig_hash();
    if let Some(seq) = t.verdict_with_identity(v, &sig_hash)? {
        return Ok(Written::Duplicate { seq });
    }
    *last_seq += 1;
    let seq = *last_seq;
    let value = VerdictValue::from_verdict(v, new.received_at_ms);
    t.verdicts.insert(seq, encode(&value).as_slice())?;
    t.later.by_sig.push((sig_hash.clone(), KIND_VERDICT, seq));
    t.later
        .new_verdicts
        .entry(sig_hash.clone())
        .or_default()
        .push(seq);
    for claim in &v.claims {
        t.later.claims.push((claim.hash.0, seq, sig_hash.clone()));
    }
    counters.add(meta::VERDICTS, 1);
    counters.add_keyed(meta::VERDICTS_BY_OVERALL, v.overall.as_str(), 1);

    let outcome_seq = match &new.outcome_line {
        Some(line) => Some(put_outcome(
            t,
            last_seq,
            counters,
            line,
            &sig_hash,
            "audit",
            new.received_at_ms,
        )?),
        None => None,
    };
    let event_seq = match &new.event {
        Some(event) => Some(put_event(t, last_seq, counters, event)?),
        None => None,
    };
    Ok(Written::Stored {
        seq,
        outcome_seq,
        event_seq,
    })
}

fn put_outcome(
    t: &mut Tables<'_>,
    last_seq: &mut u64,
    counters: &mut CounterDeltas,
    line: &str,
    sig_hash: &str,
    kind: &str,
    received_at_ms: u64,
) -> Result<u64, StoreError> {
    *last_seq += 1;
    let seq = *last_seq;
    let value = OutcomeValue {
        received_at_ms,
        sig_hash: sig_hash.to_owned(),
        kind: kind.to_owned(),
        line: line.to_owned(),
    };
    t.outcomes.insert(seq, encode(&value).as_slice())?;
    if !sig_hash.is_empty() {
        t.later
            .by_sig
            .push((sig_hash.to_owned(), KIND_OUTCOME, seq));
    }
    counters.add(meta::OUTCOMES, 1);
    counters.add_keyed(meta::OUTCOMES_BY_KIND, kind, 1);
    Ok(seq)
}

fn put_event(
    t: &mut Tables<'_>,
    last_seq: &mut u64,
    counters: &mut CounterDeltas,
    new: &NewEvent,
) -> Result<u64, StoreError> {
    *last_seq += 1;
    let seq = *last_seq;
    let value = EventValue::new(
        &new.op,
        new.line.clone(),
        new.body.clone(),
        new.source_original.clone(),
        new.received_at_ms,
    );
    t.events.insert(seq, encode(&value).as_slice())?;
    let later = &mut *t.later;
    later.by_source.push((value.source.clone(), seq));
    if let Some(sig_hash) = &value.sig_hash {
        later.by_sig.push((sig_hash.clone(), KIND_EVENT, seq));
    }
    if let Some(kind) = &value.event_kind {
        later.by_kind.push((kind.clone(), seq));
    }
    count_event(counters, &value, 1);
    Ok(seq)
}

/// Adds (`delta` 1) or takes away (`delta` -1) an event's counts.
fn count_event(counters: &mut CounterDeltas, value: &EventValue, delta: i64) {
    if let Some(kind) = &value.event_kind {
        counters.add_keyed(meta::EVENTS_BY_KIND, kind, delta);
    }
    counters.add(meta::EVENTS, delta);
    counters.add_keyed(meta::EVENTS_BY_SOURCE, &value.source, delta);
    counters.add(
        if value.success {
            meta::EVENTS_SUCCESS
        } else {
            meta::EVENTS_FAILURE
        },
        delta,
    );
}

/// Deletes events `seq`s from the table and every index, at once (nothing waits for the
/// commit), keeping counters true. Used by retention, in transactions of its own; returns how
/// many were deleted.
pub(super) fn delete_events(txn: &WriteTransaction, seqs: &[u64]) -> Result<u64, StoreError> {
    let mut later = Deferred::default();
    let mut t = Tables::open(txn, &mut later)?;
    let mut counters = CounterDeltas::default();
    let mut n_deleted = 0;
    for &seq in seqs {
        let Some(bytes) = t.events.remove(seq)? else {
            continue;
        };
        let value: EventValue =
            super::codec::decode(bytes.value()).map_err(|source| StoreError::Codec {
                table: "events",
                seq,
                source,
            })?;
        drop(bytes);
        t.events_by_source.remove((value.source.as_str(), seq))?;
        if let Some(sig_hash) = &value.sig_hash {
            t.sig_index.remove((sig_hash.as_str(), KIND_EVENT, seq))?;
        }
        if let Some(kind) = &value.event_kind {
            t.events_by_kind.remove((kind.as_str(), seq))?;
        }
        count_event(&mut counters, &value, -1);
        n_deleted += 1;
    }
    counters.apply(&mut t.meta)?;
    Ok(n_deleted)
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
