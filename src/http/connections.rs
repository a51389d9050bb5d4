//! The open connections, each with whether a request is in flight on it, whether it ever made
//! one and since when it has been idle, so that at `--max-connections` the accept loop closes
//! an idle one to make room for a new one (see [`Connections::close_idlest`] for which). Idle
//! means no request is being handled or answered. A request in flight is never cut: an idle
//! connection is dropped by its own task, between polls of it (so no request can start
//! meanwhile); one that became busy since it was picked is closed by hyper's graceful
//! shutdown once its answer is written. Without this, 1,024 connections that sent nothing kept
//! every other client, `/healthz` included, waiting until the header-read timeout closed them,
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
    closing: AtomicBool,
    close: Notify,
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
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Registers a connection just accepted: idle from now.
    pub fn open(self: &Arc<Self>) -> Arc<Connection> {
        let connection = Arc::new(Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicU32::new(0),
            idle_since_us: AtomicU64::new(self.now_us()),
            served: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.lock().insert(connection.id, connection.clone());
        connection
    }

    /// Forgets a connection that has closed.
    pub fn closed(&self, connection: &Connection) {
        self.lock().remove(&connection.id);
    }

    /// Asks an idle connection to close, and returns whether there was one: one that has made
    /// no request for [`SILENT_FOR`] since it was accepted, the oldest first (a flood of
    /// connections that send nothing makes room among its own), else one kept alive with no
    /// request for [`KEPT_ALIVE_FOR`], idle longest first. A connection just accepted (its
    /// request on its way) or between a client's requests is not closed: with none to close, a
    /// new connection waits. Cost: one pass over the open connections (at most
    /// `--max-connections`), made only at the limit.
    pub fn close_idlest(&self) -> bool {
        let now = self.now_us();
        let idle_for = |c: &Connection, at_least: Duration| {
            let since = c.idle_since_us.load(Ordering::Relaxed);
            u128::from(now.saturating_sub(since)) >= at_least.as_micros()
        };
        let open = self.lock();
        let idlest = open
            .values()
            .filter(|c| c.is_idle())
            .filter(|c| !c.closing.load(Ordering::Relaxed))
            .filter(|c| match c.served.load(Ordering::Relaxed) {
                false => idle_for(c, SILENT_FOR),
                true => idle_for(c, KEPT_ALIVE_FOR),
            })
            .min_by_key(|c| {
                (
                    c.served.load(Ordering::Relaxed),
                    c.idle_since_us.load(Ordering::Relaxed),
                )
            });
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

    /// Completes when the accept loop asks this connection to close.
    pub async fn close_asked(&self) {
        self.close.notified().await;
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
        let closed_next = |expected: &Arc<Connection>, what: &str| {
            assert!(all.close_idlest(), "{what}");
            assert!(expected.closing.load(Ordering::Relaxed), "{what}");
        };
        closed_next(&silent_1, "the oldest connection silent since accepted");
        closed_next(&silent_2, "then the next");
        closed_next(&b, "then b, kept alive idle longest");
        closed_next(&c, "then c");
        assert!(
            !all.close_idlest(),
            "a has a request in flight, one was just accepted, one is between requests"
        );
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
        ] {
            all.closed(connection);
        }
        assert_eq!(all.count(), 0);
    }
}
