//! `GET /prs/{pr_number}/history`: every prior audit of a PR across its heads, newest first,
//! with the Phase B finding sentence. One prefix range of the sig_hash index.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::value::RawValue;

use super::page::{self, Entry};
use super::query::{self, Params, PathParam, ReadLimits};
use super::{ApiError, AppState};
use crate::model::verdict::{MAX_SAFE_INTEGER, prior_audits_finding};
use crate::store::VerdictEntry;

#[derive(Serialize)]
pub struct History {
    pr_number: u64,
    count: usize,
    by_overall: BTreeMap<String, usize>,
    finding: String,
    /// `Audit`s, within the answer's byte budget (see `page.rs`).
    audits: Box<RawValue>,
    /// Present (true) when fewer than `limit` audits are listed because more would pass `--max-response`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
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
    limits: ReadLimits,
) -> Result<Json<History>, ApiError> {
    let pr_number = pr_number_of(&pr_number)?;
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
    let (mut audits, _) = query::read_within(&state, limits, move |store, budget| {
        store.pr_verdicts_within(pr_number, budget)
    })
    .await?;
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
    let newest = audits.into_iter().rev().take(limit);
    let (audits, _, truncated) = page::truncating(newest, limits.max_response, |entry| Entry {
        seq: entry.seq,
        kind: None,
        sig_hash: Some(entry.sig_hash.clone()),
        item: Audit::from(entry),
    })?;
    Ok(Json(History {
        pr_number,
        count,
        by_overall,
        finding,
        truncated,
        audits,
    }))
}

/// A PR number in a path: canonical decimal (no sign, no leading zero: `/prs/01` is not PR 1,
/// so one PR has one URL), at most 2^53 - 1 (what JavaScript's numbers hold exactly).
fn pr_number_of(text: &str) -> Result<u64, ApiError> {
    let refuse = |message: String| Err(ApiError::bad_request("pr_number", message));
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return refuse(format!(
            "pr_number must be a non-negative integer, got {text:?}"
        ));
    }
    if text.len() > 1 && text.starts_with('0') {
        return refuse(format!(
            "pr_number must be written without leading zeros, got {text:?}"
        ));
    }
    match text.parse::<u64>() {
        Ok(n) if n <= MAX_SAFE_INTEGER => Ok(n),
        _ => refuse(format!(
            "pr_number is too large: at most {MAX_SAFE_INTEGER}, got {text}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::pr_number_of;

    #[test]
    fn pr_numbers_are_canonical_decimal() {
        assert_eq!(pr_number_of("0"), Ok(0));
        assert_eq!(pr_number_of("17"), Ok(17));
        assert_eq!(pr_number_of("9007199254740991"), Ok(9_007_199_254_740_991));
        for text in ["", "+1", "-1", "01", "00", "1.0", "1e3", " 1", "x"] {
            assert!(pr_number_of(text).is_err(), "{text:?}");
        }
        for text in ["9007199254740992", "99999999999999999999999"] {
            let error = format!("{:?}", pr_number_of(text).unwrap_err());
            assert!(
                error.contains("too large: at most 9007199254740991"),
                "{error}"
            );
        }
    }
}
