//! Indexes derived from the stored verdicts by rules with a version of their own (the claims
//! index, the findings memory): built by the store on open when the version recorded with them
//! is not today's, in bounded transactions behind a progress mark, so that a kill in the middle
//! of a build loses one transaction's work and the next open goes on from the mark. The mark's
//! key names the rules the build is made under: a build that another version of the service
//! began, under other rules (its values perhaps laid out otherwise), is started again from
//! scratch, not gone on with, and the mark it left is removed so that it starts again too.

use redb::{ReadOnlyTable, ReadableDatabase, Table, WriteTransaction};

use super::meta;
use super::tables::META;
use super::{Store, StoreError};

type Meta<'txn> = Table<'txn, &'static str, u64>;
type IsCurrent = dyn Fn(&ReadOnlyTable<&'static str, u64>) -> Result<bool, StoreError>;
type Clear = dyn Fn(&WriteTransaction) -> Result<(), StoreError>;
type Step = dyn Fn(&WriteTransaction, u64) -> Result<Option<u64>, StoreError>;
type Finish = dyn Fn(&mut Meta<'_>) -> Result<(), StoreError>;

/// One derived index's build.
pub(super) struct Build<'a> {
    /// What is built, for the log.
    pub what: &'static str,
    /// The `meta` key of the progress mark (the seq through which verdicts are done), and of
    /// every build's before it: the build's own is `{mark}/{rules}`.
    pub mark: &'static str,
    /// Today's rules, as the mark's key names them (empty: the key is `mark` itself).
    pub rules: &'a str,
    /// The `meta` key `finish` writes and `clear` removes (empty: none). Present beside this
    /// build's mark, another build (an older binary's, after a downgrade) has cleared and
    /// finished since the mark was written: the mark is not gone on with.
    pub built: &'static str,
    /// Whether it is built under today's rules (read from `meta`).
    pub is_current: &'a IsCurrent,
    /// Empties what an older build left, for a build from scratch.
    pub clear: &'a Clear,
    /// Does the verdicts after a seq (a bounded number of them) in one transaction; returns
    /// the last seq done, `None` when none was left.
    pub step: &'a Step,
    /// Records that it is built under today's rules.
    pub finish: &'a Finish,
}

impl Store {
    /// Runs `build` unless the index is current (see the module documentation).
    pub(super) fn build_derived(&self, build: &Build<'_>) -> Result<(), StoreError> {
        let mark = match build.rules {
            "" => build.mark.to_owned(),
            rules => format!("{}/{rules}", build.mark),
        };
        let through = {
            let txn = self.db()?.begin_read()?;
            let meta_table = txn.open_table(META)?;
            if (build.is_current)(&meta_table)? {
                return Ok(());
            }
            let finished_since = !build.built.is_empty() && meta_table.get(build.built)?.is_some();
            meta_table
                .get(mark.as_str())?
                .map(|v| v.value())
                .filter(|_| !finished_since)
        };
        let mut through = match through {
            Some(through) => through,
            None => {
                let txn = self.begin_write()?;
                (build.clear)(&txn)?;
                let mut meta_table = txn.open_table(META)?;
                // The marks of builds under other rules: theirs is not gone on with.
                meta::remove_under(&mut meta_table, build.mark)?;
                meta_table.insert(mark.as_str(), 0)?;
                drop(meta_table);
                txn.commit()?;
                0
            }
        };
        tracing::info!(what = build.what, from_seq = through, "building");
        loop {
            let txn = self.begin_write()?;
            let next = (build.step)(&txn, through)?;
            {
                let mut meta_table = txn.open_table(META)?;
                match next {
                    Some(seq) => {
                        meta_table.insert(mark.as_str(), seq)?;
                        through = seq;
                    }
                    None => {
                        meta_table.remove(mark.as_str())?;
                        (build.finish)(&mut meta_table)?;
                    }
                }
            }
            txn.commit()?;
            if next.is_none() {
                tracing::info!(what = build.what, "built");
                return Ok(());
            }
            tracing::info!(what = build.what, through_seq = through, "build progress");
            if let Some(on_build) = &self.shared.options.on_build {
                on_build(build.what, through);
            }
        }
    }
}
