//! The HTTP API: the router (`app`), the server seam (`serve`) that the binary and the tests
//! use, shared state, and per-request tracing and metrics. One module per resource; handlers
//! are named by verb (`events::post`, `verdicts::post`).
//!
//! Architecture invariant: handlers never call redb: writes go through the group-commit
//! writer, reads through `Store` methods on the read threads (`read_threads.rs`).

mod auth;
mod backup;
mod body;
mod connections;
mod error;
mod events;
mod export;
mod feed;
mod findings;
mod health;
mod host;
pub use host::allowed_name;
pub mod ingest;
mod limits;
mod neighbors;
mod observe;
mod outcomes;
mod page;
mod prs;
mod query;
mod read_threads;
mod server;
mod sig;
mod stats;
mod verdicts;
mod write_timeout;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Extension, Router};
use tokio::sync::Semaphore;

pub use error::ApiError;
pub use feed::{DEFAULT_MAX_CLIENTS as DEFAULT_MAX_FEED_CLIENTS, Feed};
pub use server::{
    ConnectionLimits, DEFAULT_MAX_CONNECTIONS, Peer, Recovery, Switch, connection_limit,
    recovering_router, serve,
};

use crate::export::ExportJob;
use crate::metrics::Metrics;

use crate::store::{AnswerBytes, Store};
use crate::writer::Writer;
use read_threads::Priority;

/// The default of `--max-answer-bytes`, in units of `--max-response`: the answers of reads
/// held at once until sent (see `limits.rs`).
pub const ANSWERS_HELD: usize = 32;

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
    /// Bytes a list answer may take (`/sig`, `/events`, `/neighbors`, PR history's audits).
    pub max_response_bytes: usize,
    /// Keys listed per map of `/stats`.
    pub stats_top: usize,
    /// Time a request's whole body has to arrive.
    pub body_timeout: Duration,
    /// Bytes of request bodies being read or handled at once; beyond it, 503 + Retry-After.
    pub max_inflight_bytes: usize,
    /// Bytes of read answers being built or held until sent, at once; beyond it, 503 +
    /// Retry-After.
    pub max_answer_bytes: usize,
    /// Where `POST /backup` writes (`DIR/NAME/kb.redb`); `None`: `backups` beside the database.
    pub backup_dir: Option<std::path::PathBuf>,
    /// Server-made backups kept: the oldest beyond it are removed after each new one.
    pub backup_keep: usize,
    /// How long a backup request's idempotency key answers its retries
    /// (`--idempotency-window`).
    pub backup_key_window: Duration,
    /// A commit running this long is stalled: `/healthz` says so (503). No commit the service
    /// makes takes a second on a working disk.
    pub stalled_commit: Duration,
    /// On a server listening on loopback only, the names besides `localhost` and IP addresses
    /// a request's `Host` may give (`host.rs`); `None`: any.
    pub allowed_hosts: host::AllowedHosts,
}

/// [`ServerConfig::stalled_commit`]'s default.
pub const STALLED_COMMIT: Duration = Duration::from_secs(10);

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
            max_response_bytes: 8 << 20,
            stats_top: 100,
            body_timeout: Duration::from_secs(10),
            max_inflight_bytes: 64 << 20,
            max_answer_bytes: ANSWERS_HELD * (8 << 20),
            backup_dir: None,
            backup_keep: 7,
            backup_key_window: Duration::from_secs(24 * 60 * 60),
            stalled_commit: STALLED_COMMIT,
            // As for the default address, 127.0.0.1.
            allowed_hosts: Some(Vec::new()),
        }
    }
}

/// What every handler can reach. The router's layers clone it for every request, so a clone
/// is one reference count, not one per field (those counts are shared by every core).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    shared: Shared,
    answers: Arc<AnswerBytes>,
    feed_answers: Arc<AnswerBytes>,
    heavy_reads: read_threads::ReadThreads,
    neighbors: Arc<Semaphore>,
    reads: Arc<Semaphore>,
    light_reads: read_threads::ReadThreads,
}

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let config = &shared.config;
        let heavy = heavy_slots(cores, config.max_answer_bytes, config.max_response_bytes);
        let answers = AnswerBytes::new(config.max_answer_bytes, heavy);
        let feed_answers = AnswerBytes::new(config.max_answer_bytes / 2, 1);
        let heavy_reads =
            read_threads::ReadThreads::start("kb-heavy-read", heavy, Priority::Behind);
        let neighbors = Arc::new(Semaphore::new(HEAVY_READS_PER_CORE * cores));
        let reads = Arc::new(Semaphore::new(READS_RUNNING_PER_CORE * cores));
        let light_reads = read_threads::ReadThreads::start(
            "kb-read",
            READS_RUNNING_PER_CORE * cores,
            Priority::Normal,
        );
        AppState(Arc::new(Inner {
            shared,
            answers,
            feed_answers,
            heavy_reads,
            neighbors,
            reads,
            light_reads,
        }))
    }

    /// The reads that may run at once, each on one of [`AppState::light_reads`]' threads.
    pub(crate) fn read_slots(&self) -> &Arc<Semaphore> {
        &self.0.reads
    }

    /// The threads reads run on, one a running slot.
    pub(crate) fn light_reads(&self) -> &read_threads::ReadThreads {
        &self.0.light_reads
    }

    /// The bytes of read answers being built or held until sent (`--max-answer-bytes`), and
    /// the slots of heavy reads (large answers, many rows walked).
    pub fn answers(&self) -> &Arc<AnswerBytes> {
        &self.0.answers
    }

    /// The feed streams' share of [`AppState::answers`]: their pages take at most half of
    /// `--max-answer-bytes` (or one page, when they hold nothing), so that consumers that stop
    /// reading never hold every read's room (a review's: `GET /sig` refused for 30 s by three
    /// such connections).
    pub(crate) fn feed_answers(&self) -> &Arc<AnswerBytes> {
        &self.0.feed_answers
    }

    /// The threads heavy reads run on, one a slot.
    pub(crate) fn heavy_reads(&self) -> &read_threads::ReadThreads {
        &self.0.heavy_reads
    }

    /// The neighbours queries that may count their postings at once (each then waits for its
    /// share of the postings pool without one).
    pub(crate) fn neighbor_slots(&self) -> &Arc<Semaphore> {
        &self.0.neighbors
    }
}

/// Heavy reads at once, per core (reads past `store::LARGE_ANSWER_BYTES` or
/// `store::HEAVY_READ_ROWS`): more would not finish sooner on these cores,
/// and each holds what it has built so far. A read waits for a slot within its deadline,
/// holding no thread and no running slot, then runs on a thread of the slot's
/// (`query::read_within`, `read_threads.rs`); light reads never wait.
const HEAVY_READS_PER_CORE: usize = 4;

/// The slots of heavy reads: [`HEAVY_READS_PER_CORE`] a core, but no more than the answers'
/// pool holds answers of the largest size (at least one). Reads building at once each take
/// the pool's bytes as they go and give up when it is full: with more of them than the pool
/// holds whole answers, each could fill a share of it and all be refused, none answered (48
/// clients reading a 6 MiB answer beside an 8 MiB pool, 8 slots: 48 refusals in a CI run of
/// 876bcf0).
fn heavy_slots(cores: usize, max_answer_bytes: usize, max_response_bytes: usize) -> usize {
    let whole_answers = max_answer_bytes / max_response_bytes.max(1);
    (HEAVY_READS_PER_CORE * cores).min(whole_answers).max(1)
}

/// Reads running at once, per core (each on a thread of its own, `read_threads.rs`, with what it
/// has read so far). A heavy read waiting for its slot gives its running slot back, so light reads
/// wait only for reads that run.
const READS_RUNNING_PER_CORE: usize = 16;

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0.shared
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub store: Arc<Store>,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ServerConfig>,
    /// The export job for the legacy files, when the server has one.
    pub export: Option<Arc<ExportJob>>,
    /// The change feed's client limit and shutdown switch.
    pub feed: Feed,
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
    /// The change feed, a read that stays open: token-guarded with `--auth-reads`, outside
    /// the read limit and the request timeout, bounded by `--max-feed-clients` and its own
    /// wait instead.
    Feed,
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
    use Access::{Feed, Open, Read, Write};
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
        route(
            Method::GET,
            "/prs/{pr_number}/neighbors",
            Read,
            get(prs::neighbors),
        ),
        route(
            Method::GET,
            "/prs/{pr_number}/findings",
            Read,
            get(findings::list),
        ),
        // A read: it stores nothing.
        route(
            Method::POST,
            "/prs/{pr_number}/findings/check",
            Read,
            post(findings::check),
        ),
        route(
            Method::POST,
            "/findings/dismissals",
            Write,
            post(findings::dismiss),
        ),
        route(
            Method::GET,
            "/findings/dismissals",
            Read,
            get(findings::list_dismissals),
        ),
        route(
            Method::DELETE,
            "/findings/dismissals/{id}",
            Write,
            delete(findings::revoke),
        ),
        route(Method::GET, "/sig/{sig_hash}", Read, get(sig::get)),
        route(Method::POST, "/neighbors", Read, post(neighbors::post)),
        route(Method::GET, "/stats", Read, get(stats::get)),
        route(Method::GET, "/events", Read, get(events::list)),
        route(Method::GET, "/feed", Feed, get(feed::get)),
        route(Method::GET, "/metrics", Read, get(health::metrics)),
        route(Method::GET, "/healthz", Open, get(health::healthz)),
    ]
}

/// The whole API as a router.
///
/// The layers a request meets, outermost first: its id, span, log line and metrics (every
/// request); then, on routes with an access kind, the token (when one guards them), reading the
/// whole body (so a slow body holds no permit), the kind's in-flight permit and timeout.
pub fn app(state: AppState) -> Router {
    let mut writes = Router::new();
    let mut reads = Router::new();
    let mut open = Router::new();
    let mut feeds = Router::new();
    for route in routes() {
        let group = match route.access {
            Access::Write => &mut writes,
            Access::Read => &mut reads,
            Access::Open => &mut open,
            Access::Feed => &mut feeds,
        };
        *group = std::mem::take(group).route(route.path, route.handler);
    }
    let config = &state.config;
    let write_gate =
        limits::Gate::new("write", config.max_writes_in_flight, config.request_timeout);
    let read_gate = limits::Gate::new("read", config.max_reads_in_flight, config.request_timeout)
        .with_answer_bytes(state.answers().clone());
    let body_gate = body::BodyGate::new(
        config.max_body_bytes,
        config.max_batch_lines,
        config.body_timeout,
        config.max_inflight_bytes,
    );
    let write_body = middleware::from_fn_with_state(body_gate.counting_answers(), body::read_whole);
    let read_body = middleware::from_fn_with_state(body_gate, body::read_whole);
    writes = writes
        .route_layer(middleware::from_fn_with_state(write_gate, limits::gate))
        .route_layer(write_body);
    reads = reads
        .route_layer(middleware::from_fn_with_state(read_gate, limits::gate))
        .route_layer(read_body);
    if config.token.is_some() {
        let auth = middleware::from_fn_with_state(state.clone(), auth::require_token);
        writes = writes.route_layer(auth.clone());
        if config.auth_reads {
            reads = reads.route_layer(auth.clone());
            feeds = feeds.route_layer(auth);
        }
    }
    Router::new()
        .merge(writes)
        .merge(reads)
        .merge(open)
        .merge(feeds)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), host::guard))
        .layer(Extension(Arc::new(stats::StatsCache::default())))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}

/// The path alone: a `HEAD` answer's `Content-Length` must be its `GET`'s (RFC 9110, 9.3.2),
/// and a path without a route has none for any method.
async fn not_found(request: Request) -> Response {
    let answer = ApiError::NotFound(format!("no route for {}", request.uri().path()));
    closing_if_it_has_a_body(&request, answer.into_response())
}

async fn method_not_allowed(request: Request) -> Response {
    closing_if_it_has_a_body(&request, ApiError::MethodNotAllowed.into_response())
}

/// `answer`, ending its connection (and saying so) when `request` came with a body, which no
/// handler read: the client's next request on it would meet a reset, or the rest of the body
/// read as one (a review's).
fn closing_if_it_has_a_body(request: &Request, mut answer: Response) -> Response {
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    if has_body {
        answer
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_reads_at_once_fit_whole_answers_in_the_pool() {
        const MIB: usize = 1 << 20;
        // (cores, --max-answer-bytes, --max-response, slots)
        let cases = [
            (2, 256 * MIB, 8 * MIB, 8),
            (16, 256 * MIB, 8 * MIB, 32),
            (2, 8 * MIB, 8 * MIB, 1),
            (2, 20 * MIB, 8 * MIB, 2),
            (1, 8 * MIB, 1 << 10, 4),
            (2, 8 * MIB, 0, 8),
        ];
        for (cores, pool, response, slots) in cases {
            assert_eq!(
                heavy_slots(cores, pool, response),
                slots,
                "{cores} cores, pool {pool}, answers up to {response}"
            );
        }
    }
}
