//! Index entries a write transaction defers to its end, and their insertion: each index in key
//! order.
//!
//! Inserted in put order, entries land all over their trees (hashes and identities are random;
//! a source's or PR's new entries go at the end of its range, in the middle of the tree);
//! sorted, they walk each tree once, leaf after leaf. Measured on a 1M-line legacy import
//! (docs/benchmarks/log-2026-11.md). What the transaction must find before its end (a verdict
//! identity, an import key, a client key it wrote itself) it finds in the maps kept here.

use std::collections::HashMap;

use redb::{ReadableTable, Table};

use super::StoreError;
use super::postings::{self, Posting, PostingsTable};
use super::tables::verdict_identity_hash;

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
    /// `(term, repo, posting)` appended to the blocks of `claim_terms`.
    pub claim_terms: Vec<(String, u32, Posting)>,
    /// `(source, seq)` entries of `events_by_source`.
    pub by_source: Vec<(String, u64)>,
    /// `(event_kind, seq)` entries of `events_by_kind`.
    pub by_kind: Vec<(String, u64)>,
    /// Verdict identities `(repo, pr_number, head_sha, audited_at)` written by this
    /// transaction, and their seqs: looked up by the identity check, inserted at the end.
    pub new_ids: HashMap<(u32, u64, String, String), u64>,
    /// Import keys and the seqs they became, when each key is looked up: a key seen twice in
    /// one transaction is a duplicate the second time, as it would be across transactions.
    pub new_keys: HashMap<Vec<u8>, u64>,
    /// Import keys known to be new (nothing looks them up).
    pub fresh_keys: Vec<(Vec<u8>, u64)>,
    /// Client keys written by this transaction: key → (seq, created ms, fingerprint).
    pub new_client_keys: HashMap<Vec<u8>, (u64, u64, u64)>,
    /// Count changes of each `(repo, pr_number)`.
    pub prs: HashMap<(u32, u64), PrDelta>,
    /// Count changes of each `(repo, pr_number, lowercase head_sha)`.
    pub heads: HashMap<(u32, u64, String), [u64; 3]>,
}

/// The index tables [`Deferred::insert`] fills, borrowed from the writer's open tables.
pub(super) struct IndexTables<'a, 'txn> {
    pub import_keys: &'a mut Table<'txn, &'static [u8], u64>,
    pub by_sig: &'a mut Table<'txn, (u32, &'static str, u8, u64), ()>,
    pub verdict_identities: &'a mut Table<'txn, (u32, u64, u64), ()>,
    pub pr_verdicts: &'a mut Table<'txn, (u32, u64, u64), ()>,
    pub prs: &'a mut Table<'txn, (u32, u64), (u64, u64, u64, u64)>,
    pub pr_heads: &'a mut Table<'txn, (u32, u64, &'static str), (u64, u64, u64)>,
    pub claim_hashes: &'a mut Table<'txn, (u64, u32, u64), ()>,
    pub claim_terms: &'a mut PostingsTable<'txn>,
    pub events_by_source: &'a mut Table<'txn, (&'static str, u64), ()>,
    pub events_by_kind: &'a mut Table<'txn, (&'static str, u64), ()>,
    pub client_keys: &'a mut Table<'txn, &'static [u8], (u64, u64, u64)>,
    pub client_keys_by_time: &'a mut Table<'txn, (u64, &'static [u8]), ()>,
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
    /// Inserts every deferred entry, each index in key order, one index after the other;
    /// returns how many import keys were inserted. (Filling the indexes on one thread per core
    /// did not pay in a same-run benchmark of the import: see the commit that removed it.)
    pub(super) fn insert(self, t: IndexTables<'_, '_>, check: KeyCheck) -> Result<u64, StoreError> {
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
        let IndexTables {
            import_keys,
            by_sig: by_sig_table,
            verdict_identities,
            pr_verdicts: pr_verdicts_table,
            prs: prs_table,
            pr_heads,
            claim_hashes: claim_hashes_table,
            claim_terms: claim_terms_table,
            events_by_source,
            events_by_kind,
            client_keys,
            client_keys_by_time,
        } = t;
        let ids: Vec<_> = new_ids
            .into_iter()
            .map(|((repo, pr, head, at), seq)| (repo, verdict_identity_hash(pr, &head, &at), seq))
            .collect();
        let prs: Vec<_> = prs.into_iter().collect();
        let heads: Vec<_> = heads.into_iter().collect();
        let client: Vec<_> = new_client_keys.into_iter().collect();
        insert_sorted(keys, |(key, seq)| {
            let before = import_keys.insert(key.as_slice(), seq)?;
            if before.is_some() && check == KeyCheck::Fresh {
                return Err(StoreError::RepeatedImportKey(hex(key)));
            }
            Ok(())
        })?;
        insert_sorted(by_sig, |(repo, sig_hash, kind, seq)| {
            by_sig_table.insert((*repo, sig_hash.as_str(), *kind, *seq), ())?;
            Ok(())
        })?;
        insert_sorted(ids, |key| {
            verdict_identities.insert(*key, ())?;
            Ok(())
        })?;
        insert_sorted(pr_verdicts, |key| {
            pr_verdicts_table.insert(*key, ())?;
            Ok(())
        })?;
        insert_sorted(prs, |(key, delta)| {
            let (a, r, b, last) = prs_table.get(*key)?.map_or((0, 0, 0, 0), |v| v.value());
            let [da, dr, db] = delta.by_overall;
            prs_table.insert(*key, (a + da, r + dr, b + db, last.max(delta.last_seq)))?;
            Ok(())
        })?;
        insert_sorted(heads, |((repo, pr, head), [da, dr, db])| {
            let key = (*repo, *pr, head.as_str());
            let (a, r, b) = pr_heads.get(key)?.map_or((0, 0, 0), |v| v.value());
            pr_heads.insert(key, (a + da, r + dr, b + db))?;
            Ok(())
        })?;
        insert_sorted(claim_hashes, |key| {
            claim_hashes_table.insert(*key, ())?;
            Ok(())
        })?;
        let mut claim_terms = claim_terms;
        claim_terms.sort_unstable();
        postings::append_sorted(claim_terms_table, &claim_terms)?;
        insert_sorted(by_source, |(source, seq)| {
            events_by_source.insert((source.as_str(), *seq), ())?;
            Ok(())
        })?;
        insert_sorted(by_kind, |(kind, seq)| {
            events_by_kind.insert((kind.as_str(), *seq), ())?;
            Ok(())
        })?;
        insert_sorted(client, |(key, (seq, created, fingerprint))| {
            client_keys.insert(key.as_slice(), (*seq, *created, *fingerprint))?;
            client_keys_by_time.insert((*created, key.as_slice()), ())?;
            Ok(())
        })?;
        Ok(n_keys)
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

/// Sorts `entries` and gives them to `insert` in key order.
fn insert_sorted<T: Ord>(
    mut entries: Vec<T>,
    insert: impl FnMut(&T) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    entries.sort_unstable();
    entries.iter().try_for_each(insert)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
