//! Index entries a write transaction defers to its end, and their insertion: each index in key
//! order.
//!
//! Inserted in put order, entries land all over their trees (hashes and identities are random;
//! a source's or PR's new entries go at the end of its range, in the middle of the tree);
//! sorted, they walk each tree once, leaf after leaf. Measured on a 1M-line legacy import
//! (docs/benchmarks/log-2026-11.md). What the transaction must find before its end (a verdict
//! identity, an import key, a client key it wrote itself) it finds in the maps kept here.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use redb::{ReadableTable, Table};

use super::StoreError;
use super::postings::NewPostings;
use super::seq_blocks;
use super::write::{Lazy, Tables};

/// A PR's counts by overall (approve, request_changes, block) and its newest verdict.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct PrDelta {
    pub by_overall: [u64; 3],
    pub last_seq: u64,
}

/// The entries, inserted when the transaction ends.
#[derive(Default)]
pub(super) struct Deferred {
    /// `(repo, sig_hash, kind, seq)` entries of `by_sig`.
    pub by_sig: Vec<(u32, String, u8, u64)>,
    /// `(repo, pr_number, seq)` entries of `pr_verdicts`.
    pub pr_verdicts: Vec<(u32, u64, u64)>,
    /// `(claim_hash, repo, seq)` entries of `claim_hashes`.
    pub claim_hashes: Vec<(u64, u32, u64)>,
    /// Postings appended to the blocks of `claim_terms`.
    pub claim_terms: NewPostings,
    /// Seqs of `event_source_seqs`, by source.
    pub by_source: SeqsByText,
    /// Seqs of `event_kind_seqs`, by event_kind.
    pub by_kind: SeqsByText,
    /// Verdict identities written by this transaction: looked up by the identity check,
    /// inserted at the end.
    pub new_ids: NewIdentities,
    /// Import keys and the seqs they became, when each key is looked up: a key seen twice in
    /// one transaction is a duplicate the second time, as it would be across transactions.
    pub new_keys: HashMap<Vec<u8>, u64>,
    /// Import keys known to be new (nothing looks them up).
    pub fresh_keys: Vec<(Vec<u8>, u64)>,
    /// Client keys written by this transaction: key → (seq, created ms, fingerprint). In key
    /// order, as the batch lines' content keys are looked up by prefix.
    pub new_client_keys: BTreeMap<Vec<u8>, (u64, u64, u64)>,
    /// Count changes of each `(repo, pr_number)`.
    pub prs: HashMap<(u32, u64), PrDelta>,
    /// Count changes of each `(repo, pr_number, lowercase head_sha)`.
    pub heads: HashMap<(u32, u64, String), [u64; 3]>,
}

/// How a transaction knows whether an import key is stored already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyCheck {
    /// Look it up in `import_keys` (and among this transaction's new keys).
    Lookup,
    /// It is new: `import_keys` holds none of the writer's puts' keys, which are distinct.
    Fresh,
}

impl Deferred {
    /// Inserts every deferred entry into `t`'s tables (opening only those entries wait for),
    /// each index in key order, one index after the other; returns how many import keys were
    /// inserted. (Filling the indexes on one thread per core did not pay in a same-run
    /// benchmark of the import: see the commit that removed it.)
    pub(super) fn insert(self, t: &mut Tables<'_>, check: KeyCheck) -> Result<u64, StoreError> {
        let Deferred {
            by_sig,
            pr_verdicts,
            claim_hashes,
            claim_terms,
            by_source,
            by_kind,
            new_ids,
            new_keys,
            mut fresh_keys,
            new_client_keys,
            prs,
            heads,
        } = self;
        fresh_keys.extend(new_keys);
        let keys = fresh_keys;
        let n_keys = keys.len() as u64;
        let Tables {
            import_keys,
            by_sig: by_sig_table,
            verdict_identities,
            pr_verdicts: pr_verdicts_table,
            prs: prs_table,
            pr_heads,
            claim_hashes: claim_hashes_table,
            claim_terms: claim_terms_table,
            event_source_seqs,
            event_kind_seqs,
            client_keys,
            client_keys_by_time,
            ..
        } = t;
        let ids = new_ids.into_entries();
        let prs: Vec<_> = prs.into_iter().collect();
        let heads: Vec<_> = heads.into_iter().collect();
        let client: Vec<_> = new_client_keys.into_iter().collect();
        insert_sorted(keys, import_keys, |table, (key, seq)| {
            let before = table.insert(key.as_slice(), seq)?;
            if before.is_some() && check == KeyCheck::Fresh {
                return Err(StoreError::RepeatedImportKey(hex(key)));
            }
            Ok(())
        })?;
        insert_sorted(
            by_sig,
            by_sig_table,
            |table, (repo, sig_hash, kind, seq)| {
                table.insert((*repo, sig_hash.as_str(), *kind, *seq), ())?;
                Ok(())
            },
        )?;
        insert_sorted(ids, verdict_identities, |table, key| {
            table.insert(*key, ())?;
            Ok(())
        })?;
        insert_sorted(pr_verdicts, pr_verdicts_table, |table, key| {
            table.insert(*key, ())?;
            Ok(())
        })?;
        insert_sorted(prs, prs_table, |table, (key, delta)| {
            let (a, r, b, last) = table.get(*key)?.map_or((0, 0, 0, 0), |v| v.value());
            let [da, dr, db] = delta.by_overall;
            table.insert(*key, (a + da, r + dr, b + db, last.max(delta.last_seq)))?;
            Ok(())
        })?;
        insert_sorted(
            heads,
            pr_heads,
            |table, ((repo, pr, head), [da, dr, db])| {
                let key = (*repo, *pr, head.as_str());
                let (a, r, b) = table.get(key)?.map_or((0, 0, 0), |v| v.value());
                table.insert(key, (a + da, r + dr, b + db))?;
                Ok(())
            },
        )?;
        insert_sorted(claim_hashes, claim_hashes_table, |table, key| {
            table.insert(*key, ())?;
            Ok(())
        })?;
        if !claim_terms.is_empty() {
            claim_terms.append_all(claim_terms_table.open()?)?;
        }
        by_source.insert_into(event_source_seqs, "event_source_seqs")?;
        by_kind.insert_into(event_kind_seqs, "event_kind_seqs")?;
        if !client.is_empty() {
            let by_time = client_keys_by_time.open()?;
            insert_sorted(client, client_keys, |table, (key, (seq, created, fp))| {
                // A key written again (a batch line new by its key, a duplicate by its record's
                // identity, names the content key it stored first) keeps one place in the
                // expiry order.
                let before = table.insert(key.as_slice(), (*seq, *created, *fp))?;
                if let Some(before) = before {
                    by_time.remove((before.value().1, key.as_slice()))?;
                }
                by_time.insert((*created, key.as_slice()), ())?;
                Ok(())
            })?;
        }
        Ok(n_keys)
    }
}

/// `(text, seq)` index entries grouped by text (an event's source or kind: few texts, many
/// seqs), one copy of each text per transaction.
#[derive(Default)]
pub(super) struct SeqsByText(foldhash::HashMap<String, Vec<u64>>);

impl SeqsByText {
    pub(super) fn push(&mut self, text: &str, seq: u64) {
        match self.0.get_mut(text) {
            Some(seqs) => seqs.push(seq),
            None => {
                self.0.insert(text.to_owned(), vec![seq]);
            }
        }
    }

    /// Adds every seq to its text's blocks (`seq_blocks.rs`), text after text in key order.
    fn insert_into(
        self,
        table: &mut Lazy<'_, (&'static str, u64), &'static [u8]>,
        name: &str,
    ) -> Result<(), StoreError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let table = table.open()?;
        let mut groups: Vec<_> = self.0.into_iter().collect();
        groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (text, mut seqs) in groups {
            seqs.sort_unstable();
            seq_blocks::insert(table, name, &text, &seqs)?;
        }
        Ok(())
    }
}

/// Verdict identities written by a transaction, as `verdict_identities` keys them: `(repo,
/// identity hash)` → seq. Two verdicts of one hash in one transaction (a repeated verdict
/// finds the first and is not written, so only two identities sharing a hash) keep the second
/// and later seqs in `more`.
#[derive(Default)]
pub(super) struct NewIdentities {
    first: foldhash::HashMap<(u32, u64), u64>,
    more: Vec<(u32, u64, u64)>,
}

impl NewIdentities {
    pub(super) fn insert(&mut self, repo: u32, hash: u64, seq: u64) {
        match self.first.entry((repo, hash)) {
            Entry::Occupied(_) => self.more.push((repo, hash, seq)),
            Entry::Vacant(slot) => {
                slot.insert(seq);
            }
        }
    }

    /// The seqs written under `(repo, hash)`, in write order.
    pub(super) fn seqs(&self, repo: u32, hash: u64) -> impl Iterator<Item = u64> + '_ {
        let first = self.first.get(&(repo, hash)).copied();
        let more = self
            .more
            .iter()
            .filter(move |&&(r, h, _)| (r, h) == (repo, hash))
            .map(|&(_, _, seq)| seq);
        first.into_iter().chain(more)
    }

    fn into_entries(self) -> Vec<(u32, u64, u64)> {
        let mut entries: Vec<_> = self
            .first
            .into_iter()
            .map(|((repo, hash), seq)| (repo, hash, seq))
            .collect();
        entries.extend(self.more);
        entries
    }
}

/// The seq a client key was stored with, from this transaction or an earlier one.
pub(super) fn client_key_lookup(
    later: &Deferred,
    table: &impl ReadableTable<&'static [u8], (u64, u64, u64)>,
    key: &[u8],
) -> Result<Option<(u64, u64)>, StoreError> {
    if let Some(&(seq, _, fingerprint)) = later.new_client_keys.get(key) {
        return Ok(Some((seq, fingerprint)));
    }
    Ok(table.get(key)?.map(|v| {
        let (seq, _, fingerprint) = v.value();
        (seq, fingerprint)
    }))
}

/// Sorts `entries` and gives them to `insert` in key order, with `table`, opened only when there
/// is an entry.
fn insert_sorted<'txn, T: Ord, K: redb::Key + 'static, V: redb::Value + 'static>(
    mut entries: Vec<T>,
    table: &mut Lazy<'txn, K, V>,
    mut insert: impl FnMut(&mut Table<'txn, K, V>, &T) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let table = table.open()?;
    entries.sort_unstable();
    entries.iter().try_for_each(|entry| insert(table, entry))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_sharing_a_hash_in_one_transaction_keep_every_seq() {
        let mut ids = NewIdentities::default();
        ids.insert(1, 77, 10);
        ids.insert(1, 77, 12);
        ids.insert(2, 77, 11);
        ids.insert(1, 78, 13);
        assert_eq!(ids.seqs(1, 77).collect::<Vec<_>>(), [10, 12]);
        assert_eq!(ids.seqs(2, 77).collect::<Vec<_>>(), [11]);
        assert_eq!(ids.seqs(3, 77).count(), 0);
        let mut entries = ids.into_entries();
        entries.sort_unstable();
        assert_eq!(
            entries,
            [(1, 77, 10), (1, 77, 12), (1, 78, 13), (2, 77, 11)]
        );
    }

    #[test]
    fn seqs_are_grouped_under_one_copy_of_their_text() {
        let mut by_text = SeqsByText::default();
        for (text, seq) in [("b", 3), ("a", 5), ("b", 1), ("a", 2)] {
            by_text.push(text, seq);
        }
        let mut groups: Vec<_> = by_text.0.into_iter().collect();
        groups.sort_unstable();
        assert_eq!(groups, [("a".into(), vec![5, 2]), ("b".into(), vec![3, 1])]);
    }
}
