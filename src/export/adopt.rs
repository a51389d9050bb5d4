//! Lines another writer appended to `outcomes.jsonl` after the export's checkpoint, taken into
//! the database instead of cut. A legacy auditor appends its KB row itself
//! (`appendVerdictToKbOutcomes`) and a legacy scenario runner its rows; left unchanged against
//! the service, their rows were kept aside and cut, and the second time the export paused.
//! Now, when the service runs the export (it gives the job an [`Adopter`], which submits to
//! its writer), such lines are stored as the import stores them (`import/appended.rs`), each
//! with an import key of its bytes and offset, so that taking them again after a crash stores
//! nothing twice. Where the database wrote no row of its own since the checkpoint, the file
//! already holds the rows where the export would write them, and is kept as it is; else the
//! tail is written again in seq order (the appended rows after the database's).
//!
//! Only whole lines are taken (a line still being written waits for the next run), at most
//! [`MAX_TAKEN_BYTES`] a run. A line that is not a legacy outcome row is handled as any foreign
//! bytes are: the file is kept aside and cut (`file.rs`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use super::ExportError;
use crate::import::appended::outcome_line_puts;
use crate::store::Put;

/// Stores puts through the service's writer (durably, as any write); `Err` says why not.
pub type Adopter = Arc<dyn Fn(Vec<Put>) -> Result<(), NotStored> + Send + Sync>;

/// Why an [`Adopter`] stored nothing.
#[derive(Debug, Clone)]
pub enum NotStored {
    /// For now (the writer's queue is full, the storage is failing): the lines wait in the
    /// file for the next run.
    Busy(String),
    /// For good (the writer has stopped, at shutdown): the lines are handled as any foreign
    /// bytes are.
    Stopped(String),
}

/// Most time a line still being written may stay unfinished before it is taken for foreign
/// bytes (a writer that died mid-line must not hold the export up for ever).
const UNFINISHED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Most bytes of appended lines one run takes in; the rest waits for the next run.
pub const MAX_TAKEN_BYTES: u64 = 8 << 20;

/// What became of the bytes after the checkpoint.
pub(super) enum Taken {
    /// The whole lines up to offset `end` are stored: `lines` of them (blank ones dropped).
    Stored { end: u64, lines: u64 },
    /// No whole line yet: one is still being written.
    Waiting,
    /// Not legacy outcome rows: why.
    Refused(String),
}

/// Takes the whole lines in `from..to` of `handle` (the file at `path`) into the database.
pub(super) fn take(
    adopter: &Adopter,
    handle: &File,
    path: &Path,
    from: u64,
    to: u64,
) -> Result<Taken, ExportError> {
    let upto = to.min(from.saturating_add(MAX_TAKEN_BYTES));
    let mut bytes = vec![0; usize::try_from(upto - from).unwrap_or(usize::MAX)];
    let mut reader = handle;
    reader
        .seek(SeekFrom::Start(from))
        .map_err(ExportError::io("seek", path))?;
    reader
        .read_exact(&mut bytes)
        .map_err(ExportError::io("read", path))?;
    let Some(last_newline) = memchr::memrchr(b'\n', &bytes) else {
        if upto < to {
            return Ok(Taken::Refused(format!(
                "a line longer than {MAX_TAKEN_BYTES} bytes"
            )));
        }
        let modified = handle
            .metadata()
            .and_then(|meta| meta.modified())
            .map_err(ExportError::io("stat", path))?;
        let idle = modified.elapsed().unwrap_or_default();
        return Ok(if idle < UNFINISHED_FOR {
            Taken::Waiting
        } else {
            Taken::Refused(format!("a line left unfinished for {} s", idle.as_secs()))
        });
    };
    let whole = &bytes[..=last_newline];
    let now = crate::model::now_ms();
    let mut puts = Vec::new();
    let mut lines = 0;
    let mut offset = from;
    for line in whole[..whole.len() - 1].split(|&b| b == b'\n') {
        let at = offset;
        offset += line.len() as u64 + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let warn = |message: String| {
            tracing::warn!(path = %path.display(), offset = at, "{message}");
        };
        match outcome_line_puts(line, at, now, warn) {
            Ok(mut line_puts) => puts.append(&mut line_puts),
            Err(why) => return Ok(Taken::Refused(format!("the line at byte {at}: {why}"))),
        }
        lines += 1;
    }
    if !puts.is_empty() {
        match adopter(puts) {
            Ok(()) => {}
            Err(NotStored::Busy(why)) => {
                tracing::info!(path = %path.display(), why = %why, "rows another writer appended wait for the next export");
                return Ok(Taken::Waiting);
            }
            Err(NotStored::Stopped(why)) => {
                return Ok(Taken::Refused(format!("they could not be stored: {why}")));
            }
        }
    }
    Ok(Taken::Stored {
        end: from + whole.len() as u64,
        lines,
    })
}
