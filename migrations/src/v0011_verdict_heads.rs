//! Schema version 11: a verdict may be stored so that its fields read without its JSON. No
//! table changes.
//!
//! From this version, a value in `verdicts_by_seq` may be codec version 5: the byte `5`, then
//! one zstd frame, compressed with a dictionary of `codec_dictionaries` as in version 3, whose
//! content is the verdict's repository (a bincode string) followed by the version-2 body, and
//! whose first block ends where the body's JSON (`raw_json`) begins. A reader wanting only the
//! verdict's other fields (its KB row, its observer event, a PR's history) decompresses the
//! first block; a reader wanting the JSON decompresses the frame and skips the repository at
//! its start.
//!
//! The step only raises the newest codec version the file may hold to 5, so that a binary that
//! cannot read such a value refuses the file instead of failing on its values. The verdicts
//! stored before it stay readable as they are; the store rewrites them as version 5 after this
//! step, in bounded transactions that resume where a killed run stopped
//! (`store/verdict_heads.rs`): a conversion of values is not a schema change.

use redb::WriteTransaction;

use crate::MigrateError;
use crate::v0007_codec_dictionaries::CODEC_VERSION_KEY;

/// The codec version of a verdict whose head is its frame's first block.
pub const SPLIT_CODEC_VERSION: u64 = 5;

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    txn.open_table(crate::META)?
        .insert(CODEC_VERSION_KEY, SPLIT_CODEC_VERSION)?;
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
    fn upgrade_from_a_version_10_file_raises_the_codec_version_and_keeps_the_values() {
        let (_dir, db) = db_at(10);
        let txn = db.begin_write().unwrap();
        txn.open_table(VERDICTS_BY_SEQ)
            .unwrap()
            .insert(1, [3u8, 0x28, 0xb5].as_slice())
            .unwrap();
        txn.commit().unwrap();

        assert_eq!(upgrade_to(&db, 11), [(11, 0)]);
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(crate::META).unwrap();
        assert_eq!(meta.get(CODEC_VERSION_KEY).unwrap().unwrap().value(), 5);
        let verdicts = txn.open_table(VERDICTS_BY_SEQ).unwrap();
        assert_eq!(verdicts.get(1).unwrap().unwrap().value(), [3u8, 0x28, 0xb5]);
    }
}
