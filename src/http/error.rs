//! The API error: every failure a handler or an extractor can produce, mapped to one status and
//! one JSON body shape, `{"error": "...", "field": "..."}` (field when one is at fault).
//! axum's own rejections are converted here too, so no client ever sees a plain-text error.

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::observe;
use crate::model::FieldError;
use crate::store::{Fault, StoreError};
use crate::writer::WriteError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: the input broke a rule; `field` names the field at fault when one is.
    BadRequest {
        message: String,
        field: Option<String>,
    },
    /// 401: a token is configured and the request did not carry it.
    Unauthorized,
    NotFound(String),
    MethodNotAllowed,
    /// 409: the request conflicts with what exists (a backup over an existing file, a feed
    /// position past the last seq, an idempotency key first used with another request);
    /// `field` names what is at fault when one is.
    Conflict {
        message: String,
        field: Option<String>,
    },
    /// 422: well-formed, but refused as it stands (a block finding dismissed without
    /// `confirm`, a scope's dismissals full); `field` names what is at fault.
    Unprocessable {
        message: String,
        field: String,
    },
    /// 421: the `Host` names a server this one is not (`http/host.rs`).
    Misdirected(String),
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    /// 415 for a `Transfer-Encoding` or `Content-Encoding` the service does not decode;
    /// `header` names it.
    UnsupportedEncoding {
        header: &'static str,
        message: String,
    },
    /// 408: the body did not arrive within `--body-timeout`.
    BodyTimeout(String),
    /// 503 with `Retry-After`: the service is busy or not ready; the request may be retried.
    Unavailable {
        message: String,
        retry_after_secs: u32,
    },
    /// 503 with `Retry-After`: load shed by a limit (`kind` names it in the log, which says so
    /// at most once a second per kind rather than once per request).
    Shed {
        kind: &'static str,
        message: String,
        retry_after_secs: u32,
    },
    /// 503 without `Retry-After`: a write was queued for a commit but not answered in time;
    /// it may have been committed (a retry with the same idempotency key learns its outcome).
    MaybeCommitted(String),
    /// 507 with `Retry-After`: no space left on the disk; writes resume once space is freed.
    InsufficientStorage {
        message: String,
        retry_after_secs: u32,
    },
    /// 500: a fault of the service itself (storage), never of the input.
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A 409 naming no field.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            message: message.into(),
            field: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Misdirected(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) | ApiError::UnsupportedEncoding { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable { .. } | ApiError::Shed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage { .. } => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::MaybeCommitted(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> &str {
        match self {
            ApiError::BadRequest { message, .. }
            | ApiError::NotFound(message)
            | ApiError::Conflict { message, .. }
            | ApiError::Unprocessable { message, .. }
            | ApiError::Misdirected(message)
            | ApiError::PayloadTooLarge(message)
            | ApiError::UnsupportedMediaType(message)
            | ApiError::UnsupportedEncoding { message, .. }
            | ApiError::BodyTimeout(message)
            | ApiError::Unavailable { message, .. }
            | ApiError::Shed { message, .. }
            | ApiError::InsufficientStorage { message, .. }
            | ApiError::MaybeCommitted(message)
            | ApiError::Internal(message) => message,
            ApiError::Unauthorized => "missing or wrong bearer token",
            ApiError::MethodNotAllowed => "method not allowed on this route",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::BadRequest { field, .. } | ApiError::Conflict { field, .. } => {
                field.as_deref()
            }
            ApiError::Unprocessable { field, .. } => Some(field),
            ApiError::PayloadTooLarge(_) | ApiError::BodyTimeout(_) => Some("body"),
            ApiError::UnsupportedMediaType(_) => Some("content-type"),
            ApiError::UnsupportedEncoding { header, .. } => Some(header),
            ApiError::Unauthorized => Some("authorization"),
            ApiError::Misdirected(_) => Some("host"),
            _ => None,
        }
    }
}

impl ApiError {
    /// Whether this refusal may come before the request's body is read (or while it is):
    /// what the headers alone refuse (`Host`, the token, a coding), a body too large or too
    /// slow. A review found a 401 and a 415 leaving a 2 MB body on the connection.
    fn leaves_the_body_unread(&self) -> bool {
        match self {
            ApiError::PayloadTooLarge(_)
            | ApiError::BodyTimeout(_)
            | ApiError::Unauthorized
            | ApiError::UnsupportedEncoding { .. }
            | ApiError::Misdirected(_) => true,
            ApiError::BadRequest { field, .. } => field.as_deref() == Some("host"),
            _ => false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            // Shed load comes in floods: at most one line a second per kind, with a count of
            // the ones not logged.
            ApiError::Shed { kind, message, .. } => {
                if let Some(suppressed) = observe::sample(kind) {
                    tracing::warn!(kind, error = %message, suppressed, "shedding load (503)");
                }
            }
            ApiError::Unavailable { message, .. } => {
                if let Some(suppressed) = observe::sample("unavailable") {
                    tracing::warn!(kind = "unavailable", error = %message, suppressed, "not serving (503)");
                }
            }
            _ if status.is_server_error() => {
                tracing::error!(
                    status = status.as_u16(),
                    error = self.message(),
                    "request failed"
                );
            }
            _ => {}
        }
        let body = ErrorBody {
            error: self.message(),
            field: self.field(),
        };
        let mut response = (status, Json(body)).into_response();
        match &self {
            ApiError::Unavailable {
                retry_after_secs, ..
            }
            | ApiError::Shed {
                retry_after_secs, ..
            }
            | ApiError::InsufficientStorage {
                retry_after_secs, ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, (*retry_after_secs).into());
            }
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        if self.leaves_the_body_unread() {
            // The connection ends with this answer, and says so, rather than a client's next
            // request on it meeting a reset (or the rest of the body read as one).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::BadRequest {
            message: e.message,
            field: Some(e.field),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::QueueFull(_) => ApiError::Shed {
                kind: "write-queue",
                message: e.to_string(),
                retry_after_secs: 1,
            },
            WriteError::Closed => ApiError::Unavailable {
                message: "the service is shutting down".into(),
                retry_after_secs: 5,
            },
            WriteError::Store(message) => ApiError::Internal(format!("storage failure: {message}")),
            WriteError::Fault(fault) => fault_error(&fault),
            WriteError::MaybeCommitted(message) => ApiError::MaybeCommitted(format!(
                "{message}; a retry with the same Idempotency-Key learns whether it was"
            )),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(fault) => fault_error(&fault),
            // Backup errors name server paths: `http/backup.rs` answers them without.
            StoreError::BackupExists(_) => {
                ApiError::conflict("a backup with this name already exists")
            }
            StoreError::BackupDest { .. } => {
                ApiError::Internal("the backup could not be written".into())
            }
            StoreError::Abandoned { rows } => ApiError::Shed {
                kind: "read-deadline",
                message: format!(
                    "the read was stopped after {rows} rows: it ran past the request timeout \
                     (--request-timeout); retry shortly, or ask for less"
                ),
                retry_after_secs: 1,
            },
            // A read that met the disk failing: the store is recovering (see store/fault.rs).
            e if e.is_storage_fault() => ApiError::Unavailable {
                message: format!("the database's storage is failing ({e}); retry shortly"),
                retry_after_secs: 1,
            },
            e => {
                if e.is_damage() {
                    crate::store::damage::note(&e.to_string());
                }
                ApiError::Internal(format!("storage failure: {e}"))
            }
        }
    }
}

/// A storage fault: 507 when the disk is full, else 503; both with `Retry-After`.
fn fault_error(fault: &Fault) -> ApiError {
    let message = fault.to_string();
    let retry_after_secs = fault.retry_after_secs;
    if fault.no_space {
        ApiError::InsufficientStorage {
            message,
            retry_after_secs,
        }
    } else {
        ApiError::Unavailable {
            message,
            retry_after_secs,
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("body is larger than the limit (--max-body)".into())
        } else {
            ApiError::bad_request(
                "body",
                format!("cannot read the body: {}", rejection.body_text()),
            )
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let text = rejection.body_text();
        // serde's "duplicate field `limit`": the parameter is the field at fault.
        let twice = text
            .split_once("duplicate field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, _)| name.to_owned());
        match twice {
            Some(name) => {
                let message = format!("{name} is given more than once in the query");
                ApiError::bad_request(&name, message)
            }
            None => ApiError::bad_request("query", text),
        }
    }
}

impl From<PathRejection> for ApiError {
    /// Named by the path's parameter when axum says which (a segment that is not UTF-8 once
    /// percent-decoded: the routes parse their parameters themselves, and name them).
    fn from(rejection: PathRejection) -> Self {
        use axum::extract::path::ErrorKind;
        let key = match &rejection {
            PathRejection::FailedToDeserializePathParams(failed) => match failed.kind() {
                ErrorKind::InvalidUtf8InPathParam { key }
                | ErrorKind::ParseErrorAtKey { key, .. }
                | ErrorKind::DeserializeError { key, .. } => Some(key.clone()),
                _ => None,
            },
            _ => None,
        };
        ApiError::bad_request(key.as_deref().unwrap_or("path"), rejection.body_text())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("a read task failed: {e}"))
    }
}
