//! `POST /neighbors`: prior verdicts whose claims equal or resemble a query's (Phase C/F), best
//! first, each with the matches that explain it, and a `context` sentence ready for the
//! auditor's prompt. Exact matches (the same normalised claim) score 1, similar ones their
//! BM25 relevance relative to the query claim's own, in (0, 1); a neighbour's score is the sum
//! over query claims of their best match (`store/text_index.rs`). The same request always gets
//! byte-identical JSON.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value};

use super::ingest::IngestBody;
use super::page::{self, Entry};
use super::query::{self, DEFAULT_LIMIT, MAX_LIMIT, NoQuery, ReadLimits};
use super::{ApiError, AppState};
use crate::model::claims::{Claim, MAX_CLAIMS};
use crate::model::verdict::{MAX_SAFE_INTEGER, NO_REASON, sentence_reason};
use crate::model::{ClaimHash, Repo, describe, parse_object, utf8};
use crate::store::{NeighborHit, NeighborQuery};

pub use crate::model::text::DEFAULT_MIN_SCORE;

/// Neighbours the context sentence names.
const CONTEXT_NEIGHBORS: usize = 5;

#[derive(Serialize)]
pub struct Neighbors {
    count: usize,
    /// Present (true) when the byte budget (`--max-response`) cut the list short.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    /// `Found`s, within the answer's byte budget (see `page.rs`).
    neighbors: Box<serde_json::value::RawValue>,
    /// A sentence for the auditor's prompt: the best neighbours and how they ended.
    context: String,
}

#[derive(Serialize)]
struct Found {
    pr_number: u64,
    /// The neighbour's repository; `null` for the default namespace.
    repo: Option<String>,
    sig_hash: String,
    seq: u64,
    head_sha: String,
    overall: String,
    one_liner: String,
    audited_at: String,
    score: f64,
    matches: Vec<Match>,
    /// The exact matches' claim hashes and texts (the answer's shape before similar claims).
    shared_count: usize,
    shared: Vec<SharedClaim>,
}

#[derive(Serialize)]
struct Match {
    /// The query claim: its text, or its hash when it was given as a hash.
    query: String,
    /// The stored claim that matched it best: its text, or its hash when it has none.
    claim: String,
    kind: &'static str,
    score: f64,
    /// Index terms the two share (empty for an exact match).
    terms: Vec<String>,
    /// Present (true) when the stored claim says the opposite of the query claim; its score
    /// is then half the similarity's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    opposed: bool,
}

#[derive(Serialize)]
struct SharedClaim {
    claim_hash: String,
    text: Option<String>,
}

/// The body: `{"claims": [...], "claim_hashes": [...], "repo": "...", "all_repos": false,
/// "exclude_pr": N, "limit": K, "min_score": S}`; claims are strings or objects with a string
/// `text`, hashes are 16 hex digits (see `model/claims.rs`).
pub async fn post(
    _: NoQuery,
    State(state): State<AppState>,
    limits: ReadLimits,
    body: IngestBody,
) -> Result<Json<Neighbors>, ApiError> {
    let IngestBody::Single(bytes) = body else {
        return Err(ApiError::UnsupportedMediaType(
            "content-type must be application/json for /neighbors".into(),
        ));
    };
    let request = parse_object(utf8(&bytes)?)?;
    query::refuse_unknown_fields(
        &request,
        &[
            "claims",
            "claim_hashes",
            "repo",
            "all_repos",
            "exclude_pr",
            "limit",
            "min_score",
        ],
        "/neighbors",
    )?;
    let claims = query_claims(&request)?;
    let repo = Repo::of_object(&request)?;
    let all_repos = match request.get("all_repos") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::bad_request(
                "all_repos",
                format!("all_repos must be a boolean, got {}", describe(other)),
            ));
        }
    };
    let exclude_pr = match request.get("exclude_pr") {
        None | Some(Value::Null) => None,
        Some(v) => match query::json_integer(v) {
            Some(n) => Some(n),
            None => {
                return Err(ApiError::bad_request(
                    "exclude_pr",
                    format!(
                        "exclude_pr must be a non-negative integer (at most {MAX_SAFE_INTEGER}), \
                         got {}",
                        describe(v)
                    ),
                ));
            }
        },
    };
    let limit = match request.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(v) => match query::json_integer(v) {
            Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
            _ => {
                return Err(ApiError::bad_request(
                    "limit",
                    format!(
                        "limit must be an integer from 1 to {MAX_LIMIT}, got {}",
                        describe(v)
                    ),
                ));
            }
        },
    };
    let min_score = match request.get("min_score") {
        None | Some(Value::Null) => DEFAULT_MIN_SCORE,
        Some(v) => match v.as_f64() {
            Some(s) if (0.0..=1.0).contains(&s) => s,
            _ => return Err(bad_min_score(&describe(v))),
        },
    };
    let q = NeighborQuery {
        claims,
        repo,
        all_repos,
        exclude_pr,
        limit,
        min_score,
    };
    answer(&state, limits, q).await
}

fn bad_min_score(got: &str) -> ApiError {
    ApiError::bad_request(
        "min_score",
        format!("min_score must be a number from 0 to 1, got {got}"),
    )
}

/// `min_score` as a query parameter.
pub fn min_score_param(raw: Option<&str>) -> Result<f64, ApiError> {
    match raw {
        None => Ok(DEFAULT_MIN_SCORE),
        Some(text) => match text.parse::<f64>() {
            Ok(s) if (0.0..=1.0).contains(&s) => Ok(s),
            _ => Err(bad_min_score(&format!("{text:?}"))),
        },
    }
}

/// A query's claims: every `claims` item a non-blank string or an object with a non-blank
/// string `text`, every `claim_hashes` item 16 hex digits, at most [`MAX_CLAIMS`] items each,
/// at least one claim in all. Repeats (the same normalised text or hash) count once.
fn query_claims(request: &Map<String, Value>) -> Result<Vec<Claim>, ApiError> {
    let items = |field: &str| -> Result<&[Value], ApiError> {
        match request.get(field) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(items)) if items.len() <= MAX_CLAIMS => Ok(items),
            Some(Value::Array(items)) => Err(ApiError::bad_request(
                field,
                format!(
                    "{field} may hold at most {MAX_CLAIMS} items, got {}",
                    items.len()
                ),
            )),
            Some(other) => Err(ApiError::bad_request(
                field,
                format!(
                    "{field} must be an array of {}, got {}",
                    if field == "claims" {
                        "strings or {\"text\": ...} objects"
                    } else {
                        "16-hex-digit strings"
                    },
                    crate::model::json_type(other)
                ),
            )),
        }
    };
    let mut claims: Vec<Claim> = Vec::new();
    let mut push = |claim: Claim| {
        if !claims.iter().any(|c| c.hash == claim.hash) {
            claims.push(claim);
        }
    };
    for (i, item) in items("claims")?.iter().enumerate() {
        let text = match item {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o.get("text").and_then(Value::as_str),
            _ => None,
        };
        let field = format!("claims[{i}]");
        let Some(text) = text else {
            return Err(ApiError::bad_request(
                &field,
                format!(
                    "{field} must be a string or an object with a string text, got {}",
                    describe(item)
                ),
            ));
        };
        let hash = ClaimHash::of_text(text).ok_or_else(|| {
            ApiError::bad_request(&field, format!("{field} must not be blank, got {text:?}"))
        })?;
        push(Claim {
            hash,
            text: Some(text.to_owned()),
        });
    }
    for (i, item) in items("claim_hashes")?.iter().enumerate() {
        let field = format!("claim_hashes[{i}]");
        let hash = item.as_str().and_then(ClaimHash::parse).ok_or_else(|| {
            ApiError::bad_request(
                &field,
                format!("{field} must be 16 hex digits, got {}", describe(item)),
            )
        })?;
        push(Claim { hash, text: None });
    }
    if claims.is_empty() {
        return Err(ApiError::bad_request(
            "claims",
            "claims must not be empty: give claims (strings or {\"text\": ...}) or claim_hashes",
        ));
    }
    Ok(claims)
}

/// Runs `q` within `limits` and answers it.
pub async fn answer(
    state: &AppState,
    limits: ReadLimits,
    q: NeighborQuery,
) -> Result<Json<Neighbors>, ApiError> {
    let home = q.repo.clone();
    let query_texts: Vec<String> = q
        .claims
        .iter()
        .map(|c| c.text.clone().unwrap_or_else(|| c.hash.to_string()))
        .collect();
    let (hits, read_cut) = if q.claims.is_empty() {
        (Vec::new(), false)
    } else {
        // A query first counts its postings, then waits for its share of the postings pool
        // here (`store/postings_pool.rs`), holding no read thread and no slot, so that the
        // queries the pool has room for pass it; then reads and scores them in the same read
        // transaction.
        let q = Arc::new(q);
        let asked = q.clone();
        // At most so many count at once, each holding one of these slots until it has counted:
        // the counting runs on the light reads' threads and never moves to a heavy slot
        // (`query::read_light_within`), so this keeps it to a quarter of those threads, and
        // light reads keep the rest whatever a flood of queries counts.
        let slot = query::slot(state.neighbor_slots()).await?;
        let prepared = query::read_light_within(state, limits, move |store, budget| {
            // Held by the blocking work itself (which holds this closure): a query abandoned
            // by its request keeps its slot until it has stopped.
            let _held = slot;
            store.neighbors_prepare(&asked, budget)
        })
        .await?;
        let share = match prepared.room() {
            Some(room) => Some(state.store.postings_pool().hold(room).await),
            None => None,
        };
        let heavy = prepared.is_heavy();
        let prepared = Arc::new(prepared);
        let (hits, budget) = query::read_within_from(state, limits, heavy, move |store, budget| {
            // Held by the blocking work itself (which holds this closure): a query abandoned
            // by its request keeps its share until it has stopped.
            store.neighbors_search(&q, &prepared, share.as_ref(), budget)
        })
        .await?;
        (hits, budget.was_cut())
    };
    let found: Vec<Found> = hits
        .into_iter()
        .map(|hit| describe_hit(hit, &query_texts))
        .collect();
    let context = context_sentence(&found, &home);
    let (neighbors, count, cut) = page::truncating(found, limits.max_response, |found| Entry {
        seq: found.seq,
        kind: None,
        sig_hash: Some(found.sig_hash.clone()),
        item: found,
    })?;
    Ok(Json(Neighbors {
        count,
        truncated: read_cut || cut,
        neighbors,
        context,
    }))
}

fn describe_hit(hit: NeighborHit, query_texts: &[String]) -> Found {
    let v = hit.value;
    let stored = hit.claims;
    let stored_text = |index: usize| {
        stored.get(index).map_or_else(String::new, |c| {
            c.text.clone().unwrap_or_else(|| c.hash.to_string())
        })
    };
    let mut shared = Vec::new();
    let matches = hit
        .matches
        .into_iter()
        .map(|m| {
            if m.kind == crate::model::text::MatchKind::Exact
                && let Some(claim) = stored.get(m.claim)
            {
                shared.push(SharedClaim {
                    claim_hash: claim.hash.to_string(),
                    text: claim.text.clone(),
                });
            }
            Match {
                query: query_texts.get(m.query).cloned().unwrap_or_default(),
                claim: stored_text(m.claim),
                kind: m.kind.as_str(),
                score: m.score,
                terms: m.terms,
                opposed: m.opposed,
            }
        })
        .collect();
    Found {
        pr_number: v.pr_number,
        repo: (!v.repo.is_empty()).then(|| v.repo.clone()),
        sig_hash: crate::model::verdict::sig_hash(v.pr_number, &v.head_sha),
        seq: hit.seq,
        head_sha: v.head_sha,
        overall: v.overall,
        one_liner: v.one_liner,
        audited_at: v.audited_at,
        score: hit.score,
        matches,
        shared_count: shared.len(),
        shared,
    }
}

/// `similar earlier PRs: #12 request_changes (reason), #7 in gitea:x/y approve (reason).`:
/// the best neighbours, each PR once (how its best-ranked audit ended, and why, as
/// [`sentence_reason`] gives it), a neighbour of another repository than the query's saying
/// which. Neighbours whose every match says the opposite of the query are named apart:
/// `...; claiming the opposite: #3 approve (reason).` (`no similar earlier PRs; claiming the
/// opposite: ...` when they are all there is).
fn context_sentence(neighbors: &[Found], home: &Repo) -> String {
    if neighbors.is_empty() {
        return "no similar earlier PRs.".to_owned();
    }
    let mut seen = Vec::new();
    let (opposed, similar): (Vec<&Found>, Vec<&Found>) = neighbors
        .iter()
        .filter(|n| {
            let pr = (n.repo.as_deref(), n.pr_number);
            let first = !seen.contains(&pr);
            seen.push(pr);
            first
        })
        .take(CONTEXT_NEIGHBORS)
        .partition(|n| n.matches.iter().all(|m| m.opposed));
    let named = |found: Vec<&Found>| -> String {
        let parts: Vec<String> = found
            .into_iter()
            .map(|n| {
                let repo = match n.repo.as_deref() {
                    Some(r) if r != home.as_str() => format!(" in {r}"),
                    None if !home.is_default() => " in the default namespace".to_owned(),
                    _ => String::new(),
                };
                let reason = sentence_reason(&n.one_liner);
                if reason == NO_REASON {
                    // In brackets already.
                    format!("#{}{repo} {} {reason}", n.pr_number, n.overall)
                } else {
                    format!("#{}{repo} {} ({reason})", n.pr_number, n.overall)
                }
            })
            .collect();
        parts.join(", ")
    };
    let mut sentence = if similar.is_empty() {
        "no similar earlier PRs".to_owned()
    } else {
        format!("similar earlier PRs: {}", named(similar))
    };
    if !opposed.is_empty() {
        sentence.push_str("; claiming the opposite: ");
        sentence.push_str(&named(opposed));
    }
    sentence.push('.');
    sentence
}
