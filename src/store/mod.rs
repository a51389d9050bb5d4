//! The store: the only code that touches redb. It owns the file `DIR/kb.redb`, runs the schema
//! migrations on open, writes batches of records in one durable transaction, and answers every
//! read from a range of a table or an index.
//!
//! redb calls are synchronous: callers on the async runtime use the writer thread (`writer.rs`)
//! for writes and threads of their own for reads (`http/read_threads.rs`).
//!
//! The open `Database` sits behind a swappable slot (`RwLock<Option<Arc<Database>>>`): every
//! transaction clones the `Arc` under a read lock held for no longer than the clone, so reads
//! never wait on each other; the write lock is taken only to swap the database during a reopen
//! after an I/O error (see `fault.rs`).

mod backend;
mod backup;
mod batch_keys;
mod budget;
mod bulk;
mod check;
mod check_verdicts;
mod client_keys;
pub mod codec;
pub mod damage;
mod deferred;
mod derived;
mod dictionary;
mod dismissals;
mod fault;
mod feed;
mod findings;
mod held;
mod history;
mod journal;
mod journaled;
mod meta;
mod neighbors;
pub mod postings;
mod postings_pool;
mod read;
mod records;
mod repos;
mod retention;
mod seq_blocks;
pub mod tables;
mod text_index;
pub mod values;
mod verdict_heads;
mod verdict_lines;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use lakehouse_kb_migrations as migrations;
use redb::backends::FileBackend;
use redb::{Database, DatabaseError, ReadableDatabase, StorageError};

pub use backend::BackendFactory;
pub use backup::{
    Backup, BackupName, BackupReport, BackupRequest, MARKER_FILE as BACKUP_MARKER_FILE,
    files_of_copy,
};
pub use budget::{AnswerBytes, ReadBudget};
pub use bulk::BulkWriter;
pub use check::CheckReport;
pub use codec::CodecError;
pub use dictionary::DictionaryOptions;
pub use dismissals::{Applied, DismissalEntry, DismissalsQuery, KnownFinding, MAX_LIVE_PER_SCOPE};
pub use fault::Fault;
pub use feed::{FeedHistory, FeedPage, FeedTypes};
pub use findings::{
    CheckedFinding, FindingEntry, FindingStatus, FindingsCheck, FindingsCursor, FindingsPage,
    FindingsQuery, MAX_SIMILAR_CANDIDATES,
};
pub use held::HeldFile;
pub use history::{AuditEntry, History, HistoryQuery, LatestFindings, SENTENCE_OUTCOMES};
pub use journaled::Pace;
pub use migrations::{LATEST_VERSION as SCHEMA_VERSION, MigrateError, Plan};
pub use neighbors::{ClaimMatch, NeighborHit, NeighborQuery, PreparedSearch};
pub use postings_pool::{PostingsPool, PostingsShare};
pub use read::{
    Checkpoint, EventEntry, EventFilter, OutcomeEntry, Page, SigRecord, Stats, StatsMap,
    VerdictEntry,
};
pub use records::{
    ClientKey, DismissalChange, NewDismissal, NewEvent, NewOutcome, NewVerdict, Put, Record,
    Written, work_of,
};
pub use retention::Retention;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "kb.redb";

/// Default page cache: enough for the hot part of a few million rows, far from redb's 1 GiB.
pub const DEFAULT_CACHE_MB: usize = 64;

/// The import's default page cache. The import writes; a larger read cache does not speed it
/// (1M legacy lines took the same time with 16, 32 and 64 MiB: docs/benchmarks/log-2026-12.md) and only
/// adds to its peak memory.
pub const IMPORT_CACHE_MB: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path} is open in another process (a running lakehouse-kb server, or a check, backup \
         or migration of the file?)"
    )]
    InUse { path: PathBuf },
    #[error(
        "{path} is an empty file (0 bytes), not a database: it was cut or made by something \
         else (or the very first start crashed before writing it); restore it from a backup \
         (lakehouse-kb backup), or remove it to start with an empty database"
    )]
    EmptyFile { path: PathBuf },
    #[error(
        "{path} is not a redb database (it does not start with redb's magic number): it was \
         not written by lakehouse-kb, or is damaged; move it away and restore a backup, or \
         remove it to start with an empty database"
    )]
    NotADatabase { path: PathBuf },
    #[error(
        "{path} is damaged: redb cannot read it ({detail}); move it away and restore a backup \
         (lakehouse-kb backup), or remove it to start with an empty database"
    )]
    Damaged { path: PathBuf, detail: String },
    /// The storage failed (an I/O error, a full disk): the store is reopening itself.
    #[error("{0}")]
    Unavailable(Fault),
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: DatabaseError,
    },
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error(
        "the file's values use codec version {found}; this binary reads versions up to {expected}"
    )]
    CodecVersion { found: u64, expected: u64 },
    #[error("{table} seq {seq}: {source}")]
    Codec {
        table: &'static str,
        seq: u64,
        source: CodecError,
    },
    #[error("backup failed: {0}")]
    Backup(String),
    #[error("{0} already exists")]
    BackupExists(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the copy {path}: {source}")]
    BackupDest {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a backup is already running")]
    BackupBusy,
    #[error("this idempotency key was first given to a backup named {name} with another name")]
    BackupKeyReused { name: String },
    #[error("the backup was cancelled")]
    BackupCancelled,
    #[error("import key {0} was given twice to one bulk writer; the transaction was rolled back")]
    RepeatedImportKey(String),
    #[error("this bulk writer's transaction was rolled back after an earlier error")]
    BulkAborted,
    /// A read stopped before its end: past its deadline, or its caller went away.
    #[error("the read was abandoned after {rows} rows: past its deadline or no longer awaited")]
    Abandoned { rows: u64 },
    #[error("{index} points at seq {seq}, which is not stored")]
    Dangling { index: &'static str, seq: u64 },
    #[error("a corrupt index entry: {0}")]
    CorruptIndex(String),
    /// The write-ahead journal cannot be applied as it is (`journaled.rs`).
    #[error("journal: {0}")]
    Journal(String),
    /// A write failed after its journal entry was written, and the entry could not be erased:
    /// the store, recovering, may apply it. A retry with the same idempotency key learns which.
    #[error("the write may have been stored: {0}")]
    MaybeStored(String),
    #[error("storage: {}", storage_words(.0))]
    Storage(#[from] redb::Error),
}

/// redb's words for its error, but for a write that failed earlier: redb asks its user to close
/// and reopen the database, which the store does by itself (`fault.rs`); an operator reading
/// `/healthz` was told to do it (a review's).
fn storage_words(e: &redb::Error) -> std::borrow::Cow<'static, str> {
    match e {
        redb::Error::PreviousIo => {
            "an earlier write failed; the database is reopened to recover from it".into()
        }
        e => e.to_string().into(),
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Called with the progress (0.0 to 1.0) of redb's repair after an unclean shutdown.
pub type RepairCallback = Arc<dyn Fn(f64) + Send + Sync>;

/// Called with what is built and the seq through which verdicts are done, after each
/// transaction of a build of derived indexes on open (`derived.rs`: after an upgrade, the
/// findings memory rebuilt under new rules, say).
pub type BuildCallback = Arc<dyn Fn(&'static str, u64) + Send + Sync>;

/// How to open the store.
#[derive(Clone)]
pub struct StoreOptions {
    /// redb page cache, in MiB.
    pub cache_mb: usize,
    pub on_repair: Option<RepairCallback>,
    pub on_build: Option<BuildCallback>,
    /// redb quick-repair: every commit also saves the allocator state (and uses two-phase
    /// commit), so opening after a crash skips the full repair, at a cost on every commit.
    pub quick_repair: bool,
    /// A test seam: wraps the file backend of the database (and of the free-space probe), e.g.
    /// to fail writes on demand. `None` (production) opens redb's `FileBackend` as is.
    pub backend: Option<BackendFactory>,
    /// When the values' compression dictionary is trained and how stored values are converted
    /// (`dictionary.rs`); tests make them small.
    pub dictionary: DictionaryOptions,
    /// Size of the write-ahead journal file for event batches (`journaled.rs`); 0 commits
    /// every batch durably in redb instead. A journal left by an earlier run is applied either
    /// way.
    pub journal_bytes: u64,
    /// Postings the neighbours queries running at once may hold (`postings_pool.rs`); tests
    /// make it small.
    pub postings_pool: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_mb: DEFAULT_CACHE_MB,
            on_repair: None,
            on_build: None,
            quick_repair: false,
            backend: None,
            dictionary: DictionaryOptions::default(),
            journal_bytes: journaled::DEFAULT_JOURNAL_BYTES,
            postings_pool: postings_pool::POOL_POSTINGS,
        }
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("cache_mb", &self.cache_mb)
            .field("journal_bytes", &self.journal_bytes)
            .finish_non_exhaustive()
    }
}

pub struct Store {
    shared: Arc<Shared>,
}

/// What the store and its recovery thread share (the thread holds it weakly, so it never keeps
/// a dropped store's file open).
struct Shared {
    path: PathBuf,
    /// [`Store::identity`], taken when the file was opened.
    identity: Option<String>,
    /// The device and inode of the file the database has open (`None`: unknown), which must
    /// be the file at `path` for a write to be taken ([`Store::check_in_place`]).
    opened: Option<(u64, u64)>,
    options: StoreOptions,
    /// The open database; `None` only while a reopen is under way or after one failed.
    db: RwLock<Option<Arc<Database>>>,
    fault: fault::FaultState,
    backup: backup::BackupSlot,
    codec: dictionary::CodecState,
    journal: journaled::JournalSlot,
    /// The postings the neighbours queries running hold (`postings_pool.rs`).
    postings: postings_pool::PostingsPool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema to the current
    /// version, one logged step at a time. A file newer than this binary is refused untouched.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let db = open_db(path, &options)?;
        let plan = migrations::plan(&db, None)?;
        if !plan.steps.is_empty() {
            journaled::refuse_pending_before_migration(&db, path)?;
            tracing::info!(
                path = %path.display(),
                from = plan.from,
                to = plan.to,
                "migrating database schema"
            );
            // A damaged file may make a step's reads panic in redb, as its open may.
            survive_damage(path, || {
                Ok(migrations::migrate(&db, None, &mut |step, n_rows| {
                    tracing::info!(step = step.name, rows = n_rows, "migration progress");
                })?)
            })?;
        }
        check_codec_version(&db)?;
        let postings = postings_pool::PostingsPool::new(options.postings_pool);
        let opened = crate::fsutil::dev_ino_at(path);
        let store = Store {
            shared: Arc::new(Shared {
                path: path.to_owned(),
                identity: opened.map(crate::fsutil::identity_of),
                opened,
                options,
                db: RwLock::new(Some(Arc::new(db))),
                fault: fault::FaultState::default(),
                backup: backup::BackupSlot::new(),
                codec: dictionary::CodecState::default(),
                journal: journaled::JournalSlot::default(),
                postings,
            }),
        };
        store.open_dictionaries()?;
        store.recover_journal()?;
        store.ensure_feed_history()?;
        store.split_verdicts()?;
        store.rewrite_verdict_lines()?;
        store.build_text_index()?;
        store.build_findings_memory()?;
        Ok(store)
    }

    /// What opening `path` would migrate, without changing anything (but repairing a file
    /// that was not closed cleanly, [`Store::hold`]).
    pub fn plan(path: &Path, options: StoreOptions) -> Result<Plan, StoreError> {
        if !path.exists() {
            return Ok(Plan {
                from: 0,
                to: SCHEMA_VERSION,
                steps: migrations::STEPS.iter().collect(),
            });
        }
        Ok(Store::hold(path, &options)?.plan().clone())
    }

    /// Opens the file at exactly the schema version `target` (for upgrade tests and tools that
    /// build old files): runs the steps up to it and no further.
    pub fn create_at_version(path: &Path, target: u64) -> Result<(), StoreError> {
        let db = open_db(path, &StoreOptions::default())?;
        migrations::migrate(&db, Some(target), &mut |_, _| {})?;
        Ok(())
    }

    /// Every write transaction of the store begins here, so all of them share its settings
    /// (a crash after a commit without quick-repair would need the full repair).
    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        begin_write_in(&*self.db()?, &self.shared.options)
    }

    /// The open database. The `Arc` is cloned under a read lock that is never held longer than
    /// the clone; a transaction begun on it stays usable until a reopen closes it, after which
    /// its reads fail (as storage faults). `Unavailable` while a reopen is under way.
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        let slot = self
            .shared
            .db
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(db) => Ok(db.clone()),
            None => Err(StoreError::Unavailable(
                self.shared
                    .fault
                    .current()
                    .unwrap_or_else(|| Fault::new("the database is being reopened".into(), false)),
            )),
        }
    }

    /// Runs `f` on the database alone (redb's integrity check needs `&mut`): fails as
    /// `InUse` when a transaction elsewhere still holds it.
    fn with_db_mut<T>(&mut self, f: impl FnOnce(&mut Database) -> T) -> Result<T, StoreError> {
        let mut slot = self
            .shared
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match slot.as_mut().and_then(Arc::get_mut) {
            Some(db) => Ok(f(db)),
            None => Err(StoreError::InUse {
                path: self.shared.path.clone(),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The page cache each database of this store's is opened with, in bytes.
    fn cache_bytes(&self) -> usize {
        self.shared.options.cache_mb.max(1) << 20
    }

    /// The [`fsutil::file_identity`](crate::fsutil::file_identity) of the file this store
    /// opened (`None` if it could not be read then): the file it holds, whatever is at its path
    /// now, and known without touching the disk (`/healthz` names it while a disk hangs).
    pub fn identity(&self) -> Option<&str> {
        self.shared.identity.as_deref()
    }

    pub fn schema_version(&self) -> Result<u64, StoreError> {
        Ok(migrations::current_version(&*self.db()?)?)
    }

    /// Bytes each table holds (its entries, then redb's pages around them), by table name:
    /// what the file is made of.
    pub fn table_sizes(&self) -> Result<Vec<TableSize>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let mut sizes = Vec::new();
        for handle in txn.list_tables()? {
            let name = redb::TableHandle::name(&handle).to_owned();
            let stats = redb::ReadableTableMetadata::stats(&txn.open_untyped_table(handle)?)?;
            sizes.push(TableSize {
                name,
                stored_bytes: stats.stored_bytes(),
                metadata_bytes: stats.metadata_bytes(),
                fragmented_bytes: stats.fragmented_bytes(),
            });
        }
        Ok(sizes)
    }
}

/// What one table costs on disk ([`Store::table_sizes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSize {
    pub name: String,
    /// Keys and values.
    pub stored_bytes: u64,
    /// Page headers and branch pages.
    pub metadata_bytes: u64,
    /// Unused space in the table's pages.
    pub fragmented_bytes: u64,
}

fn check_codec_version(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_read()?;
    let found = meta::get(&txn.open_table(tables::META)?, meta::CODEC_VERSION)?;
    if found > u64::from(codec::NEWEST_VERSION) {
        return Err(StoreError::CodecVersion {
            found,
            expected: codec::NEWEST_VERSION.into(),
        });
    }
    Ok(())
}

/// A write transaction on `db` with the store's settings: every write transaction of the store,
/// including those on a database not yet in the store's slot (the journal's recovery), begins
/// here.
fn begin_write_in(
    db: &Database,
    options: &StoreOptions,
) -> Result<redb::WriteTransaction, StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(options.quick_repair);
    Ok(txn)
}

/// Opens (or creates, where no file exists) the database file. An existing file is never
/// taken for a new database: redb initialises an empty file, so a 0-byte file (cut, or made by
/// something else) would silently become an empty database, and the next export would empty
/// the legacy files; it is refused instead, as is a file that is not a redb database.
fn open_db(path: &Path, options: &StoreOptions) -> Result<Database, StoreError> {
    refuse_empty(path)?;
    refuse_newer(path)?;
    survive_damage(path, || open_writable(path, options))
}

/// An empty file is not a database, and redb would make one of it.
fn refuse_empty(path: &Path) -> Result<(), StoreError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == 0 => Err(StoreError::EmptyFile {
            path: path.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Runs one of redb's opens of an existing file, a panic of redb's turned into
/// [`StoreError::Damaged`]: on some damaged files (a byte flipped in its allocator state) redb
/// panics (`unreachable!`) instead of returning an error, and a damaged file must be reported,
/// not crash `check`, the export or the server. redb's own "corrupted" error is the same fault.
fn survive_damage<T>(
    path: &Path,
    open: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let damaged = |detail: String| StoreError::Damaged {
        path: path.to_owned(),
        detail,
    };
    match quiet_panics::run(open) {
        Ok(Err(
            StoreError::Open {
                source: DatabaseError::Storage(StorageError::Corrupted(detail)),
                ..
            }
            | StoreError::Storage(redb::Error::Corrupted(detail))
            | StoreError::Migrate(MigrateError::Storage(redb::Error::Corrupted(detail))),
        )) => Err(damaged(detail)),
        Ok(opened) => opened,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(damaged(format!("it panicked: {detail}")))
        }
    }
}

/// Panics caught by [`survive_damage`] are reported as [`StoreError::Damaged`]; the panic hook
/// must not also print them (a message and, with `RUST_BACKTRACE`, a backtrace before the
/// error that says what happened). Other panics print as before.
mod quiet_panics {
    use std::cell::Cell;
    use std::panic::{self, AssertUnwindSafe};
    use std::sync::Once;

    thread_local! {
        /// Set while this thread runs a call whose panic is caught and reported.
        static QUIET: Cell<bool> = const { Cell::new(false) };
    }

    /// Runs `f`, catching its panic, with the process's panic hook silent for this thread.
    pub(super) fn run<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                if !QUIET.with(Cell::get) {
                    previous(info);
                }
            }));
        });
        let was = QUIET.with(|quiet| quiet.replace(true));
        let caught = panic::catch_unwind(AssertUnwindSafe(f));
        QUIET.with(|quiet| quiet.set(was));
        caught
    }
}

/// The writable open of [`open_db`], once the file is known not to be newer than this binary.
fn open_writable(path: &Path, options: &StoreOptions) -> Result<Database, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut builder = Database::builder();
    builder.set_cache_size(options.cache_mb.max(1) << 20);
    if let Some(on_repair) = options.on_repair.clone() {
        builder.set_repair_callback(move |session| on_repair(session.progress()));
    }
    // A new file is its user's alone, as the journal and the backups are: with `--auth-reads`
    // the data must not be readable by copying the file (the process umask made it 0644).
    let open = |create: bool| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .mode(crate::fsutil::FILE_MODE)
            .open(path)
    };
    let (file, created) = match open(true) {
        Ok(file) => (Ok(file), true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (open(false), false),
        Err(e) => (Err(e), false),
    };
    let opened = file.map_err(DatabaseError::from).and_then(|file| {
        let backend = FileBackend::new(file)?;
        match &options.backend {
            None => builder.create_with_backend(backend),
            Some(wrap) => builder.create_with_backend(backend::DynBackend(wrap(backend))),
        }
    });
    opened.map_err(|source| {
        // A database this open began and could not make (a full disk, say) is no database:
        // left there, it would be refused at every later start as not one, or as empty.
        if created && let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove the database file a failed creation left");
        }
        open_error(path, source)
    })
}

/// What a failed open of the file at `path` means, for the user.
fn open_error(path: &Path, source: DatabaseError) -> StoreError {
    match source {
        DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
            path: path.to_owned(),
        },
        // redb's "not a database": an I/O error of kind InvalidData.
        DatabaseError::Storage(StorageError::Io(e))
            if e.kind() == std::io::ErrorKind::InvalidData =>
        {
            StoreError::NotADatabase {
                path: path.to_owned(),
            }
        }
        // A structure the header points at lies past the end of the file: it was cut.
        DatabaseError::Storage(StorageError::Io(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            StoreError::Damaged {
                path: path.to_owned(),
                detail: e.to_string(),
            }
        }
        // A header that contradicts itself (a page size or region count no redb writes): the
        // read-only open reports it so, where the writable one goes through `survive_damage`.
        DatabaseError::Storage(StorageError::Corrupted(detail)) => StoreError::Damaged {
            path: path.to_owned(),
            detail,
        },
        source => StoreError::Open {
            path: path.to_owned(),
            source,
        },
    }
}

/// Refuses a file whose schema is newer than this binary before any writable open, since even
/// a writable open that changes nothing rewrites redb's own bookkeeping. A file that cannot be
/// opened read-only (it needs repair, say) is left to the writable open.
fn refuse_newer(path: &Path) -> Result<(), StoreError> {
    if !path.exists() {
        return Ok(());
    }
    // Only a newer file and damage are refused here: a file that cannot be opened read-only
    // (it needs repair after a crash, say) is the writable open's to handle, and so is any
    // other error.
    match held::read_only(path) {
        Err(
            e @ (StoreError::Migrate(MigrateError::NewerThanBinary { .. })
            | StoreError::Damaged { .. }),
        ) => Err(e),
        _ => Ok(()),
    }
}
