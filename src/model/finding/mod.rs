//! Findings: what an audit says is wrong (`findings: [{check, severity, summary, ...}]` in the
//! verdict JSON), and the rules by which the findings memory recognises one finding across the
//! pushes of a PR. Pure: the memory itself lives in the store (`store/findings.rs`).
//!
//! Two tiers, every answer saying which one matched:
//!
//! 1. **Exact**: the [`Fingerprint`], the first 16 hex digits of SHA-256 of
//!    `normalise_check(check) + "\n" + normalise_summary(summary)`, where
//!    - the check is trimmed, lowercased and its whitespace runs made one space;
//!    - the summary is put in Unicode NFC (`café` typed or pasted decomposed is one wording),
//!      lowercased; quote characters (`"` `'` `` ` `` `‘` `’` `“` `”` `«` `»`) are removed;
//!      every number that is a position in a file becomes one `#`: a run of ASCII digits
//!      after a file's `:` or `(` (`ingest.rs:42`, `ingest.rs:42:7`, `ingest.rs(42,7)`), after
//!      `#L` (`#L42`, `#L42-L57`), after the word `line`, `lines`, `ln`, `col`, `column` or
//!      `columns` (a space, `#` or `.` between), or after such a number and `-`, `–`, `..` or
//!      `,` (`lines 42-57`). Positions move between pushes; every other number names something
//!      (a CVE, a port: `0.0.0.0:5432`, a status code, a version) or measures something (`30s`,
//!      `72%`), and is kept as written (the similar tier leaves measurements out, so a moved
//!      measurement is a rewording);
//!      runs of whitespace become one space; leading and trailing whitespace and trailing
//!      sentence punctuation (`. ! ; : ,`) are dropped.
//!
//!    So `Unwrap in "parse_body" at ingest.rs:42 can panic.` and
//!    ``unwrap in `parse_body` at ingest.rs:57 can panic`` have one fingerprint, and
//!    `log4j 2.14.1 is vulnerable (CVE-2021-44228)` and `... (CVE-2021-45046)` two.
//! 2. **Similar**: a finding reworded by the model matches an earlier finding of the same PR
//!    and the same check when their [`FindingTerms`] score at least [`SIMILAR_THRESHOLD`] in
//!    [`FindingTerms::similarity`] (the Dice coefficient of their terms, 0 when they name
//!    different things). The terms come from the claims analyser (`model/text.rs`: lowercase,
//!    stop words, the Snowball stemmer, developer abbreviations), with identifiers counted
//!    whole, positions and measurements left out and other numbers counted as things named
//!    (`#5432`). Why this
//!    measure rather than BM25, and why this threshold, is said at
//!    [`FindingTerms::similarity`].
//!
//! These rules decide what the stored memory holds, so they are versioned:
//! [`FINDING_RULES_VERSION`] (with the analyser's version) is recorded with the memory, and a
//! store whose memory was built under other rules rebuilds it on open.
//!
//! The parts: [`fingerprint`] (the exact tier), [`positions`] (which numbers move between
//! pushes), [`terms`] (the similar tier), [`assign`] (one audit matched against the
//! memory); this file reads findings from verdicts and requests.

mod assign;
mod fingerprint;
mod positions;
mod terms;

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde_json::{Map, Value};

pub use assign::{Candidate, Match, assign};
pub use fingerprint::{Fingerprint, normalise_check, normalise_summary};
pub use terms::FindingTerms;

use super::{FieldError, cut};

/// Version of the rules of this file (fingerprint normalisation, terms, similarity, threshold).
/// Version 1: the rules as first released. Version 2: every number was `#` and left out of the
/// terms, so `CVE-2021-44228` and `CVE-2021-45046`, or ports 22 and 5432, were one finding
/// (and one confirmed dismissal silenced both): only positions are now; other numbers name
/// things, as do advisory ids; wordings are read in NFC. Version 3: a verdict's severities are
/// remembered trimmed and in lowercase (`BLOCK` was remembered as written, and dismissing it
/// needed no confirmation); fingerprints are version 2's. Version 4: a finding given twice in
/// one audit (one fingerprint, or two wordings the memory links) is remembered with the
/// graver severity, not the first given
/// (`warn` then `block` was remembered as warn); a `findings` array of which no entry reads as
/// a finding says nothing, as no array does, instead of resolving every open finding.
/// Version 5: a port after a host name (`cache.internal:6379`, `db.example.com:5432`) is a
/// number that names something, not a line of a file named `cache.internal`: two ports were
/// one finding, and a dismissal of one silenced the other (a review's); a dotfile's name is no
/// host's (`.env.local:3` is a line). Version 6: a remembered
/// finding keeps the wordings it was raised as between its first and its latest, through which
/// a dismissal reaches its rewordings; fingerprints are version 5's. Version 7: a wording that
/// differs from a remembered finding's latest by a pair of opposite words (`enabled`,
/// `disabled`), both or neither negated, is not linked to it as a rewording (it was a repeat);
/// a contraction typed without its apostrophe (`doesnt`), or with another mark for it (`ʼ`,
/// a backtick), is a negation; a number in parentheses after a name that is no source file's
/// is an argument, not a position (`server.listen(3000)` and `(9229)` were one finding).
/// Version 8: a remembered finding's wordings say since which audit the memory knows them, so
/// that a dismissal silences the wordings linked before it; fingerprints are version 7's.
/// Version 9: a line after a file named without an extension (`Dockerfile:3`) is a position;
/// two reversals (`is disabled`, `is not enabled`) do not say the opposite. Version 10: a
/// negation joined by a hyphen (`never-reassigned`, `no-auth`) or written `w/o` is one (kept
/// with each wording between); `unable` (and `missing` in `dismissing`) is a negation only,
/// not also an opposite word (the two cancelled); a dismissal silences no wording that
/// negates one of its words by `un-`, `non-`, `il-` or `ir-`, however inflected;
/// fingerprints are version 9's.
pub const FINDING_RULES_VERSION: u64 = 10;

/// The first rules version whose fingerprints are today's: a memory built under an older one
/// has its dismissals given today's fingerprints when it is rebuilt.
/// (A memory of rules 7 built by a build between 95d2b9c and b2076f9 had other fingerprints
/// than today's; re-keying a dismissal whose fingerprint did not change rewrites nothing.)
pub const FINGERPRINTS_SINCE_RULES_VERSION: u64 = 9;

/// A reworded finding matches when its similarity to the earlier one is at least this: the
/// terms the two wordings share weigh at least twice the terms either has alone (see
/// [`FindingTerms::similarity`]).
pub const SIMILAR_THRESHOLD: f64 = 2.0 / 3.0;

/// A rewording is silenced by a dismissal only on stronger evidence than the memory links two
/// wordings on: a similarity of at least this, wording to wording, and the finding agreeing
/// with the dismissal in negation ([`is_negated`](super::polarity::is_negated)) and saying
/// nothing opposite to it ([`Stems::opposes`](super::polarity::Stems::opposes)). Linking a
/// rewording to the wrong remembered finding costs a confused history; silencing the wrong
/// finding hides a real defect behind a team's word about another
/// (`TLS verification disabled` dismissed, `TLS verification enabled` raised; `password is not
/// hashed` and `password is hashed`, which differ only by a stop word). A lexical measure cannot
/// tell `eval` from `exec`, so what is left to it is how much of a wording is shared: one word
/// of four differing (0.75) is not enough to silence. Measured on the labelled sets
/// (`tests/fixtures/findings/`, each pair as raised, dismissed, then raised again reworded):
/// 124 of the 160 rewordings silenced and 31 more answered as resembling their dismissal; none
/// of the 160 different findings silenced, then or once raised. A finding
/// linked to a dismissal below this grade keeps its own status and names the dismissal it
/// resembles, for the auditor to weigh.
pub const DISMISSAL_THRESHOLD: f64 = 0.8;

/// Longest check name accepted (in a request) or remembered (from a verdict).
pub const MAX_CHECK_BYTES: usize = 200;
/// Longest summary a request may give; a stored verdict's longer summary is remembered cut to
/// this (its fingerprint is of the whole summary).
pub const MAX_SUMMARY_BYTES: usize = 4096;
/// Longest severity remembered, from a verdict or a request (a longer one is none).
pub const MAX_SEVERITY_BYTES: usize = 32;
/// Findings of one verdict that are remembered: the first this many distinct ones (a verdict
/// is history and is stored whole whatever it holds; the memory's cost per verdict is bounded).
pub const MAX_FINDINGS_PER_VERDICT: usize = 256;

/// One finding: as given (check, severity, summary), its fingerprint and its terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub check: String,
    /// As given; empty when the finding has none.
    pub severity: String,
    pub summary: String,
    pub fingerprint: Fingerprint,
    pub terms: FindingTerms,
}

impl Finding {
    pub fn new(check: &str, severity: &str, summary: &str) -> Finding {
        Finding {
            check: check.trim().to_owned(),
            severity: severity.to_owned(),
            summary: cut(summary.trim(), MAX_SUMMARY_BYTES).to_owned(),
            fingerprint: Fingerprint::of(check, summary),
            terms: FindingTerms::of(summary),
        }
    }

    /// The check as compared between findings.
    pub fn check_key(&self) -> String {
        normalise_check(&self.check)
    }
}

/// The findings of a verdict, read leniently: a verdict is the auditor's document and is stored
/// whole whatever its `findings` hold, so entries that are not objects with a non-blank string
/// `check` (at most [`MAX_CHECK_BYTES`]) and a non-blank string `summary` are not remembered,
/// and neither is a `findings` that is not an array. A `severity` that is a string of at most
/// [`MAX_SEVERITY_BYTES`] is kept trimmed and in ASCII lowercase (`" BLOCK"` is `block`, as
/// requests' findings are read too). Deduplicated by fingerprint (the first wording kept, with the
/// gravest severity given), at most [`MAX_FINDINGS_PER_VERDICT`].
///
/// `None` when the verdict carries no `findings` array, or one of entries none of which reads
/// as a finding (an auditor whose output changed shape): it says nothing of its findings, where
/// `"findings": []` says the audit found none (the memory then leaves the PR's open findings
/// open, where an empty list resolves them).
pub fn findings_of(verdict: &Map<String, Value>) -> Option<Vec<Finding>> {
    let Some(Value::Array(entries)) = verdict.get("findings") else {
        return None;
    };
    let found = findings_of_entries(entries);
    (entries.is_empty() || !found.is_empty()).then_some(found)
}

fn findings_of_entries(entries: &[Value]) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    // Where in `out` each fingerprint is.
    let mut seen = BTreeMap::new();
    for entry in entries {
        if out.len() == MAX_FINDINGS_PER_VERDICT {
            break;
        }
        let Value::Object(o) = entry else { continue };
        let (Some(check), Some(summary)) = (
            o.get("check").and_then(Value::as_str),
            o.get("summary").and_then(Value::as_str),
        ) else {
            continue;
        };
        if check.trim().is_empty() || check.len() > MAX_CHECK_BYTES || summary.trim().is_empty() {
            continue;
        }
        let severity = o
            .get("severity")
            .and_then(Value::as_str)
            .map(severity_remembered)
            .unwrap_or_default();
        let finding = Finding::new(check, &severity, summary);
        match seen.entry(finding.fingerprint) {
            Entry::Vacant(slot) => {
                slot.insert(out.len());
                out.push(finding);
            }
            // Raised twice in one audit: once, with the graver severity.
            Entry::Occupied(at) => {
                let kept = &mut out[*at.get()];
                if severity_rank(&finding.severity) > severity_rank(&kept.severity) {
                    kept.severity = finding.severity;
                }
            }
        }
    }
    out
}

/// A severity as it is remembered: trimmed, in ASCII lowercase; none (empty) when longer than
/// [`MAX_SEVERITY_BYTES`].
fn severity_remembered(given: &str) -> String {
    if given.len() > MAX_SEVERITY_BYTES {
        return String::new();
    }
    given.trim().to_ascii_lowercase()
}

/// How grave a severity is: block, then warn, then info, then anything else.
pub fn severity_rank(severity: &str) -> u8 {
    match severity {
        "block" => 3,
        "warn" => 2,
        "info" => 1,
        _ => 0,
    }
}

/// The findings of a stored verdict's JSON (see [`findings_of`]); `None` when it does not
/// parse. Read from the whole object, as the verdict was when it was stored (a key given twice
/// counts as its last), so that a rebuild of the memory finds what the write path found.
pub fn stored_findings(raw_json: &str) -> Option<Vec<Finding>> {
    findings_of(&serde_json::from_str::<Map<String, Value>>(raw_json).ok()?)
}

/// A finding given in a request body (`POST /prs/{n}/findings/check`, a dismissal): an object
/// with `check` (1 to [`MAX_CHECK_BYTES`] bytes, not blank), `summary` (not blank) and
/// optionally `severity` (a string), each of the types a verdict's findings have. What a
/// verdict's finding would be remembered as, it is read as ([`findings_of`]): a summary past
/// [`MAX_SUMMARY_BYTES`] cut to it (its fingerprint is of the whole), a severity trimmed and in
/// ASCII lowercase (`BLOCK` is `block`; one past [`MAX_SEVERITY_BYTES`] is none), so that the
/// auditor may ask about the findings it is about to post, whatever they hold. `field` names
/// it in errors (`findings[3]`).
pub fn request_finding(value: &Value, field: &str) -> Result<Finding, FieldError> {
    let Value::Object(o) = value else {
        return Err(FieldError::expected(
            field,
            "an object with check and summary",
            value,
        ));
    };
    let text = |name: &str, max: usize| -> Result<&str, FieldError> {
        let path = format!("{field}.{name}");
        match o.get(name) {
            None | Some(Value::Null) => Err(FieldError::missing(&path)),
            Some(Value::String(s)) if s.trim().is_empty() => Err(FieldError::new(
                &path,
                format!("{path} must not be blank, got {s:?}"),
            )),
            Some(Value::String(s)) if s.len() > max => Err(FieldError::new(
                &path,
                format!("{path} must be at most {max} bytes, got {}", s.len()),
            )),
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(FieldError::expected(&path, "a string", other)),
        }
    };
    let check = text("check", MAX_CHECK_BYTES)?;
    // The body's limit bounds it; what is kept is cut as a verdict's is.
    let summary = text("summary", usize::MAX)?;
    let severity = match o.get("severity") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => severity_remembered(s),
        Some(other) => {
            return Err(FieldError::expected(
                &format!("{field}.severity"),
                "a string",
                other,
            ));
        }
    };
    Ok(Finding::new(check, &severity, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::text::MAX_TERMS_PER_TEXT;

    /// What a wording costs is linear in its length: a verdict's finding may hold a summary
    /// as long as the body (1 MiB), and its fingerprint and terms are of the whole. At 9f582ca
    /// each number read the summary back to its start (`line 1 1 1 ...` of 900 KB took 111 s
    /// of a release build's CPU in a `POST /verdicts`, and timed out).
    #[test]
    fn a_long_wording_of_many_numbers_costs_its_length() {
        for summary in [
            "line ".to_owned() + &"1 ".repeat(100_000),
            "(1".repeat(100_000),
        ] {
            let start = std::time::Instant::now();
            let finding = Finding::new("c", "warn", &summary);
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "{:?} for {} bytes",
                start.elapsed(),
                summary.len()
            );
            assert!(normalise_summary(&summary).len() <= summary.len());
            assert!(finding.terms.ids.len() + finding.terms.words.len() <= MAX_TERMS_PER_TEXT);
        }
    }

    /// A verdict is stored whole whatever it holds; what the memory takes of it is bounded.
    #[test]
    fn a_verdict_s_findings_are_bounded_in_number_and_size() {
        let entries: Vec<Value> = (0..300)
            .map(|i| serde_json::json!({"check": "static", "summary": format!("finding {i} of write_{i}")}))
            .chain([serde_json::json!({"check": "static", "summary": "é".repeat(10_000)})])
            .collect();
        let mut v = Map::new();
        v.insert("findings".into(), Value::Array(entries));
        let found = findings_of(&v).unwrap();
        assert_eq!(found.len(), MAX_FINDINGS_PER_VERDICT);
        let long = Finding::new("static", "", &"é".repeat(10_000));
        assert_eq!(long.summary.len(), MAX_SUMMARY_BYTES);
        assert_eq!(
            long.fingerprint,
            Fingerprint::of("static", &"é".repeat(10_000))
        );
        let many_words = format!("{} write_all", "word ".repeat(10_000));
        let terms = FindingTerms::of(&many_words);
        assert!(terms.words.len() + terms.ids.len() <= MAX_TERMS_PER_TEXT);
    }

    /// One finding given twice in an audit (one fingerprint) is remembered once, in its first
    /// wording, with the gravest severity either gave, in whichever order.
    #[test]
    fn a_finding_given_twice_in_an_audit_keeps_the_graver_severity() {
        let cases = [
            (["warn", "block"], "block"),
            (["block", "warn"], "block"),
            (["", "info"], "info"),
            (["info", "high"], "info"),
            (["WARN", " Block "], "block"),
        ];
        for (given, kept) in cases {
            let v: Map<String, Value> = serde_json::from_value(serde_json::json!({"findings": [
                {"check": "security", "severity": given[0], "summary": "SQL built from input"},
                {"check": "security", "severity": given[1], "summary": "SQL built from input."},
            ]}))
            .unwrap();
            let found = findings_of(&v).unwrap();
            let got: Vec<(&str, &str)> = found
                .iter()
                .map(|f| (f.summary.as_str(), f.severity.as_str()))
                .collect();
            assert_eq!(got, [("SQL built from input", kept)], "{given:?}");
        }
    }

    #[test]
    fn verdict_findings_are_read_leniently_and_request_findings_strictly() {
        let v: Map<String, Value> = serde_json::from_str(
            r#"{"findings":[{"check":"static","severity":"info","summary":"diff touches docs/PLAN.md"},
                3, {"check":"static"}, {"check":" ","summary":"x"},
                {"check":"static","severity":"info","summary":"Diff touches docs/PLAN.md."},
                {"check":"tests","severity":7,"summary":"no test for the retry path"}]}"#,
        )
        .unwrap();
        let found = findings_of(&v).unwrap();
        let summaries: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.summary.as_str(), f.severity.as_str()))
            .collect();
        assert_eq!(
            summaries,
            [
                ("diff touches docs/PLAN.md", "info"),
                ("no test for the retry path", "")
            ]
        );
        // Findings that are not an array, or none given, say nothing; an empty list says the
        // audit found none.
        assert_eq!(stored_findings(r#"{"findings":"none"}"#), None);
        assert_eq!(stored_findings(r#"{"overall":"block"}"#), None);
        assert_eq!(stored_findings(r#"{"findings":null}"#), None);
        assert_eq!(stored_findings(r#"{"findings":[]}"#), Some(Vec::new()));
        // An array of which nothing reads as a finding says nothing either.
        assert_eq!(stored_findings(r#"{"findings":[3]}"#), None);
        assert_eq!(
            stored_findings(r#"{"findings":[{"rule":"x","message":"y"}]}"#),
            None
        );
        // A key given twice counts as its last, as when the verdict was parsed.
        let twice = r#"{"findings":[{"check":"a","summary":"first"}],"findings":[{"check":"b","summary":"last"}]}"#;
        let parsed: Map<String, Value> = serde_json::from_str(twice).unwrap();
        assert_eq!(stored_findings(twice), findings_of(&parsed));
        assert_eq!(stored_findings(twice).unwrap()[0].summary, "last");
        assert_eq!(stored_findings("not json"), None);

        let err = |v: Value| request_finding(&v, "findings[2]").unwrap_err();
        let e = err(serde_json::json!({"check": "static"}));
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("findings[2].summary", "findings[2].summary is required")
        );
        let e = err(serde_json::json!({"check": "static", "summary": "x", "severity": 3}));
        assert_eq!(e.message, "findings[2].severity must be a string, got 3");
        // As a verdict's finding is remembered.
        let read = |v: Value| request_finding(&v, "findings[2]").unwrap();
        let given = serde_json::json!({"check": "static", "summary": "x", "severity": " BLOCK "});
        assert_eq!(read(given).severity, "block");
        let given = serde_json::json!({"check": "static", "summary": "x", "severity": "high"});
        assert_eq!(read(given).severity, "high");
        let long = "é".repeat(3_000);
        let given = serde_json::json!({"check": "static", "summary": long});
        let finding = read(given);
        assert_eq!(finding.summary.len(), MAX_SUMMARY_BYTES);
        assert_eq!(finding.fingerprint, Fingerprint::of("static", &long));
        let e = err(serde_json::json!({"check": "", "summary": "x"}));
        assert_eq!(e.message, "findings[2].check must not be blank, got \"\"");
        let e = err(serde_json::json!("x"));
        assert_eq!(e.field, "findings[2]");
    }
}
