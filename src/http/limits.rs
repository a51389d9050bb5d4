//! Limits under load: a timeout on every request and a cap on requests in flight per kind
//! (writes, reads). The excess is shed at once with a 503 and `Retry-After` rather than queued
//! without bound, so a flood of writes cannot starve reads, and `/healthz` (outside both
//! limits) keeps answering.
//!
//! A request's permit lasts until its answer is sent, not just computed: it travels in the
//! response body and is released when hyper has written (or dropped) the body. So clients that
//! do not read their answers hold permits, and with them the answers' memory, only until the
//! connection's write timeout cuts them; they cannot pile up answers beyond the cap. The read
//! gate also bounds the bytes of the answers it holds at once ([`Gate::with_answer_bytes`]):
//! many clients asking for the largest answers and reading none of them get a 503 once the
//! answers held pass it, rather than the permits times `--max-response` of memory. The same
//! pool holds the answers being built (`query::read_within`), so reads building large answers
//! at once are shed as they build, not after.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::sync::Semaphore;

use super::ApiError;
use crate::store::AnswerBytes;

/// One kind's limit: a number of requests in flight and a time each may take.
#[derive(Clone, Debug)]
pub struct Gate {
    kind: &'static str,
    /// The kind of shedding logged when the gate is full.
    shed_kind: &'static str,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    timeout: Duration,
    /// The pool the answers of this gate's requests are held in until sent.
    answers: Option<Arc<AnswerBytes>>,
}

/// When the request timeout ends a request: put in the request's extensions by its gate, so
/// that the work behind it (a store read) can stop at the same moment.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

tokio::task_local! {
    /// Raised by a write once its records are queued for a commit (`ingest::submit`): from
    /// then on the request timeout can no longer say "nothing was stored".
    static QUEUED: Arc<AtomicBool>;
}

/// Marks the request running in this task as queued for a commit (see [`QUEUED`]); outside a
/// gated request (tests, tools) it does nothing.
pub fn mark_queued() {
    let _ = QUEUED.try_with(|queued| queued.store(true, Ordering::Relaxed));
}

impl Gate {
    pub fn new(kind: &'static str, max_in_flight: usize, timeout: Duration) -> Gate {
        let max_in_flight = max_in_flight.max(1);
        Gate {
            kind,
            shed_kind: match kind {
                "read" => "read-limit",
                "write" => "write-limit",
                _ => "in-flight-limit",
            },
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            timeout,
            answers: None,
        }
    }

    /// This gate, also holding the answers of its requests (their exact length, until sent) in
    /// `pool`: an answer that would pass its limit is a 503 instead.
    pub fn with_answer_bytes(mut self, pool: Arc<AnswerBytes>) -> Gate {
        self.answers = Some(pool);
        self
    }
}

/// Bytes of an answer counted against its gate's limit (or the pool of answers) until dropped.
#[derive(Debug)]
pub(super) struct HeldAnswer {
    pool: Arc<AnswerBytes>,
    bytes: usize,
}

impl HeldAnswer {
    /// Takes `bytes` from `pool` ([`AnswerBytes::try_take`]); else the bytes it holds now.
    pub(super) fn take(pool: &Arc<AnswerBytes>, bytes: usize) -> Result<HeldAnswer, usize> {
        pool.try_take(bytes)?;
        Ok(HeldAnswer {
            pool: pool.clone(),
            bytes,
        })
    }
}

/// Counts `response`'s bytes (a body whole in memory) against `pool` until it is sent: a 503
/// when they do not fit.
pub(super) fn held_until_sent(
    pool: &Arc<AnswerBytes>,
    response: Response,
) -> Result<Response, ApiError> {
    let held = take_answer(pool, &response)?;
    Ok(response.map(|body| Body::new(HoldUntilSent::new(body, held))))
}

/// Takes `response`'s bytes from `pool`: every answer counted is whole in memory (JSON); a body
/// of unknown length counts as its lower bound. A 503 when they do not fit.
fn take_answer(pool: &Arc<AnswerBytes>, response: &Response) -> Result<HeldAnswer, ApiError> {
    let bytes = usize::try_from(response.body().size_hint().lower()).unwrap_or(usize::MAX);
    HeldAnswer::take(pool, bytes).map_err(|held| answers_full(held, bytes, pool.max()))
}

impl Drop for HeldAnswer {
    fn drop(&mut self) {
        self.pool.give_back(self.bytes);
    }
}

/// Counts `response`'s bytes against `gate`'s answer limit, when it has one.
fn hold_answer(gate: &Gate, response: &Response) -> Result<Option<HeldAnswer>, ApiError> {
    gate.answers
        .as_ref()
        .map(|pool| take_answer(pool, response))
        .transpose()
}

/// The 503 of a read whose answer (being built, or made) does not fit in the answers' pool.
pub(super) fn answers_full(held: usize, bytes: usize, max: usize) -> ApiError {
    ApiError::Shed {
        kind: "answer-bytes",
        message: format!(
            "answers not yet sent hold {held} bytes and this one has {bytes} more, over the \
             limit of {max}; retry shortly"
        ),
        retry_after_secs: 1,
    }
}

/// Middleware: admits the request if a permit is free, and bounds its time.
pub async fn gate(
    State(gate): State<Gate>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Ok(permit) = gate.permits.clone().try_acquire_owned() else {
        return Err(ApiError::Shed {
            kind: gate.shed_kind,
            message: format!(
                "too many {} requests in flight ({}); retry shortly",
                gate.kind, gate.max_in_flight
            ),
            retry_after_secs: 1,
        });
    };
    let deadline = Instant::now() + gate.timeout;
    request.extensions_mut().insert(Deadline(deadline));
    let queued = Arc::new(AtomicBool::new(false));
    let run = QUEUED.scope(queued.clone(), next.run(request));
    match tokio::time::timeout_at(deadline.into(), run).await {
        Ok(response) => {
            let held = hold_answer(&gate, &response)?;
            Ok(response.map(|body| Body::new(HoldUntilSent::new(body, (permit, held)))))
        }
        // Queued for a commit: the commit may still happen, so the client is not told to
        // retry as if nothing was stored (no Retry-After); a retry with its idempotency key
        // learns what became of it.
        Err(_) if queued.load(Ordering::Relaxed) => Err(ApiError::MaybeCommitted(format!(
            "the write was queued for a commit but not answered within {}: it may have been \
             committed; retry with the same Idempotency-Key to learn its outcome (without a \
             key, a retry may store it twice)",
            humantime::format_duration(gate.timeout)
        ))),
        Err(_) => Err(ApiError::Shed {
            kind: "request-timeout",
            message: format!(
                "the request took longer than {} and was abandoned before anything was stored",
                humantime::format_duration(gate.timeout)
            ),
            retry_after_secs: 1,
        }),
    }
}

/// A response body that holds something (a permit, bytes counted against a limit) until hyper
/// has taken its last frame, or drops it.
///
/// It never reports its end before `poll_frame` has returned `None`: hyper drops a body the
/// moment it says it has ended, which for a body of one frame is before any byte is written;
/// asked again, hyper polls only once its write buffer has drained.
pub(super) struct HoldUntilSent<T> {
    body: Body,
    /// What is held, released once the body is sent: for a gate, its permit and the answer's
    /// bytes when it counts them.
    held: Option<T>,
}

impl<T> HoldUntilSent<T> {
    pub(super) fn new(body: Body, held: T) -> HoldUntilSent<T> {
        HoldUntilSent {
            body,
            held: Some(held),
        }
    }
}

impl<T: Unpin> HttpBody for HoldUntilSent<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = frame {
            this.held = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
