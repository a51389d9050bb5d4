//! A database file held open read-only, for the commands that must not change it: the plan of
//! `migrate --dry-run`, and `check` and an offline `backup` of a file made by an older binary,
//! which work on a copy of it as it is. Only a command that writes migrates.
//!
//! redb's read-only open takes a shared lock, so no server or other command can open the file
//! for writing while it is held: the plan read and the copy made are of one state of the
//! file. A file that was not closed cleanly cannot be opened read-only; it is repaired first,
//! by a writable open that does no more (no migration), as the binary that made it would
//! repair it: that is the one change made, and [`HeldFile::repaired`] says so.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use lakehouse_kb_migrations as migrations;
use redb::{Database, DatabaseError, ReadOnlyDatabase};

use super::backup::through_partial;
use super::journal;
use super::journaled::refuse_pending_before_migration;
use super::{
    Plan, Store, StoreError, StoreOptions, open_db, open_error, refuse_empty, survive_damage,
};
use crate::fsutil;

/// Bytes read and written at once by a copy.
const COPY_CHUNK: usize = 1 << 20;

/// The database file at a path, held open read-only (see the module documentation).
pub struct HeldFile {
    path: PathBuf,
    db: ReadOnlyDatabase,
    plan: Plan,
    repaired: bool,
    /// The held file's device and inode, read just after it was opened: a copy is taken only
    /// of this file, not of one renamed into its place since (which the lock does not cover).
    identity: (u64, u64),
}

impl Store {
    /// Holds the file at `path` read-only and reads what opening it would migrate. Fails as
    /// [`Store::open`] would on a file that is in use, damaged, not a database or newer than
    /// this binary, without changing it; repairs one that was not closed cleanly first.
    pub fn hold(path: &Path, options: &StoreOptions) -> Result<HeldFile, StoreError> {
        refuse_empty(path)?;
        let mut repaired = false;
        loop {
            match read_only(path)? {
                Ok((db, plan)) => {
                    let identity =
                        fsutil::dev_ino(&fs::metadata(path).map_err(source_error(path))?);
                    return Ok(HeldFile {
                        path: path.to_owned(),
                        db,
                        plan,
                        repaired,
                        identity,
                    });
                }
                // Only a file that needs repair is opened for writing, and only to repair it.
                Err(DatabaseError::RepairAborted) if !repaired => {
                    drop(open_db(path, options)?);
                    repaired = true;
                    tracing::warn!(
                        "{} was not closed cleanly: redb repaired it",
                        path.display()
                    );
                }
                Err(source) => return Err(open_error(path, source)),
            }
        }
    }
}

/// The file at `path` opened read-only, and what opening it would migrate; the inner error
/// when redb cannot open it read-only (it needs repair, it is in use, it is not a database).
/// A file newer than this binary is refused, a damaged one reported as such.
pub(super) fn read_only(
    path: &Path,
) -> Result<Result<(ReadOnlyDatabase, Plan), DatabaseError>, StoreError> {
    survive_damage(path, || {
        let db = match Database::builder().open_read_only(path) {
            Ok(db) => db,
            Err(e) => return Ok(Err(e)),
        };
        let plan = migrations::plan(&db, None)?;
        Ok(Ok((db, plan)))
    })
}

impl HeldFile {
    /// What opening the file would migrate: no steps when it is of this binary's schema.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Whether opening the file would change what it holds beyond migrating it: its findings
    /// memory is built under other rules, so the store rebuilds it and may re-key its
    /// dismissals to today's fingerprints. A command that must not change the file works on
    /// a copy of it then, as for a file of an older schema.
    pub fn rebuilds_on_open(&self) -> Result<bool, StoreError> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        let meta = match txn.open_table(super::tables::META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        Ok(!super::findings::memory_is_current(&meta)?)
    }

    /// Whether the file had to be repaired before it could be held (it was not closed
    /// cleanly).
    pub fn repaired(&self) -> bool {
        self.repaired
    }

    /// Fails as [`Store::open`] would before migrating the file: its write-ahead journal
    /// holds writes the file does not, which only a binary of the file's schema applies.
    pub fn refuse_pending_journal(&self) -> Result<(), StoreError> {
        refuse_pending_before_migration(&self.db, &self.path)
    }

    /// Copies the file as it is, and its write-ahead journal when it has one, into the
    /// directory `dest` under their own names; each is written through a partial file linked
    /// into place, the journal first, so that the database's copy is there only when both are
    /// whole. A copy that fails removes what it wrote (one that is killed may leave the
    /// journal's copy, or a partial file). Returns the bytes of the file's copy, and of the
    /// journal's when there was one.
    pub fn copy_into(&self, dest: &Path) -> Result<(u64, Option<u64>), StoreError> {
        let name = |path: &Path| dest.join(path.file_name().unwrap_or_default());
        let journal = journal::path_of(&self.path);
        let journal_bytes = match fs::symlink_metadata(&journal) {
            Ok(_) => Some(copy_file(&journal, &name(&journal), None)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(source_error(&journal)(e)),
        };
        match copy_file(&self.path, &name(&self.path), Some(self.identity)) {
            Ok(bytes) => Ok((bytes, journal_bytes)),
            Err(e) => {
                if journal_bytes.is_some() {
                    let _ = fs::remove_file(name(&journal));
                }
                Err(e)
            }
        }
    }
}

/// Copies `from` to the new file `to` (through `to.partial`, synced, linked into place); with
/// `held`, only if the file opened is the one of that identity.
fn copy_file(from: &Path, to: &Path, held: Option<(u64, u64)>) -> Result<u64, StoreError> {
    let mut source = File::open(from).map_err(source_error(from))?;
    if let Some(held) = held {
        let opened = fsutil::dev_ino(&source.metadata().map_err(source_error(from))?);
        if opened != held {
            return Err(StoreError::Read {
                path: from.to_owned(),
                source: std::io::Error::other(
                    "another file was put in its place while it was held; nothing was copied",
                ),
            });
        }
    }
    through_partial(to, |mut file| {
        let mut buf = vec![0; COPY_CHUNK];
        let mut bytes = 0;
        loop {
            let n = source.read(&mut buf).map_err(source_error(from))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(redb::Error::Io)?;
            bytes += n as u64;
        }
        file.sync_all().map_err(redb::Error::Io)?;
        Ok(bytes)
    })
}

/// An error reading the file copied: the database's, not the copy's.
fn source_error(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Read {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock covers the file held, not its path: a file renamed into its place meanwhile
    /// (which a server may have opened and be writing) is not copied as if it were the one
    /// held. Until 2026-12-05 the copy was taken by path.
    #[test]
    fn a_file_put_in_the_held_ones_place_is_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.redb");
        let other = dir.path().join("other.redb");
        for file in [&path, &other] {
            drop(Store::open(file, StoreOptions::default()).unwrap());
        }
        let held = Store::hold(&path, &StoreOptions::default()).unwrap();
        let dest = tempfile::tempdir().unwrap();
        fs::rename(&other, &path).unwrap();
        let err = held.copy_into(dest.path()).unwrap_err().to_string();
        assert!(err.contains("another file was put in its place"), "{err}");
        assert_eq!(
            fs::read_dir(dest.path()).unwrap().count(),
            0,
            "nothing copied"
        );
    }

    #[test]
    fn the_held_file_itself_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.redb");
        drop(Store::open(&path, StoreOptions::default()).unwrap());
        let held = Store::hold(&path, &StoreOptions::default()).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let (bytes, _) = held.copy_into(dest.path()).unwrap();
        assert_eq!(bytes, fs::metadata(&path).unwrap().len());
        assert_eq!(
            fs::read(dest.path().join("kb.redb")).unwrap(),
            fs::read(&path).unwrap()
        );
    }
}
