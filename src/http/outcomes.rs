//! `POST /outcomes`: a KB outcome row as the scenario runner writes it, stored byte for byte.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ingest::{self, IdempotencyKey, IngestBody, OUTCOMES};
use super::query::NoQuery;
use super::{ApiError, AppState};
use crate::store::Written;

#[derive(Serialize)]
struct Posted {
    sig_hash: String,
    seq: u64,
    /// Present (true) when an idempotency key's earlier request had stored the row.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

/// 201 with the row's seq (200 with `duplicate` for a retry of a keyed request), or an NDJSON
/// batch report.
pub async fn post(
    _: NoQuery,
    State(state): State<AppState>,
    key: IdempotencyKey,
    body: IngestBody,
) -> Result<Response, ApiError> {
    match body {
        IngestBody::Single(bytes) => {
            let (sig_hash, written) = ingest::single(&state, bytes, &OUTCOMES, &key, |new| {
                new.row.sig_hash.clone()
            })
            .await?;
            let duplicate = matches!(written, Written::Duplicate { .. });
            let status = if duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((
                status,
                Json(Posted {
                    sig_hash,
                    seq: written.seq(),
                    duplicate,
                }),
            )
                .into_response())
        }
        IngestBody::Batch(bytes) => ingest::batch(&state, bytes, &OUTCOMES, &key).await,
    }
}
