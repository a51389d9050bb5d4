//! A verdict's own KB row and observer event, stored once.
//!
//! `POST /verdicts` stores three records: the verdict, its `kind:"audit"` KB row (seq + 1) and
//! its observer event (the next seq), and the last two are computed from the first
//! (`Verdict::kb_outcome_line`, `Verdict::observer_body`, the observer's rules); the legacy
//! import stores an audit row just before the verdict it makes of it. Kept whole, such records
//! repeat the verdict's sha, one-liner and timestamps in more compressed values. From schema
//! version 9, such a record is stored as a reference to its verdict ([`codec::reference`]: one
//! version byte and the distance to the verdict, two bytes in all) whenever recomputing it from
//! the stored verdict gives back the record that would have been stored, field for field;
//! otherwise (a null optional metric, which the verdict keeps as absent; a legacy line
//! formatted otherwise) it is stored whole. Reading resolves a reference by recomputing, so a
//! reader cannot tell the two apart, and the recomputation is checked against the record before
//! a reference is ever written: a reference is exact by construction.
//!
//! A reference sits at one of a few places next to its verdict ([`Own::places`]), and has no
//! `by_sig` entry of its own: it has its verdict's sig_hash and repository, so a sig_hash
//! lookup finds it through the verdict's entry ([`references_of`]).
//!
//! Records stored before schema 9 are rewritten as references when they qualify, after the
//! migration, in bounded transactions behind a progress mark (`derived.rs`).

use redb::{ReadableTable, WriteTransaction};
use serde::de::DeserializeOwned;

use super::codec::{self, CodecError, Layout, decode};
use super::derived::Build;
use super::meta;
use super::repos;
use super::tables::{
    BY_SIG, EVENTS, KIND_EVENT, KIND_OUTCOME, KIND_VERDICT, OUTCOMES, REPOS, VERDICTS_BY_SEQ,
};
use super::values::{EventValue, OutcomeValue, VerdictHead, VerdictValue};
use super::{ReadBudget, Store, StoreError};
use crate::model::verdict::sig_hash;
use crate::model::{ObservedOp, Repo, Verdict, iso_timestamp_checked};

/// The `meta` key recording that the records stored before references were rewritten.
const REWRITTEN: &str = "lines/references";
/// The rewrite's progress mark: the verdicts through this seq are done.
const REWRITTEN_THROUGH: &str = "lines/references_through";
/// Verdicts per transaction of the rewrite.
const REWRITE_BATCH: u64 = 4_096;

/// How a verdict recomputes one of its records.
pub(super) type Recompute<T> = fn(&VerdictHead<'_>) -> Option<T>;

/// One kind of record a verdict recomputes.
pub(super) struct Own<T: 'static> {
    /// The table it is stored in.
    pub table: &'static str,
    /// Its kind in `by_sig`.
    pub kind: u8,
    /// Where a reference of this kind may sit: its seq minus its verdict's.
    pub places: &'static [i64],
    pub recompute: Recompute<T>,
    /// The record's legacy line alone, as `recompute` makes it, appended to the `String`: what
    /// the export writes, without the rest of the record. False when `recompute` gives `None`.
    pub line: fn(&VerdictHead<'_>, &mut String) -> bool,
}

/// A verdict's KB row: the seq after it (`POST /verdicts`), or before it (the import).
pub(super) const OUTCOME: Own<OutcomeValue> = Own {
    table: "outcomes",
    kind: KIND_OUTCOME,
    places: &[-1, 1],
    recompute: outcome_of,
    line: |verdict, out| {
        verdict
            .audit_fields()
            .map(|fields| fields.write_kb_outcome_line(out))
            .is_some()
    },
};

/// A verdict's observer event: after it, after its KB row when it has one.
pub(super) const EVENT: Own<EventValue> = Own {
    table: "events",
    kind: KIND_EVENT,
    places: &[1, 2],
    recompute: event_of,
    line: |verdict, out| {
        let (Some(fields), Some(timestamp)) = (
            verdict.audit_fields(),
            iso_timestamp_checked(verdict.received_at_ms),
        ) else {
            return false;
        };
        fields.write_op_line(&timestamp, out);
        true
    },
};

/// The KB row the verdict recomputes.
pub(super) fn outcome_of(verdict: &VerdictHead<'_>) -> Option<OutcomeValue> {
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
pub(super) fn event_of(verdict: &VerdictHead<'_>) -> Option<EventValue> {
    let (v, op) = observed_op_of(verdict)?;
    Some(EventValue::new(
        &op,
        op.to_line(),
        Some(v.observer_body()),
        None,
        verdict.received_at_ms,
    ))
}

/// The verdict, and the observer's op of its event: received when the verdict was. A receipt
/// time past year 9999 (damaged) recomputes nothing: the event stays whole, or its reference
/// reads as broken.
fn observed_op_of(verdict: &VerdictHead<'_>) -> Option<(Verdict, ObservedOp)> {
    let v = verdict.to_verdict()?;
    let op = v.observed_op(iso_timestamp_checked(verdict.received_at_ms)?);
    Some((v, op))
}

impl<T: PartialEq + DeserializeOwned + for<'a> Layout<'a>> Own<T> {
    /// What is stored under `seq` for `record`, made from `verdict` (stored under its seq,
    /// given with it): a reference when the verdict recomputes it exactly, else `whole`'s
    /// encoding of it.
    pub(super) fn stored(
        &self,
        record: &T,
        seq: u64,
        verdict: Option<(u64, &VerdictValue)>,
        whole: impl FnOnce(&T) -> Vec<u8>,
    ) -> Vec<u8> {
        verdict
            .and_then(|(verdict_seq, value)| {
                self.reference(record, seq, verdict_seq, &value.as_view().head())
            })
            .unwrap_or_else(|| whole(record))
    }

    /// The reference to store under `seq` for `record` when `verdict`, stored under
    /// `verdict_seq`, recomputes it exactly and `seq` is one of its places.
    pub(super) fn reference(
        &self,
        record: &T,
        seq: u64,
        verdict_seq: u64,
        verdict: &VerdictHead<'_>,
    ) -> Option<Vec<u8>> {
        let distance = i64::try_from(i128::from(seq) - i128::from(verdict_seq)).ok()?;
        (self.places.contains(&distance) && (self.recompute)(verdict).as_ref() == Some(record))
            .then(|| codec::reference(distance))
    }

    /// The seq of the verdict the value `bytes` stored under `seq` refers to, `None` for a
    /// record stored whole; a reference away from this kind's places is corrupt.
    fn verdict_seq(&self, seq: u64, bytes: &[u8]) -> Result<Option<u64>, StoreError> {
        let codec_error = |source| StoreError::Codec {
            table: self.table,
            seq,
            source,
        };
        let verdict_seq = codec::referenced_seq(seq, bytes).map_err(codec_error)?;
        match verdict_seq {
            Some(v)
                if !self
                    .places
                    .iter()
                    .any(|&d| v.checked_add_signed(d) == Some(seq)) =>
            {
                Err(codec_error(CodecError::Corrupt(format!(
                    "a reference to seq {v}, out of place"
                ))))
            }
            _ => Ok(verdict_seq),
        }
    }

    /// The record stored under `seq` as `bytes`, a reference resolved against `verdicts`.
    pub(super) fn read(
        &self,
        verdicts: &impl ReadableTable<u64, &'static [u8]>,
        seq: u64,
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        let Some(verdict_seq) = self.verdict_seq(seq, bytes)? else {
            return decode(bytes).map_err(|source| StoreError::Codec {
                table: self.table,
                seq,
                source,
            });
        };
        let verdict = verdicts.get(verdict_seq)?;
        let found = match &verdict {
            Some(verdict) => recompute_from(
                verdict.value(),
                verdict_seq,
                &mut Vec::new(),
                self.recompute,
            )?,
            None => None,
        };
        found.ok_or_else(|| self.broken(seq, verdict_seq))
    }

    /// The records of this kind stored whole in `table` at the places next to the verdict
    /// under `verdict_seq` that it recomputes, each with the reference to store instead.
    fn rewritable(
        &self,
        table: &impl ReadableTable<u64, &'static [u8]>,
        verdict_seq: u64,
        verdict: &VerdictHead<'_>,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut found = Vec::new();
        for &place in self.places {
            if let Some(seq) = verdict_seq.checked_add_signed(place)
                && let Some(stored) = table.get(seq)?
                && let Ok(record) = decode::<T>(stored.value())
                && let Some(reference) = self.reference(&record, seq, verdict_seq, verdict)
            {
                found.push((seq, reference));
            }
        }
        Ok(found)
    }

    fn broken(&self, seq: u64, verdict_seq: u64) -> StoreError {
        StoreError::Codec {
            table: self.table,
            seq,
            source: CodecError::BrokenReference(verdict_seq),
        }
    }
}

/// Reads the outcome row stored under `seq` as `bytes`, resolving a reference.
pub(super) fn outcome(
    verdicts: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
    bytes: &[u8],
) -> Result<OutcomeValue, StoreError> {
    OUTCOME.read(verdicts, seq, bytes)
}

/// Reads the event stored under `seq` as `bytes`, resolving a reference.
pub(super) fn event(
    verdicts: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
    bytes: &[u8],
) -> Result<EventValue, StoreError> {
    EVENT.read(verdicts, seq, bytes)
}

/// The records of the verdict stored under `verdict_seq` of the `kinds` wanted that are stored
/// as references to it, as `(seq, by_sig kind)` in seq order: at most four point lookups.
pub(super) fn references_of(
    verdict_seq: u64,
    kinds: &[u8],
    outcomes: &dyn Refers,
    events: &dyn Refers,
) -> Result<Vec<(u64, u8)>, StoreError> {
    let mut found = Vec::with_capacity(2);
    for (table, places, kind) in [
        (outcomes, OUTCOME.places, OUTCOME.kind),
        (events, EVENT.places, EVENT.kind),
    ] {
        if !kinds.contains(&kind) {
            continue;
        }
        for &place in places {
            if let Some(seq) = verdict_seq.checked_add_signed(place)
                && table.refers(seq, verdict_seq)?
            {
                found.push((seq, kind));
            }
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// The verdicts of a `by_sig` walk, each with its records stored as references (which have no
/// entry of their own), as `(seq, by_sig kind)` in the walk's order. A verdict's records sit
/// within two seqs of it, so an item is handed out once no verdict still to come could place
/// one on the near side of it. Each verdict expanded counts against the read's budget (a
/// sig_hash may have many verdicts whose records are stored whole).
pub(super) struct WithReferences<'t, I> {
    verdicts: I,
    /// The next verdict, not yet expanded into its items.
    next_verdict: Option<u64>,
    forward: bool,
    /// Only these kinds are handed out.
    kinds: &'static [u8],
    outcomes: &'t dyn Refers,
    events: &'t dyn Refers,
    pending: std::collections::BTreeSet<(u64, u8)>,
    /// The read's deadline and abandon flag (a copy: its counts are this walk's).
    budget: ReadBudget,
}

impl<'t, I: Iterator<Item = Result<u64, StoreError>>> WithReferences<'t, I> {
    /// `verdicts` are seqs of verdict entries, ascending when `forward`, else descending.
    pub(super) fn new(
        verdicts: I,
        forward: bool,
        kinds: &'static [u8],
        outcomes: &'t impl ReadableTable<u64, &'static [u8]>,
        events: &'t impl ReadableTable<u64, &'static [u8]>,
        budget: ReadBudget,
    ) -> Self {
        WithReferences {
            verdicts,
            next_verdict: None,
            forward,
            kinds,
            outcomes,
            events,
            pending: std::collections::BTreeSet::new(),
            budget,
        }
    }

    pub(super) fn next_item(&mut self) -> Result<Option<(u64, u8)>, StoreError> {
        loop {
            if self.next_verdict.is_none() {
                self.next_verdict = self.verdicts.next().transpose()?;
            }
            let next_verdict = self.next_verdict;
            let nearest = if self.forward {
                self.pending.first()
            } else {
                self.pending.last()
            };
            // Forward, the next verdict's items are at or after its seq - 1, and the seq just
            // before it, if pending, is another verdict's; backward, they are at or before its
            // seq + 2, and that seq, if pending, is another's.
            let safe = |seq: u64, verdict: u64| {
                if self.forward {
                    seq < verdict
                } else {
                    seq > verdict.saturating_add(1)
                }
            };
            match (nearest.copied(), next_verdict) {
                (Some(item), Some(verdict)) if safe(item.0, verdict) => {
                    self.pending.remove(&item);
                    return Ok(Some(item));
                }
                (Some(item), None) => {
                    self.pending.remove(&item);
                    return Ok(Some(item));
                }
                (_, Some(verdict)) => {
                    self.next_verdict = None;
                    if self.kinds.contains(&KIND_VERDICT) {
                        self.pending.insert((verdict, KIND_VERDICT));
                    }
                    self.budget.tick()?;
                    for item in references_of(verdict, self.kinds, self.outcomes, self.events)? {
                        self.pending.insert(item);
                    }
                }
                (None, None) => return Ok(None),
            }
        }
    }
}

/// A table whose values may be references.
pub(super) trait Refers {
    /// Whether the value under `seq` is a reference to the verdict under `verdict_seq`.
    fn refers(&self, seq: u64, verdict_seq: u64) -> Result<bool, StoreError>;
}

impl<T: ReadableTable<u64, &'static [u8]>> Refers for T {
    fn refers(&self, seq: u64, verdict_seq: u64) -> Result<bool, StoreError> {
        Ok(self.get(seq)?.is_some_and(|value| {
            codec::referenced_seq(seq, value.value()).ok().flatten() == Some(verdict_seq)
        }))
    }
}

/// What the verdict stored as `bytes` under `verdict_seq` recomputes, from its head read in
/// place (through `scratch` when compressed; without its JSON when stored by version 5).
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
    let verdict = VerdictHead::read(bytes, scratch).map_err(codec_error)?;
    Ok(recompute(&verdict))
}

/// The export's reader of the references in one table, walked in seq order: the verdicts they
/// name come in seq order too (a verdict's records are next to it), so one forward range over
/// the verdicts finds each, and each is decompressed into one reused buffer.
pub(super) struct References<'t> {
    verdicts: redb::Range<'t, u64, &'static [u8]>,
    /// The verdict the range stopped at.
    current: Option<StoredVerdict<'t>>,
    scratch: Vec<u8>,
}

impl<'t> References<'t> {
    /// For a walk from seq `from`.
    pub(super) fn new(
        verdicts: &'t redb::ReadOnlyTable<u64, &'static [u8]>,
        from: u64,
    ) -> Result<References<'t>, StoreError> {
        // A record sits at most two seqs after its verdict.
        let mut verdicts = verdicts.range(from.saturating_sub(2)..)?;
        let current = next_verdict(&mut verdicts)?;
        Ok(References {
            verdicts,
            current,
            scratch: Vec::new(),
        })
    }

    /// The line of the record of kind `own` stored under `seq` as the reference `bytes`,
    /// recomputed into `out` (cleared first).
    pub(super) fn line<T: PartialEq + DeserializeOwned + for<'a> Layout<'a>>(
        &mut self,
        own: &Own<T>,
        seq: u64,
        bytes: &[u8],
        out: &mut String,
    ) -> Result<(), StoreError> {
        let Some(verdict_seq) = own.verdict_seq(seq, bytes)? else {
            return Err(StoreError::Codec {
                table: own.table,
                seq,
                source: CodecError::Corrupt("not a reference".into()),
            });
        };
        while self
            .current
            .as_ref()
            .is_some_and(|(at, _)| *at < verdict_seq)
        {
            self.current = next_verdict(&mut self.verdicts)?;
        }
        out.clear();
        let found = match &self.current {
            Some((at, verdict)) if *at == verdict_seq => {
                let head =
                    VerdictHead::read(verdict.value(), &mut self.scratch).map_err(|source| {
                        StoreError::Codec {
                            table: "verdicts_by_seq",
                            seq: verdict_seq,
                            source,
                        }
                    })?;
                (own.line)(&head, out)
            }
            _ => false,
        };
        if found {
            Ok(())
        } else {
            Err(own.broken(seq, verdict_seq))
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
            rules: "",
            built: "",
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

/// Rewrites the records of up to `batch` verdicts after seq `after`: each record in one of
/// its kind's places next to a verdict that recomputes it becomes a reference, and leaves
/// `by_sig` (where the verdict's own entry stands for it; a verdict missing from `by_sig`, which
/// `check` reports, keeps its records whole). Returns the last verdict's seq, `None` when no
/// verdict is left.
fn rewrite_after(
    txn: &WriteTransaction,
    after: u64,
    batch: u64,
) -> Result<Option<u64>, StoreError> {
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let mut outcomes = txn.open_table(OUTCOMES)?;
    let mut events = txn.open_table(EVENTS)?;
    let mut by_sig = txn.open_table(BY_SIG)?;
    let repo_ids = txn.open_table(REPOS)?;
    let mut last = None;
    // (the by_sig kind, seq, reference, repository id, sig_hash)
    let mut rewrites: Vec<(u8, u64, Vec<u8>, u32, String)> = Vec::new();
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
        let verdict = verdict.as_view().head();
        // A recomputed record has the verdict's sig_hash and repository.
        let sig = sig_hash(verdict.pr_number, verdict.head_sha);
        let repo = match Repo::parse("repo", verdict.repo) {
            Ok(repo) => repos::lookup(&repo_ids, &repo)?,
            Err(_) => None,
        };
        let Some(repo) = repo else { continue };
        if by_sig
            .get((repo, sig.as_str(), KIND_VERDICT, verdict_seq))?
            .is_none()
        {
            continue;
        }
        let found = OUTCOME
            .rewritable(&outcomes, verdict_seq, &verdict)?
            .into_iter()
            .map(|(seq, reference)| (KIND_OUTCOME, seq, reference))
            .chain(
                EVENT
                    .rewritable(&events, verdict_seq, &verdict)?
                    .into_iter()
                    .map(|(seq, reference)| (KIND_EVENT, seq, reference)),
            );
        for (kind, seq, reference) in found {
            rewrites.push((kind, seq, reference, repo, sig.clone()));
        }
    }
    for (kind, seq, reference, repo, sig) in rewrites {
        let table = if kind == KIND_OUTCOME {
            &mut outcomes
        } else {
            &mut events
        };
        table.insert(seq, reference.as_slice())?;
        by_sig.remove((repo, sig.as_str(), kind, seq))?;
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MAX_ISO_MS;

    fn verdict(received_at_ms: u64) -> VerdictValue {
        let v = crate::model::Verdict::parse(
            r#"{"pr_number":1,"head_sha":"e9e0d501ff8789cc","overall":"approve","one_liner":"ok","metrics":{"findings_block":0,"findings_warn":1},"audited_at":"2026-04-01T09:15:13.330Z"}"#,
        )
        .unwrap();
        VerdictValue::from_verdict(&v, received_at_ms)
    }

    /// A receipt time no timestamp can show (a damaged verdict) recomputes no event, rather
    /// than failing the read that resolves one.
    #[test]
    fn a_verdict_received_past_year_9999_recomputes_no_event() {
        assert!(event_of(&verdict(MAX_ISO_MS).as_view().head()).is_some());
        assert!(event_of(&verdict(MAX_ISO_MS + 1).as_view().head()).is_none());
        assert!(event_of(&verdict(u64::MAX).as_view().head()).is_none());
        assert!(outcome_of(&verdict(u64::MAX).as_view().head()).is_some());
    }

    /// The export's line of a reference is the line of the record it stands for, for every
    /// shape of verdict (the optional metrics absent, null or given; a repository; text that
    /// JSON escapes; a receipt time no timestamp can show).
    #[test]
    fn a_references_line_is_its_records_line() {
        let cases = [
            (r#""overall":"approve","one_liner":"ok""#, 1_775_000_000_000),
            (
                r#""overall":"block","one_liner":"tab\there \"q\" \u0001 é""#,
                1,
            ),
            (
                r#""overall":"request_changes","one_liner":"","repo":"acme/api""#,
                7,
            ),
            (
                r#""overall":"approve","one_liner":"x","audit_duration_ms":1234.5"#,
                2,
            ),
            (
                r#""overall":"approve","one_liner":"x","audit_duration_ms":null"#,
                3,
            ),
            (
                r#""overall":"block","one_liner":"x","audit_duration_ms":0.1"#,
                MAX_ISO_MS + 1,
            ),
        ];
        for (fields, received_at_ms) in cases {
            let json = format!(
                r#"{{"pr_number":9007199254740991,"head_sha":"e9e0d501ff8789cc",{fields},"metrics":{{"findings_block":2,"findings_warn":1,"findings_info":3}},"audited_at":"2026-04-01T09:15:13.330Z"}}"#
            );
            let v = crate::model::Verdict::parse(&json).unwrap();
            let stored = VerdictValue::from_verdict(&v, received_at_ms);
            let view = stored.as_view().head();
            // Appended to what the buffer holds; nothing written when there is no line.
            let line = |own: fn(&VerdictHead<'_>, &mut String) -> bool| {
                let mut out = "before".to_owned();
                let written = own(&view, &mut out);
                assert_eq!(written, out != "before", "{json}");
                written.then(|| out["before".len()..].to_owned())
            };
            assert_eq!(
                line(OUTCOME.line),
                (OUTCOME.recompute)(&view).map(|row| row.line),
                "{json}"
            );
            assert_eq!(
                line(EVENT.line),
                (EVENT.recompute)(&view).map(|event| event.line),
                "{json}"
            );
            assert!(line(OUTCOME.line).is_some());
        }
    }

    /// A reference is made only at its kind's places, and read back only from them.
    #[test]
    fn references_sit_only_at_their_places() {
        let v = verdict(1_775_000_000_000);
        let row = outcome_of(&v.as_view().head()).unwrap();
        let event = event_of(&v.as_view().head()).unwrap();
        for (seq, row_place, event_place) in [(9, true, false), (11, true, true), (12, false, true)]
        {
            assert_eq!(
                OUTCOME
                    .reference(&row, seq, 10, &v.as_view().head())
                    .is_some(),
                row_place
            );
            assert_eq!(
                EVENT
                    .reference(&event, seq, 10, &v.as_view().head())
                    .is_some(),
                event_place
            );
        }
        assert!(OUTCOME.verdict_seq(13, &codec::reference(3)).is_err());
        assert_eq!(
            OUTCOME.verdict_seq(9, &codec::reference(-1)).unwrap(),
            Some(10)
        );
        assert!(EVENT.verdict_seq(9, &codec::reference(-1)).is_err());
    }
}
