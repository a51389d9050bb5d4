//! Schema version 15: a PR's open findings are those of its latest audit that said what it
//! found.
//!
//! | table | key | value |
//! |---|---|---|
//! | `findings_audits` | `(repo, pr_number)` | seq of the PR's latest verdict that carried a `findings` array |
//!
//! Until this version a PR's open findings were those raised by its latest verdict (`prs`), so
//! a verdict without `findings` (an auditor that failed before it listed them, or one that does
//! not list them) marked every open finding resolved, and the next audit to raise them again
//! counted them as raised afresh. A verdict's `findings: []` still says the audit found
//! nothing; one without the key says nothing of the findings.
//!
//! The table is derived, like the rest of the findings memory, so the step does not fill it:
//! it creates it empty and clears the memory's analyser version and progress mark, so that the
//! store rebuilds the whole memory from the stored verdicts on its next open
//! (`store/findings.rs`), in bounded transactions that resume where a killed run stopped. The
//! fingerprint rules the memory was built under stay recorded (see step 13).

use redb::{TableDefinition, WriteTransaction};

use crate::MigrateError;

pub const FINDINGS_AUDITS: TableDefinition<(u32, u64), u64> =
    TableDefinition::new("findings_audits");

/// The `meta` keys under which the store records the analyser the findings memory was built
/// with, and the seq its build has reached: cleared, so that it is built again.
const FINDINGS_META_KEYS: [&str; 2] = ["findings/analyzer_version", "findings/built_through"];

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    txn.open_table(FINDINGS_AUDITS)?;
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
    use crate::test_support::{db_at, upgrade_to};
    use crate::v0006_findings_memory::FINDINGS;
    use redb::{ReadableDatabase, ReadableTableMetadata};

    #[test]
    fn upgrade_from_a_version_14_file_creates_the_table_and_asks_for_a_rebuild() {
        let (_dir, db) = db_at(14);
        let txn = db.begin_write().unwrap();
        txn.open_table(FINDINGS)
            .unwrap()
            .insert((0, 7, 99), [2u8, 1].as_slice())
            .unwrap();
        {
            let mut meta = txn.open_table(crate::META).unwrap();
            for key in FINDINGS_META_KEYS {
                meta.insert(key, 3).unwrap();
            }
            meta.insert("findings/rules_version", 3).unwrap();
        }
        txn.commit().unwrap();

        assert_eq!(upgrade_to(&db, 15), [(15, 0)]);
        let txn = db.begin_read().unwrap();
        assert!(txn.open_table(FINDINGS_AUDITS).unwrap().is_empty().unwrap());
        let meta = txn.open_table(crate::META).unwrap();
        for key in FINDINGS_META_KEYS {
            assert!(meta.get(key).unwrap().is_none(), "{key}");
        }
        // The rules stay recorded: they say whether dismissals need new fingerprints.
        assert_eq!(
            meta.get("findings/rules_version").unwrap().unwrap().value(),
            3
        );
        // What the store rebuilds (the findings) it clears itself.
        assert_eq!(txn.open_table(FINDINGS).unwrap().len().unwrap(), 1);
    }
}
