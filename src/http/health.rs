//! Operational routes: `GET /healthz` (is the database open and the writer running) and
//! `GET /metrics` (OpenMetrics or Prometheus' classic text, by `Accept`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::export::ExportFile;
use crate::metrics::Format;
use crate::store::StoreError;

#[derive(Serialize)]
struct Health {
    status: &'static str,
    schema_version: u64,
    last_seq: u64,
    queue_depth: usize,
}

/// 200 when the database answers a read and the writer accepts work; 503 otherwise.
pub async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    if state.writer.is_closed() {
        return Err(ApiError::Unavailable {
            message: "the writer has stopped".into(),
            retry_after_secs: 5,
        });
    }
    let store = state.store.clone();
    let (schema_version, last_seq) = tokio::task::spawn_blocking(move || {
        Ok::<_, ApiError>((store.schema_version()?, store.last_seq()?))
    })
    .await??;
    let health = Health {
        status: "ok",
        schema_version,
        last_seq,
        queue_depth: state.writer.depth(),
    };
    Ok(Json(health).into_response())
}

/// The metrics, as OpenMetrics when `Accept` asks for it, else in the classic text format.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let format = Format::negotiate((!accept.is_empty()).then(|| accept.join(",")).as_deref());
    state.metrics.set_queue_depth(state.writer.depth());
    if state.export.is_some() {
        // Export lag: records committed after each file's checkpoint.
        let store = state.store.clone();
        let lags = tokio::task::spawn_blocking(move || {
            let last = store.last_seq()?;
            ExportFile::ALL
                .into_iter()
                .map(|file| {
                    Ok((
                        file.name(),
                        last.saturating_sub(store.checkpoint(file.name())?.seq),
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await;
        if let Ok(Ok(lags)) = lags {
            for (file, lag) in lags {
                state.metrics.set_export_lag(file, lag);
            }
        }
    }
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "accept"),
        ],
        state.metrics.encode(format),
    )
        .into_response()
}
