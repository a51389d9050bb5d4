//! Matching one audit's findings against a PR's remembered findings: exact first, then the
//! best similar pairs, each remembered finding matched once.

use std::collections::BTreeSet;

use super::terms::FindingTerms;
use super::{Finding, SIMILAR_THRESHOLD};
use crate::model::polarity::Polarity;
use crate::model::text;

/// What one incoming finding matched among a PR's remembered findings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Match {
    /// Its fingerprint is one the memory knows: the remembered finding `canonical`.
    Exact(u64),
    /// A rewording of the remembered finding `canonical`, with its similarity.
    Similar(u64, f64),
    /// Nothing remembered matches.
    New,
}

impl Match {
    pub fn canonical(&self) -> Option<u64> {
        match *self {
            Match::Exact(c) | Match::Similar(c, _) => Some(c),
            Match::New => None,
        }
    }
}

/// A remembered finding the similar tier may match: its key (canonical fingerprint), its
/// normalised check and the terms of its wordings (a match with any of them counts).
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub key: u64,
    pub check_key: String,
    pub wordings: Vec<&'a FindingTerms>,
    /// Its latest wording's text (the first's is not kept): a finding that differs from it by
    /// a pair of opposite words is not it.
    pub latest: &'a str,
}

/// Matches the findings of one audit (or one check request) against a PR's memory. `exact[i]`
/// is the remembered finding that incoming finding `i`'s fingerprint names, if any. The
/// others are matched to `candidates` of the same check by similarity at least
/// [`SIMILAR_THRESHOLD`], best pairs first (ties: the earlier incoming finding, then the lower
/// key), each remembered finding matched by at most one incoming finding of the audit (two
/// findings raised together are two findings), and none already matched exactly. A finding
/// that differs from a candidate's latest wording by a pair of opposite words, both or neither
/// negated (`rate limiting is enabled` and `... disabled`), is not a rewording of it, however
/// much else the two share; with a negation on one side only the two may say the same thing
/// (`is unvalidated`, `is not validated`), and the similarity decides.
pub fn assign(
    incoming: &[&Finding],
    exact: &[Option<u64>],
    candidates: &[Candidate<'_>],
) -> Vec<Match> {
    let mut out: Vec<Match> = exact
        .iter()
        .map(|e| e.map_or(Match::New, Match::Exact))
        .collect();
    let mut taken: BTreeSet<u64> = exact.iter().flatten().copied().collect();
    let mut pairs = Vec::new();
    for (i, finding) in incoming.iter().enumerate() {
        if out[i] != Match::New || finding.terms.is_empty() {
            continue;
        }
        let check = finding.check_key();
        for (j, candidate) in candidates.iter().enumerate() {
            if candidate.check_key != check || taken.contains(&candidate.key) {
                continue;
            }
            let score = candidate
                .wordings
                .iter()
                .map(|w| finding.terms.similarity(w))
                .fold(0.0, f64::max);
            if score >= SIMILAR_THRESHOLD {
                pairs.push((score, i, candidate.key, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    // Whether a pair says opposite things is asked only of a pair whose finding and candidate
    // are both still free (the same answer as leaving such pairs out first), and each wording
    // is analysed once: an audit of 256 findings against 256 remembered ones that all
    // resemble each other analysed the candidate's wording for every pair (15 s of the
    // writer's for a batch of 5 such audits, a review's).
    let mut mine: Vec<Option<Polarity>> = incoming.iter().map(|_| None).collect();
    let mut theirs: Vec<Option<Polarity>> = candidates.iter().map(|_| None).collect();
    for (score, i, key, j) in pairs {
        if out[i] != Match::New || taken.contains(&key) {
            continue;
        }
        let a = mine[i].get_or_insert_with(|| Polarity::of(&incoming[i].summary));
        let b = theirs[j].get_or_insert_with(|| Polarity::of(candidates[j].latest));
        if flips_a_word(a, b) {
            continue;
        }
        out[i] = Match::Similar(key, text::round_score(score));
        taken.insert(key);
    }
    out
}

/// Whether two wordings differ by a pair of opposite words and agree in negation: they say
/// opposite things (see [`assign`]).
fn flips_a_word(a: &Polarity, b: &Polarity) -> bool {
    a.negated() == b.negated() && a.stems().opposes(b.stems())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_prefers_exact_then_best_and_matches_each_remembered_finding_once() {
        let f = |s: &str| Finding::new("static", "warn", s);
        let remembered = [
            f("unwrap on user input in parse_body can panic"),
            f("parse_body unwraps the content-length header"),
        ];
        let candidates: Vec<Candidate<'_>> = remembered
            .iter()
            .enumerate()
            .map(|(i, r)| Candidate {
                key: i as u64 + 1,
                check_key: r.check_key(),
                wordings: vec![&r.terms],
                latest: &r.summary,
            })
            .collect();
        let incoming = [
            f("parse_body can panic: it unwraps user input"),
            f("parse_body can panic: it unwraps user input!"),
            Finding::new(
                "security",
                "warn",
                "parse_body unwraps the content-length header",
            ),
            f("parse_body unwraps the content-length header"),
        ];
        let refs: Vec<&Finding> = incoming.iter().collect();
        let out = assign(&refs, &[None, None, None, Some(2)], &candidates);
        assert!(
            matches!(out[0], Match::Similar(1, s) if s >= SIMILAR_THRESHOLD),
            "{out:?}"
        );
        // Its twin (one fingerprint) was deduplicated away by `findings_of` in a verdict;
        // given twice here, the second finds finding 1 taken.
        assert_eq!(out[1], Match::New);
        // Another check never matches.
        assert_eq!(out[2], Match::New);
        assert_eq!(out[3], Match::Exact(2));
    }
}
