//! `/event` and `/events`: the observer's contract (`POST /event`, unchanged for old clients)
//! and the recent-events listing that replaces the observer's ring buffer.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ingest::{self, EVENTS, IdempotencyKey, IngestBody, ObserverBody};
use super::page::{self, Entry, ObjectBody};
use super::query::{self, Params, ReadLimits};
use super::sig::raw;
use super::{ApiError, AppState};
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

/// `POST /event`: one observer event (200 with its seq) or an NDJSON batch. The content type
/// is read as the legacy observer read it (see [`ObserverBody`]).
pub async fn post(
    State(state): State<AppState>,
    key: IdempotencyKey,
    ObserverBody(body): ObserverBody,
) -> Result<Response, ApiError> {
    match body {
        IngestBody::Single(bytes) => {
            let ((), written) = ingest::single(&state, bytes, &EVENTS, &key, |_| ()).await?;
            Ok(Json(Posted {
                ok: true,
                seq: written.seq(),
                duplicate: matches!(written, Written::Duplicate { .. }),
            })
            .into_response())
        }
        IngestBody::Batch(bytes) => ingest::batch(&state, bytes, &EVENTS, &key).await,
    }
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

/// `GET /events?source=&event_kind=&sig_hash=&repo=&before_seq=&limit=`: recent events newest
/// first (`sig_hash` in `repo`).
pub async fn list(
    State(state): State<AppState>,
    params: Params,
    limits: ReadLimits,
) -> Result<Response, ApiError> {
    params.only(
        &[
            "repo",
            "source",
            "event_kind",
            "sig_hash",
            "limit",
            "before_seq",
        ],
        "GET /events",
    )?;
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
    // The answer is made by the read (`page::ObjectBody`).
    let (answer, _) = query::read_within(&state, limits, move |store, budget| {
        let page = store.events_page_within(&filter, before, limit, budget)?;
        let list = page::cursored_list(page, limits.max_response, |e| Entry {
            seq: e.seq,
            kind: None,
            sig_hash: None,
            item: EventItem {
                seq: e.seq,
                received_at: iso_timestamp(e.value.received_at_ms),
                op: raw(e.value.line),
                source_original: e.value.source_original,
            },
        });
        // `EventItem`s within the answer's byte budget (`page.rs`), and `next_before_seq` to
        // pass as `before_seq` for the next (older) page (absent on the last).
        Ok(list.and_then(|(events, next_before_seq)| {
            let mut body = ObjectBody::for_list(&events).list("events", events);
            if let Some(seq) = next_before_seq {
                body = body.field("next_before_seq", &seq)?;
            }
            Ok(body.finish())
        }))
    })
    .await?;
    answer
}
