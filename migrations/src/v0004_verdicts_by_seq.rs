//! Schema version 4: verdict values keyed by seq (`verdicts_by_seq`), and one index
//! `sig_index` of `(sig_hash, kind, seq)` for verdicts, outcome rows and events, instead of a
//! `verdicts` table keyed by `(sig_hash, seq)` and `records_by_sig` `(sig_hash, seq) -> kind`.
//! Why: a verdict's value (its whole JSON) is large and its sig_hash random, so every verdict
//! dirtied a leaf of its own in `verdicts`, often splitting it; keyed by seq, the verdicts of
//! one commit share pages at the end of the tree, and the index entry lands next to its KB
//! row's and event's, on a leaf they dirty anyway. The kind is in the key so that the verdicts
//! of a sig_hash are one range (the identity check and PR history never walk its events).
//! Measured on 64 concurrent `POST /verdicts` (docs/benchmarks/log-2026-11.md). Frozen: these definitions
//! describe version-4 files forever.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::MigrateError;
use crate::v0001_initial::VERDICTS;
use crate::v0003_records_by_sig::RECORDS_BY_SIG;
/// Kinds in [`SIG_INDEX`]: outcome rows and events keep their step-3 numbers.
pub use crate::v0003_records_by_sig::{KIND_EVENT, KIND_OUTCOME};

/// `seq` → codec-encoded verdict (the same value layout as `verdicts` had).
pub const VERDICTS_BY_SEQ: TableDefinition<u64, &[u8]> = TableDefinition::new("verdicts_by_seq");

/// `(sig_hash, kind, seq)` of every verdict, and of every outcome row and event with a
/// sig_hash.
pub const SIG_INDEX: TableDefinition<(&str, u8, u64), ()> = TableDefinition::new("sig_index");

/// A verdict in [`SIG_INDEX`].
pub const KIND_VERDICT: u8 = 3;

/// Verdicts between two progress reports of the move.
const PROGRESS_EVERY: u64 = 100_000;

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
    {
        let mut index = txn.open_table(SIG_INDEX)?;
        let old_index = txn.open_table(RECORDS_BY_SIG)?;
        for row in old_index.iter()? {
            let (key, kind) = row?;
            let (sig_hash, seq) = key.value();
            index.insert((sig_hash, kind.value(), seq), ())?;
            progress();
        }
        let old = txn.open_table(VERDICTS)?;
        let mut by_seq = txn.open_table(VERDICTS_BY_SEQ)?;
        for row in old.iter()? {
            let (key, value) = row?;
            let (sig_hash, seq) = key.value();
            by_seq.insert(seq, value.value())?;
            index.insert((sig_hash, KIND_VERDICT, seq), ())?;
            progress();
        }
    }
    txn.delete_table(RECORDS_BY_SIG)?;
    txn.delete_table(VERDICTS)?;
    on_progress(n_rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_tables_gone, db_at, upgrade_to};
    use redb::{ReadableDatabase, TableHandle};

    #[test]
    fn upgrade_from_a_version_3_file_moves_verdicts_and_merges_the_sig_indexes() {
        let (_dir, db) = db_at(3);
        let txn = db.begin_write().unwrap();
        {
            // The step moves value bytes without reading them.
            let mut verdicts = txn.open_table(VERDICTS).unwrap();
            let mut by_sig = txn.open_table(RECORDS_BY_SIG).unwrap();
            verdicts.insert(("pr1-aaaaaaaa", 1), &b"v1"[..]).unwrap();
            by_sig.insert(("pr1-aaaaaaaa", 2), KIND_OUTCOME).unwrap();
            by_sig.insert(("pr1-aaaaaaaa", 5), KIND_EVENT).unwrap();
            verdicts.insert(("pr1-bbbbbbbb", 4), &b"v4"[..]).unwrap();
            verdicts.insert(("pr10-cccccccc", 3), &b"v3"[..]).unwrap();
        }
        txn.commit().unwrap();

        assert_eq!(upgrade_to(&db, 4).last(), Some(&(4, 5)));
        let txn = db.begin_read().unwrap();
        let values: Vec<(u64, Vec<u8>)> = txn
            .open_table(VERDICTS_BY_SEQ)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value(), v.value().to_vec())
            })
            .collect();
        assert_eq!(
            values,
            vec![
                (1, b"v1".to_vec()),
                (3, b"v3".to_vec()),
                (4, b"v4".to_vec())
            ]
        );
        let index: Vec<(String, u8, u64)> = txn
            .open_table(SIG_INDEX)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| {
                let (key, _) = r.unwrap();
                let (sig, kind, seq) = key.value();
                (sig.to_owned(), kind, seq)
            })
            .collect();
        assert_eq!(
            index,
            vec![
                ("pr1-aaaaaaaa".into(), KIND_OUTCOME, 2),
                ("pr1-aaaaaaaa".into(), KIND_EVENT, 5),
                ("pr1-aaaaaaaa".into(), KIND_VERDICT, 1),
                ("pr1-bbbbbbbb".into(), KIND_VERDICT, 4),
                ("pr10-cccccccc".into(), KIND_VERDICT, 3),
            ]
        );
        assert_tables_gone(&db, &[VERDICTS.name(), RECORDS_BY_SIG.name()]);
    }
}
