//! What every request leaves behind: a request id (the client's `x-request-id` when it is sane,
//! else one made here, returned in the response either way), `Cache-Control: no-store` on its
//! answer unless the route said otherwise, a span carrying it with the method,
//! matched route and peer (so every line logged while the request runs says which request it
//! was for), one info line when it is answered, and its metrics. Also the sampler that keeps a
//! flood of shed requests to one warning a second per kind.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::AppState;
use super::server::Peer;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest `x-request-id` taken from a client; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// Longest path written to the log; a longer one is cut (clients choose paths).
const MAX_LOGGED_PATH: usize = 256;

/// Middleware of the application router: ids, span, request line and metrics.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let answered = observed(request, next).await;
    state.metrics.record_request(
        answered.method,
        answered.route,
        answered.response.status().as_u16(),
        answered.elapsed,
    );
    answered.response
}

/// The same without metrics, for the router that answers while the database opens.
pub async fn observe_unmetered(request: Request, next: Next) -> Response {
    observed(request, next).await.response
}

struct Answered {
    response: Response,
    /// The method as a metric label.
    method: &'static str,
    /// The matched route's path as a metric label, `unmatched` for none (`other` for a path
    /// outside the route table, which the routers never match).
    route: &'static str,
    elapsed: Duration,
}

/// Runs the request in its span and logs its line. Labels are borrowed, not copied: this runs
/// for every request.
async fn observed(mut request: Request, next: Next) -> Answered {
    let start = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| route_label(p.as_str()));
    // The request moves on to the handler: keep its URI (a reference count) for the log line.
    let uri = request.uri().clone();
    let path = LoggedPath::of(uri.path());
    let peer = PeerLabel(request.extensions().get::<Peer>().map(|Peer(addr)| *addr));
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| is_sane_request_id(v.as_bytes()))
        .cloned()
        .unwrap_or_else(new_request_id);
    request
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), id.clone());
    // A sane id is ASCII, so this is the id itself.
    let request_id = id.to_str().unwrap_or("").to_owned();
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        request_id = %request_id,
        peer = %peer
    );
    let mut response = next.run(request).instrument(span).await;
    let elapsed = start.elapsed();
    let headers = response.headers_mut();
    headers.insert(X_REQUEST_ID.clone(), id);
    // Every answer is of the database as it is now (the feed says `no-cache` itself). Without
    // it a shared cache in front (Varnish's defaults) kept a revoked dismissal listed, and
    // `/healthz` at `ok` while the store failed (a review's).
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    tracing::info!(
        method = %method,
        path = %path,
        route = %route,
        status = response.status().as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        request_id = %request_id,
        peer = %peer,
        "request"
    );
    Answered {
        response,
        method,
        route,
        elapsed,
    }
}

/// The method as a label: a label per method name a client invents would grow the metric
/// series without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The route table's own text for a matched path (the router only matches those).
fn route_label(matched: &str) -> &'static str {
    static PATHS: std::sync::LazyLock<Vec<&'static str>> =
        std::sync::LazyLock::new(|| super::routes().iter().map(|r| r.path).collect());
    PATHS
        .iter()
        .find(|path| **path == matched)
        .copied()
        .unwrap_or("other")
}

/// A path as logged: clients choose paths, so a long one is cut.
struct LoggedPath<'a> {
    kept: &'a str,
    cut: bool,
}

impl<'a> LoggedPath<'a> {
    fn of(path: &'a str) -> LoggedPath<'a> {
        let kept = crate::model::cut(path, MAX_LOGGED_PATH);
        LoggedPath {
            kept,
            cut: kept.len() < path.len(),
        }
    }
}

impl std::fmt::Display for LoggedPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kept)?;
        if self.cut {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// The client's address as logged, `unknown` when the connection did not say.
struct PeerLabel(Option<SocketAddr>);

impl std::fmt::Display for PeerLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// 1 to 128 characters of letters, digits and `-_.:+/=@~`: what request ids are made of
/// (UUIDs, base64, trace ids), nothing that could forge a log line or a header.
fn is_sane_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.:+/=@~".contains(&b))
}

/// `{8 hex digits random per process}-{counter}`: unique within a run, unlikely to repeat
/// across runs, and in order within one.
fn new_request_id() -> HeaderValue {
    static PROCESS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let process = *PROCESS.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // The standard library seeds each RandomState from the operating system's randomness.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish() as u32
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{process:08x}-{n}"))
        .expect("hex digits and a number make a header value")
}

/// Whether a warning of `kind` may be logged now: at most one a second per kind. `Some(n)`
/// says yes, `n` being how many were held back since the last one.
pub fn sample(kind: &'static str) -> Option<u64> {
    /// (kind, when last logged, held back since).
    static KINDS: Mutex<Vec<(&str, Instant, u64)>> = Mutex::new(Vec::new());
    let mut kinds = KINDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = Instant::now();
    match kinds.iter_mut().find(|(k, _, _)| *k == kind) {
        Some((_, last, held)) if now.duration_since(*last) < Duration::from_secs(1) => {
            *held += 1;
            None
        }
        Some((_, last, held)) => {
            *last = now;
            Some(std::mem::take(held))
        }
        None => {
            kinds.push((kind, now, 0));
            Some(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_only_when_sane() {
        assert!(is_sane_request_id(b"3f9a1c2e-42"));
        assert!(is_sane_request_id(b"123e4567-e89b-12d3-a456-426614174000"));
        assert!(!is_sane_request_id(b""));
        assert!(!is_sane_request_id(b"a b"));
        assert!(!is_sane_request_id(b"x\"}{\"forged\":1"));
        assert!(!is_sane_request_id("é".as_bytes()));
        assert!(!is_sane_request_id(&[b'a'; MAX_REQUEST_ID + 1]));
        let made = new_request_id();
        assert!(is_sane_request_id(made.as_bytes()));
        assert_ne!(made, new_request_id());
    }

    #[test]
    fn a_flood_is_sampled_once_a_second_per_kind() {
        assert_eq!(sample("test-flood"), Some(0));
        for _ in 0..10 {
            assert_eq!(sample("test-flood"), None);
        }
        assert_eq!(sample("test-other"), Some(0), "kinds are independent");
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        let path = format!("/{}", "é".repeat(300));
        let logged = LoggedPath::of(&path).to_string();
        assert!(logged.len() <= MAX_LOGGED_PATH + 3);
        assert!(logged.ends_with("..."));
        assert_eq!(LoggedPath::of("/event").to_string(), "/event");
    }

    #[test]
    fn route_labels_are_the_route_table_s_paths() {
        // Every path a router matches is its own label: the application's routes all come
        // from the table, and the recovering router's one route is `/healthz`.
        for route in crate::http::routes() {
            assert_eq!(route_label(route.path), route.path);
        }
        assert_eq!(route_label("/healthz"), "/healthz");
        assert_eq!(route_label("/no/such/route"), "other");
    }
}
