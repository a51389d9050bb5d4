//! Journaled writes: a batch of observer events is durable once its entry in the write-ahead
//! journal (`journal.rs`) is synced, and is applied to redb in a commit that does not sync
//! (`Durability::None`). The database syncs at a checkpoint instead: a durable commit when the
//! journal is full, and at every other durable commit (any other write, the close).
//!
//! Why: a durable redb commit writes every page the batch dirtied, in a dozen places in the
//! file, then syncs; the journal writes the batch once, sequentially, over a zero-filled file,
//! and syncs that. Pages dirtied by many commits are written once per checkpoint.
//!
//! Invariants:
//! - A batch's entry is synced before its commit becomes visible to readers, and before it is
//!   answered. The batch may be applied while the entry syncs, on the journal's sync thread
//!   ([`Pace`] says when), and is committed only after the sync returned.
//! - Each journaled commit records its entry's lsn in `meta` (`journal/lsn`), in the same
//!   transaction. So the database's durable state says which entries it holds.
//! - Applying a batch is a function of the database and the batch (seqs, counters, index
//!   entries, duplicates: no clock, no randomness), so an entry applied again after a crash,
//!   on the durable state it was first applied to, stores what it stored first.
//! - Entries are applied in lsn order, one writer at a time (the journal's lock); other writes
//!   commit durably under redb's write lock, and so never come between a journaled write's
//!   place in the lsn order and its place in the database.
//! - Recovery (every open and every reopen after a fault) applies the entries after the
//!   database's `journal/lsn`, in order, then checkpoints if it applied any. An entry of another schema version
//!   pending there is refused, not guessed at: the binary that wrote it applies it.
//! - The journal is written again from its start only after a durable commit that holds every
//!   entry in it.
//!
//! Only event batches are journaled: they are the one high-rate write (`POST /event`), and
//! their records are fully described by what is stored ([`NewEvent`]). Any other batch commits
//! durably, as before, and the journal restarts after it.

use std::sync::{Mutex, MutexGuard, PoisonError};

use lakehouse_kb_migrations as migrations;
use redb::{Database, Durability, ReadableDatabase};
use serde::{Deserialize, Serialize};

use super::journal::{self, Entry, Journal};
use super::records::{ClientKey, NewEvent, Put, Record, Written};
use super::tables::META;
use super::values::EventValue;
use super::write::apply_batch;
use super::{SCHEMA_VERSION, Store, StoreError, StoreOptions, begin_write_in, meta};

/// The lsn of the last journal entry whose batch the database holds (0: none yet).
pub const JOURNAL_LSN: &str = migrations::v0012_journal::JOURNAL_LSN_KEY;

/// The database file's journal id: its journal's entries carry it (0: none given yet).
pub const JOURNAL_ID: &str = migrations::v0012_journal::JOURNAL_ID_KEY;

/// The default size of the journal file: SQLite's default WAL size before it checkpoints
/// (1,000 pages of 4 KiB), about 10,000 events.
pub const DEFAULT_JOURNAL_BYTES: u64 = 4 << 20;

/// What a write's caller knows of the writes around it: it decides how the entry's sync is
/// waited for. On a virtual machine waking a sleeping thread costs tens of microseconds (about
/// 65 µs a one-event commit on the benchmark machine, docs/benchmarks/log-2026-12.md), a good
/// part of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One batch after another, the cores otherwise idle: the batch is applied while the entry
    /// syncs on the journal's sync thread, and both sides of the hand-over spin (bounded)
    /// rather than sleep.
    Alone,
    /// Other work wants the cores (requests being read while this batch commits): nothing
    /// spins; a small batch syncs in line, a larger one is applied while the entry syncs.
    Busy,
}

/// From this many puts a [`Pace::Busy`] batch is applied while its entry syncs; below, waking the
/// sync thread costs more than the overlap saves.
const OVERLAP_PUTS: usize = 4;

/// The journal, when the store has one open; locked for the whole of every `Store::write`.
#[derive(Debug, Default)]
pub(super) struct JournalSlot(Mutex<Option<Journal>>);

impl JournalSlot {
    pub fn lock(&self) -> MutexGuard<'_, Option<Journal>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One put of a journaled batch, as the entry keeps it (read back).
#[derive(Deserialize)]
struct JournalPut {
    event: EventValue,
    import_key: Option<Vec<u8>>,
    client_key: Option<ClientKey>,
}

/// [`JournalPut`] as written: the same layout, borrowed from the put.
#[derive(Serialize)]
struct JournalPutRef<'a> {
    event: &'a EventValue,
    import_key: &'a Option<Vec<u8>>,
    client_key: &'a Option<ClientKey>,
}

/// The entry's payload for `puts`, when they are all events.
fn payload_of(puts: &[Put]) -> Option<Vec<u8>> {
    let kept = puts
        .iter()
        .map(|put| match &put.record {
            Record::Event(e) => Some(JournalPutRef {
                event: &e.value,
                import_key: &put.import_key,
                client_key: &put.client_key,
            }),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    bincode::serde::encode_to_vec(&kept, bincode::config::standard()).ok()
}

/// The puts of an entry's payload.
fn puts_of(payload: &[u8]) -> Result<Vec<Put>, String> {
    let config = bincode::config::standard().with_limit::<{ journal::MAX_FILE_BYTES as usize }>();
    let (kept, _): (Vec<JournalPut>, usize) =
        bincode::serde::decode_from_slice(payload, config).map_err(|e| e.to_string())?;
    Ok(kept
        .into_iter()
        .map(|p| Put {
            record: Record::Event(NewEvent { value: p.event }),
            import_key: p.import_key,
            client_key: p.client_key,
        })
        .collect())
}

fn io_error(e: std::io::Error) -> StoreError {
    StoreError::Storage(redb::Error::Io(e))
}

impl Store {
    /// Writes `puts` through the journal when they are events and the journal holds them:
    /// `None` when they must commit durably instead.
    pub(super) fn write_journaled(
        &self,
        slot: &mut Option<Journal>,
        puts: &[Put],
        pace: Pace,
    ) -> Result<Option<(Vec<Written>, bool)>, StoreError> {
        let options = &self.shared.options;
        if options.journal_bytes == 0 {
            return Ok(None);
        }
        let Some(payload) = payload_of(puts) else {
            return Ok(None);
        };
        // (Not while faulted: `write_paced` refuses every write then, before this.)
        let db = self.db()?;
        if slot.is_none() {
            *slot = Some(open_journal(&db, &self.shared.path, options)?);
        }
        let journal = slot.as_mut().expect("opened above");
        if !journal.can_hold(payload.len()) {
            return Ok(None);
        }
        if !journal.has_room(payload.len()) {
            checkpoint(&db, options, None)?;
            journal.restart();
        }
        let staged = match journal.stage(SCHEMA_VERSION, &payload) {
            Ok(staged) => staged,
            Err(e) => {
                // Its length and CRC are written last, so a failed stage left no entry: the
                // bytes in place are cleared when the disk allows, and the write was not stored.
                let _ = journal.erase_next();
                return Err(io_error(e));
            }
        };
        match sync_and_apply(&db, journal, staged, puts, pace, options) {
            Ok(done) => Ok(Some(done)),
            // Not applied, so not to be applied by a recovery either: the entry goes.
            Err(e) => match journal.erase_next() {
                Ok(()) => Err(e),
                Err(erase) => {
                    let erase = io_error(erase);
                    self.note_error(&erase);
                    Err(StoreError::MaybeStored(format!(
                        "{e}; then its journal entry could not be erased ({erase}), so the \
                         store may apply it when it recovers"
                    )))
                }
            },
        }
    }

    /// Applies what the journal holds beyond the database and makes it durable; keeps the journal
    /// for the writes to come when the store journals. Called by the open, before anyone
    /// else writes.
    pub(super) fn recover_journal(&self) -> Result<(), StoreError> {
        let mut slot = self.shared.journal.lock();
        *slot = recover(&*self.db()?, &self.shared.path, &self.shared.options)?;
        Ok(())
    }
}

/// Opens the journal of the database at `path`, when it has one, applies what it holds beyond
/// the database, and makes that durable. Returns it for the writes to come when the store
/// journals.
pub(super) fn recover(
    db: &Database,
    path: &std::path::Path,
    options: &StoreOptions,
) -> Result<Option<Journal>, StoreError> {
    let journal_path = journal::path_of(path);
    if !crate::fsutil::is_present(&journal_path).map_err(io_error)? {
        return Ok(None);
    }
    let (mut journal, entries) = Journal::open(
        &journal_path,
        options.journal_bytes.max(1),
        options.backend.as_ref(),
    )
    .map_err(io_error)?;
    let (applied_through, id) = (applied_lsn(db)?, journal_id(db)?);
    let pending = match pending(entries, applied_through, id) {
        Ok(pending) => pending,
        Err(foreign) => {
            tracing::warn!(
                journal = %journal_path.display(),
                entries = foreign,
                "the journal belongs to another database file (a backup put in place?): its \
                 entries are not applied"
            );
            Vec::new()
        }
    };
    if let Some(first) = pending.first()
        && first.lsn != applied_through + 1
    {
        return Err(StoreError::Journal(format!(
            "{} starts at entry {} but the database holds entries only through {}: entries \
             {} to {} are missing (was the journal replaced?)",
            journal_path.display(),
            first.lsn,
            applied_through,
            applied_through + 1,
            first.lsn - 1
        )));
    }
    for entry in &pending {
        if entry.schema != SCHEMA_VERSION {
            return Err(StoreError::Journal(format!(
                "{} holds writes not yet in the database, made by a binary of schema {} (this \
                 one is {SCHEMA_VERSION}): start that binary once to apply them",
                journal_path.display(),
                entry.schema
            )));
        }
        let puts = puts_of(&entry.payload).map_err(|e| {
            StoreError::Journal(format!(
                "{} entry {}: its checksum matches but its content does not decode: {e}",
                journal_path.display(),
                entry.lsn
            ))
        })?;
        // An entry left in the journal was applied once (a failed one is erased): failing now
        // means the file or the disk is not what it was, and nothing is skipped.
        match apply(db, &puts, entry.lsn, options) {
            Ok((txn, _, _)) => txn.commit()?,
            Err(e) if e.is_storage_fault() => return Err(e),
            Err(e) => {
                return Err(StoreError::Journal(format!(
                    "{} entry {} cannot be applied again: {e}",
                    journal_path.display(),
                    entry.lsn
                )));
            }
        }
    }
    if let Some(last) = pending.last() {
        tracing::info!(
            entries = pending.len(),
            through = last.lsn,
            "applied the journal's writes the database did not hold"
        );
    }
    // The database was just opened, so it held nothing but durable commits until the entries
    // applied above; one checkpoint makes those, and a new id, durable.
    let new_id = (id == 0).then(meta::new_random_id);
    if !pending.is_empty() || new_id.is_some() {
        checkpoint(db, options, new_id)?;
    }
    journal.continue_for(new_id.unwrap_or(id), applied_lsn(db)? + 1);
    journal.restart();
    Ok((options.journal_bytes > 0).then_some(journal))
}

impl Store {
    /// When the file the journal has open is no longer at its path (removed, moved or
    /// replaced while the service ran), makes what it holds durable in the database and lets
    /// the next journaled write begin a journal there anew: its entries, and the next
    /// writes', would be lost at the next crash (a review found five acknowledged events lost
    /// so). A `stat` of the path.
    pub(super) fn journal_in_place(&self) -> Result<(), StoreError> {
        let mut slot = self.shared.journal.lock();
        let path = journal::path_of(&self.shared.path);
        if slot.as_ref().is_none_or(|journal| journal.is_at(&path)) {
            return Ok(());
        }
        checkpoint(&*self.db()?, &self.shared.options, None)?;
        *slot = None;
        tracing::warn!(
            path = %path.display(),
            "the write-ahead journal was removed or replaced while the service ran: what it \
             held is durable in the database now, and a new journal is begun"
        );
        Ok(())
    }
}

/// Opens the journal for the first journaled write of a store, creating the file when absent.
fn open_journal(
    db: &Database,
    path: &std::path::Path,
    options: &StoreOptions,
) -> Result<Journal, StoreError> {
    if let Some(journal) = recover(db, path, options)? {
        return Ok(journal);
    }
    let (mut journal, _) = Journal::open(
        &journal::path_of(path),
        options.journal_bytes,
        options.backend.as_ref(),
    )
    .map_err(io_error)?;
    let id = match journal_id(db)? {
        0 => {
            // Durable before any entry carries it: entries with an id the file lacks are
            // another file's.
            let id = meta::new_random_id();
            checkpoint(db, options, Some(id))?;
            id
        }
        id => id,
    };
    journal.continue_for(id, applied_lsn(db)? + 1);
    Ok(journal)
}

/// Syncs the journal's staged entry (on the journal's sync thread while `puts` are applied, or
/// first, in line, for a small busy batch) and applies `puts` in a transaction that does not
/// sync, committed once the sync returned. The entry is the journal's for good only when all of
/// it succeeded.
fn sync_and_apply(
    db: &Database,
    journal: &mut Journal,
    staged: journal::Staged,
    puts: &[Put],
    pace: Pace,
    options: &StoreOptions,
) -> Result<(Vec<Written>, bool), StoreError> {
    let overlap = pace == Pace::Alone || puts.len() >= OVERLAP_PUTS;
    if overlap {
        journal.start_sync(pace == Pace::Alone).map_err(io_error)?;
    } else {
        journal.sync().map_err(io_error)?;
    }
    let applied = apply(db, puts, staged.lsn, options);
    if overlap {
        // Waited for whatever the apply did: the entry's fate must be known before the
        // transaction commits, and before anything else is written to the journal.
        journal.wait_sync().map_err(io_error)?;
    }
    let (txn, written, plain) = applied?;
    txn.commit()?;
    journal.advance(staged);
    Ok((written, plain))
}

/// Builds `puts`'s transaction, not durable, recording `lsn`; the caller commits it.
fn apply(
    db: &Database,
    puts: &[Put],
    lsn: u64,
    options: &StoreOptions,
) -> Result<(redb::WriteTransaction, Vec<Written>, bool), StoreError> {
    let mut txn = begin_write_in(db, options)?;
    txn.set_durability(Durability::None)
        .map_err(|e| StoreError::Journal(e.to_string()))?;
    let (written, plain) = apply_batch(&txn, puts, Some(lsn))?;
    Ok((txn, written, plain))
}

/// A durable commit: everything committed before it is durable after it. It gives the file the
/// journal id `new_id`, when there is one.
fn checkpoint(
    db: &Database,
    options: &StoreOptions,
    new_id: Option<u64>,
) -> Result<(), StoreError> {
    let txn = begin_write_in(db, options)?;
    {
        let mut meta = txn.open_table(META)?;
        let lsn = meta::get(&meta, JOURNAL_LSN)?;
        meta.insert(JOURNAL_LSN, lsn)?;
        if let Some(id) = new_id {
            meta.insert(JOURNAL_ID, id)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// The database's `journal/lsn`.
fn applied_lsn(db: &impl ReadableDatabase) -> Result<u64, StoreError> {
    meta_value(db, JOURNAL_LSN)
}

/// The database's `journal/id` (0: none yet).
fn journal_id(db: &impl ReadableDatabase) -> Result<u64, StoreError> {
    meta_value(db, JOURNAL_ID)
}

fn meta_value(db: &impl ReadableDatabase, key: &str) -> Result<u64, StoreError> {
    let txn = db.begin_read()?;
    match txn.open_table(META) {
        Ok(meta) => Ok(meta::get(&meta, key)?),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// The entries of a journal the database does not hold yet: those after `applied_through`, when
/// the journal is the database's (`id`); `Err` with their number when it is another file's.
fn pending(entries: Vec<Entry>, applied_through: u64, id: u64) -> Result<Vec<Entry>, usize> {
    let pending: Vec<Entry> = entries
        .into_iter()
        .filter(|e| e.lsn > applied_through)
        .collect();
    // A chain carries one id (`journal.rs`), so its first entry speaks for all.
    match pending.first() {
        Some(first) if first.id != id => Err(pending.len()),
        _ => Ok(pending),
    }
}

/// Refuses to migrate a database whose journal holds writes it does not: they were made by the
/// binary of the file's current schema, which must apply them.
pub(super) fn refuse_pending_before_migration(
    db: &impl ReadableDatabase,
    path: &std::path::Path,
) -> Result<(), StoreError> {
    let journal_path = journal::path_of(path);
    if !crate::fsutil::is_present(&journal_path).map_err(io_error)? {
        return Ok(());
    }
    let entries = journal::read_entries(&journal_path).map_err(io_error)?;
    let (applied_through, id) = (applied_lsn(db)?, journal_id(db)?);
    match pending(entries, applied_through, id)
        .unwrap_or_default()
        .first()
    {
        None => Ok(()),
        Some(e) => Err(StoreError::Journal(format!(
            "{} holds writes not yet in the database, made by a binary of schema {}: start that \
             binary once to apply them before upgrading",
            journal_path.display(),
            e.schema
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::event_record;
    use std::path::Path;

    fn options(journal_bytes: u64) -> StoreOptions {
        StoreOptions {
            journal_bytes,
            ..StoreOptions::default()
        }
    }

    fn events(from: u64, n: u64) -> Vec<Put> {
        (from..from + n)
            .map(|i| {
                let body = format!(r#"{{"source":"bot","event_kind":"k{}","i":{i}}}"#, i % 3);
                let mut put =
                    Put::from(event_record(body.as_bytes(), 1_775_000_000_000 + i).unwrap());
                if i % 2 == 0 {
                    put.client_key =
                        Some(ClientKey::new(1, &format!("key-{i}"), body.as_bytes(), i));
                }
                put
            })
            .collect()
    }

    /// The event lines with their seqs, the counters, and `check`'s verdict: what a crash must
    /// not change.
    fn contents(store: &Store) -> (Vec<(u64, String)>, String) {
        let mut lines = Vec::new();
        store
            .for_each_event_line(0, |seq, line| {
                lines.push((seq, line.to_owned()));
                Ok::<_, StoreError>(())
            })
            .unwrap();
        (lines, format!("{:?}", store.stats().unwrap()))
    }

    /// What a SIGKILL leaves: the files as the disk (and the page cache) has them, while the
    /// store is still open. The database file holds only what redb synced.
    fn crash_copy(from: &Path, to: &Path) {
        for name in ["kb.redb", "kb.redb-journal"] {
            if from.join(name).exists() {
                std::fs::copy(from.join(name), to.join(name)).unwrap();
            }
        }
    }

    fn reopened(dir: &Path) -> Store {
        let mut store = Store::open(&dir.join("kb.redb"), options(DEFAULT_JOURNAL_BYTES)).unwrap();
        assert!(store.check().unwrap().passed());
        store
    }

    #[test]
    fn an_event_batch_is_kept_whole_and_any_other_is_not() {
        let op = crate::intake::event(br#"{"source":"bot","sig_hash":"pr1-abcdef12"}"#, 7).unwrap();
        let put = Put {
            record: Record::Event(op),
            import_key: Some(vec![1, 2]),
            client_key: Some(ClientKey::new(1, "k", b"body", 9)),
        };
        let payload = payload_of(std::slice::from_ref(&put)).unwrap();
        let back = puts_of(&payload).unwrap();
        assert_eq!(back.len(), 1);
        let Record::Event(e) = &back[0].record else {
            panic!("an event")
        };
        let Record::Event(original) = &put.record else {
            unreachable!()
        };
        assert_eq!(e, original);
        assert_eq!(back[0].import_key, put.import_key);
        assert_eq!(back[0].client_key, put.client_key);

        let outcome = crate::intake::outcome_record(
            br#"{"sig_hash":"pr1-abcdef12","kind":"audit","ok":true}"#,
            7,
        )
        .unwrap();
        assert!(payload_of(&[put, Put::from(outcome)]).is_none());
        assert!(puts_of(&[0xff; 3]).is_err());
    }

    /// A symbolic link where the journal should be is refused at the open, a dangling one as
    /// well: taken for "no journal", it let the store open and then failed every journaled
    /// write while the store, reopening without a fault, looked healthy (a review's).
    #[test]
    fn a_link_at_the_journal_is_refused_even_when_dangling() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kb.redb");
        let store = Store::open(&db, options(DEFAULT_JOURNAL_BYTES)).unwrap();
        store.write(&events(0, 1)).unwrap();
        drop(store);
        let journal = journal::path_of(&db);
        std::fs::remove_file(&journal).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &journal).unwrap();
        let refused = Store::open(&db, options(DEFAULT_JOURNAL_BYTES)).unwrap_err();
        let said = refused.to_string();
        assert!(said.contains("symbolic links"), "{said}");
        assert!(
            said.contains("kb.redb-journal"),
            "the journal named: {said}"
        );
        assert!(
            !dir.path().join("nowhere").exists(),
            "nothing made through the link"
        );
    }

    /// Batches of one and of many events (applied in line and while syncing), acknowledged and
    /// then lost with the process: the reopen applies them from the journal, with the same
    /// seqs, lines, counters and idempotency keys.
    #[test]
    fn acknowledged_event_batches_survive_a_crash_before_any_checkpoint() {
        let live = tempfile::tempdir().unwrap();
        let store =
            Store::open(&live.path().join("kb.redb"), options(DEFAULT_JOURNAL_BYTES)).unwrap();
        let mut next = 0;
        for size in [1, 1, 16, 3, 64, 1] {
            let written = store.write(&events(next, size)).unwrap();
            assert!(written.iter().all(|w| matches!(w, Written::Stored { .. })));
            next += size;
        }
        assert_eq!(store.last_seq().unwrap(), next);
        let crashed = tempfile::tempdir().unwrap();
        crash_copy(live.path(), crashed.path());
        // The database file alone holds none of them: they are in the journal only.
        {
            let bare = tempfile::tempdir().unwrap();
            std::fs::copy(live.path().join("kb.redb"), bare.path().join("kb.redb")).unwrap();
            let bare = Store::open(&bare.path().join("kb.redb"), options(0)).unwrap();
            assert_eq!(bare.last_seq().unwrap(), 0, "the test would prove nothing");
        }
        let recovered = reopened(crashed.path());
        assert_eq!(contents(&recovered), contents(&store));
        // A retry of a keyed event is still answered with its first seq.
        let retry = recovered.write(&events(4, 1)).unwrap();
        assert_eq!(retry, [Written::Duplicate { seq: 5 }]);
        assert_eq!(recovered.last_seq().unwrap(), next);
    }

    /// A batch's lines keyed by their request's header are matched again after a crash as
    /// before it: the replay writes their keys by position and by content.
    #[test]
    fn batch_lines_keyed_by_their_header_are_found_after_a_crash() {
        let live = tempfile::tempdir().unwrap();
        let store =
            Store::open(&live.path().join("kb.redb"), options(DEFAULT_JOURNAL_BYTES)).unwrap();
        let line = |n: u64| format!(r#"{{"source":"bot","n":{n}}}"#);
        let batch = |request: u64, lines: &[(usize, u64)]| -> Vec<Put> {
            lines
                .iter()
                .map(|&(record_no, n)| {
                    let body = line(n);
                    let mut put = Put::from(event_record(body.as_bytes(), 7).unwrap());
                    put.client_key = Some(ClientKey::batch_line(
                        b'e',
                        "K",
                        record_no,
                        body.as_bytes(),
                        request,
                        7,
                    ));
                    put
                })
                .collect()
        };
        // Lines 1, 3 and 4 of a batch whose line 2 was rejected.
        let first = store.write(&batch(1, &[(1, 1), (3, 3), (4, 3)])).unwrap();
        assert!(first.iter().all(|w| matches!(w, Written::Stored { .. })));
        let crashed = tempfile::tempdir().unwrap();
        crash_copy(live.path(), crashed.path());
        let recovered = reopened(crashed.path());
        assert_eq!(contents(&recovered), contents(&store));
        // Retried without the rejected line, the two alike first: the same three records.
        let retry = recovered
            .write(&batch(2, &[(1, 3), (2, 1), (3, 3)]))
            .unwrap();
        let mut seqs: Vec<u64> = retry
            .iter()
            .map(|w| match w {
                Written::Duplicate { seq } => *seq,
                other => panic!("{other:?}"),
            })
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, [1, 2, 3]);
    }

    /// Each way of waiting for the sync (in line, handed over, spinning) keeps what it
    /// acknowledged.
    #[test]
    fn every_pace_survives_a_crash() {
        let live = tempfile::tempdir().unwrap();
        let store =
            Store::open(&live.path().join("kb.redb"), options(DEFAULT_JOURNAL_BYTES)).unwrap();
        let mut next = 0;
        for (size, pace) in [
            (1, Pace::Busy),
            (OVERLAP_PUTS as u64, Pace::Busy),
            (1, Pace::Alone),
            (17, Pace::Busy),
            (17, Pace::Alone),
        ] {
            store.write_paced(&events(next, size), pace).unwrap();
            next += size;
        }
        let crashed = tempfile::tempdir().unwrap();
        crash_copy(live.path(), crashed.path());
        let recovered = reopened(crashed.path());
        assert_eq!(recovered.last_seq().unwrap(), next);
        assert_eq!(contents(&recovered), contents(&store));
    }

    /// A small journal fills many times over: each time the database checkpoints and the
    /// journal starts again from its start, and a crash at any point loses nothing.
    #[test]
    fn a_full_journal_checkpoints_and_starts_over_without_losing_a_write() {
        let live = tempfile::tempdir().unwrap();
        let store = Store::open(&live.path().join("kb.redb"), options(4096)).unwrap();
        let mut next = 0;
        for round in 0..40 {
            let size = 1 + round % 5;
            store.write(&events(next, size)).unwrap();
            next += size;
            if round % 7 == 3 {
                let crashed = tempfile::tempdir().unwrap();
                crash_copy(live.path(), crashed.path());
                assert_eq!(
                    contents(&reopened(crashed.path())),
                    contents(&store),
                    "round {round}"
                );
            }
        }
        assert_eq!(
            std::fs::metadata(live.path().join("kb.redb-journal"))
                .unwrap()
                .len(),
            4096
        );
        // A batch larger than the journal commits durably instead.
        let big = events(next, 40);
        store.write(&big).unwrap();
        let crashed = tempfile::tempdir().unwrap();
        crash_copy(live.path(), crashed.path());
        assert_eq!(contents(&reopened(crashed.path())), contents(&store));
    }

    /// A crash in the middle of writing an entry: the torn entry was never acknowledged and is
    /// not applied; everything before it is.
    #[test]
    fn a_torn_last_entry_is_not_applied_and_the_ones_before_are() {
        let live = tempfile::tempdir().unwrap();
        let store =
            Store::open(&live.path().join("kb.redb"), options(DEFAULT_JOURNAL_BYTES)).unwrap();
        store.write(&events(0, 2)).unwrap();
        let before = contents(&store);
        store.write(&events(2, 2)).unwrap();
        let crashed = tempfile::tempdir().unwrap();
        crash_copy(live.path(), crashed.path());
        let journal_path = crashed.path().join("kb.redb-journal");
        let mut bytes = std::fs::read(&journal_path).unwrap();
        let entries = journal::chain(&bytes);
        assert_eq!(entries.len(), 2);
        let second = (journal::HEADER_BYTES as usize) + entries[0].payload.len();
        bytes[second + 34] ^= 0x40;
        std::fs::write(&journal_path, &bytes).unwrap();
        assert_eq!(contents(&reopened(crashed.path())), before);
    }

    /// A journal removed while the store runs is noticed at the next write: what it held is
    /// made durable in the database and a new journal is begun at its path, so a crash then
    /// loses nothing acknowledged. A review removed it and lost five acknowledged events at
    /// the next `kill -9`: they went to the unlinked file.
    #[test]
    fn a_journal_removed_while_open_is_made_good_at_the_next_write() {
        let live = tempfile::tempdir().unwrap();
        let store =
            Store::open(&live.path().join("kb.redb"), options(DEFAULT_JOURNAL_BYTES)).unwrap();
        store.write(&events(0, 3)).unwrap();
        std::fs::remove_file(live.path().join("kb.redb-journal")).unwrap();
        store.write(&events(3, 2)).unwrap();
        assert!(live.path().join("kb.redb-journal").exists(), "begun anew");
        assert_eq!(store.fault(), None);
        let crashed = tempfile::tempdir().unwrap();
        crash_copy(live.path(), crashed.path());
        assert_eq!(reopened(crashed.path()).last_seq().unwrap(), 5);
    }

    /// A durable commit (any batch that is not events alone) holds everything journaled before
    /// it: the journal starts over, and the database alone has it all.
    #[test]
    fn a_durable_write_holds_what_was_journaled_before_it() {
        let live = tempfile::tempdir().unwrap();
        let store =
            Store::open(&live.path().join("kb.redb"), options(DEFAULT_JOURNAL_BYTES)).unwrap();
        store.write(&events(0, 3)).unwrap();
        let outcome =
            crate::intake::outcome_record(br#"{"sig_hash":"pr1-abcdef12","kind":"x"}"#, 5).unwrap();
        store.write(&[Put::from(outcome)]).unwrap();
        let bare = tempfile::tempdir().unwrap();
        std::fs::copy(live.path().join("kb.redb"), bare.path().join("kb.redb")).unwrap();
        let bare = Store::open(&bare.path().join("kb.redb"), options(0)).unwrap();
        assert_eq!(bare.last_seq().unwrap(), 4);
    }

    /// Entries the database should hold but the journal no longer has (a journal from a later
    /// point, or replaced): refused with what is missing, not opened without them.
    #[test]
    fn a_journal_that_skips_entries_the_database_lacks_is_refused() {
        let live = tempfile::tempdir().unwrap();
        let early = tempfile::tempdir().unwrap();
        let store =
            Store::open(&live.path().join("kb.redb"), options(DEFAULT_JOURNAL_BYTES)).unwrap();
        store.write(&events(0, 1)).unwrap();
        crash_copy(live.path(), early.path());
        for i in 1..4 {
            store.write(&events(i, 1)).unwrap();
        }
        // A durable write: the journal starts over, its next entry is number 5.
        let outcome =
            crate::intake::outcome_record(br#"{"sig_hash":"pr1-abcdef12","kind":"x"}"#, 5).unwrap();
        store.write(&[Put::from(outcome)]).unwrap();
        store.write(&events(10, 1)).unwrap();
        std::fs::copy(
            live.path().join("kb.redb-journal"),
            early.path().join("kb.redb-journal"),
        )
        .unwrap();
        let refused = Store::open(
            &early.path().join("kb.redb"),
            options(DEFAULT_JOURNAL_BYTES),
        );
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("entries 1 to 4 are missing"), "{message}");
    }

    /// Writes a binary of another schema left in its journal are applied by that binary: this
    /// one refuses to open (or migrate) the file while they are pending.
    #[test]
    fn pending_entries_of_another_schema_are_refused() {
        for file_version in [SCHEMA_VERSION - 1, SCHEMA_VERSION] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("kb.redb");
            Store::create_at_version(&path, file_version).unwrap();
            let (mut journal, _) = Journal::open(&journal::path_of(&path), 4096, None).unwrap();
            let payload = payload_of(&events(0, 1)).unwrap();
            let staged = journal.stage(SCHEMA_VERSION - 1, &payload).unwrap();
            journal.sync().unwrap();
            journal.advance(staged);
            drop(journal);
            let message = Store::open(&path, options(DEFAULT_JOURNAL_BYTES))
                .unwrap_err()
                .to_string();
            assert!(
                message.contains(&format!("schema {}", SCHEMA_VERSION - 1)),
                "file at {file_version}: {message}"
            );
        }
    }

    /// A file of an older schema whose journal holds writes (the server of that binary
    /// stopped before applying them): held read-only, it says it cannot be migrated, as the
    /// store's open does, and its copy as it is takes the journal along, byte for byte.
    /// (Found by review: `check` and `backup` of such a file copied the file alone.)
    #[test]
    fn an_older_file_with_pending_entries_is_copied_with_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.redb");
        Store::create_at_version(&path, SCHEMA_VERSION - 1).unwrap();
        let journal_path = journal::path_of(&path);
        let (mut journal, _) = Journal::open(&journal_path, 4096, None).unwrap();
        let payload = payload_of(&events(0, 1)).unwrap();
        let staged = journal.stage(SCHEMA_VERSION - 1, &payload).unwrap();
        journal.sync().unwrap();
        journal.advance(staged);
        drop(journal);
        let before = [
            std::fs::read(&path).unwrap(),
            std::fs::read(&journal_path).unwrap(),
        ];

        let held = Store::hold(&path, &options(DEFAULT_JOURNAL_BYTES)).unwrap();
        assert_eq!(held.plan().from, SCHEMA_VERSION - 1);
        let message = held.refuse_pending_journal().unwrap_err().to_string();
        assert!(
            message.contains(&format!("schema {}", SCHEMA_VERSION - 1)),
            "{message}"
        );
        let copy = tempfile::tempdir().unwrap();
        held.copy_into(copy.path()).unwrap();
        // A second copy into the same place fails, and leaves the first as it was.
        assert!(matches!(
            held.copy_into(copy.path()),
            Err(StoreError::BackupExists(_))
        ));
        drop(held);
        for (name, bytes) in ["kb.redb", "kb.redb-journal"].iter().zip(&before) {
            assert!(
                std::fs::read(copy.path().join(name)).unwrap() == *bytes,
                "{name}"
            );
        }
        assert!(std::fs::read(&path).unwrap() == before[0]);
        let mut names: Vec<_> = std::fs::read_dir(copy.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["kb.redb", "kb.redb-journal"]);
    }

    /// A store that does not journal still applies a journal an earlier run left.
    #[test]
    fn a_store_without_a_journal_applies_the_one_left_behind() {
        let live = tempfile::tempdir().unwrap();
        let store =
            Store::open(&live.path().join("kb.redb"), options(DEFAULT_JOURNAL_BYTES)).unwrap();
        store.write(&events(0, 5)).unwrap();
        let crashed = tempfile::tempdir().unwrap();
        crash_copy(live.path(), crashed.path());
        let recovered = Store::open(&crashed.path().join("kb.redb"), options(0)).unwrap();
        assert_eq!(contents(&recovered), contents(&store));
        // And then writes without it.
        recovered.write(&events(5, 1)).unwrap();
        assert_eq!(recovered.last_seq().unwrap(), 6);
    }

    /// A backup put in place of the database (the server stopped), beside the journal of the
    /// database it copies: the restore is the backup, and it opens whatever the journal did
    /// since. (Found by review: the journal's later entries were applied to the copy, or the
    /// copy was refused as missing entries.)
    #[test]
    fn a_backup_put_in_place_is_the_backup_whatever_the_journal_beside_it_holds() {
        let outcome = |at| {
            Put::from(
                crate::intake::outcome_record(br#"{"sig_hash":"pr1-abcdef12","kind":"x"}"#, at)
                    .unwrap(),
            )
        };
        // After the backup: events only (the journal keeps them), or events between durable
        // writes (the journal restarts and numbers on).
        for durable_between in [false, true] {
            let live = tempfile::tempdir().unwrap();
            let backups = tempfile::tempdir().unwrap();
            let store =
                Store::open(&live.path().join("kb.redb"), options(DEFAULT_JOURNAL_BYTES)).unwrap();
            store.write(&events(0, 3)).unwrap();
            store.backup_to(&backups.path().join("kb.redb")).unwrap();
            let at_backup = contents(&store);
            for i in 0..2 {
                if durable_between {
                    store.write(&[outcome(5 + i)]).unwrap();
                }
                store.write(&events(3 + i, 1)).unwrap();
            }
            let crashed = tempfile::tempdir().unwrap();
            crash_copy(live.path(), crashed.path());
            drop(store);
            for dir in [live.path(), crashed.path()] {
                std::fs::copy(backups.path().join("kb.redb"), dir.join("kb.redb")).unwrap();
                let restored = reopened(dir);
                assert_eq!(
                    contents(&restored),
                    at_backup,
                    "durable between: {durable_between}"
                );
                // And it journals its own writes from then on.
                restored.write(&events(10, 2)).unwrap();
                let after = contents(&restored);
                let again = tempfile::tempdir().unwrap();
                crash_copy(dir, again.path());
                assert_eq!(contents(&reopened(again.path())), after);
            }
        }
    }
}
