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
use std::collections::{BTreeMap, HashMap, HashSet};

use redb::{ReadOnlyTable, ReadTransaction, ReadableDatabase};

use super::codec::decode;
use super::history::verdict_head;
use super::meta;
use super::postings::{self, Posting};
use super::postings_pool::{PostingsPool, PostingsShare};
use super::repos;
use super::tables::*;
use super::values::VerdictValue;
use super::{ReadBudget, Store, StoreError};
use crate::model::Repo;
use crate::model::claims::{Claim, stored_claims};
use crate::model::polarity::Polarity;
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
    /// The stored claim says the opposite of the query claim (one negated and the other not,
    /// or a pair of opposite words: `model/polarity.rs`); its score is then half the
    /// similarity's ([`OPPOSED_WEIGHT`]). Never for an exact match.
    pub opposed: bool,
}

/// What a similar match that says the opposite counts for, of its score: `adds unit tests for
/// the retry logic` and `does not add unit tests for the retry logic` share every index term
/// (negations are stop words), and scored 0.999 as the nearest precedent (a review,
/// 2026-12-06). Halved, it ranks behind a claim that agrees, and says why.
pub const OPPOSED_WEIGHT: f64 = 0.5;

/// A candidate's stored claims as the opposed matches read them: each claim's polarity, and
/// its terms when it is scored against a query claim ([`Search::best_agreeing`]), each read
/// at most once per candidate and its text's length counted against the budget (a row per 64
/// bytes). Nothing is allocated until a similar match is checked.
struct StoredClaims<'c> {
    claims: &'c [Claim],
    read: Vec<Option<(Polarity, Option<TermCounts>)>>,
}

impl<'c> StoredClaims<'c> {
    fn new(claims: &'c [Claim]) -> StoredClaims<'c> {
        StoredClaims {
            claims,
            read: Vec::new(),
        }
    }

    /// Claim `index`'s polarity; `None` for a claim given as a hash alone.
    fn polarity(
        &mut self,
        index: usize,
        budget: &mut ReadBudget,
    ) -> Result<Option<&Polarity>, StoreError> {
        Ok(self.read_claim(index, false, budget)?.map(|(p, _)| &*p))
    }

    /// Claim `index`'s polarity and terms; `None` for a claim given as a hash alone.
    fn analysed(
        &mut self,
        index: usize,
        budget: &mut ReadBudget,
    ) -> Result<Option<(&Polarity, &TermCounts)>, StoreError> {
        Ok(self
            .read_claim(index, true, budget)?
            .and_then(|(p, counts)| Some((&*p, counts.as_ref()?))))
    }

    fn read_claim(
        &mut self,
        index: usize,
        with_terms: bool,
        budget: &mut ReadBudget,
    ) -> Result<Option<&mut (Polarity, Option<TermCounts>)>, StoreError> {
        let Some(text) = self.claims.get(index).and_then(|c| c.text.as_deref()) else {
            return Ok(None);
        };
        if self.read.is_empty() {
            self.read.resize(self.claims.len(), None);
        }
        let slot = &mut self.read[index];
        let counts_needed = with_terms && slot.as_ref().is_none_or(|(_, c)| c.is_none());
        if slot.is_none() || counts_needed {
            budget.walk(text.len() as u64 / 64 + 1)?;
        }
        let read = slot.get_or_insert_with(|| (Polarity::of(text), None));
        if with_terms && read.1.is_none() {
            read.1 = Some(TermCounts::of(text));
        }
        Ok(Some(read))
    }
}

/// Candidates scored beyond `limit`: what neighbours whose scores opposed matches halve can be
/// replaced by (read only when they are).
const OPPOSED_SPARE: usize = 64;

/// Query claims' best matches the audits scored in detail may hold in all (about 48 MiB): a
/// query of many claims scores fewer PRs in detail than `limit` asks, and its answer says it
/// was cut. 1,000 claims at limit 1,000 held 3.2M of them, and the answer's byte limit would
/// have kept a few dozen of the neighbours they made (a review's: 720 MiB for one query).
const DETAILED_BESTS: usize = 1 << 20;

/// Matches a neighbours answer whose bytes are spent may still build, reading on for better
/// neighbours than the worst it holds.
const AFTER_FULL_MATCHES: usize = 1 << 16;

/// A prior verdict whose claims match the query's.
#[derive(Debug, Clone, PartialEq)]
pub struct NeighborHit {
    pub seq: u64,
    pub value: VerdictValue,
    /// The sum over query claims of their best match's score, rounded to 4 decimals.
    pub score: f64,
    /// One per query claim that matched, in query order.
    pub matches: Vec<ClaimMatch>,
    /// The verdict's claims, as `claims_of` lists them (what [`ClaimMatch::claim`] indexes),
    /// read from its JSON once.
    pub claims: Vec<Claim>,
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

/// Verdict seqs scored together, at most: fewer when their claims would not fit the window's
/// array of [`RAW_SLOTS`].
const WINDOW: u64 = 2048;

/// Claim docs a window sums its scores in, at most (512 KiB): a slot for each claim index up to
/// the highest in the window, for each verdict seq. A window of verdicts making up to 32
/// claims each spans [`WINDOW`] seqs; one with a verdict of 1,000 claims, 64. The array grows
/// to what the windows need. (Claims past a few slots a verdict were once summed aside by
/// sorting: a 1,000-claim query among 1,000-claim audits spent two thirds of 16 s in it.)
const RAW_SLOTS: usize = 1 << 16;

impl Store {
    /// Prior verdicts whose claims equal or resemble the query's, best first (score, then the
    /// newer audit), verdicts of `exclude_pr` left out.
    ///
    /// Cost: one range of `claim_hashes` per query claim, every posting of the query claims'
    /// terms in the searched repository (read block by block), and a read of each neighbour
    /// answered. Within `budget`: its deadline is checked as postings are read and as they are
    /// scored, and fewer than `limit` neighbours are read when their values would pass its
    /// bytes (`budget.was_cut()`).
    pub fn neighbors(
        &self,
        q: &NeighborQuery,
        budget: &mut ReadBudget,
    ) -> Result<Vec<NeighborHit>, StoreError> {
        let prepared = self.neighbors_prepare(q, budget)?;
        self.neighbors_search(q, &prepared, None, budget)
    }

    /// The postings pool the queries share (`postings_pool.rs`), for a caller that waits for
    /// its share itself between [`Store::neighbors_prepare`] and [`Store::neighbors_search`].
    pub fn postings_pool(&self) -> &PostingsPool {
        &self.shared.postings
    }

    /// The first part of [`Store::neighbors`]: the query's scope, the verdicts left out, the
    /// exact tier, and how many postings its terms have (none decoded), in a read transaction
    /// the search goes on in. [`PreparedSearch::room`] says what share of the postings pool
    /// the search needs: a caller with an async runtime waits for it between the two parts
    /// holding no read thread ([`PostingsPool::hold`]). The read transaction is held meanwhile
    /// (at most the request's deadline, as it was when the wait was inside the read): pages
    /// that commits free are reused only once it ends.
    pub fn neighbors_prepare(
        &self,
        q: &NeighborQuery,
        budget: &mut ReadBudget,
    ) -> Result<PreparedSearch, StoreError> {
        let txn = self.db()?.begin_read()?;
        let repo_ids = txn.open_table(REPOS)?;
        let home = repos::lookup(&repo_ids, &q.repo)?;
        let scope = if q.all_repos {
            None
        } else {
            match home {
                Some(id) => Some(id),
                None => return Ok(PreparedSearch::nothing(txn)),
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

        // The verdicts left out: those of the PR being audited.
        let mut left_out: Vec<u64> = Vec::new();
        if let Some((repo, pr)) = excluded {
            let index = txn.open_table(PR_VERDICTS)?;
            for row in index.range((repo, pr, 0)..=(repo, pr, u64::MAX))? {
                budget.tick()?;
                left_out.push(row?.0.value().2);
            }
        }

        // The exact tier: each query claim's verdicts by hash, as (seq, query claim).
        let hashes = txn.open_table(CLAIM_HASHES)?;
        let mut exact: Vec<(u64, usize)> = Vec::new();
        for (query, claim) in q.claims.iter().enumerate() {
            let range = match scope {
                None => hashes.range((claim.hash.0, 0, 0)..=(claim.hash.0, u32::MAX, u64::MAX))?,
                Some(id) => hashes.range((claim.hash.0, id, 0)..=(claim.hash.0, id, u64::MAX))?,
            };
            for row in range {
                budget.tick()?;
                exact.push((row?.0.value().2, query));
            }
        }
        exact.sort_unstable();
        exact.dedup();

        // The similar tier: each distinct term of the query claims, read once, with the query
        // claims that hold it.
        let table = txn.open_table(CLAIM_TERMS)?;
        let counts: Vec<Option<TermCounts>> = q
            .claims
            .iter()
            .map(|c| {
                c.text
                    .as_deref()
                    .map(TermCounts::of)
                    .filter(|t| !t.is_empty())
            })
            .collect();
        let mut by_term: BTreeMap<&str, Vec<(usize, u8)>> = BTreeMap::new();
        for (query, counts) in counts.iter().enumerate() {
            for (bit, (term, _)) in counts.iter().flat_map(|c| c.terms.iter()).enumerate() {
                by_term.entry(term).or_default().push((query, bit as u8));
            }
        }
        // How many postings the terms have (no posting decoded): the room their vectors take
        // is held from the pool of the queries running at once before they are read
        // (`postings_pool.rs`).
        let mut counted = Vec::with_capacity(by_term.len());
        for (term, holders) in by_term {
            let n = postings::count(&table, term, scope, budget)?;
            counted.push(Counted {
                term: term.to_owned(),
                holders,
                n,
            });
        }
        let room = counted.iter().map(|c| postings::room_for(c.n));
        let room = room.sum::<u64>() + exact.len() as u64;
        drop((table, hashes, meta_table, repo_ids));
        Ok(PreparedSearch {
            txn,
            searched: Some(Searched {
                scope,
                corpus,
                left_out,
                exact,
                counts,
                counted,
                room,
                pooled: room > self.shared.postings.unpooled(),
            }),
        })
    }

    /// The rest of [`Store::neighbors`], in `prepared`'s read transaction: reads the postings,
    /// holding `share` of the pool when it covers the room they take (else a share waited for
    /// here, on this thread), ranks and reads the neighbours.
    pub fn neighbors_search(
        &self,
        q: &NeighborQuery,
        prepared: &PreparedSearch,
        share: Option<&PostingsShare>,
        budget: &mut ReadBudget,
    ) -> Result<Vec<NeighborHit>, StoreError> {
        let txn = &prepared.txn;
        let Some(searched) = &prepared.searched else {
            return Ok(Vec::new());
        };
        let Searched {
            scope,
            corpus,
            ref left_out,
            ref exact,
            ref counts,
            ref counted,
            ..
        } = *searched;
        let _held = match prepared.room() {
            Some(room) if !share.is_some_and(|share| share.covers(room)) => {
                Some(self.shared.postings.hold_blocking(room, budget)?)
            }
            _ => None,
        };
        let table = txn.open_table(CLAIM_TERMS)?;
        let mut terms = Vec::with_capacity(counted.len());
        for Counted { term, holders, n } in counted {
            terms.push(TermList {
                term,
                postings: postings::read(&table, term, scope, *n, budget)?,
                holders: holders.clone(),
            });
        }
        let self_scores: Vec<f64> = counts
            .iter()
            .map(|c| c.as_ref().map_or(0.0, |c| self_score(c, &terms, corpus)))
            .collect();
        let search = Search {
            hashes: q.claims.iter().map(|c| c.hash.0).collect(),
            terms,
            corpus,
            self_scores,
            min_score: q.min_score,
        };
        let mut want = q.limit.saturating_add(OPPOSED_SPARE);
        let per_pr = q.claims.len().max(1).saturating_mul(AUDITS_PER_PR);
        if want.saturating_mul(per_pr) > DETAILED_BESTS {
            want = (DETAILED_BESTS / per_pr).max(1);
            // Without the spare PRs, a neighbour halved for saying the opposite may be
            // answered where a better one would have been: the answer may be short of them.
            budget.cut_short();
        }
        let ranked = search.best_per_pr(txn, exact, left_out, want, budget)?;

        let query_terms: Vec<Vec<&str>> = counts
            .iter()
            .map(|c| {
                c.iter()
                    .flat_map(|c| c.terms.iter().map(|(t, _)| t.as_str()))
                    .collect()
            })
            .collect();
        // Each query claim's negation and words, read once for every candidate.
        let asked_polarity: Vec<Option<Polarity>> = q
            .claims
            .iter()
            .map(|c| c.text.as_deref().map(Polarity::of))
            .collect();
        let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
        // Each candidate with the bytes it holds of the answer's budget.
        let mut out: Vec<(NeighborHit, PrKey, usize)> = Vec::new();
        // Each PR's best answered so far, as (score, seq).
        let mut best_of: HashMap<PrKey, (f64, u64)> = HashMap::new();
        // Once the answer's bytes are spent: the matches the walk may still build to find
        // better neighbours than those held (at least 64 candidates' worth), so that a full
        // answer costs a bounded walk past what filled it, counted in the work each
        // candidate is (a candidate of a query of many claims builds as many matches).
        let mut after_full: Option<usize> = None;
        for (found, pr) in ranked {
            // A match that says the opposite only lowers a score: once `limit` PRs rank ahead
            // of this candidate as it stands, neither it nor any after it (ranked no higher)
            // can be answered; nor can it when its own PR has a better one.
            let ahead = |best: &(f64, u64)| *best > (found.score, found.seq);
            if best_of.get(&pr).is_some_and(ahead) {
                continue;
            }
            if best_of.values().filter(|best| ahead(best)).count() >= q.limit {
                break;
            }
            if let Some(left) = after_full.as_mut() {
                if *left == 0 {
                    break;
                }
                *left = left.saturating_sub(found.bests.len().max(1));
            }
            budget.tick()?;
            // What the answer holds is bounded by its bytes (below); the candidate read now is
            // held beside them until it is placed or dropped.
            let value = verdict_value(&verdicts, found.seq)?;
            let bytes = value.raw_json.len() + value.one_liner.len();
            // Read once per neighbour, however many of its claims matched: a verdict may hold
            // up to MAX_CLAIMS of them in a JSON of up to the body limit.
            let claims = stored_claims(&value.raw_json);
            let mut stored_claims = StoredClaims::new(&claims);
            let mut matches = Vec::with_capacity(found.bests.len());
            // Whether a match was halved, replaced or dropped: the score is summed again.
            let mut changed = false;
            for &(query, m) in &found.bests {
                let claim = match m.claim {
                    Claimed::Index(i) => i,
                    Claimed::Hash(h) => claims.iter().position(|c| c.hash.0 == h).unwrap_or(0),
                };
                let found_match = ClaimMatch {
                    query,
                    claim,
                    kind: m.kind,
                    score: m.score,
                    terms: terms_of(&query_terms[query], m.terms),
                    opposed: false,
                };
                // The query claim's polarity and terms, when this similar match says the
                // opposite of it.
                let opposed = match (m.kind, &asked_polarity[query], &counts[query]) {
                    (MatchKind::Similar, Some(polarity), Some(asked_counts)) => stored_claims
                        .polarity(claim, budget)?
                        .is_some_and(|stored| polarity.opposes(stored))
                        .then_some((polarity, asked_counts)),
                    _ => None,
                };
                let best = match opposed {
                    Some((polarity, asked_counts)) => {
                        changed = true;
                        // Every claim of the verdict is scored against this query claim.
                        budget.walk(claims.len() as u64)?;
                        let halved = ClaimMatch {
                            score: round_score(m.score * OPPOSED_WEIGHT),
                            opposed: true,
                            ..found_match
                        };
                        // The verdict's best claim that does not say the opposite, if it
                        // scores above the opposed one halved.
                        let agreeing = search.best_agreeing(
                            query,
                            polarity,
                            asked_counts,
                            &mut stored_claims,
                            claim,
                            budget,
                        )?;
                        agreeing
                            .filter(|other| other.score > halved.score)
                            .unwrap_or(halved)
                    }
                    None => found_match,
                };
                if best.score >= q.min_score {
                    matches.push(best);
                } else {
                    changed = true;
                }
            }
            if matches.is_empty() {
                continue;
            }
            // Its matches are held too, as the answer will hold them: a query of many claims
            // makes each neighbour large.
            let matched: usize = matches
                .iter()
                .map(|m| {
                    std::mem::size_of::<ClaimMatch>()
                        + m.terms
                            .iter()
                            .map(|t| std::mem::size_of::<String>() + t.len())
                            .sum::<usize>()
                })
                .sum();
            let bytes = bytes + matched;
            // The listed matches, summed in query claim order as the ranking does: the same
            // score unless one was halved, replaced or dropped.
            let score = if changed {
                round_score(matches.iter().map(|m| m.score).sum())
            } else {
                found.score
            };
            // Held of the answer's bytes (the first neighbour whatever its size, as a page's
            // first item is). When they are spent, a neighbour better than the worst ones held
            // takes their place: the ranking is walked by scores before opposed matches halve
            // them, so a better neighbour can come after worse ones (a review found a cut
            // answer of halved neighbours only, better ones never read).
            if !budget.take(bytes) {
                after_full.get_or_insert(
                    AFTER_FULL_MATCHES.max(OPPOSED_SPARE * found.bests.len().max(1)),
                );
                // Better is a higher score, then a newer verdict: a non-negative score's bits
                // order as the score does (as in `Search::top`).
                let key = |hit: &NeighborHit| (hit.score.to_bits(), hit.seq);
                let mine = (score.to_bits(), found.seq);
                let mut worse: Vec<usize> =
                    (0..out.len()).filter(|&i| key(&out[i].0) < mine).collect();
                worse.sort_by_key(|&i| key(&out[i].0));
                // The worst of them, as few as make room.
                let needed = bytes.saturating_sub(budget.room());
                let mut freed = 0;
                let mut victims = 0;
                while freed < needed && victims < worse.len() {
                    freed += out[worse[victims]].2;
                    victims += 1;
                }
                if freed < needed {
                    // No room for it: once no later candidate (ranked no higher than this one
                    // stood) can beat the worst neighbour held, the walk ends.
                    let worst = out.iter().map(|(hit, ..)| key(hit)).min();
                    if worst.is_some_and(|w| w >= (found.score.to_bits(), found.seq)) {
                        break;
                    }
                    continue;
                }
                let mut evict: Vec<usize> = worse[..victims].to_vec();
                // Removed from the end first, so that the indexes left stay valid.
                evict.sort_unstable_by(|a, b| b.cmp(a));
                for i in evict {
                    let (_, _, held) = out.swap_remove(i);
                    budget.give_back(held);
                }
                if !budget.take(bytes) {
                    break;
                }
            }
            let best = best_of.entry(pr).or_insert((score, found.seq));
            if (score, found.seq) > *best {
                *best = (score, found.seq);
            }
            out.push((
                NeighborHit {
                    seq: found.seq,
                    value,
                    score,
                    matches,
                    claims,
                },
                pr,
                bytes,
            ));
        }
        // Better is a higher score, then a newer verdict, as ranked; each PR once, as its best;
        // what the neighbours ranked out held is given back.
        out.sort_by(|(a, ..), (b, ..)| b.score.total_cmp(&a.score).then(b.seq.cmp(&a.seq)));
        let mut answered = HashSet::new();
        let mut kept = Vec::with_capacity(q.limit.min(out.len()));
        for (hit, pr, bytes) in out {
            if kept.len() < q.limit && answered.insert(pr) {
                kept.push(hit);
            } else {
                budget.give_back(bytes);
            }
        }
        Ok(kept)
    }
}

/// A neighbours query's first part ([`Store::neighbors_prepare`]): its read transaction and
/// what was read in it, for [`Store::neighbors_search`].
pub struct PreparedSearch {
    txn: ReadTransaction,
    /// `None` when the query's repository holds nothing.
    searched: Option<Searched>,
}

/// What [`Store::neighbors_prepare`] read.
struct Searched {
    scope: Option<u32>,
    corpus: Corpus,
    left_out: Vec<u64>,
    exact: Vec<(u64, usize)>,
    /// Per query claim, its terms.
    counts: Vec<Option<TermCounts>>,
    /// Each distinct term, the query claims holding it (claim, bit), and its postings' count.
    counted: Vec<Counted>,
    /// The room the postings and the exact tier take.
    room: u64,
    /// Whether that room is held from the pool (more than it reads without a share).
    pooled: bool,
}

/// A distinct term of the query claims: the claims holding it, as (claim, bit of the term in
/// its claim), and how many postings it has.
struct Counted {
    term: String,
    holders: Vec<(usize, u8)>,
    n: u64,
}

impl PreparedSearch {
    fn nothing(txn: ReadTransaction) -> PreparedSearch {
        PreparedSearch {
            txn,
            searched: None,
        }
    }

    /// The share of the postings pool the search needs, when it needs one: the room its
    /// postings take, unless that is small enough to be read without.
    pub fn room(&self) -> Option<u64> {
        let searched = self.searched.as_ref()?;
        searched.pooled.then_some(searched.room)
    }

    /// Whether the search reads more blocks of postings than a light read walks rows, and so
    /// is a heavy read from its start.
    pub fn is_heavy(&self) -> bool {
        self.searched.as_ref().is_some_and(|searched| {
            searched.room / postings::BLOCK_LEN as u64 > super::budget::HEAVY_READ_ROWS
        })
    }
}

impl std::fmt::Debug for PreparedSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedSearch")
            .field("room", &self.searched.as_ref().map(|s| s.room))
            .finish_non_exhaustive()
    }
}

/// One distinct query term: its postings in the searched repository, and the query claims that
/// hold it (with the term's bit in each claim's `terms` mask).
struct TermList<'q> {
    term: &'q str,
    postings: Vec<Posting>,
    holders: Vec<(usize, u8)>,
}

/// A query claim's score against itself: the sum over its terms of what it would score as a
/// stored claim (the denominator of a similar match's score).
fn self_score(counts: &TermCounts, terms: &[TermList<'_>], corpus: Corpus) -> f64 {
    counts
        .terms
        .iter()
        .map(|(term, query_tf)| {
            let at = terms.partition_point(|t| t.term < term.as_str());
            let idf = corpus.idf(terms[at].postings.len() as u64);
            corpus.term_score(idf, *query_tf, counts.len)
        })
        .sum()
}

/// A verdict as ranked: its score and each matching query claim's best match.
#[derive(Debug)]
struct Ranked {
    score: f64,
    seq: u64,
    bests: Vec<(usize, Best)>,
}

/// The scoring of one query over the postings of its terms.
struct Search<'q> {
    /// Per query claim, its hash (an exact match's claim is found by it).
    hashes: Vec<u64>,
    terms: Vec<TermList<'q>>,
    corpus: Corpus,
    /// Per query claim, its score against itself (0 for a claim without terms).
    self_scores: Vec<f64>,
    min_score: f64,
}

/// Audits of one PR kept for the refinement, its best ones: its best by the ranking may say the
/// opposite of the query and count half, where another of its audits agrees (a review's).
const AUDITS_PER_PR: usize = 3;

/// A PR's newest audits known as its own once one of its audits is read, without reading their
/// heads: a PR audited on every push has its audits ranked together.
const KNOWN_PER_PR: usize = 64;

/// Rows of `pr_verdicts` a ranking may read per audit it holds, to pass over the audits of
/// PRs that have their [`AUDITS_PER_PR`]: a row of that index costs less than the head read it
/// saves, and the ranking bounds how many of those there can be.
const RANGE_ROWS_PER_RANKED: u64 = 64;

/// How many more audits than PRs wanted the ranking keeps, and how many times more it keeps
/// when it is scored again because the walk ran out of it.
const RANKED_PER_PR: usize = 16;

impl Search<'_> {
    /// The best audits of the `want` best PRs, at most [`AUDITS_PER_PR`] of each, best first
    /// ([`Search::top`]'s order), leaving out the verdicts `left_out` (sorted). A PR audited on
    /// every push, each audit making the same claims, would otherwise fill the answer with
    /// itself and hide every other PR (a review's: 60 audits of one PR hid a blocked one that
    /// made the same claim).
    ///
    /// The ranking is walked best first until `want` PRs are found. An audit's PR is read from
    /// the head of its value (not its JSON), unless it is known: a PR's [`KNOWN_PER_PR`]
    /// newest audits are read from `pr_verdicts` when it is found, and all of them once an
    /// audit past those comes up with the PR's [`AUDITS_PER_PR`] kept (passed over), while
    /// those ranges stay within [`RANGE_ROWS_PER_RANKED`] rows per audit ranked. So a PR
    /// audited on every push costs a range of that index, not a head per audit. Past the
    /// `want`-th PR, the walk goes on for the found PRs' known audits scoring above half the
    /// audit that found it: one of those may agree with the query where the PR's best says
    /// the opposite and counts half. It goes on as far as the ranking in hand, which is not
    /// scored again for them. The ranking holds [`RANKED_PER_PR`] times `want` audits;
    /// when the walk runs out of it before `want` PRs, the postings are scored again for
    /// [`RANKED_PER_PR`] times more, leaving out the audits walked and passed over.
    fn best_per_pr(
        &self,
        txn: &ReadTransaction,
        exact: &[(u64, usize)],
        left_out: &[u64],
        want: usize,
        budget: &mut ReadBudget,
    ) -> Result<Vec<(Ranked, PrKey)>, StoreError> {
        let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
        let repo_ids = txn.open_table(REPOS)?;
        let audits = txn.open_table(PR_VERDICTS)?;
        let pr_counts = txn.open_table(PRS)?;
        let mut scratch = Vec::new();
        // The PRs found, with how many of their audits are kept.
        let mut found: HashMap<PrKey, usize> = HashMap::new();
        // Audits whose PR is known without reading their heads: each PR's newest when it is
        // found (at most KNOWN_PER_PR of each PR found).
        let mut known: HashMap<u64, PrKey> = HashMap::new();
        // Sorted: every audit of the PRs that had all their kept audits when another of their
        // audits came up, passed over (8 bytes an audit).
        let mut passed_over: Vec<u64> = Vec::new();
        // The last audit walked, as the ranking orders it: a ranking scored again holds only
        // the audits ranked below it (all those above were walked), so the walk goes on from
        // where it stood.
        let mut walked_to: Option<(u64, u64)> = None;
        let mut kept: Vec<(u64, PrKey)> = Vec::new();
        let mut ranked = want.saturating_mul(RANKED_PER_PR);
        // Once `want` PRs are found: half the score of the audit that found the last. A found
        // PR's best audit scores above it, so an audit at or below it cannot answer for its PR
        // even when the PR's best says the opposite of the query and counts half.
        let mut floor: Option<f64> = None;
        'rankings: loop {
            let left_out = |seq: u64| {
                left_out.binary_search(&seq).is_ok() || passed_over.binary_search(&seq).is_ok()
            };
            let (ranking, cut) = self.top(exact, left_out, walked_to, ranked, budget)?;
            // The rows of `pr_verdicts` this ranking may read to pass PRs' audits over.
            let mut range_rows = (ranking.len() as u64).saturating_mul(RANGE_ROWS_PER_RANKED);
            for &(score, seq) in &ranking {
                budget.tick()?;
                if let Some(floor) = floor {
                    // Past the PRs wanted: a found PR's audits known to be its own, until none
                    // could answer for it.
                    if score <= floor {
                        break 'rankings;
                    }
                    if let Some(&pr) = known.get(&seq)
                        && let Some(count) = found.get_mut(&pr)
                        && *count < AUDITS_PER_PR
                    {
                        *count += 1;
                        kept.push((seq, pr));
                    }
                    continue;
                }
                walked_to = Some((score.to_bits(), seq));
                let pr = match known.get(&seq) {
                    Some(&pr) => pr,
                    None if passed_over.binary_search(&seq).is_ok() => continue,
                    None => {
                        let pr = pr_of(&verdicts, &repo_ids, seq, &mut scratch)?;
                        let (repo, number) = pr;
                        let all = (repo, number, 0)..=(repo, number, u64::MAX);
                        match found.get(&pr) {
                            None => {
                                for row in audits.range(all)?.rev().take(KNOWN_PER_PR) {
                                    budget.tick()?;
                                    known.insert(row?.0.value().2, pr);
                                }
                            }
                            Some(&count) if count >= AUDITS_PER_PR => {
                                // Its audits are passed over by a range of its index when
                                // they fit this ranking's rows (a PR of 1,000,000 audits
                                // whose 4 oldest matched made every query read them all, a
                                // review's); else each costs a head read, as this one did.
                                let audits_of = pr_counts
                                    .get(pr)?
                                    .map_or(0, |v| v.value().0 + v.value().1 + v.value().2);
                                if audits_of <= range_rows {
                                    range_rows -= audits_of;
                                    for row in audits.range(all)? {
                                        budget.tick()?;
                                        passed_over.push(row?.0.value().2);
                                    }
                                    // Two sorted runs: merged in one pass.
                                    passed_over.sort();
                                }
                                continue;
                            }
                            Some(_) => {}
                        }
                        pr
                    }
                };
                let count = found.entry(pr).or_default();
                if *count < AUDITS_PER_PR {
                    *count += 1;
                    kept.push((seq, pr));
                }
                if found.len() >= want {
                    floor = Some(score / 2.0);
                }
            }
            if floor.is_some() || !cut {
                break;
            }
            ranked = ranked.saturating_mul(RANKED_PER_PR);
        }
        // Scored again in detail, in seq order; then best first.
        kept.sort_unstable_by_key(|&(seq, _)| seq);
        let seqs: Vec<u64> = kept.iter().map(|&(seq, _)| seq).collect();
        let mut out: Vec<(Ranked, PrKey)> = self
            .detail(&seqs, exact, budget)?
            .into_iter()
            .zip(kept)
            .filter_map(|(ranked, (_, pr))| Some((ranked?, pr)))
            .collect();
        out.sort_unstable_by(|(a, _), (b, _)| b.score.total_cmp(&a.score).then(b.seq.cmp(&a.seq)));
        Ok(out)
    }

    /// The best of `claims` (a verdict's) for the query claim `query` (its polarity `asked`,
    /// its terms `asked_counts`) among those that do not say the opposite of it, `skip` left
    /// out: the verdict's best match said the opposite, and another claim of it may agree.
    /// Scored as the search scores a stored claim (BM25 over the query claim's own score).
    /// Each claim is read once per candidate (`claims`).
    fn best_agreeing(
        &self,
        query: usize,
        asked: &Polarity,
        asked_counts: &TermCounts,
        claims: &mut StoredClaims<'_>,
        skip: usize,
        budget: &mut ReadBudget,
    ) -> Result<Option<ClaimMatch>, StoreError> {
        let mut best: Option<ClaimMatch> = None;
        for index in (0..claims.claims.len()).filter(|&index| index != skip) {
            let Some((polarity, stored)) = claims.analysed(index, budget)? else {
                continue;
            };
            let mut raw = 0.0;
            let mut shared = Vec::new();
            for (term, _) in &asked_counts.terms {
                let Ok(at) = stored.terms.binary_search_by(|(t, _)| t.as_str().cmp(term)) else {
                    continue;
                };
                let list = self.terms.partition_point(|t| t.term < term.as_str());
                let Some(known) = self.terms.get(list).filter(|t| t.term == term) else {
                    continue;
                };
                let idf = self.corpus.idf(known.postings.len() as u64);
                raw += self.corpus.term_score(idf, stored.terms[at].1, stored.len);
                shared.push(term.clone());
            }
            let score = round_score(relative_score(raw, self.self_scores[query]));
            if score <= 0.0
                || best.as_ref().is_some_and(|b| b.score >= score)
                || asked.opposes(polarity)
            {
                continue;
            }
            best = Some(ClaimMatch {
                query,
                claim: index,
                kind: MatchKind::Similar,
                score,
                terms: shared,
                opposed: false,
            });
        }
        Ok(best)
    }

    /// The scores and seqs of the `limit` best verdicts, best first (a higher score, then a
    /// newer verdict), leaving out those `excluded` says and, given a key `(score bits, seq)`
    /// in `below`, those it does not rank below; and whether any verdict that scored was left
    /// out for them: exact matches from `exact` (sorted `(seq, query claim)`), similar ones
    /// from the terms' postings.
    ///
    /// Every posting of the query's terms is scored, a window of at most [`WINDOW`] verdict
    /// seqs at a time: a claim doc is `seq << 10 | index`, so each term's postings in a window
    /// are one run of its list. Within a window each query claim sums its terms into a flat
    /// array by claim doc (in term order, as the brute force does; [`RAW_SLOTS`] bounds the
    /// array, and so the window's seqs), keeps each verdict's best doc, and
    /// adds it to the verdict's total; the totals go to a heap of the best `limit`.
    /// [`Search::detail`] scores the verdicts walked again, in detail (which claims, which
    /// terms).
    fn top(
        &self,
        exact: &[(u64, usize)],
        excluded: impl Fn(u64) -> bool,
        below: Option<(u64, u64)>,
        limit: usize,
        budget: &mut ReadBudget,
    ) -> Result<(Vec<(f64, u64)>, bool), StoreError> {
        let n = self.terms.len();
        let claims = self.self_scores.len();
        let idfs = self.idfs();
        // Each query claim's terms, in term order.
        let mut claim_terms: Vec<Vec<usize>> = vec![Vec::new(); claims];
        for (t, term) in self.terms.iter().enumerate() {
            for &(q, _) in &term.holders {
                claim_terms[q].push(t);
            }
        }
        let mut exact_of: Vec<Vec<u64>> = vec![Vec::new(); claims];
        for &(seq, q) in exact {
            exact_of[q].push(seq);
        }
        let mut next_exact = vec![0usize; claims];
        let mut cursor = vec![0usize; n];
        let mut stop = vec![0usize; n];

        let window = WINDOW as usize;
        // By window slot (`verdict * stride + claim index`): a query claim's raw score.
        let mut raw: Vec<f64> = Vec::new();
        let mut raw_touched: Vec<usize> = Vec::new();
        // By window verdict: the query claim's best score, and the total over claims.
        let mut claim_best = vec![0.0f64; window];
        let mut best_touched: Vec<usize> = Vec::new();
        let mut total = vec![0.0f64; window];
        let mut in_total = vec![false; window];
        let mut total_touched: Vec<usize> = Vec::new();
        let mut top: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
        // Whether a verdict that scored was left out of `top`.
        let mut cut = false;
        loop {
            let from_terms = (0..n)
                .filter_map(|t| self.terms[t].postings.get(cursor[t]))
                .map(|p| p.doc >> CLAIM_INDEX_BITS)
                .min();
            let from_exact = (0..claims)
                .filter_map(|q| exact_of[q].get(next_exact[q]))
                .min()
                .copied();
            let base = match (from_terms, from_exact) {
                (None, None) => break,
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or_default(),
            };
            budget.tick()?;
            let mut end = base.saturating_add(WINDOW);
            let end_doc = |end: u64| end.checked_shl(CLAIM_INDEX_BITS).unwrap_or(u64::MAX);
            for t in 0..n {
                let list = &self.terms[t].postings;
                stop[t] = cursor[t] + gallop(&list[cursor[t]..], end_doc(end));
            }
            // A slot per claim index up to the window's highest; fewer seqs when those would
            // not fit.
            let highest = (0..n)
                .flat_map(|t| &self.terms[t].postings[cursor[t]..stop[t]])
                .map(|p| p.doc & ((1 << CLAIM_INDEX_BITS) - 1))
                .max()
                .unwrap_or(0);
            let stride = (highest as usize + 1).next_power_of_two();
            let span = (RAW_SLOTS / stride).min(window);
            if span < window {
                end = base.saturating_add(span as u64);
                for t in 0..n {
                    let list = &self.terms[t].postings[cursor[t]..stop[t]];
                    stop[t] = cursor[t] + gallop(list, end_doc(end));
                }
            }
            if raw.len() < span * stride {
                raw.resize(span * stride, 0.0);
            }
            for q in 0..claims {
                for &t in &claim_terms[q] {
                    budget.walk((stop[t] - cursor[t]) as u64)?;
                    for p in &self.terms[t].postings[cursor[t]..stop[t]] {
                        let contribution = self.corpus.term_score(idfs[t], p.tf, p.len);
                        let verdict = ((p.doc >> CLAIM_INDEX_BITS) - base) as usize;
                        let index = (p.doc & ((1 << CLAIM_INDEX_BITS) - 1)) as usize;
                        let slot = verdict * stride + index;
                        if raw[slot] == 0.0 {
                            raw_touched.push(slot);
                        }
                        raw[slot] += contribution;
                    }
                }
                let mut keep = |verdict: usize, sum: f64| {
                    let score = round_score(relative_score(sum, self.self_scores[q]));
                    if score > 0.0 && score >= self.min_score {
                        if claim_best[verdict] == 0.0 {
                            best_touched.push(verdict);
                        }
                        claim_best[verdict] = claim_best[verdict].max(score);
                    }
                };
                for &slot in &raw_touched {
                    keep(slot / stride, raw[slot]);
                    raw[slot] = 0.0;
                }
                raw_touched.clear();
                let seqs = &exact_of[q];
                while let Some(&seq) = seqs.get(next_exact[q]).filter(|&&s| s < end) {
                    let verdict = (seq - base) as usize;
                    if claim_best[verdict] == 0.0 {
                        best_touched.push(verdict);
                    }
                    claim_best[verdict] = 1.0;
                    next_exact[q] += 1;
                }
                // Totals summed in query claim order, as the brute force does.
                for &verdict in &best_touched {
                    if !in_total[verdict] {
                        in_total[verdict] = true;
                        total_touched.push(verdict);
                    }
                    total[verdict] += claim_best[verdict];
                    claim_best[verdict] = 0.0;
                }
                best_touched.clear();
            }
            for &verdict in &total_touched {
                let score = round_score(total[verdict]);
                let seq = base + verdict as u64;
                total[verdict] = 0.0;
                in_total[verdict] = false;
                if score <= 0.0 || excluded(seq) {
                    continue;
                }
                // Better is a higher score, then a newer verdict: a positive score's bits order
                // as the score does.
                let key = (score.to_bits(), seq);
                if below.is_some_and(|below| key >= below) {
                    continue;
                }
                if top.len() < limit {
                    top.push(Reverse(key));
                } else {
                    cut = true;
                    if top.peek().is_some_and(|Reverse(weakest)| key > *weakest) {
                        top.pop();
                        top.push(Reverse(key));
                    }
                }
            }
            total_touched.clear();
            cursor.copy_from_slice(&stop);
        }

        // Ascending as `Reverse`: best first.
        let ranking = top
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse((score, seq))| (f64::from_bits(score), seq));
        Ok((ranking.collect(), cut))
    }

    /// Each query term's IDF, in term order.
    fn idfs(&self) -> Vec<f64> {
        self.terms
            .iter()
            .map(|t| self.corpus.idf(t.postings.len() as u64))
            .collect()
    }

    /// The verdicts `seqs` (sorted, each once) scored again in detail, as [`Search::top`]
    /// scored them: each matching query claim's best match. Each term's postings are walked
    /// forward once for all of them.
    fn detail(
        &self,
        seqs: &[u64],
        exact: &[(u64, usize)],
        budget: &mut ReadBudget,
    ) -> Result<Vec<Option<Ranked>>, StoreError> {
        let n = self.terms.len();
        let claims = self.self_scores.len();
        let idfs = self.idfs();
        let mut cursor = vec![0usize; n];
        let mut next_exact = 0;
        let mut scratch = Scratch::for_claims(claims);
        // By query claim: where its best match is in the candidate's list, [`NO_BEST`] if none.
        let mut best_at = vec![NO_BEST; claims];
        let mut out = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            budget.walk(n as u64)?;
            scratch.gathered.clear();
            let (from, to) = (
                seq.checked_shl(CLAIM_INDEX_BITS).unwrap_or(u64::MAX),
                seq.saturating_add(1)
                    .checked_shl(CLAIM_INDEX_BITS)
                    .unwrap_or(u64::MAX),
            );
            for (t, term) in self.terms.iter().enumerate() {
                let list = &term.postings;
                cursor[t] += gallop(&list[cursor[t]..], from);
                let end = cursor[t] + gallop(&list[cursor[t]..], to);
                for p in &list[cursor[t]..end] {
                    let contribution = self.corpus.term_score(idfs[t], p.tf, p.len);
                    scratch.gathered.push((p.doc, t, contribution));
                }
                cursor[t] = end;
            }
            next_exact += exact[next_exact..].partition_point(|&(s, _)| s < seq);
            let matched = exact[next_exact..].partition_point(|&(s, _)| s == seq);
            let found = self.score(
                seq,
                &mut scratch,
                &mut best_at,
                &exact[next_exact..next_exact + matched],
                budget,
            )?;
            next_exact += matched;
            out.push(found);
        }
        Ok(out)
    }

    /// Calls `f(claim index, query claim, raw score, terms as bits)` for each query claim
    /// holding a gathered term, doc by doc in order, query claims in the order the doc's terms
    /// first name them; each doc's score summed in term order. Costs one step per (posting,
    /// query claim holding its term), counted in `budget`.
    fn per_doc(
        &self,
        scratch: &mut Scratch,
        budget: &mut ReadBudget,
        mut f: impl FnMut(usize, usize, f64, u64),
    ) -> Result<(), StoreError> {
        let Scratch {
            gathered,
            raw,
            touched,
        } = scratch;
        gathered.sort_unstable_by_key(|&(doc, t, _)| (doc, t));
        for group in gathered.chunk_by(|a, b| a.0 == b.0) {
            for &(_, t, contribution) in group {
                let holders = &self.terms[t].holders;
                budget.walk(holders.len() as u64)?;
                for &(query, bit) in holders {
                    let (sum, bits) = &mut raw[query];
                    // Every holder sets a bit: no bits yet means not yet met in this doc.
                    if *bits == 0 {
                        touched.push(query);
                    }
                    *sum += contribution;
                    *bits |= 1u64 << (bit % 64);
                }
            }
            let index = (group[0].0 & ((1 << CLAIM_INDEX_BITS) - 1)) as usize;
            for &query in touched.iter() {
                let (sum, bits) = std::mem::take(&mut raw[query]);
                f(index, query, sum, bits);
            }
            touched.clear();
        }
        Ok(())
    }

    /// A verdict's score from its gathered postings and exact matches: per query claim its
    /// best match (an exact one first, then the highest score, then the earlier claim), summed.
    /// `best_at` is by query claim, [`NO_BEST`] throughout, and left so.
    fn score(
        &self,
        seq: u64,
        scratch: &mut Scratch,
        best_at: &mut [usize],
        exact: &[(u64, usize)],
        budget: &mut ReadBudget,
    ) -> Result<Option<Ranked>, StoreError> {
        let mut bests: Vec<(usize, Best)> = Vec::with_capacity(exact.len());
        for &(_, query) in exact {
            best_at[query] = bests.len();
            let best = Best {
                claim: Claimed::Hash(self.hashes[query]),
                kind: MatchKind::Exact,
                score: 1.0,
                terms: 0,
            };
            bests.push((query, best));
        }
        let scored = self.per_doc(scratch, budget, |index, query, sum, bits| {
            let score = round_score(relative_score(sum, self.self_scores[query]));
            if score <= 0.0 || score < self.min_score {
                return;
            }
            let similar = Best {
                claim: Claimed::Index(index),
                kind: MatchKind::Similar,
                score,
                terms: bits,
            };
            match best_at[query] {
                NO_BEST => {
                    best_at[query] = bests.len();
                    bests.push((query, similar));
                }
                at => {
                    let held = &mut bests[at].1;
                    if held.kind == MatchKind::Similar && score > held.score {
                        *held = similar;
                    }
                }
            }
        });
        for &(query, _) in &bests {
            best_at[query] = NO_BEST;
        }
        scored?;
        if bests.is_empty() {
            return Ok(None);
        }
        bests.sort_unstable_by_key(|(query, _)| *query);
        let score = round_score(bests.iter().map(|(_, b)| b.score).sum());
        Ok((score > 0.0).then_some(Ranked { score, seq, bests }))
    }
}

/// A query claim's place in a candidate's best matches before it has one.
const NO_BEST: usize = usize::MAX;

/// Buffers reused from one candidate verdict to the next, indexed by query claim where they
/// are per claim: a query of many claims sharing terms costs each posting one step per claim
/// holding its term, not a search among them.
struct Scratch {
    /// The candidate's postings: (claim doc, term, contribution).
    gathered: Vec<(u64, usize, f64)>,
    /// By query claim: its raw score and terms (as bits) in the doc being summed; (0.0, 0) when
    /// the doc has none of its terms.
    raw: Vec<(f64, u64)>,
    /// The query claims `raw` holds for the doc, in the order first met.
    touched: Vec<usize>,
}

impl Scratch {
    fn for_claims(claims: usize) -> Scratch {
        Scratch {
            gathered: Vec::new(),
            raw: vec![(0.0, 0); claims],
            touched: Vec::new(),
        }
    }
}

/// How many of `list`'s postings come before claim doc `from` (galloping: cheap when few do).
fn gallop(list: &[Posting], from: u64) -> usize {
    let mut step = 1;
    while step < list.len() && list[step - 1].doc < from {
        step *= 2;
    }
    let end = step.min(list.len());
    let start = step / 2;
    start + list[start..end].partition_point(|p| p.doc < from)
}

/// The query terms whose bits are set in `mask`, in byte order.
fn terms_of(terms: &[&str], mask: u64) -> Vec<String> {
    terms
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << (bit % 64)) != 0)
        .map(|(_, term)| term.to_string())
        .collect()
}

/// A PR: its repository's id and its number.
type PrKey = (u32, u64);

/// The repository and PR of verdict `seq`, read from its head (not its JSON).
fn pr_of(
    verdicts: &ReadOnlyTable<u64, &'static [u8]>,
    repo_ids: &ReadOnlyTable<&'static str, u32>,
    seq: u64,
    scratch: &mut Vec<u8>,
) -> Result<PrKey, StoreError> {
    let bytes = verdicts.get(seq)?.ok_or(StoreError::Dangling {
        index: "claims index",
        seq,
    })?;
    let head = verdict_head(bytes.value(), seq, scratch)?;
    let repo = repos::lookup_name(repo_ids, head.repo)?.ok_or(StoreError::Dangling {
        index: "repos",
        seq,
    })?;
    Ok((repo, head.pr_number))
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
