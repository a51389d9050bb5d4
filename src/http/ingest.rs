//! What the three write routes share: the body extractor (content type decides one record or
//! an NDJSON batch), the idempotency key, validation of every line before anything is queued,
//! submission to the group-commit writer, and the batch report.
//!
//! Idempotency keys: a write may carry an `Idempotency-Key` header; a line of an NDJSON batch
//! may carry its own `idempotency_key` (or `event_id`) string field, and otherwise gets the
//! header's key followed by `#` and its record's number (blank lines not counted), and is also
//! known by its content: the batch is matched as a whole against the lines stored under the
//! header (`store/batch_keys.rs`), so a retry without a rejected line, with it mended, or
//! with its lines in another order finds each line it stored before. A key is
//! checked and stored in the same transaction as its record, so a retry with the same key
//! (within the keys' window) is answered with what the first attempt stored (`duplicate: true`,
//! its seq), and the same key with another request is refused (409).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::intake::{self, Parse};
use crate::model::now_ms;
use crate::store::{ClientKey, NewEvent, NewOutcome, NewVerdict, Put, Record, Written};

/// Longest idempotency key accepted.
pub const MAX_KEY_BYTES: usize = 200;

/// Which write route a client key was given on: the same key on two routes is two keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRoute {
    Verdict,
    Event,
    Outcome,
    Dismissal,
}

impl KeyRoute {
    pub(super) fn tag(self) -> u8 {
        match self {
            KeyRoute::Verdict => b'v',
            KeyRoute::Event => b'e',
            KeyRoute::Outcome => b'o',
            KeyRoute::Dismissal => b'd',
        }
    }
}

/// What a write route stores: how a body becomes its record (whose type tells its kind), how
/// that becomes the store's `Record`, and which route its idempotency keys belong to.
pub struct RecordKind<R> {
    pub parse: Parse<R>,
    pub into_record: fn(R) -> Record,
    pub route: KeyRoute,
}

pub const VERDICTS: RecordKind<NewVerdict> = RecordKind {
    parse: intake::verdict,
    into_record: Record::Verdict,
    route: KeyRoute::Verdict,
};

pub const EVENTS: RecordKind<NewEvent> = RecordKind {
    parse: intake::event,
    into_record: Record::Event,
    route: KeyRoute::Event,
};

pub const OUTCOMES: RecordKind<NewOutcome> = RecordKind {
    parse: intake::outcome,
    into_record: Record::Outcome,
    route: KeyRoute::Outcome,
};

impl<R> RecordKind<R> {
    /// The put for a record, with its client key when the request gave one.
    fn put(&self, record: R, client_key: Option<ClientKey>) -> Put {
        Put {
            record: (self.into_record)(record),
            import_key: None,
            client_key,
        }
    }
}

/// The `Idempotency-Key` header: 1 to [`MAX_KEY_BYTES`] visible ASCII characters.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all("idempotency-key").iter();
        let Some(value) = values.next() else {
            return Ok(IdempotencyKey(None));
        };
        // Two keys on one request: which one a retry would repeat is anyone's guess.
        if values.any(|other| other != value) {
            return Err(ApiError::bad_request(
                "idempotency-key",
                "idempotency-key is given more than once with different values: send one key \
                 per request",
            ));
        }
        let key = value.to_str().ok().filter(|k| valid_key(k)).ok_or_else(|| {
            ApiError::bad_request(
                "idempotency-key",
                format!(
                    "idempotency-key must be 1 to {MAX_KEY_BYTES} visible ASCII characters, got \
                     {:?}",
                    String::from_utf8_lossy(value.as_bytes())
                ),
            )
        })?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_BYTES && key.bytes().all(|b| b.is_ascii_graphic())
}

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
        let batch = match body_type(req.headers()) {
            BodyType::Json => false,
            BodyType::Batch => true,
            BodyType::Other(got) => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "content-type must be application/json (or application/x-ndjson, where \
                     the route takes a batch), got {got}"
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

/// The body of `POST /event`: as [`IngestBody`], except that a body whose content type is not
/// an NDJSON one is one JSON record whatever the type says (none, `text/plain`, a form type),
/// and that record's bytes are read as the legacy observer read them (Bun's
/// `Request.json()`, which decodes UTF-8 before parsing): a leading byte-order mark dropped,
/// bytes that are not UTF-8 read as U+FFFD. The observer's clients do not all say
/// `application/json` (`fetch` with a string body and no headers sends `text/plain`), and the
/// observer took their events.
#[derive(Debug)]
pub struct ObserverBody(pub IngestBody);

impl FromRequest<AppState> for ObserverBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let kind = body_type(req.headers());
        // A web page may send a `text/plain` or form POST to any address without asking
        // (no CORS preflight), and a browser says where it comes from: such a request is not
        // an observer client's, and is held to the JSON label a preflight would have checked.
        if let BodyType::Other(got) = &kind
            && req.headers().contains_key(header::ORIGIN)
        {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content-type must be application/json or application/x-ndjson for a request \
                 from a web page (it has an Origin header), got {got}"
            )));
        }
        let max = state.config.max_body_bytes;
        let bytes = Bytes::from_request(req, state).await?;
        Ok(ObserverBody(if matches!(kind, BodyType::Batch) {
            IngestBody::Batch(bytes)
        } else {
            IngestBody::Single(as_decoded_text(bytes, max)?)
        }))
    }
}

/// `bytes` as a WHATWG UTF-8 decode leaves them: without a leading byte-order mark, each
/// invalid sequence replaced by U+FFFD. Valid UTF-8 without a mark is returned as it is. A
/// replacement is 3 bytes where the byte it stands for was 1, so the decoded body is held to
/// `max` again, as it is built: it never holds more than `max` bytes.
fn as_decoded_text(bytes: Bytes, max: usize) -> Result<Bytes, ApiError> {
    let bytes = match bytes.strip_prefix("\u{feff}".as_bytes()) {
        Some(_) => bytes.slice(3..),
        None => bytes,
    };
    if std::str::from_utf8(&bytes).is_ok() {
        return Ok(bytes);
    }
    let mut mended = String::with_capacity(bytes.len().min(max));
    for chunk in bytes.utf8_chunks() {
        let replacement = if chunk.invalid().is_empty() {
            ""
        } else {
            "\u{fffd}"
        };
        if mended.len() + chunk.valid().len() + replacement.len() > max {
            return Err(ApiError::PayloadTooLarge(format!(
                "the body is larger than the limit of {max} bytes (--max-body) once its bytes \
                 that are not UTF-8 are read as U+FFFD"
            )));
        }
        mended.push_str(chunk.valid());
        mended.push_str(replacement);
    }
    Ok(Bytes::from(mended))
}

/// What a write's `content-type` says its body is.
enum BodyType {
    Json,
    Batch,
    /// Anything else, as the request gave it (quoted), or `none`.
    Other(String),
}

/// Whether a request's body is an NDJSON batch (by its `content-type`, as the write routes read
/// it): each of its lines becomes a record held until the batch's commit is answered.
pub(super) fn is_batch(headers: &HeaderMap) -> bool {
    matches!(body_type(headers), BodyType::Batch)
}

/// What a parsed batch line holds in memory besides its bytes in the body, from its parse until
/// the batch is answered: its record (a [`Put`], as large as its largest kind), its line number
/// and what became of it, and an allowance for what the record derives (an event's
/// `ops.jsonl` line, keys, small strings). A batch of 3-byte lines holds hundreds of times its
/// body: the bodies in flight are counted with this per line (`body.rs`).
pub(super) const BATCH_LINE_COST: usize =
    std::mem::size_of::<(usize, Put)>() + std::mem::size_of::<Written>() + 512;
// A record is hundreds of bytes (1,096 counted at 2026-12-06), not tens of thousands: a batch
// of legitimate lines must not be counted far beyond what it holds.
const _: () = assert!(BATCH_LINE_COST < 4096);

fn body_type(headers: &HeaderMap) -> BodyType {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return BodyType::Other("none".to_owned());
    };
    // Borrowed unless the header holds bytes that are not UTF-8: this runs for every write.
    let content_type = String::from_utf8_lossy(value.as_bytes());
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let is = |name: &str| essence.eq_ignore_ascii_case(name);
    if is("application/json") {
        BodyType::Json
    } else if is("application/x-ndjson") || is("application/ndjson") || is("application/jsonl") {
        BodyType::Batch
    } else {
        BodyType::Other(format!("{content_type:?}"))
    }
}

/// Commits `puts` through the group-commit writer. From the moment they are queued, a request
/// timeout answers "may have been committed" rather than "retry" (`limits::mark_queued`).
pub async fn submit(state: &AppState, puts: Vec<Put>) -> Result<Vec<Written>, ApiError> {
    super::limits::mark_queued();
    Ok(state.writer.submit(puts).await?)
}

/// Validates and commits one record; returns what `describe` takes from it (before it goes to
/// the writer) with what became of it. A record stored before under the same key is
/// `Written::Duplicate`; a key first used with another request is refused here (409). The
/// body is dropped once parsed: it is not held while the commit is awaited.
pub async fn single<R, T>(
    state: &AppState,
    body: Bytes,
    kind: &RecordKind<R>,
    key: &IdempotencyKey,
    describe: impl FnOnce(&R) -> T,
) -> Result<(T, Written), ApiError> {
    let now = now_ms();
    let record = (kind.parse)(&body, now)?;
    let described = describe(&record);
    let client_key =
        (key.0.as_deref()).map(|key| ClientKey::new(kind.route.tag(), key, &body, now));
    let put = kind.put(record, client_key);
    drop(body);
    let written = submit(state, vec![put]).await?;
    let written = written
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal("the writer answered without a result".into()))?;
    if let Written::KeyReused { seq } = written {
        return Err(key_reused(seq));
    }
    Ok((described, written))
}

/// A 409, not the 422 of the IETF draft on idempotency keys: the request is valid as written
/// and conflicts only with what the server holds for its key (a generic client, or an API
/// fuzzer, treats a 422 for a valid request as the server's fault).
pub(super) fn key_reused(seq: u64) -> ApiError {
    ApiError::Conflict {
        message: key_reused_message(seq),
        field: Some("idempotency-key".into()),
    }
}

fn key_reused_message(seq: u64) -> String {
    format!(
        "this idempotency key was first used with a different request (answered with seq {seq}); \
         use a new key for a new request"
    )
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

/// A line's own idempotency key field, read without a second full parse of lines that have
/// none.
#[derive(Deserialize)]
struct LineKey {
    #[serde(default)]
    idempotency_key: Option<serde_json::Value>,
    #[serde(default)]
    event_id: Option<serde_json::Value>,
}

/// Where a batch line's client key comes from.
#[derive(Debug, PartialEq, Eq)]
enum LineKeyFrom<'h> {
    /// Its own `idempotency_key` or `event_id` field (named).
    Own(String, &'static str),
    /// The request's `Idempotency-Key` header.
    Header(&'h str),
    /// Nowhere: the line has no key.
    Unkeyed,
}

/// Where the key of line `line_no` comes from: its own `idempotency_key` (or `event_id`) field,
/// else the batch header's key when there is one (the line is then keyed by the header, its
/// record's number and its content: [`ClientKey::batch_line`]). An `idempotency_key` that is
/// not a valid key is an error; an `event_id` that is not is ignored.
fn line_key<'h>(
    line: &[u8],
    line_no: usize,
    header: Option<&'h str>,
) -> Result<LineKeyFrom<'h>, LineError> {
    let mentions = |needle: &[u8]| memchr::memmem::find(line, needle).is_some();
    if mentions(b"\"idempotency_key\"") || mentions(b"\"event_id\"") {
        // The line as its record is read (lone surrogates mended, numbers past a double as
        // null), so that its key is found whenever the record is.
        let own = std::str::from_utf8(line).ok().and_then(|text| {
            let text = crate::jsjson::lone_surrogates_replaced(text);
            crate::jsjson::parse_mended::<LineKey>(text).1.ok()
        });
        for (field, value) in own
            .map(|k| {
                [
                    ("idempotency_key", k.idempotency_key),
                    ("event_id", k.event_id),
                ]
            })
            .into_iter()
            .flatten()
        {
            match value {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(key)) if valid_key(&key) => {
                    return Ok(LineKeyFrom::Own(key, field));
                }
                // An `event_id` that cannot be a key is the client's own field (a number, say),
                // not a key it meant: the line is keyed as if it had none.
                Some(_) if field == "event_id" => {}
                Some(other) => {
                    return Err(LineError {
                        line: line_no,
                        error: format!(
                            "{field} must be 1 to {MAX_KEY_BYTES} visible ASCII characters, got \
                             {}",
                            crate::model::describe(&other)
                        ),
                        field: Some(field.to_owned()),
                    });
                }
            }
        }
    }
    Ok(header.map_or(LineKeyFrom::Unkeyed, LineKeyFrom::Header))
}

/// The lines of an NDJSON body that are records, numbered from 1 among all its lines: a
/// trailing `\r` dropped, blank (whitespace-only) lines skipped.
pub fn record_lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
}

/// Batches parsed by this process: each batch's number tells its lines from another request's
/// under the same key that the writer commits with them.
static BATCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A good line of a batch: its number, its put, and where its key came from (the field a
/// refusal of a key first used with another request names), if it has one.
pub struct BatchLine {
    pub line: usize,
    pub put: Put,
    pub key_field: Option<&'static str>,
}

/// A batch's good lines, and its bad lines.
pub type ParsedBatch = (Vec<BatchLine>, Vec<LineError>);

/// Splits an NDJSON body into numbered lines (1-based; a trailing `\r` dropped, blank lines
/// skipped) and parses each with `parse`: the puts of the good lines with their line numbers,
/// in order, and the errors of the bad ones. Refuses a batch with no lines or more than
/// `max_lines`.
pub fn parse_batch<R>(
    body: &[u8],
    max_lines: usize,
    kind: &RecordKind<R>,
    now_ms: u64,
    header_key: Option<&str>,
) -> Result<ParsedBatch, ApiError> {
    let lines: Vec<(usize, &[u8])> = record_lines(body).collect();
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
    let route = kind.route.tag();
    let request = BATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A record's number, not its line's, is its position: blank lines are skipped, so a retry
    // that adds or drops one does not give its records other keys.
    for (record_no, (line_no, line)) in (1..).zip(lines) {
        let (key, key_field) = match line_key(line, line_no, header_key) {
            Ok(LineKeyFrom::Own(key, field)) => {
                (Some(ClientKey::new(route, &key, line, now_ms)), Some(field))
            }
            Ok(LineKeyFrom::Header(header)) => (
                Some(ClientKey::batch_line(
                    route, header, record_no, line, request, now_ms,
                )),
                Some("idempotency-key"),
            ),
            Ok(LineKeyFrom::Unkeyed) => (None, None),
            Err(e) => {
                rejected.push(e);
                continue;
            }
        };
        match (kind.parse)(line, now_ms) {
            Ok(record) => puts.push(BatchLine {
                line: line_no,
                put: kind.put(record, key),
                key_field,
            }),
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
/// order, and reports each bad one by its line number (a line whose key was first used with
/// another request among them). The answer is 200 when at least one line was good, 400 when
/// none was.
pub async fn batch<R>(
    state: &AppState,
    body: Bytes,
    kind: &RecordKind<R>,
    key: &IdempotencyKey,
) -> Result<Response, ApiError> {
    let (numbered, mut rejected) = parse_batch(
        &body,
        state.config.max_batch_lines,
        kind,
        now_ms(),
        key.0.as_deref(),
    )?;
    // The records hold what they need of it: the body is not held while the commit is awaited.
    drop(body);
    let (lines, puts): (Vec<_>, Vec<Put>) = numbered
        .into_iter()
        .map(|l| ((l.line, l.key_field), l.put))
        .unzip();
    let mut written = if puts.is_empty() {
        Vec::new()
    } else {
        submit(state, puts).await?
    };
    for (&(line, key_field), w) in lines.iter().zip(&written) {
        if let Written::KeyReused { seq } = *w {
            // Named where the key came from: the header, or the line's own field.
            rejected.push(LineError {
                line,
                error: key_reused_message(seq),
                field: key_field.map(str::to_owned),
            });
        }
    }
    rejected.sort_by_key(|e| e.line);
    written.retain(|w| !matches!(w, Written::KeyReused { .. }));
    let duplicates = written
        .iter()
        .filter(|w| matches!(w, Written::Duplicate { .. }))
        .count();
    let last_seq = written.iter().filter_map(Written::last_stored_seq).max();
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
