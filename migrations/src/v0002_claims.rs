//! Schema version 2: the claims index, `(claim_hash, verdict seq) -> sig_hash`, backfilled from
//! the verdicts a version-1 file already holds. Frozen: the value layout and the claim hash below
//! are those of version 2, whatever later versions do.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::MigrateError;
use crate::v0001_initial::VERDICTS;

pub const CLAIMS: TableDefinition<(u64, u64), &str> = TableDefinition::new("claims");

const VERSION: u64 = 2;

/// Rows between two progress reports of the backfill.
const PROGRESS_EVERY: u64 = 10_000;

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    let verdicts = txn.open_table(VERDICTS)?;
    let mut claims = txn.open_table(CLAIMS)?;
    let mut n_rows = 0u64;
    for row in verdicts.iter()? {
        let (key, value) = row?;
        let (sig_hash, seq) = key.value();
        let verdict = frozen_verdict_v1::decode(value.value()).map_err(|message| {
            MigrateError::CorruptValue {
                version: VERSION,
                table: "verdicts",
                seq,
                message,
            }
        })?;
        for hash in claim_hashes_of(&verdict.raw_json) {
            claims.insert((hash, seq), sig_hash)?;
        }
        n_rows += 1;
        if n_rows.is_multiple_of(PROGRESS_EVERY) {
            on_progress(n_rows);
        }
    }
    on_progress(n_rows);
    Ok(())
}

/// Claim hashes of a stored verdict's JSON: its `claims` (strings, or objects with a string
/// `text`) and its explicit `claim_hashes` (16 hex digits). Anything else is not a claim.
fn claim_hashes_of(raw_json: &str) -> Vec<u64> {
    let Ok(serde_json::Value::Object(verdict)) = serde_json::from_str(raw_json) else {
        return Vec::new();
    };
    let mut hashes = Vec::new();
    if let Some(serde_json::Value::Array(claims)) = verdict.get("claims") {
        for claim in claims {
            let text = match claim {
                serde_json::Value::String(s) => Some(s.as_str()),
                serde_json::Value::Object(o) => o.get("text").and_then(|t| t.as_str()),
                _ => None,
            };
            hashes.extend(text.and_then(claim_hash_v2));
        }
    }
    if let Some(serde_json::Value::Array(explicit)) = verdict.get("claim_hashes") {
        hashes.extend(
            explicit
                .iter()
                .filter_map(|h| h.as_str())
                .filter_map(parse_hex16),
        );
    }
    hashes.sort_unstable();
    hashes.dedup();
    hashes
}

fn parse_hex16(s: &str) -> Option<u64> {
    (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// The version-2 claim hash: the first 8 bytes (16 hex digits) of SHA-256 of the claim text
/// after trimming, lowercasing and collapsing runs of whitespace to one space, where whitespace
/// is JavaScript's (`\s`), so a TypeScript client computes the same value with
/// `text.trim().toLowerCase().replace(/\s+/g, " ")`. `None` for a claim that is all whitespace.
pub fn claim_hash_v2(text: &str) -> Option<u64> {
    // Lowercase the whole text first: the final-sigma rule (JS and Rust agree) needs context.
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(is_js_whitespace)
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return None;
    }
    let digest = Sha256::digest(words.join(" ").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Some(u64::from_be_bytes(first))
}

/// ECMAScript WhiteSpace and LineTerminator code points, the set `\s` and `trim` use.
fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// The verdict value as codec version 1 wrote it: a leading version byte, then bincode 2
/// (standard configuration) of [`frozen_verdict_v1::VerdictV1`].
pub mod frozen_verdict_v1 {
    use super::{Deserialize, Serialize};

    pub const CODEC_VERSION: u8 = 1;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct VerdictV1 {
        pub pr_number: u64,
        pub head_sha: String,
        pub audited_at: String,
        pub overall: String,
        pub one_liner: String,
        pub findings_block: u64,
        pub findings_warn: u64,
        pub findings_info: Option<u64>,
        pub audit_duration_ms: Option<f64>,
        pub received_at_ms: u64,
        pub raw_json: String,
    }

    pub fn decode(bytes: &[u8]) -> Result<VerdictV1, String> {
        let Some((&version, body)) = bytes.split_first() else {
            return Err("empty value".into());
        };
        if version != CODEC_VERSION {
            return Err(format!(
                "expected codec version {CODEC_VERSION}, found {version}"
            ));
        }
        let config = bincode::config::standard().with_limit::<{ 64 << 20 }>();
        let (value, used) =
            bincode::serde::decode_from_slice(body, config).map_err(|e| format!("bincode: {e}"))?;
        if used != body.len() {
            return Err(format!("{} trailing bytes", body.len() - used));
        }
        Ok(value)
    }

    /// Encodes as a version-1 writer did; tests use it to build version-1 files.
    pub fn encode(value: &VerdictV1) -> Vec<u8> {
        let mut out = vec![CODEC_VERSION];
        bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
            .expect("writing to a Vec cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v0001_initial::VERDICTS;
    use crate::{current_version, migrate};
    use redb::{Database, ReadableDatabase, ReadableTableMetadata};

    fn hex(h: u64) -> String {
        format!("{h:016x}")
    }

    #[test]
    fn claim_hash_normalises_case_and_whitespace() {
        let a = claim_hash_v2("Observer counts auditor events separately").unwrap();
        let b = claim_hash_v2("  observer\tcounts AUDITOR\n\n events\u{a0}separately ").unwrap();
        assert_eq!(a, b);
        // printf '%s' 'observer counts auditor events separately' | sha256sum | cut -c1-16
        assert_eq!(hex(a), "2939367c1eedc4ae");
        assert_eq!(claim_hash_v2(" \t\u{3000}"), None);
        assert_ne!(claim_hash_v2("a b"), claim_hash_v2("ab"));
    }

    #[test]
    fn claim_hash_known_value() {
        // printf '%s' 'deletes dead sidecar files' | sha256sum | cut -c1-16
        assert_eq!(
            hex(claim_hash_v2("Deletes dead  sidecar files").unwrap()),
            KNOWN_DELETES
        );
    }
    const KNOWN_DELETES: &str = "0988571ca2fc2cbe";

    #[test]
    fn claims_come_from_strings_objects_and_explicit_hashes() {
        let raw = r#"{"claims":["A b",{"text":"c","source":"x"},{"no_text":1},7],
                      "claim_hashes":["00000000000000ff","xyz","00000000000000FF"]}"#;
        let mut want = vec![
            claim_hash_v2("a b").unwrap(),
            claim_hash_v2("c").unwrap(),
            255,
        ];
        want.sort_unstable();
        assert_eq!(claim_hashes_of(raw), want);
        assert!(claim_hashes_of("not json").is_empty());
    }

    #[test]
    fn upgrade_from_a_version_1_file_backfills_claims() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("kb.redb")).unwrap();
        migrate(&db, Some(1), &mut |_, _| {}).unwrap();
        let verdict = |pr: u64, raw: &str| frozen_verdict_v1::VerdictV1 {
            pr_number: pr,
            head_sha: "0123456789abcdef0123456789abcdef01234567".into(),
            audited_at: "2026-04-01T09:15:13.330Z".into(),
            overall: "block".into(),
            one_liner: "x".into(),
            findings_block: 1,
            findings_warn: 0,
            findings_info: None,
            audit_duration_ms: Some(1500.0),
            received_at_ms: 0,
            raw_json: raw.into(),
        };
        let txn = db.begin_write().unwrap();
        {
            let mut verdicts = txn.open_table(VERDICTS).unwrap();
            let rows = [
                (("pr10-01234567", 1), verdict(10, r#"{"claims":["A","B"]}"#)),
                (
                    ("pr11-01234567", 5),
                    verdict(11, r#"{"claims":[{"text":"b"}]}"#),
                ),
                (("pr12-01234567", 9), verdict(12, r#"{"no":"claims"}"#)),
            ];
            for (key, value) in rows {
                verdicts
                    .insert(key, frozen_verdict_v1::encode(&value).as_slice())
                    .unwrap();
            }
        }
        txn.commit().unwrap();

        let mut reports = Vec::new();
        migrate(&db, Some(2), &mut |step, n| reports.push((step.version, n))).unwrap();
        assert_eq!(current_version(&db).unwrap(), 2);
        assert_eq!(reports, vec![(2, 3)]);

        let txn = db.begin_read().unwrap();
        let claims = txn.open_table(CLAIMS).unwrap();
        let b = claim_hash_v2("b").unwrap();
        let with_b: Vec<(u64, String)> = claims
            .range((b, 0)..=(b, u64::MAX))
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value().1, v.value().to_string())
            })
            .collect();
        assert_eq!(
            with_b,
            vec![(1, "pr10-01234567".into()), (5, "pr11-01234567".into())]
        );
        assert_eq!(claims.len().unwrap(), 3);
    }

    #[test]
    fn corrupt_verdict_aborts_the_step_and_leaves_version_1() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("kb.redb")).unwrap();
        migrate(&db, Some(1), &mut |_, _| {}).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(VERDICTS)
            .unwrap()
            .insert(("pr1-00000000", 3), &[9u8, 9, 9][..])
            .unwrap();
        txn.commit().unwrap();
        let err = migrate(&db, None, &mut |_, _| {}).unwrap_err();
        assert!(
            err.to_string()
                .contains("corrupt value in verdicts at seq 3"),
            "{err}"
        );
        assert_eq!(current_version(&db).unwrap(), 1);
    }
}
