//! Schema version 12: writes may sit in a write-ahead journal beside the file
//! (`kb.redb-journal`) before the file holds them. No table changes.
//!
//! From this version a batch of observer events is durable once its entry in the journal is
//! synced; the file receives it in a commit that does not sync, and holds it durably from the
//! next checkpoint on. `meta`'s `journal/lsn` is the number of the last journal entry the file
//! holds, and `journal/id` the id its journal's entries carry. A binary that does not read the journal would open the file without those writes, so
//! the step only raises the schema version: such a binary refuses the file.

use redb::WriteTransaction;

use crate::MigrateError;

/// The key of `meta` holding the number of the last journal entry the file holds.
pub const JOURNAL_LSN_KEY: &str = "journal/lsn";

/// The key of `meta` holding the file's journal id (random, not 0): every journal entry
/// carries it, and a journal whose entries carry another (a backup put in place beside the
/// journal of the database it copies) is not this file's.
pub const JOURNAL_ID_KEY: &str = "journal/id";

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    let _ = txn;
    on_progress(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{db_at, upgrade_to};
    use redb::ReadableDatabase;

    #[test]
    fn upgrade_from_a_version_11_file_only_raises_the_version() {
        let (_dir, db) = db_at(11);
        assert_eq!(upgrade_to(&db, 12), [(12, 0)]);
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(crate::META).unwrap();
        assert_eq!(
            meta.get(crate::SCHEMA_VERSION_KEY)
                .unwrap()
                .unwrap()
                .value(),
            12
        );
        assert!(meta.get(JOURNAL_LSN_KEY).unwrap().is_none());
    }
}
