//! Idempotency keys given by clients: kept for a window (`Store::expire_client_keys` removes
//! older ones, oldest first, in bounded transactions), so that a retry within it is answered
//! with what the first attempt stored. The keys are checked and written by the write path in
//! the same transaction as the records they name (`write.rs`).

use redb::{ReadableDatabase, ReadableTable};

use super::records::{ClientKey, Written};
use super::tables::{CLIENT_KEYS, CLIENT_KEYS_BY_TIME};
use super::{Store, StoreError};

impl Store {
    /// What a single write's `key` names among the committed keys, before the write is judged:
    /// [`Written::Duplicate`] when it was given with this request, [`Written::KeyReused`] with
    /// another, `None` when it is new. For a route whose checks read stored state (a dismissal
    /// is refused unconfirmed when the finding has since been raised as block): a retry is
    /// answered with what its first attempt stored, whatever the state now. The write checks
    /// the key again in its transaction. One lookup.
    pub fn client_key_written(&self, key: &ClientKey) -> Result<Option<Written>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(CLIENT_KEYS)?;
        Ok(table.get(key.key.as_slice())?.map(|row| {
            let (seq, _, fingerprint) = row.value();
            key.found(seq, fingerprint)
        }))
    }

    /// Removes at most `batch` client keys first given before `cutoff_ms`, in one durable
    /// transaction; returns how many (0: none left to remove).
    pub fn expire_client_keys(&self, cutoff_ms: u64, batch: usize) -> Result<u64, StoreError> {
        let txn = self.begin_write()?;
        let mut n_removed = 0;
        {
            let mut by_time = txn.open_table(CLIENT_KEYS_BY_TIME)?;
            let mut keys = txn.open_table(CLIENT_KEYS)?;
            let doomed: Vec<(u64, Vec<u8>)> = by_time
                .range(..(cutoff_ms, &[][..]))?
                .take(batch)
                .map(|row| {
                    row.map(|(key, _)| {
                        let (created, key) = key.value();
                        (created, key.to_vec())
                    })
                })
                .collect::<Result<_, _>>()?;
            for (created, key) in doomed {
                by_time.remove((created, key.as_slice()))?;
                // A key given again after expiring has a newer entry: keep that one.
                let current = keys.get(key.as_slice())?.map(|v| v.value().1);
                if current == Some(created) {
                    keys.remove(key.as_slice())?;
                }
                n_removed += 1;
            }
        }
        if n_removed == 0 {
            return Ok(0);
        }
        txn.commit()?;
        Ok(n_removed)
    }
}
