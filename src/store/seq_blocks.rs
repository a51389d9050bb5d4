//! The event filters (`event_source_seqs`, `event_kind_seqs`, schema version 10): the seqs of
//! the events with each source and each event_kind, in blocks of up to
//! [`BLOCK_LEN`] keyed by `(text, first seq)`, whose layout the schema step freezes
//! (`migrations/src/v0010_event_seq_blocks.rs`). New seqs are past every stored one, so a
//! write appends to a text's last block while it has room, then starts another; a deletion
//! rewrites each block that held a deleted seq once. Reading a text newest first walks its blocks
//! backwards from a seq.

use redb::{ReadOnlyTable, ReadableTable, Table};

use super::StoreError;
use super::tables::{BLOCK_LEN, decode_seq_block, encode_seq_block};

/// A table of blocks, as a write transaction opens it.
pub(super) type Blocks<'txn> = Table<'txn, (&'static str, u64), &'static [u8]>;

/// The seqs of the block stored under `(text, first)` as `bytes`.
pub(super) fn decode(
    name: &str,
    text: &str,
    first: u64,
    bytes: &[u8],
) -> Result<Vec<u64>, StoreError> {
    decode_seq_block(first, bytes).ok_or_else(|| {
        StoreError::CorruptIndex(format!("{name}: the block ({text:?}, {first}) is damaged"))
    })
}

/// Adds `seqs` (ascending) to the blocks of `text`.
pub(super) fn insert(
    table: &mut Blocks<'_>,
    name: &str,
    text: &str,
    seqs: &[u64],
) -> Result<(), StoreError> {
    let mut rest = seqs;
    while let Some(&seq) = rest.first() {
        // The block that holds seqs up to this one, and where the next block begins.
        let (mut block, mut stored_under) = match table.range((text, 0)..=(text, seq))?.next_back()
        {
            Some(row) => {
                let (key, value) = row?;
                let first = key.value().1;
                (decode(name, text, first, value.value())?, Some(first))
            }
            None => (Vec::new(), None),
        };
        let next_first = match table.range((text, seq.saturating_add(1))..)?.next() {
            Some(row) => {
                let (key, _) = row?;
                let (next_text, first) = key.value();
                (next_text == text).then_some(first)
            }
            None => None,
        };
        if block.len() >= BLOCK_LEN && block.last().is_some_and(|&last| last < seq) {
            // Past a full block: a new one.
            block.clear();
            stored_under = None;
        }
        let here = rest.partition_point(|&s| next_first.is_none_or(|next| s < next));
        block.extend_from_slice(&rest[..here]);
        rest = &rest[here..];
        block.sort_unstable();
        block.dedup();
        if let Some(first) = stored_under {
            table.remove((text, first))?;
        }
        for chunk in block.chunks(BLOCK_LEN) {
            table.insert((text, chunk[0]), encode_seq_block(chunk).as_slice())?;
        }
    }
    Ok(())
}

/// Takes `seqs` (ascending) out of the blocks of `text`, rewriting each block they were in
/// once; how many were there.
pub(super) fn remove(
    table: &mut Blocks<'_>,
    name: &str,
    text: &str,
    seqs: &[u64],
) -> Result<u64, StoreError> {
    let mut removed = 0;
    let mut rest = seqs;
    while let Some(&seq) = rest.first() {
        let (first, mut block) = match table.range((text, 0)..=(text, seq))?.next_back() {
            Some(row) => {
                let (key, value) = row?;
                let first = key.value().1;
                (first, decode(name, text, first, value.value())?)
            }
            None => {
                // Before every block of the text: not there.
                rest = &rest[1..];
                continue;
            }
        };
        let last = block.last().copied().unwrap_or(first);
        let here = rest.partition_point(|&s| s <= last).max(1);
        let (mine, after) = rest.split_at(here);
        rest = after;
        let before = block.len();
        block.retain(|s| mine.binary_search(s).is_err());
        if block.len() == before {
            continue;
        }
        removed += (before - block.len()) as u64;
        table.remove((text, first))?;
        if let Some(&new_first) = block.first() {
            table.insert((text, new_first), encode_seq_block(&block).as_slice())?;
        }
    }
    Ok(removed)
}

/// The seqs of `text` below `below`, newest first.
pub(super) struct NewestFirst<'t> {
    name: &'static str,
    text: String,
    blocks: redb::Range<'t, (&'static str, u64), &'static [u8]>,
    below: u64,
    /// The block being walked, from its oldest; handed out from the end.
    block: Vec<u64>,
}

impl<'t> NewestFirst<'t> {
    pub(super) fn new(
        table: &'t ReadOnlyTable<(&'static str, u64), &'static [u8]>,
        name: &'static str,
        text: &str,
        below: u64,
    ) -> Result<NewestFirst<'t>, StoreError> {
        Ok(NewestFirst {
            name,
            text: text.to_owned(),
            blocks: table.range((text, 0)..(text, below))?,
            below,
            block: Vec::new(),
        })
    }
}

impl Iterator for NewestFirst<'_> {
    type Item = Result<u64, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(seq) = self.block.pop() {
                if seq < self.below {
                    return Some(Ok(seq));
                }
                continue;
            }
            let (key, value) = match self.blocks.next_back()? {
                Ok(row) => row,
                Err(e) => return Some(Err(e.into())),
            };
            let first = key.value().1;
            match decode(self.name, &self.text, first, value.value()) {
                Ok(block) => self.block = block,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use redb::{Database, ReadableDatabase, TableDefinition};

    use super::*;

    const TABLE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("blocks");
    const TEXTS: [&str; 3] = ["", "auditor", "scenario"];

    #[derive(Debug, Clone)]
    enum Op {
        /// `n` new seqs past every stored one, spaced by `gap`, in one transaction.
        Append { text: usize, n: usize, gap: u64 },
        /// Seqs anywhere, across blocks (a block split, a new first block).
        Insert { text: usize, seqs: BTreeSet<u64> },
        /// Seqs out, present or not.
        Remove { text: usize, seqs: BTreeSet<u64> },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 1..300usize, 1..4u64).prop_map(|(text, n, gap)| Op::Append {
                text,
                n,
                gap
            }),
            (0..3usize, prop::collection::btree_set(0..2_000u64, 1..200))
                .prop_map(|(text, seqs)| Op::Insert { text, seqs }),
            (0..3usize, prop::collection::btree_set(0..2_500u64, 1..300))
                .prop_map(|(text, seqs)| Op::Remove { text, seqs }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the writes, the blocks hold what a set holds, each block sorted and within
        /// its size, and a newest-first walk from any seq hands out the set's seqs below it.
        #[test]
        fn blocks_hold_what_a_set_holds(ops in prop::collection::vec(op(), 1..30), below in 0..2_500u64) {
            let dir = tempfile::tempdir().unwrap();
            let db = Database::create(dir.path().join("blocks.redb")).unwrap();
            let mut model: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
            let mut next = 2_000u64;
            for op in ops {
                let txn = db.begin_write().unwrap();
                {
                    let mut table = txn.open_table(TABLE).unwrap();
                    match op {
                        Op::Append { text, n, gap } => {
                            let seqs: Vec<u64> = (0..n as u64).map(|i| next + i * gap).collect();
                            next += n as u64 * gap;
                            insert(&mut table, "t", TEXTS[text], &seqs).unwrap();
                            model.entry(TEXTS[text]).or_default().extend(seqs);
                        }
                        Op::Insert { text, seqs } => {
                            let seqs: Vec<u64> = seqs.into_iter().collect();
                            insert(&mut table, "t", TEXTS[text], &seqs).unwrap();
                            model.entry(TEXTS[text]).or_default().extend(seqs);
                        }
                        Op::Remove { text, seqs } => {
                            let set = model.entry(TEXTS[text]).or_default();
                            let there = seqs.iter().filter(|s| set.remove(s)).count() as u64;
                            let seqs: Vec<u64> = seqs.into_iter().collect();
                            prop_assert_eq!(remove(&mut table, "t", TEXTS[text], &seqs).unwrap(), there);
                        }
                    }
                }
                txn.commit().unwrap();
            }
            let txn = db.begin_read().unwrap();
            let table = txn.open_table(TABLE).unwrap();
            let mut stored: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
            for row in table.iter().unwrap() {
                let (key, value) = row.unwrap();
                let (text, first) = key.value();
                let block = decode("t", text, first, value.value()).unwrap();
                prop_assert!(!block.is_empty() && block.len() <= BLOCK_LEN);
                prop_assert_eq!(block[0], first);
                let text = TEXTS.into_iter().find(|t| *t == text).unwrap();
                stored.entry(text).or_default().extend(block);
            }
            for text in TEXTS {
                let want: Vec<u64> = model.get(text).into_iter().flatten().copied().collect();
                prop_assert_eq!(stored.remove(text).unwrap_or_default(), want.clone());
                let newest: Vec<u64> = NewestFirst::new(&table, "t", text, below)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let want: Vec<u64> = want.into_iter().rev().filter(|&s| s < below).collect();
                prop_assert_eq!(newest, want);
            }
        }
    }

    #[test]
    fn appending_to_a_full_block_leaves_it_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("blocks.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(TABLE).unwrap();
            let full: Vec<u64> = (1..=BLOCK_LEN as u64).collect();
            insert(&mut table, "t", "a", &full).unwrap();
            insert(&mut table, "t", "a", &[1_000]).unwrap();
            let keys: Vec<u64> = table
                .iter()
                .unwrap()
                .map(|row| row.unwrap().0.value().1)
                .collect();
            assert_eq!(keys, [1, 1_000]);
        }
        txn.commit().unwrap();
    }
}
