//! What the three write routes share: the body extractor (content type decides one record or
//! an NDJSON batch), validation of every line before anything is queued, submission to the
//! group-commit writer, and the batch report.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::ingest::Parse;
use crate::model::now_ms;
use crate::store::{Put, Record, Written};

/// A write body: one JSON record (`application/json`) or a batch, one record a line
/// (`application/x-ndjson`).
#[derive(Debug)]
pub enum IngestBody {
    Single(Bytes),
    Batch(Bytes),
}

impl<S: Send + Sync> FromRequest<S> for IngestBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let essence = content_type.as_deref().map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        let batch = match essence.as_deref() {
            Some("application/json") => false,
            Some("application/x-ndjson" | "application/ndjson" | "application/jsonl") => true,
            _ => {
                let got = content_type.map_or_else(|| "none".to_owned(), |ct| format!("{ct:?}"));
                return Err(ApiError::UnsupportedMediaType(format!(
                    "content-type must be application/json or application/x-ndjson, got {got}"
                )));
            }
        };
        let bytes = Bytes::from_request(req, state).await?;
        Ok(if batch {
            IngestBody::Batch(bytes)
        } else {
            IngestBody::Single(bytes)
        })
    }
}

/// Commits `puts` through the group-commit writer.
pub async fn submit(state: &AppState, puts: Vec<Put>) -> Result<Vec<Written>, ApiError> {
    Ok(state.writer.submit(puts).await?)
}

/// Validates and commits one record; returns what `describe` takes from it (before it goes to
/// the writer) with what became of it. The body is dropped once parsed: it is not held while
/// the commit is awaited.
pub async fn single<T>(
    state: &AppState,
    body: Bytes,
    parse: Parse,
    describe: impl FnOnce(&Record) -> T,
) -> Result<(T, Written), ApiError> {
    let record = parse(&body, now_ms())?;
    drop(body);
    let described = describe(&record);
    let written = submit(state, vec![Put::from(record)]).await?;
    let written = written
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("the writer answered without a result".into()))?;
    Ok((described, written))
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BatchReport {
    /// Present only when no line was accepted (the answer is then a 400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Lines stored now.
    pub accepted: usize,
    /// Lines that were already stored (same verdict identity); nothing new written for them.
    pub duplicates: usize,
    pub rejected: Vec<LineError>,
    /// The highest seq this batch was given, if it stored anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
}

/// Splits an NDJSON body into numbered lines (1-based; a trailing `\r` dropped, blank lines
/// skipped) and parses each with `parse`: the puts of the good lines, in order, and the
/// errors of the bad ones. Refuses a batch with no lines or more than `max_lines`.
pub fn parse_batch(
    body: &[u8],
    max_lines: usize,
    parse: Parse,
    now_ms: u64,
) -> Result<(Vec<Put>, Vec<LineError>), ApiError> {
    let lines: Vec<(usize, &[u8])> = body
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    if lines.len() > max_lines {
        return Err(ApiError::PayloadTooLarge(format!(
            "a batch may hold at most {max_lines} lines, got {}",
            lines.len()
        )));
    }
    if lines.is_empty() {
        return Err(ApiError::bad_request("body", "the batch has no lines"));
    }
    let mut puts = Vec::with_capacity(lines.len());
    let mut rejected = Vec::new();
    for (line_no, line) in lines {
        match parse(line, now_ms) {
            Ok(record) => puts.push(Put::from(record)),
            Err(e) => rejected.push(LineError {
                line: line_no,
                error: e.message,
                field: Some(e.field),
            }),
        }
    }
    Ok((puts, rejected))
}

/// Validates every line of an NDJSON batch, commits the good ones in one transaction in their
/// order, and reports each bad one by its line number. The answer is 200 when at least one line
/// was good, 400 when none was.
pub async fn batch(state: &AppState, body: Bytes, parse: Parse) -> Result<Response, ApiError> {
    let (puts, rejected) = parse_batch(&body, state.config.max_batch_lines, parse, now_ms())?;
    // The records hold what they need of it: the body is not held while the commit is awaited.
    drop(body);
    let written = if puts.is_empty() {
        Vec::new()
    } else {
        submit(state, puts).await?
    };
    let duplicates = written
        .iter()
        .filter(|w| matches!(w, Written::Duplicate { .. }))
        .count();
    let last_seq = written
        .iter()
        .filter_map(|w| match *w {
            Written::Stored {
                seq,
                outcome_seq,
                event_seq,
            } => Some(
                seq.max(outcome_seq.unwrap_or(0))
                    .max(event_seq.unwrap_or(0)),
            ),
            Written::Duplicate { .. } => None,
        })
        .max();
    let (status, error) = if written.is_empty() {
        let n = rejected.len();
        (
            StatusCode::BAD_REQUEST,
            Some(format!("no line of the batch was accepted ({n} rejected)")),
        )
    } else {
        (StatusCode::OK, None)
    };
    let accepted = written.len() - duplicates;
    let report = BatchReport {
        error,
        accepted,
        duplicates,
        rejected,
        last_seq,
    };
    Ok((status, Json(report)).into_response())
}
