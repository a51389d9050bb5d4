//! The open connections, each with whether a request is in flight on it and since when it has
//! been idle, so that at `--max-connections` the accept loop closes the connection idle
//! longest to make room for a new one. Idle means no request is being handled or answered:
//! just accepted with nothing sent yet, headers still arriving, or kept alive between
//! requests. A request in flight is never cut: an idle connection is dropped by its own task,
//! between polls of it (so no request can start meanwhile); one that became busy since it was
//! picked is closed by hyper's graceful shutdown once its answer is written. Without this, 1,024 connections that sent nothing kept every
//! other client, `/healthz` included, waiting until the header-read timeout closed them, and
//! one client could do that again and again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

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

    /// Asks the connection idle longest to close, and returns whether there was one. Cost: one
    /// pass over the open connections (at most `--max-connections`), made only at the limit.
    pub fn close_idlest(&self) -> bool {
        let open = self.lock();
        let idlest = open
            .values()
            .filter(|c| c.is_idle())
            .filter(|c| !c.closing.load(Ordering::Relaxed))
            .min_by_key(|c| c.idle_since_us.load(Ordering::Relaxed));
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

    /// The connection idle longest is asked to close, never one with a request in flight, and
    /// none twice.
    #[test]
    fn the_idlest_connection_without_a_request_is_closed_first() {
        let all = Arc::new(Connections::default());
        let (a, b, c) = (all.open(), all.open(), all.open());
        let busy = a.request(&all);
        std::thread::sleep(std::time::Duration::from_millis(2));
        drop(c.request(&all)); // c was busy, and is idle from now: after b
        assert!(all.close_idlest());
        assert!(b.closing.load(Ordering::Relaxed), "b is idle longest");
        assert!(all.close_idlest());
        assert!(c.closing.load(Ordering::Relaxed), "then c");
        assert!(!all.close_idlest(), "a has a request in flight");
        drop(busy);
        assert!(all.close_idlest(), "a, once its request is done");
        for connection in [&a, &b, &c] {
            all.closed(connection);
        }
        assert_eq!(all.count(), 0);
    }
}
