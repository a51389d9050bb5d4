//! `GET /prs/{pr_number}/history`: every prior audit of a PR across its heads, newest first,
//! with the Phase B finding sentence. One prefix range of the sig_hash index.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::query::{self, Params, PathParam};
use super::{ApiError, AppState};
use crate::model::verdict::{MAX_SAFE_INTEGER, prior_audits_finding};
use crate::store::VerdictEntry;

#[derive(Serialize)]
pub struct History {
    pr_number: u64,
    count: usize,
    by_overall: BTreeMap<String, usize>,
    finding: String,
    audits: Vec<Audit>,
}

#[derive(Serialize)]
struct Audit {
    sig_hash: String,
    head_sha: String,
    overall: String,
    one_liner: String,
    audited_at: String,
    findings: Findings,
    elapsed_secs: f64,
    seq: u64,
}

#[derive(Serialize)]
struct Findings {
    block: u64,
    warn: u64,
    info: Option<u64>,
}

impl From<VerdictEntry> for Audit {
    fn from(entry: VerdictEntry) -> Audit {
        let v = entry.value;
        Audit {
            sig_hash: entry.sig_hash,
            head_sha: v.head_sha,
            overall: v.overall,
            one_liner: v.one_liner,
            audited_at: v.audited_at,
            findings: Findings {
                block: v.findings_block,
                warn: v.findings_warn,
                info: v.findings_info,
            },
            elapsed_secs: v.audit_duration_ms.unwrap_or(0.0) / 1000.0,
            seq: entry.seq,
        }
    }
}

/// `count`, `by_overall` and `finding` cover every prior audit; `audits` holds the newest
/// `limit` of them. `exclude_sha` (8+ hex digits, a prefix of the full sha) leaves out the head
/// being audited now.
pub async fn history(
    State(state): State<AppState>,
    PathParam(pr_number): PathParam,
    params: Params,
) -> Result<Json<History>, ApiError> {
    let pr_number = match pr_number.parse::<u64>() {
        Ok(n) if n <= MAX_SAFE_INTEGER => n,
        _ => {
            return Err(ApiError::bad_request(
                "pr_number",
                format!("pr_number must be a non-negative integer, got {pr_number:?}"),
            ));
        }
    };
    let limit = query::limit(params.limit.as_deref())?;
    let exclude = match params.exclude_sha.as_deref() {
        None | Some("") => None,
        Some(sha) if sha.len() >= 8 && sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(sha.to_ascii_lowercase())
        }
        Some(sha) => {
            return Err(ApiError::bad_request(
                "exclude_sha",
                format!("exclude_sha must be at least 8 hex digits, got {sha:?}"),
            ));
        }
    };
    let mut audits = query::read(&state, move |store| store.pr_verdicts(pr_number)).await?;
    if let Some(exclude) = &exclude {
        audits.retain(|a| {
            !a.value
                .head_sha
                .to_ascii_lowercase()
                .starts_with(exclude.as_str())
        });
    }
    let overalls: Vec<&str> = audits.iter().map(|a| a.value.overall.as_str()).collect();
    let last_reason = audits.last().map_or("", |a| a.value.one_liner.as_str());
    let finding = prior_audits_finding(&overalls, last_reason);
    let mut by_overall = BTreeMap::new();
    for overall in &overalls {
        *by_overall.entry((*overall).to_owned()).or_default() += 1;
    }
    let count = audits.len();
    let newest: Vec<Audit> = audits
        .into_iter()
        .rev()
        .take(limit)
        .map(Audit::from)
        .collect();
    Ok(Json(History {
        pr_number,
        count,
        by_overall,
        finding,
        audits: newest,
    }))
}
