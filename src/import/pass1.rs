//! Pass 1 of the import: the audit rows' identities (to find the verdict files no row matches)
//! and, with `strict`, a check of every line, while other threads read the verdict files.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use super::lines::{self, Line, Repeats, RepeatsFinder, parse_object_line, parse_row};
use super::report::{ImportError, ImportReport, LegacySource, io_error};
use super::spill::{SpillReader, SpillWriter, Spilled};
use super::verdicts::{self, Identity};
use super::{LegacyDir, LegacyFile, Progress, Unit};
use crate::model::claims::MAX_CLAIMS;

/// What pass 1 found, for pass 2.
pub(super) struct Found {
    /// The verdict files an audit row matches, by identity: where their JSON is in `spill`.
    pub matched: HashMap<Identity, Spilled>,
    /// The verdict files no audit row matches, by `audited_at`: `(audited_at, JSON in
    /// `spill`)`.
    pub waiting: VecDeque<(String, Spilled)>,
    /// The verdict files' texts.
    pub spill: SpillReader,
    /// With `strict`, the malformed lines (pass 2 would find them again as it reads, so they
    /// are not in the import's report).
    pub line_problems: ImportReport,
    /// The lines of each file that may occur in it more than once, for its import keys.
    pub outcomes_repeats: Repeats,
    pub ops_repeats: Repeats,
}

/// Pass 1: reads the lines of `dir` for the lines each file repeats and checks them (with
/// `strict`, all of them; else only what can be an audit row) while `verdict_files` are read
/// on other threads, and sorts the verdict files; the verdict files' problems go to `report`.
pub(super) fn run(
    dir: &LegacyDir,
    verdict_files: Vec<PathBuf>,
    spill_dir: &Path,
    strict: bool,
    report: &mut ImportReport,
    progress: &mut dyn Progress,
) -> Result<Found, ImportError> {
    let mut line_problems = ImportReport::default();
    let check_bytes = dir.outcomes.len + dir.ops.len;
    let spill = SpillWriter::create_in(spill_dir).map_err(io_error(spill_dir))?;
    let reads = FileReads {
        done: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        spill,
        max_bytes: dir.max_line,
    };
    let (audit_rows, outcomes_repeats, ops_repeats, read) = std::thread::scope(|scope| {
        let lanes = reads.start(scope, &verdict_files);
        // Should the checks fail (or panic), the lanes stop early instead of reading on.
        let _stop = StopOnDrop(&reads.stop);
        progress.phase("checking", check_bytes, Unit::Bytes);
        let (audit_rows, outcomes_repeats) =
            check_outcomes(&dir.outcomes, strict, &mut line_problems, progress)?;
        let ops_repeats = check_ops(&dir.ops, strict, &mut line_problems, progress)?;
        let n_files = verdict_files.len() as u64;
        progress.phase("verdict files", n_files, Unit::Files);
        Ok::<_, ImportError>((
            audit_rows,
            outcomes_repeats,
            ops_repeats,
            reads.finish(lanes, progress),
        ))
    })?;
    let (matched, waiting) =
        sort_verdict_files(&verdict_files, read, &audit_rows, spill_dir, report)?;
    let spill = reads.spill.finish().map_err(io_error(spill_dir))?;
    Ok(Found {
        matched,
        waiting,
        spill,
        line_problems,
        outcomes_repeats,
        ops_repeats,
    })
}

/// Pass 1 over `outcomes.jsonl`: the identities of its audit rows and the lines it repeats;
/// with `strict`, every line is checked. Without it only lines that can be audit rows are parsed: a JSON string `audit`
/// is written either as the bytes `"audit"` or with a `\u` escape. (A missed audit row would
/// have its verdict file taken for one without a row, and the file's JSON lost to the
/// verdict made from the row.)
fn check_outcomes(
    file: &LegacyFile,
    strict: bool,
    report: &mut ImportReport,
    progress: &mut dyn Progress,
) -> Result<(HashSet<Identity>, Repeats), ImportError> {
    let mut audit_rows = HashSet::new();
    let mut repeats = RepeatsFinder::default();
    file.for_each_line(progress, |line| {
        if line.is_blank() {
            return Ok(());
        }
        if skip_too_long(line, strict, report, LegacySource::Outcomes, &file.path) {
            return Ok(());
        }
        repeats.add(line.bytes);
        let may_be_audit = contains(line.bytes, b"\"audit\"") || contains(line.bytes, b"\\u");
        if !(strict || may_be_audit) {
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
                report.reject(
                    LegacySource::Outcomes,
                    &file.path,
                    Some(line.number),
                    message,
                );
            }
            Err(_) => {}
        }
        Ok(())
    })?;
    Ok((audit_rows, repeats.finish()))
}

/// Whether `line` is over the limit, so that pass 1 reads no further into it; with `strict` it
/// is rejected here (without, pass 2 rejects it as it does every malformed line).
fn skip_too_long(
    line: &Line<'_>,
    strict: bool,
    report: &mut ImportReport,
    source: LegacySource,
    path: &Path,
) -> bool {
    let Some(why) = line.too_long() else {
        return false;
    };
    if strict {
        report.reject(source, path, Some(line.number), lines::describe(line, &why));
    }
    true
}

/// Pass 1 over `ops.jsonl`: the lines it repeats; with `strict`, every line must be a JSON
/// object.
fn check_ops(
    file: &LegacyFile,
    strict: bool,
    report: &mut ImportReport,
    progress: &mut dyn Progress,
) -> Result<Repeats, ImportError> {
    let mut repeats = RepeatsFinder::default();
    file.for_each_line(progress, |line| {
        if line.is_blank() {
            return Ok(());
        }
        if skip_too_long(line, strict, report, LegacySource::Ops, &file.path) {
            return Ok(());
        }
        repeats.add(line.bytes);
        if strict && let Err(why) = parse_object_line(line.bytes) {
            let message = lines::describe(line, &why);
            report.reject(LegacySource::Ops, &file.path, Some(line.number), message);
        }
        Ok(())
    })?;
    Ok(repeats.finish())
}

/// Sorts what was read of every verdict file (`read`, in `files` order): the verdicts an audit
/// row matches (by identity, to enrich that row's verdict) and the ones none does, by
/// `audited_at` (then by file name); unreadable or invalid files are reported. Their text
/// waits in the spill file until pass 2 stores them (parsed again there: cheaper than a second
/// read of the file, since one open costs tens of microseconds).
#[expect(
    clippy::type_complexity,
    reason = "a private pair of lookups, named at the call"
)]
fn sort_verdict_files(
    files: &[PathBuf],
    read: Vec<FileRead>,
    audit_rows: &HashSet<Identity>,
    spill_dir: &Path,
    report: &mut ImportReport,
) -> Result<(HashMap<Identity, Spilled>, VecDeque<(String, Spilled)>), ImportError> {
    assert_eq!(read.len(), files.len(), "every verdict file was read");
    let mut matched = HashMap::new();
    let mut orphans = Vec::new();
    for (path, read) in files.iter().zip(read) {
        report.verdict_files.read += 1;
        match read {
            Ok(found) => {
                if found.more_claims {
                    report.warn(
                        path,
                        None,
                        format!(
                            "kept whole, but it holds more than {MAX_CLAIMS} distinct claims: \
                             the first {MAX_CLAIMS} are indexed for neighbours (its claims' \
                             texts before its claim_hashes)"
                        ),
                    );
                }
                if audit_rows.contains(&found.identity) {
                    matched.insert(found.identity, found.spilled);
                } else {
                    orphans.push((found.audited_at, path, found.spilled));
                }
            }
            Err(verdicts::FileProblem::Io(e)) => return Err(io_error(path)(e)),
            Err(verdicts::FileProblem::Spill(e)) => return Err(io_error(spill_dir)(e)),
            Err(e) => report.reject(LegacySource::VerdictFiles, path, None, e.to_string()),
        }
    }
    orphans.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let waiting = orphans
        .into_iter()
        .map(|(audited_at, _, text)| (audited_at, text))
        .collect();
    Ok((matched, waiting))
}

/// One verdict file read and parsed: the verdict's identity, its `audited_at` and where its
/// JSON went.
type FileRead = Result<FileFound, verdicts::FileProblem>;

/// A verdict file read and valid.
struct FileFound {
    identity: Identity,
    audited_at: String,
    /// Where its text went.
    spilled: Spilled,
    /// It holds more claims than are indexed.
    more_claims: bool,
}

/// The verdict files read and parsed on one thread per core, at most 8 (opening a file costs
/// microseconds, most of it in the kernel), in the background of pass 1's line checks.
struct FileReads {
    /// Files read so far, for the progress.
    done: AtomicU64,
    /// Set when the import stops before the reads are needed: the lanes stop early.
    stop: AtomicBool,
    /// Where the lanes put the texts.
    spill: SpillWriter,
    /// Longest verdict file read.
    max_bytes: usize,
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
                        let read = verdicts::read_file(path, self.max_bytes).and_then(
                            |(v, more_claims)| {
                                let spilled = self
                                    .spill
                                    .append(&v.raw_json)
                                    .map_err(verdicts::FileProblem::Spill)?;
                                Ok(FileFound {
                                    identity: verdicts::identity_of(&v),
                                    audited_at: v.audited_at,
                                    spilled,
                                    more_claims,
                                })
                            },
                        );
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}
