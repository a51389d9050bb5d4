//! Retention for events (verdicts and outcome rows are history and are never deleted): the
//! oldest events beyond a count or an age go, a bounded batch per transaction, with their index
//! entries and counters in the same transaction, and the mark the change feed reads to tell a
//! consumer that events it had not seen are gone (`meta::EVENTS_DELETED_THROUGH`).

use redb::ReadableTable;

use super::meta;
use super::tables::{EVENTS, META, VERDICTS_BY_SEQ};
use super::{Store, StoreError, verdict_lines};

/// Which events to keep; `None` means no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Events received longer ago than this (milliseconds) are deleted.
    pub max_age_ms: Option<u64>,
    /// Only the newest this many events are kept.
    pub max_count: Option<u64>,
    /// Events after this seq are never deleted (those not yet exported to `ops.jsonl`, which
    /// is a log and must receive every event once).
    pub keep_after_seq: Option<u64>,
}

impl Retention {
    pub fn is_off(&self) -> bool {
        self.max_age_ms.is_none() && self.max_count.is_none()
    }
}

impl Store {
    /// Deletes at most `batch` of the oldest events that break `rules`, in one durable
    /// transaction, and returns how many it deleted: 0 means nothing is left to delete.
    pub fn retain_events(
        &self,
        rules: Retention,
        now_ms: u64,
        batch: usize,
    ) -> Result<u64, StoreError> {
        if rules.is_off() {
            return Ok(0);
        }
        let txn = self.begin_write()?;
        let doomed = {
            let n_events = meta::get(&txn.open_table(META)?, meta::EVENTS)?;
            let mut excess = rules
                .max_count
                .map_or(0, |max| n_events.saturating_sub(max));
            let cutoff = rules.max_age_ms.map(|age| now_ms.saturating_sub(age));
            let events = txn.open_table(EVENTS)?;
            let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
            let mut doomed = Vec::new();
            for row in events.iter()? {
                if doomed.len() == batch {
                    break;
                }
                let (seq, bytes) = row?;
                let seq = seq.value();
                if rules.keep_after_seq.is_some_and(|keep| seq > keep) {
                    break;
                }
                if excess > 0 {
                    excess -= 1;
                } else {
                    let value = verdict_lines::event(&verdicts, seq, bytes.value())?;
                    if cutoff.is_none_or(|cutoff| value.received_at_ms >= cutoff) {
                        break;
                    }
                }
                doomed.push(seq);
            }
            doomed
        };
        let n_deleted = super::write::delete_events(&txn, &doomed)?;
        if let Some(&newest) = doomed.last() {
            // The feed's resync mark, in the transaction of the deletes: a reader never sees
            // the events gone without the mark that says so.
            let mut meta_table = txn.open_table(META)?;
            let through = meta::get(&meta_table, meta::EVENTS_DELETED_THROUGH)?.max(newest);
            meta_table.insert(meta::EVENTS_DELETED_THROUGH, through)?;
        }
        txn.commit()?;
        Ok(n_deleted)
    }
}
