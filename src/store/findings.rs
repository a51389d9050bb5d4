//! The findings memory: every finding of every stored verdict, remembered per `(repo, PR)`.
//!
//! A remembered finding is keyed by the fingerprint of its first wording (`findings`); every
//! wording's fingerprint names it (`finding_fps`), so a wording seen once is an exact match
//! from then on; `findings_by_last_audit` orders a PR's findings by the audit that last raised
//! them, so its open findings (last raised by its latest audit that said what it found, the seq
//! `findings_audits` holds: a verdict without a `findings` array leaves them open, one with an
//! empty array resolves them) are one range and its resolved ones another, and says whether
//! that audit repeated each (an audit of another head raised it before), so a PR's history
//! counts its latest audit's repeats from the range alone. How an audit's findings match the
//! remembered ones is the model's rule (`model/finding/`: fingerprint first, then a
//! rewording of the same check, each remembered finding matched once per audit); this module
//! applies it.
//!
//! The memory is written in the verdict's transaction (`write.rs`), directly rather than
//! deferred to the commit, because the next verdict of the same PR in that transaction must
//! see it. It is derived data: a function of the PR's verdicts in seq order and of the rules'
//! versions. So the store builds it on open when it was built under other rules or not at all
//! (a file migrated to schema 6), in bounded transactions that resume after a kill, and
//! `check` compares it, PR by PR, with a rebuild from the verdicts.
//!
//! Costs: an audit's findings cost one `finding_fps` lookup each, plus, when one of them is
//! not known by its fingerprint, a read of the PR's remembered findings (the candidates of the
//! similar tier); each finding raised rewrites its value and moves its `findings_by_last_audit`
//! entry. Nothing is read beyond the PR.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table};

use super::budget::ReadBudget;
use super::check::CheckReport;
use super::codec::{Dictionary, decode, encode_with};
use super::derived::Build;
use super::dictionary::current_in;
use super::dismissals;
use super::history::{plain_verdict, verdict_ref};
use super::meta;
use super::repos;
use super::tables::*;
use super::values::{
    FindingValue, HeadSeen, Sighting, TIER_EXACT, TIER_NEW, TIER_SIMILAR, TermsValue, WordingValue,
};
use super::{Store, StoreError};
use crate::model::Repo;
use crate::model::finding::{
    Candidate, FINDING_RULES_VERSION, FINGERPRINTS_SINCE_RULES_VERSION, Finding, FindingTerms,
    Fingerprint, Match, assign, normalise_check, severity_rank, stored_findings,
};
use crate::model::polarity::is_negated;
use crate::model::text::ANALYZER_VERSION;

/// Distinct heads kept per remembered finding (the oldest): bounds a value however often a
/// PR is pushed. `times_raised` counts on beyond it.
pub(super) const MAX_HEADS: usize = 64;

/// A rewording is looked for among the PR's this many most recently raised findings (ties: the
/// higher fingerprint first). A PR has far fewer; the bound keeps what a hostile PR costs each
/// audit (and each check) at [`MAX_FINDINGS_PER_VERDICT`](crate::model::finding::MAX_FINDINGS_PER_VERDICT)
/// (or 200) times this many comparisons, however many findings it collects.
pub const MAX_SIMILAR_CANDIDATES: usize = 256;

/// Wordings a remembered finding keeps between its first and its latest (the most recent):
/// what a dismissal reaches the finding through, when it was reworded several times in small
/// steps (`FindingValue::between`).
pub const MAX_WORDINGS_BETWEEN: usize = 6;

/// Verdicts remembered per transaction of a build: bounds its memory and the work a kill
/// loses.
const BUILD_BATCH: usize = 20_000;

/// One PR's memory as the rules need it: over the tables (writes, the build) and over maps
/// (`check`'s rebuild), so that both run the same code.
pub(super) trait Memory {
    /// The remembered finding that fingerprint `fp` (of any of its wordings) names.
    fn canonical(&self, repo: u32, pr: u64, fp: u64) -> Result<Option<u64>, StoreError>;
    /// Calls `f` with the PR's [`MAX_SIMILAR_CANDIDATES`] most recently raised findings,
    /// newest first (ties: the higher key first): the candidates of the similar tier.
    fn with_candidates<R>(
        &mut self,
        repo: u32,
        pr: u64,
        f: impl FnOnce(&[(u64, FindingValue)]) -> R,
    ) -> Result<R, StoreError>;
    fn get(&self, repo: u32, pr: u64, key: u64) -> Result<Option<FindingValue>, StoreError>;
    /// Stores finding `key`, last seen at `previous_last_seen` before (`None`: it is new).
    fn put(
        &mut self,
        repo: u32,
        pr: u64,
        key: u64,
        previous_last_seen: Option<u64>,
        value: &FindingValue,
    ) -> Result<(), StoreError>;
    /// Records that fingerprint `fp` names finding `key`.
    fn name(&mut self, repo: u32, pr: u64, fp: u64, key: u64) -> Result<(), StoreError>;
    /// Records that the audit `seq` (the PR's latest so far) said what it found: its findings
    /// are the PR's open ones.
    fn audited(&mut self, repo: u32, pr: u64, seq: u64) -> Result<(), StoreError>;
}

/// The matches of `findings` against a PR's memory: `exact[i]` is what finding `i`'s
/// fingerprint names; `remembered` the PR's findings, the candidates of the similar tier.
pub(super) fn match_findings(
    findings: &[Finding],
    exact: &[Option<u64>],
    remembered: &[(u64, FindingValue)],
) -> Vec<Match> {
    let terms: Vec<[FindingTerms; 2]> = remembered
        .iter()
        .map(|(_, v)| [(&v.terms).into(), (&v.first_terms).into()])
        .collect();
    let candidates: Vec<Candidate<'_>> = remembered
        .iter()
        .zip(&terms)
        .map(|((key, value), [latest, first])| Candidate {
            key: *key,
            check_key: normalise_check(&value.check),
            wordings: vec![latest, first],
            latest: &value.summary,
        })
        .collect();
    let incoming: Vec<&Finding> = findings.iter().collect();
    assign(&incoming, exact, &candidates)
}

/// Remembers the findings of the verdict `sighting` (of PR `pr` in repository `repo`);
/// `None` when it said nothing of them (no `findings` array), which leaves the memory as it
/// was.
pub(super) fn remember(
    mem: &mut impl Memory,
    repo: u32,
    pr: u64,
    sighting: &Sighting,
    findings: Option<&[Finding]>,
) -> Result<(), StoreError> {
    let Some(findings) = findings else {
        return Ok(());
    };
    mem.audited(repo, pr, sighting.seq)?;
    if findings.is_empty() {
        return Ok(());
    }
    let exact = findings
        .iter()
        .map(|f| mem.canonical(repo, pr, f.fingerprint.0))
        .collect::<Result<Vec<_>, _>>()?;
    let matches = if exact.iter().any(Option::is_none) {
        mem.with_candidates(repo, pr, |remembered| {
            match_findings(findings, &exact, remembered)
        })?
    } else {
        match_findings(findings, &exact, &[])
    };
    let mut raised = BTreeSet::new();
    for (finding, matched) in findings.iter().zip(matches) {
        let fp = finding.fingerprint.0;
        let (key, tier) = match matched {
            Match::New => {
                raised.insert(fp);
                mem.name(repo, pr, fp, fp)?;
                mem.put(repo, pr, fp, None, &first_sighting(finding, sighting))?;
                continue;
            }
            Match::Exact(key) => (key, TIER_EXACT),
            Match::Similar(key, _) => {
                mem.name(repo, pr, fp, key)?;
                (key, TIER_SIMILAR)
            }
        };
        // Two wordings of one finding in one audit raise it once, with the graver severity.
        if !raised.insert(key) {
            if let Some(mut value) = mem.get(repo, pr, key)?
                && severity_rank(&finding.severity) > severity_rank(&value.severity)
            {
                value.severity = finding.severity.clone();
                let seen = Some(value.last_seen.seq);
                mem.put(repo, pr, key, seen, &value)?;
            }
            continue;
        }
        let (mut value, before) = match mem.get(repo, pr, key)? {
            Some(value) => {
                let before = value.last_seen.seq;
                (value, Some(before))
            }
            None => {
                // A fingerprint naming a finding that is not there: `check` reports it; the
                // write goes on, remembering the finding afresh.
                tracing::warn!(repo, pr, key, "finding_fps names a missing finding");
                (first_sighting(finding, sighting), None)
            }
        };
        if before.is_some() {
            raise(&mut value, key, finding, sighting, tier);
        }
        mem.put(repo, pr, key, before, &value)?;
    }
    Ok(())
}

fn first_sighting(finding: &Finding, sighting: &Sighting) -> FindingValue {
    let terms = TermsValue::from(&finding.terms);
    FindingValue {
        check: finding.check.clone(),
        severity: finding.severity.clone(),
        summary: finding.summary.clone(),
        first_terms: terms.clone(),
        terms,
        first_seen: sighting.clone(),
        last_seen: sighting.clone(),
        times_raised: 1,
        heads: vec![HeadSeen {
            head_sha: sighting.head_sha.clone(),
            seq: sighting.seq,
        }],
        last_tier: TIER_NEW,
        between: Vec::new(),
        latest_since: sighting.seq,
    }
}

/// The fingerprint of a remembered finding's latest wording (its key is the first's).
pub(super) fn latest_fingerprint(value: &FindingValue) -> u64 {
    Fingerprint::of(&value.check, &value.summary).0
}

/// Finding `key` (the fingerprint of its first wording), `value`, raised again as `finding`.
fn raise(value: &mut FindingValue, key: u64, finding: &Finding, sighting: &Sighting, tier: u8) {
    let wording = finding.fingerprint.0;
    let latest = latest_fingerprint(value);
    if wording != latest {
        // Since when the memory knows the new wording: its first audit, for one raised before.
        let since = if wording == key {
            value.first_seen.seq
        } else {
            value
                .between
                .iter()
                .find(|w| w.fingerprint == wording)
                .map_or(sighting.seq, |w| w.since)
        };
        value
            .between
            .retain(|w| w.fingerprint != wording && w.fingerprint != latest);
        // The latest so far joins those kept between the first and the latest.
        if latest != key {
            value.between.push(WordingValue {
                fingerprint: latest,
                terms: std::mem::take(&mut value.terms),
                negated: is_negated(&value.summary),
                since: value.latest_since,
            });
            if value.between.len() > MAX_WORDINGS_BETWEEN {
                value.between.remove(0);
            }
        }
        value.latest_since = since;
    }
    value.severity = finding.severity.clone();
    value.summary = finding.summary.clone();
    value.terms = TermsValue::from(&finding.terms);
    value.last_seen = sighting.clone();
    value.times_raised += 1;
    value.last_tier = tier;
    let known = value
        .heads
        .iter()
        .any(|h| h.head_sha.eq_ignore_ascii_case(&sighting.head_sha));
    if !known && value.heads.len() < MAX_HEADS {
        value.heads.push(HeadSeen {
            head_sha: sighting.head_sha.clone(),
            seq: sighting.seq,
        });
    }
}

/// The memory tables of a write transaction.
pub(super) struct MemoryTables<'a, 'txn> {
    pub findings: &'a mut Table<'txn, (u32, u64, u64), &'static [u8]>,
    pub fps: &'a mut Table<'txn, (u32, u64, u64), u64>,
    pub by_last_audit: &'a mut Table<'txn, (u32, u64, u64, u64), u8>,
    pub audits: &'a mut Table<'txn, (u32, u64), u64>,
    /// What values are compressed with (see `write.rs`'s `Tables::dictionary`).
    pub dictionary: Option<&'a Dictionary>,
    /// The last PR's candidates, kept through the transaction's puts.
    pub recent: &'a mut RecentFindings,
}

/// One PR's candidates of the similar tier (see [`Memory::with_candidates`]) as read from the
/// tables and kept up to date by the transaction's own puts since: the verdicts of a batch on
/// one PR read and decode them once, not once each (a megabyte of one-finding verdicts on a
/// PR with 256 findings: 4,706 reads of 256 values). One PR only, so that what is kept stays
/// at most 256 values however many PRs a transaction touches.
#[derive(Debug, Default)]
pub(super) struct RecentFindings {
    pr: Option<(u32, u64)>,
    /// Newest first: by `(last seen seq, key)`, descending, as the index reads backwards.
    list: Vec<(u64, FindingValue)>,
}

impl RecentFindings {
    /// Finding `key` of PR `(repo, pr)` stored as `value`: moved to (or into) its place.
    fn put(&mut self, repo: u32, pr: u64, key: u64, value: &FindingValue) {
        if self.pr != Some((repo, pr)) {
            return;
        }
        self.list.retain(|(k, _)| *k != key);
        let rank = (value.last_seen.seq, key);
        let at = self
            .list
            .partition_point(|(k, v)| (v.last_seen.seq, *k) > rank);
        self.list.insert(at, (key, value.clone()));
        self.list.truncate(MAX_SIMILAR_CANDIDATES);
    }
}

impl Memory for MemoryTables<'_, '_> {
    fn canonical(&self, repo: u32, pr: u64, fp: u64) -> Result<Option<u64>, StoreError> {
        Ok(self.fps.get((repo, fp, pr))?.map(|v| v.value()))
    }

    fn with_candidates<R>(
        &mut self,
        repo: u32,
        pr: u64,
        f: impl FnOnce(&[(u64, FindingValue)]) -> R,
    ) -> Result<R, StoreError> {
        if self.recent.pr != Some((repo, pr)) {
            // Bounded by MAX_SIMILAR_CANDIDATES: the writer needs no deadline.
            self.recent.list = recent_findings(
                &*self.by_last_audit,
                &*self.findings,
                repo,
                pr,
                &mut ReadBudget::unlimited(),
            )?;
            self.recent.pr = Some((repo, pr));
        }
        Ok(f(&self.recent.list))
    }

    fn get(&self, repo: u32, pr: u64, key: u64) -> Result<Option<FindingValue>, StoreError> {
        get_finding(&*self.findings, repo, pr, key)
    }

    fn put(
        &mut self,
        repo: u32,
        pr: u64,
        key: u64,
        previous_last_seen: Option<u64>,
        value: &FindingValue,
    ) -> Result<(), StoreError> {
        self.findings.insert(
            (repo, pr, key),
            encode_with(value, self.dictionary).as_slice(),
        )?;
        let seen = value.last_seen.seq;
        if let Some(before) = previous_last_seen
            && before != seen
        {
            self.by_last_audit.remove((repo, pr, before, key))?;
        }
        self.by_last_audit
            .insert((repo, pr, seen, key), repeated_flag(value))?;
        self.recent.put(repo, pr, key, value);
        Ok(())
    }

    fn name(&mut self, repo: u32, pr: u64, fp: u64, key: u64) -> Result<(), StoreError> {
        self.fps.insert((repo, fp, pr), key)?;
        Ok(())
    }

    fn audited(&mut self, repo: u32, pr: u64, seq: u64) -> Result<(), StoreError> {
        self.audits.insert((repo, pr), seq)?;
        Ok(())
    }
}

fn decode_finding(bytes: &[u8], key: u64) -> Result<FindingValue, StoreError> {
    decode(bytes).map_err(|source| StoreError::Codec {
        table: "findings",
        seq: key,
        source,
    })
}

fn get_finding(
    table: &impl ReadableTable<(u32, u64, u64), &'static [u8]>,
    repo: u32,
    pr: u64,
    key: u64,
) -> Result<Option<FindingValue>, StoreError> {
    match table.get((repo, pr, key))? {
        Some(bytes) => Ok(Some(decode_finding(bytes.value(), key)?)),
        None => Ok(None),
    }
}

/// The PR's [`MAX_SIMILAR_CANDIDATES`] most recently raised findings, newest first.
fn recent_findings(
    by_last_audit: &impl ReadableTable<(u32, u64, u64, u64), u8>,
    findings: &impl ReadableTable<(u32, u64, u64), &'static [u8]>,
    repo: u32,
    pr: u64,
    budget: &mut ReadBudget,
) -> Result<Vec<(u64, FindingValue)>, StoreError> {
    let mut out = Vec::new();
    let range = by_last_audit.range((repo, pr, 0, 0)..=(repo, pr, u64::MAX, u64::MAX))?;
    for row in range.rev().take(MAX_SIMILAR_CANDIDATES) {
        budget.tick()?;
        let (_, _, seen, key) = row?.0.value();
        let value = get_finding(findings, repo, pr, key)?.ok_or(StoreError::Dangling {
            index: "findings_by_last_audit",
            seq: seen,
        })?;
        out.push((key, value));
    }
    Ok(out)
}

/// One PR's memory in maps: what a rebuild from its verdicts gives (`check`).
#[derive(Debug, Default)]
struct Replay {
    findings: BTreeMap<u64, FindingValue>,
    fps: BTreeMap<u64, u64>,
    /// The PR's latest audit that said what it found.
    audit: Option<u64>,
}

impl Memory for Replay {
    fn canonical(&self, _: u32, _: u64, fp: u64) -> Result<Option<u64>, StoreError> {
        Ok(self.fps.get(&fp).copied())
    }

    fn with_candidates<R>(
        &mut self,
        _: u32,
        _: u64,
        f: impl FnOnce(&[(u64, FindingValue)]) -> R,
    ) -> Result<R, StoreError> {
        let mut all: Vec<(u64, FindingValue)> =
            self.findings.iter().map(|(k, v)| (*k, v.clone())).collect();
        // The order of `findings_by_last_audit` read backwards.
        all.sort_by_key(|(key, value)| std::cmp::Reverse((value.last_seen.seq, *key)));
        all.truncate(MAX_SIMILAR_CANDIDATES);
        Ok(f(&all))
    }

    fn get(&self, _: u32, _: u64, key: u64) -> Result<Option<FindingValue>, StoreError> {
        Ok(self.findings.get(&key).cloned())
    }

    fn put(
        &mut self,
        _: u32,
        _: u64,
        key: u64,
        _: Option<u64>,
        value: &FindingValue,
    ) -> Result<(), StoreError> {
        self.findings.insert(key, value.clone());
        Ok(())
    }

    fn name(&mut self, _: u32, _: u64, fp: u64, key: u64) -> Result<(), StoreError> {
        self.fps.insert(fp, key);
        Ok(())
    }

    fn audited(&mut self, _: u32, _: u64, seq: u64) -> Result<(), StoreError> {
        self.audit = Some(seq);
        Ok(())
    }
}

impl Store {
    /// Builds the findings memory from the stored verdicts when it was built under other rules
    /// or not completely (see the module documentation); a no-op otherwise.
    pub(super) fn build_findings_memory(&self) -> Result<(), StoreError> {
        let rules = format!("v{FINDING_RULES_VERSION}.{ANALYZER_VERSION}");
        self.build_derived(&Build {
            what: "the findings memory",
            mark: meta::FINDINGS_BUILT_THROUGH,
            rules: &rules,
            built: meta::FINDINGS_RULES_VERSION,
            is_current: &|meta_table| Ok(memory_is_current(meta_table)?),
            // What older rules left goes first.
            clear: &|txn| {
                txn.delete_table(FINDINGS)?;
                txn.delete_table(FINDING_FPS)?;
                txn.delete_table(FINDINGS_BY_LAST_AUDIT)?;
                txn.delete_table(FINDINGS_AUDITS)?;
                txn.open_table(FINDINGS)?;
                txn.open_table(FINDING_FPS)?;
                txn.open_table(FINDINGS_BY_LAST_AUDIT)?;
                txn.open_table(FINDINGS_AUDITS)?;
                let mut meta_table = txn.open_table(META)?;
                let built_under = meta::get(&meta_table, meta::FINDINGS_RULES_VERSION)?;
                meta_table.remove(meta::FINDINGS_RULES_VERSION)?;
                meta_table.remove(meta::FINDINGS_ANALYZER_VERSION)?;
                drop(meta_table);
                // Dismissals name findings by fingerprint: under today's rules too, when the
                // rules that make fingerprints changed (not for the analyser's terms alone).
                if built_under != 0 && built_under < FINGERPRINTS_SINCE_RULES_VERSION {
                    let changed = super::dismissals::refingerprint(txn, crate::model::now_ms())?;
                    if changed > 0 {
                        tracing::info!(changed, "dismissals given today's fingerprints");
                    }
                }
                Ok(())
            },
            step: &remember_verdicts_after,
            finish: &|meta_table| {
                meta_table.insert(meta::FINDINGS_RULES_VERSION, FINDING_RULES_VERSION)?;
                meta_table.insert(meta::FINDINGS_ANALYZER_VERSION, ANALYZER_VERSION)?;
                Ok(())
            },
        })
    }
}

/// Whether the findings memory `meta` describes is built under today's rules (else opening the
/// file rebuilds it, and may re-key its dismissals).
pub(super) fn memory_is_current(
    meta: &impl ReadableTable<&'static str, u64>,
) -> Result<bool, redb::StorageError> {
    Ok(
        meta::get(meta, meta::FINDINGS_RULES_VERSION)? == FINDING_RULES_VERSION
            && meta::get(meta, meta::FINDINGS_ANALYZER_VERSION)? == ANALYZER_VERSION,
    )
}

/// Remembers the findings of up to [`BUILD_BATCH`] verdicts after `after_seq`, in seq order;
/// returns the last seq done, `None` when there was none left.
fn remember_verdicts_after(
    txn: &redb::WriteTransaction,
    after_seq: u64,
) -> Result<Option<u64>, StoreError> {
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let mut findings = txn.open_table(FINDINGS)?;
    let mut fps = txn.open_table(FINDING_FPS)?;
    let mut by_last_audit = txn.open_table(FINDINGS_BY_LAST_AUDIT)?;
    let mut audits = txn.open_table(FINDINGS_AUDITS)?;
    let mut ids = repos::RepoIds::open(txn)?;
    let dictionary = current_in(&txn.open_table(META)?)?;
    let mut recent = RecentFindings::default();
    let mut mem = MemoryTables {
        findings: &mut findings,
        fps: &mut fps,
        by_last_audit: &mut by_last_audit,
        audits: &mut audits,
        dictionary: dictionary.as_deref(),
        recent: &mut recent,
    };
    let mut last = None;
    for row in verdicts
        .range(after_seq.saturating_add(1)..)?
        .take(BUILD_BATCH)
    {
        let (seq, bytes) = row?;
        let seq = seq.value();
        last = Some(seq);
        let plain = plain_verdict(bytes.value(), seq)?;
        let v = verdict_ref(&plain, seq)?;
        let repo = ids.id_of_stored(v.repo)?;
        let sighting = Sighting {
            seq,
            head_sha: v.head_sha.to_owned(),
            audited_at: v.audited_at.to_owned(),
        };
        let findings = stored_findings(v.raw_json);
        remember(&mut mem, repo, v.pr_number, &sighting, findings.as_deref())?;
    }
    Ok(last)
}

/// Which of a PR's findings to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingStatus {
    /// Raised by the PR's latest audit that said what it found.
    Open,
    /// Raised before, not by that audit.
    Resolved,
    All,
}

/// A page of a PR's findings: `GET /prs/{n}/findings`.
#[derive(Debug, Clone)]
pub struct FindingsQuery {
    pub repo: Repo,
    pub pr_number: u64,
    pub status: FindingStatus,
    /// Where the previous page stopped; `None` for the first page.
    pub below: Option<FindingsCursor>,
    pub limit: usize,
}

/// Where a walk through a PR's findings stands. A finding raised again moves to the top of the
/// order (its last-seen audit is the newest), so a walk that only went on below its last
/// finding would miss the findings a push moved above it before they were reached. The cursor
/// also holds the PR's latest audit when its page was read: the next page gives first the
/// findings raised since (their last-seen seq is above it), then goes on below. None is
/// missed; one raised again while the walk pages comes again, in its latest state. When more
/// were raised again than a page holds, the page that stops among them (not at their end, which
/// goes on below where the walk stood) leaves a cursor that
/// goes on below where it stopped, so findings given before the push may come again too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindingsCursor {
    /// The last-seen seq and fingerprint of the previous page's last finding.
    pub seq: u64,
    pub fingerprint: u64,
    /// The PR's latest audit when the previous page was read (`u64::MAX`: not known, as in a
    /// cursor given before 2026-12-07, which went on below alone).
    pub as_of: u64,
}

/// A remembered finding, with its key and whether the PR's latest audit raised it.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingEntry {
    pub fingerprint: Fingerprint,
    pub value: FindingValue,
    pub open: bool,
}

/// A page of findings, newest last seen first, and where the next page starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingsPage {
    /// The seq of the PR's latest audit that said what it found (carried a `findings`
    /// array), if it has one: the audit whose findings are open.
    pub latest_seq: Option<u64>,
    pub items: Vec<FindingEntry>,
    /// Pass as [`FindingsQuery::below`] for the next page; `None` on the last.
    pub next: Option<FindingsCursor>,
}

impl FindingsPage {
    /// The cursor after the page's last finding.
    pub fn last_cursor(&self) -> Option<FindingsCursor> {
        self.items.last().map(|e| self.cursor_after(e))
    }

    /// The cursor after `entry`, one of the page's findings.
    pub fn cursor_after(&self, entry: &FindingEntry) -> FindingsCursor {
        FindingsCursor {
            seq: entry.value.last_seen.seq,
            fingerprint: entry.fingerprint.0,
            as_of: self.latest_seq.unwrap_or(0),
        }
    }
}

/// What the memory says of one finding of a check request.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedFinding {
    pub matched: Match,
    /// The remembered finding it matched, and whether the PR's latest audit raised it.
    pub remembered: Option<FindingEntry>,
    /// The dismissal that silences it, if any.
    pub dismissal: Option<dismissals::Applied>,
    /// When none silences it, the dismissal it resembles at the memory's grade, if any (see
    /// [`dismissals::which_applies`]).
    pub resembled_dismissal: Option<dismissals::Applied>,
}

/// Whether a check also looks for the dismissals its findings resemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resembled {
    Too,
    Not,
}

/// `POST /prs/{n}/findings/check`.
#[derive(Debug, Clone)]
pub struct FindingsCheck {
    pub repo: Repo,
    pub pr_number: u64,
    pub findings: Vec<Finding>,
}

impl Store {
    /// A page of a PR's remembered findings (see [`FindingsQuery`]) within `budget`: the page
    /// stops early (with a cursor) before the findings it holds pass its bytes. Cost: one range
    /// of `findings_by_last_audit` and one get per finding answered.
    pub fn pr_findings(
        &self,
        q: &FindingsQuery,
        budget: &mut ReadBudget,
    ) -> Result<FindingsPage, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(repo) = repos::lookup(&txn.open_table(REPOS)?, &q.repo)? else {
            return Ok(FindingsPage::default());
        };
        let pr = q.pr_number;
        let Some(latest) = latest_seq(&txn, repo, pr)? else {
            return Ok(FindingsPage::default());
        };
        let (lo, hi) = match q.status {
            FindingStatus::Open => (latest, latest),
            FindingStatus::Resolved if latest == 0 => return Ok(FindingsPage::default()),
            FindingStatus::Resolved => (0, latest - 1),
            FindingStatus::All => (0, u64::MAX),
        };
        let index = txn.open_table(FINDINGS_BY_LAST_AUDIT)?;
        let top = Bound::Included((repo, pr, hi, u64::MAX));
        // The walk: the findings raised since the previous page (last seen above its `as_of`),
        // then those below where it stopped (at or under `as_of`): two ranges, the first above
        // the second.
        let (raised_since, below) = match q.below {
            None => (None, Some((Bound::Included((repo, pr, lo, 0)), top))),
            Some(c) => {
                // The findings the previous page's range could hold: last seen at or below
                // `held`. Resolved ones were those below its latest audit: a push resolves the
                // ones that audit raised and it does not raise again, which enter the range
                // without moving.
                let held = match q.status {
                    FindingStatus::Resolved => c.as_of.saturating_sub(1),
                    FindingStatus::Open | FindingStatus::All => c.as_of,
                };
                let since = held.saturating_add(1).max(lo);
                let raised_since = (since <= hi && c.as_of != u64::MAX)
                    .then_some((Bound::Included((repo, pr, since, 0)), top));
                // A cursor beyond the status's range (given with another status) goes on from
                // its top; one below it leaves nothing below.
                let upper = match c.seq.min(held) {
                    seq if seq < lo => None,
                    seq if seq < c.seq => Some(Bound::Included((repo, pr, seq.min(hi), u64::MAX))),
                    seq if seq <= hi => Some(Bound::Excluded((repo, pr, seq, c.fingerprint))),
                    _ => Some(top),
                };
                (
                    raised_since,
                    upper.map(|upper| (Bound::Included((repo, pr, lo, 0)), upper)),
                )
            }
        };
        let findings = txn.open_table(FINDINGS)?;
        let mut page = page_of(latest);
        let descending = |range: Option<_>| -> Result<_, StoreError> {
            Ok(range
                .map(|range| index.range(range))
                .transpose()?
                .into_iter()
                .flat_map(Iterator::rev))
        };
        // Where the walk stands when a page stops: after its last finding, unless that finding
        // was one raised since the previous page and the walk below has not gone on yet: then
        // where the previous page left it, so that a page filled by the findings of a push
        // (exactly a page of them) does not send the walk back to the top (a review's).
        let resume = |page: &FindingsPage, below_next: bool, taken_below: bool| match q.below {
            Some(c) if below_next && !taken_below && !page.items.is_empty() => {
                Some(FindingsCursor { as_of: latest, ..c })
            }
            _ => page.last_cursor(),
        };
        let mut taken_below = false;
        for (from_below, row) in descending(raised_since)?
            .map(|row| (false, row))
            .chain(descending(below)?.map(|row| (true, row)))
        {
            budget.tick()?;
            let (_, _, seen, key) = row?.0.value();
            if page.items.len() == q.limit {
                page.next = resume(&page, from_below, taken_below);
                break;
            }
            let bytes = findings.get((repo, pr, key))?.ok_or(StoreError::Dangling {
                index: "findings_by_last_audit",
                seq: seen,
            })?;
            if !budget.take(bytes.value().len()) {
                page.next = resume(&page, from_below, taken_below);
                break;
            }
            taken_below |= from_below;
            let value = decode_finding(bytes.value(), key)?;
            page.items.push(FindingEntry {
                fingerprint: Fingerprint(key),
                open: value.last_seen.seq == latest,
                value,
            });
        }
        Ok(page)
    }

    /// What the memory and the dismissals say of each finding of `q`: its match (exact,
    /// similar or none), the finding it matched and whether the PR's latest audit raised it,
    /// and the dismissal that applies. Stores nothing. Cost: one lookup per finding, the PR's
    /// remembered findings when one is not known by its fingerprint, and the dismissals that
    /// apply to the PR; `budget`'s deadline is checked as they are read.
    pub fn check_findings(
        &self,
        q: &FindingsCheck,
        budget: &mut ReadBudget,
    ) -> Result<Vec<CheckedFinding>, StoreError> {
        self.check_findings_as(q, budget, Resembled::Too)
    }

    /// The dismissal that silences each finding of `q` ([`Store::check_findings`]'s
    /// `dismissal`), without looking for the ones they resemble: no lookup per dismissal of
    /// the remembered finding it names (a PR's findings list asks this of each of its pages).
    pub fn silencing_dismissals(
        &self,
        q: &FindingsCheck,
        budget: &mut ReadBudget,
    ) -> Result<Vec<Option<dismissals::Applied>>, StoreError> {
        Ok(self
            .check_findings_as(q, budget, Resembled::Not)?
            .into_iter()
            .map(|checked| checked.dismissal)
            .collect())
    }

    fn check_findings_as(
        &self,
        q: &FindingsCheck,
        budget: &mut ReadBudget,
        resembled: Resembled,
    ) -> Result<Vec<CheckedFinding>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(repo) = repos::lookup(&txn.open_table(REPOS)?, &q.repo)? else {
            return Ok(q
                .findings
                .iter()
                .map(|_| CheckedFinding {
                    matched: Match::New,
                    remembered: None,
                    dismissal: None,
                    resembled_dismissal: None,
                })
                .collect());
        };
        let pr = q.pr_number;
        let fps = txn.open_table(FINDING_FPS)?;
        let findings = txn.open_table(FINDINGS)?;
        let by_last_audit = txn.open_table(FINDINGS_BY_LAST_AUDIT)?;
        let exact = q
            .findings
            .iter()
            .map(|f| Ok(fps.get((repo, f.fingerprint.0, pr))?.map(|v| v.value())))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let remembered = if exact.iter().any(Option::is_none) {
            recent_findings(&by_last_audit, &findings, repo, pr, budget)?
        } else {
            Vec::new()
        };
        let matches = match_findings(&q.findings, &exact, &remembered);
        let latest = latest_seq(&txn, repo, pr)?;
        let applicable = dismissals::applicable(&txn, repo, pr, budget)?;
        // Which remembered finding of this PR each applicable dismissal names, if any (what
        // links a dismissal to a finding it does not silence, as resembled).
        let named: Vec<Option<u64>> = match resembled {
            Resembled::Too => applicable
                .iter()
                .map(|d| Ok(fps.get((repo, d.fingerprint(), pr))?.map(|v| v.value())))
                .collect::<Result<_, StoreError>>()?,
            Resembled::Not => vec![None; applicable.len()],
        };
        let mut out = Vec::with_capacity(q.findings.len());
        for (finding, matched) in q.findings.iter().zip(matches) {
            // A candidate read above is not read (and decompressed) again.
            let read = |key: u64| match remembered.iter().find(|(k, _)| *k == key) {
                Some((_, value)) => Ok(Some(value.clone())),
                None => get_finding(&findings, repo, pr, key),
            };
            let remembered = match matched.canonical() {
                Some(key) => read(key)?.map(|value| FindingEntry {
                    fingerprint: Fingerprint(key),
                    open: Some(value.last_seen.seq) == latest,
                    value,
                }),
                None => None,
            };
            // Each finding is compared with every dismissal that applies (up to twice
            // `MAX_LIVE_PER_SCOPE`), once per wording: a loop a client sizes, so it counts
            // against the read's deadline; with no dismissal there is nothing to compare.
            let remembered_wordings = remembered
                .as_ref()
                .filter(|_| !applicable.is_empty())
                .map(dismissals::Remembered::of);
            let n_wordings = remembered_wordings
                .as_ref()
                .map_or(0, |r| r.wordings.len() as u64);
            budget.walk(applicable.len() as u64 * (1 + n_wordings) + n_wordings * n_wordings)?;
            let dismissals = dismissals::which_applies(
                &applicable,
                &named,
                finding,
                matched,
                remembered_wordings.as_ref(),
            );
            out.push(CheckedFinding {
                matched,
                remembered,
                dismissal: dismissals.silencing,
                resembled_dismissal: dismissals.resembled,
            });
        }
        Ok(out)
    }
}

fn page_of(latest: u64) -> FindingsPage {
    FindingsPage {
        latest_seq: Some(latest),
        ..FindingsPage::default()
    }
}

/// The PR's latest audit that said what it found: the one whose findings are open.
fn latest_seq(txn: &ReadTransaction, repo: u32, pr: u64) -> Result<Option<u64>, StoreError> {
    Ok(txn
        .open_table(FINDINGS_AUDITS)?
        .get((repo, pr))?
        .map(|v| v.value()))
}

/// Of the findings of the audit `seq` on `head_sha` (its JSON `raw_json`), how many the memory
/// holds, and how many of those an earlier audit of another head raised: `(raised, repeated)`.
/// Cost: a lookup and a get per finding of the audit.
pub(super) fn audit_repeats(
    txn: &ReadTransaction,
    repo: u32,
    pr: u64,
    seq: u64,
    head_sha: &str,
    raw_json: &str,
) -> Result<(u64, u64), StoreError> {
    let fps = txn.open_table(FINDING_FPS)?;
    let findings = txn.open_table(FINDINGS)?;
    let mut keys = BTreeSet::new();
    for finding in stored_findings(raw_json).unwrap_or_default() {
        if let Some(key) = fps.get((repo, finding.fingerprint.0, pr))? {
            keys.insert(key.value());
        }
    }
    let mut repeated = 0;
    for &key in &keys {
        let Some(value) = get_finding(&findings, repo, pr, key)? else {
            continue;
        };
        if raised_by_an_earlier_head(&value, seq, head_sha) {
            repeated += 1;
        }
    }
    Ok((keys.len() as u64, repeated))
}

/// [`audit_repeats`] of the PR's latest audit `seq` (the seq `prs` holds), read from the
/// memory alone: the findings it raised are those it was the last to raise, one range of
/// `findings_by_last_audit`, whose entries say which it repeated, so neither its JSON nor the
/// findings are read. Cost: that range.
pub(super) fn latest_audit_repeats(
    txn: &ReadTransaction,
    repo: u32,
    pr: u64,
    seq: u64,
) -> Result<(u64, u64), StoreError> {
    let by_last_audit = txn.open_table(FINDINGS_BY_LAST_AUDIT)?;
    let (mut raised, mut repeated) = (0, 0);
    for row in by_last_audit.range((repo, pr, seq, 0)..=(repo, pr, seq, u64::MAX))? {
        raised += 1;
        repeated += u64::from(row?.1.value() != 0);
    }
    Ok((raised, repeated))
}

/// Whether an audit before `seq` of a head other than `head_sha` raised the finding `value`.
fn raised_by_an_earlier_head(value: &FindingValue, seq: u64, head_sha: &str) -> bool {
    value
        .heads
        .iter()
        .any(|h| h.seq < seq && !h.head_sha.eq_ignore_ascii_case(head_sha))
}

/// The value of a finding's `findings_by_last_audit` entry: 1 when the audit that last raised
/// it repeated it ([`raised_by_an_earlier_head`] for that audit), else 0. It never changes
/// while the entry stands: only an audit raising the finding again rewrites the value, and
/// that moves the entry.
fn repeated_flag(value: &FindingValue) -> u8 {
    u8::from(raised_by_an_earlier_head(
        value,
        value.last_seen.seq,
        &value.last_seen.head_sha,
    ))
}

/// `check` of the findings memory: for each PR, a rebuild from its verdicts in seq order must
/// equal what is stored (values, the fingerprints naming them, the last-seen index), and the
/// tables hold nothing more. One PR is held in memory at a time.
pub(super) fn check_memory(
    txn: &ReadTransaction,
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    let meta_table = txn.open_table(META)?;
    let built = meta::get(&meta_table, meta::FINDINGS_RULES_VERSION)? == FINDING_RULES_VERSION
        && meta::get(&meta_table, meta::FINDINGS_ANALYZER_VERSION)? == ANALYZER_VERSION;
    if !built {
        report.problem("the findings memory is not built (open the store to build it)".into());
        return Ok(());
    }
    let prs = txn.open_table(PRS)?;
    let pr_verdicts = txn.open_table(PR_VERDICTS)?;
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let findings = txn.open_table(FINDINGS)?;
    let fps = txn.open_table(FINDING_FPS)?;
    let by_last_audit = txn.open_table(FINDINGS_BY_LAST_AUDIT)?;
    let audits = txn.open_table(FINDINGS_AUDITS)?;
    let (mut n_findings, mut n_fps, mut n_audits) = (0u64, 0u64, 0u64);
    for row in prs.iter()? {
        let (repo, pr) = row?.0.value();
        let mut replay = Replay::default();
        for entry in pr_verdicts.range((repo, pr, 0)..=(repo, pr, u64::MAX))? {
            let seq = entry?.0.value().2;
            let Some(bytes) = verdicts.get(seq)? else {
                continue; // `check_verdicts` reports it
            };
            let Ok(plain) = plain_verdict(bytes.value(), seq) else {
                continue;
            };
            let Ok(v) = verdict_ref(&plain, seq) else {
                continue;
            };
            let sighting = Sighting {
                seq,
                head_sha: v.head_sha.to_owned(),
                audited_at: v.audited_at.to_owned(),
            };
            let findings = stored_findings(v.raw_json);
            remember(&mut replay, repo, pr, &sighting, findings.as_deref())?;
        }
        let mut stored = Vec::new();
        for row in findings.range((repo, pr, 0)..=(repo, pr, u64::MAX))? {
            let (key, bytes) = row?;
            let key = key.value().2;
            match decode_finding(bytes.value(), key) {
                Ok(value) => stored.push((key, value)),
                Err(e) => report.problem(format!("PR {pr} of repository {repo}: {e}")),
            }
        }
        let stored_audit = audits.get((repo, pr))?.map(|v| v.value());
        if stored_audit != replay.audit {
            report.problem(format!(
                "PR {pr} of repository {repo}: findings_audits holds {stored_audit:?}, its \
                 verdicts give {:?}",
                replay.audit
            ));
        }
        n_audits += u64::from(replay.audit.is_some());
        let rebuilt: Vec<(u64, FindingValue)> = replay.findings.into_iter().collect();
        n_findings += rebuilt.len() as u64;
        n_fps += replay.fps.len() as u64;
        if stored != rebuilt {
            let keys = |v: &[(u64, FindingValue)]| {
                v.iter()
                    .map(|(k, _)| Fingerprint(*k).to_string())
                    .collect::<Vec<_>>()
            };
            report.problem(format!(
                "PR {pr} of repository {repo}: the findings memory holds {:?}, a rebuild from \
                 its verdicts gives {:?}{}",
                keys(&stored),
                keys(&rebuilt),
                if keys(&stored) == keys(&rebuilt) {
                    " (values differ)"
                } else {
                    ""
                }
            ));
        }
        for (fp, key) in &replay.fps {
            if fps.get((repo, *fp, pr))?.map(|v| v.value()) != Some(*key) {
                report.problem(format!(
                    "PR {pr} of repository {repo}: fingerprint {} should name finding {}",
                    Fingerprint(*fp),
                    Fingerprint(*key)
                ));
            }
        }
        for (key, value) in &rebuilt {
            let seen = value.last_seen.seq;
            match by_last_audit.get((repo, pr, seen, *key))? {
                None => report.problem(format!(
                    "PR {pr} of repository {repo}: finding {} is missing from \
                     findings_by_last_audit at seq {seen}",
                    Fingerprint(*key),
                )),
                Some(flag) if flag.value() != repeated_flag(value) => {
                    report.problem(format!(
                        "PR {pr} of repository {repo}: finding {} is marked {} at seq {seen} \
                         in findings_by_last_audit; its audits give {}",
                        Fingerprint(*key),
                        flag.value(),
                        repeated_flag(value)
                    ));
                }
                Some(_) => {}
            }
        }
    }
    let sizes = [
        ("findings", findings.len()?, n_findings),
        ("finding_fps", fps.len()?, n_fps),
        ("findings_by_last_audit", by_last_audit.len()?, n_findings),
        ("findings_audits", audits.len()?, n_audits),
    ];
    for (name, has, needs) in sizes {
        if has != needs {
            report.problem(format!(
                "{name} has {has} entries, a rebuild from the verdicts gives {needs}"
            ));
        }
    }
    Ok(())
}
