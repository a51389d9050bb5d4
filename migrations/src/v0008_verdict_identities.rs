//! Schema version 8: a verdict's identity indexed by a fixed-width hash instead of its text.
//! Frozen: these definitions describe version-8 files forever.
//!
//! | table | key | value |
//! |---|---|---|
//! | `verdict_identities` | (repo, [`verdict_identity_hash`] of (pr_number, head_sha, audited_at), seq) | () |
//!
//! It replaces `verdict_ids` (`(repo, pr_number, head_sha, audited_at) → seq`, about 80 bytes
//! of key per verdict, two thirds of them a 40-digit sha and a timestamp) with a 20-byte key.
//! A lookup ranges over `(repo, hash, ..)` and compares the verdicts it finds with the identity
//! asked for, so two identities with the same hash are both stored and told apart; the hash is
//! a prefix of SHA-256, so a client cannot make many identities collide on purpose.
//!
//! The step rekeys `verdict_ids` entry by entry (no value is read) and drops it, in its one
//! transaction: a kill during it leaves the file at version 7, and the next open runs it again.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use sha2::{Digest, Sha256};

use crate::MigrateError;
use crate::v0005_repos_and_memory::VERDICT_IDS;

pub const VERDICT_IDENTITIES: TableDefinition<(u32, u64, u64), ()> =
    TableDefinition::new("verdict_identities");

/// Rows between two progress reports.
const PROGRESS_EVERY: u64 = 100_000;

/// The first 8 bytes (big-endian) of SHA-256 of a domain tag, the PR number (8 bytes,
/// little-endian), the head sha's length (8 bytes, little-endian), the head sha and the
/// audited_at, as given (not lowercased: identity is exact).
pub fn verdict_identity_hash(pr_number: u64, head_sha: &str, audited_at: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(b"lakehouse-kb verdict identity\0");
    hasher.update(pr_number.to_le_bytes());
    hasher.update((head_sha.len() as u64).to_le_bytes());
    hasher.update(head_sha.as_bytes());
    hasher.update(audited_at.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    let mut n_rows = 0u64;
    {
        let old = txn.open_table(VERDICT_IDS)?;
        let mut new = txn.open_table(VERDICT_IDENTITIES)?;
        for row in old.iter()? {
            let (key, seq) = row?;
            let (repo, pr, head, at) = key.value();
            new.insert((repo, verdict_identity_hash(pr, head, at), seq.value()), ())?;
            n_rows += 1;
            if n_rows.is_multiple_of(PROGRESS_EVERY) {
                on_progress(n_rows);
            }
        }
    }
    txn.delete_table(VERDICT_IDS)?;
    on_progress(n_rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_tables_gone, db_at, upgrade_to};
    use redb::ReadableDatabase;

    #[test]
    fn upgrade_from_a_version_7_file_rekeys_the_identities() {
        let (_dir, db) = db_at(7);
        let txn = db.begin_write().unwrap();
        {
            let mut ids = txn.open_table(VERDICT_IDS).unwrap();
            ids.insert((0, 6, "aaaaaaaa11", "t1"), 1).unwrap();
            ids.insert((0, 6, "aaaaaaaa11", "t2"), 4).unwrap();
            ids.insert((3, 6, "aaaaaaaa11", "t1"), 9).unwrap();
        }
        txn.commit().unwrap();

        assert_eq!(upgrade_to(&db, 8), [(8, 3)]);
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(VERDICT_IDENTITIES).unwrap();
        let mut got: Vec<(u32, u64, u64)> = table
            .iter()
            .unwrap()
            .map(|row| row.unwrap().0.value())
            .collect();
        got.sort_unstable();
        let mut want = vec![
            (0, verdict_identity_hash(6, "aaaaaaaa11", "t1"), 1),
            (0, verdict_identity_hash(6, "aaaaaaaa11", "t2"), 4),
            (3, verdict_identity_hash(6, "aaaaaaaa11", "t1"), 9),
        ];
        want.sort_unstable();
        assert_eq!(got, want);
        assert_tables_gone(&db, &["verdict_ids"]);
    }

    /// The hash is part of the file format: these values are what every version-8 file holds.
    #[test]
    fn the_hash_is_frozen_and_separates_its_fields() {
        assert_eq!(
            verdict_identity_hash(6, "aaaaaaaa11", "t1"),
            verdict_identity_hash(6, "aaaaaaaa11", "t1")
        );
        assert_ne!(
            verdict_identity_hash(6, "ab", "c"),
            verdict_identity_hash(6, "a", "bc")
        );
        assert_ne!(
            verdict_identity_hash(6, "ab", "c"),
            verdict_identity_hash(7, "ab", "c")
        );
        assert_eq!(
            format!(
                "{:016x}",
                verdict_identity_hash(42, "0123abcd", "2026-12-03T00:00:00Z")
            ),
            "68519e08baddab7f"
        );
    }
}
