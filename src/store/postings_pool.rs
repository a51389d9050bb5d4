//! The postings the neighbours queries running at once hold. A query reads every posting of its
//! terms into memory (16 bytes each), and how many that is grows with how common its terms are
//! in the index: eight queries of common terms at once held 2.46 GB (a review's, on 240
//! verdicts of 1,000 claims). Each query first counts its postings (the lengths its blocks begin
//! with); one whose room (each term's count rounded up to a power of two: `postings::room_for`)
//! is at most a 128th of the pool reads them at once; any other holds that room of the pool
//! ([`POOL_POSTINGS`] unless `StoreOptions::postings_pool` says otherwise) before it reads
//! them.
//!
//! A quarter of the pool is kept for light queries, of at most an eighth of it (at the default
//! size, 1,048,576 postings, 16 MiB): a heavy query takes at most the rest, so a light query
//! finds room beside any heavy one and never waits behind one that needs all it may hold (a
//! review's: with a dozen clients looping queries of 15M postings, half of the one-claim
//! queries beside them ran out their deadline). A heavy query that needs more than the rest
//! waits for the other heavy ones to be done and runs alone among them; while it waits, no
//! other heavy query takes a share, and light ones take only their quarter, or shares that
//! overlap would keep it from ever getting its room (a review's: 153 smaller queries answered
//! while one that needed the whole pool waited out its deadline). When no such query waits,
//! heavy and light queries share the whole pool (two heavy queries of half of it run side by
//! side, one a core). Waiters are not served in order of arrival: under a flood that outlasts
//! their deadlines, served in order every query would reach the head with too little time left
//! to finish (a trial of a fair queue answered none of a dozen clients' looping queries in
//! 30 s). Together the queries hold at most the pool, or one heavy query whatever it needs
//! beside the light quarter.
//!
//! A query waits for its share holding nothing else: the server's neighbours route counts in
//! one read, waits asynchronously, and reads the postings in a second one, in the same read
//! transaction (`Store::neighbors_prepare`, `Store::neighbors_search`).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::{ReadBudget, StoreError};

/// Postings the queries running at once may hold by default: 8,388,608, 128 MiB.
pub const POOL_POSTINGS: u64 = 8 << 20;

/// How often a query waiting without a runtime ([`PostingsPool::hold_blocking`]) looks again.
const LOOK_EVERY: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct PostingsPool(Arc<Pool>);

#[derive(Debug)]
struct Pool {
    size: u64,
    state: Mutex<State>,
    freed: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Postings held by the light queries running, and by the heavy ones.
    light: u64,
    heavy: u64,
    /// Heavy queries that need all a heavy query may hold, waiting for it.
    whole_waiting: u32,
}

impl Default for PostingsPool {
    fn default() -> Self {
        PostingsPool::new(POOL_POSTINGS)
    }
}

/// A query's share of the pool, given back when dropped.
#[derive(Debug)]
#[must_use]
pub struct PostingsShare {
    pool: Arc<Pool>,
    n: u64,
    light: bool,
    /// The room it holds enough for.
    covers: u64,
}

impl PostingsShare {
    /// Whether this share holds room for `room` postings.
    pub fn covers(&self, room: u64) -> bool {
        room <= self.covers
    }
}

impl Drop for PostingsShare {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        if self.light {
            state.light -= self.n;
        } else {
            state.heavy -= self.n;
        }
        drop(state);
        self.pool.freed.notify_waiters();
    }
}

/// A whole heavy query's mark, taken back however its wait ends (a share, its read given up,
/// its future dropped).
struct WholeWaiting<'p>(&'p Pool);

impl Drop for WholeWaiting<'_> {
    fn drop(&mut self) {
        self.0.lock().whole_waiting -= 1;
        self.0.freed.notify_waiters();
    }
}

/// What a query asks of the pool.
#[derive(Debug, Clone, Copy)]
struct Ask {
    n: u64,
    light: bool,
    /// All a heavy query may hold.
    whole: bool,
    covers: u64,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The light queries' quarter.
    fn light_quarter(&self) -> u64 {
        self.size / 4
    }

    fn ask(&self, room: u64) -> Ask {
        let light = room <= self.light_quarter() / 2;
        let most = if light {
            room
        } else {
            self.size - self.light_quarter()
        };
        let n = room.min(most);
        Ask {
            n,
            light,
            whole: !light && n == most,
            covers: if n < room { u64::MAX } else { n },
        }
    }

    /// The share `ask` names, if it can be taken now.
    fn try_take(self: &Arc<Pool>, ask: Ask) -> Option<PostingsShare> {
        let mut state = self.lock();
        let fits = state.light + state.heavy + ask.n <= self.size;
        let may = if ask.light {
            // Within the quarter while a whole heavy query waits, so that it gets its room.
            fits && (state.whole_waiting == 0 || state.light + ask.n <= self.light_quarter())
        } else if ask.whole {
            fits && state.heavy == 0
        } else {
            fits && state.whole_waiting == 0
        };
        if !may {
            return None;
        }
        if ask.light {
            state.light += ask.n;
        } else {
            state.heavy += ask.n;
        }
        Some(PostingsShare {
            pool: self.clone(),
            n: ask.n,
            light: ask.light,
            covers: ask.covers,
        })
    }

    /// Marks a query waiting for all a heavy query may hold, when `ask` is one.
    fn waiting(&self, ask: Ask) -> Option<WholeWaiting<'_>> {
        ask.whole.then(|| {
            self.lock().whole_waiting += 1;
            WholeWaiting(self)
        })
    }
}

impl PostingsPool {
    /// A pool of `size` postings (at least 8).
    pub fn new(size: u64) -> PostingsPool {
        PostingsPool(Arc::new(Pool {
            size: size.max(8),
            state: Mutex::default(),
            freed: Notify::new(),
        }))
    }

    /// The largest room read without a share: a 128th of the pool (65,536 postings, 1 MiB, by
    /// default). As many such queries run at once as reads do (16 a core): 32 MiB on two cores.
    pub fn unpooled(&self) -> u64 {
        self.0.size / 128
    }

    /// Holds room for `room` postings (all a heavy query may hold, for more), waiting while the
    /// others' shares leave too little, or while a heavy query that needs all it may hold
    /// waits. The request's deadline ends the wait by dropping the future, which takes back
    /// what it marked.
    pub async fn hold(&self, room: u64) -> PostingsShare {
        let ask = self.0.ask(room);
        let _waiting = self.0.waiting(ask);
        loop {
            // Registered before looking, so that a share given back in between wakes it.
            let freed = self.0.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(share) = self.0.try_take(ask) {
                return share;
            }
            freed.await;
        }
    }

    /// [`PostingsPool::hold`] for a caller without an async runtime (a command, a test): looks
    /// every few milliseconds, and stops when `budget` says the read is no longer wanted.
    pub fn hold_blocking(
        &self,
        room: u64,
        budget: &ReadBudget,
    ) -> Result<PostingsShare, StoreError> {
        let ask = self.0.ask(room);
        let _waiting = self.0.waiting(ask);
        loop {
            if let Some(share) = self.0.try_take(ask) {
                return Ok(share);
            }
            budget.still_wanted()?;
            std::thread::sleep(LOOK_EVERY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    const HEAVY_MOST: u64 = POOL_POSTINGS - POOL_POSTINGS / 4;
    const LIGHT_SHARE: u64 = POOL_POSTINGS / 8;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// Shares that fit are held together; one that does not waits for another to be given
    /// back; a heavy one larger than a heavy query may hold waits for the other heavy ones to
    /// be done, and then covers any room.
    #[test]
    fn queries_hold_at_most_the_pool_together() {
        runtime().block_on(async {
            let pool = PostingsPool::default();
            let a = pool.hold(HEAVY_MOST / 2).await;
            let b = pool.hold(HEAVY_MOST / 4).await;
            assert!(b.covers(HEAVY_MOST / 4) && !b.covers(HEAVY_MOST / 4 + 1));
            let all = pool.hold(HEAVY_MOST * 3);
            tokio::pin!(all);
            let waited = tokio::time::timeout(Duration::from_millis(50), &mut all).await;
            assert!(
                waited.is_err(),
                "more than a heavy query may hold waits to run alone"
            );
            drop(a);
            let waited = tokio::time::timeout(Duration::from_millis(50), &mut all).await;
            assert!(waited.is_err(), "one share still held");
            drop(b);
            let all = all.await;
            assert!(all.covers(HEAVY_MOST * 3) && all.covers(u64::MAX));
            drop(all);
            assert_eq!(pool.0.lock().heavy, 0);
        });
    }

    /// While a query that needs all a heavy query may hold waits, no other heavy query takes a
    /// share, so that shares that overlap do not keep it waiting for ever; it runs once those
    /// held are given back. Its wait given up, the others go on.
    #[test]
    fn a_query_needing_all_a_heavy_query_may_hold_is_not_overtaken() {
        runtime().block_on(async {
            let pool = Arc::new(PostingsPool::default());
            let first = pool.hold(HEAVY_MOST / 2).await;
            let order = Arc::new(std::sync::Mutex::new(Vec::new()));
            let asker = |room: u64, name: &'static str| {
                let (pool, order) = (pool.clone(), order.clone());
                tokio::spawn(async move {
                    let _share = pool.hold(room).await;
                    order.lock().unwrap().push(name);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                })
            };
            let whole = asker(HEAVY_MOST, "whole");
            tokio::time::sleep(Duration::from_millis(20)).await;
            let later = asker(HEAVY_MOST / 4, "later");
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(
                order.lock().unwrap().is_empty(),
                "taken before the whole query"
            );
            drop(first);
            whole.await.unwrap();
            later.await.unwrap();
            assert_eq!(*order.lock().unwrap(), ["whole", "later"]);

            // A whole query's wait dropped (its request timed out) lets the others through.
            let held = pool.hold(HEAVY_MOST / 2).await;
            let gave_up =
                tokio::time::timeout(Duration::from_millis(20), pool.hold(HEAVY_MOST)).await;
            assert!(gave_up.is_err());
            let other = tokio::time::timeout(Duration::from_secs(1), pool.hold(HEAVY_MOST / 4));
            assert!(other.await.is_ok());
            drop(held);
            assert_eq!(pool.0.lock().whole_waiting, 0);
        });
    }

    /// A light query finds room beside a heavy one running alone, and is not held up by one
    /// that waits to; heavy ones that fit share the whole pool.
    #[test]
    fn a_light_query_passes_heavy_ones_waiting() {
        runtime().block_on(async {
            let pool = Arc::new(PostingsPool::default());
            let _running = pool.hold(HEAVY_MOST).await;
            let waiting = {
                let pool = pool.clone();
                tokio::spawn(async move { drop(pool.hold(HEAVY_MOST).await) })
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
            let light = tokio::time::timeout(Duration::from_secs(1), pool.hold(LIGHT_SHARE));
            assert!(
                light.await.is_ok(),
                "a light share waited behind heavy ones"
            );
            waiting.abort();
            drop(_running);
            let halves = (
                pool.hold(POOL_POSTINGS / 2).await,
                pool.hold(POOL_POSTINGS / 2),
            );
            let second = tokio::time::timeout(Duration::from_secs(1), halves.1).await;
            assert!(
                second.is_ok(),
                "two heavy queries of half the pool run side by side"
            );
        });
    }

    /// Without a runtime a share is taken when the pool has room, and the wait stops with its
    /// read.
    #[test]
    fn a_blocking_wait_stops_with_its_read() {
        let pool = Arc::new(PostingsPool::default());
        let budget = ReadBudget::unlimited();
        let held = pool.hold_blocking(HEAVY_MOST, &budget).unwrap();
        let other = pool
            .hold_blocking(POOL_POSTINGS - HEAVY_MOST, &budget)
            .unwrap();
        let gone = Arc::new(AtomicBool::new(false));
        let abandoned = ReadBudget::unlimited().with_abandon_flag(gone.clone());
        let waiter = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let got = pool.hold_blocking(1, &abandoned);
                (
                    matches!(got, Err(StoreError::Abandoned { .. })),
                    start.elapsed(),
                )
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        gone.store(true, Ordering::SeqCst);
        let (stopped, took) = waiter.join().unwrap();
        assert!(stopped && took < Duration::from_secs(1));
        drop((held, other));
        let state = pool.0.lock();
        assert_eq!((state.light, state.heavy), (0, 0));
    }
}
