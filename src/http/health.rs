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
use crate::metrics::Format;
use crate::store::{Fault, SCHEMA_VERSION, StoreError};

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
    /// How long the commit running now has been running, once it is stalled
    /// ([`ServerConfig::stalled_commit`](super::ServerConfig::stalled_commit)): the disk is
    /// not finishing its writes, and writes (and reads, which wait for a commit's sync) wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    stalled_commit_ms: Option<u64>,
    /// Exported files the last run could not bring up to date.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    export: Vec<FileProblem>,
    /// The database was found damaged while it was read (redb could not read a page): until
    /// an operator acts, with what to do (`store::damage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    damaged: Option<String>,
}

/// 200 `ok` when the database is open, the writer accepts work and its commits finish.
/// `degraded` when something needs attention: with a storage fault (writes refused until the
/// store has reopened itself) or a commit stalled (the disk does not finish a sync) the answer
/// is 503, so a probe that reads only the status sees it; with an export file failing or
/// paused it stays 200 (the database takes writes), the body says which file.
///
/// Answered without a read of the database: a read waits for a commit's sync in redb, and a
/// probe must answer while a stalled disk holds one (each probe would also hold a blocking
/// thread meanwhile). The last seq is the writer's, published before a commit is answered;
/// the database's identity is the one the store took when it opened the file (a `stat` per
/// probe could hang on a hung volume too).
pub async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    if state.writer.is_closed() {
        return Err(ApiError::Unavailable {
            message: "the writer has stopped".into(),
            retry_after_secs: 5,
        });
    }
    let database = state.store.identity().map(str::to_owned);
    let storage = state.store.fault();
    let readable = storage.is_none();
    let stalled = state
        .writer
        .commit_running_for()
        .filter(|running| *running >= state.config.stalled_commit);
    let export = refresh_gauges(&state, !readable);
    let damaged = crate::store::damage::found()
        .map(|damage| format!("{damage}: {}", crate::store::damage::ADVICE));
    let health = Health {
        status: if readable && stalled.is_none() && export.is_empty() && damaged.is_none() {
            "ok"
        } else {
            "degraded"
        },
        schema_version: readable.then_some(SCHEMA_VERSION),
        last_seq: readable.then(|| *state.writer.committed().borrow()),
        queue_depth: state.writer.depth(),
        database,
        export,
        storage,
        stalled_commit_ms: stalled.map(|running| running.as_millis() as u64),
        damaged,
    };
    // A 503 says when to look again, as every other 503 does: the storage's next recovery
    // attempt, a second for a stalled commit, a minute for damage (an operator's to mend).
    let retry_after = match (&health.storage, health.stalled_commit_ms, &health.damaged) {
        (Some(fault), _, _) => Some(fault.retry_after_secs.max(1)),
        (None, Some(_), _) => Some(1),
        (None, None, Some(_)) => Some(60),
        (None, None, None) => None,
    };
    let mut answer = Json(health).into_response();
    if let Some(secs) = retry_after {
        *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    Ok(answer)
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
    if let Some(export) = state.export.clone() {
        // Export lag: records committed after the point each file is known to be current at.
        let lags = tokio::task::spawn_blocking(move || {
            ExportFile::ALL
                .into_iter()
                .map(|file| Ok((file.name(), export.lag(file)?)))
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
