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
//! time, and a legacy file that grew since gets only its new lines in.
//!
//! Two passes over the files. The first collects the audit rows' identities (to find the
//! verdict files no row matches) and, with `strict`, validates every line and file, so that a
//! strict import with any malformed line commits nothing; the verdict files are read on other
//! threads meanwhile. The second writes, in transactions of `batch_size` puts, applied by a
//! writer thread in order while the next puts are parsed.

pub mod lines;
mod verdicts;

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{JsField, MAX_KEY_BYTES, ObservedOp, OutcomeRow, Repo, Source, Verdict, now_ms};
use crate::store::{
    BulkWriter, NewEvent, NewOutcome, NewVerdict, Put, Record, Store, StoreError, Written,
};
use lines::{
    ImportKeys, Line, LineReader, OPS_TAG, OUTCOMES_TAG, RowHead, parse_object_line, parse_row,
};
use verdicts::Identity;

pub use lines::Malformed;

/// Puts per write transaction by default. Each commit rewrites every B-tree page it touched,
/// and the import keys, sig_hash and claim indexes take random keys, so a commit touches pages
/// all over those trees; their entries wait for the commit, sorted, so a transaction builds
/// each index in one pass. Fewer, larger commits: each page is rewritten fewer times, for more
/// memory (the waiting entries). Measured on a 1M-line directory (docs/benchmarks/log-2026-11.md).
pub const DEFAULT_BATCH_SIZE: usize = 1_000_000;

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
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            strict: false,
            batch_size: DEFAULT_BATCH_SIZE,
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

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("legacy directory {0} does not exist or is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("import: {0}")]
    Store(#[from] StoreError),
    /// The import's writer thread stopped without answering for every batch. It stops after a
    /// failed write (reported as that write's error instead) or by panicking, which the thread
    /// scope carries on to the caller, so this is a guard rather than an expected outcome.
    #[error("import: the writer thread stopped without writing and committing every put")]
    WriterStopped,
    #[error(
        "{n_rejected} malformed line(s) or verdict file(s) in {dir}; nothing was imported \
         (--strict)"
    )]
    Strict {
        dir: PathBuf,
        n_rejected: u64,
        /// The first [`MAX_LISTED`] of them.
        rejections: Vec<Problem>,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError {
    let path = path.to_owned();
    move |source| ImportError::Io { path, source }
}

/// A line or file that was rejected, or kept with a warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: PathBuf,
    /// 1-based line number; none for a verdict file.
    pub line: Option<u64>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Counts for one legacy file (or, for verdict files, the directory).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileCounts {
    /// Lines read (for verdict files: files read).
    pub read: u64,
    pub stored: u64,
    /// Already in the store: skipped.
    pub duplicates: u64,
    pub rejected: u64,
    /// Blank lines, skipped.
    pub blank: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerdictCounts {
    pub stored: u64,
    pub duplicates: u64,
    /// Stored from an audit row, with the matching verdict file's JSON.
    pub from_file: u64,
    /// Stored from an audit row's own fields (no verdict file had its head and `audited_at`).
    pub from_row: u64,
    /// Stored from a verdict file that no audit row matches (no outcome row).
    pub without_row: u64,
    /// Audit rows kept as rows but too incomplete to make a verdict from (see warnings).
    pub not_made: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub outcomes: FileCounts,
    pub ops: FileCounts,
    pub verdict_files: FileCounts,
    pub verdicts: VerdictCounts,
    /// The first [`MAX_LISTED`] rejected lines and files (all are counted in the file counts).
    pub rejections: Vec<Problem>,
    pub n_warnings: u64,
    /// Time the writer thread spent writing and committing, while the reading and parsing of
    /// the next puts went on.
    pub store_write_ms: u64,
    /// The first [`MAX_LISTED`] lines kept with a warning (a field that cannot be indexed, an
    /// audit row no verdict could be made from).
    pub warnings: Vec<Problem>,
}

impl ImportReport {
    /// Totals over the three sources: (read, stored, duplicates, rejected).
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        let all = [&self.outcomes, &self.ops, &self.verdict_files];
        (
            all.iter().map(|c| c.read).sum(),
            all.iter().map(|c| c.stored).sum(),
            all.iter().map(|c| c.duplicates).sum(),
            all.iter().map(|c| c.rejected).sum(),
        )
    }

    fn reject(&mut self, file: FileKind, path: &Path, line: Option<u64>, message: String) {
        self.counts(file).rejected += 1;
        if self.rejections.len() < MAX_LISTED {
            self.rejections.push(Problem {
                path: path.to_owned(),
                line,
                message,
            });
        }
    }

    fn warn(&mut self, path: &Path, line: u64, message: String) {
        self.n_warnings += 1;
        if self.warnings.len() < MAX_LISTED {
            self.warnings.push(Problem {
                path: path.to_owned(),
                line: Some(line),
                message,
            });
        }
    }

    fn counts(&mut self, file: FileKind) -> &mut FileCounts {
        match file {
            FileKind::Outcomes => &mut self.outcomes,
            FileKind::Ops => &mut self.ops,
            FileKind::VerdictFiles => &mut self.verdict_files,
        }
    }
}

/// The legacy file a count or a rejection belongs to.
#[derive(Debug, Clone, Copy)]
enum FileKind {
    Outcomes,
    Ops,
    VerdictFiles,
}

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
    let outcomes = LegacyFile::find(from.join(OUTCOMES_PATH))?;
    let ops = LegacyFile::find(from.join(OPS_PATH))?;
    let verdict_dir = from.join(VERDICTS_DIR);
    let verdict_files = verdicts::list_files(&verdict_dir).map_err(io_error(&verdict_dir))?;
    let mut report = ImportReport::default();

    // Pass 1: what the rows say, and with `strict`, whether everything is well-formed. Line
    // problems go to a scratch report (pass 2 finds them again as it reads); verdict files are
    // judged once, here, read on other threads while this one checks the lines.
    let mut checked = ImportReport::default();
    let check_bytes = outcomes.len + if options.strict { ops.len } else { 0 };
    let reads = FileReads::default();
    let (audit_rows, read) = std::thread::scope(|scope| {
        let lanes = reads.start(scope, &verdict_files);
        // Should the checks fail (or panic), the lanes stop early instead of reading on.
        let _stop = StopOnDrop(&reads.stop);
        progress.phase("checking", check_bytes, Unit::Bytes);
        let audit_rows = check_outcomes(&outcomes, options.strict, &mut checked, progress)?;
        if options.strict {
            check_ops(&ops, &mut checked, progress)?;
        }
        progress.phase("verdict files", verdict_files.len() as u64, Unit::Files);
        Ok::<_, ImportError>((audit_rows, reads.finish(lanes, progress)))
    })?;
    let (mut matched, waiting) =
        sort_verdict_files(&verdict_files, read, &audit_rows, &mut report)?;
    let n_rejected = checked.totals().3 + report.totals().3;
    if options.strict && n_rejected > 0 {
        let mut rejections = checked.rejections;
        rejections.extend(report.rejections);
        rejections.truncate(MAX_LISTED);
        return Err(ImportError::Strict {
            dir: from.to_owned(),
            n_rejected,
            rejections,
        });
    }

    // Pass 2: write.
    progress.phase("importing", outcomes.len + ops.len, Unit::Bytes);
    let now = now_ms();
    std::thread::scope(|scope| {
        let commit_every = options.batch_size.max(1);
        let chunk = CHUNK.min(commit_every);
        let mut batch = Batch::start(scope, store.bulk_writer(), chunk, commit_every);
        let mut orphans = Orphans { waiting, now };
        import_outcomes(
            &outcomes,
            &mut matched,
            &mut orphans,
            now,
            &mut batch,
            &mut report,
            progress,
        )?;
        orphans.put_audited_before(None, &mut batch, &mut report)?;
        import_ops(&ops, now, &mut batch, &mut report, progress)?;
        batch.finish(&mut report)
    })?;
    Ok(report)
}

/// A legacy JSONL file and its length at the start of the import (0 when missing).
struct LegacyFile {
    path: PathBuf,
    len: u64,
}

impl LegacyFile {
    fn find(path: PathBuf) -> Result<LegacyFile, ImportError> {
        let len = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_error(&path)(e)),
        };
        Ok(LegacyFile { path, len })
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
        let mut reader = LineReader::open(&self.path, self.len).map_err(io_error(&self.path))?;
        while let Some(line) = reader.next_line().map_err(io_error(&self.path))? {
            f(&line)?;
            progress.advance(line.consumed);
        }
        Ok(())
    }
}

/// Pass 1 over `outcomes.jsonl`: the identities of its audit rows; with `strict`, every line
/// is checked. Without it only lines that can be audit rows are parsed: a JSON string `audit`
/// is written either as the bytes `"audit"` or with a `\u` escape. (A missed audit row would
/// have its verdict file taken for one without a row, and the file's JSON lost to the
/// verdict made from the row.)
fn check_outcomes(
    file: &LegacyFile,
    strict: bool,
    report: &mut ImportReport,
    progress: &mut dyn Progress,
) -> Result<HashSet<Identity>, ImportError> {
    let mut audit_rows = HashSet::new();
    file.for_each_line(progress, |line| {
        let may_be_audit = contains(line.bytes, b"\"audit\"") || contains(line.bytes, b"\\u");
        if line.is_blank() || !(strict || may_be_audit) {
            return Ok(());
        }
        match parse_row(line.bytes) {
            Ok((_, head)) => {
                if head.kind.as_deref() == Some("audit")
                    && let Some(identity) = verdicts::head_identity(&head)
                {
                    audit_rows.insert(identity);
                }
            }
            Err(why) if strict => {
                let message = lines::describe(line, &why);
                report.reject(FileKind::Outcomes, &file.path, Some(line.number), message);
            }
            Err(_) => {}
        }
        Ok(())
    })?;
    Ok(audit_rows)
}

/// Pass 1 over `ops.jsonl` (strict only): every line must be a JSON object.
fn check_ops(
    file: &LegacyFile,
    report: &mut ImportReport,
    progress: &mut dyn Progress,
) -> Result<(), ImportError> {
    file.for_each_line(progress, |line| {
        if !line.is_blank()
            && let Err(why) = parse_object_line(line.bytes)
        {
            let message = lines::describe(line, &why);
            report.reject(FileKind::Ops, &file.path, Some(line.number), message);
        }
        Ok(())
    })
}

/// Sorts what was read of every verdict file (`read`, in `files` order): the verdicts an audit
/// row matches (by identity, to enrich that row's verdict) and the ones none does, by
/// `audited_at` (then by file name); unreadable or invalid files are reported. Their text
/// is held in memory until pass 2 stores them (parsed again there: cheaper than a second read,
/// since one open costs tens of microseconds), so the import needs about the verdict
/// directory's size in memory.
#[expect(
    clippy::type_complexity,
    reason = "a private pair of lookups, named at the call"
)]
fn sort_verdict_files(
    files: &[PathBuf],
    read: Vec<FileRead>,
    audit_rows: &HashSet<Identity>,
    report: &mut ImportReport,
) -> Result<(HashMap<Identity, String>, VecDeque<(String, String)>), ImportError> {
    assert_eq!(read.len(), files.len(), "every verdict file was read");
    let mut matched = HashMap::new();
    let mut orphans = Vec::new();
    for (path, read) in files.iter().zip(read) {
        report.verdict_files.read += 1;
        match read {
            Ok((identity, raw_json)) => {
                if audit_rows.contains(&identity) {
                    matched.insert(identity, raw_json);
                } else {
                    let (_, _, audited_at) = identity;
                    orphans.push((audited_at, path, raw_json));
                }
            }
            Err(verdicts::FileProblem::Io(e)) => return Err(io_error(path)(e)),
            Err(e) => report.reject(FileKind::VerdictFiles, path, None, e.to_string()),
        }
    }
    orphans.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let waiting = orphans
        .into_iter()
        .map(|(audited_at, _, text)| (audited_at, text))
        .collect();
    Ok((matched, waiting))
}

/// One verdict file read and parsed: the verdict's identity and JSON.
type FileRead = Result<(Identity, String), verdicts::FileProblem>;

/// The verdict files read and parsed on one thread per core, at most 8 (opening a file costs
/// microseconds, most of it in the kernel), in the background of pass 1's line checks.
#[derive(Default)]
struct FileReads {
    /// Files read so far, for the progress.
    done: AtomicU64,
    /// Set when the import stops before the reads are needed: the lanes stop early.
    stop: AtomicBool,
}

impl FileReads {
    /// Starts the lanes, each on one contiguous part of `files`.
    fn start<'scope, 'env>(
        &'env self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        files: &'env [PathBuf],
    ) -> Vec<std::thread::ScopedJoinHandle<'scope, Vec<FileRead>>> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let lanes = cores.min(8).min(files.len()).max(1);
        files
            .chunks(files.len().div_ceil(lanes).max(1))
            .map(|part| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(part.len());
                    for path in part {
                        if self.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let read = verdicts::read_file(path)
                            .map(|v| (verdicts::identity_of(&v), v.raw_json));
                        out.push(read);
                        self.done.fetch_add(1, Ordering::Relaxed);
                    }
                    out
                })
            })
            .collect()
    }

    /// Waits for the lanes, reporting their progress; every file's read, in `files` order. A
    /// file that cannot be read is reported by the caller.
    fn finish(
        &self,
        lanes: Vec<std::thread::ScopedJoinHandle<'_, Vec<FileRead>>>,
        progress: &mut dyn Progress,
    ) -> Vec<FileRead> {
        let mut reported = 0;
        loop {
            let finished = lanes.iter().all(|lane| lane.is_finished());
            let done = self.done.load(Ordering::Relaxed);
            progress.advance(done - reported);
            reported = done;
            if finished {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut out = Vec::with_capacity(reported as usize);
        for lane in lanes {
            let part = lane
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            out.extend(part);
        }
        // A lane's last counts may not have been seen before it was found finished.
        progress.advance(out.len() as u64 - reported);
        out
    }
}

/// Sets the flag when dropped: however the code holding it ends.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Verdict files no audit row matches, by `audited_at`, waiting for their place in seq order.
struct Orphans {
    /// `(audited_at, verdict JSON)`.
    waiting: VecDeque<(String, String)>,
    now: u64,
}

impl Orphans {
    /// Stores the waiting verdicts audited before `audited_at` (all of them for `None`).
    /// ISO 8601 timestamps of one writer compare as strings.
    fn put_audited_before(
        &mut self,
        audited_at: Option<&str>,
        batch: &mut Batch,
        report: &mut ImportReport,
    ) -> Result<(), ImportError> {
        while let Some((at, _)) = self.waiting.front() {
            if audited_at.is_some_and(|limit| at.as_str() >= limit) {
                break;
            }
            let Some((_, text)) = self.waiting.pop_front() else {
                break;
            };
            // Validated when read in pass 1.
            let Ok(verdict) = Verdict::parse(&text) else {
                continue;
            };
            batch.push(
                Put::from(Record::Verdict(NewVerdict::new(
                    verdict, None, None, self.now,
                ))),
                PutOrigin::VerdictWithoutRow,
                report,
            )?;
        }
        Ok(())
    }
}

/// Pass 2 over `outcomes.jsonl`.
fn import_outcomes(
    file: &LegacyFile,
    matched: &mut HashMap<Identity, String>,
    orphans: &mut Orphans,
    now: u64,
    batch: &mut Batch,
    report: &mut ImportReport,
    progress: &mut dyn Progress,
) -> Result<(), ImportError> {
    let mut keys = ImportKeys::new(OUTCOMES_TAG);
    file.for_each_line(progress, |line| {
        report.outcomes.read += 1;
        if line.is_blank() {
            report.outcomes.blank += 1;
            return Ok(());
        }
        let (text, head) = match parse_row(line.bytes) {
            Ok(parsed) => parsed,
            Err(why) => {
                let message = lines::describe(line, &why);
                report.reject(FileKind::Outcomes, &file.path, Some(line.number), message);
                return Ok(());
            }
        };
        let is_audit = head.kind.as_deref() == Some("audit");
        let (identity, audited_at) = if is_audit {
            (verdicts::head_identity(&head), head.audited_at.clone())
        } else {
            (None, None)
        };
        let outcome = outcome_row(text, head, |message| {
            report.warn(&file.path, line.number, message);
        });
        if let Some(audited_at) = &audited_at {
            orphans.put_audited_before(Some(audited_at), batch, report)?;
        }
        batch.push(
            Put {
                record: Record::Outcome(NewOutcome {
                    row: outcome,
                    received_at_ms: now,
                }),
                import_key: Some(keys.key(line.bytes)),
                client_key: None,
            },
            PutOrigin::Outcome,
            report,
        )?;
        if is_audit {
            match audit_verdict(text, identity, matched) {
                Ok((verdict, slot)) => batch.push(
                    Put::from(Record::Verdict(NewVerdict::new(verdict, None, None, now))),
                    slot,
                    report,
                )?,
                Err(message) => {
                    report.verdicts.not_made += 1;
                    report.warn(
                        &file.path,
                        line.number,
                        format!("audit row kept, but no verdict could be made from it: {message}"),
                    );
                }
            }
        }
        Ok(())
    })
}

/// The row as the store keeps it: its exact bytes (surrounding whitespace included, so export
/// gives back the very same line), its string `sig_hash` (empty when it has none, contract
/// §3) and `kind`. A sig_hash or kind too long to be a key is left out (the row is then not
/// indexed by it, or not counted by it), with a warning.
fn outcome_row(text: &str, head: RowHead, mut warn: impl FnMut(String)) -> OutcomeRow {
    let mut key = |value: Option<String>, unkeyed: &str| {
        let value = value.unwrap_or_default();
        if value.len() <= MAX_KEY_BYTES {
            return value;
        }
        warn(format!(
            "row kept, but {unkeyed}: it has {} bytes, more than {MAX_KEY_BYTES}",
            value.len()
        ));
        String::new()
    };
    // A repo that is not a valid name leaves the row in the default namespace: it is history.
    let repo = head
        .repo
        .as_deref()
        .and_then(|name| Repo::parse("repo", name).ok())
        .unwrap_or_default();
    OutcomeRow {
        line: text.to_owned(),
        sig_hash: key(head.sig_hash, "not indexed by sig_hash"),
        kind: key(head.kind, "not counted by kind"),
        repo,
    }
}

/// The verdict of an audit row (`text`, claiming `identity`): the matching verdict file's,
/// else one made from the row's fields, the one case that parses the row in full. A file's
/// verdict is taken once; a second row of the same identity makes a duplicate anyway.
fn audit_verdict(
    text: &str,
    identity: Option<Identity>,
    matched: &mut HashMap<Identity, String>,
) -> Result<(Verdict, PutOrigin), String> {
    if let Some(file_text) = identity.and_then(|id| matched.remove(&id))
        && let Ok(verdict) = Verdict::parse(&file_text)
    {
        return Ok((verdict, PutOrigin::VerdictFromFile));
    }
    let row = serde_json::from_str::<Map<String, Value>>(text).map_err(|e| e.to_string())?;
    verdicts::verdict_from_row(&row)
        .map(|v| (v, PutOrigin::VerdictFromRow))
        .map_err(|e| e.message)
}

/// Pass 2 over `ops.jsonl`.
fn import_ops(
    file: &LegacyFile,
    now: u64,
    batch: &mut Batch,
    report: &mut ImportReport,
    progress: &mut dyn Progress,
) -> Result<(), ImportError> {
    let mut keys = ImportKeys::new(OPS_TAG);
    file.for_each_line(progress, |line| {
        report.ops.read += 1;
        if line.is_blank() {
            report.ops.blank += 1;
            return Ok(());
        }
        let text = match lines::as_text(line.bytes) {
            Ok(text) => text,
            Err(why) => {
                let message = lines::describe(line, &why);
                report.reject(FileKind::Ops, &file.path, Some(line.number), message);
                return Ok(());
            }
        };
        let op = match ObservedOp::from_line(text) {
            Ok(op) => op,
            Err(e) => match parse_object_line(line.bytes) {
                Err(why) => {
                    let message = lines::describe(line, &why);
                    report.reject(FileKind::Ops, &file.path, Some(line.number), message);
                    return Ok(());
                }
                Ok((_, obj)) => {
                    report.warn(
                        &file.path,
                        line.number,
                        format!("line kept, but only partly indexed: {}", e.message),
                    );
                    lenient_op(&obj)
                }
            },
        };
        batch.push(
            Put {
                record: Record::Event(NewEvent {
                    op,
                    line: text.to_owned(),
                    body: None,
                    source_original: None,
                    received_at_ms: now,
                }),
                import_key: Some(keys.key(line.bytes)),
                client_key: None,
            },
            PutOrigin::Op,
            report,
        )
    })
}

/// An op for a line `ObservedOp::from_line` refuses (a field of the wrong type, an index key
/// too long): the line is history and is kept; only its indexed fields (source, success,
/// sig_hash, event_kind) matter, and a field that cannot be indexed is left out.
fn lenient_op(obj: &Map<String, Value>) -> ObservedOp {
    let key = |name: &str| match obj.get(name) {
        Some(Value::String(s)) if s.len() <= MAX_KEY_BYTES => JsField::Value(s.clone()),
        _ => JsField::Absent,
    };
    let text = |name: &str| obj.get(name).and_then(Value::as_str).unwrap_or_default();
    ObservedOp {
        timestamp: text("timestamp").to_owned(),
        endpoint: text("endpoint").to_owned(),
        input_summary: text("input_summary").to_owned(),
        success: obj.get("success").and_then(Value::as_bool).unwrap_or(false),
        duration_ms: obj
            .get("duration_ms")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN),
        output_summary: text("output_summary").to_owned(),
        error: JsField::Absent,
        source: obj
            .get("source")
            .and_then(Value::as_str)
            .and_then(Source::parse)
            .unwrap_or(Source::Scenario),
        staffer_id: JsField::Absent,
        sig_hash: key("sig_hash"),
        event_kind: key("event_kind"),
        repo: Repo::of_line(obj),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// What a put in a batch was, to count its outcome.
#[derive(Debug, Clone, Copy)]
enum PutOrigin {
    Outcome,
    Op,
    VerdictFromFile,
    VerdictFromRow,
    VerdictWithoutRow,
}

/// Puts handed to the writer thread at a time: small enough that the writer starts early and
/// the two threads keep each other busy, large enough that the handovers cost nothing.
const CHUNK: usize = 8_192;

/// Where the writer thread writes: the store's [`BulkWriter`], or a test's fake.
trait Sink {
    /// Applies the puts in the open transaction.
    fn write(&mut self, puts: &[Put]) -> Result<Vec<Written>, StoreError>;
    /// Commits the open transaction durably.
    fn commit(&mut self) -> Result<(), StoreError>;
}

impl Sink for BulkWriter<'_> {
    fn write(&mut self, puts: &[Put]) -> Result<Vec<Written>, StoreError> {
        BulkWriter::write(self, puts)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        BulkWriter::commit(self)
    }
}

/// What the reading thread hands to the writer thread.
enum ToWriter {
    /// Puts to apply, and whether to commit after them.
    Chunk(Vec<Put>, Vec<PutOrigin>, bool),
    /// Commit what is left; no more chunks follow.
    Finish,
}

/// The writer's answer to each [`ToWriter`]: for a chunk, its puts (handed back to be freed on
/// the reading thread, off the writer's path), what became of them and the time the writer
/// spent.
enum FromWriter {
    Chunk(Vec<Put>, Vec<PutOrigin>, Vec<Written>, std::time::Duration),
    Finished(std::time::Duration),
}

/// Puts on their way to the store. Chunks of them go to a writer thread, which applies them in
/// order in one transaction, committed after every `commit_every` puts (a chunk ends there) and
/// at the end, while this thread reads and parses the next chunk: the import's two halves
/// (parsing, writing) overlap on two cores. The handover is a rendezvous, so besides the open
/// transaction's deferred index entries a few chunks are in memory: the one being filled, the
/// one being written, and the ones handed back until the next flush frees them. The counts in
/// the report are final once [`Batch::finish`] returns `Ok`; an import that stops early (a
/// failed write, a file that cannot be read) keeps the transactions committed before, and
/// rolls back the open one.
struct Batch {
    chunk: usize,
    commit_every: usize,
    /// Puts handed to the writer since its last commit.
    in_txn: usize,
    puts: Vec<Put>,
    slots: Vec<PutOrigin>,
    to_writer: Option<std::sync::mpsc::SyncSender<ToWriter>>,
    from_writer: std::sync::mpsc::Receiver<Result<FromWriter, StoreError>>,
    in_flight: usize,
}

impl Batch {
    /// Starts the writer thread in `scope`; it ends when the batch is finished or dropped, or
    /// after its first failed write or commit.
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        mut sink: impl Sink + Send + 'scope,
        chunk: usize,
        commit_every: usize,
    ) -> Batch {
        let (to_writer, handed) = std::sync::mpsc::sync_channel::<ToWriter>(0);
        let (done, from_writer) = std::sync::mpsc::channel();
        scope.spawn(move || {
            for message in handed {
                let start = std::time::Instant::now();
                let result = match message {
                    ToWriter::Chunk(puts, slots, commit) => sink.write(&puts).and_then(|written| {
                        if commit {
                            sink.commit()?;
                        }
                        Ok(FromWriter::Chunk(puts, slots, written, start.elapsed()))
                    }),
                    ToWriter::Finish => sink
                        .commit()
                        .map(|()| FromWriter::Finished(start.elapsed())),
                };
                let failed = result.is_err();
                if done.send(result).is_err() || failed {
                    return;
                }
            }
        });
        Batch {
            chunk,
            commit_every,
            in_txn: 0,
            puts: Vec::with_capacity(chunk),
            slots: Vec::with_capacity(chunk),
            to_writer: Some(to_writer),
            from_writer,
            in_flight: 0,
        }
    }

    fn push(
        &mut self,
        put: Put,
        slot: PutOrigin,
        report: &mut ImportReport,
    ) -> Result<(), ImportError> {
        self.puts.push(put);
        self.slots.push(slot);
        if self.puts.len() >= self.chunk || self.in_txn + self.puts.len() >= self.commit_every {
            self.flush(report)?;
        }
        Ok(())
    }

    /// Hands the puts so far to the writer (waiting while it still writes the previous chunk)
    /// and counts every chunk it has written meanwhile.
    fn flush(&mut self, report: &mut ImportReport) -> Result<(), ImportError> {
        if !self.puts.is_empty() {
            let puts = std::mem::replace(&mut self.puts, Vec::with_capacity(self.chunk));
            let slots = std::mem::replace(&mut self.slots, Vec::with_capacity(self.chunk));
            self.in_txn += puts.len();
            let commit = self.in_txn >= self.commit_every;
            if commit {
                self.in_txn = 0;
            }
            self.send(ToWriter::Chunk(puts, slots, commit), report)?;
        }
        while let Ok(answer) = self.from_writer.try_recv() {
            self.in_flight -= 1;
            count(answer?, report);
        }
        Ok(())
    }

    fn send(&mut self, message: ToWriter, report: &mut ImportReport) -> Result<(), ImportError> {
        let sent = self
            .to_writer
            .as_ref()
            .is_some_and(|to_writer| to_writer.send(message).is_ok());
        if !sent {
            // The writer stopped: its last answer is the failed write. These puts were not
            // written, so this can never end in Ok.
            self.wait_all(report)?;
            return Err(ImportError::WriterStopped);
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Writes what is left, commits and waits for every answer: when this returns `Ok`, all
    /// the batch's puts are committed.
    fn finish(mut self, report: &mut ImportReport) -> Result<(), ImportError> {
        self.flush(report)?;
        self.send(ToWriter::Finish, report)?;
        self.wait_all(report)
    }

    fn wait_all(&mut self, report: &mut ImportReport) -> Result<(), ImportError> {
        self.to_writer = None;
        while self.in_flight > 0 {
            let Ok(answer) = self.from_writer.recv() else {
                break;
            };
            self.in_flight -= 1;
            count(answer?, report);
        }
        // Fewer answers than messages: the writer thread died without one (a panic, which the
        // scope propagates when it joins).
        if self.in_flight > 0 {
            return Err(ImportError::WriterStopped);
        }
        Ok(())
    }
}

/// Counts one answer of the writer into the report.
fn count(answer: FromWriter, report: &mut ImportReport) {
    let (puts, slots, written, took) = match answer {
        FromWriter::Chunk(puts, slots, written, took) => (puts, slots, written, took),
        FromWriter::Finished(took) => (Vec::new(), Vec::new(), Vec::new(), took),
    };
    drop(puts);
    report.store_write_ms += u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    for (slot, written) in slots.iter().zip(written) {
        let stored = matches!(written, Written::Stored { .. });
        let counts = match slot {
            PutOrigin::Outcome => Some(&mut report.outcomes),
            PutOrigin::Op => Some(&mut report.ops),
            PutOrigin::VerdictWithoutRow => Some(&mut report.verdict_files),
            PutOrigin::VerdictFromFile | PutOrigin::VerdictFromRow => None,
        };
        if let Some(counts) = counts {
            if stored {
                counts.stored += 1;
            } else {
                counts.duplicates += 1;
            }
        }
        if matches!(
            slot,
            PutOrigin::VerdictFromFile | PutOrigin::VerdictFromRow | PutOrigin::VerdictWithoutRow
        ) {
            let v = &mut report.verdicts;
            if !stored {
                v.duplicates += 1;
                continue;
            }
            v.stored += 1;
            match slot {
                PutOrigin::VerdictFromFile => v.from_file += 1,
                PutOrigin::VerdictFromRow => v.from_row += 1,
                _ => v.without_row += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn row(i: u64) -> Put {
        let line = format!(r#"{{"sig_hash":"pr{i}-abcdef01","n":{i}}}"#);
        Put::from(crate::intake::outcome_record(line.as_bytes(), 0).unwrap())
    }

    /// What the writer thread did, in order.
    #[derive(Debug, PartialEq, Eq)]
    enum Did {
        Write(Vec<String>),
        Commit,
    }

    /// A sink that logs what it is asked to do and answers a write with `write(call_number,
    /// puts)` and a commit with `commit()`.
    struct Fake<'a, W, C> {
        log: &'a Mutex<Vec<Did>>,
        writes: u64,
        write: W,
        commit: C,
    }

    impl<W, C> Sink for Fake<'_, W, C>
    where
        W: FnMut(u64, &[Put]) -> Result<Vec<Written>, StoreError>,
        C: FnMut() -> Result<(), StoreError>,
    {
        fn write(&mut self, puts: &[Put]) -> Result<Vec<Written>, StoreError> {
            let lines = puts.iter().map(line).collect();
            self.log.lock().unwrap().push(Did::Write(lines));
            self.writes += 1;
            (self.write)(self.writes - 1, puts)
        }

        fn commit(&mut self) -> Result<(), StoreError> {
            self.log.lock().unwrap().push(Did::Commit);
            (self.commit)()
        }
    }

    /// Runs `n` outcome puts through a `Batch` handing `chunk` puts at a time to a fake sink
    /// (see [`Fake`]) and committing every `commit_every`; returns what the sink did.
    fn run(
        n: u64,
        (chunk, commit_every): (usize, usize),
        write: impl FnMut(u64, &[Put]) -> Result<Vec<Written>, StoreError> + Send,
        commit: impl FnMut() -> Result<(), StoreError> + Send,
    ) -> (Result<(), ImportError>, ImportReport, Vec<Did>) {
        let log = Mutex::new(Vec::new());
        let mut report = ImportReport::default();
        let result = std::thread::scope(|scope| {
            let sink = Fake {
                log: &log,
                writes: 0,
                write,
                commit,
            };
            let mut batch = Batch::start(scope, sink, chunk, commit_every);
            for i in 0..n {
                batch.push(row(i), PutOrigin::Outcome, &mut report)?;
            }
            batch.finish(&mut report)
        });
        (result, report, log.into_inner().unwrap())
    }

    fn line(put: &Put) -> String {
        match &put.record {
            Record::Outcome(o) => o.row.line.clone(),
            other => panic!("only rows are put here, not {other:?}"),
        }
    }

    fn lines(range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|i| line(&row(i))).collect()
    }

    fn stored(puts: &[Put]) -> Vec<Written> {
        (0..puts.len() as u64)
            .map(|seq| Written::Stored {
                seq,
                outcome_seq: None,
                event_seq: None,
            })
            .collect()
    }

    fn ok() -> Result<(), StoreError> {
        Ok(())
    }

    #[test]
    fn every_chunk_is_written_in_order_committed_and_counted_by_the_time_finish_returns() {
        let (result, report, did) = run(
            10,
            (3, 6),
            |call, puts| {
                // A slow writer: the reader runs ahead and must still see every answer.
                std::thread::sleep(std::time::Duration::from_millis(5 * (call % 2)));
                Ok(if call == 1 {
                    vec![Written::Duplicate { seq: 0 }; puts.len()]
                } else {
                    stored(puts)
                })
            },
            ok,
        );
        result.unwrap();
        assert_eq!(report.outcomes.stored, 7);
        assert_eq!(report.outcomes.duplicates, 3);
        let expected = vec![
            Did::Write(lines(0..3)),
            Did::Write(lines(3..6)),
            // Six puts in the transaction: committed before the next chunk is written.
            Did::Commit,
            Did::Write(lines(6..9)),
            Did::Write(lines(9..10)),
            // What is left, at the end.
            Did::Commit,
        ];
        assert_eq!(did, expected);
    }

    #[test]
    fn a_failed_write_stops_the_import_with_its_error_and_commits_nothing_after_it() {
        let (result, report, did) = run(
            20,
            (2, 4),
            |call, puts| {
                if call == 2 {
                    Err(StoreError::Backup("injected".into()))
                } else {
                    Ok(stored(puts))
                }
            },
            ok,
        );
        let error = result.unwrap_err();
        assert!(error.to_string().contains("injected"), "{error}");
        // The two chunks before the failure were written (and committed) and are counted; the
        // writer takes nothing after the failed one.
        assert_eq!(report.outcomes.stored, 4);
        let expected = vec![
            Did::Write(lines(0..2)),
            Did::Write(lines(2..4)),
            Did::Commit,
            Did::Write(lines(4..6)),
        ];
        assert_eq!(did, expected);
    }

    #[test]
    fn a_transaction_holds_exactly_commit_every_puts_whatever_the_chunk_size() {
        let (result, _, did) = run(11, (4, 6), |_, puts| Ok(stored(puts)), ok);
        result.unwrap();
        let expected = vec![
            Did::Write(lines(0..4)),
            // The chunk ends where the transaction does.
            Did::Write(lines(4..6)),
            Did::Commit,
            Did::Write(lines(6..10)),
            Did::Write(lines(10..11)),
            Did::Commit,
        ];
        assert_eq!(did, expected);
    }

    #[test]
    fn a_failed_commit_stops_the_import_with_its_error() {
        for n in [5, 6] {
            // 5: the commit at the end fails; 6: the one after the second chunk fails.
            let (result, _, did) = run(
                n,
                (3, 6),
                |_, puts| Ok(stored(puts)),
                || Err(StoreError::Backup("commit failed".into())),
            );
            let error = result.unwrap_err();
            assert!(error.to_string().contains("commit failed"), "{n}: {error}");
            assert_eq!(did.last(), Some(&Did::Commit), "{n}");
            assert_eq!(did.iter().filter(|d| **d == Did::Commit).count(), 1, "{n}");
        }
    }
}
