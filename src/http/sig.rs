//! `GET /sig/{sig_hash}?repo=`: everything stored under one sig_hash in one repository
//! (verdicts as their original JSON, outcome rows as stored, events), in seq order, paged with
//! `after_seq`; a page also stops before `--max-response` bytes.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use serde_json::value::RawValue;

use super::page::{self, Entry, ObjectBody};
use super::query::{self, Params, PathParam, ReadLimits};
use super::{ApiError, AppState};
use crate::model::MAX_KEY_BYTES;
use crate::store::SigRecord;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Item {
    Verdict {
        seq: u64,
        verdict: Box<RawValue>,
    },
    Outcome {
        seq: u64,
        row: Box<RawValue>,
    },
    Event {
        seq: u64,
        op: Box<RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        body: Option<Box<RawValue>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        source_original: Option<String>,
    },
}

/// Stored JSON text, sent as is. Everything stored was validated JSON; should a value ever not
/// be, it is sent as a JSON string rather than failing the whole page.
pub(super) fn raw(text: String) -> Box<RawValue> {
    // A legacy line is kept as JavaScript wrote it, lone surrogates included; sent as U+FFFD.
    let mended = match crate::jsjson::lone_surrogates_replaced(&text) {
        std::borrow::Cow::Owned(mended) => Some(mended),
        std::borrow::Cow::Borrowed(_) => None,
    };
    RawValue::from_string(mended.unwrap_or(text)).unwrap_or_else(|e| {
        let quoted = serde_json::to_string(&format!("unreadable stored JSON: {e}"))
            .unwrap_or_else(|_| "null".into());
        RawValue::from_string(quoted).expect("a serialized string is valid JSON")
    })
}

impl From<SigRecord> for Item {
    fn from(record: SigRecord) -> Item {
        match record {
            SigRecord::Verdict(v) => Item::Verdict {
                seq: v.seq,
                verdict: raw(v.value.raw_json),
            },
            SigRecord::Outcome(o) => Item::Outcome {
                seq: o.seq,
                row: raw(o.value.line),
            },
            SigRecord::Event(e) => Item::Event {
                seq: e.seq,
                op: raw(e.value.line),
                body: e.value.body.map(raw),
                source_original: e.value.source_original,
            },
        }
    }
}

/// The `type` of a record in the answer.
fn kind_name(record: &SigRecord) -> &'static str {
    match record {
        SigRecord::Verdict(_) => "verdict",
        SigRecord::Outcome(_) => "outcome",
        SigRecord::Event(_) => "event",
    }
}

pub async fn get(
    State(state): State<AppState>,
    PathParam(sig_hash): PathParam,
    params: Params,
    limits: ReadLimits,
) -> Result<Response, ApiError> {
    params.only(&["repo", "limit", "after_seq"], "GET /sig/{sig_hash}")?;
    if sig_hash.is_empty() || sig_hash.len() > MAX_KEY_BYTES {
        return Err(ApiError::bad_request(
            "sig_hash",
            format!(
                "sig_hash must be 1 to {MAX_KEY_BYTES} bytes, got {}",
                sig_hash.len()
            ),
        ));
    }
    let repo = query::repo(params.repo.as_deref())?;
    let limit = query::limit(params.limit.as_deref())?;
    let after = query::cursor("after_seq", params.after_seq.as_deref())?.unwrap_or(0);
    let key = sig_hash.clone();
    // The answer is made by the read (`page::ObjectBody`).
    let (answer, _) = query::read_within(&state, limits, move |store, budget| {
        let page = store.by_sig_within(&repo, &key, after, limit, budget)?;
        let list = page::cursored_list(page, limits.max_response, |record| Entry {
            seq: record.seq(),
            kind: Some(kind_name(&record)),
            sig_hash: None,
            item: Item::from(record),
        });
        // `Item`s within the answer's byte budget (`page.rs`), and `next_after_seq` to pass as
        // `after_seq` for the next page (absent on the last).
        Ok(list.and_then(|(records, next_after_seq)| {
            let mut body = ObjectBody::for_list(&records)
                .field("sig_hash", &key)?
                .list("records", records);
            if let Some(seq) = next_after_seq {
                body = body.field("next_after_seq", &seq)?;
            }
            Ok(body.finish())
        }))
    })
    .await?;
    answer
}
