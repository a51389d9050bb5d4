//! Request bodies are read whole before a request takes an in-flight permit, so a client that
//! trickles its body holds nothing but its own connection: not a write permit, not the writer.
//! A body must arrive within `--body-timeout` and hold at most `--max-body` bytes, and all the
//! bodies being read or handled at once at most `--max-inflight-bytes`, counted as the buffer
//! they are read into grows (beyond it, 503 at once): a client holds at most twice the bytes it
//! has sent. Once an NDJSON batch's body is whole, each line that is a record (not blank, at
//! most `--max-batch-lines` of them) also counts what its parsed record holds until the batch
//! is answered ([`BATCH_LINE_COST`]): a batch of tiny lines holds hundreds of times its bytes.
//! Counted as they arrived, a client trickling newlines held a kibibyte of the pool per byte
//! sent, for the whole body timeout. One request's lines count for at most
//! `--max-inflight-bytes` less `--max-body`, so that a batch alone always fits. A write's
//! answer counts in place of its body until it is sent
//! (`BodyGate::counting_answers`). Bodies this service would store without decoding (a transfer
//! coding other than chunked, any content coding but identity) are refused before a byte of
//! them is read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;

use super::ApiError;
use super::connections::{Arriving, BodyClock};
use super::ingest::{BATCH_LINE_COST, is_batch, record_lines};
use super::limits::HoldUntilSent;

/// The limits on request bodies, shared by every request.
#[derive(Debug, Clone)]
pub struct BodyGate {
    max_body: usize,
    /// `--max-batch-lines`: the most lines of a batch that count (a longer batch is refused).
    max_lines: usize,
    timeout: Duration,
    inflight: InflightBytes,
    /// Whether an answer counts too, until sent (writes: their gate does not count answers).
    answers: bool,
}

impl BodyGate {
    pub fn new(
        max_body: usize,
        max_lines: usize,
        timeout: Duration,
        max_inflight_bytes: usize,
    ) -> BodyGate {
        BodyGate {
            max_body,
            max_lines,
            timeout,
            inflight: InflightBytes {
                used: Arc::new(AtomicUsize::new(0)),
                max: max_inflight_bytes,
            },
            answers: false,
        }
    }

    /// The same limits (and the same bytes in flight), also counting each answer in place of
    /// its request's body until the answer is sent: a write's answer (a batch's rejected lines,
    /// about 100 bytes each) can weigh fifty times its body, and one whose client does not read
    /// it is held until `--write-timeout`. Reads count their answers at their own gate.
    pub fn counting_answers(&self) -> BodyGate {
        BodyGate {
            answers: true,
            ..self.clone()
        }
    }
}

/// Bytes of request bodies being read or held, across all requests.
#[derive(Debug, Clone)]
struct InflightBytes {
    used: Arc<AtomicUsize>,
    max: usize,
}

impl InflightBytes {
    fn reserve(&self, bytes: usize) -> Result<Reservation, ApiError> {
        let mut reservation = Reservation {
            inflight: self.clone(),
            bytes: 0,
        };
        reservation.grow(bytes)?;
        Ok(reservation)
    }
}

/// Bytes counted against [`InflightBytes`] until dropped.
#[derive(Debug)]
struct Reservation {
    inflight: InflightBytes,
    bytes: usize,
}

impl Reservation {
    fn grow(&mut self, bytes: usize) -> Result<(), ApiError> {
        if bytes == 0 {
            return Ok(());
        }
        let InflightBytes { used, max } = &self.inflight;
        used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(bytes).filter(|total| total <= max)
        })
        .map_err(|used| ApiError::Shed {
            kind: "inflight-bytes",
            message: format!(
                "request bodies in flight hold {used} bytes and this one needs {bytes} more, \
                 over the limit of {max} (--max-inflight-bytes); retry shortly"
            ),
            retry_after_secs: 1,
        })?;
        self.bytes += bytes;
        Ok(())
    }

    /// Counts `bytes` from now on (an answer held until it is sent): fewer than before, or as
    /// many more as fit, since a committed write is answered whatever its answer weighs.
    fn hold_only(&mut self, bytes: usize) {
        if bytes <= self.bytes {
            self.inflight
                .used
                .fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            self.bytes = bytes;
        } else {
            let room = self
                .inflight
                .max
                .saturating_sub(self.inflight.used.load(Ordering::Acquire));
            let _ = self.grow((bytes - self.bytes).min(room));
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inflight.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Middleware: refuses codings it cannot store, reads the whole body within the limits, then
/// hands the request on with the body in memory; the body's bytes count as in flight until the
/// request is answered.
pub async fn read_whole(
    State(gate): State<BodyGate>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    refuse_codings(request.headers())?;
    if request.body().is_end_stream() {
        return Ok(next.run(request).await);
    }
    // While the body arrives its connection may be closed for a new one at the limit, once it
    // has taken long enough and arrives too slowly (`connections::SLOW_BODY_FOR`).
    let arriving = request
        .extensions()
        .get::<BodyClock>()
        .map(BodyClock::arriving);
    let declared = declared_length(request.headers());
    if let Some(declared) = declared
        && declared > gate.max_body
    {
        // A client that asked before sending (`Expect: 100-continue`) has sent nothing: it is
        // answered at once and never asked to send (hyper sends the 100 only when the body is
        // read).
        if expects_continue(request.headers()) {
            return Err(too_large(gate.max_body));
        }
        // Read (and drop) as much as a body may hold before answering, as if it were taken:
        // a client still sending when the connection closes would get a reset, not the 413.
        let discard = discard(request.into_body(), gate.max_body, arriving.as_ref());
        let _ = tokio::time::timeout(gate.timeout, discard).await;
        return Err(too_large(gate.max_body));
    }
    // Counted as the bytes arrive, not as declared: a client that declares a large body and
    // stalls holds only what it sent, so a few such clients cannot shed everyone's writes.
    let mut reservation = gate.inflight.reserve(0)?;
    let line_cost = if is_batch(request.headers()) {
        BATCH_LINE_COST
    } else {
        0
    };
    let (parts, body) = request.into_parts();
    let collect = collect(body, gate.max_body, &mut reservation, arriving.as_ref());
    let bytes = match tokio::time::timeout(gate.timeout, collect).await {
        Ok(bytes) => bytes?,
        Err(_) => {
            return Err(ApiError::BodyTimeout(format!(
                "the body did not arrive within {} (--body-timeout)",
                humantime::format_duration(gate.timeout)
            )));
        }
    };
    drop(arriving);
    // A batch's records, counted once its body is whole (about to be parsed, held until it is
    // answered), not while it arrives: a client trickling newlines held a kibibyte of the pool
    // for each byte it sent. The lines that become records count (not blank ones), at most
    // --max-batch-lines of them (a longer batch is refused), and for at most what leaves
    // room for a body beside them, so that a batch alone always fits.
    if line_cost > 0 {
        let lines = record_lines(&bytes).take(gate.max_lines).count();
        let lines_cap = gate.inflight.max.saturating_sub(gate.max_body);
        reservation.grow(lines.saturating_mul(line_cost).min(lines_cap))?;
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !gate.answers {
        return Ok(response);
    }
    // Every answer here is whole in memory (JSON); one of unknown length counts as its lower
    // bound.
    let answer = usize::try_from(response.body().size_hint().lower()).unwrap_or(usize::MAX);
    reservation.hold_only(answer);
    Ok(response.map(|body| Body::new(HoldUntilSent::new(body, reservation))))
}

/// Reads `body` to its end, growing the reservation as it arrives (hyper stops a body with a
/// `content-length` at that length) by the bytes of the buffer it fills: a client holds at most
/// twice what it has sent.
async fn collect(
    mut body: Body,
    max_body: usize,
    reservation: &mut Reservation,
    arriving: Option<&Arriving>,
) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request("body", format!("cannot read the body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if let Some(arriving) = arriving {
            arriving.took(data.len());
        }
        if bytes.len() + data.len() > max_body {
            return Err(too_large(max_body));
        }
        // The buffer's growth is counted, not its length: it doubles (up to --max-body, so a
        // body alone always fits), and the request keeps the buffer it was read into.
        let needed = bytes.len() + data.len();
        let capacity = if needed > bytes.capacity() {
            needed.max(bytes.capacity().saturating_mul(2)).min(max_body)
        } else {
            bytes.capacity()
        };
        reservation.grow(capacity - bytes.capacity())?;
        bytes.reserve_exact(capacity - bytes.len());
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
}

/// `Expect: 100-continue`: the client waits for a go-ahead before sending its body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads and drops up to `max_bytes` of `body`.
async fn discard(mut body: Body, max_bytes: usize, arriving: Option<&Arriving>) {
    let mut seen = 0;
    while seen < max_bytes
        && let Some(Ok(frame)) = body.frame().await
    {
        let len = frame.data_ref().map_or(0, |data| data.len());
        if let Some(arriving) = arriving {
            arriving.took(len);
        }
        seen += len;
    }
}

fn too_large(max_body: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "body is larger than the limit of {max_body} bytes (--max-body)"
    ))
}

/// The `content-length`, when there is one (hyper has refused malformed ones already).
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Chunked is the only transfer coding hyper decodes, and the service decodes no content
/// coding: any other would be stored as the compressed bytes it received.
fn refuse_codings(headers: &HeaderMap) -> Result<(), ApiError> {
    let codings = |name| {
        headers.get_all(name).iter().flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
    };
    if let Some(coding) = codings(header::TRANSFER_ENCODING).find(|c| c != "chunked") {
        return Err(ApiError::UnsupportedEncoding {
            header: "transfer-encoding",
            message: format!(
                "transfer-encoding {coding:?} is not supported: send the body uncompressed \
                 (chunked is fine)"
            ),
        });
    }
    if let Some(coding) = codings(header::CONTENT_ENCODING).find(|c| c != "identity") {
        return Err(ApiError::UnsupportedEncoding {
            header: "content-encoding",
            message: format!(
                "content-encoding {coding:?} is not supported: send the body uncompressed"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_chunked_and_identity_pass() {
        assert!(refuse_codings(&headers(&[])).is_ok());
        assert!(refuse_codings(&headers(&[("transfer-encoding", "Chunked")])).is_ok());
        assert!(refuse_codings(&headers(&[("content-encoding", "identity")])).is_ok());
        let refused = [
            ("transfer-encoding", "gzip, chunked"),
            ("transfer-encoding", "deflate"),
            ("content-encoding", "gzip"),
            ("content-encoding", "identity, br"),
        ];
        for (name, value) in refused {
            let error = refuse_codings(&headers(&[(name, value)])).unwrap_err();
            assert_eq!(error.status().as_u16(), 415, "{name}: {value}");
        }
    }

    /// A body of frames, as a chunked upload arrives.
    struct Frames(std::collections::VecDeque<Bytes>);

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(
                self.0
                    .pop_front()
                    .map(|data| Ok(http_body::Frame::data(data))),
            )
        }
    }

    /// The buffer a body is read into is counted, not the body's length: 600 KB arriving in
    /// frames of 40 KB fill a buffer of 640 KB (doubled from the first frame's), which the
    /// request keeps. Until 2026-12-06 the length was counted, so bodies in flight could hold
    /// twice --max-inflight-bytes.
    #[tokio::test]
    async fn a_body_counts_the_buffer_it_fills() {
        // (frames of the body, --max-body, what the buffer holds and is counted for)
        let cases = [
            (vec![40_000; 15], 1 << 20, 640_000),
            // Never past --max-body, so a body alone always fits.
            (vec![40_000; 15], 600_000, 600_000),
            (vec![600_000], 1 << 20, 600_000),
        ];
        for (frames, max_body, counted) in cases {
            let gate = BodyGate::new(max_body, 10, Duration::from_secs(1), max_body);
            let body = Body::new(Frames(
                frames.iter().map(|&n| Bytes::from(vec![b'x'; n])).collect(),
            ));
            let mut reservation = gate.inflight.reserve(0).unwrap();
            let bytes = collect(body, max_body, &mut reservation, None)
                .await
                .unwrap();
            assert_eq!(bytes.len(), frames.iter().sum::<usize>());
            assert_eq!(bytes.capacity(), counted, "{frames:?}");
            assert_eq!(reservation.bytes, counted, "{frames:?}");
        }
    }

    /// What a batch counts for its records: its lines that are records, as the batch parse
    /// splits them (blank and whitespace-only lines are not), at most --max-batch-lines.
    #[test]
    fn a_batch_counts_its_record_lines_up_to_the_limit() {
        for (body, max, lines) in [
            (&b"{}\n{}\n{}"[..], 10, 3),
            (b"{}\n{}\n{}\n", 10, 3),
            (b"\n\n\n  \r\n{}\r\n\t\n", 10, 1),
            (b"", 10, 0),
            (b"{}\n{}\n{}\n{}", 2, 2),
        ] {
            assert_eq!(record_lines(body).take(max).count(), lines, "{body:?}");
        }
    }

    #[test]
    fn reservations_are_bounded_and_returned() {
        let gate = BodyGate::new(10, 10, Duration::from_secs(1), 100);
        let a = gate.inflight.reserve(60).unwrap();
        assert!(gate.inflight.reserve(41).is_err());
        let mut b = gate.inflight.reserve(40).unwrap();
        assert!(b.grow(1).is_err());
        drop(a);
        b.grow(60).unwrap();
        drop(b);
        assert_eq!(gate.inflight.used.load(Ordering::Acquire), 0);
    }
}
