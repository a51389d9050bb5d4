//! `GET /feed`: the change feed. Every record committed after the consumer's position, in seq
//! order, as Server-Sent Events when the client accepts `text/event-stream`, else as long-poll
//! JSON pages. The consumer owns its position (a seq); the server keeps nothing per consumer.
//!
//! Bounds: at most `--max-feed-clients` feed requests at once (beyond: 503); a stream sends one
//! page (at most [`PAGE_RECORDS`] records, about [`PAGE_BYTES`] of text) at a time through a
//! buffer of [`BUFFER_PAGES`] pages, and a consumer that leaves a page untaken for
//! `stall_timeout` is cut (its connection dropped; it resumes from its last id). Every page
//! ready or being sent, and every long-poll answer until sent, is counted in the pool of
//! answers (`--max-answer-bytes`): a stream waits for room, holding no page, for as long as its
//! consumer is not the one stalled; a long poll is a 503.
//! Waiting consumers wake on the writer's published seq, never by polling the database.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;

use super::connections::{BodyClock, DropConnection};
use super::limits::{HeldAnswer, held_until_sent};
use super::query;
use super::sig::raw;
use super::{ApiError, AppState};
use crate::model::iso_timestamp;
use crate::store::{FeedHistory, FeedPage, FeedTypes, SigRecord};

/// Default of `--max-feed-clients`.
pub const DEFAULT_MAX_CLIENTS: usize = 64;
/// Longest `wait` of a long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Records in one page of a stream.
pub const PAGE_RECORDS: usize = 256;
/// A page (of a stream or a long poll) stops once its records' stored text reaches this; a
/// single larger record still goes alone (a body is at most `--max-body`). With
/// [`BUFFER_PAGES`] ready and one being read, a stream holds about three pages.
pub const PAGE_BYTES: usize = 256 << 10;
/// Pages a stream may hold ready for its consumer.
pub const BUFFER_PAGES: usize = 2;

/// The feed's shared state: its client limit, its timings and its shutdown switch.
#[derive(Clone, Debug)]
pub struct Feed {
    clients: Arc<Semaphore>,
    max_clients: usize,
    keep_alive: Duration,
    stall_timeout: Duration,
    closing: Arc<watch::Sender<bool>>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new(DEFAULT_MAX_CLIENTS)
    }
}

impl Feed {
    pub fn new(max_clients: usize) -> Feed {
        let max_clients = max_clients.max(1);
        Feed {
            clients: Arc::new(Semaphore::new(max_clients)),
            max_clients,
            keep_alive: Duration::from_secs(15),
            stall_timeout: Duration::from_secs(10),
            closing: Arc::new(watch::channel(false).0),
        }
    }

    /// Sets how often an idle stream sends a keep-alive comment and how long a stream waits
    /// for its consumer to take a page before cutting it (defaults: 15 s and 10 s).
    pub fn with_timing(mut self, keep_alive: Duration, stall_timeout: Duration) -> Feed {
        self.keep_alive = keep_alive;
        self.stall_timeout = stall_timeout;
        self
    }

    /// Ends every stream and answers every waiting long poll: at shutdown, so that open
    /// streams do not hold the graceful shutdown until its timeout.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// The query string, as given; each value is checked by hand so that a bad one is a 400 naming
/// it.
#[derive(Debug, Default, Deserialize)]
pub struct FeedParams {
    after_seq: Option<String>,
    history: Option<String>,
    types: Option<String>,
    wait: Option<String>,
    limit: Option<String>,
}

/// One item of the feed: a record, or the notice that records the consumer had not seen were
/// deleted by retention.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Item {
    Verdict {
        seq: u64,
        received_at: String,
        sig_hash: String,
        verdict: Box<RawValue>,
    },
    Outcome {
        seq: u64,
        received_at: String,
        row: Box<RawValue>,
    },
    Event {
        seq: u64,
        received_at: String,
        op: Box<RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        body: Option<Box<RawValue>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        source_original: Option<String>,
    },
    Resync {
        after_seq: u64,
        events_deleted_through: u64,
        oldest_seq: u64,
    },
}

impl Item {
    fn seq(&self) -> Option<u64> {
        match self {
            Item::Verdict { seq, .. } | Item::Outcome { seq, .. } | Item::Event { seq, .. } => {
                Some(*seq)
            }
            Item::Resync { .. } => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Item::Verdict { .. } => "verdict",
            Item::Outcome { .. } => "outcome",
            Item::Event { .. } => "event",
            Item::Resync { .. } => "resync",
        }
    }
}

impl From<SigRecord> for Item {
    fn from(record: SigRecord) -> Item {
        match record {
            SigRecord::Verdict(v) => Item::Verdict {
                seq: v.seq,
                received_at: iso_timestamp(v.value.received_at_ms),
                sig_hash: v.sig_hash,
                verdict: raw(v.value.raw_json),
            },
            SigRecord::Outcome(o) => Item::Outcome {
                seq: o.seq,
                received_at: iso_timestamp(o.value.received_at_ms),
                row: raw(o.value.line),
            },
            SigRecord::Event(e) => Item::Event {
                seq: e.seq,
                received_at: iso_timestamp(e.value.received_at_ms),
                op: raw(e.value.line),
                body: e.value.body.map(raw),
                source_original: e.value.source_original,
            },
        }
    }
}

/// The resync notice when events after `after_seq` the consumer wants were deleted. Records of
/// other types after `after_seq` are still served after it: only the deleted events are lost.
fn resync(after_seq: u64, types: FeedTypes, page: &FeedPage) -> Option<Item> {
    (types.events && after_seq < page.events_deleted_through).then(|| Item::Resync {
        after_seq,
        events_deleted_through: page.events_deleted_through,
        oldest_seq: page.events_deleted_through + 1,
    })
}

/// A long-poll answer.
#[derive(Serialize)]
struct FeedAnswer {
    records: Vec<Item>,
    /// The position after this answer: pass it as `after_seq` next time.
    next_after_seq: u64,
    /// The last seq committed when the answer was read.
    last_seq: u64,
    /// Which history the positions are in: pass it as `history` next time.
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<String>,
}

/// The answers' header naming the history their positions are in (see [`FeedHistory`]).
pub const HISTORY_HEADER: &str = "feed-history";

fn history_hex(id: u64) -> String {
    format!("{id:016x}")
}

pub async fn get(
    State(state): State<AppState>,
    clock: Option<Extension<BodyClock>>,
    headers: HeaderMap,
    uri: Uri,
    params: Result<Query<FeedParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    // A misspelt parameter (`type`, `after`) would quietly read every type, or from the start.
    query::only_params(
        uri.query(),
        &["after_seq", "history", "types", "wait", "limit"],
        "GET /feed",
    )?;
    let Query(params) = params?;
    // Both are checked: a bad after_seq is a 400 even when Last-Event-ID wins over it.
    let after_seq = query::cursor("after_seq", params.after_seq.as_deref())?.unwrap_or(0);
    let (after_seq, field) = match last_event_id(&headers)? {
        Some(id) => (id, "last-event-id"),
        None => (after_seq, "after_seq"),
    };
    let types = parse_types(params.types.as_deref())?;
    let limit = query::limit(params.limit.as_deref())?;
    let wait = parse_wait(params.wait.as_deref())?;
    let feed = &state.feed;
    let Ok(permit) = feed.clients.clone().try_acquire_owned() else {
        return Err(ApiError::Unavailable {
            message: format!(
                "too many feed clients ({}, --max-feed-clients); retry shortly",
                feed.max_clients
            ),
            retry_after_secs: 2,
        });
    };
    let history = parse_history(params.history.as_deref())?;
    let ours = refuse_position_past_history(&state, after_seq, field, history).await?;
    let mut answer = if wants_event_stream(&headers) {
        stream(
            state,
            permit,
            after_seq,
            types,
            clock.map(|Extension(clock)| clock.drop_connection()),
        )
    } else {
        let mut answer = long_poll(&state, after_seq, types, limit, wait).await?;
        drop(permit);
        answer.history = ours.id.map(history_hex);
        let answer = ([(header::CACHE_CONTROL, "no-cache")], Json(answer)).into_response();
        held_until_sent(state.answers(), answer)?
    };
    if let Some(id) = ours.id {
        let value = HeaderValue::from_str(&history_hex(id)).expect("hex digits");
        answer.headers_mut().insert(HISTORY_HEADER, value);
    }
    // The answer's form (a stream or a page) follows `Accept`.
    answer
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(answer)
}

/// The `history` parameter: 16 hex digits, as an answer gave it.
fn parse_history(raw: Option<&str>) -> Result<Option<u64>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(hex) => crate::model::parse_hex16(hex).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "history",
                format!("history must be 16 hex digits, as an answer gave it, got {hex:?}"),
            )
        }),
    }
}

/// Every position the feed hands out is a committed seq, so one past the last seq was not
/// this database's: a database restored from an older backup, another database, or a forged
/// cursor. Following it would skip every record the database commits until its seqs pass it:
/// refused, saying so, instead. A position given with the `history` it came from is checked
/// against that too, which still holds once the restored database's seqs have passed it.
/// Returns this database's history.
async fn refuse_position_past_history(
    state: &AppState,
    after_seq: u64,
    field: &str,
    history: Option<u64>,
) -> Result<FeedHistory, ApiError> {
    let (last_seq, ours) = query::read(state, |store| store.feed_position()).await?;
    if after_seq > last_seq {
        return Err(ApiError::Conflict {
            message: format!(
                "{field} {after_seq} is past this database's last seq {last_seq}: the position \
                 is not from this database's history (restored from an older backup?); resume \
                 from {last_seq}, or from 0 to read everything again"
            ),
            field: Some(field.to_owned()),
        });
    }
    match history {
        // Position 0 (before any record) is a position in every history.
        Some(theirs) if after_seq > 0 && !ours.holds(theirs, after_seq) => {
            let shared = match ours.shared_with(theirs) {
                Some(through) => format!(
                    "this database was copied from that history at seq {through}, and its \
                     records after it are not that history's"
                ),
                _ => "this database does not share it (another database, or restored from a \
                      backup)"
                    .to_owned(),
            };
            Err(ApiError::Conflict {
                message: format!(
                    "{field} {after_seq} is a position in history {}, not in this database's \
                     ({}): {shared}; resume from a position of this history (0 reads \
                     everything again)",
                    history_hex(theirs),
                    ours.id.map_or_else(|| "none".to_owned(), history_hex),
                ),
                field: Some("history".to_owned()),
            })
        }
        _ => Ok(ours),
    }
}

/// Answers at once when records are there; else waits up to `wait` for a commit that brings
/// one (or for shutdown), and answers with what is there then.
async fn long_poll(
    state: &AppState,
    after_seq: u64,
    types: FeedTypes,
    limit: usize,
    wait: Duration,
) -> Result<FeedAnswer, ApiError> {
    // Subscribed before the first read: a commit after it wakes the wait below.
    let mut committed = state.writer.committed();
    committed.borrow_and_update();
    let mut closing = state.feed.closing.subscribe();
    let deadline = Instant::now() + wait;
    let mut cursor = after_seq;
    loop {
        let page = read_page(state, cursor, types, limit).await?;
        // Every read, not only the first: retention may delete events committed while this
        // waited, before they were read.
        let notice = resync(cursor, types, &page);
        let next_after_seq = page.next_after_seq(cursor);
        if !page.records.is_empty() || notice.is_some() || Instant::now() >= deadline {
            let records = notice
                .into_iter()
                .chain(page.records.into_iter().map(Item::from))
                .collect();
            return Ok(FeedAnswer {
                records,
                next_after_seq,
                last_seq: page.last_seq,
                history: None,
            });
        }
        cursor = next_after_seq;
        let woke = tokio::select! {
            seen = async { committed.wait_for(|&seq| seq > cursor).await.is_ok() } => seen,
            () = tokio::time::sleep_until(deadline) => false,
            _ = async { closing.wait_for(|&closed| closed).await.is_ok() } => false,
        };
        if !woke {
            // Nothing was there at the last read, not even a notice.
            return Ok(FeedAnswer {
                records: Vec::new(),
                next_after_seq: cursor,
                last_seq: page.last_seq,
                history: None,
            });
        }
    }
}

async fn read_page(
    state: &AppState,
    after_seq: u64,
    types: FeedTypes,
    limit: usize,
) -> Result<FeedPage, ApiError> {
    query::read(state, move |store| {
        store.feed(after_seq, types, limit, PAGE_BYTES)
    })
    .await
}

/// The Server-Sent Events answer: a task reads pages into a small buffer that the body drains.
/// The task holds the stream's feed slot: a stream it cuts leaves the slot free at once.
fn stream(
    state: AppState,
    permit: OwnedSemaphorePermit,
    after_seq: u64,
    types: FeedTypes,
    dropper: Option<DropConnection>,
) -> Response {
    let (chunks, receiver) = mpsc::channel(BUFFER_PAGES);
    let taking = Arc::new(Taking {
        cut: AtomicBool::new(false),
        handed: AtomicBool::new(false),
        asked_ms: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    let producer = Producer {
        chunks,
        taking: taking.clone(),
        dropper,
        _permit: permit,
    };
    tokio::spawn(produce(state, after_seq, types, producer));
    let body = FeedBody {
        chunks: receiver,
        taking,
        sending: None,
    };
    let mut response = Body::new(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx and its kin buffer answers by default; this one must reach the consumer as sent.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// How a stream's consumer takes its pages, as its body sees it and its task reads it.
struct Taking {
    /// Set when the stream is cut: the body then fails instead of ending cleanly.
    cut: AtomicBool,
    /// Whether hyper holds a page it has not asked past yet (its consumer has not taken it).
    handed: AtomicBool,
    /// When hyper last asked the body for a page, in milliseconds since `epoch`.
    asked_ms: AtomicU64,
    epoch: Instant,
}

impl Taking {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the consumer has left a page untaken for `stall` (hyper holds one it has not
    /// asked past for that long).
    fn stalled(&self, stall: Duration) -> bool {
        // `handed` first: the body sets it after the time of the ask that handed the page, so
        // the time read next is that ask's or a later one's, never an older one beside a page
        // just handed (which would cut a consumer that reads).
        if !self.handed.load(Ordering::Acquire) {
            return false;
        }
        let since = self
            .now_ms()
            .saturating_sub(self.asked_ms.load(Ordering::Acquire));
        u128::from(since) >= stall.as_millis()
    }
}

/// What the stream's task holds: the sending end of the buffer, what the body says of its
/// consumer, its connection's drop, and the stream's feed slot.
struct Producer {
    chunks: mpsc::Sender<Chunk>,
    taking: Arc<Taking>,
    dropper: Option<DropConnection>,
    /// Counts the stream against `--max-feed-clients` while the task runs.
    _permit: OwnedSemaphorePermit,
}

/// A page's text, its bytes counted in the pool of answers until the next is taken from the
/// body (by then hyper has written it, or holds it in a buffer it drains before asking again).
/// Its bytes are taken from the feed's share of the pool too ([`AppState::feed_answers`]).
type Chunk = (Bytes, [HeldAnswer; 2]);

/// How long a stream waits between two looks at the room in the pool of answers.
const ROOM_POLL: Duration = Duration::from_millis(20);

/// What became of a chunk offered to the stream.
enum Offered {
    /// In the buffer.
    Taken,
    /// The pool of answers had no room for it: dropped, so that a page waiting holds nothing.
    NoRoom,
    /// The stream is over: its consumer went away, was too slow, or the server is stopping.
    Ended,
}

impl Producer {
    /// Ends the stream abruptly: the body fails instead of ending cleanly, and the connection
    /// is dropped, since hyper, its buffer never drained, may not ask the body again (a
    /// consumer that stops reading held its connection until `--write-timeout`, and a
    /// shutdown for as long: reviews').
    fn cut(&self) {
        self.taking.cut.store(true, Ordering::Release);
        if let Some(dropper) = &self.dropper {
            dropper.now();
        }
    }

    /// Cuts the stream of a consumer that left a page untaken for `stall`.
    fn cut_for_stall(&self, stall: Duration) {
        tracing::info!(
            stall_secs = stall.as_secs_f64(),
            "feed consumer too slow; stream cut (it resumes from its last id)"
        );
        self.cut();
    }

    /// Sends `chunk` when the pool of answers has room for it, once the buffer has room,
    /// within the stall timeout.
    async fn send(&self, state: &AppState, chunk: Vec<u8>) -> Offered {
        let feed = &state.feed;
        let Ok(share) = HeldAnswer::take(state.feed_answers(), chunk.len()) else {
            return Offered::NoRoom;
        };
        let Ok(held) = HeldAnswer::take(state.answers(), chunk.len()) else {
            return Offered::NoRoom;
        };
        let held = [share, held];
        let mut closing = feed.closing.subscribe();
        let sending = tokio::time::timeout(
            feed.stall_timeout,
            self.chunks.send((Bytes::from(chunk), held)),
        );
        // A shutdown does not wait out a slow consumer's stall timeout.
        let sent = tokio::select! {
            sent = sending => sent,
            _ = async { closing.wait_for(|&closed| closed).await.is_ok() } => {
                self.cut();
                return Offered::Ended;
            }
        };
        match sent {
            Ok(Ok(())) => Offered::Taken,
            Ok(Err(_)) => Offered::Ended,
            Err(_) => {
                self.cut_for_stall(feed.stall_timeout);
                Offered::Ended
            }
        }
    }

    /// Waits, holding no page, until the pool of answers may have room for `bytes`; false
    /// when the stream is over meanwhile: its consumer gone, the server stopping, or its
    /// consumer leaving a page untaken for the stall timeout (cut: it resumes from its last
    /// id). A consumer that takes its pages waits as long as others hold the pool: those that
    /// do not take theirs are cut, each by its own stall (the wait's length cut the readers
    /// first, and the others one after another: a review's).
    async fn room_for(&self, state: &AppState, bytes: usize) -> bool {
        let feed = &state.feed;
        let mut closing = feed.closing.subscribe();
        loop {
            if state.feed_answers().has_room(bytes) && state.answers().has_room(bytes) {
                return true;
            }
            if self.taking.stalled(feed.stall_timeout) {
                self.cut_for_stall(feed.stall_timeout);
                return false;
            }
            tokio::select! {
                () = tokio::time::sleep(ROOM_POLL) => {}
                () = self.chunks.closed() => return false,
                _ = async { closing.wait_for(|&closed| closed).await.is_ok() } => {
                    self.cut();
                    return false;
                }
            }
        }
    }
}

/// The stream's producer: pages while records are there, then waits for a commit beyond its
/// position, sending a keep-alive comment when idle. Ends when the consumer goes away, is too
/// slow, a read fails (the consumer reconnects and resumes), or the server shuts down. A page
/// the pool of answers has no room for is dropped, and read again once there is room.
async fn produce(state: AppState, after_seq: u64, types: FeedTypes, producer: Producer) {
    let feed = state.feed.clone();
    let mut committed = state.writer.committed();
    committed.borrow_and_update();
    let mut closing = feed.closing.subscribe();
    // The reconnection delay for EventSource clients, and first bytes that show the stream is
    // live. Neither it nor a keep-alive ends a block (no blank line): a block holding a field
    // but no `data:` is no event to EventSource, but httpx-sse hands it over as an empty
    // message, and a consumer's `json.loads("")` then failed on every connection (a review's).
    // So the `retry:` joins the first event's block, and comments go between events.
    const RETRY: &[u8] = b"retry: 1000\n";
    loop {
        match producer.send(&state, RETRY.to_vec()).await {
            Offered::Taken => break,
            Offered::NoRoom if producer.room_for(&state, RETRY.len()).await => {}
            Offered::NoRoom | Offered::Ended => return,
        }
    }
    let mut cursor = after_seq;
    // The deletion the last resync notice told of.
    let mut told_through = 0;
    loop {
        let page = match read_page(&state, cursor, types, PAGE_RECORDS).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = ?e, "feed read failed; stream ended");
                return;
            }
        };
        let mut chunk = Vec::new();
        // On every page, not only the first: retention may delete events committed since the
        // last page before this stream reads them (a slow consumer holds it back). Once per
        // deletion: a page cut before the deleted seqs' end would find the same one again.
        let told = if page.events_deleted_through > told_through
            && let Some(notice) = resync(cursor, types, &page)
        {
            write_event(&mut chunk, &notice);
            page.events_deleted_through
        } else {
            told_through
        };
        let next_after_seq = page.next_after_seq(cursor);
        let more = page.more;
        for record in page.records {
            write_event(&mut chunk, &Item::from(record));
        }
        if !chunk.is_empty() {
            let bytes = chunk.len();
            match producer.send(&state, chunk).await {
                Offered::Taken => {}
                Offered::NoRoom if producer.room_for(&state, bytes).await => continue,
                Offered::NoRoom | Offered::Ended => return,
            }
        }
        told_through = told;
        cursor = next_after_seq;
        if more {
            continue;
        }
        loop {
            // Each branch yields a plain value: the watch guards are not `Send`.
            let woke = tokio::select! {
                seen = async { committed.wait_for(|&seq| seq > cursor).await.is_ok() } => {
                    if !seen {
                        producer.cut();
                        return;
                    }
                    true
                }
                () = tokio::time::sleep(feed.keep_alive) => false,
                _ = async { closing.wait_for(|&closed| closed).await.is_ok() } => {
                    // Pages may be waiting for a consumer that stopped reading: the
                    // shutdown does not wait for them.
                    producer.cut();
                    return;
                }
                () = producer.chunks.closed() => return,
            };
            if woke {
                break;
            }
            // With no room among the answers, a keep-alive is let go: the next one follows.
            if let Offered::Ended = producer.send(&state, b": keep-alive\n".to_vec()).await {
                return;
            }
        }
    }
}

/// Appends one event: `id:` the seq (none for a resync, which must not move the consumer's
/// position), `event:` the type, `data:` the item as one line of JSON. Stored JSON may hold
/// line breaks, but only as whitespace between tokens (JSON strings cannot), so turning them
/// into spaces keeps the value.
fn write_event(out: &mut Vec<u8>, item: &Item) {
    if let Some(seq) = item.seq() {
        out.extend_from_slice(format!("id: {seq}\n").as_bytes());
    }
    out.extend_from_slice(format!("event: {}\ndata: ", item.name()).as_bytes());
    let start = out.len();
    serde_json::to_writer(&mut *out, item).expect("an item serializes to a Vec");
    for byte in &mut out[start..] {
        if *byte == b'\n' || *byte == b'\r' {
            *byte = b' ';
        }
    }
    out.extend_from_slice(b"\n\n");
}

/// The body of a stream: the producer's pages; an error once the consumer was cut, so that
/// hyper drops the connection rather than first sending what is still buffered.
struct FeedBody {
    chunks: mpsc::Receiver<Chunk>,
    taking: Arc<Taking>,
    /// The bytes of the page last given to hyper, counted until it asks for the next.
    sending: Option<[HeldAnswer; 2]>,
}

impl HttpBody for FeedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let taking = &this.taking;
        if taking.cut.load(Ordering::Acquire) {
            // Not `TimedOut`, which the accept loop logs as its write timeout.
            return Poll::Ready(Some(Err(std::io::Error::other("feed stream cut"))));
        }
        // Asked again: the page given before is written, or in a buffer hyper drains first.
        this.sending = None;
        taking.asked_ms.store(taking.now_ms(), Ordering::Release);
        taking.handed.store(false, Ordering::Release);
        this.chunks.poll_recv(cx).map(|chunk| {
            chunk.map(|(bytes, held)| {
                this.sending = Some(held);
                taking.handed.store(true, Ordering::Release);
                Ok(Frame::data(bytes))
            })
        })
    }
}

/// `Last-Event-ID`, sent by an EventSource reconnecting: it wins over `after_seq`, which the
/// reconnection repeats from the original URL.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("");
    query::integer(text).map(Some).ok_or_else(|| {
        ApiError::bad_request(
            "last-event-id",
            format!(
                "Last-Event-ID must be a non-negative integer (a seq, at most \
                     9007199254740991), got {:?}",
                String::from_utf8_lossy(value.as_bytes())
            ),
        )
    })
}

/// `types`: a comma-separated list of `verdict`, `outcome`, `event`; all when absent.
fn parse_types(raw: Option<&str>) -> Result<FeedTypes, ApiError> {
    let Some(raw) = raw else {
        return Ok(FeedTypes::ALL);
    };
    let mut types = FeedTypes {
        verdicts: false,
        outcomes: false,
        events: false,
    };
    for name in raw.split(',') {
        match name {
            "verdict" => types.verdicts = true,
            "outcome" => types.outcomes = true,
            "event" => types.events = true,
            _ => {
                return Err(ApiError::bad_request(
                    "types",
                    format!(
                        "types must be a comma-separated list of verdict, outcome, event, got {raw:?}"
                    ),
                ));
            }
        }
    }
    Ok(types)
}

/// `wait`: whole seconds (`30`, `30s`) or milliseconds (`500ms`), without leading zeros, at
/// most 30 s; 0 when absent. Exactly what the pattern in `docs/openapi.yaml` admits.
fn parse_wait(raw: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = raw else {
        return Ok(Duration::ZERO);
    };
    let (digits, millis_per_unit) = if let Some(digits) = raw.strip_suffix("ms") {
        (digits, 1)
    } else {
        (raw.strip_suffix('s').unwrap_or(raw), 1_000)
    };
    let well_formed = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    let wait = well_formed
        .then(|| digits.parse::<u64>().ok())
        .flatten()
        .and_then(|n| n.checked_mul(millis_per_unit))
        .map(Duration::from_millis);
    match wait {
        Some(wait) if wait <= MAX_WAIT => Ok(wait),
        _ => Err(ApiError::bad_request(
            "wait",
            format!(
                "wait must be whole seconds or milliseconds up to 30s (30, 30s, 500ms), got {raw:?}"
            ),
        )),
    }
}

/// Whether the client asked for Server-Sent Events (`Accept` lists `text/event-stream`).
fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            parts
                .next()
                .is_some_and(|media| media.eq_ignore_ascii_case("text/event-stream"))
                // `q=0` says "not acceptable" (RFC 9110, 12.4.2).
                && !parts.any(|param| {
                    param.split_once('=').is_some_and(|(key, value)| {
                        key.trim().eq_ignore_ascii_case("q")
                            && value.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
                    })
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_wait_and_accept() {
        assert_eq!(parse_types(None).unwrap(), FeedTypes::ALL);
        let only = parse_types(Some("verdict,event")).unwrap();
        assert!(only.verdicts && only.events && !only.outcomes);
        for bad in ["", "verdicts", "verdict,,event", "verdict, event"] {
            let error = parse_types(Some(bad)).unwrap_err();
            assert!(
                matches!(error, ApiError::BadRequest { field: Some(ref f), .. } if f == "types")
            );
        }
        assert_eq!(parse_wait(None).unwrap(), Duration::ZERO);
        assert_eq!(parse_wait(Some("30")).unwrap(), MAX_WAIT);
        assert_eq!(
            parse_wait(Some("250ms")).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_wait(Some("0ms")).unwrap(), Duration::ZERO);
        assert_eq!(parse_wait(Some("30000ms")).unwrap(), MAX_WAIT);
        for bad in [
            "31s", "31", "30001ms", "1m", "-1", "+1", "05", "0.5s", "soon", "", "s", "ms", " 1",
        ] {
            assert!(parse_wait(Some(bad)).is_err(), "{bad}");
        }
        let mut headers = HeaderMap::new();
        assert!(!wants_event_stream(&headers));
        for (accept, stream) in [
            ("application/json, Text/Event-Stream;q=0.9", true),
            ("text/event-stream", true),
            ("text/event-stream;q=0, application/json", false),
            ("text/event-stream; Q = 0.000", false),
            ("text/event-stream;q=0.001", true),
            ("application/json", false),
            ("*/*", false),
        ] {
            headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
            assert_eq!(wants_event_stream(&headers), stream, "{accept}");
        }
    }

    #[test]
    fn an_event_is_one_data_line() {
        let mut out = Vec::new();
        let item = Item::Verdict {
            seq: 7,
            received_at: "t".into(),
            sig_hash: "pr1-aaaaaaaa".into(),
            verdict: raw("{\n  \"a\": \"x\\ny\"\r\n}".into()),
        };
        write_event(&mut out, &item);
        write_event(
            &mut out,
            &Item::Resync {
                after_seq: 1,
                events_deleted_through: 5,
                oldest_seq: 6,
            },
        );
        expect_test::expect![[r#"
            id: 7
            event: verdict
            data: {"type":"verdict","seq":7,"received_at":"t","sig_hash":"pr1-aaaaaaaa","verdict":{   "a": "x\ny"  }}

            event: resync
            data: {"type":"resync","after_seq":1,"events_deleted_through":5,"oldest_seq":6}

        "#]]
        .assert_eq(&String::from_utf8(out).unwrap());
    }
}
