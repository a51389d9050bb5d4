//! `POST /verdicts`: one auditor verdict stored atomically with the KB row and the observer
//! event it used to produce; idempotent on (pr_number, head_sha, audited_at).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ingest::{self, IdempotencyKey, IngestBody, VERDICTS};
use super::query::NoQuery;
use super::{ApiError, AppState};
use crate::store::Written;

#[derive(Serialize)]
struct Posted {
    sig_hash: String,
    /// The verdict's PR as the server read it (a body's `10.0` is 10): what a client, or the
    /// OpenAPI links, put in the PR routes' paths.
    pr_number: u64,
    seq: u64,
    duplicate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_seq: Option<u64>,
}

/// 201 with the new seqs, or 200 with the original seq and `"duplicate": true` when this
/// verdict was stored before.
pub async fn post(
    _: NoQuery,
    State(state): State<AppState>,
    key: IdempotencyKey,
    body: IngestBody,
) -> Result<Response, ApiError> {
    match body {
        IngestBody::Single(bytes) => {
            let ((sig_hash, pr_number), written) =
                ingest::single(&state, bytes, &VERDICTS, &key, |new| {
                    (new.verdict.sig_hash(), new.verdict.pr_number)
                })
                .await?;
            let (status, posted) = match written {
                Written::Stored {
                    seq,
                    outcome_seq,
                    event_seq,
                } => (
                    StatusCode::CREATED,
                    Posted {
                        sig_hash,
                        pr_number,
                        seq,
                        duplicate: false,
                        outcome_seq,
                        event_seq,
                    },
                ),
                Written::Duplicate { seq } | Written::KeyReused { seq } => (
                    StatusCode::OK,
                    Posted {
                        sig_hash,
                        pr_number,
                        seq,
                        duplicate: true,
                        outcome_seq: None,
                        event_seq: None,
                    },
                ),
                // Only dismissals are refused.
                Written::Refused => {
                    return Err(ApiError::Internal("the writer refused a verdict".into()));
                }
            };
            Ok((status, Json(posted)).into_response())
        }
        IngestBody::Batch(bytes) => ingest::batch(&state, bytes, &VERDICTS, &key).await,
    }
}
