//! `POST /backup`: a consistent copy of the live database from one read snapshot, written on
//! the server's machine under its backup directory (`--backup-dir`) only, as `NAME/kb.redb`.
//! The body is `{}` (the server picks a timestamped name) or `{"name": "plain-name"}`; any
//! other field is a 400. One backup at a time: a second request meanwhile gets 409 at once. A
//! retry with the first attempt's `Idempotency-Key` gets the backup that attempt made.
//! A write route: guarded by the token when one is set.
//!
//! The copy runs on a thread of its own (not one of the reads' threads), and stops, leaving
//! nothing behind, when its client goes away (the handler's future is dropped). No answer names
//! a server path: errors say what went wrong, the log says where.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::ingest::{IdempotencyKey, IngestBody};
use super::query::NoQuery;
use super::{ApiError, AppState};
use crate::model::{describe, parse_object, utf8};
use crate::store::{Backup, BackupName, BackupRequest, Store, StoreError};

/// The answer: what was copied, under which name; no path.
#[derive(Debug, Serialize)]
struct Created {
    name: String,
    last_seq: u64,
    rows: u64,
    bytes: u64,
    millis: u64,
    /// Older server-made backups removed to keep the newest `--backup-keep`.
    pruned: Vec<String>,
    /// Present (true) when an earlier request with the same idempotency key made it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

/// Sets the flag when dropped: the handler's future dropped (client gone, timeout) cancels the
/// copy, which checks the flag once per chunk.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// With an `Idempotency-Key`, a retry is answered with the backup its first attempt made (200,
/// `"duplicate": true`; nothing written, nothing pruned) for as long as that backup is kept,
/// and the key given with another name is a 409.
pub async fn post(
    _: NoQuery,
    State(state): State<AppState>,
    key: IdempotencyKey,
    body: IngestBody,
) -> Result<Response, ApiError> {
    let IngestBody::Single(bytes) = body else {
        return Err(ApiError::UnsupportedMediaType(
            "content-type must be application/json for /backup".into(),
        ));
    };
    let request = parse_object(utf8(&bytes)?)?;
    if let Some(field) = request.keys().find(|key| key.as_str() != "name") {
        return Err(ApiError::bad_request(
            field.clone(),
            format!(
                "unknown field {field:?}: the body is {{}} or {{\"name\": \"plain-name\"}}; \
                 backups go to the server's backup directory only"
            ),
        ));
    }
    let name = match request.get("name") {
        // `null` is the field absent, as in every body.
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => {
            Some(BackupName::parse(name).map_err(|e| ApiError::bad_request("name", e))?)
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                "name",
                format!("name must be a string, got {}", describe(other)),
            ));
        }
    };
    let window = state.config.backup_key_window;
    let request = key
        .0
        .map(|key| BackupRequest::new(&key, name.as_ref(), window));
    let backup_dir = backup_dir(&state);
    let keep = state.config.backup_keep;
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let (reply, answer) = tokio::sync::oneshot::channel();
    let store = state.store.clone();
    let spawned = std::thread::Builder::new()
        .name("kb-backup".into())
        .spawn(move || {
            let _ = reply.send(store.backup_into(&backup_dir, name, keep, &cancel, request));
        });
    if spawned.is_err() {
        return Err(ApiError::Unavailable {
            message: "cannot start a backup now".into(),
            retry_after_secs: 5,
        });
    }
    let result = answer
        .await
        .map_err(|_| ApiError::Internal("the backup thread failed".into()))?;
    let (status, report) = match result {
        Ok(Backup::Made(report)) => {
            tracing::info!(
                path = %report.path,
                rows = report.rows,
                millis = report.millis,
                pruned = ?report.pruned,
                "backup written"
            );
            (StatusCode::CREATED, report)
        }
        Ok(Backup::Before(report)) => (StatusCode::OK, report),
        Err(e) => return Err(refusal(&state.store, e)),
    };
    let created = Created {
        name: report.name,
        last_seq: report.last_seq,
        rows: report.rows,
        bytes: report.bytes,
        millis: report.millis,
        pruned: report.pruned,
        duplicate: status == StatusCode::OK,
    };
    Ok((status, Json(created)).into_response())
}

fn backup_dir(state: &AppState) -> PathBuf {
    state.config.backup_dir.clone().unwrap_or_else(|| {
        state
            .store
            .path()
            .parent()
            .map_or_else(|| PathBuf::from("backups"), |data| data.join("backups"))
    })
}

/// A failed backup as the client sees it: what went wrong, never where.
fn refusal(store: &Store, e: StoreError) -> ApiError {
    match e {
        StoreError::BackupBusy => {
            ApiError::conflict("a backup is already running; try again when it is done")
        }
        StoreError::BackupKeyReused { name } => ApiError::Conflict {
            message: format!(
                "this idempotency key was first used for the backup {name:?}, asked for with \
                 another name; use a new key for a new backup"
            ),
            field: Some("idempotency-key".into()),
        },
        // The database itself is failing: the store's fault, as every route answers it (503, or
        // 507 for a full disk, with Retry-After). A name taken is answered as everywhere else.
        e @ (StoreError::Unavailable(_) | StoreError::BackupExists(_)) => e.into(),
        // Reading the database met its disk failing ("previous I/O error" once a write failed):
        // recorded, so that the store recovers, and answered as the fault.
        e if e.is_storage_fault() => match store.note_error(&e) {
            Some(fault) => StoreError::Unavailable(fault).into(),
            None => e.into(),
        },
        e => {
            // The log has the path and the OS's words; the client gets neither.
            tracing::error!(error = %e, "backup failed");
            match e {
                StoreError::BackupDest { source, .. }
                    if source.kind() == std::io::ErrorKind::StorageFull =>
                {
                    ApiError::InsufficientStorage {
                        message: "no space left for the backup; nothing of it was kept".into(),
                        retry_after_secs: 60,
                    }
                }
                StoreError::BackupCancelled => {
                    ApiError::Internal("the backup was cancelled; nothing of it was kept".into())
                }
                _ => ApiError::Internal(
                    "the backup could not be written; nothing of it was kept (the server log \
                     says why)"
                        .into(),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A review at f639646, with the data and the backups on one full disk: once the database
    /// had failed, each backup met redb's "previous I/O error" and answered 500, without
    /// Retry-After, while writes answered 507. Now the backup answers with the store's fault.
    #[test]
    fn a_backup_that_meets_the_database_failing_answers_with_its_fault() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("kb.redb"), Default::default()).unwrap();
        let answer = refusal(&store, StoreError::Storage(redb::Error::PreviousIo));
        assert!(
            matches!(answer, ApiError::Unavailable { retry_after_secs, .. } if retry_after_secs > 0),
            "{answer:?}"
        );
        assert!(store.fault().is_some(), "the fault was not recorded");
        let full = StoreError::BackupDest {
            path: dir.path().join("x"),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        assert!(matches!(
            refusal(&store, full),
            ApiError::InsufficientStorage { .. }
        ));
    }
}
