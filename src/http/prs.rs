//! `GET /prs/{pr_number}/history`: a PR's prior audits across its heads, newest first and
//! paged, with counts by overall, the Phase B finding sentence and how many of the latest
//! audit's findings repeat earlier heads; and
//! `GET /prs/{pr_number}/neighbors`: the neighbours of the PR's latest audit's claims, the one
//! call the auditor makes for its prompt. Both within one repository (`?repo=`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::neighbors::{self, Neighbors};
use super::page::{self, Entry};
use super::query::{self, Params, PathParam, ReadLimits};
use super::{ApiError, AppState};
use crate::model::Overall;
use crate::model::claims::stored_claims;
use crate::model::verdict::{MAX_SAFE_INTEGER, prior_audits_finding};
use crate::store::{AuditEntry, HistoryQuery, NeighborQuery, Page};

#[derive(Serialize)]
pub struct History {
    pr_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    repo: Option<String>,
    count: u64,
    by_overall: BTreeMap<&'static str, u64>,
    finding: String,
    /// The latest audit's findings in the findings memory, and how many of them an audit of
    /// an earlier head raised; absent when the PR has no audit.
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_audit_findings: Option<LatestFindings>,
    /// `Audit`s, within the answer's byte budget (see `page.rs`).
    audits: Box<serde_json::value::RawValue>,
    /// Pass as `before_seq` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before_seq: Option<u64>,
}

#[derive(Serialize)]
struct LatestFindings {
    seq: u64,
    raised: u64,
    repeat_earlier_heads: u64,
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

impl From<AuditEntry> for Audit {
    fn from(v: AuditEntry) -> Audit {
        Audit {
            sig_hash: v.sig_hash,
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
            seq: v.seq,
        }
    }
}

/// `count`, `by_overall` and `finding` cover every prior audit (the finding lists the newest
/// 20 outcomes and counts the rest); `audits` is a page of `limit`, newest first, older pages
/// by `before_seq`. `exclude_sha` (8+ hex digits, a prefix of the full sha) leaves out the
/// head being audited now.
pub async fn history(
    State(state): State<AppState>,
    PathParam(raw): PathParam,
    params: Params,
    limits: ReadLimits,
) -> Result<Json<History>, ApiError> {
    params.only(
        &["repo", "limit", "before_seq", "exclude_sha"],
        "GET /prs/{pr_number}/history",
    )?;
    let pr_number = pr_number_of(&raw)?;
    let repo = query::repo(params.repo.as_deref())?;
    let limit = query::limit(params.limit.as_deref())?;
    let before_seq = query::cursor("before_seq", params.before_seq.as_deref())?;
    let exclude_sha = match params.exclude_sha.as_deref() {
        None | Some("") => None,
        Some(sha)
            if sha.len() >= 8 && sha.len() <= 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Some(sha.to_ascii_lowercase())
        }
        Some(sha) => {
            return Err(ApiError::bad_request(
                "exclude_sha",
                format!("exclude_sha must be 8 to 64 hex digits, got {sha:?}"),
            ));
        }
    };
    let q = HistoryQuery {
        repo: repo.clone(),
        pr_number,
        exclude_sha,
        before_seq,
        limit,
    };
    let (history, _) = query::read_within(&state, limits, move |store, budget| {
        store.pr_history(&q, budget)
    })
    .await?;
    let recent: Vec<&str> = history.recent_overalls.iter().map(String::as_str).collect();
    let finding = prior_audits_finding(
        history.count,
        &recent,
        history.last_reason.as_deref().unwrap_or(""),
    );
    let by_overall = Overall::ALL
        .into_iter()
        .zip(history.by_overall)
        .filter(|(_, n)| *n > 0)
        .map(|(overall, n)| (overall.as_str(), n))
        .collect();
    let page = Page {
        items: history.audits,
        more: history.more,
    };
    let (audits, next_before_seq) = page::cursored(page, limits.max_response, |audit| Entry {
        seq: audit.seq,
        kind: None,
        sig_hash: Some(audit.sig_hash.clone()),
        item: Audit::from(audit),
    })?;
    Ok(Json(History {
        pr_number,
        repo: repo.name().map(str::to_owned),
        count: history.count,
        by_overall,
        finding,
        latest_audit_findings: history.latest_findings.map(|l| LatestFindings {
            seq: l.seq,
            raised: l.raised,
            repeat_earlier_heads: l.repeated,
        }),
        audits,
        next_before_seq,
    }))
}

/// `GET /prs/{pr_number}/neighbors?repo=&limit=&min_score=&all_repos=`: the neighbours of the
/// claims of the PR's latest audit, the PR itself left out. A PR with no audit (or whose
/// latest audit has no claims) has no neighbours.
pub async fn neighbors(
    State(state): State<AppState>,
    PathParam(raw): PathParam,
    params: Params,
    limits: ReadLimits,
) -> Result<Json<Neighbors>, ApiError> {
    params.only(
        &["repo", "limit", "min_score", "all_repos"],
        "GET /prs/{pr_number}/neighbors",
    )?;
    let pr_number = pr_number_of(&raw)?;
    let repo = query::repo(params.repo.as_deref())?;
    let limit = query::limit(params.limit.as_deref())?;
    let min_score = neighbors::min_score_param(params.min_score.as_deref())?;
    let all_repos = query::flag("all_repos", params.all_repos.as_deref())?;
    let key = repo.clone();
    let (latest, _) = query::read_within(&state, limits, move |store, _| {
        let Some(seq) = store.latest_verdict_seq(&key, pr_number)? else {
            return Ok(None);
        };
        store.verdict(seq)
    })
    .await?;
    let claims = latest
        .map(|v| stored_claims(&v.value.raw_json))
        .unwrap_or_default();
    let q = NeighborQuery {
        claims,
        repo,
        all_repos,
        exclude_pr: Some(pr_number),
        limit,
        min_score,
    };
    neighbors::answer(&state, limits, q).await
}

/// A PR number in a path: canonical decimal (no sign, no leading zero: `/prs/01` is not PR 1,
/// so one PR has one URL), at most 2^53 - 1 (what JavaScript's numbers hold exactly).
pub(super) fn pr_number_of(text: &str) -> Result<u64, ApiError> {
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
