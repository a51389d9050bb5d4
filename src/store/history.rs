//! PR history (Phase B): a PR's audit counts, its newest outcomes for the finding sentence, how
//! many of its latest audit's findings earlier heads raised, and a page of its audits, newest
//! first. Counts come from `prs` and `pr_heads` (kept in the write transaction), audits from a
//! reverse range of `pr_verdicts` (each audit read once, for the sentence and the page alike),
//! and the latest audit's findings from the findings memory (the range of the findings it was
//! the last to raise), so the cost is that of the answer: O(page + sentence + the latest
//! audit's findings), plus the audits of the excluded head that the walk steps over.

use redb::ReadableDatabase;

use std::borrow::Cow;

use super::codec::{self, decode_borrowed};
use super::repos;
use super::tables::*;
use super::values::{VerdictHead, VerdictValueRef};
use super::{ReadBudget, Store, StoreError};
use crate::model::Repo;
use crate::model::verdict::sig_hash;

/// Newest outcomes the finding sentence lists; older ones are counted ("N earlier").
pub const SENTENCE_OUTCOMES: usize = 20;

/// What to read of a PR's history.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub repo: Repo,
    pub pr_number: u64,
    /// A lowercase hex prefix of the head being audited now: its audits are left out.
    pub exclude_sha: Option<String>,
    /// Page cursor: audits with a seq below this one.
    pub before_seq: Option<u64>,
    pub limit: usize,
}

/// One audit in a history page.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub seq: u64,
    pub sig_hash: String,
    pub head_sha: String,
    pub overall: String,
    pub one_liner: String,
    pub audited_at: String,
    pub findings_block: u64,
    pub findings_warn: u64,
    pub findings_info: Option<u64>,
    pub audit_duration_ms: Option<f64>,
}

/// What the findings memory says of the latest audit's findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatestFindings {
    /// The audit's seq.
    pub seq: u64,
    /// Its findings the memory holds.
    pub raised: u64,
    /// Of them, those an earlier audit of another head raised.
    pub repeated: u64,
}

/// A PR's history, every audit but the excluded head's counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Audits counted.
    pub count: u64,
    /// Of them, approve, request_changes, block.
    pub by_overall: [u64; 3],
    /// The newest [`SENTENCE_OUTCOMES`] overalls, oldest first.
    pub recent_overalls: Vec<String>,
    /// The newest audit's one_liner.
    pub last_reason: Option<String>,
    /// The newest audit's findings and their repeats.
    pub latest_findings: Option<LatestFindings>,
    /// The page, newest first.
    pub audits: Vec<AuditEntry>,
    /// Whether older audits follow the page.
    pub more: bool,
}

impl AuditEntry {
    /// About the memory this entry holds: its variable-length text.
    pub fn held_bytes(&self) -> usize {
        self.sig_hash.len()
            + self.head_sha.len()
            + self.overall.len()
            + self.one_liner.len()
            + self.audited_at.len()
    }
}

/// The page of a history being filled, newest audit first.
#[derive(Default)]
struct Page {
    audits: Vec<AuditEntry>,
    limit: usize,
    /// Older audits follow: the page is full, or stopped by the budget's bytes, and takes no
    /// more.
    more: bool,
}

impl Page {
    /// Takes the audit `seq` (not excluded, below the cursor) unless the page is done.
    fn take(&mut self, seq: u64, v: &VerdictHead<'_>, budget: &mut ReadBudget) {
        if self.more {
            return;
        }
        if self.audits.len() == self.limit {
            self.more = true;
            return;
        }
        let audit = AuditEntry {
            seq,
            sig_hash: sig_hash(v.pr_number, v.head_sha),
            head_sha: v.head_sha.to_owned(),
            overall: v.overall.to_owned(),
            one_liner: v.one_liner.to_owned(),
            audited_at: v.audited_at.to_owned(),
            findings_block: v.findings_block,
            findings_warn: v.findings_warn,
            findings_info: v.findings_info,
            audit_duration_ms: v.audit_duration_ms,
        };
        if !budget.take(audit.held_bytes()) {
            self.more = true;
            return;
        }
        self.audits.push(audit);
    }
}

impl Store {
    /// A PR's history (see [`History`]) within `budget`: its deadline is checked as audits are
    /// walked, and the page stops (with `more`) before the audits it holds pass its bytes.
    pub fn pr_history(
        &self,
        q: &HistoryQuery,
        budget: &mut ReadBudget,
    ) -> Result<History, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(repo) = repos::lookup(&txn.open_table(REPOS)?, &q.repo)? else {
            return Ok(History::default());
        };
        let pr = q.pr_number;
        let mut history = History::default();
        let counts = txn.open_table(PRS)?.get((repo, pr))?.map(|v| v.value());
        if let Some((a, r, b, _)) = counts {
            history.by_overall = [a, r, b];
        }
        // The PR's newest audit, whatever is left out.
        let newest = counts.map(|(_, _, _, last)| last);
        if let Some(prefix) = &q.exclude_sha {
            let heads = txn.open_table(PR_HEADS)?;
            for row in heads.range((repo, pr, prefix.as_str())..=(repo, pr, "\u{10ffff}"))? {
                let (key, counts) = row?;
                if !key.value().2.starts_with(prefix.as_str()) {
                    break;
                }
                let (a, r, b) = counts.value();
                for (slot, n) in [a, r, b].into_iter().enumerate() {
                    history.by_overall[slot] = history.by_overall[slot].saturating_sub(n);
                }
            }
        }
        history.count = history.by_overall.iter().sum();

        let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
        let index = txn.open_table(PR_VERDICTS)?;
        let excluded = |head: &str| {
            q.exclude_sha
                .as_deref()
                .is_some_and(|prefix| head.to_ascii_lowercase().starts_with(prefix))
        };

        // The audits' fields but their JSON, each read into one reused buffer (from the first
        // block of a verdict stored by codec version 5). The sentence's walk starts at the
        // newest audit; the page's audits it passes are taken on the way, and the page's own
        // walk goes on below the last of them, so no audit is read twice.
        let below = q.before_seq.unwrap_or(u64::MAX);
        let mut page = Page {
            limit: q.limit,
            ..Page::default()
        };
        let mut scratch = Vec::new();
        let mut recent = Vec::new();
        let mut page_below = below;
        for row in index.range((repo, pr, 0)..=(repo, pr, u64::MAX))?.rev() {
            if recent.len() == SENTENCE_OUTCOMES {
                break;
            }
            budget.tick()?;
            let seq = row?.0.value().2;
            let bytes = indexed_verdict(&verdicts, seq)?;
            let v = verdict_head(bytes.value(), seq, &mut scratch)?;
            if seq < below {
                page_below = seq;
            }
            if excluded(v.head_sha) {
                continue;
            }
            if history.last_reason.is_none() {
                history.last_reason = Some(v.one_liner.to_owned());
                // The newest audit's findings: from the memory when it is the PR's latest,
                // else from its JSON, read whole.
                let (raised, repeated) = if newest == Some(seq) {
                    super::findings::latest_audit_repeats(&txn, repo, pr, seq)?
                } else {
                    let plain = plain_verdict(bytes.value(), seq)?;
                    let v = verdict_ref(&plain, seq)?;
                    super::findings::audit_repeats(&txn, repo, pr, seq, v.head_sha, v.raw_json)?
                };
                history.latest_findings = Some(LatestFindings {
                    seq,
                    raised,
                    repeated,
                });
            }
            recent.push(v.overall.to_owned());
            if seq < below {
                page.take(seq, &v, budget);
            }
        }
        recent.reverse();
        history.recent_overalls = recent;

        if !page.more {
            for row in index.range((repo, pr, 0)..(repo, pr, page_below))?.rev() {
                budget.tick()?;
                let seq = row?.0.value().2;
                let bytes = indexed_verdict(&verdicts, seq)?;
                let v = verdict_head(bytes.value(), seq, &mut scratch)?;
                if excluded(v.head_sha) {
                    continue;
                }
                page.take(seq, &v, budget);
                if page.more {
                    break;
                }
            }
        }
        history.audits = page.audits;
        history.more = page.more;
        Ok(history)
    }

    /// Every verdict of a PR, oldest first (tests and tools; the API pages).
    pub fn pr_verdicts(
        &self,
        repo: &Repo,
        pr_number: u64,
    ) -> Result<Vec<super::VerdictEntry>, StoreError> {
        let mut out = Vec::new();
        for seq in self.pr_verdict_seqs(repo, pr_number)? {
            out.extend(self.verdict(seq)?);
        }
        Ok(out)
    }

    /// Every verdict seq of a PR, oldest first (tests and tools; the API pages).
    pub fn pr_verdict_seqs(&self, repo: &Repo, pr_number: u64) -> Result<Vec<u64>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(repo) = repos::lookup(&txn.open_table(REPOS)?, repo)? else {
            return Ok(Vec::new());
        };
        let index = txn.open_table(PR_VERDICTS)?;
        let mut out = Vec::new();
        for row in index.range((repo, pr_number, 0)..=(repo, pr_number, u64::MAX))? {
            out.push(row?.0.value().2);
        }
        Ok(out)
    }

    /// The seq of a PR's newest verdict, if it has one.
    pub fn latest_verdict_seq(
        &self,
        repo: &Repo,
        pr_number: u64,
    ) -> Result<Option<u64>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(repo) = repos::lookup(&txn.open_table(REPOS)?, repo)? else {
            return Ok(None);
        };
        Ok(txn
            .open_table(PRS)?
            .get((repo, pr_number))?
            .map(|v| v.value().3))
    }
}

/// The stored verdict `seq` that `pr_verdicts` names.
fn indexed_verdict(
    verdicts: &redb::ReadOnlyTable<u64, &'static [u8]>,
    seq: u64,
) -> Result<redb::AccessGuard<'static, &'static [u8]>, StoreError> {
    verdicts.get(seq)?.ok_or(StoreError::Dangling {
        index: "pr_verdicts",
        seq,
    })
}

/// A stored verdict as its plain value (decompressed if it was compressed), for
/// [`verdict_ref`].
pub(super) fn plain_verdict(bytes: &[u8], seq: u64) -> Result<Cow<'_, [u8]>, StoreError> {
    codec::open(bytes).map_err(|source| StoreError::Codec {
        table: "verdicts_by_seq",
        seq,
        source,
    })
}

/// A stored verdict's fields but its JSON, read in place (through `scratch` when compressed).
pub(super) fn verdict_head<'a>(
    bytes: &'a [u8],
    seq: u64,
    scratch: &'a mut Vec<u8>,
) -> Result<VerdictHead<'a>, StoreError> {
    VerdictHead::read(bytes, scratch).map_err(|source| StoreError::Codec {
        table: "verdicts_by_seq",
        seq,
        source,
    })
}

/// Reads a plain verdict's few fields in place, without copying its JSON.
pub(super) fn verdict_ref(bytes: &[u8], seq: u64) -> Result<VerdictValueRef<'_>, StoreError> {
    decode_borrowed(bytes).map_err(|source| StoreError::Codec {
        table: "verdicts_by_seq",
        seq,
        source,
    })
}
