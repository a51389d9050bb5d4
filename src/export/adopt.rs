//! Lines another writer appended to `outcomes.jsonl` after the export's checkpoint, taken into
//! the database instead of cut. A legacy auditor appends its KB row itself
//! (`appendVerdictToKbOutcomes`) and a legacy scenario runner its rows; left unchanged against
//! the service, their rows were kept aside and cut, and the second time the export paused.
//! Now, when the service runs the export (it gives the job an [`Adopter`], which submits to
//! its writer), such lines are stored as the import stores them (`import/appended.rs`), each
//! with an import key of its bytes and offset, so that taking them again after a crash stores
//! nothing twice. Where the database wrote no row of its own since the checkpoint, the file
//! already holds the rows where the export would write them, and is kept as it is; else the
//! tail is written again in seq order (the appended rows after the database's), once every
//! appended byte is taken in and none arrived meanwhile (`file.rs` looks again just before it
//! cuts or writes, and otherwise leaves the file for the next run).
//!
//! Only whole lines are taken (a line still being written waits for the next run, 10 s at
//! most), at most [`MAX_TAKEN_BYTES`] a run, read [`CHUNK_BYTES`] at a time and submitted in
//! requests of at most [`PUTS_PER_REQUEST`] puts. A line that is not a legacy outcome row is
//! not stored; the rows beside it are, and then the file is handled as one holding foreign
//! bytes: kept aside (the copy holds the line) and cut, the rows written again from the
//! database (`file.rs`). The writer
//! busy leaves the lines in the file for a later run; stopped (the last export, at shutdown,
//! after the service took in what was there while its writer ran), they are kept aside and cut
//! too, so that every stored row is written.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use super::ExportError;
use crate::import::appended::{VerdictFiles, outcome_line_puts};
use crate::import::lines::after_zero_fill;
use crate::store::Put;

/// Stores puts through the service's writer (durably, as any write); `Err` says why not.
/// Given no puts, it answers whether it would store them now.
pub type Adopter = Arc<dyn Fn(Vec<Put>) -> Result<(), NotStored> + Send + Sync>;

/// Why an [`Adopter`] stored nothing.
#[derive(Debug, Clone)]
pub enum NotStored {
    /// For now (the writer's queue is full, the storage is failing): the lines wait in the
    /// file for the next run.
    Busy(String),
    /// For good (the writer has stopped, at shutdown): the lines are handled as any foreign
    /// bytes are, so that the last export still writes every stored row.
    Stopped(String),
}

/// Most time a line still being written may stay unfinished before it is taken for foreign
/// bytes (a writer that died mid-line must not hold the export up for ever).
const UNFINISHED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Most bytes of appended lines one run takes in; the rest waits for the next run.
const MAX_TAKEN_BYTES: u64 = 256 << 20;

/// Appended bytes read at once (a line taken in is at most 4 MiB, `MAX_LINE_BYTES`).
const CHUNK_BYTES: u64 = 8 << 20;

/// Puts submitted to the writer in one request (an audit row is two).
const PUTS_PER_REQUEST: usize = 1_024;

/// What became of the bytes after the checkpoint.
pub(super) enum Taken {
    /// The whole lines up to offset `end` are stored: `lines` of them (blank ones dropped).
    Stored { end: u64, lines: u64 },
    /// Nothing stored this run, the file to be left as it is: why (a line still being
    /// written, the writer busy or stopping).
    Waiting(String),
    /// Not legacy outcome rows, or not all of them (those that are, `lines` of them, are
    /// stored): why.
    Refused { why: String, lines: u64 },
}

/// Takes the whole lines in `from..to` of `handle` (the file at `path`) into the database.
pub(super) fn take(
    adopter: &Adopter,
    handle: &File,
    path: &Path,
    from: u64,
    to: u64,
) -> Result<Taken, ExportError> {
    let now = crate::model::now_ms();
    let mut verdict_files = VerdictFiles::beside(path);
    let mut start = from;
    let mut lines = 0;
    // The first line that is not a row (where, why), and how many are not.
    let mut not_rows: Option<(u64, String)> = None;
    let mut n_not_rows = 0u64;
    while start < to && start - from < MAX_TAKEN_BYTES {
        let upto = to.min(start + CHUNK_BYTES);
        let mut bytes = vec![0; usize::try_from(upto - start).unwrap_or(usize::MAX)];
        let mut reader = handle;
        reader
            .seek(SeekFrom::Start(start))
            .map_err(ExportError::io("seek", path))?;
        reader
            .read_exact(&mut bytes)
            .map_err(ExportError::io("read", path))?;
        let Some(last_newline) = memchr::memrchr(b'\n', &bytes) else {
            if start > from {
                break; // whole lines before it were taken; the rest waits
            }
            return unfinished(adopter, handle, path, upto < to, lines);
        };
        let whole = &bytes[..=last_newline];
        let chunk_lines = || {
            let mut offset = start;
            whole[..whole.len() - 1]
                .split(|&b| b == b'\n')
                .map(move |line| {
                    let at = offset;
                    offset += line.len() as u64 + 1;
                    (at, line)
                })
        };
        let blank = |line: &[u8]| line.iter().all(u8::is_ascii_whitespace);
        // Submitted as they are made, in requests of a bounded size: what is held is bounded
        // whatever the lines (a chunk of `{}` lines is millions of them), and other writers'
        // requests take turns with these.
        let (mut puts, mut pending) = (Vec::new(), 0);
        let mut lines_left = chunk_lines().peekable();
        while let Some((at, line)) = lines_left.next() {
            if !blank(line) {
                // NUL bytes before a row: the zero-filled tail a crash left, which a writer then
                // appended after. The row is stored, as the import stores it; the file is not
                // what an export writes, so it is kept aside and rebuilt, as for any line that
                // is not a row.
                let (zeros, row) = after_zero_fill(line);
                let row_at = at + zeros as u64;
                let warn = |message: String| {
                    tracing::warn!(path = %path.display(), offset = row_at, "{message}");
                };
                match outcome_line_puts(row, row_at, now, verdict_files.as_mut(), warn) {
                    Ok(mut line_puts) => {
                        puts.append(&mut line_puts);
                        pending += 1;
                        if row_at != at {
                            n_not_rows += 1;
                            not_rows.get_or_insert((
                                at,
                                format!(
                                    "{zeros} NUL bytes (a crash's zero-filled tail) before a \
                                     row, which is stored"
                                ),
                            ));
                        }
                    }
                    Err(why) => {
                        n_not_rows += 1;
                        not_rows.get_or_insert((at, why));
                    }
                }
            }
            let full = puts.len() >= PUTS_PER_REQUEST;
            let last = lines_left.peek().is_none() && !puts.is_empty();
            if full || last {
                if let Some(waiting) = submit(adopter, path, std::mem::take(&mut puts), lines) {
                    return Ok(waiting);
                }
                lines += std::mem::take(&mut pending);
            }
        }
        start += whole.len() as u64;
    }
    let unfinished_line = start < to && start - from < MAX_TAKEN_BYTES;
    Ok(match not_rows {
        None => Taken::Stored { end: start, lines },
        // The file is to be kept aside and cut: not while a line after the whole ones may
        // still be being written, whose rest would follow the cut as foreign bytes. The rows
        // stored are found stored again by the next run.
        Some(_) if unfinished_line && may_be_written(adopter, handle, path)? => {
            Taken::Waiting(BEING_WRITTEN.into())
        }
        // The rows are stored; the file holding the others is kept aside. Bytes past `start`
        // (more than a run takes, an unfinished line) are in the copy too.
        Some((at, why)) => Taken::Refused {
            why: match n_not_rows {
                1 => format!("the line at byte {at}: {why}"),
                n => format!("{n} lines, the first at byte {at}: {why}"),
            },
            lines,
        },
    })
}

/// Stores `puts` through `adopter`; what the run comes to when it cannot: the writer busy, the
/// lines wait; stopped (at shutdown: the last export writes every stored row), they are kept
/// aside and cut as any foreign bytes (the service took in what was there while its writer
/// ran).
fn submit(adopter: &Adopter, path: &Path, puts: Vec<Put>, lines: u64) -> Option<Taken> {
    match adopter(puts) {
        Ok(()) => None,
        Err(NotStored::Busy(why)) => {
            tracing::info!(path = %path.display(), why = %why, "rows another writer appended wait for a later export");
            Some(Taken::Waiting(why))
        }
        Err(NotStored::Stopped(why)) => Some(Taken::Refused {
            why: format!("they cannot be stored now: {why}"),
            lines,
        }),
    }
}

/// What to make of bytes after the checkpoint that hold no whole line: a line still being
/// written (modified in the last [`UNFINISHED_FOR`]) waits; one left unfinished, or longer
/// than a chunk (`too_long`), is refused.
fn unfinished(
    adopter: &Adopter,
    handle: &File,
    path: &Path,
    too_long: bool,
    lines: u64,
) -> Result<Taken, ExportError> {
    if too_long {
        let why = format!("a line longer than {CHUNK_BYTES} bytes");
        return Ok(Taken::Refused { why, lines });
    }
    Ok(if may_be_written(adopter, handle, path)? {
        Taken::Waiting(BEING_WRITTEN.into())
    } else {
        let why = format!("a line left unfinished for {} s", UNFINISHED_FOR.as_secs());
        Taken::Refused { why, lines }
    })
}

/// Whether lines may be left for a later run: not at shutdown, when the last export writes
/// every stored row (and what it cannot take in is kept aside).
fn may_wait(adopter: &Adopter) -> bool {
    !matches!(adopter(Vec::new()), Err(NotStored::Stopped(_)))
}

/// Why a run leaves a file whose last line is unfinished as it is.
pub(super) const BEING_WRITTEN: &str = "a line is still being written";

/// Whether an unfinished line at the end of the file may still be being written, and may be
/// waited for: the file was written to in the last [`UNFINISHED_FOR`], and lines may be left
/// for a later run ([`may_wait`]).
pub(super) fn may_be_written(
    adopter: &Adopter,
    handle: &File,
    path: &Path,
) -> Result<bool, ExportError> {
    let modified = handle
        .metadata()
        .and_then(|meta| meta.modified())
        .map_err(ExportError::io("stat", path))?;
    Ok(modified.elapsed().unwrap_or_default() < UNFINISHED_FOR && may_wait(adopter))
}
