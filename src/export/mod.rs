//! The export job: writes the legacy `_kb/outcomes.jsonl` and `_observer/ops.jsonl` from the
//! store, incrementally and crash-safely, for the legacy readers (report scripts, `kb_query`,
//! the observer's consumers).
//!
//! The lines are the stored records': an outcome row or event stored whole holds its exact line;
//! a verdict's own KB row and event are stored as references to the verdict and their lines
//! are written from its stored head by the code that made them at ingest (which the store
//! checked gives the record back exactly). Exporting is writing `line + "\n"` for each record
//! after the file's checkpoint, in seq order, from one read snapshot per file.
//!
//! A checkpoint per file (`Store::checkpoint`) says which seq the file holds rows through, how
//! long the file then was, and a fingerprint of its last bytes (see [`tail_fingerprint`]). The
//! checkpoint is written only after the appended bytes are fsync'd, so after a crash the file
//! may be longer than its checkpoint but never shorter; [`file`] handles every state on start.
//!
//! A checkpoint describes content, not a directory: the bytes of the rows through a seq are the
//! same wherever they are written. So `export --out ELSEWHERE` is safe (a directory behind the
//! checkpoint is rebuilt in full, with a warning), but it moves the checkpoint, and the next
//! export into the usual directory may then have to rebuild as well.
//!
//! Not supported: another process appending to an exported file (a legacy writer still
//! running). Its lines land after the checkpoint and are cut by the next run, which first keeps
//! the file aside (`NAME.replaced-{ms}`) since those bytes are not the rows it writes; a torn
//! tail of its own is cut without a copy. A file rebuilt in full is kept aside the same way
//! unless it holds nothing but the start of the rows. At most one copy per file is kept: foreign
//! bytes found again while it exists pause that file's export (an error in the log, `/healthz`
//! and metrics) until an operator removes the copy.
//!
//! The two files are independent: a fault on one (a link where it should be, a full disk, a
//! pause) is reported for that file, and the other is exported all the same.

mod adopt;
mod file;
mod hook;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;

use crate::store::{Checkpoint, Store, StoreError};

pub use adopt::{Adopter, NotStored};

pub use file::{RowsHeld, TAIL_BYTES, rows_held, tail_fingerprint};
pub use hook::{APPENDED_BEFORE_WRITE, Hook as CrashHook};

/// One exported file: where it goes and which records feed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFile {
    /// `_kb/outcomes.jsonl`: every KB outcome row (scenario rows and `kind:"audit"` rows).
    Outcomes,
    /// `_observer/ops.jsonl`: every observer event's ObservedOp line.
    Ops,
}

impl ExportFile {
    pub const ALL: [ExportFile; 2] = [ExportFile::Outcomes, ExportFile::Ops];

    /// Where the file is in [`ExportFile::ALL`] (and in the job's per-file state).
    const fn index(self) -> usize {
        match self {
            ExportFile::Outcomes => 0,
            ExportFile::Ops => 1,
        }
    }

    /// The checkpoint name in the store's meta table (`export/{name}/...`).
    pub fn name(self) -> &'static str {
        match self {
            ExportFile::Outcomes => "outcomes",
            ExportFile::Ops => "ops",
        }
    }

    /// Path of the file under the export directory, as the legacy writers laid it out.
    pub const fn relative_path(self) -> &'static str {
        match self {
            ExportFile::Outcomes => "_kb/outcomes.jsonl",
            ExportFile::Ops => "_observer/ops.jsonl",
        }
    }

    /// Calls `f` with every line of this file's records after `after_seq`, in seq order, from
    /// one read snapshot.
    fn for_each_line<E: From<StoreError>>(
        self,
        store: &Store,
        after_seq: u64,
        f: impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            ExportFile::Outcomes => store.for_each_outcome_line(after_seq, f),
            ExportFile::Ops => store.for_each_event_line(after_seq, f),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("export: {0}")]
    Store(#[from] StoreError),
    #[error("export: cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "export: {path} is a symbolic link; the export never writes through a link: remove it \
         (the next run writes a file there)"
    )]
    Link { path: PathBuf },
    #[error("export: {path} is not what the export needs there (a regular file or a directory)")]
    NotAFile { path: PathBuf },
    #[error(
        "export: paused for {path}: bytes the export did not write were found in it again while \
         {aside} still holds the copy kept aside the last time (a legacy writer still appending \
         to it?); stop that writer, keep what you need from {aside}, then remove {aside}: the \
         next run resumes"
    )]
    Paused { path: PathBuf, aside: PathBuf },
}

impl ExportError {
    /// An error opening `path`: a link met at it (`ELOOP` under `O_NOFOLLOW`) is [`Self::Link`].
    fn opening(path: &Path, source: std::io::Error) -> ExportError {
        if source.raw_os_error() == Some(libc::ELOOP) {
            ExportError::Link {
                path: path.to_owned(),
            }
        } else {
            ExportError::Io {
                action: "open",
                path: path.to_owned(),
                source,
            }
        }
    }

    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
        let path = path.to_owned();
        move |source| ExportError::Io {
            action,
            path,
            source,
        }
    }
}

/// What one run did, per file; `POST /export` answers with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    pub outcomes: FileReport,
    pub ops: FileReport,
    pub duration_ms: u64,
}

impl ExportReport {
    pub fn files(&self) -> [&FileReport; 2] {
        [&self.outcomes, &self.ops]
    }

    /// Whether a file failed or is paused.
    pub fn failed(&self) -> bool {
        self.files().iter().any(|f| f.error.is_some())
    }
}

/// What a run did to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: String,
    pub action: Action,
    /// Why the file was rebuilt or its tail cut, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Rows written by this run (every row of the file when it was rebuilt).
    pub rows_written: u64,
    pub bytes_written: u64,
    /// Bytes cut from the end of the file before appending (a torn tail left by a crash).
    pub bytes_truncated: u64,
    /// Lines another writer appended that this run stored in the database (`adopt.rs`).
    #[serde(skip_serializing_if = "is_zero")]
    pub lines_taken_in: u64,
    /// The file's checkpoint after the run.
    pub checkpoint: CheckpointReport,
    /// Why this file was not brought up to date (`action` `failed` or `paused`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Rows remain to be written: a pass that may meet another writer writes a bounded part of
    /// them ([`ExportJob::with_pass_bytes`]), and a run makes passes until none remain.
    #[serde(skip)]
    pub(crate) more: bool,
}

impl FileReport {
    /// Whether the run left the file holding every row committed before it: not failed or
    /// paused, no rows left for another pass, and not left as it was while rows another
    /// writer appended wait (`Unchanged` with a reason).
    pub fn brought_up_to_date(&self) -> bool {
        self.error.is_none()
            && !self.more
            && !(self.action == Action::Unchanged && self.reason.is_some())
    }

    /// This pass's report followed by the next pass's, as one run's: a file the later pass
    /// rebuilt (replaced meanwhile) counts only that pass's rows; every pass's reason is kept,
    /// a later pass's "wait" too, so that a run stopped before the end says so.
    fn followed_by(mut self, next: FileReport) -> FileReport {
        let up_to_date = next.brought_up_to_date();
        if next.action == Action::Rebuilt {
            self.rows_written = 0;
            self.bytes_written = 0;
        }
        if self.action == Action::Unchanged || next.action == Action::Rebuilt {
            self.action = next.action;
        }
        self.reason = match (self.reason, next.reason) {
            (Some(first), Some(then)) => Some(format!("{first}; then {then}")),
            (first, then) => first.or(then),
        };
        self.rows_written += next.rows_written;
        self.bytes_written += next.bytes_written;
        self.bytes_truncated += next.bytes_truncated;
        self.lines_taken_in += next.lines_taken_in;
        self.checkpoint = next.checkpoint;
        self.more = next.more || !up_to_date;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing new to write; the file was left untouched.
    Unchanged,
    /// New rows appended after the checkpoint (after cutting a torn tail, if any).
    Appended,
    /// Written in full into a temporary file and renamed over the old one.
    Rebuilt,
    /// Not brought up to date: an error (see `error`); the next run tries again.
    Failed,
    /// Not touched: a foreign writer keeps appending to it (see `error`) until an operator acts.
    Paused,
}

/// A file the last run could not bring up to date, as `/healthz` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileProblem {
    /// `_kb/outcomes.jsonl` or `_observer/ops.jsonl`.
    pub file: &'static str,
    /// Paused (an operator must act) rather than failing (retried every run).
    pub paused: bool,
    /// The error, with the export directory left out of its paths.
    pub error: String,
    /// When this problem was first seen (Unix ms).
    pub since_ms: u64,
    /// A paused file as it was when the pause was found ([`FileState`]): while it is the same
    /// and the copy kept aside is there, a run pauses again without reading the file's tail
    /// once more.
    #[serde(skip)]
    paused_as: Option<FileState>,
}

/// What tells a file changed without reading it: its length, modification time, device and
/// inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileState {
    len: u64,
    modified: Option<std::time::SystemTime>,
    dev_ino: (u64, u64),
}

impl FileState {
    fn of(path: &Path) -> Option<FileState> {
        let meta = fs::symlink_metadata(path).ok()?;
        Some(FileState {
            len: meta.len(),
            modified: meta.modified().ok(),
            dev_ino: crate::fsutil::dev_ino(&meta),
        })
    }
}

/// A checkpoint as reported: the tail fingerprint as 16 hex digits, since JSON readers hold
/// numbers as doubles and would round a u64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointReport {
    pub seq: u64,
    pub len: u64,
    pub tail: String,
}

impl From<Checkpoint> for CheckpointReport {
    fn from(c: Checkpoint) -> CheckpointReport {
        CheckpointReport {
            seq: c.seq,
            len: c.len,
            tail: format!("{:016x}", c.tail),
        }
    }
}

/// The export job. One per export directory; [`ExportJob::run`] may be called from any thread,
/// and runs never overlap: a second caller waits for the running one, then runs itself (so its
/// report covers every record committed before it called).
pub struct ExportJob {
    store: Arc<Store>,
    out_dir: PathBuf,
    running: Mutex<()>,
    /// Each file's problem after the last run (index as in [`ExportFile::ALL`]).
    problems: Mutex<[Option<FileProblem>; 2]>,
    /// The crash tests' stop; `CrashHook::None` everywhere else.
    crash_hook: CrashHook,
    /// Stores lines another writer appended to `outcomes.jsonl` (`adopt.rs`); without one
    /// (the CLI's export) they are kept aside and cut.
    adopter: Option<Adopter>,
    /// Per file (index as in [`ExportFile::ALL`]), the last seq committed before its latest
    /// run that brought it up to date: every record of the file's kinds through it is in the
    /// file, where the checkpoint's seq is the last row written (see [`ExportJob::lag`]).
    covered: [AtomicU64; 2],
    /// Most bytes of rows one pass writes into a file another writer may append to.
    pass_bytes: usize,
}

impl std::fmt::Debug for ExportJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportJob")
            .field("out_dir", &self.out_dir)
            .finish_non_exhaustive()
    }
}

impl ExportJob {
    /// A job writing `out_dir/_kb/outcomes.jsonl` and `out_dir/_observer/ops.jsonl`.
    pub fn new(store: Arc<Store>, out_dir: PathBuf) -> ExportJob {
        ExportJob {
            store,
            out_dir,
            running: Mutex::new(()),
            problems: Mutex::new([None, None]),
            crash_hook: CrashHook::None,
            adopter: None,
            covered: [AtomicU64::new(0), AtomicU64::new(0)],
            pass_bytes: file::MAX_PREPARED_BYTES,
        }
    }

    /// Records committed after the point through which `file` is known to hold every row of
    /// its kinds: the later of its checkpoint and the last seq committed before the latest run
    /// that brought it up to date. 0 when the file is current as of that run and nothing was
    /// committed since; otherwise an upper bound on the rows it lacks.
    pub fn lag(&self, file: ExportFile) -> Result<u64, StoreError> {
        let last = self.store.last_seq()?;
        let index = file.index();
        let covered = self.covered[index].load(Ordering::Acquire);
        let checkpoint = self.store.checkpoint(file.name())?.seq;
        Ok(last.saturating_sub(checkpoint.max(covered)))
    }

    /// This job, storing through `adopter` the rows another writer appends to
    /// `outcomes.jsonl` (see `export/adopt.rs`).
    pub fn with_adopter(mut self, adopter: Adopter) -> ExportJob {
        self.adopter = Some(adopter);
        self
    }

    /// This job, writing at most `bytes` of rows a pass into a file another writer may append
    /// to (64 MiB by default; a run makes as many passes as its rows need). For tests.
    pub fn with_pass_bytes(mut self, bytes: usize) -> ExportJob {
        self.pass_bytes = bytes;
        self
    }

    /// This job, stopping where `hook` says (the crash tests' seam; see `export/hook.rs`).
    pub fn with_crash_hook(mut self, hook: CrashHook) -> ExportJob {
        self.crash_hook = hook;
        self
    }

    /// The files the last run could not bring up to date.
    pub fn problems(&self) -> Vec<FileProblem> {
        let problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        problems.iter().flatten().cloned().collect()
    }

    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    /// Brings both files up to date with the store and returns what it did. Blocking (file I/O,
    /// fsync, redb reads): call it from `spawn_blocking` on the async runtime.
    ///
    /// Cost: proportional to the rows written since the last run, plus a constant (two
    /// checkpoint reads, a `stat` and a read of at most [`TAIL_BYTES`] per file); a file found
    /// changed or shrunk is rebuilt in full, with a warning in the log.
    ///
    /// Each file is exported on its own, both at once (on this thread and a scoped one): one
    /// that fails is reported in its [`FileReport`] (and
    /// in [`ExportJob::problems`], and logged once per new problem) while the other goes on.
    /// `Err` only when the store cannot be read at all.
    pub fn run(&self) -> Result<ExportReport, ExportError> {
        // The mutex guards no data, only "one run at a time"; a run that panicked left the
        // files in a state the next run recovers from, so a poisoned lock is taken as is.
        let _running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let start = Instant::now();
        // The two files share nothing but the store (each reads its own snapshot and keeps its
        // own checkpoint): they are written at once, on this thread and one more.
        let (outcomes, ops) = std::thread::scope(|scope| {
            let ops = scope.spawn(|| self.run_file(ExportFile::Ops, &self.crash_hook));
            let outcomes = self.run_file(ExportFile::Outcomes, &self.crash_hook);
            let ops = ops
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (outcomes, ops)
        });
        let (outcomes, ops) = (outcomes?, ops?);
        let report = ExportReport {
            outcomes,
            ops,
            duration_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        tracing::debug!(
            outcomes_rows = report.outcomes.rows_written,
            ops_rows = report.ops.rows_written,
            duration_ms = report.duration_ms,
            "export run"
        );
        Ok(report)
    }

    /// Exports one file, recording its problem (or its recovery) for `/healthz`.
    fn run_file(&self, file: ExportFile, hook: &hook::Hook) -> Result<FileReport, ExportError> {
        let path = self.out_dir.join(file.relative_path());
        if let Some(problem) = self.still_paused(file, &path) {
            // Nothing changed since the pause: reading the tail again (up to 256 MiB a run,
            // with a warning each time) would find the same foreign bytes.
            return Ok(self.problem_report(file, &path, &problem));
        }
        let adopter = self
            .adopter
            .as_ref()
            .filter(|_| file == ExportFile::Outcomes);
        // Committed before the run reads its snapshot: in the file once the run succeeds.
        let before = self.store.last_seq();
        let result = file::export(
            &self.store,
            &self.out_dir,
            file,
            hook,
            adopter,
            self.pass_bytes,
        );
        let index = file.index();
        if let (Ok(report), Ok(before)) = (&result, before)
            && report.brought_up_to_date()
        {
            self.covered[index].fetch_max(before, Ordering::AcqRel);
        }
        let mut problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut problems[index];
        let error = match result {
            Ok(report) => {
                if slot.take().is_some() {
                    tracing::info!(file = file.relative_path(), "export file up to date again");
                }
                return Ok(report);
            }
            Err(e) => e,
        };
        if let ExportError::Store(store_error) = &error {
            // The database is failing: both files fail alike, and the store recovers itself.
            if self.store.note_error(store_error).is_none() {
                return Err(error);
            }
        }
        let paused = matches!(error, ExportError::Paused { .. });
        let message = self.without_dir(&error.to_string());
        let paused_as = paused.then(|| FileState::of(&path)).flatten();
        // Logged when the problem is new or changes: a periodic run would repeat it every time.
        let problem = match slot {
            Some(problem) if problem.error == message => {
                problem.paused_as = paused_as;
                problem.clone()
            }
            _ => {
                tracing::error!(file = file.relative_path(), paused, error = %error, "export file not brought up to date");
                slot.insert(FileProblem {
                    file: file.relative_path(),
                    paused,
                    error: message,
                    since_ms: crate::model::now_ms(),
                    paused_as,
                })
                .clone()
            }
        };
        drop(problems);
        Ok(self.problem_report(file, &path, &problem))
    }

    /// The file's pause, when nothing changed since it was found: the file is as it was then
    /// (a file put back as the export wrote it is looked at again), and the copy kept aside is
    /// still there.
    fn still_paused(&self, file: ExportFile, path: &Path) -> Option<FileProblem> {
        let problem = self.problems.lock().unwrap_or_else(PoisonError::into_inner)[file.index()]
            .clone()
            .filter(|p| p.paused)?;
        let same = problem.paused_as.is_some() && problem.paused_as == FileState::of(path);
        (same && matches!(file::kept_aside(path), Ok(Some(_)))).then_some(problem)
    }

    /// The report of a run that did not bring `file` (at `path`) up to date, for `problem`.
    fn problem_report(&self, file: ExportFile, path: &Path, problem: &FileProblem) -> FileReport {
        let checkpoint = self.store.checkpoint(file.name()).unwrap_or_default();
        FileReport {
            path: path.display().to_string(),
            action: if problem.paused {
                Action::Paused
            } else {
                Action::Failed
            },
            reason: None,
            rows_written: 0,
            bytes_written: 0,
            bytes_truncated: 0,
            lines_taken_in: 0,
            checkpoint: checkpoint.into(),
            error: Some(problem.error.clone()),
            more: false,
        }
    }

    /// `text` with the export directory left out of its paths (`/healthz` is open to anyone
    /// who can reach the port).
    fn without_dir(&self, text: &str) -> String {
        let mut dir = self.out_dir.display().to_string();
        if dir.is_empty() {
            return text.to_owned();
        }
        if !dir.ends_with('/') {
            dir.push('/');
        }
        text.replace(&dir, "")
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(action: Action, rows: u64, reason: Option<&str>, more: bool) -> FileReport {
        FileReport {
            path: "_kb/outcomes.jsonl".into(),
            action,
            reason: reason.map(str::to_owned),
            rows_written: rows,
            bytes_written: rows * 100,
            bytes_truncated: 0,
            lines_taken_in: 0,
            checkpoint: Checkpoint::default().into(),
            error: None,
            more,
        }
    }

    /// A run's passes as one report: a file replaced and rebuilt by a later pass counts that
    /// pass's rows, and a pass that had to wait leaves its reason and a run not up to date (at
    /// first the first pass's action and reason stood for the run: a review's).
    #[test]
    fn passes_add_up_to_what_the_run_did() {
        let appended = || pass(Action::Appended, 10, None, true);
        let rebuilt = appended().followed_by(pass(Action::Rebuilt, 25, Some("missing"), false));
        assert_eq!(
            (rebuilt.action, rebuilt.rows_written, rebuilt.bytes_written),
            (Action::Rebuilt, 25, 2500)
        );
        assert_eq!(rebuilt.reason.as_deref(), Some("missing"));
        assert!(rebuilt.brought_up_to_date());

        let wait = "rows another writer appended wait: more is being appended";
        let stopped = appended().followed_by(pass(Action::Unchanged, 0, Some(wait), false));
        assert_eq!(
            (stopped.action, stopped.rows_written),
            (Action::Appended, 10)
        );
        assert_eq!(stopped.reason.as_deref(), Some(wait));
        assert!(!stopped.brought_up_to_date());

        let cut = pass(Action::Appended, 10, Some("cut 7 bytes"), true);
        let whole = cut.followed_by(pass(Action::Appended, 5, None, false));
        assert_eq!((whole.rows_written, whole.bytes_written), (15, 1500));
        assert_eq!(whole.reason.as_deref(), Some("cut 7 bytes"));
        assert!(whole.brought_up_to_date());
    }
}
