//! Verdicts stored before schema 11 (codec version 3: one zstd block) rewritten as version 5,
//! their fields readable without their JSON (`codec.rs`, `values.rs`), after the migration, in
//! bounded transactions behind a progress mark (`derived.rs`): a kill loses one transaction's
//! work and the next open goes on. A verdict version 5 does not suit (too large to split,
//! `VerdictValue::encode`) stays as it is, as does one that cannot be read (`check` reports it).
//! Nothing a reader sees changes.

use redb::{ReadableTable, WriteTransaction};

use super::codec::{self, CODEC_VERSION};
use super::derived::Build;
use super::dictionary::current_in;
use super::meta;
use super::tables::{META, VERDICTS_BY_SEQ};
use super::values::VerdictValue;
use super::{Store, StoreError};

/// The `meta` key recording that the verdicts stored before schema 11 were rewritten.
const SPLIT: &str = "codec/verdicts_split";
/// The rewrite's progress mark: the verdicts through this seq are done.
const SPLIT_THROUGH: &str = "codec/verdicts_split_through";
/// Verdicts per transaction of the rewrite.
const SPLIT_BATCH: u64 = 4_096;

impl Store {
    /// Rewrites the version-3 verdicts as version 5 (see the module documentation); a no-op
    /// once done.
    pub(super) fn split_verdicts(&self) -> Result<(), StoreError> {
        self.build_derived(&Build {
            what: "verdicts split at their JSON",
            mark: SPLIT_THROUGH,
            is_current: &|meta_table| Ok(meta::get(meta_table, SPLIT)? == 1),
            clear: &|_| Ok(()),
            step: &|txn, after| split_after(txn, after, SPLIT_BATCH),
            finish: &|meta_table| {
                meta_table.insert(SPLIT, 1)?;
                Ok(())
            },
        })
    }
}

/// Rewrites the version-3 verdicts among the `batch` verdicts after seq `after` with the
/// current dictionary; returns the last verdict's seq, `None` when none is left.
fn split_after(txn: &WriteTransaction, after: u64, batch: u64) -> Result<Option<u64>, StoreError> {
    let Some(dictionary) = current_in(&txn.open_table(META)?)? else {
        // No dictionary, no version-3 value: nothing to do.
        return Ok(None);
    };
    let mut verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let mut last = None;
    let mut rewritten = Vec::new();
    for row in verdicts
        .range(after.saturating_add(1)..)?
        .take(batch as usize)
    {
        let (seq, bytes) = row?;
        last = Some(seq.value());
        if bytes.value().first() != Some(&CODEC_VERSION) {
            continue;
        }
        let Ok(value) = codec::decode::<VerdictValue>(bytes.value()) else {
            continue;
        };
        let split = value.encode(Some(&dictionary));
        if codec::is_split(&split) {
            rewritten.push((seq.value(), split));
        }
    }
    for (seq, split) in rewritten {
        verdicts.insert(seq, split.as_slice())?;
    }
    Ok(last)
}
