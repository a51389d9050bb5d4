//! The claims index, written and rebuilt (the search is `neighbors.rs`).
//!
//! Two tiers. The exact tier is `claim_hashes` `(claim_hash, repo, seq)`. The similar tier is
//! `claim_terms`: BM25 postings over every claim with text, in blocks (`postings.rs`; a *claim
//! doc* is `seq << 10 | claim index`, a verdict having at most 1,000 claims), with the corpus
//! statistics BM25 needs (claims and total length, overall and per repository) in `meta`.
//!
//! The postings are written in the same transaction as their verdict (`write.rs`), so after
//! any crash the index equals a rebuild from the verdicts; `check` compares the two. Which
//! terms a claim has is decided by the analyser (`model/text.rs`), whose version the index
//! records: opening a file whose index was built by another version (or not at all: a file
//! migrated to schema 5) rebuilds it here, in bounded transactions that resume after a kill.

use redb::{ReadableTable, WriteTransaction};

use super::codec::decode;
use super::derived::Build;
use super::meta::{self, CounterDeltas};
use super::postings::{self, Posting};
use super::records::claim_terms_of;
use super::repos;
use super::tables::*;
use super::values::VerdictValue;
use super::{Store, StoreError};
use crate::model::claims::{Claim, stored_claims};
use crate::model::text::ANALYZER_VERSION;

/// Bits of a claim doc that hold the claim's index within its verdict.
const CLAIM_INDEX_BITS: u32 = 10;

/// The claim doc of claim `index` of verdict `seq`.
pub(super) fn claim_doc(seq: u64, index: u16) -> u64 {
    (seq << CLAIM_INDEX_BITS) | u64::from(index & ((1 << CLAIM_INDEX_BITS) - 1))
}

/// Adds (`delta` 1) or takes away (-1) one claim of `len` terms from the corpus statistics.
pub(super) fn count_claim_doc(counters: &mut CounterDeltas, repo: u32, len: u16, delta: i64) {
    let len = i64::from(len) * delta;
    counters.add(meta::CLAIM_DOCS, delta);
    counters.add(meta::CLAIM_TERMS_LEN, len);
    counters.add_keyed(meta::CLAIM_DOCS_IN, &repo.to_string(), delta);
    counters.add_keyed(meta::CLAIM_TERMS_LEN_IN, &repo.to_string(), len);
}

/// Verdicts indexed per transaction of a rebuild: bounds its memory and the work a kill loses.
const BUILD_BATCH: usize = 20_000;

impl Store {
    /// Builds the claims index when it was built by another analyser version or not
    /// completely (see the module documentation); a no-op otherwise.
    pub(super) fn build_text_index(&self) -> Result<(), StoreError> {
        self.build_derived(&Build {
            what: "the similar-claims index",
            mark: meta::CLAIM_INDEX_BUILT_THROUGH,
            rules: &format!("v{ANALYZER_VERSION}"),
            built: meta::CLAIM_INDEX_VERSION,
            is_current: &|meta_table| {
                Ok(meta::get(meta_table, meta::CLAIM_INDEX_VERSION)? == ANALYZER_VERSION)
            },
            // Whatever an older analyser left goes first.
            clear: &clear_claim_terms,
            step: &index_verdicts_after,
            finish: &|meta_table| {
                meta_table.insert(meta::CLAIM_INDEX_VERSION, ANALYZER_VERSION)?;
                Ok(())
            },
        })
    }
}

/// Empties `claim_terms` and its statistics.
fn clear_claim_terms(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.delete_table(CLAIM_TERMS)?;
    txn.open_table(CLAIM_TERMS)?;
    meta::remove_under(&mut txn.open_table(META)?, "text/claims/")?;
    Ok(())
}

/// Indexes the claims of up to [`BUILD_BATCH`] verdicts after `after_seq`; returns the last
/// seq indexed, `None` when there was none left.
fn index_verdicts_after(txn: &WriteTransaction, after_seq: u64) -> Result<Option<u64>, StoreError> {
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let mut postings = postings::NewPostings::default();
    let mut counters = CounterDeltas::default();
    let mut last = None;
    let mut ids = repos::RepoIds::open(txn)?;
    for row in verdicts
        .range(after_seq.saturating_add(1)..)?
        .take(BUILD_BATCH)
    {
        let (seq, bytes) = row?;
        let seq = seq.value();
        last = Some(seq);
        let value: VerdictValue = decode(bytes.value()).map_err(|source| StoreError::Codec {
            table: "verdicts_by_seq",
            seq,
            source,
        })?;
        let claims = stored_claims(&value.raw_json);
        let repo = ids.id_of_stored(&value.repo)?;
        for (index, terms) in claim_terms_of(&claims) {
            count_claim_doc(&mut counters, repo, terms.len, 1);
            let doc = claim_doc(seq, index);
            for (term, tf) in terms.terms {
                let posting = Posting {
                    doc,
                    tf,
                    len: terms.len,
                };
                postings.push(&term, repo, posting);
            }
        }
    }
    drop(verdicts);
    postings.append_all(&mut txn.open_table(CLAIM_TERMS)?)?;
    counters.apply(&mut txn.open_table(META)?)?;
    Ok(last)
}

/// The postings `(term, repo, posting)` a verdict's claims give: what the index must hold for
/// it (`check` compares).
pub(super) fn postings_of(seq: u64, repo: u32, claims: &[Claim]) -> Vec<(String, u32, Posting)> {
    let mut out = Vec::new();
    for (index, terms) in claim_terms_of(claims) {
        let doc = claim_doc(seq, index);
        for (term, tf) in terms.terms {
            let posting = Posting {
                doc,
                tf,
                len: terms.len,
            };
            out.push((term, repo, posting));
        }
    }
    out
}
