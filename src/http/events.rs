//! `/event` and `/events`: the observer's contract (`POST /event`, unchanged for old clients)
//! and the recent-events listing that replaces the observer's ring buffer.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ingest::{self, IdempotencyKey, IngestBody, KeyRoute};
use super::query::{self, Params};
use super::sig::raw;
use super::{ApiError, AppState};
use crate::ingest::event_record;
use crate::model::{Source, iso_timestamp};
use crate::store::{EventFilter, Written};

#[derive(Serialize)]
struct Posted {
    ok: bool,
    seq: u64,
    /// Present (true) when an idempotency key's earlier request had stored the event.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

/// `POST /event`: one observer event (200 with its seq) or an NDJSON batch.
pub async fn post(
    State(state): State<AppState>,
    key: IdempotencyKey,
    body: IngestBody,
) -> Result<Response, ApiError> {
    match body {
        IngestBody::Single(bytes) => {
            let (_, written) =
                ingest::single(&state, &bytes, event_record, KeyRoute::Event, &key).await?;
            Ok(Json(Posted {
                ok: true,
                seq: written.seq(),
                duplicate: matches!(written, Written::Duplicate { .. }),
            })
            .into_response())
        }
        IngestBody::Batch(bytes) => {
            ingest::batch(&state, &bytes, event_record, KeyRoute::Event, &key).await
        }
    }
}

#[derive(Serialize)]
pub struct EventsPage {
    events: Vec<EventItem>,
    /// Pass as `before_seq` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before_seq: Option<u64>,
}

#[derive(Serialize)]
struct EventItem {
    seq: u64,
    received_at: String,
    /// The ObservedOp, exactly as in `ops.jsonl`.
    op: Box<serde_json::value::RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_original: Option<String>,
}

/// `GET /events?source=&event_kind=&sig_hash=&before_seq=&limit=`: recent events newest first.
pub async fn list(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<EventsPage>, ApiError> {
    let limit = query::limit(params.limit.as_deref())?;
    let before = query::cursor("before_seq", params.before_seq.as_deref())?;
    let source = match params.source.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Source::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "source",
                format!("source must be one of mcp, scenario, auditor, bot, got {s:?}"),
            )
        })?),
    };
    let filter = EventFilter {
        source,
        event_kind: params.event_kind.filter(|k| !k.is_empty()),
        sig_hash: params.sig_hash.filter(|s| !s.is_empty()),
        repo: query::repo(params.repo.as_deref())?,
    };
    let page = query::read(&state, move |store| {
        store.events_page(&filter, before, limit)
    })
    .await?;
    let next_before_seq = if page.more {
        page.items.last().map(|e| e.seq)
    } else {
        None
    };
    let events = page
        .items
        .into_iter()
        .map(|e| EventItem {
            seq: e.seq,
            received_at: iso_timestamp(e.value.received_at_ms),
            op: raw(e.value.line),
            source_original: e.value.source_original,
        })
        .collect();
    Ok(Json(EventsPage {
        events,
        next_before_seq,
    }))
}
