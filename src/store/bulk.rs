//! [`BulkWriter`]: the legacy import's writer, one write transaction held open across many
//! batches of puts, its index entries inserted sorted at its commit.

use redb::{ReadableTableMetadata, WriteTransaction};

use super::deferred::{Deferred, KeyCheck};
use super::records::{Put, Written};
use super::tables::IMPORT_KEYS;
use super::write::{Tables, write_in};
use super::{Store, StoreError};

impl Store {
    /// A writer for many batches of puts per transaction (the legacy import): see
    /// [`BulkWriter`].
    pub fn bulk_writer(&self) -> BulkWriter<'_> {
        BulkWriter {
            store: self,
            txn: None,
            later: Deferred::default(),
            n_keys: Some(0),
            failed: false,
        }
    }
}

/// Writes batches of puts into one write transaction, held open until [`BulkWriter::commit`]
/// (the next write begins a new one). The index entries of the whole transaction are inserted
/// at its commit, sorted: each tree is then built in one pass instead of being walked once per
/// batch. Nothing is durable before `commit` returns; dropping the writer without it, or a
/// failed write or commit, rolls the open transaction back, and after a failure every later
/// call fails too (what the transaction had answered is gone).
///
/// The puts given to one writer must not repeat an import key (the import numbers each line's
/// occurrences, so its keys are distinct). While the `import_keys` table holds only keys this
/// writer committed (it was empty when the writer began), no lookup is needed to know a key is
/// new, and none is done; a repeated key is then found when the keys are inserted and fails
/// the commit. Otherwise each key is looked up, as [`Store::write`] does.
pub struct BulkWriter<'s> {
    store: &'s Store,
    txn: Option<WriteTransaction>,
    later: Deferred,
    /// `Some(n)`: `import_keys` held exactly the `n` keys this writer committed when its
    /// transactions began, so its keys are new without a lookup.
    n_keys: Option<u64>,
    /// A write or commit failed: what the open transaction had answered is gone, so the
    /// writer refuses to go on.
    failed: bool,
}

impl BulkWriter<'_> {
    /// Applies `puts` in order in the open transaction (beginning one if none is open).
    pub fn write(&mut self, puts: &[Put]) -> Result<Vec<Written>, StoreError> {
        if self.failed {
            return Err(StoreError::BulkAborted);
        }
        let txn = match &mut self.txn {
            Some(txn) => txn,
            slot @ None => {
                let txn = self.store.begin_write()?;
                let n_stored = txn.open_table(IMPORT_KEYS)?.len()?;
                if self.n_keys != Some(n_stored) {
                    self.n_keys = None;
                }
                slot.insert(txn)
            }
        };
        let check = KeyCheck::given(self.n_keys);
        let written =
            Tables::open(txn, &mut self.later).and_then(|mut t| write_in(&mut t, puts, check));
        if written.is_err() {
            // Part of `puts` may be applied: nothing of this transaction may be committed.
            self.txn = None;
            self.later = Deferred::default();
            self.failed = true;
        }
        written
    }

    /// Inserts the deferred index entries and commits the open transaction durably, if any.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if self.failed {
            return Err(StoreError::BulkAborted);
        }
        let Some(txn) = self.txn.take() else {
            return Ok(());
        };
        let mut later = std::mem::take(&mut self.later);
        let check = KeyCheck::given(self.n_keys);
        let inserted = Tables::open(&txn, &mut later).and_then(|mut t| t.insert_deferred(check));
        let committed = inserted.and_then(|n_new_keys| Ok((n_new_keys, txn.commit()?)));
        match committed {
            Ok((n_new_keys, ())) => {
                self.n_keys = self.n_keys.map(|n| n + n_new_keys);
                if self.store.shared.codec.current().is_none() {
                    self.store.after_plain_writes(usize::MAX);
                }
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

impl KeyCheck {
    /// Fresh while the writer knows `import_keys` holds only its own keys.
    fn given(n_keys: Option<u64>) -> KeyCheck {
        match n_keys {
            Some(_) => KeyCheck::Fresh,
            None => KeyCheck::Lookup,
        }
    }
}
