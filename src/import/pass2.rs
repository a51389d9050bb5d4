//! Pass 2 of the import: every line of the legacy files becomes a put, in file order, with the
//! verdict files no row matches put among the rows by `audited_at`.

use std::collections::VecDeque;

use foldhash::HashMap;
use serde_json::{Map, Value};

use super::lines::{
    self, ImportKeys, OPS_TAG, OUTCOMES_TAG, Repeats, RowHead, parse_object_line, parse_row,
};
use super::pass1::Found;
use super::pipeline::{Batch, CHUNK, PutKind};
use super::report::{ImportError, ImportReport, LegacySource, io_error};
use super::spill::{SpillReader, Spilled};
use super::verdicts::{self, Identity};
use super::{LegacyDir, LegacyFile, Progress, Unit};
use crate::export::{ExportFile, RowsHeld};
use crate::model::{ObservedOp, OutcomeRow, Verdict, now_ms};
use crate::store::{NewEvent, NewOutcome, NewVerdict, Put, Record, Store};

/// Pass 2: writes the lines of `dir` and the verdict files pass 1 `found`, committing every
/// `batch_size` puts; the counts go to `report`.
pub(super) fn run(
    store: &Store,
    dir: &LegacyDir,
    found: Found,
    batch_size: usize,
    report: &mut ImportReport,
    progress: &mut dyn Progress,
) -> Result<(), ImportError> {
    progress.phase("importing", dir.outcomes.len + dir.ops.len, Unit::Bytes);
    // Read before anything is written: the lines each file starts with that the database's
    // export writes first, byte for byte, are rows it holds already.
    let held_outcomes = rows_held(store, &dir.outcomes, ExportFile::Outcomes, report);
    let held_ops = rows_held(store, &dir.ops, ExportFile::Ops, report).len;
    std::thread::scope(|scope| {
        let commit_every = batch_size.max(1);
        let chunk = CHUNK.min(commit_every);
        let mut batch = Batch::start(scope, store.bulk_writer(), chunk, commit_every);
        if let Some(n) = store.values_before_dictionary() {
            // Puts are at least as many values as that: one verdict is up to three.
            batch = batch.first_commit_after(usize::try_from(n).unwrap_or(usize::MAX));
        }
        let mut pass = Pass2 {
            batch,
            report,
            matched: found.matched,
            orphans: found.waiting,
            spill: found.spill,
            spill_dir: super::spill::dir_of(store.path()),
            now: now_ms(),
        };
        pass.outcomes(
            &dir.outcomes,
            found.outcomes_repeats,
            held_outcomes,
            progress,
        )?;
        pass.put_orphans_audited_before(None)?;
        pass.ops(&dir.ops, found.ops_repeats, held_ops, progress)?;
        pass.batch.finish(pass.report)
    })
}

/// How many bytes `file` starts with that are rows the database holds already, in the
/// order and bytes its export writes them (`export::rows_held`). A legacy directory is often
/// the one the service exports into: besides the lines an earlier import stored (which their
/// import keys would find again), it then holds rows the service received and rows it took in
/// from another writer, which no import key names, and a second import stored them again (a
/// review). 0, with a warning, when the comparison cannot be made: the import keys alone
/// decide then, as before.
fn rows_held(
    store: &Store,
    file: &LegacyFile,
    kind: ExportFile,
    report: &mut ImportReport,
) -> RowsHeld {
    crate::export::rows_held(store, &file.path, kind, file.len).unwrap_or_else(|e| {
        report.warn(
            &file.path,
            None,
            format!("not compared with the rows the database holds ({e}): each line is looked up by its import key"),
        );
        RowsHeld::default()
    })
}

/// Pass 2 under way: where its puts go and where they are counted.
struct Pass2<'r> {
    batch: Batch,
    report: &'r mut ImportReport,
    /// The verdict files an audit row matches, by identity, until that row takes its file.
    matched: HashMap<Identity, Spilled>,
    /// Verdict files no audit row matches, `(audited_at, JSON)` by `audited_at`, waiting for
    /// their place in seq order.
    orphans: VecDeque<(String, Spilled)>,
    /// The verdict files' texts, and the directory it is in (for its errors).
    spill: SpillReader,
    spill_dir: &'r std::path::Path,
    /// The receipt time of every record the import makes.
    now: u64,
}

impl Pass2<'_> {
    fn push(&mut self, put: Put, kind: PutKind) -> Result<(), ImportError> {
        self.batch.push(put, kind, self.report)
    }

    /// Stores the waiting verdicts audited before `audited_at` (all of them for `None`).
    /// ISO 8601 timestamps of one writer compare as strings.
    fn put_orphans_audited_before(&mut self, audited_at: Option<&str>) -> Result<(), ImportError> {
        while let Some((at, _)) = self.orphans.front() {
            if audited_at.is_some_and(|limit| at.as_str() >= limit) {
                break;
            }
            let Some((_, spilled)) = self.orphans.pop_front() else {
                break;
            };
            let text = self.spill.read(spilled).map_err(io_error(self.spill_dir))?;
            // Validated when read in pass 1.
            let Ok((verdict, _)) = Verdict::parse_history(&text) else {
                continue;
            };
            let record = Record::Verdict(NewVerdict::new(verdict, None, None, self.now));
            self.push(Put::from(record), PutKind::VerdictWithoutRow)?;
        }
        Ok(())
    }

    /// Pass 2 over `outcomes.jsonl`, whose repeated lines pass 1 found.
    fn outcomes(
        &mut self,
        file: &LegacyFile,
        repeats: Repeats,
        held: RowsHeld,
        progress: &mut dyn Progress,
    ) -> Result<(), ImportError> {
        let mut keys = ImportKeys::with_repeats(OUTCOMES_TAG, repeats);
        let mut end = 0;
        file.for_each_line(progress, |line| {
            self.report.outcomes.read += 1;
            let start = end;
            end += line.consumed;
            if line.complete && end <= held.len {
                return self.held_outcome(&file.path, line, &mut keys);
            }
            if line.is_blank() {
                self.report.outcomes.blank += 1;
                return Ok(());
            }
            self.warn_zero_filled(&file.path, line);
            let parsed = match line.too_long() {
                Some(why) => Err(why),
                None => parse_row(line.bytes),
            };
            let (text, head) = match parsed {
                Ok(parsed) => parsed,
                Err(why) => {
                    let message = lines::describe(line, &why);
                    let number = Some(line.number);
                    let source = LegacySource::Outcomes;
                    self.report.reject(source, &file.path, number, message);
                    return Ok(());
                }
            };
            let is_audit = head.kind.as_deref() == Some("audit");
            let (identity, audited_at) = if is_audit {
                (verdicts::head_identity(&head), head.audited_at.clone())
            } else {
                (None, None)
            };
            let RowHead {
                sig_hash,
                kind,
                repo,
                ..
            } = head;
            let report = &mut *self.report;
            let row = OutcomeRow::from_legacy(text, sig_hash, kind, repo.as_deref(), |message| {
                report.warn(&file.path, Some(line.number), message);
            });
            // The namespace the row goes into, for its verdict's.
            let row_repo = row.repo.clone();
            if let Some(audited_at) = &audited_at {
                self.put_orphans_audited_before(Some(audited_at))?;
            }
            // Past the checkpoint of the file the service exports into, a line is one its
            // export takes in: keyed as the take-in keys it (its bytes and where they are), so
            // that neither stores what the other did (a crash, the legacy writers appending,
            // then this import: each stored the lines under its own keys, a review's). Its
            // occurrence is still counted, for the lines after it.
            let own_key = keys.key(line.bytes);
            let import_key = match held.checkpoint {
                Some(checkpoint) if start >= checkpoint => {
                    super::appended::key(line.bytes, start + line.zero_filled as u64)
                }
                _ => own_key,
            };
            let put = Put {
                record: Record::Outcome(NewOutcome {
                    row,
                    received_at_ms: self.now,
                }),
                import_key: Some(import_key),
                client_key: None,
            };
            self.push(put, PutKind::Outcome)?;
            if is_audit {
                self.put_audit_verdict(text, identity, &row_repo, &file.path, line.number)?;
            }
            Ok(())
        })
    }

    /// The verdict of the audit row `text` (line `number` of `path`, in the namespace
    /// `row_repo`): its verdict file's (found by `identity` among the matched ones) when that
    /// names the row's namespace, else one made from the row; a verdict stored already is a
    /// duplicate of itself.
    fn put_audit_verdict(
        &mut self,
        text: &str,
        identity: Option<Identity>,
        row_repo: &crate::model::Repo,
        path: &std::path::Path,
        number: u64,
    ) -> Result<(), ImportError> {
        let file_text = identity
            .and_then(|id| self.matched.remove(&id))
            .map(|spilled| self.spill.read(spilled))
            .transpose()
            .map_err(io_error(self.spill_dir))?;
        match audit_verdict(text, file_text, row_repo) {
            Ok((verdict, put_kind, note)) => {
                if let Some(note) = note {
                    self.report.warn(path, Some(number), note);
                }
                let record = Record::Verdict(NewVerdict::new(verdict, None, None, self.now));
                self.push(Put::from(record), put_kind)
            }
            Err(message) => {
                self.report.verdicts.not_made += 1;
                self.report.warn(
                    path,
                    Some(number),
                    format!("audit row kept, but no verdict could be made from it: {message}"),
                );
                Ok(())
            }
        }
    }

    /// Says that `line` started with NUL bytes, which are not kept (`Line::zero_filled`).
    fn warn_zero_filled(&mut self, path: &std::path::Path, line: &lines::Line<'_>) {
        if line.zero_filled > 0 {
            self.report.warn(
                path,
                Some(line.number),
                format!(
                    "{} NUL bytes before the line left out (a file's tail a crash left \
                     zero-filled, appended after?); the line after them kept",
                    line.zero_filled
                ),
            );
        }
    }

    /// An outcome row the database holds already ([`rows_held`]): not stored again, counted as
    /// a duplicate, as its import key would have found it; keyed all the same, so that the
    /// lines after get the keys they always had. An audit row's verdict is put as ever (a
    /// duplicate of itself when stored): the database may hold the row without it (a row
    /// posted to `POST /outcomes` makes none), and its verdict file would be lost (a review).
    fn held_outcome(
        &mut self,
        path: &std::path::Path,
        line: &lines::Line<'_>,
        keys: &mut ImportKeys,
    ) -> Result<(), ImportError> {
        keys.key(line.bytes);
        self.report.outcomes.duplicates += 1;
        let Ok((text, head)) = parse_row(line.bytes) else {
            return Ok(());
        };
        if head.kind.as_deref() == Some("audit") {
            if let Some(audited_at) = &head.audited_at {
                self.put_orphans_audited_before(Some(audited_at))?;
            }
            let identity = verdicts::head_identity(&head);
            let row_repo = crate::model::Repo::of_legacy_warning(head.repo.as_deref(), |_| {});
            self.put_audit_verdict(text, identity, &row_repo, path, line.number)?;
        }
        Ok(())
    }

    /// Pass 2 over `ops.jsonl`, whose repeated lines pass 1 found.
    fn ops(
        &mut self,
        file: &LegacyFile,
        repeats: Repeats,
        held: u64,
        progress: &mut dyn Progress,
    ) -> Result<(), ImportError> {
        let mut keys = ImportKeys::with_repeats(OPS_TAG, repeats);
        let mut end = 0;
        file.for_each_line(progress, |line| {
            self.report.ops.read += 1;
            end += line.consumed;
            if line.complete && end <= held {
                // Keyed all the same, so that the lines after get the keys they always had.
                keys.key(line.bytes);
                self.report.ops.duplicates += 1;
                return Ok(());
            }
            if line.is_blank() {
                self.report.ops.blank += 1;
                return Ok(());
            }
            self.warn_zero_filled(&file.path, line);
            let number = Some(line.number);
            let text = match line
                .too_long()
                .map_or_else(|| lines::as_text(line.bytes), Err)
            {
                Ok(text) => text,
                Err(why) => {
                    let message = lines::describe(line, &why);
                    self.report
                        .reject(LegacySource::Ops, &file.path, number, message);
                    return Ok(());
                }
            };
            let report = &mut *self.report;
            let warned = |message| report.warn(&file.path, Some(line.number), message);
            let op = match ObservedOp::from_line_warning(text, warned) {
                Ok(op) => op,
                Err(e) => match parse_object_line(line.bytes) {
                    Err(why) => {
                        let message = lines::describe(line, &why);
                        self.report
                            .reject(LegacySource::Ops, &file.path, number, message);
                        return Ok(());
                    }
                    Ok((_, obj)) => {
                        self.report.warn(
                            &file.path,
                            Some(line.number),
                            format!("line kept, but only partly indexed: {}", e.message),
                        );
                        ObservedOp::from_line_lenient(&obj)
                    }
                },
            };
            let put = Put {
                record: Record::Event(NewEvent::new(&op, text.to_owned(), None, None, self.now)),
                import_key: Some(keys.key(line.bytes)),
                client_key: None,
            };
            self.push(put, PutKind::Op)
        })
    }
}

/// The verdict of an audit row (`text`): the matching verdict file's (`file_text`, taken from
/// the matched files by the row's identity), else one made from the row's fields, the one case
/// that parses the row in full. A file's verdict is taken once; a second row of the same
/// identity makes a duplicate anyway.
fn audit_verdict(
    text: &str,
    file_text: Option<String>,
    row_repo: &crate::model::Repo,
) -> Result<(Verdict, PutKind, Option<String>), String> {
    let mut note = None;
    if let Some(file_text) = file_text
        && let Ok((mut verdict, _)) = Verdict::parse_history(&file_text)
    {
        // In the row's namespace, as the take-in does (`appended.rs`).
        if verdicts::in_row_namespace(&mut verdict, row_repo) {
            return Ok((verdict, PutKind::VerdictFromFile, None));
        }
        note = Some(format!(
            "its verdict file names the repository {:?} and the row {:?}: the verdict is \
             made from the row, in the row's namespace",
            verdict.repo.name().unwrap_or(""),
            row_repo.name().unwrap_or("")
        ));
    }
    let row = crate::jsjson::parse_js::<Map<String, Value>>(text).map_err(|e| e.to_string())?;
    verdicts::verdict_from_row(&row)
        .map(|v| (v, PutKind::VerdictFromRow, note))
        .map_err(|e| e.message)
}
