//! The change feed's read (`GET /feed`): the records committed after a seq, in seq order, across
//! the verdict, outcome and event tables, filtered by type, one bounded page from one read
//! snapshot.
//!
//! The three tables are keyed by seq, so the page is a merge of three ranges that starts where
//! the consumer stands: it reads the records it returns (and at most one more per table),
//! whatever the history before them.

use redb::{AccessGuard, Range, ReadableDatabase, ReadableTable};

use super::codec::decode;
use super::meta;
use super::read::{VerdictEntry, event_entry, outcome_entry};
use super::tables::{EVENTS, META, OUTCOMES, VERDICTS_BY_SEQ};
use super::values::VerdictValue;
use super::{SigRecord, Store, StoreError};
use crate::model::verdict::sig_hash;

/// Which kinds of record a consumer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedTypes {
    pub verdicts: bool,
    pub outcomes: bool,
    pub events: bool,
}

impl FeedTypes {
    pub const ALL: FeedTypes = FeedTypes {
        verdicts: true,
        outcomes: true,
        events: true,
    };
}

/// One page of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    /// Records with seq after the cursor, in seq order.
    pub records: Vec<SigRecord>,
    /// Whether records of the wanted types follow the last one (the page stopped at its limit
    /// or its byte budget).
    pub more: bool,
    /// The highest seq committed in the snapshot the page was read from.
    pub last_seq: u64,
    /// Retention deleted every event with seq at or below this (0: it never deleted one).
    pub events_deleted_through: u64,
}

impl FeedPage {
    /// Where the consumer stands after this page: its last record when more follow, else the
    /// snapshot's last seq (every wanted record up to it is in the page), so a consumer of rare
    /// types does not walk again over the records it filtered out.
    pub fn next_after_seq(&self, after_seq: u64) -> u64 {
        match (self.more, self.records.last()) {
            (true, Some(last)) => last.seq(),
            _ => after_seq.max(self.last_seq),
        }
    }
}

/// The table a lane reads.
#[derive(Clone, Copy)]
enum Kind {
    Verdict,
    Outcome,
    Event,
}

/// One table's range, with the row it will yield next.
struct Lane<'a> {
    kind: Kind,
    rows: Range<'a, u64, &'static [u8]>,
    head: Option<(u64, AccessGuard<'a, &'static [u8]>)>,
}

impl<'a> Lane<'a> {
    fn new(kind: Kind, rows: Range<'a, u64, &'static [u8]>) -> Result<Self, StoreError> {
        let mut lane = Lane {
            kind,
            rows,
            head: None,
        };
        lane.advance()?;
        Ok(lane)
    }

    fn advance(&mut self) -> Result<(), StoreError> {
        self.head = match self.rows.next() {
            Some(row) => {
                let (seq, value) = row?;
                Some((seq.value(), value))
            }
            None => None,
        };
        Ok(())
    }
}

impl Store {
    /// Records with seq after `after_seq` of the `types` wanted, in seq order: at most `limit`,
    /// and no more once their stored text reaches `max_bytes` (at least one record, however
    /// large, so that a page always moves the consumer on).
    pub fn feed(
        &self,
        after_seq: u64,
        types: FeedTypes,
        limit: usize,
        max_bytes: usize,
    ) -> Result<FeedPage, StoreError> {
        let txn = self.db()?.begin_read()?;
        let (last_seq, events_deleted_through) = {
            let meta_table = txn.open_table(META)?;
            (
                meta::get(&meta_table, meta::LAST_SEQ)?,
                meta::get(&meta_table, meta::EVENTS_DELETED_THROUGH)?,
            )
        };
        let from = after_seq.saturating_add(1);
        let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
        let outcomes = txn.open_table(OUTCOMES)?;
        let events = txn.open_table(EVENTS)?;
        let mut lanes = Vec::with_capacity(3);
        if types.verdicts {
            lanes.push(Lane::new(Kind::Verdict, verdicts.range(from..)?)?);
        }
        if types.outcomes {
            lanes.push(Lane::new(Kind::Outcome, outcomes.range(from..)?)?);
        }
        if types.events {
            lanes.push(Lane::new(Kind::Event, events.range(from..)?)?);
        }
        let mut records = Vec::new();
        let mut n_bytes = 0usize;
        let more = loop {
            let next = lanes
                .iter_mut()
                .filter_map(|lane| lane.head.as_ref().map(|(seq, _)| *seq).zip(Some(lane)))
                .min_by_key(|(seq, _)| *seq);
            let Some((seq, lane)) = next else {
                break false;
            };
            if records.len() >= limit || (!records.is_empty() && n_bytes >= max_bytes) {
                break true;
            }
            let bytes = lane
                .head
                .as_ref()
                .map(|(_, value)| value.value())
                .unwrap_or(&[]);
            let record = match lane.kind {
                Kind::Verdict => {
                    let value: VerdictValue =
                        decode(bytes).map_err(|source| StoreError::Codec {
                            table: "verdicts_by_seq",
                            seq,
                            source,
                        })?;
                    SigRecord::Verdict(VerdictEntry {
                        seq,
                        sig_hash: sig_hash(value.pr_number, &value.head_sha),
                        value,
                    })
                }
                Kind::Outcome => SigRecord::Outcome(outcome_entry(&verdicts, seq, bytes)?),
                Kind::Event => SigRecord::Event(event_entry(&verdicts, seq, bytes)?),
            };
            n_bytes = n_bytes.saturating_add(text_len(&record));
            records.push(record);
            lane.advance()?;
        };
        Ok(FeedPage {
            records,
            more,
            last_seq,
            events_deleted_through,
        })
    }
}

/// The stored text a record brings into an answer.
fn text_len(record: &SigRecord) -> usize {
    match record {
        SigRecord::Verdict(v) => v.value.raw_json.len(),
        SigRecord::Outcome(o) => o.value.line.len(),
        SigRecord::Event(e) => e.value.line.len() + e.value.body.as_ref().map_or(0, String::len),
    }
}

/// Which history a database's seqs are positions in: `meta`'s `feed/history`, given at the
/// file's first open, which a backup's copy does not take (it gets its own at its first open),
/// so a database restored from a backup has another history than the one it was copied from,
/// though both hand out the same seqs for different records after the copy. A copy remembers
/// the histories it was copied from (a copy of a copy, its parent's too, up to
/// [`meta::MAX_FEED_ANCESTORS`]) and the seq through which each and it are one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeedHistory {
    /// `None` only before the store's open gave the file one.
    pub id: Option<u64>,
    /// The histories this database was copied from, the nearest first, each with the last seq
    /// it shares with this one.
    pub ancestors: Vec<(u64, u64)>,
}

impl FeedHistory {
    /// Whether position `seq` of history `of` is a position in this one: the same history, or
    /// an ancestor's up to the seq they share.
    pub fn holds(&self, of: u64, seq: u64) -> bool {
        self.id == Some(of) || self.shared_with(of).is_some_and(|through| seq <= through)
    }

    /// The last seq this history shares with ancestor `of`, if it is one.
    pub fn shared_with(&self, of: u64) -> Option<u64> {
        self.ancestors
            .iter()
            .find(|(ancestor, _)| *ancestor == of)
            .map(|(_, through)| *through)
    }

    /// The ancestors a copy of this database at `last_seq` has: this history, then this one's
    /// ancestors, each sharing with the copy no more than `last_seq`.
    pub(super) fn ancestors_of_copy(&self, last_seq: u64) -> Vec<(u64, u64)> {
        self.id
            .map(|id| (id, last_seq))
            .into_iter()
            .chain(
                self.ancestors
                    .iter()
                    .map(|&(ancestor, through)| (ancestor, through.min(last_seq))),
            )
            .take(meta::MAX_FEED_ANCESTORS)
            .collect()
    }

    /// Reads it from `meta`.
    pub(super) fn read(
        meta_table: &impl ReadableTable<&'static str, u64>,
    ) -> Result<FeedHistory, StoreError> {
        let nonzero = |v: u64| (v != 0).then_some(v);
        let mut ancestors = Vec::new();
        for i in 0..meta::MAX_FEED_ANCESTORS {
            let [id, seq] = meta::feed_ancestor_keys(i);
            let Some(id) = nonzero(meta::get(meta_table, &id)?) else {
                break;
            };
            ancestors.push((id, meta::get(meta_table, &seq)?));
        }
        Ok(FeedHistory {
            id: nonzero(meta::get(meta_table, meta::FEED_HISTORY)?),
            ancestors,
        })
    }
}

impl Store {
    /// The last seq and which history the seqs are positions in (see [`FeedHistory`]).
    pub fn feed_position(&self) -> Result<(u64, FeedHistory), StoreError> {
        let txn = self.db()?.begin_read()?;
        let meta_table = txn.open_table(META)?;
        Ok((
            meta::get(&meta_table, meta::LAST_SEQ)?,
            FeedHistory::read(&meta_table)?,
        ))
    }

    /// Gives the file its feed history when it has none (its first open, or a backup's copy's).
    pub(super) fn ensure_feed_history(&self) -> Result<(), StoreError> {
        let has = {
            let txn = self.db()?.begin_read()?;
            meta::get(&txn.open_table(META)?, meta::FEED_HISTORY)? != 0
        };
        if !has {
            let txn = self.begin_write()?;
            txn.open_table(META)?
                .insert(meta::FEED_HISTORY, meta::new_random_id())?;
            txn.commit()?;
        }
        Ok(())
    }
}
