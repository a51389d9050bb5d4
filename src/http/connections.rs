//! The open connections, each with whether a request is in flight on it, whether it ever made
//! one and since when it has been idle, so that at `--max-connections` the accept loop closes
//! an idle one to make room for a new one (see [`Connections::close_idlest`] for which). Idle
//! means no request is being handled or answered. A request is cut only while its body is
//! still arriving, [`SLOW_BODY_FOR`] after it began and slower than [`MIN_BODY_RATE`], with no
//! idle connection to close instead: nothing of it was taken yet (bodies are read whole before
//! any work). An idle connection, or one whose body is still arriving, is dropped by its own
//! task, between polls of it (so no request can start meanwhile); one that became busy
//! otherwise since it was picked is closed by hyper's graceful shutdown once its answer is
//! written. Without this, 1,024 connections that sent nothing kept every other client, `/healthz` included, waiting until the header-read timeout closed them,
//! and one client could do that again and again; closing the idlest of any kind instead made
//! half of the requests of clients keeping their connections alive fail under a flood of new
//! silent connections (a second review's).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// A connection that has sent no request this long since it was accepted may be closed at the
/// limit.
pub const SILENT_FOR: Duration = Duration::from_secs(1);

/// A connection kept alive with no request this long may be closed at the limit.
pub const KEPT_ALIVE_FOR: Duration = Duration::from_secs(5);

/// A request whose body has been arriving this long, slower than [`MIN_BODY_RATE`], may be
/// cut at the limit, when no idle connection can be closed instead. Before, 1,024 connections
/// sending their bodies a byte every half second held every slot until `--body-timeout` (10
/// s), again at each reconnection: a new client's `/healthz` waited 9 s (a review's, at
/// f639646).
pub const SLOW_BODY_FOR: Duration = Duration::from_secs(2);

/// Bytes a second, on average since it began, under which a body counts as trickling. By age
/// alone, an honest upload taking 4 s was cut at the limit with no attacker at all (a second
/// review's): a body arriving at least this fast keeps its connection, so that holding a slot
/// with a body costs its client this much bandwidth (and still ends at `--body-timeout`). A
/// kibibyte a second is a tenth of what a body of the default `--max-body` needs to arrive
/// within the default `--body-timeout`.
pub const MIN_BODY_RATE: u64 = 1024;

/// Every open connection, by id.
#[derive(Debug)]
pub struct Connections {
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    /// What idle times are measured from.
    epoch: Instant,
}

/// One open connection's state, shared by its task and its requests (until their answers are
/// written: `server.rs` holds [`InFlight`] in the answer's body).
#[derive(Debug)]
pub struct Connection {
    id: u64,
    /// Requests being handled (HTTP/1.1 handles one at a time; a count is exact either way).
    in_flight: AtomicU32,
    /// When it last became idle, in microseconds since [`Connections::epoch`].
    idle_since_us: AtomicU64,
    /// Whether a request was ever made on it.
    served: AtomicBool,
    /// When its request's body began to arrive, in microseconds since [`Connections::epoch`]
    /// (at least 1); 0 while no body is arriving.
    body_since_us: AtomicU64,
    /// The bytes of that body arrived so far.
    body_bytes: AtomicU64,
    closing: AtomicBool,
    close: Notify,
    /// Notified when its request asks for it to be dropped at once ([`DropConnection`]).
    drop_now: Notify,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Connections {
    fn now_us(&self) -> u64 {
        micros_since(self.epoch)
    }

    /// Registers a connection just accepted: idle from now.
    pub fn open(self: &Arc<Self>) -> Arc<Connection> {
        let connection = Arc::new(Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicU32::new(0),
            idle_since_us: AtomicU64::new(self.now_us()),
            served: AtomicBool::new(false),
            body_since_us: AtomicU64::new(0),
            body_bytes: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            close: Notify::new(),
            drop_now: Notify::new(),
        });
        self.lock().insert(connection.id, connection.clone());
        connection
    }

    /// Forgets a connection that has closed.
    pub fn closed(&self, connection: &Connection) {
        self.lock().remove(&connection.id);
    }

    /// Asks a connection to close, and returns whether there was one to ask: one that has made
    /// no request for [`SILENT_FOR`] since it was accepted, the oldest first (a flood of
    /// connections that send nothing makes room among its own), else one kept alive with no
    /// request for [`KEPT_ALIVE_FOR`], idle longest first, else one whose request's body has
    /// been arriving for [`SLOW_BODY_FOR`] slower than [`MIN_BODY_RATE`], the slowest first. A
    /// connection just accepted (its request on its way), between a client's requests, whose
    /// body arrives faster, or whose request is being handled or answered is not closed: with
    /// none to close, a new connection waits. Cost: one pass over the open connections (at
    /// most `--max-connections`), made only at the limit.
    pub fn close_idlest(&self) -> bool {
        let now = self.now_us();
        let for_at_least = |since: u64, at_least: Duration| {
            u128::from(now.saturating_sub(since)) >= at_least.as_micros()
        };
        // The rank of a connection that may be closed: its kind, then since when it has been
        // idle, or how slowly its body arrives.
        let rank = |c: &Connection| {
            let idle_since = c.idle_since_us.load(Ordering::Relaxed);
            let body_since = c.body_since_us.load(Ordering::Relaxed);
            if c.is_idle() {
                match c.served.load(Ordering::Relaxed) {
                    false => for_at_least(idle_since, SILENT_FOR).then_some((0, idle_since)),
                    true => for_at_least(idle_since, KEPT_ALIVE_FOR).then_some((1, idle_since)),
                }
            } else {
                (body_since != 0 && for_at_least(body_since, SLOW_BODY_FOR))
                    .then(|| {
                        let us = now.saturating_sub(body_since);
                        body_rate(c.body_bytes.load(Ordering::Relaxed), us)
                    })
                    .filter(|rate| *rate < MIN_BODY_RATE)
                    .map(|rate| (2, rate))
            }
        };
        let open = self.lock();
        let idlest = open
            .values()
            .filter(|c| !c.closing.load(Ordering::Relaxed))
            .filter_map(|c| rank(c).map(|rank| (rank, c)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, c)| c);
        match idlest {
            Some(connection) => {
                connection.closing.store(true, Ordering::Relaxed);
                connection.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// How many connections are open.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Connection {
    /// Marks a request in flight until the guard is dropped (its answer made, or the request
    /// abandoned).
    pub fn request(self: &Arc<Self>, connections: &Arc<Connections>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.store(true, Ordering::Relaxed);
        InFlight {
            connection: self.clone(),
            connections: connections.clone(),
        }
    }

    /// Whether no request is in flight on it.
    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Whether its request's body is still arriving (nothing of the request taken yet).
    pub fn is_receiving_body(&self) -> bool {
        self.body_since_us.load(Ordering::Acquire) != 0
    }

    /// Completes when the accept loop asks this connection to close.
    pub async fn close_asked(&self) {
        self.close.notified().await;
    }

    /// Completes when its request asks for it to be dropped at once ([`DropConnection`]).
    pub async fn drop_asked(&self) {
        self.drop_now.notified().await;
    }
}

/// Lets a request's handler drop its connection at once, answer unfinished
/// ([`BodyClock::drop_connection`]): a stream whose consumer stopped reading is cut so (hyper
/// polls a body only once its write buffer drains, which for such a consumer it never does:
/// the connection, the stream's feed slot and its pages stayed until `--write-timeout`, a
/// review's).
#[derive(Debug, Clone)]
pub struct DropConnection(Arc<Connection>);

impl DropConnection {
    /// Drops the connection (its task does, at once; remembered if asked before it waits).
    pub fn now(&self) {
        self.0.drop_now.notify_one();
    }
}

/// Microseconds since `epoch`.
fn micros_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Where a request's body arrives from, put in its extensions by the accept loop: the body's
/// reader marks the time it takes (see [`SLOW_BODY_FOR`]); a handler may also have the
/// connection dropped through it. It holds the connection's count, not the registry's, which
/// every request on every core would share.
#[derive(Debug, Clone)]
pub struct BodyClock {
    connection: Arc<Connection>,
    epoch: Instant,
}

impl BodyClock {
    pub fn new(connection: Arc<Connection>, connections: &Connections) -> BodyClock {
        BodyClock {
            connection,
            epoch: connections.epoch,
        }
    }

    /// What drops the request's connection at once (one extension a request serves both).
    pub fn drop_connection(&self) -> DropConnection {
        DropConnection(self.connection.clone())
    }

    /// Marks the body arriving from now until the guard is dropped.
    pub fn arriving(&self) -> Arriving {
        let since = micros_since(self.epoch).max(1);
        self.connection.body_bytes.store(0, Ordering::Relaxed);
        self.connection
            .body_since_us
            .store(since, Ordering::Release);
        Arriving(self.connection.clone())
    }
}

/// Bytes a second of `bytes` over `us` microseconds.
fn body_rate(bytes: u64, us: u64) -> u64 {
    let rate = u128::from(bytes) * 1_000_000 / u128::from(us.max(1));
    u64::try_from(rate).unwrap_or(u64::MAX)
}

/// A body arriving (see [`BodyClock::arriving`]).
#[derive(Debug)]
pub struct Arriving(Arc<Connection>);

impl Arriving {
    /// Counts `bytes` more of the body arrived.
    pub fn took(&self, bytes: usize) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.0.body_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for Arriving {
    fn drop(&mut self) {
        self.0.body_since_us.store(0, Ordering::Release);
    }
}

/// A request in flight on a connection (see [`Connection::request`]).
#[derive(Debug)]
pub struct InFlight {
    connection: Arc<Connection>,
    connections: Arc<Connections>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let c = &self.connection;
        c.idle_since_us
            .store(self.connections.now_us(), Ordering::Relaxed);
        c.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At `at`, how long after `all`'s epoch, `connection` became idle.
    fn idle_since(connection: &Connection, at: Duration) {
        let us = u64::try_from(at.as_micros()).unwrap();
        connection.idle_since_us.store(us, Ordering::Relaxed);
    }

    /// Connections silent since accepted for `SILENT_FOR` are closed first, oldest first; then
    /// those kept alive idle for `KEPT_ALIVE_FOR`, idle longest first; never one with a request
    /// in flight, one just accepted or one between requests; and none twice.
    #[test]
    fn the_idlest_connection_without_a_request_is_closed_first() {
        let all = Arc::new(Connections {
            epoch: Instant::now() - Duration::from_secs(60),
            ..Connections::default()
        });
        let now = all.epoch.elapsed();
        let (a, b, c) = (all.open(), all.open(), all.open());
        drop(b.request(&all));
        drop(c.request(&all));
        idle_since(&b, now - KEPT_ALIVE_FOR * 3);
        idle_since(&c, now - KEPT_ALIVE_FOR * 2);
        let busy = a.request(&all);
        let (silent_1, silent_2, just_accepted) = (all.open(), all.open(), all.open());
        idle_since(&silent_1, now - SILENT_FOR * 3);
        idle_since(&silent_2, now - SILENT_FOR * 2);
        let between_requests = all.open();
        drop(between_requests.request(&all));
        // Requests whose bodies are arriving: trickling for long enough (two rates), arriving
        // fast for as long, trickling for not long enough.
        let (slow, slower, fast, young) = (all.open(), all.open(), all.open(), all.open());
        let mut arriving = Vec::new();
        let secs = SLOW_BODY_FOR.as_secs() * 2;
        for (connection, for_, bytes) in [
            (&slow, SLOW_BODY_FOR * 2, MIN_BODY_RATE * secs / 2),
            (&slower, SLOW_BODY_FOR * 2, 10),
            (&fast, SLOW_BODY_FOR * 2, MIN_BODY_RATE * secs * 2),
            (&young, SLOW_BODY_FOR / 2, 0),
        ] {
            arriving.push((connection.request(&all), {
                let clock = BodyClock::new(connection.clone(), &all);
                let arriving = clock.arriving();
                arriving.took(usize::try_from(bytes).unwrap());
                let us = u64::try_from((now - for_).as_micros()).unwrap();
                connection.body_since_us.store(us, Ordering::Relaxed);
                arriving
            }));
        }
        let closed_next = |expected: &Arc<Connection>, what: &str| {
            assert!(all.close_idlest(), "{what}");
            assert!(expected.closing.load(Ordering::Relaxed), "{what}");
        };
        closed_next(&silent_1, "the oldest connection silent since accepted");
        closed_next(&silent_2, "then the next");
        closed_next(&b, "then b, kept alive idle longest");
        closed_next(&c, "then c");
        closed_next(&slower, "then the body arriving slowest");
        closed_next(&slow, "then the next");
        assert!(
            !all.close_idlest(),
            "a has a request in flight, one was just accepted, one is between requests, one \
             body arrives fast enough, one began to arrive just now"
        );
        drop(arriving);
        drop(busy);
        idle_since(&a, now - KEPT_ALIVE_FOR);
        closed_next(&a, "a, once idle long enough");
        for connection in [
            &a,
            &b,
            &c,
            &silent_1,
            &silent_2,
            &just_accepted,
            &between_requests,
            &slow,
            &slower,
            &fast,
            &young,
        ] {
            all.closed(connection);
        }
        assert_eq!(all.count(), 0);
    }
}
