//! Operational routes: `GET /healthz` (is the database open, the writer running, the storage
//! and the exported files healthy) and `GET /metrics` (OpenMetrics or Prometheus' classic text,
//! by `Accept`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::export::{ExportFile, FileProblem};
use crate::fsutil;
use crate::metrics::Format;
use crate::store::{Fault, StoreError};

#[derive(Serialize)]
struct Health {
    /// `ok`, or `degraded` when anything needs attention (see `storage` and `export`).
    status: &'static str,
    /// `null` when the database cannot be read right now (a storage fault).
    schema_version: Option<u64>,
    last_seq: Option<u64>,
    queue_depth: usize,
    /// An opaque identity of the database file this server holds (`null` if it cannot be
    /// read): the CLI compares it with `--data`'s file before asking this server for a backup or
    /// an export, so that a server holding another database is not the one asked.
    database: Option<String>,
    /// The storage fault the store is recovering from: writes fail (503, or 507 for a full
    /// disk) until it is over.
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<Fault>,
    /// Exported files the last run could not bring up to date.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    export: Vec<FileProblem>,
}

/// 200 `ok` when the database answers and the writer accepts work. `degraded` when something
/// needs attention: with a storage fault (writes refused until the store has reopened itself)
/// the answer is 503, so a probe that reads only the status sees it; with an export file
/// failing or paused it stays 200 (the database takes writes), the body says which file.
pub async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    if state.writer.is_closed() {
        return Err(ApiError::Unavailable {
            message: "the writer has stopped".into(),
            retry_after_secs: 5,
        });
    }
    let store = state.store.clone();
    let (database, read) = tokio::task::spawn_blocking(move || {
        let database = fsutil::file_identity(store.path()).ok();
        let read = store
            .schema_version()
            .and_then(|version| Ok((version, store.last_seq()?)));
        (database, read)
    })
    .await?;
    let (schema_version, last_seq) = match read {
        Ok((version, seq)) => (Some(version), Some(seq)),
        Err(e) if e.is_storage_fault() => (None, None),
        Err(e) => return Err(e.into()),
    };
    let storage = state.store.fault();
    let export = refresh_gauges(&state, storage.is_some());
    let health = Health {
        status: if storage.is_none() && export.is_empty() {
            "ok"
        } else {
            "degraded"
        },
        schema_version,
        last_seq,
        queue_depth: state.writer.depth(),
        database,
        export,
        storage,
    };
    let status = if health.storage.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok((status, Json(health)).into_response())
}

/// Sets the storage-fault and per-file export gauges; returns the export problems.
fn refresh_gauges(state: &AppState, faulted: bool) -> Vec<FileProblem> {
    state.metrics.set_storage_fault(faulted);
    let Some(job) = &state.export else {
        return Vec::new();
    };
    let problems = job.problems();
    for file in ExportFile::ALL {
        let level = problems
            .iter()
            .find(|p| p.file == file.relative_path())
            .map_or(0, |p| if p.paused { 2 } else { 1 });
        state.metrics.set_export_file_state(file.name(), level);
    }
    problems
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
    refresh_gauges(&state, state.store.fault().is_some());
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
