//! Schema version 7: compression dictionaries for the value codec. Frozen: this definition
//! describes version-7 files forever.
//!
//! | table | key | value |
//! |---|---|---|
//! | `codec_dictionaries` | the dictionary's zstd id (derived from its content) | the dictionary's bytes |
//!
//! Codec version 3 values (verdicts, outcome rows, events) are zstd frames that name the
//! dictionary they were compressed with; a dictionary is never deleted or changed while a value
//! may name it, so this table only grows (by one row per training, a few per database).
//!
//! The step only creates the table. The values already stored stay readable as they are (each
//! names its codec version); the store trains the first dictionary from them and rewrites them
//! in codec version 3 after this step, in bounded transactions that resume where a killed run
//! stopped (`store/dictionary.rs`): a conversion of the values is not a schema change.

use redb::{TableDefinition, WriteTransaction};

use crate::MigrateError;

pub const CODEC_DICTIONARIES: TableDefinition<u32, &[u8]> =
    TableDefinition::new("codec_dictionaries");

/// The `meta` key of the newest codec version the file may hold.
pub const CODEC_VERSION_KEY: &str = "codec_version";

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    txn.open_table(CODEC_DICTIONARIES)?;
    // The values' newest codec version from now on (version 3 may be written).
    txn.open_table(crate::META)?.insert(CODEC_VERSION_KEY, 3)?;
    on_progress(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{db_at, upgrade_to};
    use crate::v0004_verdicts_by_seq::VERDICTS_BY_SEQ;
    use redb::{ReadableDatabase, ReadableTableMetadata};

    #[test]
    fn upgrade_from_a_version_6_file_creates_the_empty_table_and_keeps_the_values() {
        let (_dir, db) = db_at(6);
        let txn = db.begin_write().unwrap();
        txn.open_table(VERDICTS_BY_SEQ)
            .unwrap()
            .insert(1, [2u8, 0].as_slice())
            .unwrap();
        txn.commit().unwrap();

        assert_eq!(upgrade_to(&db, 7), [(7, 0)]);
        let txn = db.begin_read().unwrap();
        assert_eq!(
            txn.open_table(CODEC_DICTIONARIES).unwrap().len().unwrap(),
            0
        );
        let verdicts = txn.open_table(VERDICTS_BY_SEQ).unwrap();
        assert_eq!(verdicts.get(1).unwrap().unwrap().value(), [2u8, 0]);
        let meta = txn.open_table(crate::META).unwrap();
        assert_eq!(meta.get(CODEC_VERSION_KEY).unwrap().unwrap().value(), 3);
    }
}
