//! The structs stored as values (through the codec), and their conversions to and from the
//! domain. These are the on-disk format: their field order is the layout, so a change here is
//! a codec version and a migration, never an edit.

use serde::{Deserialize, Serialize};

use crate::model::{ObservedOp, Overall, Source, Verdict};

/// A verdict (codec version 1). Same layout as `frozen_verdict_v1::VerdictV1` in `migrations/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictValue {
    pub pr_number: u64,
    pub head_sha: String,
    pub audited_at: String,
    pub overall: String,
    pub one_liner: String,
    pub findings_block: u64,
    pub findings_warn: u64,
    pub findings_info: Option<u64>,
    pub audit_duration_ms: Option<f64>,
    pub received_at_ms: u64,
    pub raw_json: String,
}

impl VerdictValue {
    pub fn from_verdict(v: &Verdict, received_at_ms: u64) -> VerdictValue {
        VerdictValue {
            pr_number: v.pr_number,
            head_sha: v.head_sha.clone(),
            audited_at: v.audited_at.clone(),
            overall: v.overall.as_str().to_owned(),
            one_liner: v.one_liner.clone(),
            findings_block: v.findings_block,
            findings_warn: v.findings_warn,
            findings_info: v.findings_info.value().copied(),
            audit_duration_ms: v.audit_duration_ms.value().copied(),
            received_at_ms,
            raw_json: v.raw_json.clone(),
        }
    }

    pub fn overall(&self) -> Option<Overall> {
        Overall::parse(&self.overall)
    }
}

/// An observed event (codec version 1): the indexed fields typed, the exact `ops.jsonl` line,
/// and the request body when there was one (a line imported from a legacy file has none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventValue {
    pub received_at_ms: u64,
    pub source: String,
    pub success: bool,
    pub sig_hash: Option<String>,
    pub event_kind: Option<String>,
    pub source_original: Option<String>,
    pub body: Option<String>,
    pub line: String,
}

impl EventValue {
    pub fn new(
        op: &ObservedOp,
        line: String,
        body: Option<String>,
        source_original: Option<String>,
        received_at_ms: u64,
    ) -> EventValue {
        EventValue {
            received_at_ms,
            source: op.source.as_str().to_owned(),
            success: op.success,
            sig_hash: op.sig_hash.value().cloned(),
            event_kind: op.event_kind.value().cloned(),
            source_original,
            body,
            line,
        }
    }

    pub fn source(&self) -> Source {
        Source::parse(&self.source).unwrap_or(Source::Scenario)
    }
}

/// A KB outcome row (codec version 1): its exact line and what was read out of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeValue {
    pub received_at_ms: u64,
    pub sig_hash: String,
    pub kind: String,
    pub line: String,
}

/// An [`EventValue`] read in place: the same layout (a property test in `codec.rs` holds them
/// together), its strings borrowed from the stored bytes. The export reads every event for its
/// line alone and should not copy each body to get it.
#[derive(Debug, PartialEq, Deserialize)]
pub struct EventValueRef<'a> {
    pub received_at_ms: u64,
    pub source: &'a str,
    pub success: bool,
    pub sig_hash: Option<&'a str>,
    pub event_kind: Option<&'a str>,
    pub source_original: Option<&'a str>,
    pub body: Option<&'a str>,
    pub line: &'a str,
}

/// An [`OutcomeValue`] read in place, as [`EventValueRef`].
#[derive(Debug, PartialEq, Deserialize)]
pub struct OutcomeValueRef<'a> {
    pub received_at_ms: u64,
    pub sig_hash: &'a str,
    pub kind: &'a str,
    pub line: &'a str,
}
