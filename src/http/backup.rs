//! `POST /backup`: a consistent copy of the live database from one read snapshot, written to
//! `{dest}/kb.redb` on the server's machine (the server holds the file, so only it can read a
//! snapshot while writes go on). A write route: guarded by the token when one is set.

use std::path::PathBuf;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::ingest::IngestBody;
use super::query;
use super::{ApiError, AppState};
use crate::model::{describe, parse_object, utf8};
use crate::store::DB_FILE;

/// Body `{"dest": "/absolute/dir"}`; 201 with the report. The directory may exist but must not
/// hold a database already.
pub async fn post(State(state): State<AppState>, body: IngestBody) -> Result<Response, ApiError> {
    let IngestBody::Single(bytes) = body else {
        return Err(ApiError::UnsupportedMediaType(
            "content-type must be application/json for /backup".into(),
        ));
    };
    let request = parse_object(utf8(&bytes)?)?;
    let dest = match request.get("dest") {
        Some(Value::String(dest)) if PathBuf::from(dest).is_absolute() => PathBuf::from(dest),
        Some(other) => {
            return Err(ApiError::bad_request(
                "dest",
                format!(
                    "dest must be an absolute directory path, got {}",
                    describe(other)
                ),
            ));
        }
        None => return Err(ApiError::bad_request("dest", "dest is required")),
    };
    let target = dest.join(DB_FILE);
    if target.exists() {
        return Err(ApiError::Conflict(format!(
            "{} already exists",
            target.display()
        )));
    }
    std::fs::create_dir_all(&dest).map_err(|e| {
        ApiError::bad_request("dest", format!("cannot create {}: {e}", dest.display()))
    })?;
    let report = query::read(&state, move |store| store.backup_to(&target)).await?;
    tracing::info!(path = %report.path, rows = report.rows, millis = report.millis, "backup written");
    Ok((StatusCode::CREATED, Json(report)).into_response())
}
