//! The accept loop: HTTP/1.1 connections with a header-read timeout and a write timeout (slow
//! clients cannot hold connections, or the answers written to them, forever), a per-request
//! switch from the "recovering" placeholder to the real application once the database is open,
//! and a graceful shutdown that answers what is in flight, bounded by a timeout.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Response;
use axum::response::IntoResponse;
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Service, ServiceExt};

use super::ApiError;
use super::connections::{BodyClock, Connection, Connections, InFlight};
use super::observe;
use super::write_timeout::WriteTimeout;

/// Connection-level settings.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's headers (and, idle, to start its next request).
    pub header_read_timeout: Duration,
    /// Longest a write to a client may wait (it does not read its answer) before the
    /// connection is closed.
    pub write_timeout: Duration,
    /// Longest wait, after the shutdown signal, for requests in flight to finish.
    pub shutdown_timeout: Duration,
    /// Connections open at once: at the limit a new connection has an idle one closed for it,
    /// or waits (see `connections.rs`). Without a limit, clients holding idle connections used
    /// up the file descriptors, and the export, a backup and new clients failed.
    pub max_connections: usize,
}

/// [`ConnectionLimits::max_connections`] by default (`--max-connections`); see
/// [`connection_limit`] for the file descriptors it leaves.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// File descriptors kept from connections for the database, its journal, the export's
/// files, backups and the log: at most this many, at most half the process's limit.
const RESERVED_FDS: u64 = 128;

/// `wanted` connections, or fewer when the process may not open that many files and keep
/// [`RESERVED_FDS`] (or half its limit) for its own: at least one.
pub fn connection_limit(wanted: usize) -> usize {
    let Some(files) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current else {
        return wanted.max(1);
    };
    let room = files.saturating_sub(RESERVED_FDS.min(files / 2));
    wanted
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(1)
}

/// How far redb's repair has come, and whether the open waits for disk space, shared with the
/// open that reports them.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    progress: Arc<AtomicU64>,
    no_space: Arc<AtomicBool>,
}

impl Recovery {
    pub fn set(&self, progress: f64) {
        self.progress.store(progress.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.progress.load(Ordering::Relaxed))
    }

    /// The open found the disk full and tries again (or no longer does).
    pub fn set_no_space(&self, waiting: bool) {
        self.no_space.store(waiting, Ordering::Relaxed);
    }
}

/// Answers every request while the database is being opened (and repaired after a crash):
/// `/healthz` says how far along it is, everything else is a 503 to retry.
pub fn recovering_router(recovery: Recovery) -> Router {
    /// Fields in the order API.md shows them.
    #[derive(serde::Serialize)]
    struct Recovering {
        status: &'static str,
        progress: f64,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        no_space: bool,
    }
    async fn healthz(State(recovery): State<Recovery>) -> impl IntoResponse {
        let body = Recovering {
            status: "recovering",
            progress: (recovery.get() * 1000.0).round() / 1000.0,
            no_space: recovery.no_space.load(Ordering::Relaxed),
        };
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            // As every other 503 here: when to ask again.
            [(axum::http::header::RETRY_AFTER, "2")],
            axum::Json(body),
        )
    }
    async fn busy() -> ApiError {
        ApiError::Unavailable {
            message: "the database is being opened (recovering after an unclean shutdown?)".into(),
            retry_after_secs: 2,
        }
    }
    // As the application's: RFC 9112's Host rule (not the loopback guard, which reads the
    // configuration).
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(busy)
        .layer(axum::middleware::from_fn(super::host::well_formed_guard))
        .layer(axum::middleware::from_fn(observe::observe_unmetered))
        .with_state(recovery)
}

/// The address a request came from, put in its extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The service every connection talks to: the recovering router until the application is
/// published on the watch channel, the application after, decided request by request.
#[derive(Clone)]
pub struct Switch {
    app: watch::Receiver<Option<Router>>,
    recovering: Router,
    peer: Option<SocketAddr>,
    /// The connection it serves, whose requests it marks in flight.
    connection: Option<(Arc<Connection>, Arc<Connections>)>,
}

impl Switch {
    pub fn new(app: watch::Receiver<Option<Router>>, recovering: Router) -> Switch {
        Switch {
            app,
            recovering,
            peer: None,
            connection: None,
        }
    }

    /// The switch for one connection: its requests carry the peer's address, and are in
    /// flight on the connection until answered.
    fn for_connection(
        &self,
        peer: SocketAddr,
        connection: Arc<Connection>,
        all: Arc<Connections>,
    ) -> Switch {
        Switch {
            peer: Some(peer),
            connection: Some((connection, all)),
            ..self.clone()
        }
    }
}

impl Service<Request<Incoming>> for Switch {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(Peer(peer));
        }
        let in_flight = self.connection.as_ref().map(|(connection, all)| {
            request
                .extensions_mut()
                .insert(BodyClock::new(connection.clone(), all));
            connection.request(all)
        });
        let router = self
            .app
            .borrow()
            .clone()
            .unwrap_or_else(|| self.recovering.clone());
        Box::pin(async move {
            let answer = router.oneshot(request.map(Body::new)).await?;
            Ok(match in_flight {
                // In flight until its answer's body is written (or dropped unwritten).
                Some(in_flight) => answer.map(|body| {
                    Body::new(Answering {
                        body,
                        _in_flight: in_flight,
                    })
                }),
                None => answer,
            })
        })
    }
}

/// An answer's body, holding its request in flight on its connection until it is dropped.
struct Answering {
    body: Body,
    /// Held for its drop.
    _in_flight: InFlight,
}

impl http_body::Body for Answering {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Most bytes a connection's read buffer holds, and so most bytes of a request's headers (a
/// longer header section is a 431). hyper's default, about 400 KiB, let each of 1,000 clients
/// holding their headers unfinished keep 560 KiB resident (a review's: 563 MB for 1,000
/// connections until the header-read timeout); bodies are read through it in pieces. hyper
/// checks the limit between reads, so a buffer may reach about twice this.
const MAX_READ_BUFFER: usize = 64 << 10;

/// Accepts connections until `shutdown` completes, then stops accepting and waits (at most
/// `limits.shutdown_timeout`) for the requests in flight. At `limits.max_connections`, a
/// connection accepted has an idle one closed to make room for it
/// ([`Connections::close_idlest`]), or waits, holding its socket (so at most one more than
/// the limit is open), until one closes or may be closed.
pub async fn serve(
    listener: TcpListener,
    service: Switch,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_READ_BUFFER)
        .max_buf_size(MAX_READ_BUFFER);
    tokio::pin!(shutdown);
    let max = limits.max_connections.max(1);
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let connections = Arc::new(Connections::default());
    let (stop, stopping) = watch::channel(false);
    'accept: loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = loop {
            if let Ok(slot) = slots.clone().try_acquire_owned() {
                break slot;
            }
            let closing = connections.close_idlest();
            if let Some(suppressed) = observe::sample("connection-limit") {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    closing_an_idle_one = closing,
                    suppressed,
                    "connection limit reached (--max-connections): the connection idle \
                     longest is closed, or a new one waits for a request to finish"
                );
            }
            // An idle connection closes at once; with none, look again as requests finish.
            tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => break slot,
                    Err(_) => break 'accept,
                },
                () = tokio::time::sleep(Duration::from_millis(if closing { 1_000 } else { 20 })) => {}
                () = &mut shutdown => break 'accept,
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = connections.open();
        let service = service.for_connection(peer, connection.clone(), connections.clone());
        let serving = http.serve_connection(
            TokioIo::new(WriteTimeout::new(stream, limits.write_timeout)),
            TowerToHyperService::new(service),
        );
        let mut stopping = stopping.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::pin!(serving);
            let mut asked = false;
            let ended = loop {
                tokio::select! {
                    ended = serving.as_mut() => break ended,
                    // Its request's handler gave up on the answer (a stream cut): hyper may
                    // never poll the body again, so the connection is dropped here.
                    () = connection.drop_asked() => break Ok(()),
                    () = connection.close_asked(), if !asked => {
                        // Looked at here, between polls of the connection (which alone starts
                        // requests): idle, it is dropped, even half-way through a request's
                        // headers, and so it is while its request's body is still arriving
                        // (nothing of it taken yet); else its answer is finished first.
                        if connection.is_idle() || connection.is_receiving_body() {
                            break Ok(());
                        }
                        serving.as_mut().graceful_shutdown();
                        asked = true;
                    }
                    _ = stopping.changed(), if !asked => {
                        serving.as_mut().graceful_shutdown();
                        asked = true;
                    }
                }
            };
            connections.closed(&connection);
            let Err(e) = ended else { return };
            match write_timed_out(&e) {
                Some(cause) => {
                    tracing::debug!(%peer, "write timed out: connection closed");
                    if let Some(suppressed) = observe::sample("write-timeout") {
                        tracing::warn!(
                            %peer,
                            error = %cause,
                            suppressed,
                            "closed a connection whose client stopped reading"
                        );
                    }
                }
                None => tracing::debug!(%peer, error = %e, "connection ended with an error"),
            }
        });
    }
    drop(listener);
    tracing::info!(
        connections = connections.count(),
        "no longer accepting; finishing requests in flight"
    );
    let _ = stop.send(true);
    let all_closed = slots.acquire_many(u32::try_from(max).unwrap_or(u32::MAX));
    if tokio::time::timeout(limits.shutdown_timeout, all_closed)
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_secs = limits.shutdown_timeout.as_secs(),
            "requests still in flight after the shutdown timeout; closing anyway"
        );
    }
    Ok(())
}

/// The timeout, when a connection ended because a write timed out (see `write_timeout.rs`).
fn write_timed_out(error: &hyper::Error) -> Option<&std::io::Error> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return (io.kind() == std::io::ErrorKind::TimedOut).then_some(io);
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod connection_limit_tests {
    use super::connection_limit;

    /// What the process may open, less what its own files keep, bounds the connections asked.
    #[test]
    fn the_connection_limit_leaves_file_descriptors_for_the_service() {
        let files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .expect("a file limit");
        let room = usize::try_from(files - 128.min(files / 2)).unwrap();
        for (wanted, got) in [(1, 1), (0, 1), (usize::MAX, room), (room + 1, room)] {
            assert_eq!(connection_limit(wanted), got, "{wanted}");
        }
    }
}
