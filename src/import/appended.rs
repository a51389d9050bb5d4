//! A line another writer appended to the live `outcomes.jsonl` (a legacy auditor's
//! `appendVerdictToKbOutcomes`, a scenario runner that still appends) as the records the import
//! makes of it: the outcome row, its bytes kept, and for a `kind:"audit"` row its verdict: its
//! verdict file's when the file is the same audit, else one made from the row's fields. The
//! export job takes such lines in (`export/adopt.rs`).

use std::path::Path;

use sha2::{Digest, Sha256};

use super::lines::{self, RowHead};
use super::verdicts::verdict_from_row;
use crate::model::OutcomeRow;
use crate::store::{NewOutcome, NewVerdict, Put, Record, Store, StoreError};

/// Tag of an appended line's import key, beside the import's own (`o`, `e`).
pub const APPENDED_TAG: u8 = b'a';

/// The puts that store the outcome line `line` (without its `\n`), found at byte `offset` of
/// the file, received at `now_ms`; `Err` says why it is not a legacy outcome row. The row's
/// import key is its tag, the first 16 bytes of SHA-256 of the line and its offset: the same
/// line found again at the same place (a retry after a crash) stores nothing. Warnings (a key
/// too long to index, say) are passed to `warn`. An audit row's verdict is its verdict file's
/// in `verdict_dir` (the legacy auditor writes `{pr}-{sha12}.json` there before it appends the
/// row), when that file is the same audit; else it is made from the row's fields.
pub fn outcome_line_puts(
    line: &[u8],
    offset: u64,
    now_ms: u64,
    verdict_dir: Option<&Path>,
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
    let from_file = match verdict_dir {
        Some(dir) if is_audit => verdict_file_of(dir, &head, &mut warn),
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

/// The verdict of the audit row `head` from its file in `dir`, `{pr}-{sha12}.json` as the
/// legacy auditor names it, when that file holds the same audit (`pr_number`, `head_sha`,
/// `audited_at`: a re-audit overwrites it); `None` otherwise. Without it, an audit taken in
/// while the legacy auditor still ran had no claims and no findings, for good: the import
/// found its verdict stored already (a review's). The directory and the file are not read
/// through symbolic links, nor the file past the size of a line.
fn verdict_file_of(
    dir: &Path,
    head: &RowHead,
    warn: &mut impl FnMut(String),
) -> Option<crate::model::Verdict> {
    let pr = crate::model::verdict::whole_number(head.pr_number.as_ref()?)?;
    let sha12 = head.head_sha.as_deref()?.get(..12)?;
    if !sha12.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let auditor = dir.parent()?;
    if crate::fsutil::require_real_dir(auditor).is_err()
        || crate::fsutil::require_real_dir(dir).is_err()
    {
        return None;
    }
    let path = dir.join(format!("{pr}-{sha12}.json"));
    if !path.exists() {
        return None;
    }
    match super::verdicts::read_file(&path, super::DEFAULT_MAX_LINE_BYTES) {
        Ok((verdict, _)) => {
            // The same audit, and in the row's namespace: a file naming a repository the row
            // does not would put the verdict apart from its row (its PR's history in one
            // namespace, the row in another; a review's).
            let same =
                super::verdicts::identity_of(&verdict) == super::verdicts::head_identity(head)?;
            let row_repo = head.repo.as_deref().filter(|repo| !repo.is_empty());
            (same && verdict.repo.name() == row_repo).then_some(verdict)
        }
        Err(problem) => {
            warn(format!(
                "the verdict file {} is not read ({problem}): the verdict is made from the row",
                path.display()
            ));
            None
        }
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
