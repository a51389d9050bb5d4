//! The claims index: neighbours by exact and by similar claims (Phase C/F).
//!
//! Two tiers, one ranking. The exact tier is `claim_hashes` `(claim_hash, repo, seq)`: a claim
//! that normalises to the same hash as a query claim scores 1. The similar tier is
//! `claim_terms` `(term, repo, claim doc)` → `(term count, claim length)`, BM25 postings over
//! every claim with text (a *claim doc* is `seq << 10 | claim index`; a verdict has at most
//! 1,000 claims), with the corpus statistics BM25 needs (claims and total length, overall and
//! per repository) in `meta`. A stored claim's similar score is its BM25 score for the query
//! claim over the query claim's score against itself, capped below 1 (`model/text.rs`).
//!
//! The postings are written in the same transaction as their verdict (`write.rs`), so after
//! any crash the index equals a rebuild from the verdicts; `check` compares the two. Which
//! terms a claim has is decided by the analyser (`model/text.rs`), whose version the index
//! records: opening a file whose index was built by another version (or not at all: a file
//! migrated to schema 5) rebuilds it here, in bounded transactions that resume after a kill.

use std::collections::{BTreeMap, HashMap};

use redb::{ReadOnlyTable, ReadableDatabase, ReadableTable, WriteTransaction};

use super::codec::{decode, decode_borrowed};
use super::meta::{self, CounterDeltas};
use super::records::claim_terms_of;
use super::repos;
use super::tables::*;
use super::values::{VerdictValue, VerdictValueRef};
use super::{ReadBudget, Store, StoreError};
use crate::model::Repo;
use crate::model::claims::{Claim, stored_claims};
use crate::model::text::{
    ANALYZER_VERSION, Corpus, MatchKind, TermCounts, relative_score, round_score,
};

/// Bits of a claim doc that hold the claim's index within its verdict.
const CLAIM_INDEX_BITS: u32 = 10;

/// The claim doc of claim `index` of verdict `seq`.
pub(super) fn claim_doc(seq: u64, index: u16) -> u64 {
    (seq << CLAIM_INDEX_BITS) | u64::from(index & ((1 << CLAIM_INDEX_BITS) - 1))
}

fn doc_seq(doc: u64) -> u64 {
    doc >> CLAIM_INDEX_BITS
}

fn doc_index(doc: u64) -> usize {
    (doc & ((1 << CLAIM_INDEX_BITS) - 1)) as usize
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
        let through = {
            let txn = self.db()?.begin_read()?;
            let meta_table = txn.open_table(META)?;
            if meta::get(&meta_table, meta::CLAIM_INDEX_VERSION)? == ANALYZER_VERSION {
                return Ok(());
            }
            meta_table
                .get(meta::CLAIM_INDEX_BUILT_THROUGH)?
                .map(|v| v.value())
        };
        let mut through = match through {
            Some(through) => through,
            None => {
                // A build from scratch: whatever an older analyser left goes first.
                let txn = self.begin_write()?;
                clear_claim_terms(&txn)?;
                txn.open_table(META)?
                    .insert(meta::CLAIM_INDEX_BUILT_THROUGH, 0)?;
                txn.commit()?;
                0
            }
        };
        tracing::info!(
            analyzer_version = ANALYZER_VERSION,
            from_seq = through,
            "building the similar-claims index"
        );
        loop {
            let txn = self.begin_write()?;
            let next = index_verdicts_after(&txn, through)?;
            let done = next.is_none();
            {
                let mut meta_table = txn.open_table(META)?;
                match next {
                    Some(seq) => {
                        meta_table.insert(meta::CLAIM_INDEX_BUILT_THROUGH, seq)?;
                        through = seq;
                    }
                    None => {
                        meta_table.remove(meta::CLAIM_INDEX_BUILT_THROUGH)?;
                        meta_table.insert(meta::CLAIM_INDEX_VERSION, ANALYZER_VERSION)?;
                    }
                }
            }
            txn.commit()?;
            if done {
                tracing::info!("the similar-claims index is built");
                return Ok(());
            }
            tracing::info!(through_seq = through, "similar-claims index progress");
        }
    }
}

/// Empties `claim_terms` and its statistics.
fn clear_claim_terms(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.delete_table(CLAIM_TERMS)?;
    txn.open_table(CLAIM_TERMS)?;
    let mut meta_table = txn.open_table(META)?;
    let doomed: Vec<String> = meta_table
        .range("text/claims/"..)?
        .map_while(|row| {
            let key = row.ok()?.0.value().to_owned();
            key.starts_with("text/claims/").then_some(key)
        })
        .collect();
    for key in doomed {
        meta_table.remove(key.as_str())?;
    }
    Ok(())
}

/// Indexes the claims of up to [`BUILD_BATCH`] verdicts after `after_seq`; returns the last
/// seq indexed, `None` when there was none left.
fn index_verdicts_after(txn: &WriteTransaction, after_seq: u64) -> Result<Option<u64>, StoreError> {
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let mut postings = Vec::new();
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
            let doc = claim_doc(seq, index);
            for (term, tf) in terms.terms {
                postings.push((term, repo, doc, tf, terms.len));
            }
            count_claim_doc(&mut counters, repo, terms.len, 1);
        }
    }
    drop(verdicts);
    postings.sort_unstable();
    let mut table = txn.open_table(CLAIM_TERMS)?;
    for (term, repo, doc, tf, len) in &postings {
        table.insert((term.as_str(), *repo, *doc), (*tf, *len))?;
    }
    counters.apply(&mut txn.open_table(META)?)?;
    Ok(last)
}

/// The postings `(term, repo, claim doc, term count, claim length)` a verdict's claims give:
/// what the index must hold for it (`check` compares).
pub(super) fn postings_of(
    seq: u64,
    repo: u32,
    claims: &[Claim],
) -> Vec<(String, u32, u64, u16, u16)> {
    let mut out = Vec::new();
    for (index, terms) in claim_terms_of(claims) {
        let doc = claim_doc(seq, index);
        for (term, tf) in terms.terms {
            out.push((term, repo, doc, tf, terms.len));
        }
    }
    out
}

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
    /// Most neighbours (PRs) answered.
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
#[derive(Debug, Clone)]
struct Best {
    claim: Claimed,
    kind: MatchKind,
    score: f64,
    terms: Vec<String>,
}

/// Which stored claim matched: by index (similar tier) or by hash (exact tier, resolved to an
/// index when the verdict is read).
#[derive(Debug, Clone, Copy)]
enum Claimed {
    Index(usize),
    Hash(u64),
}

impl Store {
    /// Prior verdicts whose claims equal or resemble the query's, best first (score, then the
    /// newer audit), verdicts of `exclude_pr` left out.
    ///
    /// Cost: one range of `claim_hashes` per query claim, plus every posting of the query
    /// claims' terms (in the searched repository), plus a read of each neighbour answered.
    ///
    /// Within `budget`: its deadline is checked as postings are read, and fewer than `limit`
    /// neighbours are read when their values would pass its bytes (`budget.was_cut()`).
    pub fn neighbors(
        &self,
        q: &NeighborQuery,
        budget: &mut ReadBudget,
    ) -> Result<Vec<NeighborHit>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let repo = repos::lookup(&txn.open_table(REPOS)?, &q.repo)?;
        let scope = if q.all_repos {
            Scope::All
        } else {
            match repo {
                Some(id) => Scope::Repo(id),
                None => return Ok(Vec::new()),
            }
        };
        let excluded = match (repo, q.exclude_pr) {
            (Some(repo), Some(pr)) => Some((repo, pr)),
            _ => None,
        };
        let meta_table = txn.open_table(META)?;
        let corpus = match scope {
            Scope::All => Corpus {
                docs: meta::get(&meta_table, meta::CLAIM_DOCS)?,
                total_len: meta::get(&meta_table, meta::CLAIM_TERMS_LEN)?,
            },
            Scope::Repo(id) => Corpus {
                docs: meta::get(&meta_table, &format!("{}{id}", meta::CLAIM_DOCS_IN))?,
                total_len: meta::get(&meta_table, &format!("{}{id}", meta::CLAIM_TERMS_LEN_IN))?,
            },
        };

        // Per verdict seq, per query claim, the best match so far.
        let mut best: HashMap<u64, BTreeMap<usize, Best>> = HashMap::new();
        let hashes = txn.open_table(CLAIM_HASHES)?;
        for (query, claim) in q.claims.iter().enumerate() {
            let range = match scope {
                Scope::All => {
                    hashes.range((claim.hash.0, 0, 0)..=(claim.hash.0, u32::MAX, u64::MAX))?
                }
                Scope::Repo(id) => {
                    hashes.range((claim.hash.0, id, 0)..=(claim.hash.0, id, u64::MAX))?
                }
            };
            for row in range {
                let (_, _, seq) = row?.0.value();
                best.entry(seq).or_default().insert(
                    query,
                    Best {
                        claim: Claimed::Hash(claim.hash.0),
                        kind: MatchKind::Exact,
                        score: 1.0,
                        terms: Vec::new(),
                    },
                );
                budget.tick()?;
            }
        }

        let postings = txn.open_table(CLAIM_TERMS)?;
        for (query, claim) in q.claims.iter().enumerate() {
            let Some(text) = &claim.text else { continue };
            let query_terms = TermCounts::of(text);
            if query_terms.is_empty() {
                continue;
            }
            let mut self_score = 0.0;
            // Per claim doc: raw score and the terms it shares, terms taken in byte order so
            // that sums (and answers) are the same on every run.
            let mut docs: HashMap<u64, (f64, Vec<String>)> = HashMap::new();
            for (term, query_tf) in &query_terms.terms {
                let found = read_postings(&postings, term, scope, budget)?;
                let idf = corpus.idf(found.len() as u64);
                self_score += corpus.term_score(idf, *query_tf, query_terms.len);
                for (doc, tf, len) in found {
                    let entry = docs.entry(doc).or_insert_with(|| (0.0, Vec::new()));
                    entry.0 += corpus.term_score(idf, tf, len);
                    entry.1.push(term.clone());
                }
            }
            for (doc, (raw, terms)) in docs {
                let score = round_score(relative_score(raw, self_score));
                if score <= 0.0 || score < q.min_score {
                    continue;
                }
                let slot = best.entry(doc_seq(doc)).or_default();
                // An exact match stays; a higher score wins; a tie goes to the earlier claim.
                let better = match slot.get(&query) {
                    None => true,
                    Some(old) => {
                        old.kind == MatchKind::Similar
                            && (score > old.score
                                || (score == old.score && doc_index(doc) < old_index(old)))
                    }
                };
                if better {
                    slot.insert(
                        query,
                        Best {
                            claim: Claimed::Index(doc_index(doc)),
                            kind: MatchKind::Similar,
                            score,
                            terms,
                        },
                    );
                }
            }
        }

        let mut ranked: Vec<(f64, u64)> = best
            .iter()
            .filter_map(|(&seq, matches)| {
                let score: f64 = matches
                    .values()
                    .filter(|m| m.score >= q.min_score)
                    .map(|m| m.score)
                    .sum();
                (score > 0.0).then_some((round_score(score), seq))
            })
            .collect();
        ranked.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));

        let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
        let repo_ids = txn.open_table(REPOS)?;
        let mut out = Vec::new();
        for (score, seq) in ranked {
            if out.len() == q.limit {
                break;
            }
            budget.tick()?;
            let value = verdict_value(&verdicts, seq)?;
            let verdict_repo = match scope {
                Scope::Repo(id) => id,
                Scope::All => repos::lookup(
                    &repo_ids,
                    &Repo::parse("repo", &value.repo).unwrap_or_default(),
                )?
                .unwrap_or(u32::MAX),
            };
            if excluded == Some((verdict_repo, value.pr_number)) {
                continue;
            }
            let matches = best
                .remove(&seq)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, m)| m.score >= q.min_score)
                .map(|(query, m)| ClaimMatch {
                    query,
                    claim: match m.claim {
                        Claimed::Index(i) => i,
                        Claimed::Hash(h) => claim_index_of(&value, h).unwrap_or(0),
                    },
                    kind: m.kind,
                    score: m.score,
                    terms: m.terms,
                })
                .collect();
            let held = value.raw_json.len() + value.one_liner.len();
            if !budget.take(held) {
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

fn old_index(best: &Best) -> usize {
    match best.claim {
        Claimed::Index(i) => i,
        Claimed::Hash(_) => 0,
    }
}

/// Which repositories a search covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    All,
    Repo(u32),
}

/// Every posting of `term` in `scope`: `(claim doc, term count, claim length)`.
fn read_postings(
    postings: &ReadOnlyTable<(&'static str, u32, u64), (u16, u16)>,
    term: &str,
    scope: Scope,
    budget: &mut ReadBudget,
) -> Result<Vec<(u64, u16, u16)>, StoreError> {
    let range = match scope {
        Scope::All => postings.range((term, 0, 0)..=(term, u32::MAX, u64::MAX))?,
        Scope::Repo(id) => postings.range((term, id, 0)..=(term, id, u64::MAX))?,
    };
    let mut out = Vec::new();
    for row in range {
        budget.tick()?;
        let (key, value) = row?;
        let (tf, len) = value.value();
        out.push((key.value().2, tf, len));
    }
    Ok(out)
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

/// Reads a verdict's few fields in place (for callers that need no JSON).
pub(super) fn verdict_ref(bytes: &[u8], seq: u64) -> Result<VerdictValueRef<'_>, StoreError> {
    decode_borrowed(bytes).map_err(|source| StoreError::Codec {
        table: "verdicts_by_seq",
        seq,
        source,
    })
}
