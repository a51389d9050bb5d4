//! `GET /stats`: the observer's stats (counts by source, the seed's `by_source` check) plus the
//! KB's own counts, read from the running counters in one small range of `meta`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::query;
use super::{ApiError, AppState};

#[derive(Serialize)]
pub struct StatsBody {
    /// Observer events stored.
    total: u64,
    by_source: BTreeMap<String, u64>,
    by_event_kind: BTreeMap<String, u64>,
    success: u64,
    failure: u64,
    verdicts: u64,
    by_overall: BTreeMap<String, u64>,
    /// Verdicts by repository (the default namespace under `""`).
    by_repo: BTreeMap<String, u64>,
    outcomes: u64,
    outcomes_by_kind: BTreeMap<String, u64>,
    last_seq: u64,
}

pub async fn get(State(state): State<AppState>) -> Result<Json<StatsBody>, ApiError> {
    let stats = query::read(&state, |store| store.stats()).await?;
    let mut outcomes_by_kind = stats.outcomes_by_kind;
    // Rows without a kind are the scenario runner's.
    if let Some(n) = outcomes_by_kind.remove("") {
        outcomes_by_kind.insert("scenario".into(), n);
    }
    Ok(Json(StatsBody {
        total: stats.events,
        by_source: stats.events_by_source,
        by_event_kind: stats.events_by_kind,
        success: stats.events_success,
        failure: stats.events_failure,
        verdicts: stats.verdicts,
        by_overall: stats.verdicts_by_overall,
        by_repo: stats.verdicts_by_repo,
        outcomes: stats.outcomes,
        outcomes_by_kind,
        last_seq: stats.last_seq,
    }))
}
