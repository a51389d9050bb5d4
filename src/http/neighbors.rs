//! `POST /neighbors`: prior verdicts that share claims with a query (Phase C/F), ranked by the
//! number of shared claims, then by recency. One range of the claims index per claim.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::ingest::IngestBody;
use super::page::{self, Entry};
use super::query::{self, DEFAULT_LIMIT, MAX_LIMIT, ReadLimits};
use super::{ApiError, AppState};
use crate::model::claims::claims_of;
use crate::model::verdict::MAX_SAFE_INTEGER;
use crate::model::{ClaimHash, describe, parse_object, utf8};
use crate::store::Neighbor;

#[derive(Serialize)]
pub struct Neighbors {
    count: usize,
    /// `Found`s, within the answer's byte budget (see `page.rs`).
    neighbors: Box<RawValue>,
    /// Present (true) when fewer than `limit` neighbours are listed because more would pass
    /// `--max-response` (the route has no cursor: ask for fewer claims or a smaller limit).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

#[derive(Serialize)]
struct Found {
    sig_hash: String,
    seq: u64,
    pr_number: u64,
    head_sha: String,
    overall: String,
    one_liner: String,
    audited_at: String,
    shared_count: usize,
    shared: Vec<SharedClaim>,
}

#[derive(Serialize)]
struct SharedClaim {
    claim_hash: String,
    text: Option<String>,
}

/// The body: `{"claims": [...], "claim_hashes": [...], "exclude_pr": N, "limit": K}`; claims are
/// strings or objects with a string `text`, hashes are 16 hex digits (see `model/claims.rs`).
pub async fn post(
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
    // A verdict's `claims` of another shape are the auditor's business; a query's must be a list.
    match request.get("claims") {
        None | Some(Value::Null | Value::Array(_)) => {}
        Some(other) => {
            return Err(ApiError::bad_request(
                "claims",
                format!(
                    "claims must be an array of strings or {{\"text\": ...}} objects, got {}",
                    crate::model::json_type(other)
                ),
            ));
        }
    }
    let claims = claims_of(&request)?;
    if claims.is_empty() {
        return Err(ApiError::bad_request(
            "claims",
            "claims must not be empty: give claims (strings or {\"text\": ...}) or claim_hashes",
        ));
    }
    let exclude_pr = match request.get("exclude_pr") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_SAFE_INTEGER => Some(n),
            _ => {
                return Err(ApiError::bad_request(
                    "exclude_pr",
                    format!(
                        "exclude_pr must be a non-negative integer, got {}",
                        describe(v)
                    ),
                ));
            }
        },
    };
    let limit = match request.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(v) => match v.as_u64() {
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
    let query_texts: HashMap<ClaimHash, String> = claims
        .iter()
        .filter_map(|c| Some((c.hash, c.text.clone()?)))
        .collect();
    let hashes: Vec<ClaimHash> = claims.iter().map(|c| c.hash).collect();
    let (found, budget) = query::read_within(&state, limits, move |store, budget| {
        store.neighbors_within(&hashes, exclude_pr, limit, budget)
    })
    .await?;
    let (neighbors, count, cut) = page::truncating(found, limits.max_response, |neighbor| Entry {
        seq: neighbor.verdict.seq,
        kind: None,
        sig_hash: Some(neighbor.verdict.sig_hash.clone()),
        item: describe_neighbor(neighbor, &query_texts),
    })?;
    Ok(Json(Neighbors {
        count,
        truncated: budget.was_cut() || cut,
        neighbors,
    }))
}

/// A neighbour with the text of each shared claim: as the prior verdict worded it, else as the
/// query did.
fn describe_neighbor(neighbor: Neighbor, query_texts: &HashMap<ClaimHash, String>) -> Found {
    let v = neighbor.verdict.value;
    let own_texts: HashMap<ClaimHash, String> = serde_json::from_str(&v.raw_json)
        .ok()
        .and_then(|obj| claims_of(&obj).ok())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| Some((c.hash, c.text?)))
        .collect();
    let shared: Vec<SharedClaim> = neighbor
        .shared
        .iter()
        .map(|hash| SharedClaim {
            claim_hash: hash.to_string(),
            text: own_texts
                .get(hash)
                .or_else(|| query_texts.get(hash))
                .cloned(),
        })
        .collect();
    Found {
        sig_hash: neighbor.verdict.sig_hash,
        seq: neighbor.verdict.seq,
        pr_number: v.pr_number,
        head_sha: v.head_sha,
        overall: v.overall,
        one_liner: v.one_liner,
        audited_at: v.audited_at,
        shared_count: shared.len(),
        shared,
    }
}
