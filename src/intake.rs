//! From an incoming JSON document to what the store writes: the one place that decides what
//! `POST /verdicts`, `POST /event` and `POST /outcomes` store, shared by the HTTP handlers,
//! the benchmarks and the crash harness. Each takes the body's bytes and the receipt time.
//!
//! `verdict`, `event` and `outcome` return their own record type, so a caller that needs the
//! kind (a handler answering with the verdict's sig_hash) has it from the type; the
//! `*_record` forms return the store's `Record`, for callers mixing kinds.

use crate::model::outcome::SigHashRule;
use crate::model::{
    FieldError, ObservedEvent, OutcomeRow, Verdict, iso_timestamp, utf8, within_line_limit,
};
use crate::store::{NewEvent, NewOutcome, NewVerdict, Record};

/// The shape shared by the parsers: body bytes and receipt time in, one record out.
pub type Parse<R = Record> = fn(&[u8], u64) -> Result<R, FieldError>;

/// A verdict, the KB row `appendVerdictToKbOutcomes` would have appended, and the event that
/// `indexVerdictToObserver` and the observer would have produced, to be stored atomically.
pub fn verdict(body: &[u8], now_ms: u64) -> Result<NewVerdict, FieldError> {
    let verdict = Verdict::parse(utf8(body)?)?;
    let outcome_line = verdict.kb_outcome_line();
    within_line_limit("outcomes.jsonl", outcome_line.len())?;
    let observed = ObservedEvent::parse(&verdict.observer_body(), &iso_timestamp(now_ms))?;
    let event = event_from(observed, now_ms)?;
    Ok(NewVerdict::new(
        verdict,
        Some(outcome_line),
        Some(event),
        now_ms,
    ))
}

/// An observer event, with the observer's rules applied at receipt time `now_ms`.
pub fn event(body: &[u8], now_ms: u64) -> Result<NewEvent, FieldError> {
    let observed = ObservedEvent::parse(utf8(body)?, &iso_timestamp(now_ms))?;
    event_from(observed, now_ms)
}

/// A scenario runner's outcome row, kept byte for byte.
pub fn outcome(body: &[u8], now_ms: u64) -> Result<NewOutcome, FieldError> {
    let row = OutcomeRow::parse(body, SigHashRule::Required)?;
    within_line_limit("outcomes.jsonl", row.line.len())?;
    Ok(NewOutcome {
        row,
        received_at_ms: now_ms,
    })
}

/// [`verdict`] as a `Record`.
pub fn verdict_record(body: &[u8], now_ms: u64) -> Result<Record, FieldError> {
    verdict(body, now_ms).map(Record::Verdict)
}

/// [`event`] as a `Record`.
pub fn event_record(body: &[u8], now_ms: u64) -> Result<Record, FieldError> {
    event(body, now_ms).map(Record::Event)
}

/// [`outcome`] as a `Record`.
pub fn outcome_record(body: &[u8], now_ms: u64) -> Result<Record, FieldError> {
    outcome(body, now_ms).map(Record::Outcome)
}

fn event_from(observed: ObservedEvent, now_ms: u64) -> Result<NewEvent, FieldError> {
    let line = observed.op.to_line();
    within_line_limit("ops.jsonl", line.len())?;
    Ok(NewEvent::new(
        &observed.op,
        line,
        Some(observed.body),
        observed.source_original,
        now_ms,
    ))
}
