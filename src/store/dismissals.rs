//! Dismissals: a team's word that a finding does not apply, in one PR or in every PR of a
//! repository. They are client writes (through the writer, in the write transaction, durable,
//! in backups), never derived: the findings memory can be rebuilt, dismissals cannot.
//!
//! A dismissal's id is the seq it was stored under. Its scope is 0 for the whole repository and
//! `pr_number + 1` for one PR. Live dismissals are indexed three ways: `dismissal_ids`
//! `(repo, scope, fingerprint) → id` (one live dismissal per finding and scope: the same
//! dismissal twice is one), `dismissals_by_repo` `(repo, id) → scope` (a repository's, newest
//! first) and `dismissals_by_scope` `(repo, scope, id)` (the ones that apply to a PR: its own
//! scope and the repository's). Revoking keeps the dismissal, marked with when, and takes it
//! out of the three indexes.
//!
//! A dismissal applies to a finding of its scope whose fingerprint it names (the finding's own,
//! or that of any wording of the remembered finding it matched), or, when the dismissal knows
//! the finding's check and wording, to a rewording of it (the memory's similar tier).

use std::cmp::Reverse;

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    WriteTransaction,
};

use super::budget::ReadBudget;
use super::check::{CheckReport, repo_id};
use super::codec::{decode, encode};
use super::findings::{FindingEntry, latest_fingerprint};
use super::history::{plain_verdict, verdict_ref};
use super::read::Page;
use super::records::{NewDismissal, Written};
use super::repos::{self, RepoIds};
use super::tables::*;
use super::values::{DismissalValue, FindingValue};
use super::{Store, StoreError};
use crate::model::Repo;
use crate::model::finding::{
    DISMISSAL_THRESHOLD, Finding, FindingTerms, Fingerprint, MAX_SUMMARY_BYTES, Match,
    SIMILAR_THRESHOLD, normalise_check, stored_findings,
};
use crate::model::polarity::{Polarity, is_negated};
use crate::model::text::{MatchKind, round_score};

/// Live dismissals one scope (a PR, or a whole repository) may hold: what a check reads of
/// them is bounded by twice this. A dismissal beyond it is refused (revoke some first).
pub const MAX_LIVE_PER_SCOPE: usize = 1_000;

/// PRs looked at for the severity of a finding dismissed in a whole repository.
const MAX_PRS_LOOKED_AT: usize = 1_000;

/// The scope key of a dismissal for `pr_number` (`None`: the whole repository).
pub(super) fn scope_of(pr_number: Option<u64>) -> u64 {
    pr_number.map_or(0, |pr| pr + 1)
}

/// A stored dismissal and its id.
#[derive(Debug, Clone, PartialEq)]
pub struct DismissalEntry {
    pub id: u64,
    pub value: DismissalValue,
}

/// A dismissal that applies to a finding, and how it matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub entry: DismissalEntry,
    pub kind: MatchKind,
    /// 1 for an exact match; the similarity for a similar one, rounded to 4 decimals.
    pub score: f64,
}

/// What the memory holds of a fingerprint, for a dismissal of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownFinding {
    pub check: String,
    pub severity: String,
    pub summary: String,
    /// Whether it is a `block` finding in any PR of the scope.
    pub block: bool,
}

/// `GET /findings/dismissals`: a repository's live dismissals, or those that apply to one PR
/// (its own and the repository's), newest first.
#[derive(Debug, Clone)]
pub struct DismissalsQuery {
    pub repo: Repo,
    pub pr_number: Option<u64>,
    /// Continue below this id (the previous page's last).
    pub below_id: Option<u64>,
    pub limit: usize,
}

/// The dismissal tables of a write transaction.
pub(super) struct DismissalTables<'a, 'txn> {
    pub dismissals: &'a mut Table<'txn, u64, &'static [u8]>,
    pub ids: &'a mut Table<'txn, (u32, u64, u64), u64>,
    pub by_repo: &'a mut Table<'txn, (u32, u64), u64>,
    pub by_scope: &'a mut Table<'txn, (u32, u64, u64), ()>,
}

fn decode_dismissal(bytes: &[u8], id: u64) -> Result<DismissalValue, StoreError> {
    decode(bytes).map_err(|source| StoreError::Codec {
        table: "dismissals",
        seq: id,
        source,
    })
}

/// Gives every dismissal that knows its finding's check and wording the fingerprint today's
/// rules give that wording, re-keying `dismissal_ids` for the live ones. Run when the findings
/// memory is rebuilt under other fingerprint rules (`findings.rs`), in the rebuild's first
/// transaction, so that dismissals and memory agree.
///
/// One named by a fingerprint holds the wording that fingerprint named (before 2026-12-06 it
/// could hold the finding's latest wording instead, and then comes to name the finding by that
/// wording); one whose wording the memory cut at
/// `MAX_SUMMARY_BYTES` (fingerprinted whole), or that named a fingerprint the memory did not
/// know, keeps its fingerprint. Two live dismissals of one scope that name one finding under
/// today's rules are one dismissal twice (as a second dismissal of one finding is answered as
/// a duplicate of the first): one is revoked at `now_ms`, the one not recorded as block (a
/// block one was confirmed), else the newer, with a warning naming both. Returns how many
/// dismissals changed.
pub(super) fn refingerprint(txn: &WriteTransaction, now_ms: u64) -> Result<u64, StoreError> {
    let mut dismissals = txn.open_table(DISMISSALS)?;
    let mut ids = txn.open_table(DISMISSAL_IDS)?;
    let mut by_repo = txn.open_table(DISMISSALS_BY_REPO)?;
    let mut by_scope = txn.open_table(DISMISSALS_BY_SCOPE)?;
    let mut repos = RepoIds::open(txn)?;
    let mut changed = Vec::new();
    for row in dismissals.iter()? {
        let (id, bytes) = row?;
        let id = id.value();
        let value = decode_dismissal(bytes.value(), id)?;
        // A wording the memory cut (its fingerprint was of the whole) keeps its fingerprint.
        if value.check.is_empty()
            || value.summary.is_empty()
            || value.summary.len() + 3 >= MAX_SUMMARY_BYTES
        {
            continue;
        }
        let fp = Fingerprint::of(&value.check, &value.summary).0;
        if fp != value.fingerprint {
            let repo = repos.id_of_stored(&value.repo)?;
            changed.push((id, repo, value, fp));
        }
    }
    // Every old key goes before any new one is taken, so that two dismissals trading
    // fingerprints do not collide.
    for (id, repo, value, _) in &changed {
        let key = (*repo, scope_of(value.pr_number), value.fingerprint);
        if value.revoked_ms.is_none() && ids.get(key)?.map(|v| v.value()) == Some(*id) {
            ids.remove(key)?;
        }
    }
    let n_changed = changed.len() as u64;
    for (id, repo, mut value, fp) in changed {
        value.fingerprint = fp;
        if value.revoked_ms.is_none() {
            let scope = scope_of(value.pr_number);
            let holder = ids.get((repo, scope, fp))?.map(|v| v.value());
            let (kept, revoked) = match holder {
                None => (id, None),
                Some(other) => {
                    let other_value = match dismissals.get(other)? {
                        Some(bytes) => decode_dismissal(bytes.value(), other)?,
                        None => {
                            return Err(StoreError::CorruptIndex(format!(
                                "dismissal_ids names dismissal {other}, which is not stored"
                            )));
                        }
                    };
                    // The one recorded as block (confirmed) is kept; else the older. The holder
                    // may be newer: one whose fingerprint did not change holds its key.
                    let rank = |v: &DismissalValue, id: u64| (!is_block(&v.severity), id);
                    if rank(&value, id) < rank(&other_value, other) {
                        (id, Some((other, other_value)))
                    } else {
                        (other, Some((id, value.clone())))
                    }
                }
            };
            if let Some((gone, mut gone_value)) = revoked {
                tracing::warn!(
                    kept,
                    revoked = gone,
                    "two live dismissals name one finding under today's rules: one is revoked"
                );
                gone_value.revoked_ms = Some(now_ms);
                by_repo.remove((repo, gone))?;
                by_scope.remove((repo, scope, gone))?;
                dismissals.insert(gone, encode(&gone_value).as_slice())?;
                if gone == id {
                    continue;
                }
            }
            ids.insert((repo, scope, fp), kept)?;
        }
        dismissals.insert(id, encode(&value).as_slice())?;
    }
    Ok(n_changed)
}

/// Stores `new` under the next seq, unless the same live dismissal (repository, scope,
/// fingerprint) is stored: then its id, as a duplicate. A confirmed (block) dismissal of a
/// finding whose live dismissal in the scope is not block replaces it: that one is revoked,
/// as of `new`'s creation, for it does not silence the finding raised as block.
pub(super) fn dismiss(
    t: DismissalTables<'_, '_>,
    repo: u32,
    last_seq: &mut u64,
    new: &NewDismissal,
) -> Result<Written, StoreError> {
    let scope = scope_of(new.pr_number);
    let fp = new.fingerprint.0;
    let held_id = t.ids.get((repo, scope, fp))?.map(|id| id.value());
    if let Some(id) = held_id {
        let Some(bytes) = t.dismissals.get(id)? else {
            return Err(StoreError::CorruptIndex(format!(
                "dismissal_ids names dismissal {id}, which is not stored"
            )));
        };
        let mut held = decode_dismissal(bytes.value(), id)?;
        drop(bytes);
        if is_block(&held.severity) || !is_block(&new.severity) {
            return Ok(Written::Duplicate { seq: id });
        }
        held.revoked_ms = Some(new.created_ms);
        t.dismissals.insert(id, encode(&held).as_slice())?;
        t.ids.remove((repo, scope, fp))?;
        t.by_repo.remove((repo, id))?;
        t.by_scope.remove((repo, scope, id))?;
    }
    let live = t
        .by_scope
        .range((repo, scope, 0)..=(repo, scope, u64::MAX))?
        .take(MAX_LIVE_PER_SCOPE)
        .count();
    if live >= MAX_LIVE_PER_SCOPE {
        return Ok(Written::Refused);
    }
    *last_seq += 1;
    let id = *last_seq;
    let value = DismissalValue {
        repo: new.repo.as_str().to_owned(),
        pr_number: new.pr_number,
        fingerprint: fp,
        check: new.check.clone(),
        severity: new.severity.clone(),
        summary: new.summary.clone(),
        reason: new.reason.clone(),
        by: new.by.clone(),
        created_ms: new.created_ms,
        revoked_ms: None,
    };
    t.dismissals.insert(id, encode(&value).as_slice())?;
    t.ids.insert((repo, scope, fp), id)?;
    t.by_repo.insert((repo, id), scope)?;
    t.by_scope.insert((repo, scope, id), ())?;
    Ok(Written::Stored {
        seq: id,
        outcome_seq: None,
        event_seq: None,
    })
}

/// Revokes dismissal `id` at `at_ms` (see `DismissalChange::Revoke` for the answers).
pub(super) fn revoke(
    t: DismissalTables<'_, '_>,
    repos: &mut RepoIds<'_>,
    id: u64,
    at_ms: u64,
) -> Result<Written, StoreError> {
    let stored = match t.dismissals.get(id)? {
        Some(bytes) => decode_dismissal(bytes.value(), id)?,
        None => return Ok(Written::Duplicate { seq: id }),
    };
    if stored.revoked_ms.is_some() {
        return Ok(Written::Duplicate { seq: id });
    }
    let mut value = stored;
    value.revoked_ms = Some(at_ms);
    t.dismissals.insert(id, encode(&value).as_slice())?;
    let repo = repos.id_of_stored(&value.repo)?;
    let scope = scope_of(value.pr_number);
    let key = (repo, scope, value.fingerprint);
    if t.ids.get(key)?.map(|v| v.value()) == Some(id) {
        t.ids.remove(key)?;
    }
    t.by_repo.remove((repo, id))?;
    t.by_scope.remove((repo, scope, id))?;
    Ok(Written::Stored {
        seq: id,
        outcome_seq: None,
        event_seq: None,
    })
}

/// A live dismissal that applies to a PR, ready to be matched: its check and the terms of its
/// wording, made under today's rules.
#[derive(Debug, Clone)]
pub(super) struct Live {
    pub entry: DismissalEntry,
    check_key: String,
    /// Its wording's terms and whether it has a negation ([`is_negated`]): read only when a
    /// finding of its check is compared with it (a PR's findings list compares every finding
    /// of a page with every dismissal of the repository).
    wording: std::cell::OnceCell<(FindingTerms, bool)>,
    /// Its wording's words, to tell whether a finding says the opposite: read once, when a
    /// finding first comes close to it (every finding of a check analysed every dismissal's
    /// wording again: 30 s for 200 findings against 1,000 long wordings, a review's).
    polarity: std::cell::OnceCell<Polarity>,
    /// Whether it is the PR's own (else the repository's).
    own: bool,
}

impl Live {
    pub fn fingerprint(&self) -> u64 {
        self.entry.value.fingerprint
    }

    fn terms(&self) -> &FindingTerms {
        &self.wording().0
    }

    fn negated(&self) -> bool {
        self.wording().1
    }

    fn polarity(&self) -> &Polarity {
        self.polarity
            .get_or_init(|| Polarity::of(&self.entry.value.summary))
    }

    fn wording(&self) -> &(FindingTerms, bool) {
        self.wording.get_or_init(|| {
            let summary = &self.entry.value.summary;
            (FindingTerms::of(summary), is_negated(summary))
        })
    }
}

/// The live dismissals that apply to PR `pr` of repository `repo`: its own, then the
/// repository's, each by id.
pub(super) fn applicable(
    txn: &ReadTransaction,
    repo: u32,
    pr: u64,
    budget: &mut ReadBudget,
) -> Result<Vec<Live>, StoreError> {
    let by_scope = txn.open_table(DISMISSALS_BY_SCOPE)?;
    let dismissals = txn.open_table(DISMISSALS)?;
    let mut out = Vec::new();
    for scope in [scope_of(Some(pr)), scope_of(None)] {
        for row in by_scope.range((repo, scope, 0)..=(repo, scope, u64::MAX))? {
            budget.tick()?;
            let id = row?.0.value().2;
            let Some(bytes) = dismissals.get(id)? else {
                return Err(StoreError::Dangling {
                    index: "dismissals_by_scope",
                    seq: id,
                });
            };
            let value = decode_dismissal(bytes.value(), id)?;
            out.push(Live {
                check_key: normalise_check(&value.check),
                wording: std::cell::OnceCell::new(),
                polarity: std::cell::OnceCell::new(),
                own: scope != 0,
                entry: DismissalEntry { id, value },
            });
        }
    }
    Ok(out)
}

/// What the dismissals of a PR say of one finding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DismissalsOf {
    /// The dismissal that silences it.
    pub silencing: Option<Applied>,
    /// When none silences it, the dismissal it most resembles at the memory's grade (a
    /// rewording the memory would link, below [`DISMISSAL_THRESHOLD`] or of the other
    /// negation): the auditor's to weigh.
    pub resembled: Option<Applied>,
}

/// The remembered finding a checked finding matched, as [`which_applies`] reads it: whether it
/// was last raised as block, and each of its wordings (its first, those kept between, its
/// latest), by fingerprint, with its terms and, but for the first (whose text is not kept),
/// whether it has a negation.
pub(super) struct Remembered {
    pub block: bool,
    pub wordings: Vec<Wording>,
}

impl Remembered {
    pub fn of(e: &FindingEntry) -> Remembered {
        let v = &e.value;
        let first = Wording {
            fingerprint: e.fingerprint.0,
            terms: (&v.first_terms).into(),
            negated: None,
            since: v.first_seen.seq,
        };
        let between = v.between.iter().map(|w| Wording {
            fingerprint: w.fingerprint,
            terms: (&w.terms).into(),
            negated: Some(w.negated),
            since: w.since,
        });
        let latest = Wording {
            fingerprint: latest_fingerprint(v),
            terms: (&v.terms).into(),
            negated: Some(is_negated(&v.summary)),
            since: v.latest_since,
        };
        Remembered {
            block: is_block(&v.severity),
            wordings: std::iter::once(first)
                .chain(between)
                .chain(std::iter::once(latest))
                .collect(),
        }
    }
}

/// One wording of a remembered finding.
pub(super) struct Wording {
    pub fingerprint: u64,
    pub terms: FindingTerms,
    /// `None` when its text is not kept (a first wording).
    pub negated: Option<bool>,
    /// The seq of the audit that first raised it.
    pub since: u64,
}

/// What the dismissals of `live` say of `finding`, which matched the memory as `matched`
/// (`remembered` is that finding); `named[i]` is the remembered finding of the PR that
/// `live[i]`'s fingerprint names.
///
/// A dismissal silences the finding whose fingerprint it has (exact), a wording the memory had
/// linked to the remembered finding it names before the dismissal was made and that does not
/// say the opposite of the dismissal's (exact: what the team saw dismissed), and a rewording of
/// it on dismissal-grade evidence (similar): the two agree in negation ([`is_negated`]), and either
/// the finding's wording scores at least [`DISMISSAL_THRESHOLD`] against the dismissal's, or
/// one of the remembered finding's other wordings does (or, the dismissal keeping its text, is
/// one it silences as what the team saw dismissed), and the finding reaches that wording
/// through wordings of the finding each scoring that much against the next, in the same
/// negation (the score is the weakest step's): a finding dismissed when raised as W1 (a close
/// rewording of the dismissal's W0) stays dismissed when raised next as W2, a close rewording
/// of W1 that W0 alone would not match, and as W3 after W2 was stored, while W1 is among the
/// wordings kept. Past the dismissal, only the wordings are compared, never the memory's links
/// between them: the memory links from [`SIMILAR_THRESHOLD`], either negation (not opposite
/// words), and a wording it linked stays linked when reworded further. The PR's own dismissals come
/// before the repository's; within them an exact match before a similar one, a higher score
/// first, then the older dismissal. A finding raised as `block` is silenced only by a dismissal
/// recorded as block (one that was confirmed). What the memory links to a dismissal (it names
/// the remembered finding matched, or a wording scores [`SIMILAR_THRESHOLD`] against it), or a
/// dismissal not recorded as block would silence in a block finding, and does not silence, is
/// `resembled`, scored by the finding's wording against the dismissal's.
pub(super) fn which_applies(
    live: &[Live],
    named: &[Option<u64>],
    finding: &Finding,
    matched: Match,
    remembered: Option<&Remembered>,
) -> DismissalsOf {
    let negated = is_negated(&finding.summary);
    // The finding's words, read only for a dismissal that would silence it.
    let polarity = std::cell::OnceCell::new();
    let polarity = || polarity.get_or_init(|| Polarity::of(&finding.summary));
    let check_key = finding.check_key();
    // A finding given without a severity is as the memory holds it.
    let block = match finding.severity.as_str() {
        "" => remembered.is_some_and(|r| r.block),
        severity => is_block(severity),
    };
    let close = close_wordings(
        finding,
        negated,
        remembered
            .map(|r| r.wordings.as_slice())
            .unwrap_or_default(),
    );
    // Smaller is better: the PR's own, exact, the higher score, the older.
    type Best = Option<(Rank, MatchKind, f64, usize)>;
    type Rank = (bool, MatchKind, Reverse<u64>, u64);
    let mut silencing: Best = None;
    let mut resembled: Best = None;
    // Scores are non-negative, so their bits order as they do.
    let rank_of = |kind, score: f64, i: usize| -> Rank {
        (
            !live[i].own,
            kind,
            Reverse(score.to_bits()),
            live[i].entry.id,
        )
    };
    let keep = |best: &mut Best, kind, score: f64, i: usize| {
        let rank = rank_of(kind, score, i);
        if best.as_ref().is_none_or(|(r, ..)| rank < *r) {
            *best = Some((rank, kind, score, i));
        }
    };
    // The remembered finding's wordings, and since when the memory has known the finding's
    // own wording as one of them (an exact match).
    let (wordings, known_since) = match (matched, remembered) {
        (Match::Exact(_), Some(r)) => (
            r.wordings.as_slice(),
            r.wordings
                .iter()
                .find(|w| w.fingerprint == finding.fingerprint.0)
                .map(|w| w.since),
        ),
        _ => (&[][..], None),
    };
    // What the memory would link: the remembered finding the dismissal `i` names, or a
    // wording of the finding's close to the dismissal's (`own`: how much the finding's wording
    // resembles the dismissal's). Its score is how much the finding's wording, as raised now,
    // resembles the dismissal's: not the memory's link, nor a remembered wording's (at
    // 3ab4e2b a finding reworded away from the dismissed one was said to resemble it at 1.0,
    // the dismissal's own wording being among those remembered, while it was reported again:
    // a review's).
    let resemble = |resembled: &mut Best, i: usize, own: f64| {
        let d = &live[i];
        let same_check = d.check_key == check_key;
        let names_it = named[i].is_some() && named[i] == matched.canonical();
        let linked = names_it
            || remembered
                .filter(|_| same_check)
                .map(|r| r.wordings.as_slice())
                .unwrap_or_default()
                .iter()
                .any(|w| d.terms().similarity(&w.terms) >= SIMILAR_THRESHOLD);
        // A dismissal made by a fingerprint alone has no wording to compare: the memory's link
        // to the finding it names is all there is to score by.
        let score = match matched {
            Match::Similar(_, link) if names_it && d.terms().is_empty() => link,
            Match::Exact(_) if names_it && d.terms().is_empty() => 1.0,
            _ => own,
        };
        if own >= SIMILAR_THRESHOLD || linked {
            keep(resembled, MatchKind::Similar, round_score(score), i);
        }
    };
    // The close dismissals that silence the finding unless it says the opposite of them:
    // (score, own, index).
    let mut may_silence_it: Vec<(f64, f64, usize)> = Vec::new();
    for (i, d) in live.iter().enumerate() {
        // Dismissing a block finding needs a confirmation, which only a dismissal recorded as
        // block had: one made for a lesser finding (which has since become block, or which a
        // block finding rewords) does not silence it; the finding resembles it at most.
        let may_silence = !block || is_block(&d.entry.value.severity);
        // A dismissal of the finding as the memory knew it when the dismissal was made (by
        // the fingerprint its list gave, or of a wording it had linked by then) silences the
        // wordings the memory had linked to it by then, unless the finding says the opposite
        // of the dismissal's wording (without its text, of the wording's negation; unknown:
        // not silenced): what the team saw dismissed. A wording linked after the dismissal,
        // on either side, is judged by its own words, as before it was raised.
        let before_it = |since: u64| since < d.entry.id;
        let named_wording = wordings
            .iter()
            .find(|w| w.fingerprint == d.fingerprint() && before_it(w.since));
        let names_a_wording = d.fingerprint() == finding.fingerprint.0
            || (known_since.is_some_and(before_it)
                && named_wording.is_some_and(|w| match d.entry.value.summary.as_str() {
                    "" => w.negated == Some(negated),
                    _ => !d.polarity().opposes(polarity()),
                }));
        if names_a_wording {
            let best = if may_silence {
                &mut silencing
            } else {
                &mut resembled
            };
            keep(best, MatchKind::Exact, 1.0, i);
            continue;
        }
        let same_check = d.check_key == check_key;
        let own = if same_check {
            d.terms().similarity(&finding.terms)
        } else {
            0.0
        };
        if may_silence && same_check && d.negated() == negated {
            // A wording the dismissal silences as what the team saw dismissed (it dismissed
            // one of the finding's wordings, and the memory had linked this one by then) is
            // as good an end of the path as the dismissal's own (a review found a wording of
            // the finding reworded at 1.0 reported again, resembling the dismissal's text at
            // 0.6, while the wording itself stayed silenced). Only for a dismissal with its
            // text: the finding then agrees with it in negation and words, whatever a first
            // wording's (not kept) was.
            let dismissed_then = !d.entry.value.summary.is_empty()
                && remembered.is_some_and(|r| {
                    r.wordings
                        .iter()
                        .any(|w| w.fingerprint == d.fingerprint() && before_it(w.since))
                });
            let through = close
                .iter()
                .map(|(w, link)| match dismissed_then && before_it(w.since) {
                    true => *link,
                    false => link.min(d.terms().similarity(&w.terms)),
                })
                .fold(own, f64::max);
            if through >= DISMISSAL_THRESHOLD {
                may_silence_it.push((round_score(through), own, i));
                continue;
            }
        }
        resemble(&mut resembled, i, own);
    }
    // A wording that says the opposite of the dismissal's (`enabled`, `disabled`) is never
    // silenced by it, however much else the two share: asked of the close dismissals best
    // first, until one silences it (the rest could not rank before it). Asked of each, a
    // check of 200 findings against 1,000 close dismissals of long wordings took 30 s, a
    // review's. One that says the opposite may still resemble the finding.
    may_silence_it.sort_by_key(|&(score, _, i)| rank_of(MatchKind::Similar, score, i));
    for (score, own, i) in may_silence_it {
        if silencing
            .as_ref()
            .is_some_and(|(rank, ..)| *rank < rank_of(MatchKind::Similar, score, i))
        {
            break;
        }
        if !live[i]
            .polarity()
            .stems()
            .opposes_widely(polarity().stems())
        {
            keep(&mut silencing, MatchKind::Similar, score, i);
            break;
        }
        resemble(&mut resembled, i, own);
    }
    let applied = |best: Best| {
        best.map(|(_, kind, score, i)| Applied {
            entry: live[i].entry.clone(),
            kind,
            score,
        })
    };
    let silencing = applied(silencing);
    DismissalsOf {
        resembled: if silencing.is_some() {
            None
        } else {
            applied(resembled)
        },
        silencing,
    }
}

/// The remembered finding's other wordings (its own, remembered under its fingerprint, is
/// the finding itself) that `finding` reaches by close rewordings, each with the weakest
/// step's score: steps of at least [`DISMISSAL_THRESHOLD`], between wordings of the finding's
/// negation (a first wording's is not known: any). The strongest path to each, found by
/// relaxing every step as often as there are wordings (a handful).
fn close_wordings<'w>(
    finding: &Finding,
    negated: bool,
    wordings: &'w [Wording],
) -> Vec<(&'w Wording, f64)> {
    let others: Vec<&Wording> = wordings
        .iter()
        .filter(|w| w.fingerprint != finding.fingerprint.0)
        .filter(|w| w.negated.is_none_or(|n| n == negated))
        .collect();
    let step = |score: f64| (score >= DISMISSAL_THRESHOLD).then_some(score);
    let mut reach: Vec<Option<f64>> = others
        .iter()
        .map(|w| step(finding.terms.similarity(&w.terms)))
        .collect();
    // None reached in one step (the usual case): none in more.
    if reach.iter().all(Option::is_none) {
        return Vec::new();
    }
    let links: Vec<Vec<Option<f64>>> = others
        .iter()
        .map(|a| {
            others
                .iter()
                .map(|b| step(a.terms.similarity(&b.terms)))
                .collect()
        })
        .collect();
    for _ in 1..others.len() {
        for (from, link) in links.iter().enumerate() {
            let Some(at) = reach[from] else { continue };
            for (to, score) in link.iter().enumerate() {
                if let Some(score) = score {
                    let through = at.min(*score);
                    if reach[to].is_none_or(|r| through > r) {
                        reach[to] = Some(through);
                    }
                }
            }
        }
    }
    others
        .into_iter()
        .zip(reach)
        .filter_map(|(w, score)| Some((w, score?)))
        .collect()
}

impl Store {
    /// Dismissal `id`, revoked or not.
    pub fn dismissal(&self, id: u64) -> Result<Option<DismissalEntry>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(DISMISSALS)?;
        match table.get(id)? {
            Some(bytes) => Ok(Some(DismissalEntry {
                id,
                value: decode_dismissal(bytes.value(), id)?,
            })),
            None => Ok(None),
        }
    }

    /// A page of live dismissals (see [`DismissalsQuery`]) within `budget` (the page stops,
    /// with `more`, before the dismissals it holds pass its bytes). Cost: one or two index
    /// ranges and a get per dismissal answered.
    pub fn dismissals_page(
        &self,
        q: &DismissalsQuery,
        budget: &mut ReadBudget,
    ) -> Result<Page<DismissalEntry>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(repo) = repos::lookup(&txn.open_table(REPOS)?, &q.repo)? else {
            return Ok(Page {
                items: Vec::new(),
                more: false,
            });
        };
        let below = q.below_id.unwrap_or(u64::MAX);
        let want = q.limit + 1;
        let mut ids: Vec<u64> = Vec::new();
        match q.pr_number {
            None => {
                let by_repo = txn.open_table(DISMISSALS_BY_REPO)?;
                for row in by_repo.range((repo, 0)..(repo, below))?.rev().take(want) {
                    ids.push(row?.0.value().1);
                }
            }
            Some(pr) => {
                let by_scope = txn.open_table(DISMISSALS_BY_SCOPE)?;
                for scope in [scope_of(Some(pr)), scope_of(None)] {
                    for row in by_scope
                        .range((repo, scope, 0)..(repo, scope, below))?
                        .rev()
                        .take(want)
                    {
                        ids.push(row?.0.value().2);
                    }
                }
                ids.sort_unstable_by(|a, b| b.cmp(a));
                ids.truncate(want);
            }
        }
        let mut more = ids.len() > q.limit;
        ids.truncate(q.limit);
        let table = txn.open_table(DISMISSALS)?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            budget.tick()?;
            let bytes = table.get(id)?.ok_or(StoreError::Dangling {
                index: "dismissals_by_repo",
                seq: id,
            })?;
            if !budget.take(bytes.value().len()) {
                more = true;
                break;
            }
            items.push(DismissalEntry {
                id,
                value: decode_dismissal(bytes.value(), id)?,
            });
        }
        Ok(Page { items, more })
    }

    /// What the findings memory holds of fingerprint `fp` in PR `pr_number` of `repo`, or in
    /// any of its PRs when `None` (the first such PR's; `block` if it is one anywhere): its
    /// check, latest severity and the wording `fp` names ([`wording_of`]). Cost: one lookup and
    /// get, or one per PR that raised it (`budget`'s deadline checked), and one verdict read.
    pub fn known_finding(
        &self,
        repo: &Repo,
        pr_number: Option<u64>,
        fp: Fingerprint,
        budget: &mut ReadBudget,
    ) -> Result<Option<KnownFinding>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(repo) = repos::lookup(&txn.open_table(REPOS)?, repo)? else {
            return Ok(None);
        };
        let fps = txn.open_table(FINDING_FPS)?;
        let findings = txn.open_table(FINDINGS)?;
        let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
        let (lo, hi) = match pr_number {
            Some(pr) => (pr, pr),
            None => (0, u64::MAX),
        };
        let mut known: Option<KnownFinding> = None;
        let range = fps.range((repo, fp.0, lo)..=(repo, fp.0, hi))?;
        for row in range.take(MAX_PRS_LOOKED_AT) {
            budget.tick()?;
            let (key, canonical) = row?;
            let pr = key.value().2;
            let canonical = canonical.value();
            let Some(bytes) = findings.get((repo, pr, canonical))? else {
                continue;
            };
            let value: FindingValue =
                decode(bytes.value()).map_err(|source| StoreError::Codec {
                    table: "findings",
                    seq: canonical,
                    source,
                })?;
            let block = is_block(&value.severity);
            match &mut known {
                Some(k) => k.block |= block,
                None => {
                    budget.tick()?;
                    let summary = wording_of(&verdicts, fp, canonical, &value)?;
                    known = Some(KnownFinding {
                        check: value.check,
                        severity: value.severity,
                        summary: summary.unwrap_or_default(),
                        block,
                    })
                }
            }
        }
        Ok(known)
    }
}

/// Whether a severity (as a verdict gave it, or a dismissal recorded it) is `block`.
pub(super) fn is_block(severity: &str) -> bool {
    severity.trim().eq_ignore_ascii_case("block")
}

/// The wording that fingerprint `fp` names of the remembered finding `value` (stored under
/// `canonical`, its first wording's fingerprint): its latest wording, whose text the memory
/// keeps, or its first, read from the audit that first raised it. `None` for a wording in
/// between: the memory links it to the finding but keeps neither its text nor where it was
/// raised. The memory links wordings of either negation, so the latest wording can say the
/// opposite of the one a client kept the fingerprint of. Cost: at most one verdict read.
fn wording_of(
    verdicts: &ReadOnlyTable<u64, &'static [u8]>,
    fp: Fingerprint,
    canonical: u64,
    value: &FindingValue,
) -> Result<Option<String>, StoreError> {
    if Fingerprint::of(&value.check, &value.summary) == fp {
        return Ok(Some(value.summary.clone()));
    }
    if fp.0 != canonical {
        return Ok(None);
    }
    let seq = value.first_seen.seq;
    let Some(bytes) = verdicts.get(seq)? else {
        return Ok(None);
    };
    let plain = plain_verdict(bytes.value(), seq)?;
    let verdict = verdict_ref(&plain, seq)?;
    Ok(stored_findings(verdict.raw_json)
        .unwrap_or_default()
        .into_iter()
        .find(|f| f.fingerprint == fp)
        .map(|f| f.summary))
}

/// `check` of the dismissals: every dismissal decodes and its id is a seq (collected into
/// `seqs`); the live ones are in the three indexes, the revoked ones in none, and the indexes
/// hold nothing else.
pub(super) fn check_dismissals(
    txn: &ReadTransaction,
    report: &mut CheckReport,
    seqs: &mut Vec<u64>,
) -> Result<(), StoreError> {
    let dismissals = txn.open_table(DISMISSALS)?;
    let ids = txn.open_table(DISMISSAL_IDS)?;
    let by_repo = txn.open_table(DISMISSALS_BY_REPO)?;
    let by_scope = txn.open_table(DISMISSALS_BY_SCOPE)?;
    let repos = txn.open_table(REPOS)?;
    let mut n_live = 0u64;
    for row in dismissals.iter()? {
        let (id, bytes) = row?;
        let id = id.value();
        seqs.push(id);
        let value = match decode_dismissal(bytes.value(), id) {
            Ok(value) => value,
            Err(e) => {
                report.problem(e.to_string());
                continue;
            }
        };
        let what = format!("dismissal {id}");
        let Some(repo) = repo_id(&repos, report, &value.repo, &what)? else {
            continue;
        };
        let scope = scope_of(value.pr_number);
        let indexed = [
            ids.get((repo, scope, value.fingerprint))?
                .map(|v| v.value())
                == Some(id),
            by_repo.get((repo, id))?.map(|v| v.value()) == Some(scope),
            by_scope.get((repo, scope, id))?.is_some(),
        ];
        let live = value.revoked_ms.is_none();
        if live {
            n_live += 1;
        }
        if indexed != [live; 3] {
            report.problem(format!(
                "{what} ({}) is indexed as {indexed:?} (dismissal_ids, dismissals_by_repo, \
                 dismissals_by_scope)",
                if live { "live" } else { "revoked" }
            ));
        }
    }
    let sizes = [
        ("dismissal_ids", ids.len()?),
        ("dismissals_by_repo", by_repo.len()?),
        ("dismissals_by_scope", by_scope.len()?),
    ];
    for (name, has) in sizes {
        if has != n_live {
            report.problem(format!(
                "{name} has {has} entries, there are {n_live} live dismissals"
            ));
        }
    }
    Ok(())
}
