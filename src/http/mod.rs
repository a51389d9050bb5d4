//! The HTTP API: the router (`app`), the server seam (`serve`) that the binary and the tests
//! use, shared state, and per-request tracing and metrics. One module per resource; handlers
//! are named by verb (`events::post`, `verdicts::post`).
//!
//! Architecture invariant: handlers never call redb: writes go through the group-commit
//! writer, reads through `Store` methods under `spawn_blocking`.

mod auth;
mod backup;
mod error;
mod events;
mod health;
pub mod ingest;
mod limits;
mod neighbors;
mod outcomes;
mod prs;
mod query;
mod server;
mod sig;
mod stats;
mod verdicts;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use error::ApiError;
pub use server::{ConnectionLimits, Recovery, Switch, recovering_router, serve};

use crate::metrics::Metrics;
use crate::store::Store;
use crate::writer::Writer;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most lines in one NDJSON batch.
    pub max_batch_lines: usize,
    /// When set, write routes require `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// With a token set, require it on read routes too.
    pub auth_reads: bool,
    /// Longest a request may take before it is abandoned with a 503.
    pub request_timeout: Duration,
    /// Write requests handled at once; beyond it, 503 + Retry-After.
    pub max_writes_in_flight: usize,
    /// Read requests handled at once; beyond it, 503 + Retry-After.
    pub max_reads_in_flight: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 1 << 20,
            max_batch_lines: 10_000,
            token: None,
            auth_reads: false,
            request_timeout: Duration::from_secs(30),
            max_writes_in_flight: 1024,
            max_reads_in_flight: 256,
        }
    }
}

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ServerConfig>,
}

/// The whole API as a router.
pub fn app(state: AppState) -> Router {
    let mut writes = Router::new()
        .route("/event", post(events::post))
        .route("/verdicts", post(verdicts::post))
        .route("/outcomes", post(outcomes::post))
        .route("/backup", post(backup::post));
    let mut reads = Router::new()
        .route("/prs/{pr_number}/history", get(prs::history))
        .route("/sig/{sig_hash}", get(sig::get))
        .route("/neighbors", post(neighbors::post))
        .route("/stats", get(stats::get))
        .route("/events", get(events::list))
        .route("/metrics", get(health::metrics));
    let config = &state.config;
    let write_gate =
        limits::Gate::new("write", config.max_writes_in_flight, config.request_timeout);
    let read_gate = limits::Gate::new("read", config.max_reads_in_flight, config.request_timeout);
    writes = writes.route_layer(middleware::from_fn_with_state(write_gate, limits::gate));
    reads = reads.route_layer(middleware::from_fn_with_state(read_gate, limits::gate));
    if config.token.is_some() {
        let auth = middleware::from_fn_with_state(state.clone(), auth::require_token);
        writes = writes.route_layer(auth.clone());
        if config.auth_reads {
            reads = reads.route_layer(auth);
        }
    }
    let open = Router::new().route("/healthz", get(health::healthz));
    Router::new()
        .merge(writes)
        .merge(reads)
        .merge(open)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", MatchedPath::as_str);
                    tracing::debug_span!("request", method = %request.method(), route)
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
        )
        .with_state(state)
}

/// Counts every request and its latency by method, matched route and status.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .record_request(&method, &route, response.status().as_u16(), start.elapsed());
    response
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
