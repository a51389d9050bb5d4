//! Schema version 14: every idempotency key named like a batch line's position has a key of
//! its content beside it.
//!
//! A line of an NDJSON batch sent with `Idempotency-Key: K` is known by its position (`K#n`)
//! and by its content: `K`, a NUL, its fingerprint in 16 hex digits, `.` and its seq, in
//! `client_keys` with the same value `(seq, created ms, fingerprint)` and its own entry in
//! `client_keys_by_time`. A retry of the batch in another shape finds a moved line by its
//! content, one range per fingerprint. Keys stored before content keys were (a batch's lines,
//! and single writes keyed `K#n`, which count as line `n` of batch `K`) had their position's
//! only, and were found by reading every key stored under `K`. This step gives each of them
//! its content key, so that a retry's cost is bounded by the retry, not by what `K` holds.
//!
//! A position key is a key without a NUL whose text after its last `#` is decimal digits, and
//! whose text before it is not empty. Keys expire as before: the content key has the same
//! creation time.

use redb::{ReadableTable, WriteTransaction};

use crate::MigrateError;
use crate::v0005_repos_and_memory::{CLIENT_KEYS, CLIENT_KEYS_BY_TIME};

/// Ends a batch line's header in its content key: a byte no client key holds.
const MARK: u8 = 0;

/// The header of `key` (route tag and client key) when it is named like a batch line's
/// position.
fn position_header(key: &[u8]) -> Option<&[u8]> {
    if key.contains(&MARK) {
        return None;
    }
    let hash = key.iter().rposition(|&b| b == b'#')?;
    let n = &key[hash + 1..];
    (hash > 1 && !n.is_empty() && n.iter().all(u8::is_ascii_digit)).then(|| &key[..hash])
}

/// The content key of a line stored as `seq` under `header` with `fingerprint`.
fn content_key(header: &[u8], fingerprint: u64, seq: u64) -> Vec<u8> {
    let mut key = header.to_vec();
    key.push(MARK);
    key.extend_from_slice(format!("{fingerprint:016x}.{seq}").as_bytes());
    key
}

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    let mut keys = txn.open_table(CLIENT_KEYS)?;
    let mut by_time = txn.open_table(CLIENT_KEYS_BY_TIME)?;
    let mut contents = Vec::new();
    for row in keys.iter()? {
        let (key, value) = row?;
        let (seq, created, fingerprint) = value.value();
        if let Some(header) = position_header(key.value()) {
            contents.push((
                content_key(header, fingerprint, seq),
                (seq, created, fingerprint),
            ));
        }
    }
    contents.sort_unstable();
    let mut added = 0;
    for (key, value) in contents {
        if keys.get(key.as_slice())?.is_some() {
            continue;
        }
        keys.insert(key.as_slice(), value)?;
        by_time.insert((value.1, key.as_slice()), ())?;
        added += 1;
        if added % 10_000 == 0 {
            on_progress(added);
        }
    }
    on_progress(added);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{db_at, upgrade_to};
    use redb::{ReadableDatabase, ReadableTableMetadata};

    #[test]
    fn upgrade_from_a_version_13_file_gives_position_keys_their_content_keys() {
        let (_dir, db) = db_at(13);
        let had_content = content_key(b"eK", 0xab, 4);
        #[rustfmt::skip]
        let stored: Vec<(Vec<u8>, (u64, u64, u64))> = vec![
            (b"eK#1".to_vec(), (3, 1_000, 0xaa)),     // a position key: gets one
            (b"eK#2".to_vec(), (4, 1_000, 0xab)),     // has one already
            (had_content.clone(), (4, 1_000, 0xab)),
            (b"vown".to_vec(), (5, 2_000, 0xcc)),     // a plain key
            (b"eK#x".to_vec(), (6, 2_000, 0xdd)),     // not a position
            (b"e#7".to_vec(), (7, 2_000, 0xee)),      // no header
            (b"eK#3\x0012".to_vec(), (8, 3_000, 0xff)), // a batch line's own key
        ];
        let txn = db.begin_write().unwrap();
        {
            let mut keys = txn.open_table(CLIENT_KEYS).unwrap();
            let mut by_time = txn.open_table(CLIENT_KEYS_BY_TIME).unwrap();
            for (key, value) in &stored {
                keys.insert(key.as_slice(), value).unwrap();
                by_time.insert((value.1, key.as_slice()), ()).unwrap();
            }
        }
        txn.commit().unwrap();

        assert_eq!(upgrade_to(&db, 14), [(14, 1)]);

        let txn = db.begin_read().unwrap();
        let keys = txn.open_table(CLIENT_KEYS).unwrap();
        let by_time = txn.open_table(CLIENT_KEYS_BY_TIME).unwrap();
        let new = content_key(b"eK", 0xaa, 3);
        assert_eq!(
            keys.get(new.as_slice()).unwrap().unwrap().value(),
            (3, 1_000, 0xaa)
        );
        assert!(by_time.get((1_000, new.as_slice())).unwrap().is_some());
        assert_eq!(keys.len().unwrap(), stored.len() as u64 + 1);
        assert_eq!(by_time.len().unwrap(), stored.len() as u64 + 1);
    }
}
