//! The auditor's verdict (contract §1): typed known fields, the whole original JSON kept, the
//! validation rules, and the two legacy records a verdict used to produce — the KB outcome row
//! of `appendVerdictToKbOutcomes` (§2) and the observer payload of `indexVerdictToObserver` (§4).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::claims::{Claim, claims_of, claims_of_history};
use super::event::{ObservedOp, OpLine, Source, Text};
use super::finding::{Finding, findings_of};
use super::repo::Repo;
use super::{FieldError, JsField, describe, js_field, parse_kept};
use crate::jsjson::ObjectWriter;

/// Largest integer JavaScript represents exactly; beyond it the legacy writers printed rounded
/// or exponent forms, so such a pr_number cannot be a key.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Overall {
    Approve,
    RequestChanges,
    Block,
}

impl Overall {
    pub const ALL: [Overall; 3] = [Overall::Approve, Overall::RequestChanges, Overall::Block];

    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Approve => "approve",
            Overall::RequestChanges => "request_changes",
            Overall::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Overall> {
        Overall::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// Where a verdict document comes from, for the rules that differ.
#[derive(Clone, Copy)]
enum Origin {
    /// A request: too many claims is refused.
    Request,
    /// History (a legacy file): too many claims are kept, the first indexed.
    History,
}

/// A validated verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub pr_number: u64,
    pub head_sha: String,
    pub audited_at: String,
    pub overall: Overall,
    pub one_liner: String,
    pub findings_block: u64,
    pub findings_warn: u64,
    pub findings_info: JsField<u64>,
    pub audit_duration_ms: JsField<f64>,
    pub claims: Vec<Claim>,
    /// The findings the findings memory remembers of it (read leniently: see
    /// `finding::findings_of`); `None` when it carries no `findings` array.
    pub findings: Option<Vec<Finding>>,
    /// The repository the PR belongs to (the default namespace when the verdict names none).
    pub repo: Repo,
    /// The verdict exactly as it arrived (surrounding whitespace trimmed): unknown fields and
    /// key order survive.
    pub raw_json: String,
}

impl Verdict {
    /// Parses and validates one verdict JSON document.
    pub fn parse(text: &str) -> Result<Verdict, FieldError> {
        let (text, obj) = parse_kept(text)?;
        let (verdict, _) = Verdict::from_object(&obj, text.into_owned(), Origin::Request)?;
        Ok(verdict)
    }

    /// [`Verdict::parse`] for history (a legacy verdict file): a verdict with more than
    /// [`MAX_CLAIMS`](super::claims::MAX_CLAIMS) distinct claims is not refused but keeps them
    /// all in its JSON and indexes the first ones; true when it had more.
    pub fn parse_history(text: &str) -> Result<(Verdict, bool), FieldError> {
        let (text, obj) = parse_kept(text)?;
        Verdict::from_object(&obj, text.into_owned(), Origin::History)
    }

    /// Validates an already parsed verdict object whose source text is `raw_json`; true when
    /// its origin let it hold more claims than are indexed.
    fn from_object(
        obj: &Map<String, Value>,
        raw_json: String,
        origin: Origin,
    ) -> Result<(Verdict, bool), FieldError> {
        let pr_number = required_count(obj, "pr_number")?;
        let head_sha = match required(obj, "head_sha")? {
            Value::String(s) if is_head_sha(s) => s.clone(),
            other => {
                return Err(FieldError::expected(
                    "head_sha",
                    "a string of 8 to 64 hex digits",
                    other,
                ));
            }
        };
        let audited_at = match required(obj, "audited_at")? {
            Value::String(s) if !s.is_empty() && s.len() <= super::MAX_KEY_BYTES => s.clone(),
            other => {
                return Err(FieldError::expected(
                    "audited_at",
                    &format!(
                        "a non-empty string of at most {} bytes",
                        super::MAX_KEY_BYTES
                    ),
                    other,
                ));
            }
        };
        let overall = match required(obj, "overall")? {
            Value::String(s) => Overall::parse(s),
            _ => None,
        }
        .ok_or_else(|| {
            FieldError::expected(
                "overall",
                "one of approve, request_changes, block",
                &obj["overall"],
            )
        })?;
        let one_liner = match required(obj, "one_liner")? {
            Value::String(s) => s.clone(),
            other => return Err(FieldError::expected("one_liner", "a string", other)),
        };
        let metrics = match required(obj, "metrics")? {
            Value::Object(m) => m,
            other => return Err(FieldError::expected("metrics", "an object", other)),
        };
        let findings_block = required_count(metrics, "metrics.findings_block")?;
        let findings_warn = required_count(metrics, "metrics.findings_warn")?;
        let findings_info = match js_field(metrics, "findings_info") {
            JsField::Absent => JsField::Absent,
            JsField::Null => JsField::Null,
            JsField::Value(v) => JsField::Value(count(v, "metrics.findings_info")?),
        };
        let audit_duration_ms = match js_field(metrics, "audit_duration_ms") {
            JsField::Absent => JsField::Absent,
            JsField::Null => JsField::Null,
            JsField::Value(v) => match v.as_f64() {
                Some(ms) if ms >= 0.0 && ms.is_finite() => JsField::Value(ms),
                _ => {
                    return Err(FieldError::expected(
                        "metrics.audit_duration_ms",
                        "a non-negative number",
                        v,
                    ));
                }
            },
        };
        let (claims, more_claims) = match origin {
            Origin::Request => (claims_of(obj)?, false),
            Origin::History => claims_of_history(obj)?,
        };
        let findings = findings_of(obj);
        let repo = Repo::of_object(obj)?;
        let verdict = Verdict {
            pr_number,
            head_sha,
            audited_at,
            overall,
            one_liner,
            findings_block,
            findings_warn,
            findings_info,
            audit_duration_ms,
            claims,
            findings,
            repo,
            raw_json,
        };
        Ok((verdict, more_claims))
    }

    /// `pr{pr_number}-{head_sha[..8]}`, e.g. `pr6-7fe47bab`.
    pub fn sig_hash(&self) -> String {
        sig_hash(self.pr_number, &self.head_sha)
    }

    /// `(audit_duration_ms ?? 0) / 1000`, as the KB row's `elapsed_secs`.
    pub fn elapsed_secs(&self) -> f64 {
        self.audit_fields().elapsed_secs()
    }

    /// The fields its KB row and observer event are written from.
    pub fn audit_fields(&self) -> AuditFields<'_> {
        AuditFields {
            pr_number: self.pr_number,
            head_sha: &self.head_sha,
            audited_at: &self.audited_at,
            overall: self.overall,
            one_liner: &self.one_liner,
            findings_block: self.findings_block,
            findings_warn: self.findings_warn,
            findings_info: self.findings_info,
            audit_duration_ms: self.audit_duration_ms,
            repo: self.repo.name(),
        }
    }

    /// The `kind:"audit"` line `appendVerdictToKbOutcomes` appended for this verdict, without
    /// the trailing newline: `JSON.stringify(row)` with the legacy key order.
    pub fn kb_outcome_line(&self) -> String {
        let mut out = String::with_capacity(320 + self.one_liner.len());
        self.audit_fields().write_kb_outcome_line(&mut out);
        out
    }

    /// The body `indexVerdictToObserver` posted to the observer for this verdict.
    pub fn observer_body(&self) -> String {
        let mut out = String::with_capacity(256 + self.one_liner.len());
        let mut body = ObjectWriter::new(&mut out);
        body.str("source", "auditor")
            .str("event_kind", "audit")
            .bool("ok", self.overall == Overall::Approve)
            .str("sig_hash", &self.sig_hash())
            .uint("pr_number", self.pr_number)
            .str("head_sha", &self.head_sha)
            .str("overall", self.overall.as_str())
            .str("one_liner", &self.one_liner)
            .uint("findings_block", self.findings_block)
            .uint("findings_warn", self.findings_warn);
        match self.audit_duration_ms {
            JsField::Absent => {}
            JsField::Null => {
                body.null("audit_duration_ms");
            }
            JsField::Value(ms) => {
                body.num("audit_duration_ms", ms);
            }
        }
        body.str("audited_at", &self.audited_at);
        if let Some(repo) = self.repo.name() {
            body.str("repo", repo);
        }
        body.finish();
        out
    }
}

impl Verdict {
    /// The op the observer makes of [`Verdict::observer_body`] received at `timestamp`, built
    /// from the verdict's fields instead of parsing the body (a test holds the two equal): how
    /// the store recomputes a verdict's event without a JSON parse.
    pub fn observed_op(&self, timestamp: String) -> ObservedOp {
        let sig_hash = self.sig_hash();
        self.audit_fields()
            .op_line(&timestamp, &sig_hash)
            .to_op(self.repo.clone())
    }
}

/// `pr{pr_number}-{head_sha[..8]}`; `head_sha` must be validated hex (ASCII) of 8+ digits.
/// Built without `format!`: the export writes one per recomputed line.
pub fn sig_hash(pr_number: u64, head_sha: &str) -> String {
    let sha8 = head_sha.get(..8).unwrap_or(head_sha);
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(pr_number);
    let mut sig = String::with_capacity(3 + digits.len() + sha8.len());
    sig.push_str("pr");
    sig.push_str(digits);
    sig.push('-');
    sig.push_str(sha8);
    sig
}

/// The fields a verdict's KB row and observer event are written from, borrowed: from a parsed
/// [`Verdict`] when it is stored, and from a stored verdict's head when the export recomputes
/// its lines (no verdict built, no field copied). One writer serves both, so a line
/// the export recomputes is the line that was compared with the record before a reference to
/// it was stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditFields<'a> {
    pub pr_number: u64,
    pub head_sha: &'a str,
    pub audited_at: &'a str,
    pub overall: Overall,
    pub one_liner: &'a str,
    pub findings_block: u64,
    pub findings_warn: u64,
    pub findings_info: JsField<u64>,
    pub audit_duration_ms: JsField<f64>,
    /// `None` for the default namespace.
    pub repo: Option<&'a str>,
}

impl AuditFields<'_> {
    /// `(audit_duration_ms ?? 0) / 1000`, as the KB row's `elapsed_secs`.
    pub fn elapsed_secs(&self) -> f64 {
        self.audit_duration_ms.value().copied().unwrap_or(0.0) / 1000.0
    }

    /// [`Verdict::kb_outcome_line`], appended to `out`.
    pub fn write_kb_outcome_line(&self, out: &mut String) {
        let mut row = ObjectWriter::new(out);
        row.str("kind", "audit")
            .str("sig_hash", &sig_hash(self.pr_number, self.head_sha))
            .str("audited_at", self.audited_at)
            .uint("pr_number", self.pr_number)
            .str("head_sha", self.head_sha)
            .str("overall", self.overall.as_str())
            .str("one_liner", self.one_liner)
            .uint("ok_events", u64::from(self.overall == Overall::Approve))
            .uint("total_events", 1)
            .with("findings", |out| {
                let mut findings = ObjectWriter::new(out);
                findings
                    .uint("block", self.findings_block)
                    .uint("warn", self.findings_warn);
                match self.findings_info {
                    JsField::Absent => {}
                    JsField::Null => {
                        findings.null("info");
                    }
                    JsField::Value(n) => {
                        findings.uint("info", n);
                    }
                }
                findings.finish();
            })
            .num("elapsed_secs", self.elapsed_secs());
        // A verdict of a named repository says so, last, so that legacy readers (which ignore
        // unknown keys) read the row as before; rows of the default namespace are unchanged.
        if let Some(repo) = self.repo {
            row.str("repo", repo);
        }
        row.finish();
    }

    /// The `ops.jsonl` line of the op [`Verdict::observed_op`] makes received at `timestamp`,
    /// appended to `out`, written as [`ObservedOp::to_line`] writes it without building the op.
    pub fn write_op_line(&self, timestamp: &str, out: &mut String) {
        let sig_hash = sig_hash(self.pr_number, self.head_sha);
        self.op_line(timestamp, &sig_hash).write(out);
    }

    /// The fields of the op the observer makes of this verdict's event received at
    /// `timestamp`: the one place they are said, for the op and for its line.
    fn op_line<'s>(&'s self, timestamp: &'s str, sig_hash: &'s str) -> OpLine<'s> {
        OpLine {
            timestamp: Text::Str(timestamp),
            endpoint: Text::Str(VERDICT_ENDPOINT),
            input_summary: Text::Str(VERDICT_INPUT_SUMMARY),
            success: self.overall == Overall::Approve,
            duration_ms: self.audit_duration_ms.value().copied().unwrap_or(0.0),
            output_summary: Text::Str(self.one_liner),
            error: JsField::Absent,
            source: Source::Auditor,
            staffer_id: JsField::Absent,
            sig_hash: JsField::Value(Text::Str(sig_hash)),
            event_kind: JsField::Value(Text::Str(VERDICT_EVENT_KIND)),
            repo: self.repo,
        }
    }
}

/// The observer's fields for a verdict's event: what it made of a body without them.
const VERDICT_ENDPOINT: &str = "auditor:verdict";
const VERDICT_INPUT_SUMMARY: &str = "audit ?×? in ?, ?";
const VERDICT_EVENT_KIND: &str = "audit";

/// The sentence the auditor's kb_query check emits about a PR's prior audits (Phase B):
/// `prior 3 audits on this PR ended in [approve, block, request_changes], last reason was X.`
/// `total` audits were counted; `newest` holds the overalls of the newest of them, oldest
/// first, and the ones before are summed up front (`[5 earlier, approve, ...]`), so the
/// sentence stays short however long the history. `last_reason` is the newest one_liner, as
/// [`sentence_reason`] gives it.
/// Longest reason, in characters, that [`sentence_reason`] keeps in a sentence for a prompt.
pub const MAX_SENTENCE_REASON_CHARS: usize = 200;

/// What a sentence says for a blank one_liner.
pub const NO_REASON: &str = "(none given)";

/// A verdict's one_liner as a sentence names it: on one line (each run of whitespace, line
/// breaks included, one space), without the full stop the sentence adds, at most
/// [`MAX_SENTENCE_REASON_CHARS`] characters (cut with `…`), and `(none given)` when blank. The
/// stored one_liner is the auditor's own text and is served whole elsewhere; a sentence goes
/// into a prompt as one line.
pub fn sentence_reason(one_liner: &str) -> Cow<'_, str> {
    let trimmed = one_liner.trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    let mut words = trimmed.split_whitespace().peekable();
    if words.peek().is_none() {
        return Cow::Borrowed(NO_REASON);
    }
    let one_line = words.collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_SENTENCE_REASON_CHARS) {
        None if one_line == one_liner => Cow::Borrowed(one_liner),
        None => Cow::Owned(one_line),
        Some((cut, _)) => Cow::Owned(format!("{}…", one_line[..cut].trim_end())),
    }
}

pub fn prior_audits_finding(total: u64, newest: &[&str], last_reason: &str) -> String {
    if total == 0 {
        return "no prior audits on this PR.".to_owned();
    }
    let earlier = total.saturating_sub(newest.len() as u64);
    let mut outcomes = Vec::with_capacity(newest.len() + 1);
    let summary = format!("{earlier} earlier");
    if earlier > 0 {
        outcomes.push(summary.as_str());
    }
    outcomes.extend_from_slice(newest);
    format!(
        "prior {total} audit{} on this PR ended in [{}], last reason was {}.",
        if total == 1 { "" } else { "s" },
        outcomes.join(", "),
        sentence_reason(last_reason)
    )
}

fn is_head_sha(s: &str) -> bool {
    (8..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The member of `obj` that `field` names by its last part (`metrics.findings_block` is the
/// metrics object's `findings_block`), present and not null; an error names the whole `field`.
fn required<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a Value, FieldError> {
    let key = field.rsplit('.').next().unwrap_or(field);
    match obj.get(key) {
        None | Some(Value::Null) => Err(FieldError::missing(field)),
        Some(v) => Ok(v),
    }
}

fn required_count(obj: &Map<String, Value>, field: &str) -> Result<u64, FieldError> {
    count(required(obj, field)?, field)
}

/// A non-negative integer up to 2^53 - 1 (larger ones JavaScript would round, and the KB row
/// would disagree with the verdict); `3.0` is accepted (JavaScript cannot tell it from `3`).
fn count(value: &Value, field: &str) -> Result<u64, FieldError> {
    match value.as_number().and_then(whole_number) {
        Some(n) if n <= MAX_SAFE_INTEGER => Ok(n),
        Some(n) => Err(FieldError::new(
            field,
            format!("{field} must be at most {MAX_SAFE_INTEGER}, got {n}"),
        )),
        None => Err(FieldError::new(
            field,
            format!(
                "{field} must be a non-negative integer, got {}",
                describe(value)
            ),
        )),
    }
}

/// The number as a `u64` when it is a non-negative whole number: an integer that fits, or one
/// written otherwise (`12.0`, `1.2e1`) from 0 to 2^53 - 1, past which a double is not exact.
pub(crate) fn whole_number(n: &serde_json::Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= MAX_SAFE_INTEGER as f64)
            .map(|f| f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = r#"{"pr_number":1,"head_sha":"e9e0d501ff8789cc67d571bd52f177119c19e495","overall":"block","one_liner":"PR claims 'live-verified' with no evidence in diff","findings":[{"check":"static","severity":"info","summary":"diff touches mcp-server/observer.ts"}],"claims":[{"text":"fire-and-forget: failures do not block the Gitea post","source":"commit_message"},{"text":"observer counts auditor events separately","source":"commit_message"}],"metrics":{"findings_block":2,"findings_warn":2,"findings_info":1,"audit_duration_ms":14237},"audited_at":"2026-04-01T09:15:13.330Z"}"#;

    fn with(edit: impl FnOnce(&mut Map<String, Value>)) -> Result<Verdict, FieldError> {
        let mut obj: Map<String, Value> = serde_json::from_str(FIXTURE).unwrap();
        edit(&mut obj);
        let text = serde_json::to_string(&obj).unwrap();
        Verdict::parse(&text)
    }

    fn metrics(obj: &mut Map<String, Value>) -> &mut Map<String, Value> {
        obj.get_mut("metrics").unwrap().as_object_mut().unwrap()
    }

    #[test]
    fn fixture_verdict_produces_the_legacy_row_and_payload() {
        let v = Verdict::parse(FIXTURE).unwrap();
        assert_eq!(v.sig_hash(), "pr1-e9e0d501");
        assert_eq!(v.raw_json, FIXTURE);
        assert_eq!(v.claims.len(), 2);
        // Line 2 of fixtures/legacy/data/_kb/outcomes.jsonl.
        assert_eq!(
            v.kb_outcome_line(),
            r#"{"kind":"audit","sig_hash":"pr1-e9e0d501","audited_at":"2026-04-01T09:15:13.330Z","pr_number":1,"head_sha":"e9e0d501ff8789cc67d571bd52f177119c19e495","overall":"block","one_liner":"PR claims 'live-verified' with no evidence in diff","ok_events":0,"total_events":1,"findings":{"block":2,"warn":2,"info":1},"elapsed_secs":14.237}"#
        );
        // Line 2 of fixtures/legacy/data/_observer/ops.jsonl (stamped with the audit time).
        assert_eq!(
            v.observed_op("2026-04-01T09:15:13.330Z".to_owned())
                .to_line(),
            r#"{"timestamp":"2026-04-01T09:15:13.330Z","endpoint":"auditor:verdict","input_summary":"audit ?×? in ?, ?","success":false,"duration_ms":14237,"output_summary":"PR claims 'live-verified' with no evidence in diff","source":"auditor","sig_hash":"pr1-e9e0d501","event_kind":"audit"}"#
        );
        assert_eq!(
            v.observer_body(),
            r#"{"source":"auditor","event_kind":"audit","ok":false,"sig_hash":"pr1-e9e0d501","pr_number":1,"head_sha":"e9e0d501ff8789cc67d571bd52f177119c19e495","overall":"block","one_liner":"PR claims 'live-verified' with no evidence in diff","findings_block":2,"findings_warn":2,"audit_duration_ms":14237,"audited_at":"2026-04-01T09:15:13.330Z"}"#
        );
    }

    /// The op built from the fields is the op the observer's rules make of the body, for every
    /// shape of the fields it reads.
    #[test]
    fn observed_op_is_what_the_observer_makes_of_the_body() {
        type Edit = fn(&mut Map<String, Value>);
        let cases: [(&str, Edit); 8] = [
            ("fixture", |_| {}),
            ("approve", |o| {
                o.insert("overall".into(), "approve".into());
            }),
            ("no duration", |o| {
                metrics(o).remove("audit_duration_ms");
            }),
            ("null duration", |o| {
                metrics(o).insert("audit_duration_ms".into(), Value::Null);
            }),
            ("fractional duration", |o| {
                metrics(o).insert("audit_duration_ms".into(), serde_json::json!(0.1 + 0.2));
            }),
            ("named repository", |o| {
                o.insert("repo".into(), "gitea:profit/lakehouse".into());
            }),
            ("one-liner to escape", |o| {
                o.insert("one_liner".into(), "quote \" and \u{2028} and é".into());
            }),
            ("empty one-liner", |o| {
                o.insert("one_liner".into(), "".into());
            }),
        ];
        for (name, edit) in cases {
            let v = with(edit).unwrap();
            let timestamp = "2026-04-01T09:15:20.004Z";
            let parsed = super::super::ObservedEvent::parse(&v.observer_body(), timestamp).unwrap();
            assert_eq!(v.observed_op(timestamp.to_owned()), parsed.op, "{name}");
            assert_eq!(parsed.source_original, None, "{name}");
            // The export writes the same line from the fields, without the op.
            let mut line = "kept ".to_owned();
            v.audit_fields().write_op_line(timestamp, &mut line);
            assert_eq!(line, format!("kept {}", parsed.op.to_line()), "{name}");
        }
    }

    #[test]
    fn sig_hash_is_the_legacy_format_whatever_fits() {
        let long = format!("abcdefg{}", "é".repeat(40));
        let cases: [(u64, &str, &str); 4] = [
            (6, "7fe47bab00", "pr6-7fe47bab"),
            (u64::MAX, "7fe47bab", "pr18446744073709551615-7fe47bab"),
            (1, "abc", "pr1-abc"),
            // The 8th byte is inside a character: the whole sha.
            (u64::MAX, &long, &format!("pr18446744073709551615-{long}")),
        ];
        for (pr, sha, expected) in cases {
            assert_eq!(sig_hash(pr, sha), expected);
        }
    }

    #[test]
    fn absent_and_null_optional_metrics_follow_javascript() {
        let v = with(|o| {
            metrics(o).remove("findings_info");
            metrics(o).remove("audit_duration_ms");
        })
        .unwrap();
        let line = v.kb_outcome_line();
        assert!(
            line.ends_with(r#""findings":{"block":2,"warn":2},"elapsed_secs":0}"#),
            "{line}"
        );
        assert!(!v.observer_body().contains("audit_duration_ms"));

        let v = with(|o| {
            metrics(o).insert("findings_info".into(), Value::Null);
            metrics(o).insert("audit_duration_ms".into(), Value::Null);
        })
        .unwrap();
        let line = v.kb_outcome_line();
        assert!(
            line.ends_with(r#""info":null},"elapsed_secs":0}"#),
            "{line}"
        );
        assert!(v.observer_body().contains(r#""audit_duration_ms":null,"#));

        let v = with(|o| {
            metrics(o).insert("audit_duration_ms".into(), 2000.into());
        })
        .unwrap();
        assert!(v.kb_outcome_line().ends_with(r#""elapsed_secs":2}"#));
    }

    /// Sets (or with `None`, removes) `path` ("a" or "a.b") in the fixture, then parses it.
    fn edited(path: &str, value: Option<Value>) -> Result<Verdict, FieldError> {
        with(|o| {
            let (obj, key) = match path.split_once('.') {
                Some((outer, key)) => (o.get_mut(outer).unwrap().as_object_mut().unwrap(), key),
                None => (o, path),
            };
            match value {
                Some(v) => obj.insert(key.to_owned(), v),
                None => obj.remove(key),
            };
        })
    }

    #[test]
    fn bad_fields_are_named() {
        use serde_json::json;
        let cases = [
            (
                "pr_number",
                Some(json!("six")),
                r#"pr_number must be a non-negative integer, got "six""#,
            ),
            (
                "pr_number",
                Some(json!(-1)),
                "pr_number must be a non-negative integer, got -1",
            ),
            (
                "pr_number",
                Some(json!(1.5)),
                "pr_number must be a non-negative integer, got 1.5",
            ),
            (
                "pr_number",
                Some(json!(1u64 << 53)),
                "pr_number must be at most 9007199254740991, got 9007199254740992",
            ),
            (
                "head_sha",
                Some(json!(7)),
                "head_sha must be a string of 8 to 64 hex digits, got 7",
            ),
            (
                "head_sha",
                Some(json!("e9e0d50")),
                r#"head_sha must be a string of 8 to 64 hex digits, got "e9e0d50""#,
            ),
            (
                "head_sha",
                Some(json!("zzzzzzzzzz")),
                r#"head_sha must be a string of 8 to 64 hex digits, got "zzzzzzzzzz""#,
            ),
            (
                "overall",
                Some(json!("maybe")),
                r#"overall must be one of approve, request_changes, block, got "maybe""#,
            ),
            ("audited_at", None, "audited_at is required"),
            (
                "audited_at",
                Some(json!("")),
                r#"audited_at must be a non-empty string of at most 512 bytes, got """#,
            ),
            (
                "audited_at",
                Some(json!("t".repeat(513))),
                &format!(
                    "audited_at must be a non-empty string of at most 512 bytes, got \"{}...",
                    "t".repeat(59)
                ),
            ),
            (
                "one_liner",
                Some(json!([])),
                "one_liner must be a string, got []",
            ),
            ("metrics", None, "metrics is required"),
            (
                "metrics",
                Some(json!(3)),
                "metrics must be an object, got 3",
            ),
            (
                "metrics.findings_warn",
                None,
                "metrics.findings_warn is required",
            ),
            (
                "metrics.findings_block",
                Some(json!(-2)),
                "metrics.findings_block must be a non-negative integer, got -2",
            ),
            (
                "metrics.findings_info",
                Some(json!("1")),
                r#"metrics.findings_info must be a non-negative integer, got "1""#,
            ),
            (
                "metrics.audit_duration_ms",
                Some(json!("fast")),
                r#"metrics.audit_duration_ms must be a non-negative number, got "fast""#,
            ),
            (
                "metrics.audit_duration_ms",
                Some(json!(-5)),
                "metrics.audit_duration_ms must be a non-negative number, got -5",
            ),
        ];
        for (path, value, message) in cases {
            let err = edited(path, value).unwrap_err();
            assert_eq!((err.field.as_str(), err.message.as_str()), (path, message));
        }
    }

    #[test]
    fn not_an_object_or_not_json() {
        assert_eq!(
            Verdict::parse("[1]").unwrap_err().message,
            "body must be a JSON object, got an array"
        );
        assert!(
            Verdict::parse("{")
                .unwrap_err()
                .message
                .starts_with("body is not valid JSON")
        );
        assert_eq!(
            Verdict::parse(r#"{"one_liner":"\ud800"}"#)
                .unwrap_err()
                .field,
            "pr_number",
            "a lone surrogate, which JavaScript writes, is no JSON error"
        );
    }

    /// A one_liner goes into a sentence on one line, without a second full stop, cut to a bound,
    /// and named when blank: at 11cb16f it went in as written (`last reason was .`, `..`, line
    /// breaks, 900 KB past `--max-response`; a review's).
    #[test]
    fn a_reason_goes_into_a_sentence_on_one_bounded_line() {
        let long = "word ".repeat(100);
        let cut = format!("{}…", "word ".repeat(40).trim_end());
        for (one_liner, named) in [
            ("tests cover the new path", "tests cover the new path"),
            ("ends with a period.", "ends with a period"),
            ("two periods..", "two periods"),
            ("", "(none given)"),
            ("  \n\t ", "(none given)"),
            ("first line\n  second\tline ", "first line second line"),
            ("é".repeat(201).as_str(), &format!("{}…", "é".repeat(200))),
            (long.as_str(), cut.as_str()),
        ] {
            assert_eq!(sentence_reason(one_liner), named, "{one_liner:?}");
        }
        assert_eq!(
            prior_audits_finding(1, &["approve"], "done.\n"),
            "prior 1 audit on this PR ended in [approve], last reason was done."
        );
    }

    #[test]
    fn finding_sentence() {
        assert_eq!(
            prior_audits_finding(3, &["approve", "block", "request_changes"], "X"),
            "prior 3 audits on this PR ended in [approve, block, request_changes], last reason was X."
        );
        assert_eq!(
            prior_audits_finding(1, &["block"], "tests missing"),
            "prior 1 audit on this PR ended in [block], last reason was tests missing."
        );
        assert_eq!(
            prior_audits_finding(0, &[], ""),
            "no prior audits on this PR."
        );
        assert_eq!(
            prior_audits_finding(25, &["approve", "block"], "Y"),
            "prior 25 audits on this PR ended in [23 earlier, approve, block], last reason was Y."
        );
    }

    #[test]
    fn integral_float_pr_number_is_accepted() {
        let v = with(|o| {
            o.insert("pr_number".into(), serde_json::json!(6.0));
        })
        .unwrap();
        assert_eq!(v.sig_hash(), "pr6-e9e0d501");
    }
}
