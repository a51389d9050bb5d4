//! What one read may spend: a deadline (and a flag its caller raises when it gives up) checked
//! every few rows, and a byte budget for the values it holds for its answer. A request timeout
//! abandons the answer; this makes the blocking work behind it stop too.
//!
//! The bytes of every read's answer also come out of one pool the reads share
//! ([`AnswerBytes`]) as the answer is built, so that many reads building large answers at once
//! are bounded together, not each alone; and a read whose answer grows past
//! [`LARGE_ANSWER_BYTES`], or that walks more than [`HEAVY_READ_ROWS`] rows, goes on only in
//! one of a few slots, so that only so many heavy reads run at once (a large answer costs about
//! three times its bytes while built; a neighbours query its candidates). A read without a slot
//! stops there ([`ReadBudget::wants_slot`]) rather than wait on its thread: its caller waits
//! for a slot holding nothing light reads need, and runs it again with one
//! ([`AnswerBytes::heavy_slots`], [`ReadBudget::with_heavy_slot`]). Light reads never wait for
//! one.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::StoreError;

/// Rows walked between two looks at the clock: often enough that an abandoned read stops within
/// a millisecond or so, rarely enough that the check costs nothing next to a B-tree step.
const CHECK_EVERY: u64 = 64;

/// An answer larger than this is built in one of [`AnswerBytes`]' slots of heavy reads.
pub const LARGE_ANSWER_BYTES: usize = 256 << 10;

/// A read that walks more rows than this (a neighbours query scoring many postings, say) goes
/// on in one of [`AnswerBytes`]' slots of heavy reads.
pub const HEAVY_READ_ROWS: u64 = 16_384;

/// Bytes of answers the reads of a server hold at once, and their limit: taken as each answer
/// is built (by its [`ReadBudget`]) and while it is sent (by the HTTP layer). Also the slots of
/// the large answers being built.
#[derive(Debug)]
pub struct AnswerBytes {
    used: AtomicUsize,
    max: usize,
    /// The slots of heavy reads.
    heavy: Arc<Semaphore>,
}

impl AnswerBytes {
    /// A pool of `max` bytes, with `heavy_slots` heavy reads (answers past
    /// [`LARGE_ANSWER_BYTES`], walks past [`HEAVY_READ_ROWS`]) at once (at least one).
    pub fn new(max: usize, heavy_slots: usize) -> Arc<AnswerBytes> {
        Arc::new(AnswerBytes {
            used: AtomicUsize::new(0),
            max,
            heavy: Arc::new(Semaphore::new(heavy_slots.max(1))),
        })
    }

    /// The slots of heavy reads: a read that stopped because it [wanted
    /// one](ReadBudget::wants_slot) is run again holding one ([`ReadBudget::with_heavy_slot`]).
    pub fn heavy_slots(&self) -> &Arc<Semaphore> {
        &self.heavy
    }

    /// Takes `bytes` if they fit under the limit, or if nothing is held (a record larger than
    /// the whole pool can still be read, alone); else the bytes held now.
    pub fn try_take(&self, bytes: usize) -> Result<(), usize> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                self.fits(held, bytes).then(|| held.saturating_add(bytes))
            })
            .map(drop)
    }

    /// Whether [`AnswerBytes::try_take`] of `bytes` would succeed now (another may take the
    /// room first).
    pub fn has_room(&self, bytes: usize) -> bool {
        self.fits(self.held(), bytes)
    }

    /// Whether `bytes` more fit beside `held`: under the limit, or alone.
    fn fits(&self, held: usize, bytes: usize) -> bool {
        held == 0 || held.saturating_add(bytes) <= self.max
    }

    /// Gives back bytes taken with [`AnswerBytes::try_take`].
    pub fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

/// What one read (its budget and every copy of it) has taken from the pool; given back when
/// the last copy is dropped, once the answer has been made from its items.
#[derive(Debug)]
struct Taken {
    pool: Arc<AnswerBytes>,
    bytes: AtomicUsize,
    /// The pool could not give an item's bytes: (bytes held then, bytes asked).
    refused: OnceLock<(usize, usize)>,
    /// The read's slot of a heavy read, once it holds one (given back with the last copy).
    slot: OnceLock<OwnedSemaphorePermit>,
    /// The read went heavy with no slot free, and stopped.
    wants_slot: AtomicBool,
}

impl Drop for Taken {
    fn drop(&mut self) {
        self.pool.give_back(*self.bytes.get_mut());
    }
}

/// The limits of one read. `ReadBudget::unlimited()` for callers that need no bound (tools,
/// `check`, tests). A clone shares its original's deadline, flag and pool (not its byte count).
#[derive(Debug, Clone)]
pub struct ReadBudget {
    deadline: Option<Instant>,
    abandoned: Option<Arc<AtomicBool>>,
    max_bytes: usize,
    bytes: usize,
    rows: u64,
    cut: bool,
    shared: Option<Arc<Taken>>,
}

impl Default for ReadBudget {
    fn default() -> Self {
        ReadBudget::unlimited()
    }
}

impl ReadBudget {
    pub fn unlimited() -> ReadBudget {
        ReadBudget {
            deadline: None,
            abandoned: None,
            max_bytes: usize::MAX,
            bytes: 0,
            rows: 0,
            cut: false,
            shared: None,
        }
    }

    /// Stops the read with [`StoreError::Abandoned`] once `deadline` has passed.
    pub fn with_deadline(mut self, deadline: Instant) -> ReadBudget {
        self.deadline = Some(deadline);
        self
    }

    /// Stops the read with [`StoreError::Abandoned`] once `flag` is raised (its caller went away).
    pub fn with_abandon_flag(mut self, flag: Arc<AtomicBool>) -> ReadBudget {
        self.abandoned = Some(flag);
        self
    }

    /// Values held for the answer may take about `max_bytes` (stored size); a page stops early
    /// rather than go beyond, though it always holds at least one item.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> ReadBudget {
        self.max_bytes = max_bytes;
        self
    }

    /// Takes the bytes of the answer's items from `pool` too, as they are taken, until the
    /// budget is dropped: an item the pool cannot give stops the read as if cut, and
    /// [`ReadBudget::refused`] says so (the answer is then not given).
    pub fn with_shared_bytes(mut self, pool: Arc<AnswerBytes>) -> ReadBudget {
        self.shared = Some(Arc::new(Taken {
            pool,
            bytes: AtomicUsize::new(0),
            refused: OnceLock::new(),
            slot: OnceLock::new(),
            wants_slot: AtomicBool::new(false),
        }));
        self
    }

    /// Gives the read a slot of a heavy read from the start (one its caller waited for after
    /// the read [wanted one](ReadBudget::wants_slot)). Needs [`ReadBudget::with_shared_bytes`]
    /// first; without it the slot is given back at once, as no read without a pool needs one.
    pub fn with_heavy_slot(self, slot: OwnedSemaphorePermit) -> ReadBudget {
        if let Some(taken) = &self.shared {
            let _ = taken.slot.set(slot);
        }
        self
    }

    /// Whether the read stopped (with [`StoreError::Abandoned`], or with an answer cut short)
    /// because it went heavy without a slot of a heavy read: its answer is not to be given, and
    /// the read is to run again once its caller holds a slot.
    pub fn wants_slot(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|taken| taken.wants_slot.load(Ordering::Acquire))
    }

    /// Counts one row walked; every few rows, fails if the read is past its deadline or was
    /// abandoned. Called in every loop whose length a client can choose.
    pub fn tick(&mut self) -> Result<(), StoreError> {
        self.rows += 1;
        if self.rows.is_multiple_of(CHECK_EVERY) {
            self.still_wanted()?;
            self.slot_when_heavy()?;
        }
        Ok(())
    }

    /// Counts `rows` walked at once (a run of postings scored in a tight loop); fails as
    /// [`ReadBudget::tick`] does whenever the count passes another multiple of the check interval.
    pub fn walk(&mut self, rows: u64) -> Result<(), StoreError> {
        let before = self.rows / CHECK_EVERY;
        self.rows = self.rows.saturating_add(rows);
        if self.rows / CHECK_EVERY != before {
            self.still_wanted()?;
            self.slot_when_heavy()?;
        }
        Ok(())
    }

    /// Past [`HEAVY_READ_ROWS`] rows the read goes on only in a slot of the pool's: without one,
    /// it stops.
    fn slot_when_heavy(&mut self) -> Result<(), StoreError> {
        if self.rows > HEAVY_READ_ROWS && !self.take_slot() {
            return Err(StoreError::Abandoned { rows: self.rows });
        }
        Ok(())
    }

    /// Whether the read may go on heavy: it holds a slot of the pool's (or shares no pool).
    /// Else it is marked as [wanting one](ReadBudget::wants_slot), to be run again with one,
    /// even when one is free: heavy reads run on threads of their own (`http::read_threads`).
    fn take_slot(&self) -> bool {
        let Some(taken) = &self.shared else {
            return true;
        };
        if taken.slot.get().is_some() {
            return true;
        }
        taken.wants_slot.store(true, Ordering::Release);
        false
    }

    /// Fails when the read is past its deadline or its caller gave up (also for a read that
    /// waits).
    pub fn still_wanted(&self) -> Result<(), StoreError> {
        let late = self.deadline.is_some_and(|d| Instant::now() >= d);
        let abandoned = self
            .abandoned
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed));
        if late || abandoned {
            return Err(StoreError::Abandoned { rows: self.rows });
        }
        Ok(())
    }

    /// Takes `bytes` for one more item of the answer: false (and the read marked cut) when
    /// they would pass the byte budget and the answer already holds something.
    pub fn take(&mut self, bytes: usize) -> bool {
        let total = self.bytes.saturating_add(bytes);
        if self.bytes > 0 && total > self.max_bytes {
            self.cut = true;
            return false;
        }
        if let Some(taken) = &self.shared {
            let large =
                taken.bytes.load(Ordering::Acquire).saturating_add(bytes) > LARGE_ANSWER_BYTES;
            // Without a slot the read stops: its answer is not given.
            let taken_now = if large && !self.take_slot() {
                false
            } else if let Err(held) = taken.pool.try_take(bytes) {
                let _ = taken.refused.set((held, bytes));
                false
            } else {
                taken.bytes.fetch_add(bytes, Ordering::AcqRel);
                true
            };
            if !taken_now {
                self.cut = true;
                return false;
            }
        }
        self.bytes = total;
        true
    }

    /// Gives back `bytes` taken with [`ReadBudget::take`] by this budget (not a clone of it:
    /// the pool is shared, the count is not) for an item the answer will not hold after all
    /// (read to be ranked, then ranked out).
    pub fn give_back(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        if let Some(taken) = &self.shared {
            taken.pool.give_back(bytes);
            taken.bytes.fetch_sub(bytes, Ordering::AcqRel);
        }
    }

    /// When the shared pool refused one of this read's items: (the bytes the pool held then,
    /// the bytes asked, the pool's limit). The answer is incomplete and must not be given.
    pub fn refused(&self) -> Option<(usize, usize, usize)> {
        let taken = self.shared.as_ref()?;
        let &(held, asked) = taken.refused.get()?;
        Some((held, asked, taken.pool.max()))
    }

    /// Whether [`ReadBudget::take`] refused an item, or the read [cut its answer
    /// short](ReadBudget::cut_short): the answer is shorter than asked.
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    /// The bytes [`ReadBudget::take`] would still give under this read's own limit (not the
    /// pool the reads share): what must be given back for an item of more to be taken.
    pub fn room(&self) -> usize {
        self.max_bytes.saturating_sub(self.bytes)
    }

    /// Says that the read gives fewer items than asked, to stay within a bound of its own.
    pub fn cut_short(&mut self) {
        self.cut = true;
    }

    /// Rows walked so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_take_their_items_from_one_pool_until_dropped() {
        let pool = AnswerBytes::new(100, 1);
        let budget = || ReadBudget::unlimited().with_shared_bytes(pool.clone());
        let (mut a, mut b) = (budget(), budget());
        #[rustfmt::skip]
        let steps: &[(&str, bool, usize, bool, usize)] = &[
            // step, read a (else b), bytes, taken, pool held after
            ("a's first item", true, 60, true, 60),
            ("b's first item does not fit", false, 50, false, 60),
            ("b's smaller item fits", false, 30, true, 90),
            ("a's next passes the pool", true, 20, false, 90),
            ("a's last fits exactly", true, 10, true, 100),
        ];
        for (step, on_a, bytes, taken, held) in steps {
            let read = if *on_a { &mut a } else { &mut b };
            assert_eq!(read.take(*bytes), *taken, "{step}");
            assert_eq!(pool.held(), *held, "{step}");
        }
        assert_eq!(
            a.refused(),
            Some((90, 20, 100)),
            "a's first refusal is kept"
        );
        assert_eq!(b.refused(), Some((60, 50, 100)));
        // A copy shares its original's bytes: both are given back with the last of them.
        let copy = a.clone();
        drop(a);
        assert_eq!(pool.held(), 100);
        drop(copy);
        assert_eq!(pool.held(), 30, "a's 70 given back");
        drop(b);
        assert_eq!(pool.held(), 0);
        // An item larger than the whole pool is taken when nothing else is held, alone.
        let (mut big, mut small) = (budget(), budget());
        assert!(big.take(150));
        assert!(!small.take(1));
        drop(big);
        assert!(small.take(1));
        // Without a pool nothing is refused, and the read's own limit still cuts.
        let mut alone = ReadBudget::unlimited().with_max_bytes(10);
        assert!(alone.take(50), "the first item always");
        assert!(!alone.take(1));
        assert_eq!((alone.refused(), alone.was_cut()), (None, true));
    }

    #[test]
    fn a_read_goes_heavy_only_with_a_slot_given_to_it() {
        let pool = AnswerBytes::new(1 << 30, 1);
        let budget = || ReadBudget::unlimited().with_shared_bytes(pool.clone());
        let large = LARGE_ANSWER_BYTES;
        // Past the large size without a slot, even with one free: it stops, wanting one, not
        // refused.
        let mut first = budget();
        assert!(first.take(large), "up to the large size: no slot");
        assert!(!first.take(1), "past it: none given");
        assert_eq!(
            (first.was_cut(), first.refused(), first.wants_slot()),
            (true, None, true)
        );
        // So does a read walking past the heavy rows.
        let mut walker = budget();
        assert!(walker.walk(HEAVY_READ_ROWS).is_ok());
        assert!(matches!(
            walker.walk(CHECK_EVERY),
            Err(StoreError::Abandoned { .. })
        ));
        assert!(walker.wants_slot());
        // A small answer never needs one.
        let mut small = budget();
        assert!(small.take(1000));
        assert!(!small.wants_slot());
        // A read given a slot goes heavy; a copy of it holds the slot too, and the last of them
        // gives it back.
        let slot = pool.heavy_slots().clone().try_acquire_owned().unwrap();
        let mut again = budget().with_heavy_slot(slot);
        assert!(again.take(large + 1));
        assert!(again.walk(HEAVY_READ_ROWS + CHECK_EVERY).is_ok());
        assert!(!again.wants_slot());
        let copy = again.clone();
        drop(again);
        assert_eq!(pool.heavy_slots().available_permits(), 0);
        drop(copy);
        assert_eq!(pool.heavy_slots().available_permits(), 1, "given back");
        // Without a pool, nothing waits for a slot.
        let mut alone = ReadBudget::unlimited();
        assert!(alone.take(large + 1));
        assert!(alone.walk(2 * HEAVY_READ_ROWS).is_ok());
    }
}
