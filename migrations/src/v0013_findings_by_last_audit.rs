//! Schema version 13: a PR's open findings say, in their index, whether the audit that last
//! raised them repeated them.
//!
//! | table | key | value |
//! |---|---|---|
//! | `findings_by_last_audit` | `(repo, pr_number, seq of the audit that last raised it, fingerprint)` | `u8`: 1 when an audit of another head, before that one, raised the finding too (that audit repeated it), else 0 |
//!
//! It replaces `findings_by_last_seen` (schema version 6), whose value was `()`. A PR's history
//! counts the findings its latest audit repeated: with the flag in the index that is one range,
//! where it was one range and a decompressed finding per finding.
//!
//! The flag is derived, like the rest of the findings memory, so the step does not compute it:
//! it drops the old index, creates the new one empty, and clears the memory's analyser version
//! and progress mark, so that the store rebuilds the whole memory from the stored verdicts on
//! its next open (`store/findings.rs`), in bounded transactions that resume where a killed run
//! stopped. The fingerprint rules the memory was built under stay recorded: dismissals are
//! client data, named by fingerprint, and the rebuild gives them today's fingerprints only
//! when those rules changed since (a file built under rules 1, before 2026-12-04 23:08).
//! Clearing that record too (as this step did until 2026-12-05) made every file look built
//! under no rules, and left its dismissals under the old fingerprints.

use redb::{TableDefinition, WriteTransaction};

use crate::MigrateError;
use crate::v0006_findings_memory::FINDINGS_BY_LAST_SEEN;

pub const FINDINGS_BY_LAST_AUDIT: TableDefinition<(u32, u64, u64, u64), u8> =
    TableDefinition::new("findings_by_last_audit");

/// The `meta` keys under which the store records the analyser the findings memory was built
/// with, and the seq its build has reached (as of this version): cleared, so that it is built
/// again.
const FINDINGS_META_KEYS: [&str; 2] = ["findings/analyzer_version", "findings/built_through"];

/// The `meta` key of the fingerprint rules the memory was built under: kept.
#[cfg(test)]
const FINDINGS_RULES_KEY: &str = "findings/rules_version";

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    txn.delete_table(FINDINGS_BY_LAST_SEEN)?;
    txn.open_table(FINDINGS_BY_LAST_AUDIT)?;
    let mut meta = txn.open_table(crate::META)?;
    for key in FINDINGS_META_KEYS {
        meta.remove(key)?;
    }
    on_progress(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_tables_gone, db_at, upgrade_to};
    use crate::v0006_findings_memory::{DISMISSALS, FINDINGS};
    use redb::{ReadableDatabase, ReadableTableMetadata};

    #[test]
    fn upgrade_from_a_version_12_file_replaces_the_index_and_asks_for_a_rebuild() {
        let (_dir, db) = db_at(12);
        let txn = db.begin_write().unwrap();
        txn.open_table(FINDINGS_BY_LAST_SEEN)
            .unwrap()
            .insert((0, 7, 3, 99), ())
            .unwrap();
        txn.open_table(FINDINGS)
            .unwrap()
            .insert((0, 7, 99), [2u8, 1].as_slice())
            .unwrap();
        txn.open_table(DISMISSALS)
            .unwrap()
            .insert(5, [2u8, 2].as_slice())
            .unwrap();
        {
            let mut meta = txn.open_table(crate::META).unwrap();
            for key in FINDINGS_META_KEYS {
                meta.insert(key, 3).unwrap();
            }
            meta.insert(FINDINGS_RULES_KEY, 1).unwrap();
            meta.insert("last_seq", 9).unwrap();
        }
        txn.commit().unwrap();

        assert_eq!(upgrade_to(&db, 13), [(13, 0)]);
        assert_tables_gone(&db, &["findings_by_last_seen"]);
        let txn = db.begin_read().unwrap();
        assert!(
            txn.open_table(FINDINGS_BY_LAST_AUDIT)
                .unwrap()
                .is_empty()
                .unwrap()
        );
        let meta = txn.open_table(crate::META).unwrap();
        for key in FINDINGS_META_KEYS {
            assert!(meta.get(key).unwrap().is_none(), "{key}");
        }
        // The rules the memory was built under say whether dismissals need new fingerprints.
        assert_eq!(meta.get(FINDINGS_RULES_KEY).unwrap().unwrap().value(), 1);
        assert_eq!(meta.get("last_seq").unwrap().unwrap().value(), 9);
        // What the store rebuilds (the findings) it clears itself; dismissals are kept.
        assert_eq!(txn.open_table(FINDINGS).unwrap().len().unwrap(), 1);
        assert_eq!(txn.open_table(DISMISSALS).unwrap().len().unwrap(), 1);
    }
}
