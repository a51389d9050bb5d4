//! Postings of the similar-claims index, stored in blocks: `(term, repo, first doc)` → up to
//! [`BLOCK_LEN`] postings `(doc, term count, doc length)` of that term in that repository, in doc
//! order, as bincode (varints; each doc as its distance from the one before, the first from the
//! key's). A search reads every posting of its terms; in blocks that is one B-tree value per
//! 128 postings and a tight decode, instead of a B-tree step per posting (`memory-bench`:
//! docs/BENCHMARKS.md).
//!
//! Docs only grow (a claim doc is `verdict seq << 10 | claim index`, and verdicts are never
//! deleted), so writing is appending: the last block of a `(term, repo)` takes new postings
//! until it is full, then a new block begins, keyed by its first doc.

use redb::{ReadableTable, Table};

use super::{ReadBudget, StoreError};

/// Postings per block.
pub const BLOCK_LEN: usize = 128;

/// One posting: the claim doc, how often the term occurs in it, and its length in terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Posting {
    pub doc: u64,
    pub tf: u16,
    pub len: u16,
}

/// The table as the write path holds it.
pub type PostingsTable<'txn> = Table<'txn, (&'static str, u32, u64), &'static [u8]>;

fn encode(first_doc: u64, postings: &[Posting]) -> Vec<u8> {
    let mut previous = first_doc;
    let gaps: Vec<(u64, u16, u16)> = postings
        .iter()
        .map(|p| {
            let gap = p.doc - previous;
            previous = p.doc;
            (gap, p.tf, p.len)
        })
        .collect();
    bincode::encode_to_vec(&gaps, bincode::config::standard())
        .expect("a Vec of integers always encodes")
}

/// Decodes a block keyed by `first_doc`, appending its postings to `out`: the layout
/// [`encode`] writes (bincode's `Vec` of `(gap, tf, len)` with its standard config: a length,
/// then varints), read by hand because this loop is most of a search's time.
fn decode_into(first_doc: u64, bytes: &[u8], out: &mut Vec<Posting>) -> Result<(), StoreError> {
    let mut at = 0;
    let n = varint(bytes, &mut at).ok_or_else(|| corrupt(first_doc, &"no length"))?;
    if n == 0 || n > BLOCK_LEN as u64 {
        return Err(StoreError::CorruptIndex(format!(
            "a claim_terms block at doc {first_doc} holds {n} postings"
        )));
    }
    out.reserve(n as usize);
    let mut doc = first_doc;
    for _ in 0..n {
        let gap = varint(bytes, &mut at);
        let tf = varint(bytes, &mut at).and_then(|v| u16::try_from(v).ok());
        let len = varint(bytes, &mut at).and_then(|v| u16::try_from(v).ok());
        let (Some(gap), Some(tf), Some(len)) = (gap, tf, len) else {
            return Err(corrupt(first_doc, &"a posting cut short or out of range"));
        };
        doc = doc
            .checked_add(gap)
            .ok_or_else(|| corrupt(first_doc, &"a doc past u64::MAX"))?;
        out.push(Posting { doc, tf, len });
    }
    if at != bytes.len() {
        return Err(StoreError::CorruptIndex(format!(
            "a claim_terms block at doc {first_doc} has {} bytes after its postings",
            bytes.len() - at
        )));
    }
    Ok(())
}

/// One unsigned varint as bincode's standard config writes it: a byte below 251 is the
/// value; 251, 252 and 253 announce a little-endian u16, u32 and u64.
/// Each width is read as its own fixed-size array: a copy of a width known only at run time
/// made decoding a block 2.4x slower (a gap between two verdicts' claim docs is at least
/// 1,024, so most postings begin with a u16).
#[inline]
fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let first = *bytes.get(*at)?;
    *at += 1;
    let value = match first {
        0..=250 => return Some(u64::from(first)),
        251 => u64::from(u16::from_le_bytes(*bytes.get(*at..)?.first_chunk()?)),
        252 => u64::from(u32::from_le_bytes(*bytes.get(*at..)?.first_chunk()?)),
        253 => u64::from_le_bytes(*bytes.get(*at..)?.first_chunk()?),
        _ => return None,
    };
    // 2, 4 or 8 bytes.
    *at += 1 << (first - 250);
    Some(value)
}

fn corrupt(first_doc: u64, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::CorruptIndex(format!("claim_terms block at doc {first_doc}: {e}"))
}

/// Appends `new` (in doc order, every doc after those stored) to the postings of `(term,
/// repo)`: into its last block while it has room, then in new blocks.
pub fn append(
    table: &mut PostingsTable<'_>,
    term: &str,
    repo: u32,
    new: &[Posting],
) -> Result<(), StoreError> {
    let mut rest = new;
    let last = table
        .range((term, repo, 0)..=(term, repo, u64::MAX))?
        .next_back()
        .transpose()?
        .map(|(key, value)| (key.value().2, value.value().to_vec()));
    if let Some((first_doc, bytes)) = last {
        let mut block = Vec::with_capacity(BLOCK_LEN);
        decode_into(first_doc, &bytes, &mut block)?;
        if block.len() < BLOCK_LEN {
            let room = (BLOCK_LEN - block.len()).min(rest.len());
            if block.last().is_some_and(|p| rest[0].doc <= p.doc) {
                return Err(StoreError::CorruptIndex(format!(
                    "claim_terms: doc {} of term {term:?} is not after the last one stored",
                    rest[0].doc
                )));
            }
            block.extend_from_slice(&rest[..room]);
            table.insert(
                (term, repo, first_doc),
                encode(first_doc, &block).as_slice(),
            )?;
            rest = &rest[room..];
        }
    }
    for chunk in rest.chunks(BLOCK_LEN) {
        let first_doc = chunk[0].doc;
        table.insert((term, repo, first_doc), encode(first_doc, chunk).as_slice())?;
    }
    Ok(())
}

/// Postings waiting to be appended, grouped by `(term, repo)`: one copy of each term per group
/// rather than one per posting (a large import's transaction holds millions of postings of a
/// few thousand terms).
#[derive(Default)]
pub struct NewPostings {
    /// repo → term → postings, in the order pushed.
    by_repo: foldhash::HashMap<u32, foldhash::HashMap<String, Vec<Posting>>>,
}

impl NewPostings {
    pub fn push(&mut self, term: &str, repo: u32, posting: Posting) {
        let terms = self.by_repo.entry(repo).or_default();
        match terms.get_mut(term) {
            Some(postings) => postings.push(posting),
            None => {
                terms.insert(term.to_owned(), vec![posting]);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_repo.is_empty()
    }

    /// Appends every group, in `(term, repo)` key order, each group's postings in doc order.
    pub fn append_all(self, table: &mut PostingsTable<'_>) -> Result<(), StoreError> {
        let mut groups: Vec<(String, u32, Vec<Posting>)> = self
            .by_repo
            .into_iter()
            .flat_map(|(repo, terms)| {
                terms
                    .into_iter()
                    .map(move |(term, postings)| (term, repo, postings))
            })
            .collect();
        groups.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        for (term, repo, mut postings) in groups {
            postings.sort_unstable();
            append(table, &term, repo, &postings)?;
        }
        Ok(())
    }
}

/// The postings the vector [`read`] returns has room for when `count` are read: `count`
/// rounded up to a power of two, so that queries one after another reuse the allocator's
/// pages. Vectors of exact sizes made each query fault in fresh ones: `memory-bench`'s
/// common-words queries were 1.3x slower at p99 (the log, "2026-12-07 midday").
pub fn room_for(count: u64) -> u64 {
    count.checked_next_power_of_two().unwrap_or(count)
}

/// Every posting of `term` in repository `repo`, or in every repository when `None`, in doc
/// order, into a vector with [`room_for`] `count` of them (what [`count`] said); the budget's
/// deadline is checked per block.
pub fn read(
    table: &impl ReadableTable<(&'static str, u32, u64), &'static [u8]>,
    term: &str,
    repo: Option<u32>,
    count: u64,
    budget: &mut ReadBudget,
) -> Result<Vec<Posting>, StoreError> {
    let mut out = Vec::with_capacity(usize::try_from(room_for(count)).unwrap_or_default());
    let mut repos = 0;
    let mut last_repo = None;
    for row in table.range(blocks_of(term, repo))? {
        budget.tick()?;
        let (key, value) = row?;
        let (_, block_repo, first_doc) = key.value();
        if last_repo != Some(block_repo) {
            repos += 1;
            last_repo = Some(block_repo);
        }
        decode_into(first_doc, value.value(), &mut out)?;
    }
    if repos > 1 {
        // Each repository's blocks are in doc order; together they are not.
        out.sort_unstable();
    }
    Ok(out)
}

/// The keys of `term`'s blocks in repository `repo`, or in every repository when `None`.
fn blocks_of(term: &str, repo: Option<u32>) -> std::ops::RangeInclusive<(&str, u32, u64)> {
    match repo {
        Some(id) => (term, id, 0)..=(term, id, u64::MAX),
        None => (term, 0, 0)..=(term, u32::MAX, u64::MAX),
    }
}

/// How many postings `term` has in repository `repo`, or in every repository when `None`: the
/// lengths its blocks begin with, no posting decoded (what a search holds of the pool of
/// postings before it reads them: `postings_pool.rs`).
pub fn count(
    table: &impl ReadableTable<(&'static str, u32, u64), &'static [u8]>,
    term: &str,
    repo: Option<u32>,
    budget: &mut ReadBudget,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for row in table.range(blocks_of(term, repo))? {
        budget.tick()?;
        let (key, value) = row?;
        n += varint(value.value(), &mut 0).ok_or_else(|| corrupt(key.value().2, &"no length"))?;
    }
    Ok(n)
}

/// The posting of `doc` for `term` in `repo`, if stored.
pub fn get(
    table: &impl ReadableTable<(&'static str, u32, u64), &'static [u8]>,
    term: &str,
    repo: u32,
    doc: u64,
) -> Result<Option<Posting>, StoreError> {
    let Some(row) = table
        .range((term, repo, 0)..=(term, repo, doc))?
        .next_back()
    else {
        return Ok(None);
    };
    let (key, value) = row?;
    let mut block = Vec::with_capacity(BLOCK_LEN);
    decode_into(key.value().2, value.value(), &mut block)?;
    Ok(block
        .binary_search_by_key(&doc, |p| p.doc)
        .ok()
        .map(|i| block[i]))
}

/// Every posting of the table with its term and repository, block by block (for `check`).
pub fn for_each(
    table: &impl ReadableTable<(&'static str, u32, u64), &'static [u8]>,
    mut f: impl FnMut(&str, u32, Posting),
) -> Result<(), StoreError> {
    let mut block = Vec::with_capacity(BLOCK_LEN);
    for row in table.iter()? {
        let (key, value) = row?;
        let (term, repo, first_doc) = key.value();
        block.clear();
        decode_into(first_doc, value.value(), &mut block)?;
        for posting in &block {
            f(term, repo, *posting);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase, TableDefinition};

    const TABLE: TableDefinition<(&str, u32, u64), &[u8]> = TableDefinition::new("t");

    fn p(doc: u64) -> Posting {
        Posting {
            doc,
            tf: (doc % 3) as u16 + 1,
            len: (doc % 7) as u16 + 2,
        }
    }

    #[test]
    fn appends_fill_the_last_block_then_start_new_ones_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("p.redb")).unwrap();
        let mut want_a = Vec::new();
        let mut want_b = Vec::new();
        // Appends of uneven sizes, interleaved across two repositories and a second term.
        for (round, n) in [3usize, 200, 1, 127, 128, 300].into_iter().enumerate() {
            let txn = db.begin_write().unwrap();
            {
                let mut table = txn.open_table(TABLE).unwrap();
                let base = (round as u64 + 1) * 10_000;
                let a: Vec<Posting> = (0..n as u64).map(|i| p(base + i * 3)).collect();
                let b: Vec<Posting> = (0..n as u64).map(|i| p(base + i * 5 + 1)).collect();
                append(&mut table, "retri", 0, &a).unwrap();
                append(&mut table, "retri", 7, &b).unwrap();
                append(&mut table, "upload", 0, &b).unwrap();
                want_a.extend(a);
                want_b.extend(b);
            }
            txn.commit().unwrap();
        }
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(TABLE).unwrap();
        let mut budget = ReadBudget::unlimited();
        let mut both = [want_a.clone(), want_b.clone()].concat();
        both.sort_unstable();
        for (repo, want) in [(Some(0), &want_a), (Some(7), &want_b), (None, &both)] {
            let n = count(&table, "retri", repo, &mut budget).unwrap();
            assert_eq!(n, want.len() as u64, "{repo:?}");
            assert_eq!(&read(&table, "retri", repo, n, &mut budget).unwrap(), want);
        }
        assert_eq!(count(&table, "retr", None, &mut budget).unwrap(), 0);
        assert!(
            read(&table, "retr", None, 0, &mut budget)
                .unwrap()
                .is_empty()
        );
        // Every block but the last of a run is full.
        let mut sizes = Vec::new();
        for row in table
            .range(("retri", 0, 0)..=("retri", 0, u64::MAX))
            .unwrap()
        {
            let (key, value) = row.unwrap();
            let mut block = Vec::new();
            decode_into(key.value().2, value.value(), &mut block).unwrap();
            sizes.push(block.len());
        }
        let n_blocks = sizes.len();
        assert!(
            sizes[..n_blocks - 1].iter().all(|&n| n == BLOCK_LEN),
            "{sizes:?}"
        );
        assert_eq!(sizes.iter().sum::<usize>(), want_a.len());
        for posting in want_a.iter().step_by(37) {
            assert_eq!(
                get(&table, "retri", 0, posting.doc).unwrap(),
                Some(*posting)
            );
            assert_eq!(get(&table, "retri", 0, posting.doc + 1).unwrap(), None);
        }
        let mut n = 0;
        for_each(&table, |_, _, _| n += 1).unwrap();
        assert_eq!(n, want_a.len() + 2 * want_b.len());
    }

    #[test]
    fn a_doc_before_the_stored_ones_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("p.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let mut table = txn.open_table(TABLE).unwrap();
        append(&mut table, "x", 0, &[p(10), p(20)]).unwrap();
        assert!(matches!(
            append(&mut table, "x", 0, &[p(15)]),
            Err(StoreError::CorruptIndex(_))
        ));
    }

    proptest::proptest! {
        /// The hand-written decoder reads exactly what bincode writes, across every varint
        /// width of gap, count and length.
        #[test]
        fn blocks_decode_as_bincode_encodes_them(
            first in 0u64..(1 << 50),
            parts in proptest::collection::vec(
                (
                    proptest::prop_oneof![0u64..250, 250u64..70_000, 70_000u64..(1 << 41)],
                    proptest::prop_oneof![1u16..250, 250u16..=u16::MAX],
                    proptest::prop_oneof![0u16..250, 250u16..=u16::MAX],
                ),
                1..=BLOCK_LEN,
            ),
        ) {
            let mut doc = first;
            let block: Vec<Posting> = parts
                .iter()
                .enumerate()
                .map(|(i, &(gap, tf, len))| {
                    if i > 0 {
                        doc += gap.max(1);
                    }
                    Posting { doc, tf, len }
                })
                .collect();
            let mut got = Vec::new();
            decode_into(first, &encode(first, &block), &mut got).unwrap();
            proptest::prop_assert_eq!(got, block);
        }
    }

    #[test]
    fn corrupt_blocks_are_errors() {
        let mut out = Vec::new();
        for bytes in [
            &[][..],
            &[5, 1][..],
            &[0xff; 12][..],
            &[1, 0, 252, 0, 0, 1, 0, 1][..],
            // A wide varint cut short: a u16, a u32 and a u64 each a byte short.
            &[1, 251, 0][..],
            &[1, 0, 1, 252, 1, 0, 0][..],
            &[1, 253, 0, 0, 0, 0, 0, 0, 0][..],
        ] {
            assert!(decode_into(0, bytes, &mut out).is_err(), "{bytes:?}");
        }
    }
}
