//! What one read may spend: a deadline (and a flag its caller raises when it gives up) checked
//! every few rows, and a byte budget for the values it holds for its answer. A request timeout
//! abandons the answer; this makes the blocking work behind it stop too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::StoreError;

/// Rows walked between two looks at the clock: often enough that an abandoned read stops within
/// a millisecond or so, rarely enough that the check costs nothing next to a B-tree step.
const CHECK_EVERY: u64 = 64;

/// The limits of one read. `ReadBudget::unlimited()` for callers that need no bound (tools,
/// `check`, tests).
#[derive(Debug, Clone)]
pub struct ReadBudget {
    deadline: Option<Instant>,
    abandoned: Option<Arc<AtomicBool>>,
    max_bytes: usize,
    bytes: usize,
    rows: u64,
    cut: bool,
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

    /// Counts one row walked; every few rows, fails if the read is past its deadline or was
    /// abandoned. Called in every loop whose length a client can choose.
    pub fn tick(&mut self) -> Result<(), StoreError> {
        self.rows += 1;
        if self.rows.is_multiple_of(CHECK_EVERY) {
            self.check()?;
        }
        Ok(())
    }

    /// Counts `rows` walked at once (a run of postings scored in a tight loop); fails as
    /// [`ReadBudget::tick`] does whenever the count passes another multiple of the check interval.
    pub fn walk(&mut self, rows: u64) -> Result<(), StoreError> {
        let before = self.rows / CHECK_EVERY;
        self.rows = self.rows.saturating_add(rows);
        if self.rows / CHECK_EVERY != before {
            self.check()?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), StoreError> {
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
        self.bytes = total;
        true
    }

    /// Whether [`ReadBudget::take`] refused an item: the answer is shorter than asked.
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    /// Rows walked so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}
