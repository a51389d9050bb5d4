//! The write-ahead journal's file: a fixed-size file beside the database (`kb.redb-journal`),
//! zero-filled when created, holding a chain of entries from its start. An entry is durable once
//! written and synced; `journaled.rs` says what goes in one and when it is applied.
//!
//! One entry, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | payload length `n` (at least 1) |
//! | 4..8 | CRC-32 of bytes 8..32+n |
//! | 8..16 | lsn: the entry's number (neither 0 nor `u64::MAX`), one more than the entry before it |
//! | 16..24 | the schema version of the binary that wrote it |
//! | 24..32 | the id of the database file it belongs to (`meta`'s `journal/id`) |
//! | 32..32+n | payload |
//!
//! Entries follow each other with no gap. The chain is read from offset 0 and ends at the first
//! entry that does not check: a zero length (the file's zero fill), a length past the file's end,
//! a CRC that does not match (an entry torn by a crash mid-write), an lsn that is not one more
//! than the previous one, or another file's id. Once everything in the journal is durable in the
//! database, writing starts again from offset 0 ([`Journal::restart`]); the older entries left
//! further on have smaller lsns, so the chain stops before them.
//!
//! Overwriting a zero-filled file in place means a sync writes data blocks only: no block
//! allocation and no size change for the file system to journal.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redb::StorageBackend;
use redb::backends::FileBackend;

use super::backend::BackendFactory;
use crate::fsutil;

/// Bytes of an entry before its payload.
pub(super) const HEADER_BYTES: u64 = 32;

/// The largest journal file read: a file larger than this was not made by the store.
pub(super) const MAX_FILE_BYTES: u64 = 1 << 30;

/// Bytes written at once while zero-filling a new journal.
const FILL_CHUNK: usize = 1 << 20;

/// The journal file of the database at `db_path`.
pub(super) fn path_of(db_path: &Path) -> PathBuf {
    let mut name = db_path.file_name().unwrap_or_default().to_owned();
    name.push("-journal");
    db_path.with_file_name(name)
}

/// One entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub lsn: u64,
    pub schema: u64,
    pub id: u64,
    pub payload: Vec<u8>,
}

/// An entry written but not yet known to be synced: [`Journal::advance`] past it once it is.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub(super) struct Staged {
    pub lsn: u64,
    len: u64,
}

pub(super) struct Journal {
    file: Arc<dyn StorageBackend>,
    capacity: u64,
    /// Where the next entry goes.
    end: u64,
    /// The lsn of the next entry.
    next_lsn: u64,
    /// The id of the database file the entries belong to.
    id: u64,
    /// Syncs the file on its own thread, so that a large batch is applied while it syncs.
    syncer: Option<Syncer>,
    buf: Vec<u8>,
    /// The device and inode of the file open ([`Journal::is_at`]).
    dev_ino: Option<(u64, u64)>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("capacity", &self.capacity)
            .field("end", &self.end)
            .field("next_lsn", &self.next_lsn)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Whether the file open is the one at `path` (not removed, moved or replaced since).
    pub fn is_at(&self, path: &Path) -> bool {
        self.dev_ino
            .is_none_or(|open| fsutil::dev_ino_at(path) == Some(open))
    }

    /// Puts what the open file holds back at `path` (written beside it, synced, renamed into
    /// place), for a recovery that reads the journal at its path: the file open was removed
    /// or replaced while it held entries the database has not made durable. The copy then
    /// stands for it ([`Journal::is_at`]), so that it is put back once: no entry is written
    /// to it after this (the store refuses writes until its recovery opens the copy).
    pub fn put_back(&mut self, path: &Path) -> io::Result<()> {
        let mut content = vec![0; usize::try_from(self.file.len()?).map_err(io::Error::other)?];
        self.file.read(0, &mut content)?;
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(".restoring");
        let tmp = path.with_file_name(name);
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", tmp.display()));
        // A leftover of an attempt cut short is removed (never followed: a link is unlinked).
        if let Err(e) = std::fs::remove_file(&tmp)
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(named(e));
        }
        let written = (|| {
            let mut file = fsutil::create_new(&tmp, fsutil::FILE_MODE)?;
            std::io::Write::write_all(&mut file, &content)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            // Not left holding the space of a disk that was just full.
            let _ = std::fs::remove_file(&tmp);
            return Err(named(e));
        }
        if let Some(dir) = path.parent() {
            fsutil::sync_dir(dir)?;
        }
        self.dev_ino = fsutil::dev_ino_at(path);
        Ok(())
    }

    /// Opens the journal at `path`, creating it zero-filled to `capacity` bytes when absent (or
    /// extending a shorter one), and reads its chain of entries. The file's length becomes its
    /// capacity when it is longer. `wrap` is the store's backend seam.
    pub fn open(
        path: &Path,
        capacity: u64,
        wrap: Option<&BackendFactory>,
    ) -> io::Result<(Journal, Vec<Entry>)> {
        let existed = fsutil::is_present(path)?;
        // Named: a link here (refused) or a file that cannot be opened is the journal's fault,
        // not the database file's, which the caller's error names.
        let file = fsutil::open_rw(path, fsutil::FILE_MODE)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let dev_ino = file.metadata().ok().map(|meta| fsutil::dev_ino(&meta));
        let backend = FileBackend::new(file).map_err(io::Error::other)?;
        let file: Arc<dyn StorageBackend> = match wrap {
            Some(wrap) => Arc::from(wrap(backend)),
            None => Arc::new(backend),
        };
        let len = file.len()?;
        let entries = entries_of(&*file, len, path)?;
        if len < capacity {
            let zeros = vec![0u8; FILL_CHUNK];
            let mut at = len;
            while at < capacity {
                let n = (capacity - at).min(FILL_CHUNK as u64);
                file.write(at, &zeros[..n as usize])?;
                at += n;
            }
            file.sync_data()?;
            if !existed && let Some(dir) = path.parent() {
                fsutil::sync_dir(dir)?;
            }
        }
        let end = entries
            .iter()
            .map(|e| HEADER_BYTES + e.payload.len() as u64)
            .sum();
        let next_lsn = entries.last().map_or(1, |e| e.lsn.saturating_add(1));
        let journal = Journal {
            file,
            capacity: capacity.max(len),
            end,
            next_lsn,
            id: 0,
            dev_ino,
            syncer: None,
            buf: Vec::new(),
        };
        Ok((journal, entries))
    }

    /// The lsn the next entry gets.
    #[cfg(test)]
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Numbers the next entry `lsn`, and marks the entries from now on as `id`'s: the
    /// database's, after a recovery.
    pub fn continue_for(&mut self, id: u64, lsn: u64) {
        self.id = id;
        self.next_lsn = lsn;
    }

    /// Whether an entry with a payload of `n` bytes fits in the file at all.
    pub fn can_hold(&self, n: usize) -> bool {
        HEADER_BYTES + n as u64 <= self.capacity
    }

    /// Whether it fits after the entries written since the last restart.
    pub fn has_room(&self, n: usize) -> bool {
        self.end + HEADER_BYTES + n as u64 <= self.capacity
    }

    /// Writes the next entry (not synced), its length and CRC last. Nothing is advanced: a
    /// failed write or sync leaves the next entry to be written in the same place with the same
    /// lsn.
    pub fn stage(&mut self, schema: u64, payload: &[u8]) -> io::Result<Staged> {
        debug_assert!(self.has_room(payload.len()) && !payload.is_empty());
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "journal entry too large"))?;
        let lsn = self.next_lsn;
        self.buf.clear();
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&lsn.to_le_bytes());
        self.buf.extend_from_slice(&schema.to_le_bytes());
        self.buf.extend_from_slice(&self.id.to_le_bytes());
        self.buf.extend_from_slice(payload);
        let crc = crc32fast::hash(&self.buf[8..]);
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        // The length and CRC last: until they are written the place holds no entry (zeros, an
        // erased or an older one's, which cannot match these bytes), so a write that fails
        // part-way leaves none.
        self.file.write(self.end + 8, &self.buf[8..])?;
        self.file.write(self.end, &self.buf[..8])?;
        Ok(Staged {
            lsn,
            len: self.buf.len() as u64,
        })
    }

    /// Syncs the file on this thread.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Starts a sync on the journal's sync thread; [`Journal::wait_sync`] gives its result.
    /// `next_soon`: the next sync is likely asked for within microseconds of this one's
    /// answer (writes come one at a time, back to back), so the thread spins for it rather
    /// than sleeps.
    pub fn start_sync(&mut self, next_soon: bool) -> io::Result<()> {
        if self.syncer.is_none() {
            self.syncer = Some(Syncer::spawn(self.file.clone())?);
        }
        self.syncer.as_ref().expect("started above").ask(next_soon);
        Ok(())
    }

    /// Waits for the sync [`Journal::start_sync`] started, spinning first when it was started
    /// with `next_soon` (writes one at a time: the cores are otherwise idle).
    pub fn wait_sync(&mut self) -> io::Result<()> {
        match &self.syncer {
            Some(syncer) => syncer.wait(),
            None => Err(io::Error::other("no sync was started")),
        }
    }

    /// Makes sure no entry is where the next one goes: a staged entry that was not applied
    /// must not be applied by a recovery either.
    pub fn erase_next(&mut self) -> io::Result<()> {
        self.file.write(self.end, &[0; HEADER_BYTES as usize])?;
        self.sync()
    }

    /// The staged entry is synced (and applied): the next one follows it.
    pub fn advance(&mut self, staged: Staged) {
        debug_assert_eq!(staged.lsn, self.next_lsn);
        self.end += staged.len;
        self.next_lsn += 1;
    }

    /// Every entry written so far is durable in the database: the next entry goes at the start.
    pub fn restart(&mut self) {
        self.end = 0;
    }
}

/// The entries of the journal at `path`, read without opening it for writing (nothing changes).
pub(super) fn read_entries(path: &Path) -> io::Result<Vec<Entry>> {
    let file = FileBackend::new(fsutil::open_read(path)?).map_err(io::Error::other)?;
    entries_of(&file, file.len()?, path)
}

/// The entries of the journal `file`, `len` bytes long, refusing a file longer than
/// [`MAX_FILE_BYTES`]: the whole file is read at once.
fn entries_of(file: &dyn StorageBackend, len: u64, path: &Path) -> io::Result<Vec<Entry>> {
    if len > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is {len} bytes, more than a journal may be ({MAX_FILE_BYTES})",
                path.display()
            ),
        ));
    }
    let mut content = vec![0u8; usize::try_from(len).unwrap_or(0)];
    file.read(0, &mut content)?;
    Ok(chain(&content))
}

/// The entries of `content` from its start, as far as they chain (see the module's doc).
pub(super) fn chain(content: &[u8]) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut at = 0usize;
    while let Some(header) = content.get(at..at + HEADER_BYTES as usize) {
        let word = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let (lsn, schema, id) = (word(8), word(16), word(24));
        let body_end = at + HEADER_BYTES as usize + len;
        let Some(checked) = content.get(at + 8..body_end) else {
            break;
        };
        let follows = entries
            .last()
            .is_none_or(|e| e.lsn.checked_add(1) == Some(lsn) && e.id == id);
        let numbered = lsn != 0 && lsn != u64::MAX;
        if len == 0 || crc32fast::hash(checked) != crc || !follows || !numbered {
            break;
        }
        entries.push(Entry {
            lsn,
            schema,
            id,
            payload: checked[24..].to_vec(),
        });
        at = body_end;
    }
    entries
}

/// A thread that syncs the journal when asked and answers with the result. While writes come
/// one at a time (the writer says so with each ask), both sides of the hand-over spin before
/// they sleep: on a virtual machine waking a sleeping thread costs tens of microseconds, a good
/// part of a sync, and the cores are otherwise idle. Under load neither spins: a spin would
/// take a core from the requests. Each spin is bounded ([`SPIN`]), then the thread parks.
struct Syncer {
    shared: Arc<SyncShared>,
    thread: std::thread::Thread,
}

struct SyncShared {
    /// Syncs asked for, counted; the thread syncs whenever this is ahead of what it synced.
    asked: AtomicU64,
    /// Syncs finished, counted.
    done: AtomicU64,
    /// The last sync's error, when it failed.
    error: Mutex<Option<io::Error>>,
    /// The thread waiting for the answer, to wake.
    waiter: Mutex<Option<std::thread::Thread>>,
    /// Whether the last ask said the next comes soon.
    next_soon: AtomicBool,
    stop: AtomicBool,
}

/// Longest a side spins before it parks.
const SPIN: Duration = Duration::from_micros(200);

impl SyncShared {
    /// How long a side spins for the other: [`SPIN`] when the last ask said the next comes
    /// soon, else not at all.
    fn spin(&self) -> Duration {
        if self.next_soon.load(Ordering::Acquire) {
            SPIN
        } else {
            Duration::ZERO
        }
    }
}

/// Spins until `ready` or for `spin`, then parks until it is.
fn wait_until(spin: Duration, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() < spin {
            std::hint::spin_loop();
        } else {
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }
}

impl Syncer {
    fn spawn(file: Arc<dyn StorageBackend>) -> io::Result<Syncer> {
        let shared = Arc::new(SyncShared {
            asked: AtomicU64::new(0),
            done: AtomicU64::new(0),
            error: Mutex::new(None),
            waiter: Mutex::new(None),
            next_soon: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let theirs = shared.clone();
        let handle = std::thread::Builder::new()
            .name("kb-journal-sync".into())
            .spawn(move || {
                let shared = theirs;
                let mut synced = 0;
                loop {
                    wait_until(shared.spin(), || {
                        shared.asked.load(Ordering::Acquire) > synced
                            || shared.stop.load(Ordering::Acquire)
                    });
                    if shared.stop.load(Ordering::Acquire) {
                        break;
                    }
                    synced = shared.asked.load(Ordering::Acquire);
                    let result = file.sync_data();
                    *shared.error.lock().unwrap_or_else(PoisonError::into_inner) = result.err();
                    shared.done.store(synced, Ordering::Release);
                    if let Some(waiter) =
                        &*shared.waiter.lock().unwrap_or_else(PoisonError::into_inner)
                    {
                        waiter.unpark();
                    }
                }
            })?;
        Ok(Syncer {
            shared,
            thread: handle.thread().clone(),
        })
    }

    fn ask(&self, next_soon: bool) {
        *self
            .shared
            .waiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(std::thread::current());
        self.shared.next_soon.store(next_soon, Ordering::Release);
        self.shared.asked.fetch_add(1, Ordering::AcqRel);
        self.thread.unpark();
    }

    fn wait(&self) -> io::Result<()> {
        let asked = self.shared.asked.load(Ordering::Acquire);
        wait_until(self.shared.spin(), || {
            self.shared.done.load(Ordering::Acquire) >= asked
        });
        match self
            .shared
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CAPACITY: u64 = 4096;

    fn open(path: &Path) -> (Journal, Vec<Entry>) {
        Journal::open(path, CAPACITY, None).unwrap()
    }

    fn write(journal: &mut Journal, payload: &[u8]) -> u64 {
        let staged = journal.stage(12, payload).unwrap();
        journal.sync().unwrap();
        journal.advance(staged);
        staged.lsn
    }

    fn payloads(entries: &[Entry]) -> Vec<(u64, &[u8])> {
        entries
            .iter()
            .map(|e| (e.lsn, e.payload.as_slice()))
            .collect()
    }

    #[test]
    fn a_new_journal_is_zero_filled_to_its_capacity_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_of(&dir.path().join("kb.redb"));
        assert_eq!(path, dir.path().join("kb.redb-journal"));
        let (journal, entries) = open(&path);
        assert!(entries.is_empty());
        assert_eq!(journal.next_lsn(), 1);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, CAPACITY);
        assert!(bytes.iter().all(|&b| b == 0));
    }

    #[test]
    fn entries_read_back_in_order_and_the_next_follows_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, _) = open(&path);
        assert_eq!(write(&mut journal, b"one"), 1);
        assert_eq!(write(&mut journal, b"two"), 2);
        drop(journal);
        let (mut journal, entries) = open(&path);
        assert_eq!(payloads(&entries), [(1, &b"one"[..]), (2, &b"two"[..])]);
        assert!(entries.iter().all(|e| e.schema == 12));
        assert_eq!(write(&mut journal, b"three"), 3);
        let (_, entries) = open(&path);
        assert_eq!(entries.len(), 3);
    }

    /// Each way a chain ends: the entry it stops at and every one after are not read.
    #[test]
    fn the_chain_ends_at_a_torn_or_foreign_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, _) = open(&path);
        for payload in [&b"first"[..], b"second", b"third"] {
            write(&mut journal, payload);
        }
        drop(journal);
        let clean = std::fs::read(&path).unwrap();
        let second = (HEADER_BYTES + 5) as usize;
        let third = second + (HEADER_BYTES + 6) as usize;
        type Damage<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
        let cases: [(&str, Damage<'_>, usize); 6] = [
            (
                "a payload byte flipped",
                Box::new(|b| b[second + 34] ^= 1),
                1,
            ),
            ("a header byte flipped", Box::new(|b| b[second + 9] ^= 1), 1),
            (
                "a length past the end",
                Box::new(|b| b[third..third + 4].copy_from_slice(&u32::MAX.to_le_bytes())),
                2,
            ),
            (
                "torn: the third entry's last bytes never written",
                Box::new(|b| b[third + 32..third + 37].fill(0)),
                2,
            ),
            (
                "another file's entry",
                Box::new(|b| {
                    b[second + 24] ^= 1;
                    let crc = crc32fast::hash(&b[second + 8..third]);
                    b[second + 4..second + 8].copy_from_slice(&crc.to_le_bytes());
                }),
                1,
            ),
            (
                "an lsn out of sequence (an older entry after a restart)",
                Box::new(|b| {
                    b[second + 8..second + 16].copy_from_slice(&7u64.to_le_bytes());
                    let crc = crc32fast::hash(&b[second + 8..third]);
                    b[second + 4..second + 8].copy_from_slice(&crc.to_le_bytes());
                }),
                1,
            ),
        ];
        for (what, damage, survivors) in cases {
            let mut bytes = clean.clone();
            damage(&mut bytes);
            assert_eq!(chain(&bytes).len(), survivors, "{what}");
        }
        assert_eq!(chain(&clean).len(), 3);
    }

    #[test]
    fn after_a_restart_the_new_entries_are_read_and_the_older_ones_beyond_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, _) = open(&path);
        for _ in 0..5 {
            write(&mut journal, b"an older entry, longer than the new ones");
        }
        journal.restart();
        write(&mut journal, b"new");
        let (_, entries) = open(&path);
        assert_eq!(payloads(&entries), [(6, &b"new"[..])]);
    }

    #[test]
    fn an_unsynced_stage_is_written_over_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, _) = open(&path);
        let _ = journal.stage(12, b"a write whose sync failed").unwrap();
        assert_eq!(write(&mut journal, b"the next"), 1);
        let (_, entries) = open(&path);
        assert_eq!(payloads(&entries), [(1, &b"the next"[..])]);
    }

    #[test]
    fn an_erased_stage_is_gone_and_the_entries_before_it_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, _) = open(&path);
        write(&mut journal, b"kept");
        let _ = journal.stage(12, b"not applied").unwrap();
        journal.sync().unwrap();
        journal.erase_next().unwrap();
        let (_, entries) = open(&path);
        assert_eq!(payloads(&entries), [(1, &b"kept"[..])]);
    }

    #[test]
    fn room_is_counted_in_whole_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = open(&dir.path().join("j"));
        let most = (CAPACITY - HEADER_BYTES) as usize;
        assert!(journal.can_hold(most) && !journal.can_hold(most + 1));
        write(&mut journal, &vec![1; most - 100 - HEADER_BYTES as usize]);
        assert!(journal.has_room(100) && !journal.has_room(101));
        journal.restart();
        assert!(journal.has_room(most));
    }

    #[test]
    fn the_sync_thread_syncs_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, _) = open(&path);
        let staged = journal.stage(12, b"x").unwrap();
        journal.start_sync(true).unwrap();
        journal.wait_sync().unwrap();
        journal.advance(staged);
        assert_eq!(open(&path).1.len(), 1);
    }

    /// A damaged file whose only entry, with a valid CRC, is numbered `u64::MAX` (or 0): not an
    /// entry, and no panic.
    #[test]
    fn an_entry_numbered_out_of_range_is_not_read() {
        for lsn in [0, u64::MAX] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j");
            let mut bytes = vec![0u8; CAPACITY as usize];
            bytes[0..4].copy_from_slice(&1u32.to_le_bytes());
            bytes[8..16].copy_from_slice(&lsn.to_le_bytes());
            bytes[16..24].copy_from_slice(&12u64.to_le_bytes());
            bytes[32] = b'x';
            let crc = crc32fast::hash(&bytes[8..33]);
            bytes[4..8].copy_from_slice(&crc.to_le_bytes());
            std::fs::write(&path, &bytes).unwrap();
            let (journal, entries) = Journal::open(&path, CAPACITY, None).unwrap();
            assert!(entries.is_empty(), "lsn {lsn}");
            assert_eq!(journal.next_lsn(), 1);
        }
    }

    proptest! {
        /// Whatever the bytes, reading a chain neither panics nor reads past them, and any
        /// entries it returns chain.
        #[test]
        fn any_bytes_read_as_a_chain_or_nothing(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let entries = chain(&bytes);
            for pair in entries.windows(2) {
                prop_assert_eq!(pair[0].lsn + 1, pair[1].lsn);
            }
        }

        /// Entries written are the entries read, whatever their payloads.
        #[test]
        fn written_entries_read_back(payloads in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 1..200), 0..12)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j");
            let (mut journal, _) = open(&path);
            for payload in &payloads {
                write(&mut journal, payload);
            }
            let (_, entries) = open(&path);
            let read: Vec<&[u8]> = entries.iter().map(|e| e.payload.as_slice()).collect();
            let written: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(read, written);
        }
    }
}
