//! `POST /outcomes`: a KB outcome row as the scenario runner writes it, stored byte for byte.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ingest::{self, IngestBody};
use super::{ApiError, AppState};
use crate::ingest::outcome_record;
use crate::store::Record;

#[derive(Serialize)]
struct Posted {
    sig_hash: String,
    seq: u64,
}

/// 201 with the row's seq, or an NDJSON batch report.
pub async fn post(State(state): State<AppState>, body: IngestBody) -> Result<Response, ApiError> {
    match body {
        IngestBody::Single(bytes) => {
            let (sig_hash, written) =
                ingest::single(&state, bytes, outcome_record, |record| match record {
                    Record::Outcome(o) => o.row.sig_hash.clone(),
                    _ => String::new(),
                })
                .await?;
            Ok((
                StatusCode::CREATED,
                Json(Posted {
                    sig_hash,
                    seq: written.seq(),
                }),
            )
                .into_response())
        }
        IngestBody::Batch(bytes) => ingest::batch(&state, bytes, outcome_record).await,
    }
}
