//! Schema version 5: repositories as namespaces, O(1) PR history counts, a one-lookup verdict
//! identity, client idempotency keys, and the table of the similar-claims text index.
//! Frozen: these definitions describe version-5 files forever.
//!
//! | table | key | value |
//! |---|---|---|
//! | `repos` / `repo_names` | name / id | id / name: named repositories get ids from 1; the default namespace is id 0 and is in neither |
//! | `by_sig` | `(repo, sig_hash, kind, seq)` | `()`: replaces `sig_index`, scoped to a repository |
//! | `verdict_ids` | `(repo, pr_number, head_sha, audited_at)` | verdict seq: the identity check is one lookup |
//! | `pr_verdicts` | `(repo, pr_number, seq)` | `()`: a PR's verdicts, newest first by reverse range |
//! | `prs` | `(repo, pr_number)` | `(approve, request_changes, block, last verdict seq)` |
//! | `pr_heads` | `(repo, pr_number, lowercase head_sha)` | `(approve, request_changes, block)` |
//! | `claim_hashes` | `(claim_hash, repo, verdict seq)` | `()`: replaces `claims` |
//! | `claim_terms` | `(term, repo, first claim doc)` | a block of up to 128 BM25 postings `(claim doc, term count, claim length)`, bincode, each doc as its distance from the one before; a claim doc is `seq << 10 \| claim index` |
//! | `client_keys` | route tag + the client's idempotency key | `(seq, created ms, request fingerprint)` |
//! | `client_keys_by_time` | `(created ms, key)` | `()`: expiry order |
//!
//! The backfill fills every table but `claim_terms` from the verdicts and indexes already
//! stored, in the default namespace. `claim_terms` is derived from claim text by the store's
//! analyser, which has its own version: the store builds it after this step (and rebuilds it
//! whenever the analyser changes), so this step never freezes text-analysis rules.
//!
//! Values written from version 5 on use codec version 2 (each value names its own codec
//! version, so version-1 values stay readable as they are).

use std::collections::BTreeMap;

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::v0002_claims::{CLAIMS, frozen_verdict_v1};
use crate::v0004_verdicts_by_seq::{SIG_INDEX, VERDICTS_BY_SEQ};
use crate::{META, MigrateError};

pub const REPOS: TableDefinition<&str, u32> = TableDefinition::new("repos");
pub const REPO_NAMES: TableDefinition<u32, &str> = TableDefinition::new("repo_names");
pub const BY_SIG: TableDefinition<(u32, &str, u8, u64), ()> = TableDefinition::new("by_sig");
pub const VERDICT_IDS: TableDefinition<(u32, u64, &str, &str), u64> =
    TableDefinition::new("verdict_ids");
pub const PR_VERDICTS: TableDefinition<(u32, u64, u64), ()> = TableDefinition::new("pr_verdicts");
pub const PRS: TableDefinition<(u32, u64), (u64, u64, u64, u64)> = TableDefinition::new("prs");
pub const PR_HEADS: TableDefinition<(u32, u64, &str), (u64, u64, u64)> =
    TableDefinition::new("pr_heads");
pub const CLAIM_HASHES: TableDefinition<(u64, u32, u64), ()> = TableDefinition::new("claim_hashes");
pub const CLAIM_TERMS: TableDefinition<(&str, u32, u64), &[u8]> =
    TableDefinition::new("claim_terms");
pub const CLIENT_KEYS: TableDefinition<&[u8], (u64, u64, u64)> =
    TableDefinition::new("client_keys");
pub const CLIENT_KEYS_BY_TIME: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("client_keys_by_time");

/// The default namespace's repository id.
pub const DEFAULT_REPO: u32 = 0;

/// The meta key of the value codec version the file may hold values of.
const CODEC_VERSION_KEY: &str = "codec_version";
/// Codec version 2 adds the repository to every value.
const CODEC_VERSION: u64 = 2;
/// The counter of verdicts by repository, for the default namespace (the empty name): every
/// verdict a version-4 file holds.
const VERDICTS_BY_REPO_DEFAULT: &str = "count/verdicts/repo/";

const VERSION: u64 = 5;

/// Rows between two progress reports of the backfill.
const PROGRESS_EVERY: u64 = 100_000;

/// Index of an overall in the count tuples of `prs` and `pr_heads`.
fn overall_slot(overall: &str) -> Option<usize> {
    match overall {
        "approve" => Some(0),
        "request_changes" => Some(1),
        "block" => Some(2),
        _ => None,
    }
}

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    let mut n_rows = 0u64;
    let mut progress = || {
        n_rows += 1;
        if n_rows.is_multiple_of(PROGRESS_EVERY) {
            on_progress(n_rows);
        }
    };
    txn.open_table(REPOS)?;
    txn.open_table(REPO_NAMES)?;
    txn.open_table(CLAIM_TERMS)?;
    txn.open_table(CLIENT_KEYS)?;
    txn.open_table(CLIENT_KEYS_BY_TIME)?;
    {
        let old = txn.open_table(SIG_INDEX)?;
        let mut by_sig = txn.open_table(BY_SIG)?;
        for row in old.iter()? {
            let key = row?.0;
            let (sig_hash, kind, seq) = key.value();
            by_sig.insert((DEFAULT_REPO, sig_hash, kind, seq), ())?;
            progress();
        }
        let old = txn.open_table(CLAIMS)?;
        let mut claim_hashes = txn.open_table(CLAIM_HASHES)?;
        for row in old.iter()? {
            let (hash, seq) = row?.0.value();
            claim_hashes.insert((hash, DEFAULT_REPO, seq), ())?;
            progress();
        }

        let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
        let mut ids = txn.open_table(VERDICT_IDS)?;
        let mut pr_verdicts = txn.open_table(PR_VERDICTS)?;
        let mut n_verdicts = 0u64;
        let mut prs: BTreeMap<u64, [u64; 4]> = BTreeMap::new();
        let mut heads: BTreeMap<(u64, String), [u64; 3]> = BTreeMap::new();
        for row in verdicts.iter()? {
            let (seq, value) = row?;
            let seq = seq.value();
            let v = frozen_verdict_v1::decode(value.value()).map_err(|message| {
                MigrateError::CorruptValue {
                    version: VERSION,
                    table: "verdicts_by_seq",
                    seq,
                    message,
                }
            })?;
            let identity = (
                DEFAULT_REPO,
                v.pr_number,
                v.head_sha.as_str(),
                v.audited_at.as_str(),
            );
            // Identities were unique before (checked at every write); should two share one, the
            // first stays the one a repeat is a duplicate of.
            if ids.get(identity)?.is_none() {
                ids.insert(identity, seq)?;
            }
            pr_verdicts.insert((DEFAULT_REPO, v.pr_number, seq), ())?;
            let slot = overall_slot(&v.overall);
            let pr = prs.entry(v.pr_number).or_default();
            pr[3] = pr[3].max(seq);
            let head = heads
                .entry((v.pr_number, v.head_sha.to_ascii_lowercase()))
                .or_default();
            if let Some(slot) = slot {
                pr[slot] += 1;
                head[slot] += 1;
            }
            n_verdicts += 1;
            progress();
        }
        let mut prs_table = txn.open_table(PRS)?;
        for (pr_number, [a, r, b, last]) in prs {
            prs_table.insert((DEFAULT_REPO, pr_number), (a, r, b, last))?;
        }
        let mut heads_table = txn.open_table(PR_HEADS)?;
        for ((pr_number, head), [a, r, b]) in heads {
            heads_table.insert((DEFAULT_REPO, pr_number, head.as_str()), (a, r, b))?;
        }
        let mut meta = txn.open_table(META)?;
        meta.insert(CODEC_VERSION_KEY, CODEC_VERSION)?;
        if n_verdicts > 0 {
            meta.insert(VERDICTS_BY_REPO_DEFAULT, n_verdicts)?;
        }
    }
    txn.delete_table(SIG_INDEX)?;
    txn.delete_table(CLAIMS)?;
    on_progress(n_rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_tables_gone, db_at, upgrade_to};
    use crate::v0004_verdicts_by_seq::{KIND_OUTCOME, KIND_VERDICT};
    use redb::{ReadableDatabase, ReadableTableMetadata};

    fn verdict_value(pr_number: u64, head_sha: &str, audited_at: &str, overall: &str) -> Vec<u8> {
        frozen_verdict_v1::encode(&frozen_verdict_v1::VerdictV1 {
            pr_number,
            head_sha: head_sha.into(),
            audited_at: audited_at.into(),
            overall: overall.into(),
            one_liner: "x".into(),
            findings_block: 0,
            findings_warn: 0,
            findings_info: None,
            audit_duration_ms: None,
            received_at_ms: 0,
            raw_json: "{}".into(),
        })
    }

    #[test]
    fn upgrade_from_a_version_4_file_fills_the_repository_scoped_indexes() {
        let (_dir, db) = db_at(4);
        let txn = db.begin_write().unwrap();
        {
            let mut verdicts = txn.open_table(VERDICTS_BY_SEQ).unwrap();
            let mut sig_index = txn.open_table(SIG_INDEX).unwrap();
            let mut claims = txn.open_table(CLAIMS).unwrap();
            let rows = [
                (1, 6, "AAAAAAAA11", "t1", "block"),
                (3, 6, "aaaaaaaa11", "t2", "approve"),
                (5, 6, "bbbbbbbb22", "t3", "request_changes"),
                (7, 60, "cccccccc33", "t4", "approve"),
            ];
            for (seq, pr, head, at, overall) in rows {
                verdicts
                    .insert(seq, verdict_value(pr, head, at, overall).as_slice())
                    .unwrap();
                let sig = format!("pr{pr}-{}", &head[..8]);
                sig_index
                    .insert((sig.as_str(), KIND_VERDICT, seq), ())
                    .unwrap();
                sig_index
                    .insert((sig.as_str(), KIND_OUTCOME, seq + 1), ())
                    .unwrap();
            }
            claims.insert((42, 5), "pr6-bbbbbbbb").unwrap();
        }
        txn.commit().unwrap();

        upgrade_to(&db, 5);
        assert_tables_gone(&db, &["sig_index", "claims"]);
        let txn = db.begin_read().unwrap();
        let by_sig = txn.open_table(BY_SIG).unwrap();
        assert_eq!(by_sig.len().unwrap(), 8);
        assert!(
            by_sig
                .get((DEFAULT_REPO, "pr6-bbbbbbbb", KIND_VERDICT, 5))
                .unwrap()
                .is_some()
        );
        let ids = txn.open_table(VERDICT_IDS).unwrap();
        assert_eq!(
            ids.get((DEFAULT_REPO, 6, "aaaaaaaa11", "t2"))
                .unwrap()
                .unwrap()
                .value(),
            3
        );
        let prs = txn.open_table(PRS).unwrap();
        assert_eq!(
            prs.get((DEFAULT_REPO, 6)).unwrap().unwrap().value(),
            (1, 1, 1, 5)
        );
        assert_eq!(
            prs.get((DEFAULT_REPO, 60)).unwrap().unwrap().value(),
            (1, 0, 0, 7)
        );
        // Heads are counted by their lowercase sha: the two spellings are one head.
        let heads = txn.open_table(PR_HEADS).unwrap();
        assert_eq!(
            heads
                .get((DEFAULT_REPO, 6, "aaaaaaaa11"))
                .unwrap()
                .unwrap()
                .value(),
            (1, 0, 1)
        );
        let pr_verdicts = txn.open_table(PR_VERDICTS).unwrap();
        let pr6: Vec<u64> = pr_verdicts
            .range((DEFAULT_REPO, 6, 0)..=(DEFAULT_REPO, 6, u64::MAX))
            .unwrap()
            .map(|r| r.unwrap().0.value().2)
            .collect();
        assert_eq!(pr6, [1, 3, 5]);
        let claim_hashes = txn.open_table(CLAIM_HASHES).unwrap();
        assert!(claim_hashes.get((42, DEFAULT_REPO, 5)).unwrap().is_some());
        assert_eq!(txn.open_table(CLAIM_TERMS).unwrap().len().unwrap(), 0);
        let meta = txn.open_table(META).unwrap();
        assert_eq!(
            meta.get(VERDICTS_BY_REPO_DEFAULT).unwrap().unwrap().value(),
            4
        );
        assert_eq!(
            txn.open_table(META)
                .unwrap()
                .get(CODEC_VERSION_KEY)
                .unwrap()
                .unwrap()
                .value(),
            2
        );
    }
}
