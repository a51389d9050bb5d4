//! Schema version 4: verdict values keyed by seq (`verdicts_by_seq`), and each verdict's
//! `(sig_hash, seq)` in `records_by_sig` with the rows and events of its sig_hash, instead of a
//! `verdicts` table keyed by `(sig_hash, seq)`. Why: a verdict's value (its whole JSON) is large
//! and its sig_hash random, so every verdict dirtied a leaf of its own in `verdicts`, often
//! splitting it; keyed by seq, the verdicts of one commit share pages at the end of the tree,
//! and the index entry lands on the leaf its KB row and event dirty anyway. Measured on 64
//! concurrent `POST /verdicts` (docs/BENCHMARKS.md). Frozen: these definitions describe
//! version-4 files forever.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::MigrateError;
use crate::v0001_initial::VERDICTS;
use crate::v0003_records_by_sig::RECORDS_BY_SIG;

/// `seq` → codec-encoded verdict (the same value layout as `verdicts` had).
pub const VERDICTS_BY_SEQ: TableDefinition<u64, &[u8]> = TableDefinition::new("verdicts_by_seq");

/// Kind of a verdict in `records_by_sig` (1 and 2 are outcome rows and events, from step 3).
pub const KIND_VERDICT: u8 = 3;

/// Verdicts between two progress reports of the move.
const PROGRESS_EVERY: u64 = 100_000;

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    let mut n_verdicts = 0u64;
    {
        let old = txn.open_table(VERDICTS)?;
        let mut by_seq = txn.open_table(VERDICTS_BY_SEQ)?;
        let mut by_sig = txn.open_table(RECORDS_BY_SIG)?;
        for row in old.iter()? {
            let (key, value) = row?;
            let (sig_hash, seq) = key.value();
            by_seq.insert(seq, value.value())?;
            by_sig.insert((sig_hash, seq), KIND_VERDICT)?;
            n_verdicts += 1;
            if n_verdicts.is_multiple_of(PROGRESS_EVERY) {
                on_progress(n_verdicts);
            }
        }
    }
    txn.delete_table(VERDICTS)?;
    on_progress(n_verdicts);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{db_at, records_by_sig};
    use crate::v0003_records_by_sig::KIND_OUTCOME;
    use crate::{current_version, migrate};
    use redb::{ReadableDatabase, TableHandle};

    #[test]
    fn upgrade_from_a_version_3_file_moves_verdicts_to_seq_keys() {
        let (_dir, db) = db_at(3);
        let txn = db.begin_write().unwrap();
        {
            // The step moves value bytes without reading them.
            let mut verdicts = txn.open_table(VERDICTS).unwrap();
            let mut by_sig = txn.open_table(RECORDS_BY_SIG).unwrap();
            verdicts.insert(("pr1-aaaaaaaa", 1), &b"v1"[..]).unwrap();
            by_sig.insert(("pr1-aaaaaaaa", 2), KIND_OUTCOME).unwrap();
            verdicts.insert(("pr1-bbbbbbbb", 4), &b"v4"[..]).unwrap();
            verdicts.insert(("pr10-cccccccc", 3), &b"v3"[..]).unwrap();
        }
        txn.commit().unwrap();

        let mut reports = Vec::new();
        migrate(&db, None, &mut |step, n| reports.push((step.version, n))).unwrap();
        assert_eq!(current_version(&db).unwrap(), 4);
        assert_eq!(reports.last(), Some(&(4, 3)));
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
        assert_eq!(
            records_by_sig(&db),
            vec![
                (("pr1-aaaaaaaa".into(), 1), KIND_VERDICT),
                (("pr1-aaaaaaaa".into(), 2), KIND_OUTCOME),
                (("pr1-bbbbbbbb".into(), 4), KIND_VERDICT),
                (("pr10-cccccccc".into(), 3), KIND_VERDICT),
            ]
        );
        assert!(
            !txn.list_tables()
                .unwrap()
                .any(|t| t.name() == VERDICTS.name()),
            "verdicts is still there"
        );
    }
}
