//! Schema version 9: a verdict's own KB row and observer event may be stored as a reference to
//! the verdict. No table changes.
//!
//! The KB row (`kind:"audit"`) and the observer event that `POST /verdicts` stores beside a
//! verdict are computed from the verdict; from this version, the value under their seq in
//! `outcomes` or `events` may be codec version 4 instead of the whole record: the byte `4`,
//! then the distance back to the verdict's seq (a bincode varint). The store writes it only when
//! recomputing the record from the verdict gives back the same record, field for field.
//!
//! The step only raises the newest codec version the file may hold to 4, so that a binary that
//! cannot resolve such a reference refuses the file instead of failing on its values. The
//! records already stored stay readable as they are; the store rewrites those it can as
//! references after this step, in bounded transactions that resume where a killed run stopped
//! (`store/verdict_lines.rs`): a conversion of values is not a schema change.

use redb::WriteTransaction;

use crate::MigrateError;
use crate::v0007_codec_dictionaries::CODEC_VERSION_KEY;

/// The codec version of a reference to a verdict.
pub const REFERENCE_CODEC_VERSION: u64 = 4;

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    txn.open_table(crate::META)?
        .insert(CODEC_VERSION_KEY, REFERENCE_CODEC_VERSION)?;
    on_progress(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{db_at, upgrade_to};
    use crate::v0004_verdicts_by_seq::VERDICTS_BY_SEQ;
    use redb::ReadableDatabase;

    #[test]
    fn upgrade_from_a_version_8_file_raises_the_codec_version_and_keeps_the_values() {
        let (_dir, db) = db_at(8);
        let txn = db.begin_write().unwrap();
        txn.open_table(VERDICTS_BY_SEQ)
            .unwrap()
            .insert(1, [2u8, 0].as_slice())
            .unwrap();
        txn.commit().unwrap();

        assert_eq!(upgrade_to(&db, 9), [(9, 0)]);
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(crate::META).unwrap();
        assert_eq!(meta.get(CODEC_VERSION_KEY).unwrap().unwrap().value(), 4);
        let verdicts = txn.open_table(VERDICTS_BY_SEQ).unwrap();
        assert_eq!(verdicts.get(1).unwrap().unwrap().value(), [2u8, 0]);
    }
}
