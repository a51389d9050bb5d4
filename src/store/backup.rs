//! Backup: a consistent copy of the database taken from one read snapshot while writes go on
//! (never a file copy under a writer). Rows are copied table by table into a new file, which
//! is linked into place only once complete and durable, so a backup is whole or absent.
//!
//! Two ways in. [`Store::backup_to`] writes where its caller (the CLI, as its own user) says.
//! [`Store::backup_into`] is the server's: only under the configured backup directory, as
//! `DIR/NAME/kb.redb` with a plain `NAME` (see [`BackupName`]), in a directory it creates itself
//! and marks as its own, so that pruning (the newest `keep` are kept) only ever removes what the
//! server made. Neither follows a symbolic link, overwrites a file or removes one it did not
//! create: the copy's file is created exclusively and linked (not renamed) into place, which
//! fails rather than replace whatever is there.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use lakehouse_kb_migrations as migrations;
use redb::backends::FileBackend;
use redb::{
    Database, Durability, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    Value,
};
use serde::{Deserialize, Serialize};

use super::tables::*;
use super::{DB_FILE, Store, StoreError};
use crate::fsutil;

/// Rows per write transaction of the copy: bounds the memory a transaction holds, and how long
/// a cancelled copy runs on.
const CHUNK: usize = 50_000;

/// The file that marks a directory under the backup directory as made by the server: pruning
/// touches no directory without it.
pub const MARKER_FILE: &str = ".lakehouse-kb-backup";

/// A marker being rewritten ([`rewrite_marker`]); a crash may leave it, which pruning removes.
const NEXT_MARKER_FILE: &str = ".lakehouse-kb-backup.next";

/// Longest backup name, in bytes.
pub const MAX_NAME_BYTES: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// Where the copy is (`DEST/kb.redb`): for the CLI; the HTTP answer leaves it out.
    pub path: String,
    /// The backup's name under the backup directory (the destination directory's name for
    /// [`Store::backup_to`]).
    pub name: String,
    pub last_seq: u64,
    pub rows: u64,
    pub bytes: u64,
    pub millis: u64,
    /// Older server-made backups removed to keep the newest `keep`.
    pub pruned: Vec<String>,
}

/// A backup's name: a plain file name, 1 to [`MAX_NAME_BYTES`] bytes of ASCII letters, digits,
/// `.`, `_` and `-`, starting with a letter or digit and without `..`. So no separator (`/`,
/// `\`), no parent or hidden name, no NUL, control character, space or non-ASCII letter that
/// could make two names look alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupName(String);

impl BackupName {
    /// Validates a client's name; the error says what is wrong without echoing more than the
    /// rule (the name may hold control characters).
    pub fn parse(name: &str) -> Result<BackupName, String> {
        let rule = "a backup name is 1 to 100 ASCII letters, digits, '.', '_' or '-', starting \
                    with a letter or digit";
        if name.is_empty() {
            return Err(format!("name is empty: {rule}"));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(format!("name is {} bytes long: {rule}", name.len()));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if let Some(bad) = name.chars().find(|&c| !allowed(c)) {
            return Err(format!("name holds {bad:?}: {rule}"));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "name {name:?} does not start with a letter or digit: {rule}"
            ));
        }
        if name.contains("..") {
            return Err(format!("name {name:?} holds \"..\": {rule}"));
        }
        Ok(BackupName(name.to_owned()))
    }

    /// The server's name for a backup taken at `at`: `kb-20261203T072831Z` (UTC, to the
    /// second; a second backup in the same second gets `-2`, and so on).
    pub fn timestamped(at: SystemTime) -> BackupName {
        let text = humantime::format_rfc3339_seconds(at).to_string();
        BackupName(format!("kb-{}", text.replace(['-', ':'], "")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The marker's content: who made the directory, of which database, and when (the order
/// pruning goes by).
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    created_by: String,
    name: String,
    created_ms: u64,
    /// The [`Store::identity`] of the database backed up: a server prunes only its own
    /// database's backups, so that two servers given one backup directory keep each other's.
    /// Absent from markers written before it was (their backups are pruned as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    database: Option<String>,
    /// The request it was made for, when that request had an idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<BackupRequest>,
    /// What it copied, written once the copy is whole: the answer to a retry of its request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    done: Option<Done>,
    /// Its place in the order the server made this database's backups in (one more than the
    /// highest among them when it was made): the order pruning goes by, whatever the clock
    /// and the database's seqs did. Absent from markers written before it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    made: Option<u64>,
}

/// What a whole backup copied ([`Marker::done`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Done {
    last_seq: u64,
    rows: u64,
    bytes: u64,
    millis: u64,
}

/// A backup request that came with an idempotency key: a retry with the same key within the
/// key's window is answered with the backup the first made, kept with it in its marker, while
/// that backup is kept ([`Store::backup_into`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRequest {
    /// SHA-256 of the key, in hex: a key may be a client's secret, and is not kept as given.
    key: String,
    /// The name asked for; none when the server was to pick it.
    asked: Option<String>,
    /// How long after its backup was made a key answers (`--idempotency-window`): a fixed key
    /// (a nightly job's) makes a new backup each night. Not kept in the marker.
    #[serde(skip)]
    window_ms: u64,
}

impl BackupRequest {
    pub fn new(key: &str, asked: Option<&BackupName>, window: Duration) -> BackupRequest {
        use sha2::{Digest, Sha256};
        BackupRequest {
            key: format!("{:x}", Sha256::digest(key.as_bytes())),
            asked: asked.map(|name| name.as_str().to_owned()),
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// A backup done: made now, or found made by an earlier request with the same key.
#[derive(Debug, Clone)]
pub enum Backup {
    Made(BackupReport),
    /// Made before, for a request with the same key and the same name (or none): nothing new
    /// is written, and nothing pruned.
    Before(BackupReport),
}

const CREATED_BY: &str = "lakehouse-kb";

/// Held while a backup of the store runs: one at a time, and a second is refused at once, never
/// queued (a queue of backups is unbounded disk and I/O).
pub(super) struct BackupSlot(AtomicBool);

impl BackupSlot {
    pub(super) const fn new() -> BackupSlot {
        BackupSlot(AtomicBool::new(false))
    }
}

/// Frees the slot when the backup ends, however it ends.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Store {
    fn one_at_a_time(&self) -> Result<Running<'_>, StoreError> {
        let slot = &self.shared.backup.0;
        if slot
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(StoreError::BackupBusy);
        }
        Ok(Running(slot))
    }
}

impl Store {
    /// Copies the database as of now into a new file at `dest`, which must not exist, nor
    /// `dest.partial` beside it (an interrupted backup's: it is not removed, since this call did
    /// not create it). Fails with [`StoreError::BackupExists`] when either is taken,
    /// [`StoreError::BackupBusy`] while another backup runs.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        let _one = self.one_at_a_time()?;
        let start = Instant::now();
        let (last_seq, rows) = self.copy_to(dest, &AtomicBool::new(false))?;
        let name = dest
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        report(dest, name, last_seq, rows, start, Vec::new())
    }

    /// The server's backup: into `backup_dir/NAME/kb.redb` (the server picks a timestamped name
    /// when `name` is `None`), then removes the oldest server-made backups beyond `keep`.
    /// `cancel` is checked once per chunk of rows: set, the copy stops and leaves nothing
    /// behind. Fails with [`StoreError::BackupExists`] when `name` is taken.
    ///
    /// With a `request` (its client gave an idempotency key), a backup made before for the same
    /// key is the answer ([`Backup::Before`]), and one made for the same key with another name
    /// is [`StoreError::BackupKeyReused`]: looked for among the backups kept, each marker read
    /// once (at most `keep` of them, and any others in the directory).
    pub fn backup_into(
        &self,
        backup_dir: &Path,
        name: Option<BackupName>,
        keep: usize,
        cancel: &AtomicBool,
        request: Option<BackupRequest>,
    ) -> Result<Backup, StoreError> {
        let _one = self.one_at_a_time()?;
        let start = Instant::now();
        let io = |what: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::BackupDest {
                path: path.join(what),
                source,
            }
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(fsutil::DIR_MODE)
                .create(backup_dir)
        }
        .map_err(io("", backup_dir))?;
        // A link where the backup directory should be (made after the server resolved its
        // `--backup-dir`) is refused before anything is written: at 3ab4e2b the copy went
        // through it, then syncing the directory (opened without following links) failed, and
        // the answer said nothing was kept while the copy stayed, unpruned (a review's).
        if fs::symlink_metadata(backup_dir)
            .map_err(io("", backup_dir))?
            .file_type()
            .is_symlink()
        {
            return Err(StoreError::BackupDest {
                path: backup_dir.to_owned(),
                source: std::io::Error::other(
                    "the backup directory is a symbolic link, which the server does not follow \
                     (give --backup-dir the real path)",
                ),
            });
        }
        let database = self.identity().map(str::to_owned);
        let mut name = name;
        if let Some(request) = &request {
            match made_for(backup_dir, request, database.as_deref())? {
                Some(Attempt::Answered(before)) => return Ok(Backup::Before(before)),
                // This request's own attempt that never answered (a crash, or a failure
                // after the copy): its leftovers go and the backup is made again, under the
                // name it had, so that the retry is not refused as a name taken.
                Some(Attempt::Unanswered(dir, was)) if remove_backup(&dir).is_ok() => {
                    name = Some(was);
                }
                Some(Attempt::Unanswered(..)) | None => {}
            }
        }
        if let Some(asked) = &name {
            let dir = backup_dir.join(asked.as_str());
            if own_marker(&dir, asked.as_str(), database.as_deref()).is_some() && !is_whole(&dir) {
                // This database's backup of that name that a crash cut short (no whole copy:
                // nothing to restore) is no backup to keep: it goes, and the backup is made
                // again under its name (it was refused as a name taken: a review's). Backups
                // run one at a time, so it is no backup still being made.
                if let Err(e) = remove_backup(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove an interrupted backup's directory");
                }
            }
        }
        let order = ours(backup_dir, database.as_deref())
            .filter_map(|(_, marker)| marker.made)
            .max()
            .map_or(1, |last| last.saturating_add(1));
        let (name, dir) = create_backup_dir(backup_dir, name)?;
        let mut marker = Marker {
            created_by: CREATED_BY.into(),
            name: name.as_str().into(),
            created_ms: crate::model::now_ms(),
            database: database.clone(),
            request,
            done: None,
            made: Some(order),
        };
        let written = write_marker(&dir.join(MARKER_FILE), &marker).map_err(io(MARKER_FILE, &dir));
        let dest = dir.join(DB_FILE);
        let copied = written.and_then(|()| self.copy_to(&dest, cancel));
        let (last_seq, rows) = match copied {
            Ok(copied) => copied,
            Err(e) => {
                // The directory and the marker are this call's: a failed or cancelled backup
                // leaves nothing (`copy_to` removed its partial file).
                let _ = fs::remove_file(dir.join(MARKER_FILE));
                let _ = fs::remove_dir(&dir);
                return Err(e);
            }
        };
        if let Err(e) = fsutil::sync_dir(backup_dir) {
            // The answer says nothing was kept: nothing is.
            let _ = remove_backup(&dir);
            return Err(io("", backup_dir)(e));
        }
        let made = report(&dest, name.0, last_seq, rows, start, Vec::new())?;
        if marker.request.is_some() {
            // The answer a retry gets, kept beside the copy; until it is, a retry makes another.
            marker.done = Some(Done {
                last_seq,
                rows,
                bytes: made.bytes,
                millis: made.millis,
            });
            rewrite_marker(&dir, &marker).map_err(io(MARKER_FILE, &dir))?;
        }
        let pruned = prune(backup_dir, keep, &made.name, database.as_deref());
        Ok(Backup::Made(BackupReport { pruned, ..made }))
    }

    /// Copies into `dest` through `dest.partial`, created exclusively and linked into place.
    fn copy_to(&self, dest: &Path, cancel: &AtomicBool) -> Result<(u64, u64), StoreError> {
        through_partial(dest, |file| {
            let snapshot = self.db()?.begin_read()?;
            let last_seq = super::meta::get(&snapshot.open_table(META)?, super::meta::LAST_SEQ)?;
            // The store's cache size, not redb's default (1 GiB): the chunks are committed
            // without a sync, and their pages stayed in the copy's cache until the end, so a
            // backup held up to the database's size in memory (710 MiB for a 570 MB copy, a
            // review's).
            let copy = Database::builder()
                .set_cache_size(self.cache_bytes())
                .create_with_backend(FileBackend::new(file)?)
                .map_err(copy_error)?;
            let rows = copy_all(&snapshot, &copy, cancel)?;
            copy.close().map_err(copy_error)?;
            Ok((last_seq, rows))
        })
    }
}

/// An error of the copy's own database: its I/O error stays one, for [`through_partial`] to
/// give to the destination (a full disk where the backups go is a 507, not a 500).
fn copy_error(e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::Storage(redb::StorageError::Io(source)) => {
            StoreError::Storage(redb::Error::Io(source))
        }
        e => StoreError::Backup(e.to_string()),
    }
}

/// Writes a new file at `dest` through `dest.partial`, created exclusively (`write` fills and
/// syncs it), then linked into place, so that `dest` is whole or absent. An I/O error while
/// writing is the destination's ([`StoreError::BackupDest`]).
pub(super) fn through_partial<T>(
    dest: &Path,
    write: impl FnOnce(fs::File) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let partial = partial_path(dest);
    let dest_error = |path: &Path| {
        let path = path.to_owned();
        move |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                StoreError::BackupExists(path)
            } else {
                StoreError::BackupDest { path, source }
            }
        }
    };
    if fs::symlink_metadata(dest).is_ok() {
        return Err(StoreError::BackupExists(dest.to_owned()));
    }
    let file = fsutil::create_new(&partial, fsutil::FILE_MODE).map_err(dest_error(&partial))?;
    let written = write(file).map_err(|e| match e {
        // Mostly the copy's own file (a full disk where the backups go), not the database:
        // never a fault of the store. The copy's tables are made by the migrations.
        StoreError::Storage(redb::Error::Io(source))
        | StoreError::Migrate(migrations::MigrateError::Storage(redb::Error::Io(source))) => {
            StoreError::BackupDest {
                path: partial.clone(),
                source,
            }
        }
        e => e,
    });
    let linked = written.and_then(|written| {
        // A hard link fails when `dest` exists (a file or a link, dangling or not), where a
        // rename would replace it.
        fs::hard_link(&partial, dest).map_err(dest_error(dest))?;
        Ok(written)
    });
    let _ = fs::remove_file(&partial);
    let written = linked?;
    if let Some(parent) = dest.parent() {
        // The link is durable once the directory entry is. One that cannot be made durable is
        // taken back (the link is ours: it was made where nothing was), so that a failed copy
        // leaves no file a later command would take for whole.
        if let Err(source) = fsutil::sync_dir(parent) {
            let _ = fs::remove_file(dest);
            return Err(dest_error(parent)(source));
        }
    }
    Ok(written)
}

fn report(
    dest: &Path,
    name: String,
    last_seq: u64,
    rows: u64,
    start: Instant,
    pruned: Vec<String>,
) -> Result<BackupReport, StoreError> {
    Ok(BackupReport {
        path: dest.display().to_string(),
        name,
        last_seq,
        rows,
        bytes: fs::symlink_metadata(dest).map(|m| m.len()).unwrap_or(0),
        millis: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        pruned,
    })
}

/// Every file a copy of the database into `target` may write: the copy, the copy of the
/// database's journal (taken along by [`HeldFile::copy_into`](super::HeldFile::copy_into)),
/// and their partial files while they are written. One of them already there is a backup, or
/// an interrupted one, which a new copy beside it must not be mixed with.
pub fn files_of_copy(target: &Path) -> [PathBuf; 4] {
    let journal = super::journal::path_of(target);
    [
        partial_path(target),
        partial_path(&journal),
        journal,
        target.to_owned(),
    ]
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_owned();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Creates `backup_dir/NAME` (mode 0700) exclusively: a given name that is taken (by anything,
/// a link included) is [`StoreError::BackupExists`]; a timestamped one gets a suffix instead.
fn create_backup_dir(
    backup_dir: &Path,
    name: Option<BackupName>,
) -> Result<(BackupName, PathBuf), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    let create = |name: &BackupName| {
        let dir = backup_dir.join(name.as_str());
        fs::DirBuilder::new()
            .mode(fsutil::DIR_MODE)
            .create(&dir)
            .map(|()| dir)
    };
    let exists = |e: &std::io::Error| e.kind() == std::io::ErrorKind::AlreadyExists;
    let failed = |dir: PathBuf| move |source| StoreError::BackupDest { path: dir, source };
    match name {
        Some(name) => match create(&name) {
            Ok(dir) => Ok((name, dir)),
            Err(e) if exists(&e) => Err(StoreError::BackupExists(backup_dir.join(name.as_str()))),
            Err(e) => Err(failed(backup_dir.join(name.as_str()))(e)),
        },
        None => {
            let base = BackupName::timestamped(SystemTime::now());
            for n in 1..1000 {
                let name = match n {
                    1 => base.clone(),
                    n => BackupName(format!("{}-{n}", base.as_str())),
                };
                match create(&name) {
                    Ok(dir) => return Ok((name, dir)),
                    Err(e) if exists(&e) => continue,
                    Err(e) => return Err(failed(backup_dir.join(name.as_str()))(e)),
                }
            }
            Err(StoreError::BackupExists(backup_dir.join(base.as_str())))
        }
    }
}

/// Removes the oldest server-made backups of `database` beyond `keep` (the one just made counts
/// and is never removed). A directory is the server's only when it is a real directory (not a
/// link) holding a regular-file marker that names it and this database (or no database: a
/// marker older than that field); the server removes its `kb.redb`, an interrupted copy's
/// `kb.redb.partial` (a crash mid-backup leaves one), its marker and then the directory, unless
/// anything else is in it (then the directory is left whole, with a warning). Returns the
/// names removed. Only whole copies (a `kb.redb` in place) count towards `keep`: one a crash
/// interrupted (only its marker and `kb.redb.partial`) restores nothing, and is removed
/// whatever its age (counted, it made a whole backup the one removed: a review's).
/// Failures are logged, never fatal: the backup itself is done.
fn prune(backup_dir: &Path, keep: usize, just_made: &str, database: Option<&str>) -> Vec<String> {
    let mut ours: Vec<(bool, Option<u64>, u64, String)> = ours(backup_dir, database)
        .filter(|(_, marker)| marker.name != just_made)
        .map(|(dir, marker)| (is_whole(&dir), marker.made, marker.created_ms, marker.name))
        .collect();
    // Whole copies first, newest first: in the order they were made (a copy whose marker says
    // none, from an older build, is older than any that says one), then by creation time,
    // then by name. By creation time alone, a clock set back made each new backup prune the
    // one before it while backups stamped in the clock's future were kept; by the last seq a
    // copy holds, a database restored from an older backup made each new backup prune the
    // one before it while the abandoned history's were kept (two reviews').
    ours.sort_unstable_by(|a, b| b.cmp(a));
    let whole = ours.iter().filter(|(whole, ..)| *whole).count();
    let kept = keep.saturating_sub(1).min(whole);
    let mut pruned = Vec::new();
    for (_, _, _, name) in ours.into_iter().skip(kept) {
        let dir = backup_dir.join(&name);
        match remove_backup(&dir) {
            Ok(()) => pruned.push(name),
            Err(e) => tracing::warn!(
                dir = %dir.display(),
                error = %e,
                "cannot remove an old backup's directory (it holds files the server did not \
                 make?); left as it is"
            ),
        }
    }
    pruned
}

/// What a request with an idempotency key made before ([`made_for`]).
enum Attempt {
    /// Its backup, whole, with the answer its request got (nothing pruned).
    Answered(BackupReport),
    /// Its directory (and the name it had) without an answer: the copy never finished, or
    /// finished and the answer was never written (a crash or a failed write between), or
    /// the copy is gone. Nothing in it answers a retry.
    Unanswered(PathBuf, BackupName),
}

/// What a request with `request`'s key made within the key's window, among the backups under
/// `backup_dir` of the database `database`, when it asked for the same name or none alike;
/// [`StoreError::BackupKeyReused`] when it asked for another.
fn made_for(
    backup_dir: &Path,
    request: &BackupRequest,
    database: Option<&str>,
) -> Result<Option<Attempt>, StoreError> {
    let mut unanswered = None;
    for (dir, marker) in ours(backup_dir, database) {
        let Some(made) = &marker.request else {
            continue;
        };
        let recent =
            crate::model::expiry_now_ms().saturating_sub(marker.created_ms) < request.window_ms;
        if made.key != request.key || !recent {
            continue;
        }
        if made.asked != request.asked {
            return Err(StoreError::BackupKeyReused { name: marker.name });
        }
        let whole = is_whole(&dir);
        match marker.done {
            Some(done) if whole => {
                return Ok(Some(Attempt::Answered(BackupReport {
                    path: dir.join(DB_FILE).display().to_string(),
                    name: marker.name,
                    last_seq: done.last_seq,
                    rows: done.rows,
                    bytes: done.bytes,
                    millis: done.millis,
                    pruned: Vec::new(),
                })));
            }
            _ => {
                if let Ok(name) = BackupName::parse(&marker.name) {
                    unanswered = Some(Attempt::Unanswered(dir, name));
                }
            }
        }
    }
    Ok(unanswered)
}

/// Removes a server-made backup's directory: its copy, an interrupted copy's partial file, its
/// markers, then the directory itself. A directory holding anything else is left whole (an
/// error), so that a backup is never half removed: its copy gone and its marker with it, the
/// directory no longer known as the server's.
fn remove_backup(dir: &Path) -> std::io::Result<()> {
    let partial = partial_path(Path::new(DB_FILE));
    let made = [
        Path::new(DB_FILE),
        &partial,
        Path::new(MARKER_FILE),
        Path::new(NEXT_MARKER_FILE),
    ];
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !entry.file_type()?.is_file() || !made.iter().any(|own| name == own.as_os_str()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::DirectoryNotEmpty,
                format!(
                    "{} holds {name:?}, which is not a file the server made",
                    dir.display()
                ),
            ));
        }
    }
    for file in made {
        let _ = fs::remove_file(dir.join(file));
    }
    fs::remove_dir(dir)
}

/// Replaces `dir`'s marker with `marker`, whole or not at all: written beside it, synced,
/// renamed over it, the directory synced.
fn rewrite_marker(dir: &Path, marker: &Marker) -> std::io::Result<()> {
    let next = dir.join(NEXT_MARKER_FILE);
    let _ = fs::remove_file(&next);
    write_marker(&next, marker)?;
    fs::rename(&next, dir.join(MARKER_FILE))?;
    fsutil::sync_dir(dir)
}

/// Writes `marker` into a new file at `path`, synced.
fn write_marker(path: &Path, marker: &Marker) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = fsutil::create_new(path, fsutil::FILE_MODE)?;
    file.write_all(&serde_json::to_vec(marker).unwrap_or_default())?;
    file.sync_all()
}

/// The server's own backups under `backup_dir` (as [`prune`] tells them: a real directory
/// holding a regular-file marker that names it and `database`, or no database), each with its
/// marker, in directory order.
fn ours<'a>(
    backup_dir: &Path,
    database: Option<&'a str>,
) -> impl Iterator<Item = (PathBuf, Marker)> + 'a {
    fs::read_dir(backup_dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(move |entry| {
            let name = entry.file_name().into_string().ok()?;
            let dir = entry.path();
            let marker = own_marker(&dir, &name, database)?;
            Some((dir, marker))
        })
}

/// The marker of `dir`, when it is the server's backup named `name` of `database` (as [`ours`]
/// tells them).
fn own_marker(dir: &Path, name: &str, database: Option<&str>) -> Option<Marker> {
    fsutil::require_real_dir(dir).ok()?;
    let marker: Marker = serde_json::from_slice(&read_marker(dir)?).ok()?;
    let of_database = marker.database.is_none() || marker.database.as_deref() == database;
    (marker.created_by == CREATED_BY && marker.name == name && of_database).then_some(marker)
}

/// Whether a backup's directory holds its whole copy (a crash mid-copy leaves only the partial
/// file).
fn is_whole(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(DB_FILE)).is_ok_and(|m| m.is_file())
}

/// The marker of `dir`, if it is a regular file (never a link, a pipe or a device: reading
/// one could block or never end), read up to [`MAX_MARKER_BYTES`].
fn read_marker(dir: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let path = dir.join(MARKER_FILE);
    if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    let mut bytes = Vec::new();
    fsutil::open_read(&path)
        .ok()?
        .take(MAX_MARKER_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// More than a marker the server writes ever holds.
const MAX_MARKER_BYTES: u64 = 4096;

fn copy_all(
    snapshot: &ReadTransaction,
    copy: &Database,
    cancel: &AtomicBool,
) -> Result<u64, StoreError> {
    // The copy gets the current schema's tables first, then every row of every table
    // (meta included, so versions, seq, counters and checkpoints come along).
    migrations::migrate(copy, None, &mut |_, _| {})?;
    let mut rows = 0;
    rows += copy_table(snapshot, copy, META, cancel)?;
    rows += copy_table(snapshot, copy, CODEC_DICTIONARIES, cancel)?;
    rows += copy_table(snapshot, copy, VERDICTS_BY_SEQ, cancel)?;
    rows += copy_table(snapshot, copy, OUTCOMES, cancel)?;
    rows += copy_table(snapshot, copy, EVENTS, cancel)?;
    rows += copy_table(snapshot, copy, EVENT_SOURCE_SEQS, cancel)?;
    rows += copy_table(snapshot, copy, EVENT_KIND_SEQS, cancel)?;
    rows += copy_table(snapshot, copy, IMPORT_KEYS, cancel)?;
    rows += copy_table(snapshot, copy, REPOS, cancel)?;
    rows += copy_table(snapshot, copy, REPO_NAMES, cancel)?;
    rows += copy_table(snapshot, copy, BY_SIG, cancel)?;
    rows += copy_table(snapshot, copy, VERDICT_IDENTITIES, cancel)?;
    rows += copy_table(snapshot, copy, PR_VERDICTS, cancel)?;
    rows += copy_table(snapshot, copy, PRS, cancel)?;
    rows += copy_table(snapshot, copy, PR_HEADS, cancel)?;
    rows += copy_table(snapshot, copy, CLAIM_HASHES, cancel)?;
    rows += copy_table(snapshot, copy, CLAIM_TERMS, cancel)?;
    rows += copy_table(snapshot, copy, CLIENT_KEYS, cancel)?;
    rows += copy_table(snapshot, copy, CLIENT_KEYS_BY_TIME, cancel)?;
    rows += copy_table(snapshot, copy, FINDINGS, cancel)?;
    rows += copy_table(snapshot, copy, FINDING_FPS, cancel)?;
    rows += copy_table(snapshot, copy, FINDINGS_BY_LAST_AUDIT, cancel)?;
    rows += copy_table(snapshot, copy, FINDINGS_AUDITS, cancel)?;
    rows += copy_table(snapshot, copy, DISMISSALS, cancel)?;
    rows += copy_table(snapshot, copy, DISMISSAL_IDS, cancel)?;
    rows += copy_table(snapshot, copy, DISMISSALS_BY_REPO, cancel)?;
    rows += copy_table(snapshot, copy, DISMISSALS_BY_SCOPE, cancel)?;
    // The copy is another database: the journal of the one copied (which a restore may leave
    // beside it) is not its own, and neither is its history for the change feed. Without them
    // it takes new ones at its first open; it remembers the history copied, and through which
    // seq the two are one.
    let txn = copy.begin_write()?;
    {
        let mut meta_table = txn.open_table(META)?;
        let copied = super::FeedHistory::read(&meta_table)?;
        let last_seq = super::meta::get(&meta_table, super::meta::LAST_SEQ)?;
        meta_table.remove(super::journaled::JOURNAL_ID)?;
        meta_table.remove(super::meta::FEED_HISTORY)?;
        for (i, (id, through)) in copied.ancestors_of_copy(last_seq).into_iter().enumerate() {
            let [id_key, seq_key] = super::meta::feed_ancestor_keys(i);
            meta_table.insert(id_key.as_str(), id)?;
            meta_table.insert(seq_key.as_str(), through)?;
        }
    }
    // Every chunk above was committed without fsync; this commit makes them all durable.
    txn.commit()?;
    Ok(rows)
}

fn copy_table<K: Key + 'static, V: Value + 'static>(
    snapshot: &ReadTransaction,
    copy: &Database,
    definition: TableDefinition<K, V>,
    cancel: &AtomicBool,
) -> Result<u64, StoreError> {
    let source = snapshot.open_table(definition)?;
    let mut rows = source.iter()?;
    let mut n_rows = 0;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(StoreError::BackupCancelled);
        }
        let mut txn = copy.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::Backup(e.to_string()))?;
        let mut done = false;
        {
            let mut target = txn.open_table(definition)?;
            for _ in 0..CHUNK {
                let Some(row) = rows.next() else {
                    done = true;
                    break;
                };
                let (key, value) = row?;
                target.insert(key.value(), value.value())?;
                n_rows += 1;
            }
        }
        txn.commit()?;
        if done {
            return Ok(n_rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy whose directory cannot be synced after the link (here a directory reached through
    /// a symbolic link, which the sync does not follow) fails and leaves nothing behind: until
    /// 2026-12-05 the linked file stayed, and a database copied without its journal's copy
    /// looked whole.
    #[test]
    fn a_link_that_cannot_be_made_durable_is_taken_back() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("real")).unwrap();
        std::os::unix::fs::symlink(root.path().join("real"), root.path().join("via")).unwrap();
        let dest = root.path().join("via/kb.redb");
        let result = through_partial(&dest, |mut file| {
            std::io::Write::write_all(&mut file, b"copy").map_err(redb::Error::Io)?;
            Ok(())
        });
        assert!(
            matches!(result, Err(StoreError::BackupDest { .. })),
            "{result:?}"
        );
        let left: Vec<_> = fs::read_dir(root.path().join("real")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// A review at f639646 filled the backups' disk to its last few KiB: the copy's database
    /// could not be created, or its tables made, and the server answered 500 where a full
    /// disk is a 507. Each of those errors is now the destination's, with its kind.
    #[test]
    fn the_copys_own_io_errors_are_the_destinations() {
        let full = || std::io::Error::from(std::io::ErrorKind::StorageFull);
        let made: [(&str, StoreError); 3] = [
            (
                "creating the copy",
                copy_error(redb::DatabaseError::Storage(redb::StorageError::Io(full()))),
            ),
            (
                "making its tables",
                StoreError::Migrate(migrations::MigrateError::Storage(redb::Error::Io(full()))),
            ),
            (
                "writing its rows",
                StoreError::Storage(redb::Error::Io(full())),
            ),
        ];
        for (what, error) in made {
            let dir = tempfile::tempdir().unwrap();
            let result = through_partial(&dir.path().join(DB_FILE), |_| Err::<(), _>(error));
            assert!(
                matches!(&result, Err(StoreError::BackupDest { source, .. })
                    if source.kind() == std::io::ErrorKind::StorageFull),
                "{what}: {result:?}"
            );
        }
    }

    #[test]
    fn names_are_plain_file_names() {
        for good in [
            "nightly",
            "kb-20261203T072831Z",
            "a",
            "v1.2_x-3",
            &"x".repeat(100),
        ] {
            assert!(BackupName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "..",
            "a..b",
            "a/b",
            "/etc",
            "a\\b",
            "a\0b",
            "tab\there",
            "new\nline",
            "with space",
            "-flag",
            "é",
            &"x".repeat(101),
        ] {
            assert!(BackupName::parse(bad).is_err(), "{bad:?}");
        }
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_282_911);
        assert_eq!(BackupName::timestamped(at).as_str(), "kb-20261203T072831Z");
    }
}
