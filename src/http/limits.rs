//! Limits under load: a timeout on every request and a cap on requests in flight per kind
//! (writes, reads). The excess is shed at once with a 503 and `Retry-After` rather than queued
//! without bound, so a flood of writes cannot starve reads, and `/healthz` (outside both
//! limits) keeps answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;

use super::ApiError;

/// One kind's limit: a number of requests in flight and a time each may take.
#[derive(Clone, Debug)]
pub struct Gate {
    kind: &'static str,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    timeout: Duration,
}

/// When the request timeout ends a request: put in the request's extensions by its gate, so
/// that the work behind it (a store read) can stop at the same moment.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

impl Gate {
    pub fn new(kind: &'static str, max_in_flight: usize, timeout: Duration) -> Gate {
        let max_in_flight = max_in_flight.max(1);
        Gate {
            kind,
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            timeout,
        }
    }
}

/// Middleware: admits the request if a permit is free, and bounds its time.
pub async fn gate(
    State(gate): State<Gate>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Ok(_permit) = gate.permits.clone().try_acquire_owned() else {
        return Err(ApiError::Shed {
            kind: if gate.kind == "read" {
                "read-limit"
            } else {
                "write-limit"
            },
            message: format!(
                "too many {} requests in flight ({}); retry shortly",
                gate.kind, gate.max_in_flight
            ),
            retry_after_secs: 1,
        });
    };
    let deadline = Instant::now() + gate.timeout;
    request.extensions_mut().insert(Deadline(deadline));
    match tokio::time::timeout_at(deadline.into(), next.run(request)).await {
        Ok(response) => Ok(response),
        Err(_) => Err(ApiError::Shed {
            kind: "request-timeout",
            message: format!(
                "the request took longer than {} and was abandoned (a write may still have \
                 been committed)",
                humantime::format_duration(gate.timeout)
            ),
            retry_after_secs: 1,
        }),
    }
}
