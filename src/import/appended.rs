//! A line another writer appended to the live `outcomes.jsonl` (a legacy auditor's
//! `appendVerdictToKbOutcomes`, a scenario runner that still appends) as the records the import
//! makes of it: the outcome row, its bytes kept, and for a `kind:"audit"` row its verdict: its
//! verdict file's when the file is the same audit, else one made from the row's fields. The
//! export job takes such lines in (`export/adopt.rs`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::lines::{self, RowHead};
use super::verdicts::{Identity, verdict_from_row};
use crate::model::OutcomeRow;
use crate::store::{NewOutcome, NewVerdict, Put, Record, Store, StoreError};

/// Tag of an appended line's import key, beside the import's own (`o`, `e`).
pub const APPENDED_TAG: u8 = b'a';

/// The puts that store the outcome line `line` (without its `\n`), found at byte `offset` of
/// the file, received at `now_ms`; `Err` says why it is not a legacy outcome row. The row's
/// import key is its tag, the first 16 bytes of SHA-256 of the line and its offset: the same
/// line found again at the same place (a retry after a crash) stores nothing. Warnings (a key
/// too long to index, say) are passed to `warn`. An audit row's verdict is its verdict file's
/// among `files` (the legacy auditor writes `{pr}-{sha12}.json` there before it appends the
/// row), when that file is the same audit; else it is made from the row's fields.
pub fn outcome_line_puts(
    line: &[u8],
    offset: u64,
    now_ms: u64,
    files: Option<&mut VerdictFiles>,
    mut warn: impl FnMut(String),
) -> Result<Vec<Put>, String> {
    if line.len() > super::DEFAULT_MAX_LINE_BYTES {
        return Err(format!(
            "a line of {} bytes, longer than {} bytes",
            line.len(),
            super::DEFAULT_MAX_LINE_BYTES
        ));
    }
    let (text, head) = lines::parse_row(line).map_err(|why| why.to_string())?;
    let is_audit = head.kind.as_deref() == Some("audit");
    let from_file = match files {
        Some(files) if is_audit => files.verdict_of(&head, &mut warn),
        _ => None,
    };
    let RowHead {
        sig_hash,
        kind,
        repo,
        ..
    } = head;
    let row = OutcomeRow::from_legacy(text, sig_hash, kind, repo.as_deref(), &mut warn);
    let mut puts = vec![Put {
        record: Record::Outcome(NewOutcome {
            row,
            received_at_ms: now_ms,
        }),
        import_key: Some(key(line, offset)),
        client_key: None,
    }];
    if is_audit {
        // A verdict is known by its identity: found again, it is a duplicate of itself.
        let verdict = match from_file {
            Some(verdict) => Ok(verdict),
            None => crate::jsjson::parse_js(text)
                .map_err(|e| e.to_string())
                .and_then(|row| verdict_from_row(&row).map_err(|e| e.message)),
        };
        match verdict {
            Ok(verdict) => puts.push(Put::from(Record::Verdict(NewVerdict::new(
                verdict, None, None, now_ms,
            )))),
            Err(message) => warn(format!(
                "audit row kept, but no verdict could be made from it: {message}"
            )),
        }
    }
    Ok(puts)
}

/// The legacy auditor's verdict files, `LEGACY/_auditor/verdicts/{pr}-{sha12}.json`, as one
/// take-in run reads them for the audit rows it stores. Without them, an audit taken in while
/// the legacy auditor still ran had no claims and no findings, for good: the import found its
/// verdict stored already (a review's). Neither the directories nor a file are read through
/// symbolic links, nor a file past the size of a line; and a file is read at most twice a run
/// (to learn which audit it holds, then for the row of that audit), however many rows name it:
/// rows appended by a writer that names one large file on every line cost a read each
/// otherwise.
#[derive(Debug)]
pub struct VerdictFiles {
    dir: PathBuf,
    /// The audit each file read holds (`None`: absent, unreadable, or not a verdict).
    read: HashMap<PathBuf, Option<Identity>>,
    /// The audits whose verdict a file gave: a later row of one is a duplicate of it.
    given: HashSet<Identity>,
    /// Files read so far.
    reads: u64,
    /// Whether `_auditor` and its `verdicts` are real directories (not links), looked at once a
    /// run, as the import looks at its directories once: not two `lstat`s for every row.
    dirs_real: Option<bool>,
}

impl VerdictFiles {
    /// The verdict files beside `outcomes`, `LEGACY/_kb/outcomes.jsonl`.
    pub fn beside(outcomes: &Path) -> Option<VerdictFiles> {
        let legacy = outcomes.parent()?.parent()?;
        Some(VerdictFiles {
            dir: legacy.join("_auditor").join("verdicts"),
            read: HashMap::new(),
            given: HashSet::new(),
            reads: 0,
            dirs_real: None,
        })
    }

    /// Files read so far.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// The verdict of the audit row `head` from its file, when that file holds the same audit
    /// (`pr_number`, `head_sha`, `audited_at`: a re-audit overwrites it) in the row's
    /// namespace; `None` otherwise, and for a row whose audit a file gave this run already.
    fn verdict_of(
        &mut self,
        head: &RowHead,
        warn: &mut impl FnMut(String),
    ) -> Option<crate::model::Verdict> {
        let audit = super::verdicts::head_identity(head)?;
        if self.given.contains(&audit) {
            return None;
        }
        let pr = crate::model::verdict::whole_number(head.pr_number.as_ref()?)?;
        let sha12 = head.head_sha.as_deref()?.get(..12)?;
        if !sha12.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let path = self.dir.join(format!("{pr}-{sha12}.json"));
        if self
            .read
            .get(&path)
            .is_some_and(|holds| *holds != Some(audit))
        {
            return None;
        }
        let dir = &self.dir;
        let real = *self.dirs_real.get_or_insert_with(|| {
            dir.parent().is_some_and(|auditor| {
                crate::fsutil::require_real_dir(auditor).is_ok()
                    && crate::fsutil::require_real_dir(dir).is_ok()
            })
        });
        if !real {
            return None;
        }
        self.reads += 1;
        let mut verdict = match super::verdicts::read_file(&path, super::DEFAULT_MAX_LINE_BYTES) {
            Ok((verdict, _)) => verdict,
            Err(super::verdicts::FileProblem::Io(e))
                if e.kind() == std::io::ErrorKind::NotFound =>
            {
                self.read.insert(path, None);
                return None;
            }
            Err(problem) => {
                warn(format!(
                    "the verdict file {} is not read ({problem}): the verdict is made from the row",
                    path.display()
                ));
                self.read.insert(path, None);
                return None;
            }
        };
        let holds = super::verdicts::identity_of(&verdict);
        self.read.insert(path, Some(holds));
        if holds != audit {
            return None;
        }
        // In the row's namespace (`verdicts::in_row_namespace`). (The namespace the row goes
        // into: a `repo` that is not a valid name is none.)
        let row_repo = crate::model::Repo::of_legacy_warning(head.repo.as_deref(), |_| {});
        if !super::verdicts::in_row_namespace(&mut verdict, &row_repo) {
            return None;
        }
        self.given.insert(audit);
        Some(verdict)
    }
}

/// Whether `line`, found at byte `offset` of the file, was taken in from there before.
pub fn was_taken_in(store: &Store, line: &[u8], offset: u64) -> Result<bool, StoreError> {
    store.has_import_key(&key(line, offset))
}

/// The import key of `line` taken in from byte `offset` of the file: its tag, the first 16 bytes
/// of SHA-256 of the line and its offset (the import gives it to the lines after the export's
/// checkpoint of the file the service exports into, as the take-in would).
pub fn key(line: &[u8], offset: u64) -> Vec<u8> {
    let digest = Sha256::digest(line);
    let mut key = Vec::with_capacity(25);
    key.push(APPENDED_TAG);
    key.extend_from_slice(&digest[..16]);
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(audited_at: &str) -> String {
        format!(
            r#"{{"kind":"audit","sig_hash":"pr7-abcdef01","audited_at":"{audited_at}","pr_number":7,"head_sha":"abcdef0123456789abcdef0123456789abcdef01","overall":"approve","one_liner":"ok","ok_events":1,"total_events":1,"findings":{{"block":0,"warn":0,"info":0}},"elapsed_secs":1}}"#
        )
    }

    fn verdict_of(files: &mut VerdictFiles, line: &str) -> Option<crate::model::Verdict> {
        let (_, head) = lines::parse_row(line.as_bytes()).unwrap();
        files.verdict_of(&head, &mut |_| {})
    }

    /// A file is read to learn its audit, then once more for that audit's row: rows of other
    /// audits naming it, and the audit's own rows after the first, read nothing.
    #[test]
    fn a_verdict_file_is_read_at_most_twice_a_run() {
        let legacy = tempfile::tempdir().unwrap();
        let dir = legacy.path().join("_auditor/verdicts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(legacy.path().join("_kb")).unwrap();
        let verdict = r#"{"pr_number":7,"head_sha":"abcdef0123456789abcdef0123456789abcdef01","overall":"approve","one_liner":"ok","audited_at":"2026-06-01T00:00:00.000Z","claims":["adds a retry"],"metrics":{"findings_block":0,"findings_warn":0}}"#;
        std::fs::write(dir.join("7-abcdef012345.json"), verdict).unwrap();
        let mut files = VerdictFiles::beside(&legacy.path().join("_kb/outcomes.jsonl")).unwrap();
        for i in 0..50 {
            let at = format!("2026-06-02T00:00:{i:02}.000Z");
            assert!(verdict_of(&mut files, &row(&at)).is_none());
        }
        assert_eq!(files.reads(), 1);
        let same = row("2026-06-01T00:00:00.000Z");
        assert!(verdict_of(&mut files, &same).is_some());
        for _ in 0..50 {
            assert!(verdict_of(&mut files, &same).is_none(), "given already");
        }
        assert_eq!(files.reads(), 2);
        // A file that is not there is looked for once.
        std::fs::remove_file(dir.join("7-abcdef012345.json")).unwrap();
        let mut files = VerdictFiles::beside(&legacy.path().join("_kb/outcomes.jsonl")).unwrap();
        for _ in 0..50 {
            assert!(verdict_of(&mut files, &same).is_none());
        }
        assert_eq!(files.reads(), 1);
    }
}
