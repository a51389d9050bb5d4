//! `POST /export`: bring `_kb/outcomes.jsonl` and `_observer/ops.jsonl` up to date now, and
//! answer with the rows written per file and the new checkpoints. Runs never overlap: a call
//! during a periodic export waits for it, then runs.

use axum::Json;
use axum::extract::State;

use super::ingest::IdempotencyKey;
use super::query::NoQuery;
use super::{ApiError, AppState};
use crate::export::ExportReport;

/// An `Idempotency-Key` is checked as on every write, then not kept: a run changes nothing that
/// a retry could repeat.
pub async fn post(
    _: NoQuery,
    _key: IdempotencyKey,
    State(state): State<AppState>,
) -> Result<Json<ExportReport>, ApiError> {
    let Some(job) = state.export.clone() else {
        return Err(ApiError::NotFound(
            "this server has no export directory".into(),
        ));
    };
    let report = tokio::task::spawn_blocking(move || job.run())
        .await?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(report))
}
