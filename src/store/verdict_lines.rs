//! A verdict's own KB row and observer event, stored once.
//!
//! `POST /verdicts` stores three records: the verdict, its `kind:"audit"` KB row (seq + 1) and
//! its observer event (the next seq), and the last two are computed from the first
//! (`Verdict::kb_outcome_line`, `Verdict::observer_body`, the observer's rules). Kept whole, they
//! repeat the verdict's sha, one-liner and timestamps in three compressed values. From schema
//! version 9, such a record is stored as a reference to its verdict ([`codec::reference`]: one
//! version byte and the distance back to the verdict, two bytes in all) whenever recomputing it
//! from the stored verdict gives back the record that would have been stored, field for field;
//! otherwise (a null optional metric, which the verdict keeps as absent; a legacy line
//! formatted otherwise) it is stored whole. Reading resolves a reference by recomputing, so a
//! reader cannot tell the two apart, and the recomputation is checked against the record before
//! a reference is ever written: a reference is exact by construction.
//!
//! Records stored before schema 9 are rewritten as references when they qualify, after the
//! migration, in bounded transactions behind a progress mark (`derived.rs`).

use redb::{ReadableTable, WriteTransaction};

use super::codec::{self, CodecError, decode};
use super::derived::Build;
use super::meta;
use super::tables::{EVENTS, OUTCOMES, VERDICTS_BY_SEQ};
use super::values::{EventValue, OutcomeValue, VerdictValue, VerdictValueRef};
use super::{Store, StoreError};
use crate::model::iso_timestamp;

/// The `meta` key recording that the records stored before references were rewritten.
const REWRITTEN: &str = "lines/references";
/// The rewrite's progress mark: the verdicts through this seq are done.
const REWRITTEN_THROUGH: &str = "lines/references_through";
/// Verdicts per transaction of the rewrite.
const REWRITE_BATCH: u64 = 4_096;

/// How a verdict recomputes one of its records.
pub(super) type Recompute<T> = fn(&VerdictValueRef<'_>) -> Option<T>;

/// The KB row the verdict recomputes.
pub(super) fn outcome_of(verdict: &VerdictValueRef<'_>) -> Option<OutcomeValue> {
    let v = verdict.to_verdict()?;
    Some(OutcomeValue {
        received_at_ms: verdict.received_at_ms,
        sig_hash: v.sig_hash(),
        kind: "audit".to_owned(),
        line: v.kb_outcome_line(),
        repo: verdict.repo.to_owned(),
    })
}

/// The observer event the verdict recomputes: received when the verdict was.
pub(super) fn event_of(verdict: &VerdictValueRef<'_>) -> Option<EventValue> {
    let v = verdict.to_verdict()?;
    let op = v.observed_op(iso_timestamp(verdict.received_at_ms));
    Some(EventValue::new(
        &op,
        op.to_line(),
        Some(v.observer_body()),
        None,
        verdict.received_at_ms,
    ))
}

/// What is stored under `seq` for `record`, made from `verdict` (stored under its seq, given
/// with it): a reference when the verdict recomputes it exactly, else `whole`'s encoding of it.
pub(super) fn stored<T: PartialEq>(
    record: &T,
    seq: u64,
    verdict: Option<(u64, &VerdictValue)>,
    recompute: Recompute<T>,
    whole: impl FnOnce(&T) -> Vec<u8>,
) -> Vec<u8> {
    verdict
        .and_then(|(verdict_seq, value)| {
            reference(record, seq, verdict_seq, &value.as_view(), recompute)
        })
        .unwrap_or_else(|| whole(record))
}

/// The reference to store under `seq` for `record` when `verdict`, stored under `verdict_seq`,
/// recomputes it exactly.
pub(super) fn reference<T: PartialEq>(
    record: &T,
    seq: u64,
    verdict_seq: u64,
    verdict: &VerdictValueRef<'_>,
    recompute: Recompute<T>,
) -> Option<Vec<u8>> {
    let distance = i64::try_from(i128::from(seq) - i128::from(verdict_seq)).ok()?;
    (distance != 0 && recompute(verdict).as_ref() == Some(record))
        .then(|| codec::reference(distance))
}

/// Reads the outcome row stored under `seq` as `bytes`, resolving a reference.
pub(super) fn outcome(
    verdicts: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
    bytes: &[u8],
) -> Result<OutcomeValue, StoreError> {
    read(verdicts, "outcomes", seq, bytes, outcome_of)
}

/// Reads the event stored under `seq` as `bytes`, resolving a reference.
pub(super) fn event(
    verdicts: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
    bytes: &[u8],
) -> Result<EventValue, StoreError> {
    read(verdicts, "events", seq, bytes, event_of)
}

fn read<T: serde::de::DeserializeOwned + for<'a> codec::Layout<'a>>(
    verdicts: &impl ReadableTable<u64, &'static [u8]>,
    table: &'static str,
    seq: u64,
    bytes: &[u8],
    recompute: Recompute<T>,
) -> Result<T, StoreError> {
    let codec_error = |source| StoreError::Codec { table, seq, source };
    match codec::referenced_seq(seq, bytes).map_err(codec_error)? {
        None => decode(bytes).map_err(codec_error),
        Some(verdict_seq) => {
            let verdict = verdicts
                .get(verdict_seq)?
                .ok_or(CodecError::BrokenReference(verdict_seq))
                .map_err(codec_error)?;
            recompute_from(verdict.value(), verdict_seq, &mut Vec::new(), recompute).and_then(
                |found| {
                    found.ok_or(StoreError::Codec {
                        table,
                        seq,
                        source: CodecError::BrokenReference(verdict_seq),
                    })
                },
            )
        }
    }
}

/// What the verdict stored as `bytes` under `verdict_seq` recomputes, read in place (through
/// `scratch` when compressed).
fn recompute_from<T>(
    bytes: &[u8],
    verdict_seq: u64,
    scratch: &mut Vec<u8>,
    recompute: Recompute<T>,
) -> Result<Option<T>, StoreError> {
    let codec_error = |source| StoreError::Codec {
        table: "verdicts_by_seq",
        seq: verdict_seq,
        source,
    };
    let plain = codec::open_in(bytes, scratch).map_err(codec_error)?;
    let verdict: VerdictValueRef = codec::decode_borrowed(plain).map_err(codec_error)?;
    Ok(recompute(&verdict))
}

/// The export's reader of the references in one table, walked in seq order: the verdicts they
/// name come in seq order too (a verdict's records are next to it), so one forward range over
/// the verdicts finds each, and each is decompressed into one reused buffer.
pub(super) struct References<'t> {
    table: &'static str,
    verdicts: redb::Range<'t, u64, &'static [u8]>,
    /// The verdict the range stopped at.
    current: Option<StoredVerdict<'t>>,
    scratch: Vec<u8>,
}

impl<'t> References<'t> {
    /// For a walk over `table` from seq `from`.
    pub(super) fn new(
        table: &'static str,
        verdicts: &'t redb::ReadOnlyTable<u64, &'static [u8]>,
        from: u64,
    ) -> Result<References<'t>, StoreError> {
        // A record refers to a verdict at most two seqs before it.
        let mut verdicts = verdicts.range(from.saturating_sub(2)..)?;
        let current = next_verdict(&mut verdicts)?;
        Ok(References {
            table,
            verdicts,
            current,
            scratch: Vec::new(),
        })
    }

    /// The record stored under `seq` as the reference `bytes`, recomputed.
    pub(super) fn resolve<T>(
        &mut self,
        seq: u64,
        bytes: &[u8],
        recompute: Recompute<T>,
    ) -> Result<T, StoreError> {
        let (table, codec_error) = (self.table, |source| StoreError::Codec {
            table: self.table,
            seq,
            source,
        });
        let broken = |verdict_seq| StoreError::Codec {
            table,
            seq,
            source: CodecError::BrokenReference(verdict_seq),
        };
        let verdict_seq = codec::referenced_seq(seq, bytes)
            .map_err(codec_error)?
            .ok_or(StoreError::Codec {
                table,
                seq,
                source: CodecError::Corrupt("not a reference".into()),
            })?;
        while self
            .current
            .as_ref()
            .is_some_and(|(at, _)| *at < verdict_seq)
        {
            self.current = next_verdict(&mut self.verdicts)?;
        }
        match &self.current {
            Some((at, verdict)) if *at == verdict_seq => {
                recompute_from(verdict.value(), verdict_seq, &mut self.scratch, recompute)?
                    .ok_or_else(|| broken(verdict_seq))
            }
            _ => Err(broken(verdict_seq)),
        }
    }
}

/// A verdict's seq and stored value.
type StoredVerdict<'t> = (u64, redb::AccessGuard<'t, &'static [u8]>);

fn next_verdict<'t>(
    range: &mut redb::Range<'t, u64, &'static [u8]>,
) -> Result<Option<StoredVerdict<'t>>, StoreError> {
    Ok(match range.next() {
        Some(row) => {
            let (seq, value) = row?;
            Some((seq.value(), value))
        }
        None => None,
    })
}

impl Store {
    /// Rewrites as references the verdicts' own records stored whole before schema 9 (see the
    /// module documentation); a no-op once done.
    pub(super) fn rewrite_verdict_lines(&self) -> Result<(), StoreError> {
        self.build_derived(&Build {
            what: "verdicts' own records as references",
            mark: REWRITTEN_THROUGH,
            is_current: &|meta_table| Ok(meta::get(meta_table, REWRITTEN)? == 1),
            clear: &|_| Ok(()),
            step: &|txn, after| rewrite_after(txn, after, REWRITE_BATCH),
            finish: &|meta_table| {
                meta_table.insert(REWRITTEN, 1)?;
                Ok(())
            },
        })
    }
}

/// Rewrites the records of up to `batch` verdicts after seq `after`: the outcome rows and
/// events next to each verdict (a KB row the import stored just before its verdict, the row and
/// event `POST /verdicts` stored just after), when it recomputes them. Returns the last
/// verdict's seq, `None` when no verdict is left.
fn rewrite_after(
    txn: &WriteTransaction,
    after: u64,
    batch: u64,
) -> Result<Option<u64>, StoreError> {
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let mut outcomes = txn.open_table(OUTCOMES)?;
    let mut events = txn.open_table(EVENTS)?;
    let mut last = None;
    let mut rewrites: Vec<(bool, u64, Vec<u8>)> = Vec::new();
    for row in verdicts
        .range(after.saturating_add(1)..)?
        .take(batch as usize)
    {
        let (verdict_seq, bytes) = row?;
        let verdict_seq = verdict_seq.value();
        last = Some(verdict_seq);
        let Ok(verdict) = decode::<VerdictValue>(bytes.value()) else {
            // Left as it is: `check` reports the verdict.
            continue;
        };
        let before = verdict_seq.checked_sub(1).filter(|&seq| seq > 0);
        for seq in before.into_iter().chain(verdict_seq + 1..=verdict_seq + 2) {
            if let Some(stored) = outcomes.get(seq)?
                && let Ok(row) = decode::<OutcomeValue>(stored.value())
                && let Some(reference) =
                    reference(&row, seq, verdict_seq, &verdict.as_view(), outcome_of)
            {
                rewrites.push((true, seq, reference));
            }
            if let Some(stored) = events.get(seq)?
                && let Ok(event) = decode::<EventValue>(stored.value())
                && let Some(reference) =
                    reference(&event, seq, verdict_seq, &verdict.as_view(), event_of)
            {
                rewrites.push((false, seq, reference));
            }
        }
    }
    for (is_outcome, seq, reference) in rewrites {
        let table = if is_outcome {
            &mut outcomes
        } else {
            &mut events
        };
        table.insert(seq, reference.as_slice())?;
    }
    Ok(last)
}
