//! Storage faults and self-recovery. After one failed write, redb answers "Previous I/O error
//! occurred" to everything until the `Database` is dropped and opened again; a full disk would
//! otherwise need a restart. So an I/O error, wherever a caller meets it, marks the store
//! faulted ([`Store::note_error`]) and starts one background thread that, with a growing delay,
//! checks that the disk takes writes again (a probe file beside the database) and then reopens
//! the database (redb repairs it; nothing committed is lost: a commit that failed was never
//! acknowledged, see docs/RELIABILITY.md).
//!
//! While faulted, reads go on against the old database (what redb still has cached answers; a
//! read that reaches the disk fails as a fault) until the probe passes; only the reopen itself
//! takes the database away for a moment. Writes fail at once with the fault, which the HTTP
//! layer turns into 503 (507 for a full disk) with `Retry-After`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use redb::backends::FileBackend;
use redb::{Database, DatabaseError, StorageBackend};
use serde::Serialize;

use super::{Shared, Store, StoreError, check_codec_version, journaled, open_db};

/// First delay before a recovery attempt; it doubles after each failed attempt (and each fault
/// episode that follows a reopen without a successful commit in between), up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(10);

/// Bytes the free-space probe writes and syncs: more than redb grows its file by at once for a
/// small commit, so a disk that takes the probe takes the next commit.
const PROBE_BYTES: usize = 1 << 20;

/// Longest the reopen waits for the transactions begun on the old database to let go of it.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Why the store cannot write now. `GET /healthz` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// What keeps the store from writing, as redb or the OS reported it: the episode's first
    /// error, then the one the last recovery attempt met.
    pub reason: String,
    /// The disk (or the user's quota) is full: HTTP 507 rather than 503. As `reason`, it
    /// follows the last recovery attempt.
    pub no_space: bool,
    /// When the fault began (Unix ms).
    pub since_ms: u64,
    /// Seconds until the next recovery attempt, as a client's `Retry-After`.
    pub retry_after_secs: u32,
}

impl Fault {
    pub(super) fn new(reason: String, no_space: bool) -> Fault {
        Fault {
            reason,
            no_space,
            since_ms: crate::model::now_ms(),
            retry_after_secs: 1,
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.no_space {
            write!(
                f,
                "no space left for the database ({}): writes are refused until space is freed; \
                 the service recovers by itself",
                self.reason
            )
        } else {
            write!(
                f,
                "the database's storage failed ({}): writes are refused until it recovers",
                self.reason
            )
        }
    }
}

#[derive(Default)]
pub(super) struct FaultState {
    inner: Mutex<Inner>,
    /// Fault episodes since the last successful commit: the first delay of an episode grows
    /// with it, so a disk that stays full is not reopened (and repaired) in a tight loop.
    episodes: AtomicU32,
}

#[derive(Default)]
struct Inner {
    fault: Option<Fault>,
    /// A recovery thread runs. Changed only with `fault`, under the same lock, so a fault
    /// recorded as a recovery ends always has a thread to clear it.
    recovering: bool,
}

impl FaultState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn current(&self) -> Option<Fault> {
        self.lock().fault.clone()
    }
}

/// The I/O failure behind `e`, if it is one (as opposed to a bad record, a version mismatch or
/// a bug): its text and whether it means "no space".
fn io_failure(e: &StoreError) -> Option<(String, bool)> {
    let io_error = |io: &io::Error| {
        let no_space = matches!(
            io.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        );
        // redb reports "not a database" as InvalidData; that is no fault of the disk.
        (io.kind() != io::ErrorKind::InvalidData).then(|| (io.to_string(), no_space))
    };
    match e {
        StoreError::Storage(redb::Error::Io(io)) => io_error(io),
        StoreError::Storage(
            redb::Error::PreviousIo | redb::Error::DatabaseClosed | redb::Error::Backend(_),
        ) => Some((e.to_string(), false)),
        StoreError::Open {
            source: DatabaseError::Storage(redb::StorageError::Io(io)),
            ..
        } => io_error(io),
        StoreError::Unavailable(fault) => Some((fault.reason.clone(), fault.no_space)),
        _ => None,
    }
}

impl StoreError {
    /// Whether this is a storage fault (the store recovers from it by itself).
    pub fn is_storage_fault(&self) -> bool {
        io_failure(self).is_some()
    }

    /// Whether this is a storage fault that says the disk (or a quota) is full.
    pub fn is_no_space(&self) -> bool {
        io_failure(self).is_some_and(|(_, no_space)| no_space)
    }
}

impl Store {
    /// The current storage fault, if the store is recovering from one.
    pub fn fault(&self) -> Option<Fault> {
        self.shared.fault.current()
    }

    /// Looks at an error a store call returned: when it is an I/O failure, records the fault
    /// (the first error of an episode is its reason) and makes sure recovery runs; returns the
    /// fault, which callers answer with instead of the raw error.
    pub fn note_error(&self, e: &StoreError) -> Option<Fault> {
        let (reason, no_space) = io_failure(e)?;
        let mut inner = self.shared.fault.lock();
        match &mut inner.fault {
            Some(fault) => {
                // A later error may be the first to say why ("previous I/O error" says not).
                fault.no_space |= no_space;
            }
            None => {
                let episode = self.shared.fault.episodes.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    path = %self.shared.path.display(),
                    error = %reason,
                    no_space,
                    "storage failure: writes are refused until the database is reopened"
                );
                let mut fault = Fault::new(reason, no_space);
                fault.retry_after_secs = secs_ceil(first_delay(episode));
                inner.fault = Some(fault);
            }
        }
        if !inner.recovering {
            inner.recovering = true;
            let first = first_delay(self.shared.fault.episodes.load(Ordering::Relaxed));
            let shared = Arc::downgrade(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("kb-recover".into())
                .spawn(move || recover(shared, first));
            if let Err(e) = spawned {
                inner.recovering = false;
                tracing::error!(error = %e, "cannot start the storage recovery thread");
            }
        }
        inner.fault.clone()
    }

    /// Fails, faulting the store, when the file the database has open is no longer the file
    /// at its path: removed with its directory, moved or replaced while the service ran. What
    /// a commit wrote to it would be acknowledged and then lost (the next start opens what is
    /// at the path, or a new empty file: a review's). A `stat` of the path, and one of the
    /// journal's; the recovery reopens the file once it is back.
    pub fn check_in_place(&self) -> Result<(), StoreError> {
        if !self.shared.in_place() {
            let e = io_store_error(
                io::ErrorKind::NotFound,
                format!(
                    "the database file is no longer at {} (removed, moved or replaced while the \
                     service ran)",
                    self.shared.path.display()
                ),
            );
            return Err(self.note_error(&e).map_or(e, StoreError::Unavailable));
        }
        // The journal beside it, made good if it is gone: nothing is lost yet.
        self.journal_in_place()
            .map_err(|e| self.note_error(&e).map_or(e, StoreError::Unavailable))
    }

    /// At a stop during a fault: puts the journal back at its path if it was removed
    /// meanwhile ([`Shared::put_back_journal`]), so that the next start applies it. Fails
    /// when it cannot (the disk still full): what it held beyond the database's last
    /// checkpoint is then lost with this process.
    pub fn put_back_journal(&self) -> Result<(), StoreError> {
        self.shared
            .put_back_journal(&mut self.shared.journal.lock())
    }

    /// A commit succeeded: the next fault starts over with the shortest delay.
    pub fn note_commit(&self) {
        if self.shared.fault.episodes.load(Ordering::Relaxed) != 0 {
            self.shared.fault.episodes.store(0, Ordering::Relaxed);
        }
    }
}

fn io_store_error(kind: io::ErrorKind, message: String) -> StoreError {
    StoreError::Storage(redb::Error::Io(io::Error::new(kind, message)))
}

fn first_delay(episodes_before: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(1 << episodes_before.min(10))
        .min(MAX_DELAY)
}

fn secs_ceil(delay: Duration) -> u32 {
    u32::try_from(delay.as_millis().div_ceil(1000))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// The recovery thread: probe, then reopen, with a doubling delay, until the store is open
/// and healthy again or dropped.
fn recover(shared: Weak<Shared>, mut delay: Duration) {
    loop {
        std::thread::sleep(delay);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let attempt = present(&shared)
            .and_then(|()| shared.put_back_journal(&mut shared.journal.lock()))
            .and_then(|()| probe(&shared.path, &shared))
            .and_then(|()| shared.reopen());
        let mut inner = shared.fault.lock();
        match attempt {
            Ok(()) => {
                let was = inner.fault.take();
                inner.recovering = false;
                drop(inner);
                tracing::info!(
                    path = %shared.path.display(),
                    down_ms = was.map_or(0, |f| crate::model::now_ms().saturating_sub(f.since_ms)),
                    "storage recovered: the database was reopened and takes writes again"
                );
                return;
            }
            Err(e) => {
                delay = (delay * 2).min(MAX_DELAY);
                if let Some(fault) = &mut inner.fault {
                    fault.retry_after_secs = secs_ceil(delay);
                    // What holds the store now: space freed while the directory became
                    // read-only is no longer "no space" (a 507 sent operators to free space
                    // already free: a review's).
                    if let Some((reason, no_space)) = io_failure(&e) {
                        fault.reason = reason;
                        fault.no_space = no_space;
                    }
                }
                drop(inner);
                tracing::warn!(
                    path = %shared.path.display(),
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "storage still failing; will try again"
                );
            }
        }
    }
}

/// Fails unless the file the database was opened from is at its path: the recovery waits
/// for it to be back rather than reopen the path, which would make a new, empty database
/// there, or open another file in its place (a backup restored over it while the service
/// runs) without what an open does first: its migration, the feed's history, the writer's
/// last seq (a review found the feed's long polls spinning a core on a restored file, and a
/// file of an older schema served unmigrated). Another file is the operator's to open, by a
/// restart.
fn present(shared: &Shared) -> Result<(), StoreError> {
    if shared.in_place() {
        return Ok(());
    }
    let path = &shared.path;
    match std::fs::metadata(path) {
        Ok(_) => Err(io_store_error(
            io::ErrorKind::Other,
            format!(
                "another file is at {} than the database the service opened: writes are \
                 refused; restart the service to open it",
                path.display()
            ),
        )),
        Err(e) => Err(io_store_error(
            e.kind(),
            format!(
                "the database file is not at {} ({e}): writes are refused until it is back",
                path.display()
            ),
        )),
    }
}

/// Writes and syncs [`PROBE_BYTES`] in a scratch file beside the database, through the same
/// backend seam as the database, and removes it: passes once the disk takes writes again.
fn probe(db_path: &Path, shared: &Shared) -> Result<(), StoreError> {
    let path = probe_path(db_path);
    let result = (|| -> io::Result<()> {
        // Whatever is there (a probe left by a crash) is unlinked, never opened: created anew.
        let _ = std::fs::remove_file(&path);
        let file = crate::fsutil::create_new(&path, crate::fsutil::FILE_MODE)?;
        let backend: Box<dyn StorageBackend> = match &shared.options.backend {
            None => Box::new(FileBackend::new(file).map_err(io::Error::other)?),
            Some(wrap) => wrap(FileBackend::new(file).map_err(io::Error::other)?),
        };
        backend.write(0, &vec![0; PROBE_BYTES])?;
        backend.sync_data()?;
        backend.close()
    })();
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| StoreError::Storage(redb::Error::Io(e)))
}

fn probe_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.file_name().unwrap_or_default().to_owned();
    name.push(".probe");
    db_path.with_file_name(name)
}

impl Shared {
    /// Whether the file at the database's path is the one it opened (or what it opened is
    /// unknown). A `stat` of the path.
    fn in_place(&self) -> bool {
        self.opened
            .is_none_or(|opened| crate::fsutil::dev_ino_at(&self.path) == Some(opened))
    }

    /// Puts the journal the store has open (`open`, its slot) back at its path when it was
    /// removed or replaced while the store was faulted, before a write could make it good
    /// (`Store::journal_in_place`): it holds writes the failed database drops at its reopen,
    /// and at a stop (a review lost 2,049 acknowledged events so, with no crash). Done at each
    /// recovery attempt, before its reopen, and at a stop; once, the copy standing for it.
    fn put_back_journal(
        &self,
        open: &mut Option<super::journal::Journal>,
    ) -> Result<(), StoreError> {
        let path = super::journal::path_of(&self.path);
        let Some(open) = open.as_mut().filter(|open| !open.is_at(&path)) else {
            return Ok(());
        };
        open.put_back(&path)
            .map_err(|e| StoreError::Storage(redb::Error::Io(e)))?;
        tracing::warn!(
            path = %path.display(),
            "the write-ahead journal was removed or replaced while the store was faulted: what \
             it held is put back"
        );
        Ok(())
    }

    /// Drops the failed database (redb can only reopen a file that no `Database` holds) and
    /// opens it again; redb repairs it as after a crash.
    fn reopen(&self) -> Result<(), StoreError> {
        let old = self
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(old) = old {
            close_when_unshared(old);
        }
        // A transaction begun on the old database before it left the slot (the writer's,
        // failing) defers its close, and its file locks, to the transaction's end: moments.
        let deadline = Instant::now() + CLOSE_WAIT;
        let db = loop {
            match open_db(&self.path, &self.options) {
                Err(StoreError::InUse { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                opened => break opened?,
            }
        };
        check_codec_version(&db)?;
        // The journal's writes the old database had not synced are applied again before any
        // write reaches the new one (writers wait on the journal's lock, or find no database).
        // (A journal removed meanwhile was put back by the attempt, before this.)
        let mut journal = self.journal.lock();
        *journal = journaled::recover(&db, &self.path, &self.options)?;
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(db));
        drop(journal);
        Ok(())
    }
}

/// Closes `db` once no one else holds it (callers hold it only to begin a transaction), or
/// gives up after [`CLOSE_WAIT`] and leaves it to its last holder (the open then waits its turn).
fn close_when_unshared(mut db: Arc<Database>) {
    let deadline = Instant::now() + CLOSE_WAIT;
    loop {
        match Arc::try_unwrap(db) {
            Ok(db) => {
                // Closing a failed database reports the failure again; the file is left for
                // the open to repair, which is what follows.
                let _ = db.close();
                return;
            }
            Err(shared) if Instant::now() < deadline => {
                db = shared;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While faulted, a durable commit is refused as a journaled one is: at 2ab15cf a verdict
    /// or an outcome row was committed (201) while events got 503 (a review's). Once the
    /// recovery has reopened the file, writes are taken again.
    #[test]
    fn while_faulted_every_write_is_refused_until_the_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("kb.redb"), Default::default()).unwrap();
        let outcome = || {
            let row = br#"{"sig_hash":"pr1-abcdef12","kind":"x"}"#;
            super::super::Put::from(crate::intake::outcome_record(row, 1).unwrap())
        };
        let injected = io_store_error(io::ErrorKind::Other, "injected".into());
        assert!(store.note_error(&injected).is_some());
        // (The recovery's first attempt is 100 ms away.)
        match store.write(&[outcome()]) {
            Err(StoreError::Unavailable(fault)) => assert_eq!(fault.reason, "injected"),
            other => panic!("{other:?}"),
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while store.fault().is_some() {
            assert!(Instant::now() < deadline, "never recovered");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(store.write(&[outcome()]).unwrap().len(), 1);
        assert_eq!(
            store.last_seq().unwrap(),
            1,
            "the refused write was not stored"
        );
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        assert_eq!(first_delay(0), FIRST_DELAY);
        assert_eq!(first_delay(1), FIRST_DELAY * 2);
        assert_eq!(first_delay(30), MAX_DELAY);
        assert_eq!(secs_ceil(Duration::from_millis(100)), 1);
        assert_eq!(secs_ceil(Duration::from_millis(2_001)), 3);
    }

    /// redb's text for a write that failed earlier tells its user to close and reopen the
    /// database, which the store does by itself: `/healthz` passed it on to operators (a
    /// review's). The fault keeps its own words, and is still a fault.
    #[test]
    fn a_write_that_failed_earlier_is_not_told_as_redb_tells_it() {
        let e = StoreError::Storage(redb::Error::PreviousIo);
        let (said, no_space) = io_failure(&e).unwrap();
        assert!(!no_space);
        assert!(!said.contains("re-open"), "{said}");
        assert!(said.contains("reopened to recover"), "{said}");
    }
}
