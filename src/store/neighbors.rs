//! The neighbours search: prior verdicts whose claims equal or resemble a query's (Phase C/F),
//! over the two tiers of the claims index (`text_index.rs`): `claim_hashes` for exact matches,
//! the BM25 postings of `claim_terms` (`postings.rs`) for similar ones.
//!
//! A similar match's score is the stored claim's BM25 score for the query claim over the query
//! claim's score against itself, capped below 1 (`model/text.rs`); an exact one scores 1. Each
//! query claim counts with its best match in a verdict, and a verdict's score is the sum.
//! Scores are rounded to 4 decimals and ties go to the newer verdict, so the same request
//! always gets the same answer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use foldhash::HashMapExt;

use redb::{ReadOnlyTable, ReadableDatabase};

use super::codec::decode;
use super::meta;
use super::postings::{self, Posting};
use super::repos;
use super::tables::*;
use super::values::VerdictValue;
use super::{ReadBudget, Store, StoreError};
use crate::model::Repo;
use crate::model::claims::{Claim, stored_claims};
use crate::model::text::{Corpus, MatchKind, TermCounts, relative_score, round_score};

/// A neighbours query.
#[derive(Debug, Clone)]
pub struct NeighborQuery {
    /// The query's claims, by hash, with their text when given as text.
    pub claims: Vec<Claim>,
    /// The repository searched, and the one `exclude_pr` belongs to.
    pub repo: Repo,
    /// Search every repository instead of `repo` alone.
    pub all_repos: bool,
    /// A PR of `repo` whose verdicts are left out (the PR being audited).
    pub exclude_pr: Option<u64>,
    /// Most neighbours answered.
    pub limit: usize,
    /// Matches scoring below this are dropped; a neighbour without matches goes with them.
    pub min_score: f64,
}

/// How one query claim matched a neighbour: its best-scoring stored claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimMatch {
    /// Index of the query claim in [`NeighborQuery::claims`].
    pub query: usize,
    /// The stored claim: its index among the verdict's claims (as `claims_of` lists them).
    pub claim: usize,
    pub kind: MatchKind,
    /// 1 for an exact match; in (0, 1) for a similar one; rounded to 4 decimals.
    pub score: f64,
    /// The index terms the two share, in byte order (empty for an exact match).
    pub terms: Vec<String>,
}

/// A prior verdict whose claims match the query's.
#[derive(Debug, Clone, PartialEq)]
pub struct NeighborHit {
    pub seq: u64,
    pub value: VerdictValue,
    /// The sum over query claims of their best match's score, rounded to 4 decimals.
    pub score: f64,
    /// One per query claim that matched, in query order.
    pub matches: Vec<ClaimMatch>,
}

/// The best match of one query claim in one verdict, while scoring.
#[derive(Debug, Clone, Copy)]
struct Best {
    claim: Claimed,
    kind: MatchKind,
    score: f64,
    /// Which of the query claim's terms the stored claim shares (bit i: its i-th term).
    terms: u64,
}

/// Which stored claim matched: by index (similar tier) or by hash (exact tier, resolved to an
/// index when the verdict is read).
#[derive(Debug, Clone, Copy)]
enum Claimed {
    Index(usize),
    Hash(u64),
}

/// Bits of a claim doc that hold the claim's index within its verdict (see `text_index.rs`).
const CLAIM_INDEX_BITS: u32 = 10;

impl Store {
    /// Prior verdicts whose claims equal or resemble the query's, best first (score, then the
    /// newer audit), verdicts of `exclude_pr` left out.
    ///
    /// Cost: one range of `claim_hashes` per query claim, every posting of the query claims'
    /// terms in the searched repository (read block by block), and a read of each neighbour
    /// answered. Within `budget`: its deadline is checked as postings are read, and fewer than
    /// `limit` neighbours are read when their values would pass its bytes
    /// (`budget.was_cut()`).
    pub fn neighbors(
        &self,
        q: &NeighborQuery,
        budget: &mut ReadBudget,
    ) -> Result<Vec<NeighborHit>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let repo_ids = txn.open_table(REPOS)?;
        let home = repos::lookup(&repo_ids, &q.repo)?;
        let scope = if q.all_repos {
            None
        } else {
            match home {
                Some(id) => Some(id),
                None => return Ok(Vec::new()),
            }
        };
        let excluded = match (home, q.exclude_pr) {
            (Some(repo), Some(pr)) => Some((repo, pr)),
            _ => None,
        };
        let meta_table = txn.open_table(META)?;
        let corpus = match scope {
            None => Corpus {
                docs: meta::get(&meta_table, meta::CLAIM_DOCS)?,
                total_len: meta::get(&meta_table, meta::CLAIM_TERMS_LEN)?,
            },
            Some(id) => Corpus {
                docs: meta::get(&meta_table, &format!("{}{id}", meta::CLAIM_DOCS_IN))?,
                total_len: meta::get(&meta_table, &format!("{}{id}", meta::CLAIM_TERMS_LEN_IN))?,
            },
        };

        // Per query claim, its best match in each verdict that has one, by verdict seq.
        let mut per_claim: Vec<Vec<(u64, Best)>> = Vec::with_capacity(q.claims.len());
        let mut query_terms: Vec<Vec<String>> = vec![Vec::new(); q.claims.len()];
        let hashes = txn.open_table(CLAIM_HASHES)?;
        let table = txn.open_table(CLAIM_TERMS)?;
        // Query claims share words: each term's postings are read once per query.
        let mut read: foldhash::HashMap<String, Arc<Vec<Posting>>> = foldhash::HashMap::new();
        for (query, claim) in q.claims.iter().enumerate() {
            let mut found: Vec<(u64, Best)> = Vec::new();
            let range = match scope {
                None => hashes.range((claim.hash.0, 0, 0)..=(claim.hash.0, u32::MAX, u64::MAX))?,
                Some(id) => hashes.range((claim.hash.0, id, 0)..=(claim.hash.0, id, u64::MAX))?,
            };
            for row in range {
                budget.tick()?;
                let (_, _, seq) = row?.0.value();
                let exact = Best {
                    claim: Claimed::Hash(claim.hash.0),
                    kind: MatchKind::Exact,
                    score: 1.0,
                    terms: 0,
                };
                found.push((seq, exact));
            }
            if let Some(text) = &claim.text {
                let counts = TermCounts::of(text);
                if !counts.is_empty() {
                    let mut lists = Vec::with_capacity(counts.terms.len());
                    for (term, _) in &counts.terms {
                        if !read.contains_key(term) {
                            let list = postings::read(&table, term, scope, budget)?;
                            read.insert(term.clone(), Arc::new(list));
                        }
                        lists.push(read[term].clone());
                    }
                    let similar = similar_docs(lists, &counts, corpus, q.min_score);
                    found.extend(similar.into_iter().map(|(doc, (score, terms))| {
                        let index = (doc & ((1 << CLAIM_INDEX_BITS) - 1)) as usize;
                        let best = Best {
                            claim: Claimed::Index(index),
                            kind: MatchKind::Similar,
                            score,
                            terms,
                        };
                        (doc >> CLAIM_INDEX_BITS, best)
                    }));
                    query_terms[query] = counts.terms.into_iter().map(|(term, _)| term).collect();
                }
            }
            // One match per verdict: an exact one first, then the highest score, then the
            // earlier claim.
            found.sort_unstable_by(|(a_seq, a), (b_seq, b)| {
                a_seq
                    .cmp(b_seq)
                    .then(a.kind.cmp(&b.kind))
                    .then(b.score.total_cmp(&a.score))
                    .then(claim_index(a).cmp(&claim_index(b)))
            });
            found.dedup_by_key(|(seq, _)| *seq);
            per_claim.push(found);
        }

        let mut totals: foldhash::HashMap<u64, f64> = foldhash::HashMap::new();
        for found in &per_claim {
            for (seq, best) in found {
                *totals.entry(*seq).or_insert(0.0) += best.score;
            }
        }
        let mut ranked: Vec<(f64, u64)> = totals
            .into_iter()
            .map(|(seq, score)| (round_score(score), seq))
            .filter(|(score, _)| *score > 0.0)
            .collect();
        ranked.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));

        let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
        let mut out = Vec::new();
        for (score, seq) in ranked {
            if out.len() == q.limit {
                break;
            }
            budget.tick()?;
            let value = verdict_value(&verdicts, seq)?;
            let verdict_repo = match scope {
                Some(id) => id,
                None => {
                    let name = Repo::parse("repo", &value.repo).unwrap_or_default();
                    repos::lookup(&repo_ids, &name)?.unwrap_or(u32::MAX)
                }
            };
            if excluded == Some((verdict_repo, value.pr_number)) {
                continue;
            }
            let matches = per_claim
                .iter()
                .enumerate()
                .filter_map(|(query, found)| {
                    let at = found.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
                    let m = found[at].1;
                    Some(ClaimMatch {
                        query,
                        claim: match m.claim {
                            Claimed::Index(i) => i,
                            Claimed::Hash(h) => claim_index_of(&value, h).unwrap_or(0),
                        },
                        kind: m.kind,
                        score: m.score,
                        terms: terms_of(&query_terms[query], m.terms),
                    })
                })
                .collect();
            if !budget.take(value.raw_json.len() + value.one_liner.len()) {
                break;
            }
            out.push(NeighborHit {
                seq,
                value,
                score,
                matches,
            });
        }
        Ok(out)
    }
}

/// A similar claim doc's score, and the query terms it shares (bit i: the query's i-th term).
type Similar = (f64, u64);

/// The claim docs similar to a query claim with `counts` terms, whose postings are `lists` (in
/// term order), scoring at least `min_score`: doc → (score, the query terms it shares as bits).
///
/// Every posting of the query's terms is walked. The terms whose best possible contributions
/// together stay below the threshold (the commonest ones, MaxScore's non-essential terms) only
/// add to docs the others found: a doc that has none of the other terms cannot reach the
/// threshold, so the answer is exact. Each doc's score is summed in term order, so it is the
/// same on every run.
fn similar_docs(
    lists: Vec<Arc<Vec<Posting>>>,
    counts: &TermCounts,
    corpus: Corpus,
    min_score: f64,
) -> Vec<(u64, Similar)> {
    let idfs: Vec<f64> = lists.iter().map(|l| corpus.idf(l.len() as u64)).collect();
    let self_score: f64 = counts
        .terms
        .iter()
        .zip(&idfs)
        .map(|((_, query_tf), idf)| corpus.term_score(*idf, *query_tf, counts.len))
        .sum();
    // Each term's best contribution to any doc, and the terms that can only add to a doc
    // another term found: the commonest, while their best contributions sum below the
    // threshold.
    let best: Vec<f64> = lists
        .iter()
        .zip(&idfs)
        .map(|(list, idf)| {
            list.iter()
                .map(|p| corpus.term_score(*idf, p.tf, p.len))
                .fold(0.0, f64::max)
        })
        .collect();
    let threshold = min_score * self_score;
    let mut by_best: Vec<usize> = (0..lists.len()).collect();
    by_best.sort_unstable_by(|&a, &b| best[a].total_cmp(&best[b]).then(a.cmp(&b)));
    let mut non_essential = vec![false; lists.len()];
    let mut sum = 0.0;
    for &term in &by_best {
        sum += best[term];
        // Kept strictly below, with room for rounding: only what cannot pass is pruned.
        if sum >= threshold * 0.999 {
            break;
        }
        non_essential[term] = true;
    }
    // The essential lists, merged in doc order (each is sorted), give the candidate docs; the
    // others are walked alongside and add to them. Sequential reads throughout: a hash map of
    // every candidate doc cost more in cache misses than the whole merge.
    let essential: Vec<usize> = (0..lists.len()).filter(|&t| !non_essential[t]).collect();
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = essential
        .iter()
        .filter_map(|&t| Some(Reverse((lists[t].first()?.doc, t))))
        .collect();
    let mut next = vec![0usize; lists.len()];
    let mut out = Vec::new();
    let mut current: Option<(u64, f64, u64)> = None;
    let mut finish = |doc: u64, mut raw: f64, mut terms: u64, next: &mut [usize]| {
        // The non-essential terms, in term order, add what they hold of this doc.
        for (t, list) in lists.iter().enumerate() {
            if !non_essential[t] {
                continue;
            }
            let at = &mut next[t];
            while *at < list.len() && list[*at].doc < doc {
                *at += 1;
            }
            if let Some(p) = list.get(*at).filter(|p| p.doc == doc) {
                raw += corpus.term_score(idfs[t], p.tf, p.len);
                terms |= 1u64 << (t % 64);
            }
        }
        let score = round_score(relative_score(raw, self_score));
        if score > 0.0 && score >= min_score {
            out.push((doc, (score, terms)));
        }
    };
    while let Some(Reverse((doc, t))) = heap.pop() {
        let p = lists[t][next[t]];
        next[t] += 1;
        if let Some(&next_posting) = lists[t].get(next[t]) {
            heap.push(Reverse((next_posting.doc, t)));
        }
        let contribution = corpus.term_score(idfs[t], p.tf, p.len);
        match &mut current {
            Some((at, raw, terms)) if *at == doc => {
                *raw += contribution;
                *terms |= 1u64 << (t % 64);
            }
            _ => {
                if let Some((at, raw, terms)) = current.take() {
                    finish(at, raw, terms, &mut next);
                }
                current = Some((doc, contribution, 1u64 << (t % 64)));
            }
        }
    }
    if let Some((at, raw, terms)) = current {
        finish(at, raw, terms, &mut next);
    }
    out
}

fn claim_index(best: &Best) -> usize {
    match best.claim {
        Claimed::Index(i) => i,
        Claimed::Hash(_) => 0,
    }
}

/// The query terms whose bits are set in `mask`, in byte order.
fn terms_of(terms: &[String], mask: u64) -> Vec<String> {
    terms
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << (bit % 64)) != 0)
        .map(|(_, term)| term.clone())
        .collect()
}

fn verdict_value(
    verdicts: &ReadOnlyTable<u64, &'static [u8]>,
    seq: u64,
) -> Result<VerdictValue, StoreError> {
    let bytes = verdicts.get(seq)?.ok_or(StoreError::Dangling {
        index: "claims index",
        seq,
    })?;
    decode(bytes.value()).map_err(|source| StoreError::Codec {
        table: "verdicts_by_seq",
        seq,
        source,
    })
}

/// The index among a verdict's claims of the one with hash `hash`.
fn claim_index_of(value: &VerdictValue, hash: u64) -> Option<usize> {
    stored_claims(&value.raw_json)
        .iter()
        .position(|c| c.hash.0 == hash)
}
