//! Schema version 3: one `(sig_hash, seq) -> kind` index for outcome rows and events instead of
//! one per table, and no `verdict_keys` (a verdict's identity is checked within its sig_hash's
//! range of `verdicts`). Why: every randomly keyed tree a write touches dirties a page of its
//! own; a verdict's KB row and event share its sig_hash and follow it in seq, so in one index
//! they share a page. Measured on 64 concurrent `POST /verdicts`: +20-50% requests/s
//! (docs/benchmarks/log-2026-11.md). Frozen: these definitions describe version-3 files forever.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::MigrateError;
use crate::v0001_initial::{EVENTS_BY_SIG, OUTCOMES_BY_SIG, VERDICT_KEYS};

/// `(sig_hash, seq)` of every outcome row and event that has a sig_hash → its kind.
pub const RECORDS_BY_SIG: TableDefinition<(&str, u64), u8> = TableDefinition::new("records_by_sig");

/// Kind of an outcome row in [`RECORDS_BY_SIG`].
pub const KIND_OUTCOME: u8 = 1;
/// Kind of an event in [`RECORDS_BY_SIG`].
pub const KIND_EVENT: u8 = 2;

/// Rows between two progress reports of the backfill.
const PROGRESS_EVERY: u64 = 100_000;

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    let mut n_rows = 0u64;
    {
        let mut merged = txn.open_table(RECORDS_BY_SIG)?;
        for (old, kind) in [(OUTCOMES_BY_SIG, KIND_OUTCOME), (EVENTS_BY_SIG, KIND_EVENT)] {
            let table = txn.open_table(old)?;
            for row in table.iter()? {
                let (key, _) = row?;
                let (sig_hash, seq) = key.value();
                merged.insert((sig_hash, seq), kind)?;
                n_rows += 1;
                if n_rows.is_multiple_of(PROGRESS_EVERY) {
                    on_progress(n_rows);
                }
            }
        }
    }
    txn.delete_table(OUTCOMES_BY_SIG)?;
    txn.delete_table(EVENTS_BY_SIG)?;
    txn.delete_table(VERDICT_KEYS)?;
    on_progress(n_rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_tables_gone, db_at, records_by_sig, upgrade_to};
    use crate::v0001_initial::{EVENTS, OUTCOMES};

    #[test]
    fn upgrade_from_a_version_2_file_merges_the_sig_indexes() {
        let (_dir, db) = db_at(2);
        let txn = db.begin_write().unwrap();
        {
            // Values are irrelevant to this step; the indexes are what it moves.
            let mut outcomes = txn.open_table(OUTCOMES).unwrap();
            let mut events = txn.open_table(EVENTS).unwrap();
            let mut outcomes_by_sig = txn.open_table(OUTCOMES_BY_SIG).unwrap();
            let mut events_by_sig = txn.open_table(EVENTS_BY_SIG).unwrap();
            let mut keys = txn.open_table(VERDICT_KEYS).unwrap();
            outcomes.insert(2, &b"o"[..]).unwrap();
            events.insert(3, &b"e"[..]).unwrap();
            events.insert(4, &b"e"[..]).unwrap();
            outcomes_by_sig.insert(("pr1-aaaaaaaa", 2), ()).unwrap();
            events_by_sig.insert(("pr1-aaaaaaaa", 3), ()).unwrap();
            events_by_sig.insert(("abc", 4), ()).unwrap();
            keys.insert((1, "aaaaaaaa", "t"), 1).unwrap();
        }
        txn.commit().unwrap();

        assert_eq!(upgrade_to(&db, 3).last(), Some(&(3, 3)));
        assert_eq!(
            records_by_sig(&db),
            vec![
                (("abc".into(), 4), KIND_EVENT),
                (("pr1-aaaaaaaa".into(), 2), KIND_OUTCOME),
                (("pr1-aaaaaaaa".into(), 3), KIND_EVENT),
            ]
        );
        assert_tables_gone(&db, &["outcomes_by_sig", "events_by_sig", "verdict_keys"]);
    }
}
