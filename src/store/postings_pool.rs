//! The postings the neighbours queries running at once hold. A query reads every posting of its
//! terms into memory (16 bytes each), and how many that is grows with how common its terms are
//! in the index: eight queries of common terms at once held 2.46 GB (a review's, on 240
//! verdicts of 1,000 claims). Each query first counts its postings (the lengths its blocks begin
//! with) and holds the room they take (each term's rounded up to a power of two:
//! `postings::room_for`) of the pool's [`POOL_POSTINGS`] before it reads them; a query that
//! needs more than the whole pool waits for it to be empty and runs alone. Together the queries
//! hold at most the pool, or one query alone whatever it needs; a query that cannot get its
//! share before its deadline stops as any read past its deadline does.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::{ReadBudget, StoreError};

/// Postings the queries running at once may hold: 8,388,608, 128 MiB.
pub const POOL_POSTINGS: u64 = 8 << 20;

/// How often a waiting query looks at its deadline.
const LOOK_EVERY: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
pub(super) struct PostingsPool {
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Postings held by the queries running.
    held: u64,
    /// Queries that need the whole pool, waiting for it to be empty: while one waits, no
    /// other query takes a share, or queries whose shares overlap would keep it from ever
    /// being empty (a review's: 153 smaller queries answered while one that needed the whole
    /// pool waited out its deadline).
    whole_waiting: u32,
}

/// A query's share of the pool, given back when dropped.
#[must_use]
pub(super) struct Held<'p> {
    pool: &'p PostingsPool,
    n: u64,
}

impl PostingsPool {
    /// Holds `n` postings (the whole pool for more), waiting while the others' shares leave too
    /// little, or while a query that needs the whole pool waits; stops when `budget` says the
    /// read is no longer wanted.
    pub(super) fn hold(&self, n: u64, budget: &ReadBudget) -> Result<Held<'_>, StoreError> {
        let n = n.min(POOL_POSTINGS);
        let whole = n == POOL_POSTINGS;
        let mut state = self.lock();
        if whole {
            state.whole_waiting += 1;
        }
        while state.held + n > POOL_POSTINGS || (!whole && state.whole_waiting > 0) {
            state = self
                .freed
                .wait_timeout(state, LOOK_EVERY)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if let Err(gone) = budget.still_wanted() {
                if whole {
                    state.whole_waiting -= 1;
                    self.freed.notify_all();
                }
                return Err(gone);
            }
        }
        if whole {
            state.whole_waiting -= 1;
        }
        state.held += n;
        Ok(Held { pool: self, n })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.pool.lock().held -= self.n;
        self.pool.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    /// Shares that fit are held together; one that does not waits for another to be given
    /// back; one larger than the pool waits for it to be empty; a wait stops with its read.
    #[test]
    fn queries_hold_at_most_the_pool_together() {
        let pool = Arc::new(PostingsPool::default());
        let budget = ReadBudget::unlimited();
        let a = pool.hold(POOL_POSTINGS / 2, &budget).unwrap();
        let b = pool.hold(POOL_POSTINGS / 4, &budget).unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (pool, got) = (pool.clone(), got.clone());
            std::thread::spawn(move || {
                let _all = pool
                    .hold(POOL_POSTINGS * 3, &ReadBudget::unlimited())
                    .unwrap();
                got.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !got.load(Ordering::SeqCst),
            "more than the pool waits for it to be empty"
        );
        drop(a);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!got.load(Ordering::SeqCst), "one share still held");
        // A read that is given up while it waits stops.
        let gone = Arc::new(AtomicBool::new(true));
        let abandoned = ReadBudget::unlimited().with_abandon_flag(gone);
        let start = Instant::now();
        assert!(matches!(
            pool.hold(POOL_POSTINGS, &abandoned),
            Err(StoreError::Abandoned { .. })
        ));
        assert!(start.elapsed() < Duration::from_secs(1));
        drop(b);
        waiter.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
        assert_eq!(pool.lock().held, 0);
    }

    /// While a query that needs the whole pool waits, no other takes a share, so that shares
    /// that overlap do not keep it waiting for ever; it runs once those held are given back.
    #[test]
    fn a_query_needing_the_whole_pool_is_not_overtaken() {
        let pool = Arc::new(PostingsPool::default());
        let budget = ReadBudget::unlimited();
        let first = pool.hold(POOL_POSTINGS / 2, &budget).unwrap();
        let whole_ran = Arc::new(AtomicBool::new(false));
        let whole = {
            let (pool, ran) = (pool.clone(), whole_ran.clone());
            std::thread::spawn(move || {
                let _all = pool.hold(POOL_POSTINGS, &ReadBudget::unlimited()).unwrap();
                ran.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        // A share that fits beside `first` waits behind the whole one.
        let later_got = Arc::new(AtomicBool::new(false));
        let later = {
            let (pool, got, ran) = (pool.clone(), later_got.clone(), whole_ran.clone());
            std::thread::spawn(move || {
                let _share = pool
                    .hold(POOL_POSTINGS / 4, &ReadBudget::unlimited())
                    .unwrap();
                assert!(
                    ran.load(Ordering::SeqCst),
                    "taken before the whole pool's query"
                );
                got.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!later_got.load(Ordering::SeqCst));
        drop(first);
        whole.join().unwrap();
        later.join().unwrap();
        assert!(later_got.load(Ordering::SeqCst));
        assert_eq!(pool.lock().held, 0);
    }
}
