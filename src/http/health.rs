//! Operational routes: `GET /healthz` (is the database open, the writer running, the storage
//! healthy) and
//! `GET /metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::export::ExportFile;
use crate::store::{Fault, StoreError};

#[derive(Serialize)]
struct Health {
    /// `ok`, or `degraded` when anything needs attention (see `storage` and `export`).
    status: &'static str,
    /// `null` when the database cannot be read right now (a storage fault).
    schema_version: Option<u64>,
    last_seq: Option<u64>,
    queue_depth: usize,
    /// The storage fault the store is recovering from: writes fail (503, or 507 for a full
    /// disk) until it is over.
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<Fault>,
}

/// 200 `ok` when the database answers and the writer accepts work. `degraded`, with a 503 so
/// that a probe that reads only the status sees it, during a storage fault (writes refused
/// until the store has reopened itself).
pub async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    if state.writer.is_closed() {
        return Err(ApiError::Unavailable {
            message: "the writer has stopped".into(),
            retry_after_secs: 5,
        });
    }
    let store = state.store.clone();
    let read = tokio::task::spawn_blocking(move || {
        Ok::<_, StoreError>((store.schema_version()?, store.last_seq()?))
    })
    .await?;
    let (schema_version, last_seq) = match read {
        Ok((version, seq)) => (Some(version), Some(seq)),
        Err(e) if e.is_storage_fault() => (None, None),
        Err(e) => return Err(e.into()),
    };
    let storage = state.store.fault();
    state.metrics.set_storage_fault(storage.is_some());
    let health = Health {
        status: if storage.is_none() { "ok" } else { "degraded" },
        schema_version,
        last_seq,
        queue_depth: state.writer.depth(),
        storage,
    };
    let status = if health.storage.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok((status, Json(health)).into_response())
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.set_queue_depth(state.writer.depth());
    state
        .metrics
        .set_storage_fault(state.store.fault().is_some());
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
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
