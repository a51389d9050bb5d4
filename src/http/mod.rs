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
mod export;
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
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use error::ApiError;
pub use server::{ConnectionLimits, Recovery, Switch, recovering_router, serve};

use crate::export::ExportJob;
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
    /// Where `POST /backup` writes (`DIR/NAME/kb.redb`); `None`: `backups` beside the database.
    pub backup_dir: Option<std::path::PathBuf>,
    /// Server-made backups kept: the oldest beyond it are removed after each new one.
    pub backup_keep: usize,
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
            backup_dir: None,
            backup_keep: 7,
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
    /// The export job for the legacy files, when the server has one.
    pub export: Option<Arc<ExportJob>>,
}

/// Who may call a route and which in-flight limit it counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Changes stored data: token-guarded when a token is set, the write limit.
    Write,
    /// Reads: token-guarded with `--auth-reads`, the read limit.
    Read,
    /// Health probes: never guarded, never limited.
    Open,
}

/// One route of the API.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    handler: MethodRouter<AppState>,
}

/// Every route, in one table: `app` builds the router from it and a test checks
/// `docs/openapi.yaml` against it, so the document cannot drift from the code.
pub fn routes() -> Vec<Route> {
    use Access::{Open, Read, Write};
    let route = |method: Method, path, access, handler| Route {
        method,
        path,
        access,
        handler,
    };
    vec![
        route(Method::POST, "/event", Write, post(events::post)),
        route(Method::POST, "/verdicts", Write, post(verdicts::post)),
        route(Method::POST, "/outcomes", Write, post(outcomes::post)),
        route(Method::POST, "/backup", Write, post(backup::post)),
        route(Method::POST, "/export", Write, post(export::post)),
        route(
            Method::GET,
            "/prs/{pr_number}/history",
            Read,
            get(prs::history),
        ),
        route(Method::GET, "/sig/{sig_hash}", Read, get(sig::get)),
        route(Method::POST, "/neighbors", Read, post(neighbors::post)),
        route(Method::GET, "/stats", Read, get(stats::get)),
        route(Method::GET, "/events", Read, get(events::list)),
        route(Method::GET, "/metrics", Read, get(health::metrics)),
        route(Method::GET, "/healthz", Open, get(health::healthz)),
    ]
}

/// The whole API as a router.
pub fn app(state: AppState) -> Router {
    let mut writes = Router::new();
    let mut reads = Router::new();
    let mut open = Router::new();
    for route in routes() {
        let group = match route.access {
            Access::Write => &mut writes,
            Access::Read => &mut reads,
            Access::Open => &mut open,
        };
        *group = std::mem::take(group).route(route.path, route.handler);
    }
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
    // A label per method name a client invents would grow the series without bound.
    let method = match *request.method() {
        Method::GET
        | Method::POST
        | Method::HEAD
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::OPTIONS => request.method().as_str().to_owned(),
        _ => "other".to_owned(),
    };
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
