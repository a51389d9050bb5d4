//! Schema version 6: the findings memory (each PR's findings, remembered across its audits) and
//! dismissals (findings a team said do not apply). Frozen: these definitions describe version-6
//! files forever.
//!
//! | table | key | value |
//! |---|---|---|
//! | `findings` | `(repo, pr_number, fingerprint)` | codec `FindingValue`: one remembered finding, under the fingerprint of its first wording |
//! | `finding_fps` | `(repo, fingerprint, pr_number)` | the fingerprint the finding is remembered under: every wording's fingerprint, the first one's included |
//! | `findings_by_last_seen` | `(repo, pr_number, last seen verdict seq, fingerprint)` | `()`: a PR's open findings are one range (those last seen by its latest audit) |
//! | `dismissals` | dismission id (the seq it was given) | codec `DismissalValue`, revoked ones included |
//! | `dismissal_ids` | `(repo, scope, fingerprint)` | id: the live dismissal of a fingerprint in a scope (scope 0: the whole repository; `pr_number + 1`: one PR) |
//! | `dismissals_by_repo` | `(repo, id)` | scope: a repository's live dismissals, newest first by reverse range |
//! | `dismissals_by_scope` | `(repo, scope, id)` | `()`: the live dismissals of one scope |
//!
//! The step only creates the tables. The three `finding*` tables are derived from the stored
//! verdicts by rules that have their own version (fingerprint normalisation, the text analyser,
//! the similarity of rewordings): the store builds them after this step, and rebuilds them
//! whenever those rules change, so this step never freezes them. Dismissals are not derived:
//! they are written by clients only.

use redb::{TableDefinition, WriteTransaction};

use crate::MigrateError;

pub const FINDINGS: TableDefinition<(u32, u64, u64), &[u8]> = TableDefinition::new("findings");
pub const FINDING_FPS: TableDefinition<(u32, u64, u64), u64> = TableDefinition::new("finding_fps");
pub const FINDINGS_BY_LAST_SEEN: TableDefinition<(u32, u64, u64, u64), ()> =
    TableDefinition::new("findings_by_last_seen");
pub const DISMISSALS: TableDefinition<u64, &[u8]> = TableDefinition::new("dismissals");
pub const DISMISSAL_IDS: TableDefinition<(u32, u64, u64), u64> =
    TableDefinition::new("dismissal_ids");
pub const DISMISSALS_BY_REPO: TableDefinition<(u32, u64), u64> =
    TableDefinition::new("dismissals_by_repo");
pub const DISMISSALS_BY_SCOPE: TableDefinition<(u32, u64, u64), ()> =
    TableDefinition::new("dismissals_by_scope");

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    txn.open_table(FINDINGS)?;
    txn.open_table(FINDING_FPS)?;
    txn.open_table(FINDINGS_BY_LAST_SEEN)?;
    txn.open_table(DISMISSALS)?;
    txn.open_table(DISMISSAL_IDS)?;
    txn.open_table(DISMISSALS_BY_REPO)?;
    txn.open_table(DISMISSALS_BY_SCOPE)?;
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
    fn upgrade_from_a_version_5_file_creates_the_empty_tables_and_keeps_the_verdicts() {
        let (_dir, db) = db_at(5);
        let txn = db.begin_write().unwrap();
        txn.open_table(VERDICTS_BY_SEQ)
            .unwrap()
            .insert(1, [2u8, 0].as_slice())
            .unwrap();
        txn.commit().unwrap();

        assert_eq!(upgrade_to(&db, 6), [(6, 0)]);
        let txn = db.begin_read().unwrap();
        assert_eq!(txn.open_table(FINDINGS).unwrap().len().unwrap(), 0);
        assert_eq!(txn.open_table(FINDING_FPS).unwrap().len().unwrap(), 0);
        assert_eq!(
            txn.open_table(FINDINGS_BY_LAST_SEEN)
                .unwrap()
                .len()
                .unwrap(),
            0
        );
        assert_eq!(txn.open_table(DISMISSALS).unwrap().len().unwrap(), 0);
        assert_eq!(txn.open_table(DISMISSAL_IDS).unwrap().len().unwrap(), 0);
        assert_eq!(
            txn.open_table(DISMISSALS_BY_REPO).unwrap().len().unwrap(),
            0
        );
        assert_eq!(
            txn.open_table(DISMISSALS_BY_SCOPE).unwrap().len().unwrap(),
            0
        );
        assert_eq!(txn.open_table(VERDICTS_BY_SEQ).unwrap().len().unwrap(), 1);
    }
}
