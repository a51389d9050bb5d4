//! Schema version 10: the event filters as blocks of seqs. Frozen: these definitions and the
//! block layout describe version-10 files forever.
//!
//! | table | key | value |
//! |---|---|---|
//! | `event_source_seqs` | (source, first seq of the block) | a block: the seqs of events with that source, ascending |
//! | `event_kind_seqs` | (event_kind, first seq of the block) | a block: the seqs of events with that event_kind, ascending |
//!
//! They replace `events_by_source` and `events_by_kind`, `(text, seq) → ()`: an entry of
//! about 20 bytes per event and index, in B-tree leaves that filled only about half, since
//! every new entry lands at the end of its text's range in the middle of the tree, where a
//! full leaf splits in two halves and the left one never grows again. A block holds up to
//! [`BLOCK_LEN`] seqs as bincode's `Vec<u64>` (standard configuration: a length, then varints)
//! of the gaps between them, the first gap counted from the key's seq (so 0): one or two bytes
//! per event and index.
//!
//! The step copies both tables into blocks, entry by entry in key order, and drops them, in its
//! one transaction: a kill during it leaves the file at version 9, and the next open runs it
//! again.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::MigrateError;
use crate::v0001_initial::{EVENTS_BY_KIND, EVENTS_BY_SOURCE};

pub const EVENT_SOURCE_SEQS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("event_source_seqs");
pub const EVENT_KIND_SEQS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("event_kind_seqs");

/// Seqs in a block, at most.
pub const BLOCK_LEN: usize = 128;

/// Rows between two progress reports.
const PROGRESS_EVERY: u64 = 100_000;

/// A block of `seqs` (ascending, distinct, not empty), stored under `seqs[0]`.
pub fn encode_seq_block(seqs: &[u64]) -> Vec<u8> {
    let gaps: Vec<u64> = seqs
        .iter()
        .scan(seqs[0], |previous, &seq| {
            let gap = seq - *previous;
            *previous = seq;
            Some(gap)
        })
        .collect();
    bincode::encode_to_vec(&gaps, bincode::config::standard())
        .expect("a Vec of integers always encodes")
}

/// The seqs of the block stored under `first` as `bytes`; `None` when it is not a block
/// [`encode_seq_block`] writes (cut short, too long, a first gap that is not 0, seqs not
/// strictly ascending).
pub fn decode_seq_block(first: u64, bytes: &[u8]) -> Option<Vec<u64>> {
    let config = bincode::config::standard().with_limit::<{ 10 * BLOCK_LEN + 10 }>();
    let (gaps, used): (Vec<u64>, usize) = bincode::decode_from_slice(bytes, config).ok()?;
    if used != bytes.len() || gaps.is_empty() || gaps.len() > BLOCK_LEN || gaps[0] != 0 {
        return None;
    }
    let mut seq = first;
    let mut seqs = Vec::with_capacity(gaps.len());
    for (i, gap) in gaps.into_iter().enumerate() {
        if i > 0 && gap == 0 {
            return None;
        }
        seq = seq.checked_add(gap)?;
        seqs.push(seq);
    }
    Some(seqs)
}

pub(crate) fn apply(
    txn: &WriteTransaction,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), MigrateError> {
    let mut n_rows = 0u64;
    for (old, new) in [
        (EVENTS_BY_SOURCE, EVENT_SOURCE_SEQS),
        (EVENTS_BY_KIND, EVENT_KIND_SEQS),
    ] {
        let old = txn.open_table(old)?;
        let mut new = txn.open_table(new)?;
        let mut text = String::new();
        let mut block: Vec<u64> = Vec::with_capacity(BLOCK_LEN);
        let mut flush = |text: &str, block: &mut Vec<u64>| -> Result<(), MigrateError> {
            if let Some(&first) = block.first() {
                new.insert((text, first), encode_seq_block(block).as_slice())?;
                block.clear();
            }
            Ok(())
        };
        for row in old.iter()? {
            let (key, _) = row?;
            let (row_text, seq) = key.value();
            if row_text != text || block.len() == BLOCK_LEN {
                flush(&text, &mut block)?;
                if row_text != text {
                    text = row_text.to_owned();
                }
            }
            block.push(seq);
            n_rows += 1;
            if n_rows.is_multiple_of(PROGRESS_EVERY) {
                on_progress(n_rows);
            }
        }
        flush(&text, &mut block)?;
    }
    txn.delete_table(EVENTS_BY_SOURCE)?;
    txn.delete_table(EVENTS_BY_KIND)?;
    on_progress(n_rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_tables_gone, db_at, upgrade_to};
    use redb::ReadableDatabase;

    #[test]
    fn upgrade_from_a_version_9_file_packs_the_filters_into_blocks() {
        let (_dir, db) = db_at(9);
        let txn = db.begin_write().unwrap();
        {
            let mut sources = txn.open_table(EVENTS_BY_SOURCE).unwrap();
            for seq in 1..=300 {
                sources.insert(("scenario", seq * 3), ()).unwrap();
            }
            sources.insert(("auditor", 7), ()).unwrap();
            txn.open_table(EVENTS_BY_KIND)
                .unwrap()
                .insert(("fill", 5), ())
                .unwrap();
        }
        txn.commit().unwrap();

        assert_eq!(upgrade_to(&db, 10), [(10, 302)]);
        assert_tables_gone(&db, &["events_by_source", "events_by_kind"]);
        let txn = db.begin_read().unwrap();
        let blocks = |def: TableDefinition<(&str, u64), &[u8]>| -> Vec<(String, Vec<u64>)> {
            let table = txn.open_table(def).unwrap();
            table
                .iter()
                .unwrap()
                .map(|row| {
                    let (key, value) = row.unwrap();
                    let (text, first) = key.value();
                    (
                        text.to_owned(),
                        decode_seq_block(first, value.value()).unwrap(),
                    )
                })
                .collect()
        };
        let scenario: Vec<u64> = (1..=300).map(|s| s * 3).collect();
        assert_eq!(
            blocks(EVENT_SOURCE_SEQS),
            [
                ("auditor".to_owned(), vec![7]),
                ("scenario".to_owned(), scenario[..128].to_vec()),
                ("scenario".to_owned(), scenario[128..256].to_vec()),
                ("scenario".to_owned(), scenario[256..].to_vec()),
            ]
        );
        assert_eq!(blocks(EVENT_KIND_SEQS), [("fill".to_owned(), vec![5])]);
    }

    #[test]
    fn blocks_round_trip_and_damage_is_refused() {
        let seqs = [10, 11, 300, 70_000, u64::MAX];
        let bytes = encode_seq_block(&seqs);
        assert_eq!(decode_seq_block(10, &bytes).unwrap(), seqs);
        assert_eq!(decode_seq_block(10, &bytes[..bytes.len() - 1]), None);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_seq_block(10, &longer), None);
        // A repeated seq (a gap of 0 after the first), a first gap that is not 0, too many.
        assert_eq!(decode_seq_block(1, &encode_seq_block(&[1, 1])), None);
        let shifted = bincode::encode_to_vec(vec![1u64], bincode::config::standard()).unwrap();
        assert_eq!(decode_seq_block(1, &shifted), None);
        let many: Vec<u64> = (1..=BLOCK_LEN as u64 + 1).collect();
        assert_eq!(decode_seq_block(1, &encode_seq_block(&many)), None);
        assert_eq!(decode_seq_block(u64::MAX, &encode_seq_block(&[5, 6])), None);
    }
}
