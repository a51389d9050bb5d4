//! One export file against its checkpoint: decide what state it is in (current, torn tail,
//! changed, shrunk, missing, or never exported into), then append after the checkpoint, cut a
//! torn tail and append, or rebuild it in full through a temporary file and an atomic rename.
//!
//! Invariant kept by every path: a checkpoint is written only after the bytes it describes are
//! fsync'd (and, for a created or renamed file, its directory too). So after any crash the file
//! holds at least the bytes its checkpoint says, and whatever lies beyond `len` is a tail of
//! rows the checkpoint does not count: cutting it and appending again writes no row twice.
//!
//! Invariant: nothing outside the export directory is ever written, created or removed. Every
//! file is opened without following a link (`fsutil`), the `_kb`/`_observer` directories must be
//! real directories, temporary and kept-aside files are created exclusively; a link where a file
//! or directory should be is an error ([`ExportError::Link`]) and the link is left alone.
//!
//! At most one copy of a file is kept aside (`NAME.replaced-{ms}`). Foreign bytes found again
//! while one exists mean a foreign writer keeps writing: the file's export pauses
//! ([`ExportError::Paused`]) until an operator removes the kept-aside copy.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::adopt::{self, Adopter, Taken};
use super::hook::Hook;
use super::{Action, ExportError, ExportFile, FileReport};
use crate::fsutil;
use crate::store::{Checkpoint, Store, StoreError};

/// How many of a file's last bytes the tail fingerprint covers.
///
/// The fingerprint makes "changed by someone else" a constant-cost check, and that is its
/// limit: an edit that leaves the last 4 KiB before the checkpoint's `len` intact (same length,
/// changed earlier in the file) is not detected. Appends after `len` and truncations always are.
pub const TAIL_BYTES: u64 = 4096;

/// Write buffer: large enough that a full export is a few hundred `write` calls per GiB.
const WRITE_BUFFER: usize = 1 << 20;

/// The first 8 bytes (big-endian) of SHA-256 of the last up to [`TAIL_BYTES`] bytes of `file`
/// before offset `len`; 0 for `len` 0, which is what a checkpoint never written holds.
pub fn tail_fingerprint(mut file: &File, len: u64) -> io::Result<u64> {
    if len == 0 {
        return Ok(0);
    }
    let start = len.saturating_sub(TAIL_BYTES);
    let mut buf = vec![0; (len - start) as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut buf)?;
    let digest = Sha256::digest(&buf);
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    Ok(u64::from_be_bytes(first))
}

/// What to do with a file, decided from its checkpoint and what is on disk.
enum Plan {
    /// Append the rows after `base` (cutting the file back to `base.len` first if longer).
    Append { base: Checkpoint },
    /// The file exists and holds bytes, but this store never exported into it (no checkpoint):
    /// a legacy file imported in place, or a stranger's.
    Adopt { file_len: u64 },
    /// Rebuild in full, for this reason.
    Rebuild { reason: String },
}

/// The file being brought up to date and what every step needs of it.
#[derive(Clone, Copy)]
struct Target<'a> {
    store: &'a Store,
    path: &'a Path,
    file: ExportFile,
    /// The checkpoint as stored when the run began.
    stored: Checkpoint,
    /// Directories this run created, fsync'd once the file is in place.
    created_dirs: &'a [PathBuf],
    hook: &'a Hook,
    /// Stores lines another writer appended (`adopt.rs`), when the service runs the export.
    adopter: Option<&'a Adopter>,
    /// Most bytes of rows one pass writes where another writer may append (with `adopter`).
    pass_bytes: usize,
}

/// Brings one file up to date.
pub(super) fn export(
    store: &Store,
    out_dir: &Path,
    file: ExportFile,
    hook: &Hook,
    adopter: Option<&Adopter>,
    pass_bytes: usize,
) -> Result<FileReport, ExportError> {
    let path = out_dir.join(file.relative_path());
    let created_dirs = prepare_dirs(out_dir, &path)?;
    let stored = store.checkpoint(file.name())?;
    let target = Target {
        store,
        path: &path,
        file,
        stored,
        created_dirs: &created_dirs,
        hook,
        adopter,
        pass_bytes,
    };
    let mut report = export_pass(target)?;
    // Each pass that may meet another writer writes a bounded part of the rows: the run goes
    // on until the file holds every row (or a pass cannot go on: rows another writer appended
    // wait, say).
    while report.more {
        let stored = store.checkpoint(file.name())?;
        let next = export_pass(Target { stored, ..target })?;
        // Another pass only after one that wrote rows and left more.
        let again = next.more && next.rows_written > 0;
        report = report.followed_by(next);
        if !again {
            break;
        }
    }
    Ok(report)
}

/// One pass of [`export`].
fn export_pass(target: Target) -> Result<FileReport, ExportError> {
    let Target {
        store,
        path,
        file,
        stored,
        ..
    } = target;
    match plan(path, stored)? {
        Plan::Append { base } => append(target, base),
        Plan::Adopt { file_len } => adopt(target, file_len),
        Plan::Rebuild { reason } => {
            let (reason, aside) = keep_aside_unless_rows(store, path, file, reason)?;
            rebuild_after_aside(target, reason, aside)
        }
    }
}

fn plan(path: &Path, stored: Checkpoint) -> Result<Plan, ExportError> {
    let file_len = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(ExportError::Link {
                path: path.to_owned(),
            });
        }
        Ok(meta) if !meta.is_file() => {
            return Err(ExportError::NotAFile {
                path: path.to_owned(),
            });
        }
        Ok(meta) => Some(meta.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(ExportError::io("stat", path)(e)),
    };
    let never_exported = stored == Checkpoint::default();
    Ok(match file_len {
        None if never_exported => Plan::Append { base: stored },
        None => Plan::Rebuild {
            reason: format!(
                "the file is missing, but its checkpoint says rows through seq {} ({} bytes) \
                 were written",
                stored.seq, stored.len
            ),
        },
        Some(0) if never_exported => Plan::Append { base: stored },
        Some(file_len) if never_exported => Plan::Adopt { file_len },
        Some(file_len) if file_len < stored.len => Plan::Rebuild {
            reason: format!(
                "the file is shorter ({file_len} bytes) than its checkpoint ({} bytes)",
                stored.len
            ),
        },
        Some(_) => {
            let handle = open_read(path)?;
            let tail =
                tail_fingerprint(&handle, stored.len).map_err(ExportError::io("read", path))?;
            if tail == stored.tail {
                Plan::Append { base: stored }
            } else {
                Plan::Rebuild {
                    reason: format!(
                        "the file was changed since the last export (its last bytes before \
                         offset {} differ)",
                        stored.len
                    ),
                }
            }
        }
    })
}

/// Appends the rows after `base.seq` at offset `base.len`, cutting anything beyond it first.
fn append(target: Target, base: Checkpoint) -> Result<FileReport, ExportError> {
    let Target {
        store,
        path,
        file,
        stored,
        created_dirs,
        hook,
        adopter,
        pass_bytes,
    } = target;
    let existed = fs::symlink_metadata(path).is_ok();
    let handle = fsutil::open_rw(path, fsutil::SHARED_FILE_MODE)
        .map_err(|e| ExportError::opening(path, e))?;
    let len_now = handle
        .metadata()
        .map_err(ExportError::io("stat", path))?
        .len();
    let mut base = base;
    let mut len_now = len_now;
    let mut lines_taken_in = 0;
    // Whether every byte after the checkpoint is now stored (taken in from another writer).
    let mut all_taken = false;
    let stat = || -> Result<u64, ExportError> {
        Ok(handle
            .metadata()
            .map_err(ExportError::io("stat", path))?
            .len())
    };
    let found = match adopter {
        Some(_) if len_now > base.len => {
            let tail = base.len..len_now;
            Some(compare_with_rows(
                store, &handle, path, file, tail, base.seq,
            )?)
        }
        _ => None,
    };
    if let (Some(adopter), Some(Match::Prefix { len, .. })) = (adopter, &found)
        && *len < len_now
        && adopt::may_be_written(adopter, &handle, path)?
    {
        // An unfinished line that matches the start of the next row may be the export's own
        // torn tail, or another writer's line still being written (rows mostly begin alike):
        // cut now, the rest of the other writer's line would follow as a fragment.
        return Ok(waiting(path, stored, 0, adopt::BEING_WRITTEN.into()));
    }
    if let (Some(adopter), Some(found)) = (adopter, &found)
        && found.differs()
    {
        // Rows of the database's own past the checkpoint (an export that wrote them and died
        // before its checkpoint) are the export's: what another writer appended follows them.
        if let Match::Differs { seq, len } = *found
            && len > base.len
        {
            let tail = tail_fingerprint(&handle, len).map_err(ExportError::io("read", path))?;
            base = Checkpoint { seq, len, tail };
        }
        match adopt::take(adopter, &handle, path, base.len, len_now)? {
            Taken::Waiting(why) => return Ok(waiting(path, stored, 0, why)),
            Taken::Refused { why, lines } => {
                lines_taken_in = lines;
                tracing::warn!(
                    path = %path.display(),
                    checkpoint_len = base.len,
                    why = %why,
                    lines_taken_in = lines,
                    "bytes another writer appended are not legacy outcome rows"
                );
            }
            Taken::Stored { end, lines } => {
                lines_taken_in = lines;
                let found = compare_with_rows(store, &handle, path, file, base.len..end, base.seq)?;
                let in_place = matches!(found, Match::Prefix { len, .. } if len == end);
                if let Match::Prefix { seq, len } = found
                    && len == end
                {
                    // Where the export would have written them: the file keeps them.
                    let tail =
                        tail_fingerprint(&handle, len).map_err(ExportError::io("read", path))?;
                    base = Checkpoint { seq, len, tail };
                }
                tracing::info!(
                    path = %path.display(),
                    lines,
                    kept_in_place = in_place,
                    "took in rows another writer appended"
                );
                // The other writer may have gone on while they were stored: what lies past
                // `end` is its, not to be cut or written over. It is taken in by a later run.
                len_now = stat()?;
                if len_now != end {
                    return if in_place {
                        finish_taken_in(&handle, path, file, stored, base, lines, hook, store)
                    } else {
                        let why = "more is being appended".to_owned();
                        Ok(waiting(path, stored, lines, why))
                    };
                }
                // Else rows of the database's own came before them: the tail is written again
                // in seq order below.
                all_taken = !in_place;
            }
        }
    }
    // Where another writer may be appending (the service's export, which takes its rows in),
    // the rows are read first, and the file is then checked, cut if need be and appended to in
    // as few system calls as can be, so that an append landing meanwhile is hardly ever cut (it
    // cannot be ruled out without that writer's cooperation: RELIABILITY.md), and one landing
    // before the rows' write comes before them.
    let prepared = match adopter {
        Some(_) => Some(rows_bytes(store, file, base.seq, pass_bytes)?),
        None => None,
    };
    let bytes_truncated = len_now.saturating_sub(base.len);
    let mut kept_as = None;
    if bytes_truncated > 0 {
        // The tail of an interrupted export holds the start of the very rows about to be
        // written again, as does a tail taken in; anything else was appended by someone else
        // and is kept aside (a copy: a hard link would be cut too) before the cut.
        if all_taken {
            tracing::info!(
                path = %path.display(),
                checkpoint_len = base.len,
                bytes_truncated,
                "rows another writer appended follow rows of this database's own: writing the \
                 tail again in seq order"
            );
        } else if matches!(
            // Looked at already when another writer's rows may be taken in, and nothing
            // moved since (the tail was not taken in).
            match found {
                Some(found) => found,
                None => compare_with_rows(store, &handle, path, file, base.len..len_now, base.seq)?,
            },
            Match::Prefix { .. }
        ) {
            tracing::warn!(
                path = %path.display(),
                checkpoint_len = base.len,
                bytes_truncated,
                "export file is longer than its checkpoint (a torn tail from an interrupted \
                 export): cutting it back and writing those rows again"
            );
        } else {
            // A copy: a hard link would be cut too.
            let aside = copy_aside(path, &handle)?;
            tracing::warn!(
                path = %path.display(),
                checkpoint_len = base.len,
                bytes_truncated,
                kept_as = %aside.display(),
                "export file is longer than its checkpoint, and the bytes beyond it are not \
                 rows of this database (someone else appended): the file was kept aside, \
                 cutting it back"
            );
            kept_as = Some(aside);
        }
        if adopter.is_some() && stat()? != len_now {
            // Appended to since it was looked at: cut, those lines would be lost. They are
            // taken in by a later run.
            return Ok(waiting(path, stored, lines_taken_in, appended_meanwhile()));
        }
        handle
            .set_len(base.len)
            .map_err(ExportError::io("truncate", path))?;
    }
    let written = match prepared {
        Some((bytes, written)) => {
            if stat()? != base.len {
                if base != stored {
                    // Rows taken in where they were: the checkpoint moves past them.
                    let lines = lines_taken_in;
                    return finish_taken_in(&handle, path, file, stored, base, lines, hook, store);
                }
                return Ok(waiting(path, stored, lines_taken_in, appended_meanwhile()));
            }
            let appending = fsutil::reopen_appending(path, &handle)
                .map_err(|e| ExportError::opening(path, e))?;
            hook.before_write(file, path);
            // Appended, not written at `base.len`: another writer's append landing after the
            // look above comes before the rows instead of under them.
            let began = fsutil::append_all(&appending, &bytes)
                .map_err(ExportError::io("write", path))
                .map_err(|e| cut_failed_write(&handle, base.len, Some(&bytes), e))?;
            if began != base.len {
                // Its lines are taken in by the next run, which writes these rows before them
                // (in seq order). Left where they landed, the next run would take them for
                // another writer's too and store them twice: they are cut off again, unless
                // yet another append followed them (RELIABILITY.md).
                let end = began + bytes.len() as u64;
                let alone = stat()? == end;
                if alone {
                    handle
                        .set_len(began)
                        .map_err(ExportError::io("truncate", path))?;
                }
                tracing::info!(
                    path = %path.display(),
                    appended = began - base.len,
                    rows_taken_back = alone,
                    "another writer appended just before the rows were written: they are \
                     written after its lines by the next run"
                );
                return Ok(waiting(path, stored, lines_taken_in, appended_meanwhile()));
            }
            written
        }
        None => {
            (&handle)
                .seek(SeekFrom::Start(base.len))
                .map_err(ExportError::io("seek", path))?;
            let mut writer = BufWriter::with_capacity(WRITE_BUFFER, &handle);
            let written =
                write_rows(store, path, file, base.seq, &mut writer, hook).and_then(|written| {
                    writer.flush().map_err(ExportError::io("write", path))?;
                    Ok(written)
                });
            // What is left in the buffer is dropped, not written after the cut.
            let _ = writer.into_parts();
            written.map_err(|e| cut_failed_write(&handle, base.len, None, e))?
        }
    };

    let checkpoint = if written.rows == 0 {
        base
    } else {
        let len = base.len + written.bytes;
        Checkpoint {
            seq: written.last_seq,
            len,
            tail: tail_fingerprint(&handle, len).map_err(ExportError::io("read", path))?,
        }
    };
    let changed_bytes = written.rows > 0 || bytes_truncated > 0 || !existed;
    // A checkpoint may only describe fsync'd bytes, including bytes adopted from a file this
    // process did not write.
    if changed_bytes || checkpoint != stored {
        handle.sync_all().map_err(ExportError::io("fsync", path))?;
        if !existed {
            sync_dir_of(path)?;
        }
    }
    sync_dirs(created_dirs)?;
    let action = if changed_bytes {
        Action::Appended
    } else {
        Action::Unchanged
    };
    commit_checkpoint(store, file, stored, checkpoint, hook)?;
    Ok(FileReport {
        path: path.display().to_string(),
        action,
        reason: (bytes_truncated > 0).then(|| {
            let cut = format!(
                "cut {bytes_truncated} bytes beyond the checkpoint ({} bytes)",
                base.len
            );
            match &kept_as {
                None => cut,
                Some(aside) => format!(
                    "{cut}: they were not rows of this database, the old file was kept as {}",
                    aside.display()
                ),
            }
        }),
        rows_written: written.rows,
        bytes_written: written.bytes,
        bytes_truncated,
        lines_taken_in,
        checkpoint: checkpoint.into(),
        error: None,
        more: written.more,
    })
}

/// Cuts what a failed write (a full disk, say) left after `from`, the start of a row: left
/// there, the next run took it for another writer's line still being written and waited up to
/// 10 s, while legacy readers saw a torn last line (a review's). When `wrote` gives the bytes
/// being written, what follows `from` is cut only when it is the start of them: anything else
/// (a line another writer appended just before them, or after them) is not the export's.
/// Gives back `error`.
fn cut_failed_write(
    handle: &File,
    from: u64,
    wrote: Option<&[u8]>,
    error: ExportError,
) -> ExportError {
    use std::os::unix::fs::FileExt;
    if let Ok(meta) = handle.metadata() {
        let len = meta.len();
        let ours = len > from
            && match wrote {
                None => true,
                Some(wrote) => usize::try_from(len - from)
                    .ok()
                    .and_then(|n| wrote.get(..n))
                    .is_some_and(|start| {
                        let mut there = vec![0; start.len()];
                        handle.read_exact_at(&mut there, from).is_ok() && there == start
                    }),
            };
        if ours {
            let _ = handle.set_len(from);
        }
    }
    error
}

/// Records `base` as the checkpoint of a file whose rows another writer appended were taken in
/// and kept in place (the bytes fsync'd first), writing nothing while more is being appended.
#[allow(clippy::too_many_arguments)]
fn finish_taken_in(
    handle: &File,
    path: &Path,
    file: ExportFile,
    stored: Checkpoint,
    base: Checkpoint,
    lines: u64,
    hook: &Hook,
    store: &Store,
) -> Result<FileReport, ExportError> {
    handle.sync_all().map_err(ExportError::io("fsync", path))?;
    commit_checkpoint(store, file, stored, base, hook)?;
    Ok(FileReport {
        path: path.display().to_string(),
        action: Action::Unchanged,
        reason: Some("took in rows another writer appended; more is being appended".into()),
        rows_written: 0,
        bytes_written: 0,
        bytes_truncated: 0,
        lines_taken_in: lines,
        checkpoint: base.into(),
        error: None,
        more: false,
    })
}

fn appended_meanwhile() -> String {
    "another writer appended while the file was brought up to date".to_owned()
}

/// Most bytes of rows an export that may meet another writer reads before writing them in
/// one pass (the rest, in the passes after it).
pub(super) const MAX_PREPARED_BYTES: usize = 64 << 20;

/// The lines of the rows after `after_seq`, each with its `\n`, up to about `max` bytes (at
/// least one row), as [`write_rows`] writes them.
fn rows_bytes(
    store: &Store,
    file: ExportFile,
    after_seq: u64,
    max: usize,
) -> Result<(Vec<u8>, Written), ExportError> {
    let mut bytes = Vec::new();
    let mut written = Written::default();
    let walk = file.for_each_line(store, after_seq, |seq, line| {
        if !bytes.is_empty() && bytes.len() + line.len() >= max {
            return Err(Halt::Early);
        }
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        written.rows += 1;
        written.bytes += line.len() as u64 + 1;
        written.last_seq = seq;
        Ok(())
    });
    match walk {
        Ok(()) => Ok((bytes, written)),
        Err(Halt::Early) => Ok((
            bytes,
            Written {
                more: true,
                ..written
            },
        )),
        Err(Halt::Failed(e)) => Err(e.into()),
    }
}

/// How a walk over the rows that may stop before their end stopped: by its own choice, or on
/// the store's error.
enum Halt {
    Early,
    Failed(StoreError),
}

impl From<StoreError> for Halt {
    fn from(e: StoreError) -> Halt {
        Halt::Failed(e)
    }
}

/// The report of a run that left the file as it was: rows another writer appended wait for a
/// later run (`lines` of them were stored by this one).
fn waiting(path: &Path, stored: Checkpoint, lines: u64, why: String) -> FileReport {
    // Nothing of the file changed: its checkpoint is as stored.
    FileReport {
        path: path.display().to_string(),
        action: Action::Unchanged,
        reason: Some(format!("rows another writer appended wait: {why}")),
        rows_written: 0,
        bytes_written: 0,
        bytes_truncated: 0,
        lines_taken_in: lines,
        checkpoint: stored.into(),
        error: None,
        more: false,
    }
}

/// A file this store never exported into. If it holds exactly the first rows the export would
/// write (a legacy directory imported in place, or the first export, interrupted), it is kept
/// and only the rest appended (a torn last line cut first); else it is rebuilt, and kept aside.
fn adopt(target: Target, file_len: u64) -> Result<FileReport, ExportError> {
    let Target {
        store, path, file, ..
    } = target;
    let handle = open_read(path)?;
    match compare_with_rows(store, &handle, path, file, 0..file_len, 0)? {
        Match::Prefix { seq, len } => {
            tracing::info!(
                path = %path.display(),
                through_seq = seq,
                bytes = len,
                "export file already holds the first rows of this database (imported in place): \
                 keeping it and appending"
            );
            let base = Checkpoint {
                seq,
                len,
                tail: tail_fingerprint(&handle, len).map_err(ExportError::io("read", path))?,
            };
            append(target, base)
        }
        // The database's first rows (or none), then lines another writer appended (a legacy
        // auditor after an import in place, or from the start, before the service's first
        // export; the database may have stored rows of its own meanwhile): kept, and what
        // follows the rows taken in, unless it holds rows the database holds after them (an
        // edit, lines sorted).
        Match::Differs { seq, len }
            if target.adopter.is_some()
                && only_other_lines_follow(store, file, &handle, path, seq, len..file_len)? =>
        {
            tracing::info!(
                path = %path.display(),
                through_seq = seq,
                bytes = len,
                "export file holds this database's first rows, then lines another writer \
                 appended: keeping it and taking them in"
            );
            let base = Checkpoint {
                seq,
                len,
                tail: tail_fingerprint(&handle, len).map_err(ExportError::io("read", path))?,
            };
            append(target, base)
        }
        Match::Differs { .. } => {
            let aside = link_aside(path)?;
            let reason = format!(
                "the file existed but was not written by this database's export (no \
                 checkpoint, and its bytes are not the rows this database holds); the old file \
                 was kept as {}",
                aside.display()
            );
            rebuild_after_aside(target, reason, Some(aside))
        }
    }
}

/// Rebuilds the file after keeping the old one aside as `aside`. When the rebuild fails with the
/// old file still in place, the copy kept aside is removed (it is a link to that same file), so
/// that the next run keeps it aside and rebuilds again: left there, it read as a legacy writer
/// still appending, and the export paused until an operator removed it (a review's, after a
/// rebuild met a full disk).
fn rebuild_after_aside(
    target: Target,
    reason: String,
    aside: Option<PathBuf>,
) -> Result<FileReport, ExportError> {
    let path = target.path;
    let rebuilt = rebuild(target, reason);
    if let (Err(_), Some(aside)) = (&rebuilt, aside) {
        let same = |p: &Path| fs::symlink_metadata(p).map(|m| fsutil::dev_ino(&m));
        if matches!((same(path), same(&aside)), (Ok(a), Ok(b)) if a == b) {
            let _ = fs::remove_file(&aside);
        }
    }
    rebuilt
}

/// Rows after `seq` looked for among the lines of a file that holds the database's rows through
/// `seq`, then other lines ([`only_other_lines_follow`]; a hash of 8 bytes each, about 32 MiB
/// at most), and bytes of those lines read; with more, the file is not taken in. A file that
/// is appended to without pause while clients store rows keeps no checkpoint until the
/// appends pause, and its rows grow past any small bound meanwhile.
const MAX_ROWS_LOOKED_FOR: usize = 1_000_000;
const MAX_FOLLOWING_BYTES: u64 = 64 << 20;

/// Whether the lines in `range` of `handle` (the file at `path`) hold none of the database's
/// rows after `seq` (but lines taken in from where they are, by an export that died before
/// its checkpoint), so that they are lines another writer appended, not this database's rows
/// moved (an edit, lines sorted): taking those in would store them twice. True when no row
/// follows `seq`; false (not taken in) when more than [`MAX_ROWS_LOOKED_FOR`] rows follow it,
/// or some do and the range is longer than [`MAX_FOLLOWING_BYTES`].
fn only_other_lines_follow(
    store: &Store,
    file: ExportFile,
    handle: &File,
    path: &Path,
    seq: u64,
    range: Range<u64>,
) -> Result<bool, ExportError> {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, RandomState};
    let hasher = RandomState::new();
    let mut rows = HashSet::new();
    let walk = file.for_each_line(store, seq, |_, line| {
        if rows.len() == MAX_ROWS_LOOKED_FOR {
            return Err(Halt::Early);
        }
        rows.insert(hasher.hash_one(line.as_bytes()));
        Ok(())
    });
    match walk {
        Ok(()) => {}
        Err(Halt::Early) => return Ok(false),
        Err(Halt::Failed(e)) => return Err(e.into()),
    }
    // No row follows: whatever the file holds after is another writer's.
    if rows.is_empty() {
        return Ok(true);
    }
    if range.end - range.start > MAX_FOLLOWING_BYTES {
        return Ok(false);
    }
    let mut bytes = vec![0; usize::try_from(range.end - range.start).unwrap_or(usize::MAX)];
    {
        use std::os::unix::fs::FileExt;
        handle
            .read_exact_at(&mut bytes, range.start)
            .map_err(ExportError::io("read", path))?;
    }
    let mut offset = range.start;
    for line in bytes.split(|&b| b == b'\n') {
        // A row after a crash's NUL bytes is that row (the import stored it, leaving them out):
        // taken for another writer's, it was stored a second time (a review's).
        let (zeros, row) = crate::import::lines::after_zero_fill(line);
        if rows.contains(&hasher.hash_one(row))
            && !crate::import::appended::was_taken_in(store, row, offset + zeros as u64)?
        {
            return Ok(false);
        }
        offset += line.len() as u64 + 1;
    }
    Ok(true)
}

/// How many bytes at the start of `path` (of its first `len`) are whole lines that the export
/// of `file` writes first, byte for byte: rows the database holds already. The import skips
/// them, so that a legacy directory the service has exported into (rows it received, rows it
/// took in from another writer) is not stored a second time (`import/pass2.rs`); or, when
/// longer, the bytes the export's checkpoint of `file` describes, if the file holds them (its
/// tail fingerprint). Reads no further than the first difference.
pub fn rows_held(
    store: &Store,
    path: &Path,
    file: ExportFile,
    len: u64,
) -> Result<RowsHeld, ExportError> {
    if len == 0 {
        return Ok(RowsHeld::default());
    }
    let handle = open_read(path)?;
    let rows = match compare_with_rows(store, &handle, path, file, 0..len, 0)? {
        Match::Prefix { len, .. } | Match::Differs { len, .. } => len,
    };
    // The bytes the export's checkpoint describes, when the file holds them: what the export
    // wrote (or took in), rows the database has held, though retention may have deleted some
    // since. Compared with the rows alone, the first deleted event ended the bytes held, and
    // every event received over HTTP after it was imported a second time (a review's).
    let written = store.checkpoint(file.name())?;
    let by_checkpoint = written.len > 0
        && written.len <= len
        && tail_fingerprint(&handle, written.len).map_err(ExportError::io("read", path))?
            == written.tail;
    if !by_checkpoint {
        return Ok(RowsHeld {
            len: rows,
            checkpoint: None,
        });
    }
    // And the rows after the checkpoint's that follow it (an export that wrote them and died
    // before its checkpoint did: a review's, with 100,000 events written so and stored again).
    let len = if rows >= written.len {
        rows
    } else {
        match compare_with_rows(store, &handle, path, file, written.len..len, written.seq)? {
            Match::Prefix { len, .. } | Match::Differs { len, .. } => len,
        }
    };
    Ok(RowsHeld {
        len,
        checkpoint: Some(written.len),
    })
}

/// What [`rows_held`] found of a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowsHeld {
    /// Bytes at its start that are rows the database holds.
    pub len: u64,
    /// When it is the file the export writes (it holds the bytes the export's checkpoint
    /// describes), where that checkpoint is: lines after it are the ones the export takes in
    /// (`adopt.rs`), and an import stores them under the take-in's keys, so that neither
    /// stores what the other did.
    pub checkpoint: Option<u64>,
}

/// How a file's bytes compare with the lines the export writes.
enum Match {
    /// They are a prefix of those lines: whole lines through `seq` end at offset `len`, and
    /// whatever follows (up to the end compared) is the start of the next line, a torn line.
    Prefix { seq: u64, len: u64 },
    /// They are not: someone else wrote some of them. Whole rows through `seq` end at offset
    /// `len` (the start of the range, and the seq before its rows, when none does), and the
    /// bytes after differ from the next row, or the rows ended before them.
    Differs { seq: u64, len: u64 },
}

impl Match {
    /// Whether someone else wrote some of the bytes compared.
    fn differs(&self) -> bool {
        !matches!(self, Match::Prefix { .. })
    }
}

/// Compares the `bytes` of `handle` (a range of offsets) with the lines of the records after
/// `after_seq`, each with its `\n`, as [`write_rows`] writes them; reads no further than the
/// first difference.
fn compare_with_rows(
    store: &Store,
    handle: &File,
    path: &Path,
    file: ExportFile,
    bytes: Range<u64>,
    after_seq: u64,
) -> Result<Match, ExportError> {
    let Range { start: offset, end } = bytes;
    enum Stop {
        /// Every byte up to `end` was compared; no more rows are needed.
        Covered,
        Differs,
        Failed(ExportError),
    }
    impl From<StoreError> for Stop {
        fn from(e: StoreError) -> Stop {
            Stop::Failed(e.into())
        }
    }
    let mut reader = BufReader::with_capacity(WRITE_BUFFER, handle);
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(ExportError::io("seek", path))?;
    let mut at = offset;
    let mut whole = (after_seq, offset);
    let mut buf = Vec::new();
    let walk = file.for_each_line(store, after_seq, |seq, line| {
        if at == end {
            return Err(Stop::Covered);
        }
        // NUL bytes before the row: the zero-filled tail a crash left in a legacy file, which
        // its writer then appended after. The import keeps the row after them, so the file
        // holds this row here. Taken for someone else's line, the row was stored a second
        // time, or the file rebuilt and the rows appended after it lost to the copy kept
        // aside (reviews').
        let mut zeros = 0;
        loop {
            let ahead = reader
                .fill_buf()
                .map_err(|e| Stop::Failed(ExportError::io("read", path)(e)))?;
            let n = ahead.iter().take_while(|&&b| b == 0).count();
            let n = n.min(usize::try_from(end - at - zeros).unwrap_or(usize::MAX));
            if n == 0 {
                break;
            }
            reader.consume(n);
            zeros += n as u64;
        }
        if zeros > 0 && at + zeros == end {
            return Err(Stop::Differs); // NULs alone are no row
        }
        let need = (line.len() as u64 + 1).min(end - at - zeros) as usize;
        buf.resize(need, 0);
        reader
            .read_exact(&mut buf)
            .map_err(|e| Stop::Failed(ExportError::io("read", path)(e)))?;
        let expected = line.as_bytes().iter().chain(b"\n");
        if !buf.iter().eq(expected.take(need)) {
            return Err(Stop::Differs);
        }
        at += zeros + need as u64;
        if need == line.len() + 1 {
            whole = (seq, at);
        }
        Ok(())
    });
    match walk {
        Ok(()) | Err(Stop::Covered) if at == end => Ok(Match::Prefix {
            seq: whole.0,
            len: whole.1,
        }),
        // The bytes differ from a row, or the rows ended, whole, before the bytes did.
        Ok(()) | Err(Stop::Covered | Stop::Differs) => Ok(Match::Differs {
            seq: whole.0,
            len: whole.1,
        }),
        Err(Stop::Failed(e)) => Err(e),
    }
}

/// Writes `tmp` (just created, as `handle`) through `write`, syncs it and renames it over
/// `path`. A failure removes it: a partial copy would hold disk space (on a full disk, the last
/// of it) for as long as the export fails (a review's, at 3ab4e2b).
fn into_place<T>(
    handle: &File,
    tmp: &Path,
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    let done = (|| {
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, handle);
        let written = write(&mut writer)?;
        writer.flush().map_err(ExportError::io("write", tmp))?;
        drop(writer);
        handle.sync_all().map_err(ExportError::io("fsync", tmp))?;
        fs::rename(tmp, path).map_err(ExportError::io("rename over", path))?;
        Ok(written)
    })();
    if done.is_err() {
        let _ = fs::remove_file(tmp);
    }
    done
}

/// Writes every row into `NAME.tmp` beside the file, fsyncs it, renames it over the file and
/// fsyncs the directory, then records the checkpoint.
fn rebuild(target: Target, reason: String) -> Result<FileReport, ExportError> {
    let Target {
        store,
        path,
        file,
        stored,
        created_dirs,
        hook,
        ..
    } = target;
    tracing::warn!(path = %path.display(), reason = %reason, "rebuilding export file in full");
    let tmp = tmp_path(path);
    // A regular file there is an interrupted rebuild's: removed. A link is refused, not
    // followed (a rebuild would write its target) and not removed (it is not ours).
    match fs::symlink_metadata(&tmp) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(ExportError::Link { path: tmp });
        }
        Ok(meta) if meta.is_file() => {
            fs::remove_file(&tmp).map_err(ExportError::io("remove the leftover", &tmp))?;
        }
        _ => {}
    }
    // The file replaced keeps its permissions: the legacy readers it was made for (another
    // user's report scripts) can read the rebuilt one as they read it, whatever this process's
    // umask (the shipped unit's is 0077). Its owner may write it, as the export goes on to
    // (a file made read-only would fail every append after this). Its group is the process's.
    let replaced_mode = fs::symlink_metadata(path)
        .ok()
        .filter(|meta| meta.is_file())
        .map(|meta| meta.permissions().mode() & 0o777 | 0o200);
    let handle = fsutil::create_new(&tmp, fsutil::SHARED_FILE_MODE)
        .map_err(|e| ExportError::opening(&tmp, e))?;
    if let Some(mode) = replaced_mode {
        handle
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(ExportError::io("set the permissions of", &tmp))?;
    }
    let written = into_place(&handle, &tmp, path, |writer| {
        write_rows(store, &tmp, file, 0, writer, hook)
    })?;
    sync_dir_of(path)?;
    sync_dirs(created_dirs)?;
    let checkpoint = Checkpoint {
        seq: written.last_seq,
        len: written.bytes,
        tail: tail_fingerprint(&handle, written.bytes).map_err(ExportError::io("read", path))?,
    };
    commit_checkpoint(store, file, stored, checkpoint, hook)?;
    Ok(FileReport {
        path: path.display().to_string(),
        action: Action::Rebuilt,
        reason: Some(reason),
        rows_written: written.rows,
        bytes_written: written.bytes,
        bytes_truncated: 0,
        lines_taken_in: 0,
        checkpoint: checkpoint.into(),
        error: None,
        more: false,
    })
}

/// Records `checkpoint` when it differs from the stored one. Callers have fsync'd the bytes it
/// describes: this ordering is what makes a crash at any point recoverable.
fn commit_checkpoint(
    store: &Store,
    file: ExportFile,
    stored: Checkpoint,
    checkpoint: Checkpoint,
    hook: &Hook,
) -> Result<(), ExportError> {
    if checkpoint == stored {
        return Ok(());
    }
    hook.before_checkpoint(file);
    store.set_checkpoint(file.name(), checkpoint)?;
    Ok(())
}

#[derive(Debug, Default)]
struct Written {
    rows: u64,
    bytes: u64,
    /// Seq of the last row written (0 when none).
    last_seq: u64,
    /// Rows after `last_seq` were left for another pass.
    more: bool,
}

fn write_rows(
    store: &Store,
    path: &Path,
    file: ExportFile,
    after_seq: u64,
    writer: &mut impl Write,
    hook: &Hook,
) -> Result<Written, ExportError> {
    let mut written = Written::default();
    file.for_each_line(store, after_seq, |seq, line| -> Result<(), ExportError> {
        // Stored lines never hold a line break: model/ refuses them in outcome rows, ops lines
        // are JSON.stringify output, imported lines were split on '\n'.
        debug_assert!(!line.contains('\n'), "seq {seq} holds a line break");
        hook.maybe_pause(file, written.rows, line, writer);
        writer
            .write_all(line.as_bytes())
            .and_then(|()| writer.write_all(b"\n"))
            .map_err(ExportError::io("write", path))?;
        written.rows += 1;
        written.bytes += line.len() as u64 + 1;
        written.last_seq = seq;
        Ok(())
    })?;
    Ok(written)
}

/// `reason` for rebuilding the file at `path`, naming where the old file was kept when it holds
/// more than a cut copy of the rows (an edit, someone else's bytes), and where that is; a
/// missing file or a cut copy of the rows is not kept.
fn keep_aside_unless_rows(
    store: &Store,
    path: &Path,
    file: ExportFile,
    reason: String,
) -> Result<(String, Option<PathBuf>), ExportError> {
    let old = match fsutil::open_read(path) {
        Ok(handle) => handle,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((reason, None)),
        Err(e) => return Err(ExportError::opening(path, e)),
    };
    let end = old.metadata().map_err(ExportError::io("stat", path))?.len();
    Ok(
        match compare_with_rows(store, &old, path, file, 0..end, 0)? {
            Match::Prefix { .. } => (reason, None),
            Match::Differs { .. } => {
                let aside = link_aside(path)?;
                let reason = format!("{reason}; the old file was kept as {}", aside.display());
                (reason, Some(aside))
            }
        },
    )
}

/// Keeps the file at `path` under another name, `NAME.replaced-{unix ms}`, as a hard link
/// where it can: the old bytes stay there while a rebuild's rename still replaces the file
/// atomically, so readers never find it missing. Returns the name. Paused instead when a
/// copy kept aside earlier is still there.
fn link_aside(path: &Path) -> Result<PathBuf, ExportError> {
    let aside = new_aside_path(path)?;
    // link(2) never follows a link at `path` (and `path` was opened without following one) and
    // fails when `aside` exists: it creates exclusively.
    match fs::hard_link(path, &aside) {
        Ok(()) => Ok(aside),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(ExportError::io("keep a copy of", path)(e))
        }
        Err(_) => copy_aside(path, &open_read(path)?),
    }
}

/// Copies the bytes of `handle` (the file at `path`) into a new `NAME.replaced-{unix ms}`,
/// created exclusively; paused instead when a copy kept aside earlier is still there.
fn copy_aside(path: &Path, handle: &File) -> Result<PathBuf, ExportError> {
    let aside = new_aside_path(path)?;
    let mut copy = fsutil::create_new(&aside, fsutil::SHARED_FILE_MODE)
        .map_err(|e| ExportError::opening(&aside, e))?;
    let mut reader = handle;
    reader
        .seek(SeekFrom::Start(0))
        .and_then(|_| io::copy(&mut reader, &mut copy))
        .and_then(|_| copy.sync_all())
        .map_err(ExportError::io("keep a copy of", path))?;
    Ok(aside)
}

/// The name for a new kept-aside copy of `path`, unless one is there already: then the bytes
/// found now are a foreign writer's again, and the file's export pauses.
fn new_aside_path(path: &Path) -> Result<PathBuf, ExportError> {
    if let Some(aside) = kept_aside(path)? {
        return Err(ExportError::Paused {
            path: path.to_owned(),
            aside,
        });
    }
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".replaced-{}", crate::model::now_ms()));
    Ok(path.with_file_name(name))
}

/// A copy of `path` kept aside earlier (`NAME.replaced-*` beside it), if there is one.
pub(super) fn kept_aside(path: &Path) -> Result<Option<PathBuf>, ExportError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(None);
    };
    let mut prefix = name.to_owned();
    prefix.push(".replaced-");
    let prefix = prefix.as_encoded_bytes();
    let entries = fs::read_dir(dir).map_err(ExportError::io("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(ExportError::io("list", dir))?;
        if entry.file_name().as_encoded_bytes().starts_with(prefix) {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

fn open_read(path: &Path) -> Result<File, ExportError> {
    fsutil::open_read(path).map_err(|e| ExportError::opening(path, e))
}

/// Makes sure the directories between `out_dir` and `path` (`_kb`, `_observer`) are real
/// directories, creating the missing ones; returns those created, outermost first, so that each
/// one's parent can be fsync'd once the file inside exists. `out_dir` itself is the operator's
/// choice and is created if missing, as given.
fn prepare_dirs(out_dir: &Path, path: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let mut created = Vec::new();
    if !out_dir.as_os_str().is_empty() && !out_dir.exists() {
        let mut missing = Vec::new();
        let mut dir = Some(out_dir);
        while let Some(d) = dir {
            if d.as_os_str().is_empty() || d.exists() {
                break;
            }
            missing.push(d.to_owned());
            dir = d.parent();
        }
        missing.reverse();
        fs::create_dir_all(out_dir).map_err(ExportError::io("create directory", out_dir))?;
        created = missing;
    }
    let relative = path.strip_prefix(out_dir).unwrap_or(path);
    let mut dir = out_dir.to_owned();
    for part in relative.parent().into_iter().flat_map(Path::components) {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(ExportError::Link { path: dir });
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(ExportError::NotAFile { path: dir }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fsutil::create_dir(&dir, fsutil::SHARED_DIR_MODE)
                    .map_err(ExportError::io("create directory", &dir))?;
                created.push(dir.clone());
            }
            Err(e) => return Err(ExportError::io("stat", &dir)(e)),
        }
    }
    Ok(created)
}

/// fsyncs the parent of each directory created, so the new entries survive a crash.
fn sync_dirs(created: &[PathBuf]) -> Result<(), ExportError> {
    for dir in created {
        sync_dir_of(dir)?;
    }
    Ok(())
}

/// fsyncs the directory holding `path`, making a create or rename of `path` durable.
fn sync_dir_of(path: &Path) -> Result<(), ExportError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fsutil::sync_dir(dir).map_err(ExportError::io("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An append that failed part-way (a full disk) is cut back to where it began, so that no
    /// torn row stays at the end for legacy readers; bytes past what it was writing are
    /// another writer's and stay.
    #[test]
    fn a_failed_append_is_cut_back_to_where_it_began() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outcomes.jsonl");
        let error = || ExportError::io("write", &path)(io::Error::from(io::ErrorKind::StorageFull));
        fs::write(&path, b"row 1\nrow 2\nro").unwrap();
        let handle = fsutil::open_rw(&path, fsutil::SHARED_FILE_MODE).unwrap();
        cut_failed_write(&handle, 12, Some(b"row 3\n"), error());
        assert_eq!(fs::read(&path).unwrap(), b"row 1\nrow 2\n");
        fs::write(&path, b"row 1\nrow 2\nro").unwrap();
        cut_failed_write(&handle, 12, None, error());
        assert_eq!(fs::read(&path).unwrap(), b"row 1\nrow 2\n");
        // Longer than what was being written: another writer appended after it.
        fs::write(&path, b"row 1\nrow 2\nrow 3\nrow 4\n").unwrap();
        cut_failed_write(&handle, 12, Some(b"row 3\n"), error());
        assert_eq!(fs::read(&path).unwrap(), b"row 1\nrow 2\nrow 3\nrow 4\n");
        // Another writer's line, appended just before the rows, then a part of them: not cut.
        fs::write(&path, b"row 1\nrow 2\nx\nro").unwrap();
        cut_failed_write(&handle, 12, Some(b"row 3\nrow 4\n"), error());
        assert_eq!(fs::read(&path).unwrap(), b"row 1\nrow 2\nx\nro");
    }

    /// A rebuild's temporary file is gone after a failure, whether writing the rows failed
    /// (a full disk) or the rename did; after success the file is in place.
    #[test]
    fn a_failed_rebuild_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, path) = (dir.path().join("f.tmp"), dir.path().join("f"));
        let create = || fsutil::create_new(&tmp, fsutil::SHARED_FILE_MODE).unwrap();
        let failed = into_place(&create(), &tmp, &path, |w| -> Result<(), ExportError> {
            w.write_all(b"half a row").unwrap();
            Err(ExportError::io("write", &tmp)(io::Error::from(
                io::ErrorKind::StorageFull,
            )))
        });
        assert!(failed.is_err());
        assert!(!tmp.exists() && !path.exists());
        fs::create_dir(&path).unwrap();
        fs::write(path.join("in the way"), b"").unwrap();
        let failed = into_place(&create(), &tmp, &path, |w| {
            w.write_all(b"row\n")
                .map_err(ExportError::io("write", &tmp))
        });
        assert!(failed.is_err());
        assert!(!tmp.exists());
        fs::remove_dir_all(&path).unwrap();
        into_place(&create(), &tmp, &path, |w| {
            w.write_all(b"row\n")
                .map_err(ExportError::io("write", &tmp))
        })
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"row\n");
        assert!(!tmp.exists());
    }

    #[test]
    fn fingerprint_covers_the_last_bytes_before_len_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &body).unwrap();
        let at = |len| tail_fingerprint(&File::open(&path).unwrap(), len).unwrap();
        let before = at(8_000);
        assert_eq!(at(0), 0);
        assert_ne!(at(8_000), at(7_999));
        // A change after len, or more than TAIL_BYTES before it, is not seen...
        body[9_000] ^= 1;
        body[100] ^= 1;
        fs::write(&path, &body).unwrap();
        assert_eq!(at(8_000), before);
        // ...one inside the window is.
        body[7_000] ^= 1;
        fs::write(&path, &body).unwrap();
        assert_ne!(at(8_000), before);
    }
}
