//! Verdicts stored before schema 11 (codec version 3: one zstd block) rewritten as version 5,
//! their fields readable without their JSON (`codec.rs`, `values.rs`), after the migration, in
//! bounded transactions behind a progress mark (`derived.rs`): a kill loses one transaction's
//! work and the next open goes on. A verdict version 5 does not suit (too large to split,
//! `VerdictValue::encode`) stays as it is, as does one that cannot be read (`check` reports it).
//! Nothing a reader sees changes.

use redb::{ReadableTable, WriteTransaction};

use super::codec::{self, CODEC_VERSION};
use super::derived::Build;
use super::dictionary::{CURRENT, current_in};
use super::meta;
use super::tables::{META, VERDICTS_BY_SEQ};
use super::values::VerdictValue;
use super::{Store, StoreError};

/// The `meta` key recording that the verdicts stored before schema 11 were rewritten.
const SPLIT: &str = "codec/verdicts_split";
/// The rewrite's progress mark: the verdicts through this seq are done.
const SPLIT_THROUGH: &str = "codec/verdicts_split_through";
/// Verdicts per transaction of the rewrite, at most.
const SPLIT_BATCH: u64 = 4_096;
/// Bytes of rewritten values per transaction, about (a verdict may be up to 1 MiB).
const MAX_STEP_BYTES: usize = 32 << 20;

impl Store {
    /// Rewrites the version-3 verdicts as version 5 (see the module documentation); a no-op
    /// once done.
    pub(super) fn split_verdicts(&self) -> Result<(), StoreError> {
        self.build_derived(&Build {
            what: "verdicts split at their JSON",
            mark: SPLIT_THROUGH,
            rules: "",
            built: "",
            // A dictionary the file names but this process cannot load: not now, and not
            // marked done, so that an open that can load it splits.
            is_current: &|meta_table| {
                Ok(meta::get(meta_table, SPLIT)? == 1
                    || (meta::get(meta_table, CURRENT)? != 0 && current_in(meta_table)?.is_none()))
            },
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
/// current dictionary, stopping early once [`MAX_STEP_BYTES`] are rewritten; returns the last
/// verdict's seq done, `None` when none is left.
fn split_after(txn: &WriteTransaction, after: u64, batch: u64) -> Result<Option<u64>, StoreError> {
    let Some(dictionary) = current_in(&txn.open_table(META)?)? else {
        // No dictionary (`is_current` skips one that cannot be loaded), so no version-3
        // value: nothing to do.
        return Ok(None);
    };
    let mut verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let mut last = None;
    let mut rewritten = Vec::new();
    let mut bytes_rewritten = 0;
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
            bytes_rewritten += split.len();
            rewritten.push((seq.value(), split));
        }
        if bytes_rewritten > MAX_STEP_BYTES {
            break;
        }
    }
    for (seq, split) in rewritten {
        verdicts.insert(seq, split.as_slice())?;
    }
    Ok(last)
}
