//! A line another writer appended to the live `outcomes.jsonl` (a legacy auditor's
//! `appendVerdictToKbOutcomes`, a scenario runner that still appends) as the records the import
//! makes of it: the outcome row, its bytes kept, and for a `kind:"audit"` row the verdict made
//! from the row's fields. The export job takes such lines in (`export/adopt.rs`).

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
/// too long to index, say) are passed to `warn`.
pub fn outcome_line_puts(
    line: &[u8],
    offset: u64,
    now_ms: u64,
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
        let verdict = crate::jsjson::parse_js(text)
            .map_err(|e| e.to_string())
            .and_then(|row| verdict_from_row(&row).map_err(|e| e.message));
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
