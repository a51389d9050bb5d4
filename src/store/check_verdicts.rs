//! `check` of the verdicts and every index derived from them: `by_sig`, the identity index,
//! the PR index and counts, the exact claims index and the similar-claims text index (which
//! must equal a rebuild from the verdicts' claims, with its corpus statistics).
//!
//! Each index is checked both ways without holding it in memory: every entry a verdict needs
//! is looked up, and the index holds exactly as many entries as the verdicts need (the needed
//! entries are distinct, so presence and equal counts make the two sets equal).

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::check::{CheckReport, repo_id};
use super::codec;
use super::meta;
use super::postings::{self, Posting};
use super::read::verdict_entry;
use super::tables::*;
use super::text_index::postings_of;
use super::values::VerdictHead;
use super::{Stats, StoreError};
use crate::model::claims::stored_claims;
use crate::model::text::ANALYZER_VERSION;
use crate::model::verdict::sig_hash;

pub(super) fn check_verdicts(
    txn: &ReadTransaction,
    report: &mut CheckReport,
    recount: &mut Stats,
    seqs: &mut Vec<u64>,
) -> Result<(), StoreError> {
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let by_sig = txn.open_table(BY_SIG)?;
    let ids = txn.open_table(VERDICT_IDENTITIES)?;
    let pr_verdicts = txn.open_table(PR_VERDICTS)?;
    let claim_hashes = txn.open_table(CLAIM_HASHES)?;
    let claim_terms = txn.open_table(CLAIM_TERMS)?;
    let repos = txn.open_table(REPOS)?;
    let meta_table = txn.open_table(META)?;
    let text_index_built = meta::get(&meta_table, meta::CLAIM_INDEX_VERSION)? == ANALYZER_VERSION;

    let mut prs: BTreeMap<(u32, u64), [u64; 4]> = BTreeMap::new();
    let mut heads: BTreeMap<(u32, u64, String), [u64; 3]> = BTreeMap::new();
    let mut corpus: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let (mut n_ids, mut n_postings) = (0u64, 0u64);
    // The text index is compared with a rebuild through a count and an order-free digest (a sum
    // of each posting's hash), then, only when they differ, posting by posting.
    let mut digest = 0u64;
    for row in verdicts.iter()? {
        let (seq, bytes) = row?;
        let seq = seq.value();
        seqs.push(seq);
        let value = match verdict_entry("", seq, bytes.value()) {
            Ok(entry) => entry.value,
            Err(e) => {
                report.problem(e.to_string());
                continue;
            }
        };
        // A verdict stored by codec version 5 reads its fields from its first block (export,
        // history): they must be the whole value's.
        if codec::is_split(bytes.value())
            && VerdictHead::read(bytes.value(), &mut Vec::new()).ok()
                != Some(value.as_view().head())
        {
            report.problem(format!(
                "verdict seq {seq}: its first block does not give its fields"
            ));
        }
        report.verdicts += 1;
        recount.verdicts += 1;
        *recount
            .verdicts_by_overall
            .entry(value.overall.clone())
            .or_default() += 1;
        *recount
            .verdicts_by_repo
            .entry(value.repo.clone())
            .or_default() += 1;
        let what = format!("verdict seq {seq}");
        let Some(repo) = repo_id(&repos, report, &value.repo, &what)? else {
            continue;
        };
        let pr = value.pr_number;
        let sig = sig_hash(pr, &value.head_sha);
        if by_sig
            .get((repo, sig.as_str(), KIND_VERDICT, seq))?
            .is_none()
        {
            report.problem(format!("{what} is not indexed under its sig_hash {sig}"));
        }
        let hash = verdict_identity_hash(pr, &value.head_sha, &value.audited_at);
        if ids.get((repo, hash, seq))?.is_some() {
            n_ids += 1;
        } else {
            report.problem(format!("{what} is missing from verdict_identities"));
        }
        // An earlier verdict under the same hash with the same identity is a repeat (reading
        // it is rare: identities share a hash only when they are the same or collide).
        for row in ids.range((repo, hash, 0)..(repo, hash, seq))? {
            let earlier = row?.0.value().2;
            let same = match verdicts.get(earlier)? {
                Some(bytes) => verdict_entry("", earlier, bytes.value()).is_ok_and(|e| {
                    e.value.pr_number == pr
                        && e.value.head_sha == value.head_sha
                        && e.value.audited_at == value.audited_at
                }),
                None => false,
            };
            if same {
                report.problem(format!(
                    "{what} repeats an earlier verdict (seq {earlier}: the same repo, \
                     pr_number, head_sha and audited_at)"
                ));
            }
        }
        if pr_verdicts.get((repo, pr, seq))?.is_none() {
            report.problem(format!("{what} is missing from pr_verdicts"));
        }
        let slot = super::write::overall_slot(&value.overall);
        let counts = prs.entry((repo, pr)).or_default();
        counts[3] = counts[3].max(seq);
        let head = heads
            .entry((repo, pr, value.head_sha.to_ascii_lowercase()))
            .or_default();
        if let Some(slot) = slot {
            counts[slot] += 1;
            head[slot] += 1;
        }

        let claims = stored_claims(&value.raw_json);
        for claim in &claims {
            report.claims += 1;
            if claim_hashes.get((claim.hash.0, repo, seq))?.is_none() {
                report.problem(format!("{what} claim {} is not indexed", claim.hash));
            }
        }
        if text_index_built {
            let mut last_doc = None;
            for (term, repo, posting) in postings_of(seq, repo, &claims) {
                n_postings += 1;
                digest = digest.wrapping_add(posting_hash(&term, repo, posting));
                if last_doc != Some(posting.doc) {
                    last_doc = Some(posting.doc);
                    let entry = corpus.entry(repo).or_default();
                    entry.0 += 1;
                    entry.1 += u64::from(posting.len);
                }
            }
        }
    }

    let sizes = [
        ("verdict_identities", ids.len()?, n_ids),
        ("pr_verdicts", pr_verdicts.len()?, report.verdicts),
        ("claim_hashes", claim_hashes.len()?, report.claims),
    ];
    for (name, has, needs) in sizes {
        if has != needs {
            report.problem(format!(
                "{name} has {has} entries, the verdicts need {needs}"
            ));
        }
    }
    compare_pr_counts(txn, report, &prs, &heads)?;
    if text_index_built {
        let (mut stored_n, mut stored_digest) = (0u64, 0u64);
        postings::for_each(&claim_terms, |term, repo, posting| {
            stored_n += 1;
            stored_digest = stored_digest.wrapping_add(posting_hash(term, repo, posting));
        })?;
        if (stored_n, stored_digest) != (n_postings, digest) {
            report.problem(format!(
                "claim_terms differs from a rebuild from the verdicts: it holds {stored_n} \
                 postings (digest {stored_digest:016x}), a rebuild gives {n_postings} (digest \
                 {digest:016x})"
            ));
            name_differences(&verdicts, &claim_terms, &repos, report)?;
        }
        compare_corpus(&meta_table, report, &corpus)?;
    } else {
        report.problem("the similar-claims index is not built (open the store to build it)".into());
    }
    Ok(())
}

/// A posting's hash, for the digest that compares the index with a rebuild.
fn posting_hash(term: &str, repo: u32, posting: Posting) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (term, repo, posting).hash(&mut hasher);
    hasher.finish()
}

/// The postings a rebuild would give that the index lacks or holds otherwise, each a problem.
fn name_differences(
    verdicts: &impl ReadableTable<u64, &'static [u8]>,
    claim_terms: &impl ReadableTable<(&'static str, u32, u64), &'static [u8]>,
    repos: &impl ReadableTable<&'static str, u32>,
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    for row in verdicts.iter()? {
        let (seq, bytes) = row?;
        let seq = seq.value();
        let Ok(entry) = verdict_entry("", seq, bytes.value()) else {
            continue;
        };
        let value = entry.value;
        let repo = if value.repo.is_empty() {
            DEFAULT_REPO
        } else {
            match repos.get(value.repo.as_str())? {
                Some(id) => id.value(),
                None => continue,
            }
        };
        for (term, repo, posting) in postings_of(seq, repo, &stored_claims(&value.raw_json)) {
            let stored = postings::get(claim_terms, &term, repo, posting.doc)?;
            if stored != Some(posting) {
                report.problem(format!(
                    "verdict seq {seq}: the text index holds {stored:?} for term {term:?} of \
                     claim {}, a rebuild gives {posting:?}",
                    posting.doc & 1023
                ));
            }
        }
    }
    Ok(())
}

/// `prs` and `pr_heads` against a recount.
fn compare_pr_counts(
    txn: &ReadTransaction,
    report: &mut CheckReport,
    prs: &BTreeMap<(u32, u64), [u64; 4]>,
    heads: &BTreeMap<(u32, u64, String), [u64; 3]>,
) -> Result<(), StoreError> {
    let stored_prs = txn.open_table(PRS)?;
    let mut n_stored = 0;
    for row in stored_prs.iter()? {
        let (key, value) = row?;
        n_stored += 1;
        let (a, r, b, last) = value.value();
        if prs.get(&key.value()) != Some(&[a, r, b, last]) {
            report.problem(format!(
                "prs entry {:?} is {:?}, a recount gives {:?}",
                key.value(),
                (a, r, b, last),
                prs.get(&key.value())
            ));
        }
    }
    if n_stored != prs.len() {
        report.problem(format!(
            "prs has {n_stored} entries, the verdicts name {} PRs",
            prs.len()
        ));
    }
    let stored_heads = txn.open_table(PR_HEADS)?;
    let mut n_stored = 0;
    for row in stored_heads.iter()? {
        let (key, value) = row?;
        n_stored += 1;
        let (repo, pr, head) = key.value();
        let (a, r, b) = value.value();
        if heads.get(&(repo, pr, head.to_owned())) != Some(&[a, r, b]) {
            report.problem(format!(
                "pr_heads entry ({repo}, {pr}, {head}) is {:?}, a recount differs",
                (a, r, b)
            ));
        }
    }
    if n_stored != heads.len() {
        report.problem(format!(
            "pr_heads has {n_stored} entries, the verdicts name {} heads",
            heads.len()
        ));
    }
    Ok(())
}

/// The text index's corpus statistics against a recount, overall and per repository.
fn compare_corpus(
    meta_table: &impl ReadableTable<&'static str, u64>,
    report: &mut CheckReport,
    corpus: &BTreeMap<u32, (u64, u64)>,
) -> Result<(), StoreError> {
    let total = corpus
        .values()
        .fold((0, 0), |(d, l), (docs, len)| (d + docs, l + len));
    let stored = (
        meta::get(meta_table, meta::CLAIM_DOCS)?,
        meta::get(meta_table, meta::CLAIM_TERMS_LEN)?,
    );
    if stored != total {
        report.problem(format!(
            "the text index counts (claims, terms) {stored:?}, a recount gives {total:?}"
        ));
    }
    let per_repo = meta::counters_under(meta_table, meta::CLAIM_DOCS_IN)?;
    let per_repo_len = meta::counters_under(meta_table, meta::CLAIM_TERMS_LEN_IN)?;
    let recount: BTreeMap<String, u64> = corpus
        .iter()
        .map(|(repo, (docs, _))| (repo.to_string(), *docs))
        .collect();
    let recount_len: BTreeMap<String, u64> = corpus
        .iter()
        .map(|(repo, (_, len))| (repo.to_string(), *len))
        .collect();
    if per_repo != recount || per_repo_len != recount_len {
        report.problem(format!(
            "the text index counts per repository {per_repo:?} / {per_repo_len:?}, a recount \
             gives {recount:?} / {recount_len:?}"
        ));
    }
    Ok(())
}
