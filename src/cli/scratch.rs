//! The directory `check` copies a file of an older schema into, to migrate and check the copy:
//! `DATA/.check-XXXXXX`, mode 0700, holding a lock file (`lock`, which says whose it is) that
//! the check holds locked while it runs. It is removed when the check ends; one left by a check
//! that was killed is removed by the next check. Only what a check made is ever removed: a
//! directory whose name, mode, lock and contents are all a check's, and whose lock no running
//! check holds.

use std::fs::{self, File, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

use crate::fsutil;
use crate::store::{DB_FILE, files_of_copy};

const PREFIX: &str = ".check-";
/// Random characters after the prefix, as tempfile makes them.
const RANDOM_CHARS: usize = 6;
const LOCK: &str = "lock";
/// What the lock file holds: a directory with another lock is not a check's.
const LOCK_CONTENT: &[u8] = b"lakehouse-kb check: a migrated copy of the database\n";

pub struct Scratch {
    dir: tempfile::TempDir,
    _lock: File,
}

impl Scratch {
    /// Makes one under `data`, locked.
    pub fn new(data: &Path) -> anyhow::Result<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .rand_bytes(RANDOM_CHARS)
            .permissions(Permissions::from_mode(fsutil::DIR_MODE))
            .tempdir_in(data)
            .with_context(|| {
                format!(
                    "creating a directory for a copy in {} (or check a backup of the database \
                     elsewhere: lakehouse-kb backup DEST, then --data DEST check)",
                    data.display()
                )
            })?;
        // Locked before it says whose it is: a check finding it meanwhile sees no content it
        // knows, and leaves it alone.
        let locking = || -> std::io::Result<File> {
            let mut lock = fsutil::create_new(&dir.path().join(LOCK), fsutil::FILE_MODE)?;
            lock.try_lock().map_err(std::io::Error::from)?;
            lock.write_all(LOCK_CONTENT)?;
            Ok(lock)
        };
        let lock = locking().with_context(|| format!("locking {}", dir.path().display()))?;
        Ok(Scratch { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes from `data` the directories killed checks left (see the module documentation).
pub fn remove_stale(data: &Path) {
    let Ok(entries) = fs::read_dir(data) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if is_stale(&path) {
            match fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!(
                    "removed {}, left by a check that was killed",
                    path.display()
                ),
                Err(e) => tracing::warn!("could not remove {}: {e}", path.display()),
            }
        }
    }
}

fn is_stale(path: &Path) -> bool {
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(PREFIX))
        .is_some_and(|rest| {
            rest.len() == RANDOM_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    // The directory itself, not a link to one, and as a check makes it.
    let made = || {
        fs::symlink_metadata(path)
            .is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o7777 == fsutil::DIR_MODE)
    };
    // Its lock, and the copy's files.
    let holds_only_a_checks = || {
        let copy = files_of_copy(&path.join(DB_FILE));
        fs::read_dir(path).is_ok_and(|entries| {
            entries
                .flatten()
                .all(|e| e.file_name() == LOCK || copy.iter().any(|f| f.ends_with(e.file_name())))
        })
    };
    named && made() && holds_only_a_checks() && lock_is_free(&path.join(LOCK))
}

/// Whether `path` is a check's lock file that no running check holds: a regular file (opened
/// without following a link or waiting on a FIFO) with the check's content, lockable now.
fn lock_is_free(path: &Path) -> bool {
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let Ok(mut file) = opened else {
        return false;
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut content = Vec::new();
    let read = (&mut file)
        .take(LOCK_CONTENT.len() as u64 + 1)
        .read_to_end(&mut content);
    read.is_ok() && content == LOCK_CONTENT && file.try_lock().is_ok()
}
