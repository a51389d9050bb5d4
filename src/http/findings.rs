//! The findings memory over HTTP: `GET /prs/{n}/findings` (a PR's remembered findings, open or
//! resolved, paged), `POST /prs/{n}/findings/check` (what the auditor asks before it posts a
//! review: for each finding, new, repeat, reopened or dismissed, and which tier matched; a
//! read), and the dismissals: `POST /findings/dismissals`, `GET /findings/dismissals`,
//! `DELETE /findings/dismissals/{id}` (writes through the group-commit writer).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::ingest::{self, IdempotencyKey, IngestBody, KeyRoute};
use super::page::{self, JsonList};
use super::prs::pr_number_of as pr_number;
use super::query::NoQuery;
use super::query::{self, Params, PathParam, ReadLimits};
use super::{ApiError, AppState};
use crate::model::finding::{Finding, Fingerprint, Match, request_finding};
use crate::model::verdict::MAX_SAFE_INTEGER;
use crate::model::{Repo, describe, iso_timestamp, now_ms, parse_object, utf8};
use crate::store::values::{FindingValue, Sighting, TIER_EXACT, TIER_SIMILAR};
use crate::store::{
    Applied, CheckedFinding, ClientKey, DismissalChange, DismissalEntry, DismissalsQuery,
    FindingEntry, FindingStatus, FindingsCheck, FindingsCursor, FindingsQuery, MAX_LIVE_PER_SCOPE,
    NewDismissal, Put, Record, Written,
};

/// Most findings one check request may carry.
pub const MAX_CHECK_FINDINGS: usize = 200;
/// Longest `reason` of a dismissal.
pub const MAX_REASON_BYTES: usize = 2000;
/// Longest `by` of a dismissal.
pub const MAX_BY_BYTES: usize = 200;

#[derive(Serialize)]
struct Seen {
    head_sha: String,
    audited_at: String,
    seq: u64,
}

impl From<&Sighting> for Seen {
    fn from(s: &Sighting) -> Seen {
        Seen {
            head_sha: s.head_sha.clone(),
            audited_at: s.audited_at.clone(),
            seq: s.seq,
        }
    }
}

/// A remembered finding as the API shows it.
#[derive(Serialize)]
struct Remembered {
    /// The fingerprint it is remembered under: its first wording's.
    fingerprint: String,
    check: String,
    severity: String,
    /// The latest wording.
    summary: String,
    /// `open`: the PR's latest audit raised it; `resolved`: a later audit did not.
    status: &'static str,
    times_raised: u64,
    first_seen: Seen,
    last_seen: Seen,
    /// The distinct heads that raised it, oldest first (the first 64).
    heads: Vec<String>,
    /// How the latest audit that raised it matched it: `new` (it was the first), `exact` or
    /// `similar`.
    last_match: &'static str,
    /// The dismissal that silences it, raised again as its latest wording and severity (what
    /// `POST /prs/{n}/findings/check` would answer): absent when none does.
    #[serde(skip_serializing_if = "Option::is_none")]
    dismissal: Option<AppliedDismissal>,
}

fn tier_name(tier: u8) -> &'static str {
    match tier {
        TIER_EXACT => "exact",
        TIER_SIMILAR => "similar",
        _ => "new",
    }
}

impl Remembered {
    fn of(e: &FindingEntry, dismissal: Option<&Applied>) -> Remembered {
        let v: &FindingValue = &e.value;
        Remembered {
            fingerprint: e.fingerprint.to_string(),
            check: v.check.clone(),
            severity: v.severity.clone(),
            summary: v.summary.clone(),
            status: if e.open { "open" } else { "resolved" },
            times_raised: v.times_raised,
            first_seen: Seen::from(&v.first_seen),
            last_seen: Seen::from(&v.last_seen),
            heads: v.heads.iter().map(|h| h.head_sha.clone()).collect(),
            last_match: tier_name(v.last_tier),
            dismissal: dismissal.map(AppliedDismissal::from),
        }
    }
}

#[derive(Serialize)]
pub struct FindingsList {
    pr_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    repo: Option<String>,
    status: &'static str,
    /// The seq of the PR's latest audit; `null` when it has none.
    latest_seq: Option<u64>,
    count: usize,
    /// `Remembered` findings, within the answer's byte budget (see `page.rs`).
    findings: Box<RawValue>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// `status`: open, resolved or all (absent: all).
fn status_param(raw: Option<&str>) -> Result<FindingStatus, ApiError> {
    match raw {
        None | Some("all") => Ok(FindingStatus::All),
        Some("open") => Ok(FindingStatus::Open),
        Some("resolved") => Ok(FindingStatus::Resolved),
        Some(other) => Err(ApiError::bad_request(
            "status",
            format!("status must be open, resolved or all, got {other:?}"),
        )),
    }
}

/// The findings cursor, `{seq}-{fingerprint}` (what `next_cursor` gave).
fn findings_cursor(raw: Option<&str>) -> Result<Option<FindingsCursor>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let cursor = |seq, fingerprint, as_of: Option<&str>| {
        Some(FindingsCursor {
            seq: query::integer(seq)?,
            fingerprint: Fingerprint::parse(fingerprint)?.0,
            as_of: as_of.map_or(Some(u64::MAX), query::integer)?,
        })
    };
    let parsed = match raw.splitn(4, '-').collect::<Vec<_>>()[..] {
        // Without the PR's latest audit: a cursor given before 2026-12-07.
        [seq, fingerprint] => cursor(seq, fingerprint, None),
        [seq, fingerprint, as_of] => cursor(seq, fingerprint, Some(as_of)),
        _ => None,
    };
    parsed.map(Some).ok_or_else(|| {
        ApiError::bad_request(
            "cursor",
            format!("cursor must be a next_cursor this route gave, got {raw:?}"),
        )
    })
}

/// What stands in a findings page for a finding over `--max-response` alone: its last seq and
/// fingerprint (to dismiss it, or ask for it with a larger budget) and its size.
#[derive(Serialize)]
struct FindingOmitted {
    seq: u64,
    fingerprint: String,
    omitted_bytes: usize,
}

/// What stands in a dismissals page for a dismissal over `--max-response` alone.
#[derive(Serialize)]
struct DismissalOmitted {
    id: u64,
    omitted_bytes: usize,
}

/// `items` as a list answer within `max_bytes` (see `page.rs`): the list, how many items it
/// holds, and the cursor after its last item when the budget cut it. An item over the budget
/// alone is `omitted_of(item, its size)`, a marker that names it.
fn fill<T, C: Copy, I: Serialize, M: Serialize>(
    items: &[T],
    max_bytes: usize,
    cursor_of: impl Fn(&T) -> C,
    item_of: impl Fn(&T) -> I,
    omitted_of: impl Fn(&T, usize) -> M,
) -> Result<(Box<RawValue>, usize, Option<C>), ApiError> {
    let mut list = JsonList::new(max_bytes);
    let mut last = None;
    for t in items {
        if !list.push(&item_of(t), |bytes| omitted_of(t, bytes))? {
            break;
        }
        last = Some(cursor_of(t));
    }
    let cut = list.was_cut().then_some(last).flatten();
    let count = list.len();
    Ok((list.finish()?, count, cut))
}

/// `GET /prs/{pr_number}/findings?repo=&status=open|resolved|all&limit=&cursor=`: the PR's
/// distinct findings, newest last seen first, within `--max-response` bytes (a page cut short
/// for its bytes has a cursor like any other).
pub async fn list(
    State(state): State<AppState>,
    PathParam(raw): PathParam,
    params: Params,
    limits: ReadLimits,
) -> Result<Response, ApiError> {
    params.only(
        &["repo", "status", "limit", "cursor", "dismissals"],
        "GET /prs/{pr_number}/findings",
    )?;
    // Asked for: it reads every dismissal that applies to the PR, which the list alone does
    // not (10x its time beside 600 of them, a benchmark of the first version found).
    let with_dismissals = query::flag("dismissals", params.dismissals.as_deref())?;
    let pr_number = pr_number(&raw)?;
    let repo = query::repo(params.repo.as_deref())?;
    let status = status_param(params.status.as_deref())?;
    let limit = query::limit(params.limit.as_deref())?;
    let below = findings_cursor(params.cursor.as_deref())?;
    let q = FindingsQuery {
        repo: repo.clone(),
        pr_number,
        status,
        below,
        limit,
    };
    // The answer is made by the read, on its thread and in its slots (`page::json_response`).
    let (answer, _) = query::read_within(&state, limits, move |store, budget| {
        let found = store.pr_findings(&q, budget)?;
        // Which dismissal silences each, as a check of the page's findings would say.
        let silencing = if with_dismissals {
            let check = FindingsCheck {
                repo: q.repo.clone(),
                pr_number,
                findings: found
                    .items
                    .iter()
                    .map(|e| Finding::new(&e.value.check, &e.value.severity, &e.value.summary))
                    .collect(),
            };
            store.silencing_dismissals(&check, budget)?
        } else {
            vec![None; found.items.len()]
        };
        let items: Vec<(&FindingEntry, Option<&Applied>)> = found
            .items
            .iter()
            .zip(silencing.iter().map(Option::as_ref))
            .collect();
        let answer = fill(
            &items,
            limits.max_response,
            |(e, _)| found.cursor_after(e),
            |(e, dismissal)| Remembered::of(e, *dismissal),
            |(e, _), omitted_bytes| FindingOmitted {
                seq: e.value.last_seen.seq,
                fingerprint: e.fingerprint.to_string(),
                omitted_bytes,
            },
        )
        .and_then(|(findings, count, cut)| {
            let next = cut.or(found.next);
            page::json_response(&FindingsList {
                pr_number,
                repo: repo.name().map(str::to_owned),
                status: match status {
                    FindingStatus::Open => "open",
                    FindingStatus::Resolved => "resolved",
                    FindingStatus::All => "all",
                },
                latest_seq: found.latest_seq,
                count,
                findings,
                next_cursor: next
                    .map(|c| format!("{}-{}-{}", c.seq, Fingerprint(c.fingerprint), c.as_of)),
            })
        });
        Ok(answer)
    })
    .await?;
    answer
}

/// A dismissal as the API shows it.
#[derive(Serialize)]
struct Dismissal {
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    repo: Option<String>,
    /// `pr`: it applies to `pr_number`; `repo`: to every PR of the repository.
    scope: &'static str,
    pr_number: Option<u64>,
    fingerprint: String,
    /// The finding's check, severity and wording, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
    reason: String,
    by: String,
    created_at: String,
    revoked_at: Option<String>,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl From<&DismissalEntry> for Dismissal {
    fn from(e: &DismissalEntry) -> Dismissal {
        let v = &e.value;
        // A finding the memory knows may have been raised with no severity: its dismissal
        // still says so (`""`), where one of an unknown fingerprint has none.
        let known = !v.check.is_empty() || !v.summary.is_empty();
        Dismissal {
            id: e.id,
            repo: non_empty(&v.repo),
            scope: if v.pr_number.is_some() { "pr" } else { "repo" },
            pr_number: v.pr_number,
            fingerprint: Fingerprint(v.fingerprint).to_string(),
            check: non_empty(&v.check),
            severity: if known {
                Some(v.severity.clone())
            } else {
                non_empty(&v.severity)
            },
            summary: non_empty(&v.summary),
            reason: v.reason.clone(),
            by: v.by.clone(),
            created_at: iso_timestamp(v.created_ms),
            revoked_at: v.revoked_ms.map(iso_timestamp),
        }
    }
}

#[derive(Serialize)]
struct MatchTier {
    /// `exact`: the fingerprint; `similar`: a rewording.
    tier: &'static str,
    /// The fingerprint of the remembered finding it matched (in a dismissal's match: absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    score: f64,
}

#[derive(Serialize)]
struct AppliedDismissal {
    #[serde(flatten)]
    dismissal: Dismissal,
    /// How the dismissal matched the finding.
    #[serde(rename = "match")]
    matched: MatchTier,
}

impl From<&Applied> for AppliedDismissal {
    /// With the dismissed finding's check, severity and wording (when the dismissal knows
    /// them): matched by a rewording, they are not the checked finding's, and the auditor must
    /// see what was dismissed. Each is bounded (200, 32 and 4,096 bytes), so the answer stays
    /// proportional to the request.
    fn from(a: &Applied) -> AppliedDismissal {
        AppliedDismissal {
            dismissal: Dismissal::from(&a.entry),
            matched: MatchTier {
                tier: a.kind.as_str(),
                fingerprint: None,
                score: a.score,
            },
        }
    }
}

/// One finding of a check request, and what the memory says of it.
#[derive(Serialize)]
struct Checked {
    check: String,
    severity: String,
    summary: String,
    /// This wording's fingerprint.
    fingerprint: String,
    /// `new`, `repeat` (the PR's latest audit raised it), `reopened` (raised before, absent
    /// from a later audit) or `dismissed` (a dismissal applies; `dismissal` says which).
    status: &'static str,
    /// The remembered finding it matched, and by which tier; `null` when none.
    #[serde(rename = "match")]
    matched: Option<MatchTier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    times_raised: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_seen: Option<Seen>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<Seen>,
    /// Whether the head being checked already raised it.
    #[serde(skip_serializing_if = "Option::is_none")]
    raised_on_head: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dismissal: Option<AppliedDismissal>,
    /// When no dismissal silences it, the one it resembles below dismissal grade (a rewording
    /// the memory would link, scoring under 0.8 or of the other negation).
    #[serde(skip_serializing_if = "Option::is_none")]
    resembled_dismissal: Option<AppliedDismissal>,
}

#[derive(Serialize, Default)]
struct Counts {
    new: usize,
    repeat: usize,
    reopened: usize,
    dismissed: usize,
}

#[derive(Serialize)]
pub struct CheckAnswer {
    pr_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    repo: Option<String>,
    head_sha: String,
    counts: Counts,
    findings: Vec<Checked>,
}

/// Either sha may be a prefix of the other (both at least 8 hex digits).
fn same_head(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    a.starts_with(&b) || b.starts_with(&a)
}

fn checked(finding: Finding, answer: CheckedFinding, head_sha: &str) -> Checked {
    let status = match (&answer.dismissal, &answer.remembered) {
        (Some(_), _) => "dismissed",
        (None, None) => "new",
        (None, Some(r)) if r.open => "repeat",
        (None, Some(_)) => "reopened",
    };
    let matched = match answer.matched {
        Match::New => None,
        Match::Exact(key) => Some(MatchTier {
            tier: "exact",
            fingerprint: Some(Fingerprint(key).to_string()),
            score: 1.0,
        }),
        Match::Similar(key, score) => Some(MatchTier {
            tier: "similar",
            fingerprint: Some(Fingerprint(key).to_string()),
            score,
        }),
    };
    let r = answer.remembered.as_ref().map(|r| &r.value);
    Checked {
        check: finding.check,
        severity: finding.severity,
        summary: finding.summary,
        fingerprint: finding.fingerprint.to_string(),
        status,
        matched,
        times_raised: r.map(|v| v.times_raised),
        first_seen: r.map(|v| Seen::from(&v.first_seen)),
        last_seen: r.map(|v| Seen::from(&v.last_seen)),
        // The heads kept are the first 64; the latest audit's head is the last seen's.
        raised_on_head: r.map(|v| {
            same_head(&v.last_seen.head_sha, head_sha)
                || v.heads.iter().any(|h| same_head(&h.head_sha, head_sha))
        }),
        dismissal: answer.dismissal.as_ref().map(AppliedDismissal::from),
        resembled_dismissal: answer
            .resembled_dismissal
            .as_ref()
            .map(AppliedDismissal::from),
    }
}

fn json_body(body: IngestBody, route: &str) -> Result<Map<String, Value>, ApiError> {
    let IngestBody::Single(bytes) = body else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "content-type must be application/json for {route}"
        )));
    };
    Ok(parse_object(utf8(&bytes)?)?)
}

/// `POST /prs/{pr_number}/findings/check {repo, head_sha, findings: [{check, severity,
/// summary}]}`: for each finding, what the memory and the dismissals say. Stores nothing.
pub async fn check(
    _: NoQuery,
    State(state): State<AppState>,
    PathParam(raw): PathParam,
    limits: ReadLimits,
    body: IngestBody,
) -> Result<Json<CheckAnswer>, ApiError> {
    let pr_number = pr_number(&raw)?;
    let request = json_body(body, "/prs/{pr_number}/findings/check")?;
    query::refuse_unknown_fields(
        &request,
        &["repo", "head_sha", "findings"],
        "/prs/{pr_number}/findings/check",
    )?;
    let repo = Repo::of_object(&request)?;
    let head_sha = match request.get("head_sha") {
        Some(Value::String(s))
            if (8..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            s.clone()
        }
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request("head_sha", "head_sha is required"));
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                "head_sha",
                format!(
                    "head_sha must be a string of 8 to 64 hex digits, got {}",
                    describe(other)
                ),
            ));
        }
    };
    let items = match request.get("findings") {
        Some(Value::Array(items)) if items.len() <= MAX_CHECK_FINDINGS => items,
        Some(Value::Array(items)) => {
            return Err(ApiError::bad_request(
                "findings",
                format!(
                    "findings may hold at most {MAX_CHECK_FINDINGS} findings, got {}",
                    items.len()
                ),
            ));
        }
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request("findings", "findings is required"));
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                "findings",
                format!("findings must be an array, got {}", describe(other)),
            ));
        }
    };
    let findings = items
        .iter()
        .enumerate()
        .map(|(i, item)| request_finding(item, &format!("findings[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let q = FindingsCheck {
        repo: repo.clone(),
        pr_number,
        findings: findings.clone(),
    };
    let (answers, _) = query::read_within(&state, limits, move |store, budget| {
        store.check_findings(&q, budget)
    })
    .await?;
    let mut counts = Counts::default();
    let findings: Vec<Checked> = findings
        .into_iter()
        .zip(answers)
        .map(|(f, a)| checked(f, a, &head_sha))
        .collect();
    for f in &findings {
        *match f.status {
            "new" => &mut counts.new,
            "repeat" => &mut counts.repeat,
            "reopened" => &mut counts.reopened,
            _ => &mut counts.dismissed,
        } += 1;
    }
    Ok(Json(CheckAnswer {
        pr_number,
        repo: repo.name().map(str::to_owned),
        head_sha,
        counts,
        findings,
    }))
}

/// A required, non-blank string of at most `max` bytes.
fn text_field<'a>(
    request: &'a Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<&'a str, ApiError> {
    match request.get(field) {
        None | Some(Value::Null) => {
            Err(ApiError::bad_request(field, format!("{field} is required")))
        }
        Some(Value::String(s)) if s.trim().is_empty() => Err(ApiError::bad_request(
            field,
            format!("{field} must not be blank, got {s:?}"),
        )),
        Some(Value::String(s)) if s.len() > max => Err(ApiError::bad_request(
            field,
            format!("{field} must be at most {max} bytes, got {}", s.len()),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ApiError::bad_request(
            field,
            format!("{field} must be a string, got {}", describe(other)),
        )),
    }
}

#[derive(Serialize)]
struct Dismissed {
    #[serde(flatten)]
    dismissal: Dismissal,
    /// True when this dismissal was stored before (the same repository, scope and finding, or
    /// the same idempotency key): its first id is answered and nothing new is stored.
    duplicate: bool,
}

/// What a dismissal names.
enum Named {
    Fingerprint(Fingerprint),
    Finding(Finding),
}

/// `POST /findings/dismissals {repo, pr_number?, fingerprint | finding, reason, by, confirm?}`:
/// 201 with the new dismissal; 200 with the first one when the same live dismissal exists. A
/// `block` finding (as given, or as the memory holds it in the scope) needs `"confirm": true`.
pub async fn dismiss(
    _: NoQuery,
    State(state): State<AppState>,
    key: IdempotencyKey,
    limits: ReadLimits,
    body: IngestBody,
) -> Result<Response, ApiError> {
    let IngestBody::Single(bytes) = &body else {
        return Err(ApiError::UnsupportedMediaType(
            "content-type must be application/json for /findings/dismissals".into(),
        ));
    };
    let bytes = bytes.clone();
    let request = json_body(body, "/findings/dismissals")?;
    query::refuse_unknown_fields(
        &request,
        &[
            "repo",
            "pr_number",
            "fingerprint",
            "finding",
            "reason",
            "by",
            "confirm",
        ],
        "/findings/dismissals",
    )?;
    let repo = Repo::of_object(&request)?;
    let pr = match request.get("pr_number") {
        None | Some(Value::Null) => None,
        Some(v) => match query::json_integer(v) {
            Some(n) => Some(n),
            None => {
                return Err(ApiError::bad_request(
                    "pr_number",
                    format!(
                        "pr_number must be a non-negative integer (at most {MAX_SAFE_INTEGER}), \
                         got {}",
                        describe(v)
                    ),
                ));
            }
        },
    };
    let named = match (
        request.get("fingerprint").filter(|v| !v.is_null()),
        request.get("finding").filter(|v| !v.is_null()),
    ) {
        (None, None) => {
            return Err(ApiError::bad_request(
                "fingerprint",
                "fingerprint (16 hex digits) or finding ({check, severity, summary}) is required",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "fingerprint",
                "give fingerprint or finding, not both",
            ));
        }
        (Some(f), None) => {
            Named::Fingerprint(f.as_str().and_then(Fingerprint::parse).ok_or_else(|| {
                ApiError::bad_request(
                    "fingerprint",
                    format!("fingerprint must be 16 hex digits, got {}", describe(f)),
                )
            })?)
        }
        (None, Some(finding)) => Named::Finding(request_finding(finding, "finding")?),
    };
    let reason = text_field(&request, "reason", MAX_REASON_BYTES)?.to_owned();
    let by = text_field(&request, "by", MAX_BY_BYTES)?.to_owned();
    let confirm = match request.get("confirm") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::bad_request(
                "confirm",
                format!("confirm must be a boolean, got {}", describe(other)),
            ));
        }
    };
    let fingerprint = match &named {
        Named::Finding(finding) => finding.fingerprint,
        Named::Fingerprint(fp) => *fp,
    };
    let now = now_ms();
    let client_key = key
        .0
        .as_deref()
        .map(|key| ClientKey::new(KeyRoute::Dismissal.tag(), key, &bytes, now));
    // A retry is answered by its key before the checks below, which read what is stored now:
    // a warn finding dismissed, then raised as block by the next push, made its dismissal's
    // retry a 422 asking for `confirm` although the first attempt had stored it (a review's).
    if let Some(client) = client_key.clone() {
        match query::read(&state, move |store| store.client_key_written(&client)).await? {
            Some(Written::Duplicate { seq }) => return dismissed(&state, seq, true).await,
            Some(Written::KeyReused { seq }) => return Err(ingest::key_reused(seq)),
            _ => {}
        }
    }
    let scope_repo = repo.clone();
    let (known, _) = query::read_within(&state, limits, move |store, budget| {
        store.known_finding(&scope_repo, pr, fingerprint, budget)
    })
    .await?;
    // A block finding as given, or as the memory holds it in the scope (a finding given with
    // a lower severity than it was raised with is still that finding).
    let known_block = known.as_ref().is_some_and(|k| k.block);
    let (check, severity, summary, block) = match named {
        Named::Finding(finding) => {
            let block = finding.severity == "block" || known_block;
            // Confirmed for a block finding, it says so whatever severity it was given with:
            // only such a dismissal silences a finding raised as block (`which_applies`).
            let severity = if block {
                "block".to_owned()
            } else {
                finding.severity
            };
            (finding.check, severity, finding.summary, block)
        }
        // Block in the scope (raised as block in one of its PRs, whatever its latest severity
        // in another): recorded as block, as a finding given is.
        Named::Fingerprint(_) => match known {
            Some(k) if k.block => (k.check, "block".to_owned(), k.summary, true),
            Some(k) => (k.check, k.severity, k.summary, false),
            None => (String::new(), String::new(), String::new(), false),
        },
    };
    if block && !confirm {
        return Err(ApiError::Unprocessable {
            message: format!(
                "finding {fingerprint} is a block finding: dismissing it needs \"confirm\": true"
            ),
            field: "confirm".into(),
        });
    }
    let put = Put {
        record: Record::Dismissal(DismissalChange::New(NewDismissal {
            repo,
            pr_number: pr,
            fingerprint,
            check,
            severity,
            summary,
            reason,
            by,
            created_ms: now,
        })),
        import_key: None,
        client_key,
    };
    let written = single_write(&state, put).await?;
    let (id, duplicate) = match written {
        Written::Stored { seq, .. } => (seq, false),
        Written::Duplicate { seq } => (seq, true),
        Written::KeyReused { seq } => return Err(ingest::key_reused(seq)),
        Written::Refused => {
            return Err(ApiError::Unprocessable {
                message: format!(
                    "this scope already holds {MAX_LIVE_PER_SCOPE} live dismissals, as many as \
                     it may: revoke some first"
                ),
                field: "pr_number".into(),
            });
        }
    };
    dismissed(&state, id, duplicate).await
}

/// The answer to a dismissal stored as `id`: 201, or 200 when it was stored before.
async fn dismissed(state: &AppState, id: u64, duplicate: bool) -> Result<Response, ApiError> {
    let entry = stored_dismissal(state, id).await?;
    let status = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(Dismissed {
            dismissal: Dismissal::from(&entry),
            duplicate,
        }),
    )
        .into_response())
}

async fn single_write(state: &AppState, put: Put) -> Result<Written, ApiError> {
    ingest::submit(state, vec![put])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("the writer answered without a result".into()))
}

async fn stored_dismissal(state: &AppState, id: u64) -> Result<DismissalEntry, ApiError> {
    query::read(state, move |store| store.dismissal(id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dismissal has id {id}")))
}

/// A dismissal id from the path: canonical decimal digits, at most 2^53 - 1.
fn dismissal_id(raw: &str) -> Result<u64, ApiError> {
    let canonical = raw == "0" || !raw.starts_with('0');
    match query::integer(raw) {
        Some(id) if canonical => Ok(id),
        _ => Err(ApiError::bad_request(
            "id",
            format!(
                "id must be a dismissal id (a non-negative integer, at most {MAX_SAFE_INTEGER}), \
                 got {raw:?}"
            ),
        )),
    }
}

#[derive(Serialize)]
pub struct Revoked {
    #[serde(flatten)]
    dismissal: Dismissal,
    /// False when it had been revoked before (nothing changed).
    revoked_now: bool,
}

/// `DELETE /findings/dismissals/{id}`: revokes the dismissal, durably; 200 with it (revoking
/// it again changes nothing and answers the same), 404 when no dismissal has that id. An
/// `Idempotency-Key` is checked as on every write, then not kept, for the same reason.
pub async fn revoke(
    _: NoQuery,
    _key: IdempotencyKey,
    State(state): State<AppState>,
    PathParam(raw): PathParam,
) -> Result<Json<Revoked>, ApiError> {
    let id = dismissal_id(&raw)?;
    // Dismissals are never deleted: one that exists now exists when the writer revokes it.
    stored_dismissal(&state, id).await?;
    let put = Put::from(Record::Dismissal(DismissalChange::Revoke {
        id,
        at_ms: now_ms(),
    }));
    let revoked_now = matches!(single_write(&state, put).await?, Written::Stored { .. });
    let entry = stored_dismissal(&state, id).await?;
    Ok(Json(Revoked {
        dismissal: Dismissal::from(&entry),
        revoked_now,
    }))
}

#[derive(Serialize)]
pub struct DismissalList {
    #[serde(skip_serializing_if = "Option::is_none")]
    repo: Option<String>,
    pr_number: Option<u64>,
    count: usize,
    /// `Dismissal`s, within the answer's byte budget (see `page.rs`).
    dismissals: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// `GET /findings/dismissals?repo=&pr_number=&limit=&cursor=`: the repository's live
/// dismissals, or (with `pr_number`) those that apply to the PR, newest first.
pub async fn list_dismissals(
    State(state): State<AppState>,
    params: Params,
    limits: ReadLimits,
) -> Result<Json<DismissalList>, ApiError> {
    params.only(
        &["repo", "pr_number", "limit", "cursor"],
        "GET /findings/dismissals",
    )?;
    let repo = query::repo(params.repo.as_deref())?;
    // Like every number in a query, an empty pr_number is a 400, not "absent".
    let pr = match params.pr_number.as_deref() {
        None => None,
        Some(raw) => Some(pr_number(raw)?),
    };
    let limit = query::limit(params.limit.as_deref())?;
    // Opaque to clients, as the findings memory's cursors are.
    let below_id = query::cursor("cursor", params.cursor.as_deref()).map_err(|_| {
        ApiError::bad_request(
            "cursor",
            format!(
                "cursor must be a next_cursor this route gave, got {:?}",
                params.cursor.as_deref().unwrap_or_default()
            ),
        )
    })?;
    let q = DismissalsQuery {
        repo: repo.clone(),
        pr_number: pr,
        below_id,
        limit,
    };
    let (page, _) = query::read_within(&state, limits, move |store, budget| {
        store.dismissals_page(&q, budget)
    })
    .await?;
    let (dismissals, count, cut) = fill(
        &page.items,
        limits.max_response,
        |e| e.id,
        |e| Dismissal::from(e),
        |e, omitted_bytes| DismissalOmitted {
            id: e.id,
            omitted_bytes,
        },
    )?;
    let next = cut.or_else(|| {
        if page.more {
            page.items.last().map(|e| e.id)
        } else {
            None
        }
    });
    let next_cursor = next.map(|id| id.to_string());
    Ok(Json(DismissalList {
        repo: repo.name().map(str::to_owned),
        pr_number: pr,
        count,
        dismissals,
        next_cursor,
    }))
}
