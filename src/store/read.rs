//! The read paths. Each answer comes from a range (or a few) of one table or index and a get by
//! seq per item, so its cost grows with the answer, never with all history. Every call takes
//! its own read snapshot; callers on the async runtime run them on threads of their own.

use std::collections::BTreeMap;

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
};

use super::codec::{self, CodecError, decode, decode_borrowed};
use super::meta;
use super::seq_blocks::NewestFirst;
use super::tables::*;
use super::values::{EventValue, EventValueRef, OutcomeValue, OutcomeValueRef, VerdictValue};
use super::verdict_lines::{self, References, WithReferences};
use super::{ReadBudget, Store, StoreError, repos};
use crate::model::verdict::sig_hash;
use crate::model::{Repo, Source};

#[derive(Debug, Clone, PartialEq)]
pub struct VerdictEntry {
    pub seq: u64,
    pub sig_hash: String,
    pub value: VerdictValue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventEntry {
    pub seq: u64,
    pub value: EventValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeEntry {
    pub seq: u64,
    pub value: OutcomeValue,
}

/// A record found under one sig_hash.
#[derive(Debug, Clone, PartialEq)]
pub enum SigRecord {
    Verdict(VerdictEntry),
    Outcome(OutcomeEntry),
    Event(EventEntry),
}

impl SigRecord {
    pub fn seq(&self) -> u64 {
        match self {
            SigRecord::Verdict(v) => v.seq,
            SigRecord::Outcome(o) => o.seq,
            SigRecord::Event(e) => e.seq,
        }
    }
}

impl VerdictEntry {
    /// About the memory this entry holds: its variable-length text.
    pub fn held_bytes(&self) -> usize {
        let v = &self.value;
        self.sig_hash.len()
            + v.raw_json.len()
            + v.head_sha.len()
            + v.audited_at.len()
            + v.overall.len()
            + v.one_liner.len()
    }
}

impl EventEntry {
    /// About the memory this entry holds: its variable-length text.
    pub fn held_bytes(&self) -> usize {
        let v = &self.value;
        v.line.len()
            + v.body.as_ref().map_or(0, String::len)
            + v.source.len()
            + v.sig_hash.as_ref().map_or(0, String::len)
            + v.event_kind.as_ref().map_or(0, String::len)
            + v.source_original.as_ref().map_or(0, String::len)
    }
}

impl OutcomeEntry {
    /// About the memory this entry holds: its variable-length text.
    pub fn held_bytes(&self) -> usize {
        let v = &self.value;
        v.line.len() + v.sig_hash.len() + v.kind.len()
    }
}

impl SigRecord {
    pub fn held_bytes(&self) -> usize {
        match self {
            SigRecord::Verdict(v) => v.held_bytes(),
            SigRecord::Outcome(o) => o.held_bytes(),
            SigRecord::Event(e) => e.held_bytes(),
        }
    }
}

/// One page of results and whether more follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub more: bool,
}

/// Filters of `GET /events`; all given filters must match. `repo` scopes `sig_hash` (a
/// sig_hash names a PR head within one repository).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub source: Option<Source>,
    pub event_kind: Option<String>,
    pub sig_hash: Option<String>,
    pub repo: Repo,
}

/// The running counters, as `GET /stats` serves them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub events_success: u64,
    pub events_failure: u64,
    pub events_by_source: BTreeMap<String, u64>,
    pub events_by_kind: BTreeMap<String, u64>,
    pub verdicts: u64,
    pub verdicts_by_overall: BTreeMap<String, u64>,
    /// Verdicts by repository name (the default namespace under the empty name).
    pub verdicts_by_repo: BTreeMap<String, u64>,
    pub outcomes: u64,
    pub outcomes_by_kind: BTreeMap<String, u64>,
    pub last_seq: u64,
}

/// The keyed maps of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsMap {
    EventsBySource,
    EventsByKind,
    VerdictsByOverall,
    VerdictsByRepo,
    OutcomesByKind,
}

impl StatsMap {
    pub const ALL: [StatsMap; 5] = [
        StatsMap::EventsBySource,
        StatsMap::EventsByKind,
        StatsMap::VerdictsByOverall,
        StatsMap::VerdictsByRepo,
        StatsMap::OutcomesByKind,
    ];

    fn prefix(self) -> &'static str {
        match self {
            StatsMap::EventsBySource => meta::EVENTS_BY_SOURCE,
            StatsMap::EventsByKind => meta::EVENTS_BY_KIND,
            StatsMap::VerdictsByOverall => meta::VERDICTS_BY_OVERALL,
            StatsMap::VerdictsByRepo => meta::VERDICTS_BY_REPO,
            StatsMap::OutcomesByKind => meta::OUTCOMES_BY_KIND,
        }
    }
}

/// Where an export file stands: rows through `seq` are in it, it is `len` bytes long, and
/// `tail` fingerprints its last bytes (see `export/`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    pub len: u64,
    pub tail: u64,
}

impl Store {
    fn read(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.db()?.begin_read()?)
    }

    /// Everything stored under `sig_hash` in repository `repo` (verdicts, outcome rows,
    /// events) with seq after `after_seq`, in seq order, at most `limit`.
    pub fn by_sig(
        &self,
        repo: &Repo,
        sig_hash: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Page<SigRecord>, StoreError> {
        self.by_sig_within(
            repo,
            sig_hash,
            after_seq,
            limit,
            &mut ReadBudget::unlimited(),
        )
    }

    /// [`Store::by_sig`] within `budget`: the page also stops (with `more`) before the values
    /// it holds pass the budget's bytes. The three kinds' ranges, each in seq order, are merged
    /// as they are walked, so only the values of the page are read.
    pub fn by_sig_within(
        &self,
        repo: &Repo,
        sig_hash: &str,
        after_seq: u64,
        limit: usize,
        budget: &mut ReadBudget,
    ) -> Result<Page<SigRecord>, StoreError> {
        let txn = self.read()?;
        let Some(repo) = repos::lookup(&txn.open_table(REPOS)?, repo)? else {
            return Ok(Page {
                items: Vec::new(),
                more: false,
            });
        };
        let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
        let outcomes = txn.open_table(OUTCOMES)?;
        let events = txn.open_table(EVENTS)?;
        let index = txn.open_table(BY_SIG)?;
        let entries = |kind: u8, from: u64| {
            index
                .range((repo, sig_hash, kind, from)..=(repo, sig_hash, kind, u64::MAX))
                .map(sig_seqs)
        };
        // The verdicts with their records stored as references, which sit up to two seqs
        // after them (the walk starts early enough to find them), and the records stored
        // whole, each kind in seq order.
        let mut with_references = WithReferences::new(
            entries(KIND_VERDICT, after_seq.saturating_sub(1))?,
            true,
            &[KIND_VERDICT, KIND_OUTCOME, KIND_EVENT],
            &outcomes,
            &events,
            budget.clone(),
        );
        let mut outcome_entries = entries(KIND_OUTCOME, after_seq.saturating_add(1))?;
        let mut event_entries = entries(KIND_EVENT, after_seq.saturating_add(1))?;
        let mut lane = |i: usize| -> Result<Option<(u64, u8)>, StoreError> {
            Ok(match i {
                0 => loop {
                    match with_references.next_item()? {
                        Some((seq, _)) if seq <= after_seq => continue,
                        item => break item,
                    }
                },
                1 => outcome_entries
                    .next()
                    .transpose()?
                    .map(|seq| (seq, KIND_OUTCOME)),
                _ => event_entries
                    .next()
                    .transpose()?
                    .map(|seq| (seq, KIND_EVENT)),
            })
        };
        let mut heads = [lane(0)?, lane(1)?, lane(2)?];
        let mut items: Vec<SigRecord> = Vec::new();
        loop {
            let next = heads
                .iter()
                .enumerate()
                .filter_map(|(i, head)| Some((i, (*head)?)))
                .min_by_key(|&(_, (seq, _))| seq);
            let Some((i, (seq, kind))) = next else {
                return Ok(Page { items, more: false });
            };
            heads[i] = lane(i)?;
            // A record found both ways (an entry left for a reference) is answered once.
            if items.last().is_some_and(|last| last.seq() == seq) {
                continue;
            }
            if items.len() == limit {
                return Ok(Page { items, more: true });
            }
            budget.tick()?;
            let record = match kind {
                KIND_VERDICT => SigRecord::Verdict(verdict_at(&verdicts, sig_hash, seq)?),
                KIND_OUTCOME => SigRecord::Outcome(outcome_at(&outcomes, &verdicts, seq)?),
                _ => SigRecord::Event(event_at(&events, &verdicts, "by_sig", seq)?),
            };
            if !budget.take(record.held_bytes()) {
                return Ok(Page { items, more: true });
            }
            items.push(record);
        }
    }

    /// Events newest first, with seq below `before_seq` (all when `None`), matching `filter`,
    /// without their bodies (`value.body` is `None`). The range walked is the most selective
    /// index among the filters given.
    pub fn events_page(
        &self,
        filter: &EventFilter,
        before_seq: Option<u64>,
        limit: usize,
    ) -> Result<Page<EventEntry>, StoreError> {
        self.events_page_within(filter, before_seq, limit, &mut ReadBudget::unlimited())
    }

    /// [`Store::events_page`] within `budget`: every row walked (matching or not) counts
    /// against its deadline, and the page stops (with `more`) before the values it holds pass
    /// its bytes.
    pub fn events_page_within(
        &self,
        filter: &EventFilter,
        before_seq: Option<u64>,
        limit: usize,
        budget: &mut ReadBudget,
    ) -> Result<Page<EventEntry>, StoreError> {
        let txn = self.read()?;
        let events = txn.open_table(EVENTS)?;
        let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
        let below = before_seq.unwrap_or(u64::MAX);
        let matches = |e: &EventValue| {
            filter.source.is_none_or(|s| e.source == s.as_str())
                && filter
                    .event_kind
                    .as_ref()
                    .is_none_or(|k| e.event_kind.as_ref() == Some(k))
                && filter.sig_hash.as_ref().is_none_or(|h| {
                    e.sig_hash.as_ref() == Some(h) && e.repo == filter.repo.as_str()
                })
        };
        let mut items = Vec::new();
        // The sig_hash walk's copy of the deadline (`push` holds the budget itself).
        let walk_budget = budget.clone();
        let mut push = |mut entry: EventEntry| -> Result<bool, StoreError> {
            budget.tick()?;
            if !matches(&entry.value) {
                return Ok(true);
            }
            // A page of events is their ops; bodies, as large as a request may be, stay out.
            entry.value.body = None;
            if items.len() == limit || !budget.take(entry.held_bytes()) {
                return Ok(false);
            }
            items.push(entry);
            Ok(true)
        };
        if let Some(sig) = &filter.sig_hash {
            // Events under one sig_hash, newest first: its event range of the sig_hash index
            // merged with the events its verdicts' entries stand for (those stored as
            // references sit up to two seqs after their verdict), in the repository asked for.
            let Some(repo) = repos::lookup(&txn.open_table(REPOS)?, &filter.repo)? else {
                return Ok(Page { items, more: false });
            };
            let index = txn.open_table(BY_SIG)?;
            let sig = sig.as_str();
            let entries = |kind: u8, below: u64| {
                index
                    .range((repo, sig, kind, 0)..(repo, sig, kind, below))
                    .map(|range| sig_seqs(range.rev()))
            };
            let outcomes = txn.open_table(OUTCOMES)?;
            let mut with_references = WithReferences::new(
                entries(KIND_VERDICT, below)?,
                false,
                &[KIND_EVENT],
                &outcomes,
                &events,
                walk_budget,
            );
            let mut referenced = || -> Result<Option<u64>, StoreError> {
                loop {
                    match with_references.next_item()? {
                        Some((seq, _)) if seq >= below => continue,
                        item => return Ok(item.map(|(seq, _)| seq)),
                    }
                }
            };
            let mut whole = entries(KIND_EVENT, below)?;
            let (mut a, mut b) = (referenced()?, whole.next().transpose()?);
            let mut last = None;
            loop {
                let seq = match (a, b) {
                    (Some(x), Some(y)) if x >= y => {
                        a = referenced()?;
                        x
                    }
                    (_, Some(y)) => {
                        b = whole.next().transpose()?;
                        y
                    }
                    (Some(x), None) => {
                        a = referenced()?;
                        x
                    }
                    (None, None) => return Ok(Page { items, more: false }),
                };
                // An event found both ways (an entry left for a reference) is answered once.
                if last.replace(seq) == Some(seq) {
                    continue;
                }
                if !push(event_at(&events, &verdicts, "by_sig", seq)?)? {
                    return Ok(Page { items, more: true });
                }
            }
        }
        let index = match (&filter.event_kind, filter.source) {
            (Some(kind), Some(source)) => {
                let meta = txn.open_table(META)?;
                let n_kind = meta::get(&meta, &format!("{}{kind}", meta::EVENTS_BY_KIND))?;
                let n_source = meta::get(
                    &meta,
                    &format!("{}{}", meta::EVENTS_BY_SOURCE, source.as_str()),
                )?;
                if n_kind <= n_source {
                    Some((EVENT_KIND_SEQS, "event_kind_seqs", kind.clone()))
                } else {
                    Some((
                        EVENT_SOURCE_SEQS,
                        "event_source_seqs",
                        source.as_str().to_owned(),
                    ))
                }
            }
            (Some(kind), None) => Some((EVENT_KIND_SEQS, "event_kind_seqs", kind.clone())),
            (None, Some(source)) => Some((
                EVENT_SOURCE_SEQS,
                "event_source_seqs",
                source.as_str().to_owned(),
            )),
            (None, None) => None,
        };
        let mut more = false;
        match index {
            Some((definition, index_name, key)) => {
                let index = txn.open_table(definition)?;
                for seq in NewestFirst::new(&index, index_name, &key, below)? {
                    if !push(event_at(&events, &verdicts, index_name, seq?)?)? {
                        more = true;
                        break;
                    }
                }
            }
            None => {
                for row in events.range(..below)?.rev() {
                    let (seq, value) = row?;
                    let seq = seq.value();
                    if !push(event_entry(&verdicts, seq, value.value())?)? {
                        more = true;
                        break;
                    }
                }
            }
        }
        Ok(Page { items, more })
    }

    /// Calls `f` with the seq and line of every outcome row after `after_seq`, in seq order,
    /// from one snapshot; stops at the first error `f` returns.
    pub fn for_each_outcome_line<E: From<StoreError>>(
        &self,
        after_seq: u64,
        f: impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        self.for_each_line_in(
            &OUTCOMES,
            after_seq,
            |bytes| decode_borrowed::<OutcomeValueRef>(bytes).map(|row| row.line),
            |references, seq, bytes, out| references.line(&verdict_lines::OUTCOME, seq, bytes, out),
            f,
        )
    }

    /// Like [`Store::for_each_outcome_line`], for events and their `ops.jsonl` lines.
    pub fn for_each_event_line<E: From<StoreError>>(
        &self,
        after_seq: u64,
        f: impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        self.for_each_line_in(
            &EVENTS,
            after_seq,
            |bytes| decode_borrowed::<EventValueRef>(bytes).map(|event| event.line),
            |references, seq, bytes, out| references.line(&verdict_lines::EVENT, seq, bytes, out),
            f,
        )
    }

    /// The walk behind both: each value read in place, `line_of` picks its line; a verdict's
    /// own record stored as a reference is recomputed by `recompute` into one reused `String`.
    fn for_each_line_in<E: From<StoreError>>(
        &self,
        table: &'static TableDefinition<'static, u64, &'static [u8]>,
        after_seq: u64,
        line_of: impl for<'b> Fn(&'b [u8]) -> Result<&'b str, CodecError>,
        recompute: impl Fn(&mut References<'_>, u64, &[u8], &mut String) -> Result<(), StoreError>,
        mut f: impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        let txn = self.read()?;
        let rows = txn.open_table(*table).map_err(StoreError::from)?;
        let verdicts = txn.open_table(VERDICTS_BY_SEQ).map_err(StoreError::from)?;
        let from = after_seq.saturating_add(1);
        let mut references = References::new(&verdicts, from)?;
        let mut scratch = Vec::new();
        let mut recomputed = String::new();
        for row in rows
            .range(after_seq.saturating_add(1)..)
            .map_err(StoreError::from)?
        {
            let (seq, value) = row.map_err(StoreError::from)?;
            let seq = seq.value();
            let bytes = value.value();
            if codec::is_reference(bytes) {
                recompute(&mut references, seq, bytes, &mut recomputed)?;
                f(seq, &recomputed)?;
                continue;
            }
            let codec_error = |source| StoreError::Codec {
                table: table.name(),
                seq,
                source,
            };
            let plain = codec::open_in(bytes, &mut scratch).map_err(codec_error)?;
            let line = line_of(plain).map_err(codec_error)?;
            f(seq, line)?;
        }
        Ok(())
    }

    /// The running counters, every map collected.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let mut stats = Stats::default();
        let totals = self.visit_stats(&mut |map, key, count| {
            let map = match map {
                StatsMap::EventsBySource => &mut stats.events_by_source,
                StatsMap::EventsByKind => &mut stats.events_by_kind,
                StatsMap::VerdictsByOverall => &mut stats.verdicts_by_overall,
                StatsMap::VerdictsByRepo => &mut stats.verdicts_by_repo,
                StatsMap::OutcomesByKind => &mut stats.outcomes_by_kind,
            };
            map.insert(key.to_owned(), count);
        })?;
        Ok(Stats {
            events_by_source: stats.events_by_source,
            events_by_kind: stats.events_by_kind,
            verdicts_by_overall: stats.verdicts_by_overall,
            verdicts_by_repo: stats.verdicts_by_repo,
            outcomes_by_kind: stats.outcomes_by_kind,
            ..totals
        })
    }

    /// The running counters from one snapshot: the totals returned (maps left empty), each
    /// keyed counter passed to `visit` in key order, map after map, so that a map of any size
    /// (clients name event kinds) costs no memory here.
    pub fn visit_stats(
        &self,
        visit: &mut dyn FnMut(StatsMap, &str, u64),
    ) -> Result<Stats, StoreError> {
        let txn = self.read()?;
        let meta = txn.open_table(META)?;
        for map in StatsMap::ALL {
            meta::visit_counters_under(&meta, map.prefix(), &mut |name, count| {
                visit(map, name, count)
            })?;
        }
        Ok(Stats {
            events: meta::get(&meta, meta::EVENTS)?,
            events_success: meta::get(&meta, meta::EVENTS_SUCCESS)?,
            events_failure: meta::get(&meta, meta::EVENTS_FAILURE)?,
            verdicts: meta::get(&meta, meta::VERDICTS)?,
            outcomes: meta::get(&meta, meta::OUTCOMES)?,
            last_seq: meta::get(&meta, meta::LAST_SEQ)?,
            ..Stats::default()
        })
    }

    /// What changes whenever any counter does: the last seq (every write) and the number of
    /// events (retention deletes events without assigning a seq).
    pub fn stats_version(&self) -> Result<(u64, u64), StoreError> {
        let txn = self.read()?;
        let meta = txn.open_table(META)?;
        Ok((
            meta::get(&meta, meta::LAST_SEQ)?,
            meta::get(&meta, meta::EVENTS)?,
        ))
    }

    /// Whether a record was stored under import key `key` (a legacy line imported or taken in).
    pub fn has_import_key(&self, key: &[u8]) -> Result<bool, StoreError> {
        let txn = self.read()?;
        Ok(txn.open_table(IMPORT_KEYS)?.get(key)?.is_some())
    }

    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        Ok(meta::get(&txn.open_table(META)?, meta::LAST_SEQ)?)
    }

    /// The verdict stored under `seq`, if any.
    pub fn verdict(&self, seq: u64) -> Result<Option<VerdictEntry>, StoreError> {
        let txn = self.read()?;
        let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
        let Some(bytes) = verdicts.get(seq)? else {
            return Ok(None);
        };
        let value: VerdictValue = decode(bytes.value()).map_err(|source| StoreError::Codec {
            table: "verdicts_by_seq",
            seq,
            source,
        })?;
        Ok(Some(VerdictEntry {
            seq,
            sig_hash: sig_hash(value.pr_number, &value.head_sha),
            value,
        }))
    }

    pub fn checkpoint(&self, file: &str) -> Result<Checkpoint, StoreError> {
        let txn = self.read()?;
        let meta = txn.open_table(META)?;
        let [seq, len, tail] = meta::checkpoint_keys(file);
        Ok(Checkpoint {
            seq: meta::get(&meta, &seq)?,
            len: meta::get(&meta, &len)?,
            tail: meta::get(&meta, &tail)?,
        })
    }

    /// Records an export checkpoint durably.
    pub fn set_checkpoint(&self, file: &str, checkpoint: Checkpoint) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let [seq, len, tail] = meta::checkpoint_keys(file);
            meta.insert(seq.as_str(), checkpoint.seq)?;
            meta.insert(len.as_str(), checkpoint.len)?;
            meta.insert(tail.as_str(), checkpoint.tail)?;
        }
        txn.commit()?;
        Ok(())
    }
}

pub(super) fn verdict_entry(
    sig_hash: &str,
    seq: u64,
    bytes: &[u8],
) -> Result<VerdictEntry, StoreError> {
    let value = decode(bytes).map_err(|source| StoreError::Codec {
        table: "verdicts_by_seq",
        seq,
        source,
    })?;
    Ok(VerdictEntry {
        seq,
        sig_hash: sig_hash.to_owned(),
        value,
    })
}

/// The event stored under `seq` as `bytes` (a reference resolved against `verdicts`).
pub(super) fn event_entry(
    verdicts: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
    bytes: &[u8],
) -> Result<EventEntry, StoreError> {
    let value = verdict_lines::event(verdicts, seq, bytes)?;
    Ok(EventEntry { seq, value })
}

/// The outcome row stored under `seq` as `bytes` (a reference resolved against `verdicts`).
pub(super) fn outcome_entry(
    verdicts: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
    bytes: &[u8],
) -> Result<OutcomeEntry, StoreError> {
    let value = verdict_lines::outcome(verdicts, seq, bytes)?;
    Ok(OutcomeEntry { seq, value })
}

/// A `by_sig` entry as redb hands it out.
type SigEntry<'a> = (
    redb::AccessGuard<'a, (u32, &'static str, u8, u64)>,
    redb::AccessGuard<'a, ()>,
);

/// The seqs of a walk over `by_sig` entries.
fn sig_seqs<'a>(
    rows: impl Iterator<Item = Result<SigEntry<'a>, redb::StorageError>> + 'a,
) -> impl Iterator<Item = Result<u64, StoreError>> + 'a {
    rows.map(|row| Ok(row?.0.value().3))
}

fn verdict_at(
    verdicts: &ReadOnlyTable<u64, &[u8]>,
    sig_hash: &str,
    seq: u64,
) -> Result<VerdictEntry, StoreError> {
    let value = verdicts.get(seq)?.ok_or(StoreError::Dangling {
        index: "by_sig",
        seq,
    })?;
    verdict_entry(sig_hash, seq, value.value())
}

/// The event at `seq`, which an entry of the index `index` points at.
fn event_at(
    events: &ReadOnlyTable<u64, &[u8]>,
    verdicts: &ReadOnlyTable<u64, &[u8]>,
    index: &'static str,
    seq: u64,
) -> Result<EventEntry, StoreError> {
    let value = events
        .get(seq)?
        .ok_or(StoreError::Dangling { index, seq })?;
    event_entry(verdicts, seq, value.value())
}

fn outcome_at(
    outcomes: &ReadOnlyTable<u64, &[u8]>,
    verdicts: &ReadOnlyTable<u64, &[u8]>,
    seq: u64,
) -> Result<OutcomeEntry, StoreError> {
    let value = outcomes.get(seq)?.ok_or(StoreError::Dangling {
        index: "by_sig",
        seq,
    })?;
    outcome_entry(verdicts, seq, value.value())
}
