//! The legacy import: brings a lakehouse data directory (`_kb/outcomes.jsonl`,
//! `_observer/ops.jsonl`, `_auditor/verdicts/*.json`, any of them missing) into the store, so
//! that exporting afterwards gives back the same files byte for byte.
//!
//! - Every outcome row becomes an outcome row, bytes kept, order kept; a `kind:"audit"` row also
//!   becomes a verdict, whose raw JSON is the verdict file's when one with the same
//!   `(pr_number, head_sha, audited_at)` exists, else one made from the row's fields.
//! - Verdict files no row matches become verdicts without a row (they predate the KB file, or
//!   the legacy append of their row failed); exporting never invents rows for them. They are
//!   stored in `audited_at` order, each just before the first audit row audited after it, so
//!   that a PR's verdicts keep their audit order in seq order.
//! - Every ops line becomes an event, its original line kept.
//!
//! Idempotent: each line is written with an import key (see [`lines::ImportKeys`]) and verdicts
//! dedupe on their identity, so importing the same directory twice stores nothing the second
//! time, and a legacy file that grew since gets only its new lines in. Before anything is
//! written, each file is compared with the database's own export of it: the whole lines it
//! starts with that are that export, byte for byte, are rows the database holds (a directory
//! the service exported into also holds rows it received and rows it took in, which no import
//! key names), and are skipped as duplicates (`pass2.rs`).
//!
//! Two passes over the files. The first collects the audit rows' identities (to find the
//! verdict files no row matches) and the lines each file repeats (so that the import keys
//! count occurrences of those lines only, not of every line), and, with `strict`, validates
//! every line and file, so that a strict import with any malformed line commits nothing; the
//! verdict files are read on other threads meanwhile. The second writes, in transactions of
//! `batch_size` puts, applied by a writer thread in order while the next puts are parsed.

pub mod appended;
pub mod lines;
mod pass1;
mod pass2;
mod pipeline;
mod report;
mod spill;
mod verdicts;

use std::path::{Path, PathBuf};

use crate::store::Store;
use lines::{Line, LineReader};
use report::io_error;

pub use lines::Malformed;
pub use report::{FileCounts, ImportError, ImportReport, Problem, Totals, VerdictCounts};

/// Puts per write transaction by default. Each commit rewrites every B-tree page it touched,
/// and the import keys, sig_hash and claim indexes take random keys, so a commit touches pages
/// all over those trees; their entries wait for the commit, sorted, so a transaction builds
/// each index in one pass. Fewer, larger commits rewrite each page fewer times, for more memory
/// (the waiting entries). On a 1M-line directory, 250,000 took as long as 1,000,000 and held
/// about 100 MiB less at its peak (docs/benchmarks/log-2026-12.md).
pub const DEFAULT_BATCH_SIZE: usize = 250_000;

/// At most this many rejections and warnings are listed in a report; all are counted.
pub const MAX_LISTED: usize = 1_000;

/// Where each legacy file lives under a legacy data directory.
pub const OUTCOMES_PATH: &str = "_kb/outcomes.jsonl";
pub const OPS_PATH: &str = "_observer/ops.jsonl";
pub const VERDICTS_DIR: &str = "_auditor/verdicts";

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Abort before committing anything when any line or verdict file is malformed.
    pub strict: bool,
    pub batch_size: usize,
    /// Longest line or verdict file imported, in bytes: a longer one is reported and skipped,
    /// read past without being held.
    pub max_line_bytes: usize,
}

/// [`ImportOptions::max_line_bytes`] by default: the longest line the service writes
/// ([`MAX_LINE_BYTES`](crate::model::MAX_LINE_BYTES)), so that the service's own export is
/// read back whole. Until 2026-12-07 it was the default `--max-body` (1 MiB), under the op
/// line of an event whose `error` the observer's rules copy twice (a review's).
pub const DEFAULT_MAX_LINE_BYTES: usize = crate::model::MAX_LINE_BYTES;

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            strict: false,
            batch_size: DEFAULT_BATCH_SIZE,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// What a phase's progress counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes of the JSONL files.
    Bytes,
    /// Verdict files.
    Files,
}

/// Progress of an import: phases `checking` (bytes), `verdict files` (files) and `importing`
/// (bytes).
pub trait Progress {
    /// A phase begins; `total` units will be done in it.
    fn phase(&mut self, _name: &'static str, _total: u64, _unit: Unit) {}
    fn advance(&mut self, _done: u64) {}
}

/// No progress output.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Imports the legacy directory `from` into `store`.
pub fn import(
    store: &Store,
    from: &Path,
    options: &ImportOptions,
    progress: &mut dyn Progress,
) -> Result<ImportReport, ImportError> {
    if !from.is_dir() {
        return Err(ImportError::NotADirectory(from.to_owned()));
    }
    let mut dir = LegacyDir::find(from, options.max_line_bytes)?;
    let mut report = ImportReport::default();
    // The verdict texts wait between the passes in an unnamed file beside the database.
    let spill_dir = spill::dir_of(store.path());
    // Pass 1 takes the verdict file list and drops it: pass 2 reads their texts from the
    // spill file.
    let verdict_files = std::mem::take(&mut dir.verdict_files);
    let found = pass1::run(
        &dir,
        verdict_files,
        spill_dir,
        options.strict,
        &mut report,
        progress,
    )?;
    let n_rejected = found.line_problems.totals().rejected + report.totals().rejected;
    if options.strict && n_rejected > 0 {
        let mut rejections = found.line_problems.rejections;
        rejections.extend(report.rejections);
        rejections.truncate(MAX_LISTED);
        return Err(ImportError::Strict {
            dir: from.to_owned(),
            n_rejected,
            rejections,
        });
    }
    pass2::run(
        store,
        &dir,
        found,
        options.batch_size,
        &mut report,
        progress,
    )?;
    Ok(report)
}

/// The files of a legacy data directory, as found at the start of the import.
struct LegacyDir {
    outcomes: LegacyFile,
    ops: LegacyFile,
    /// The verdict files, by name.
    verdict_files: Vec<PathBuf>,
    /// [`ImportOptions::max_line_bytes`].
    max_line: usize,
}

impl LegacyDir {
    /// What `from` holds. Nothing outside it is read: a symbolic link where one of its
    /// directories or JSONL files should be is refused, and a verdict file that is a link is
    /// reported and skipped (`verdicts::read_file`).
    fn find(from: &Path, max_line: usize) -> Result<LegacyDir, ImportError> {
        for dir in ["_kb", "_observer", "_auditor", VERDICTS_DIR] {
            refuse_link(&from.join(dir))?;
        }
        let verdict_dir = from.join(VERDICTS_DIR);
        Ok(LegacyDir {
            outcomes: LegacyFile::find(from.join(OUTCOMES_PATH), max_line)?,
            ops: LegacyFile::find(from.join(OPS_PATH), max_line)?,
            verdict_files: verdicts::list_files(&verdict_dir).map_err(io_error(&verdict_dir))?,
            max_line,
        })
    }
}

/// Fails when `path` is a symbolic link; anything else (or nothing) is fine.
fn refuse_link(path: &Path) -> Result<(), ImportError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(ImportError::Link(path.to_owned())),
        _ => Ok(()),
    }
}

/// A legacy JSONL file and its length at the start of the import (0 when missing).
struct LegacyFile {
    path: PathBuf,
    len: u64,
    max_line: usize,
}

impl LegacyFile {
    fn find(path: PathBuf, max_line: usize) -> Result<LegacyFile, ImportError> {
        refuse_link(&path)?;
        let len = match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => meta.len(),
            // A FIFO or a device has no length: read as empty, it was "0 lines read" (a
            // review's). Refused, as a directory there is.
            Ok(_) => return Err(io_error(&path)(crate::fsutil::not_a_regular_file(&path))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_error(&path)(e)),
        };
        Ok(LegacyFile {
            path,
            len,
            max_line,
        })
    }

    /// Calls `f` with every line of the file's first `len` bytes.
    fn for_each_line(
        &self,
        progress: &mut dyn Progress,
        mut f: impl FnMut(&Line<'_>) -> Result<(), ImportError>,
    ) -> Result<(), ImportError> {
        if self.len == 0 {
            return Ok(());
        }
        let mut reader =
            LineReader::open(&self.path, self.len, self.max_line).map_err(io_error(&self.path))?;
        while let Some(line) = reader.next_line().map_err(io_error(&self.path))? {
            f(&line)?;
            progress.advance(line.consumed);
        }
        Ok(())
    }
}
