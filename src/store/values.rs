//! The structs stored as values (through the codec), and their conversions to and from the
//! domain. These are the on-disk format: their field order is the layout, so a change here is
//! a codec version (with the older layout kept for reading, see [`Layout`]), never an edit.

use lakehouse_kb_migrations::frozen_verdict_v1::VerdictV1;
use serde::{Deserialize, Serialize};

use super::codec::{self, CodecError, Dictionary, Layout};
use crate::model::finding::FindingTerms;
use crate::model::verdict::AuditFields;
use crate::model::{JsField, ObservedOp, Overall, Repo, Source, Verdict};

/// A verdict (codec version 2: version 1 plus `repo`).
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
    /// The repository; empty for the default namespace.
    pub repo: String,
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
            repo: v.repo.as_str().to_owned(),
        }
    }

    pub fn overall(&self) -> Option<Overall> {
        Overall::parse(&self.overall)
    }

    /// The value stored for it: with a dictionary, codec version 5, its repository as the lead
    /// and its first block ending where its JSON begins (so that its other fields read without
    /// the JSON, [`VerdictHead::read`]), when that is smaller than plain and its first block
    /// reads back; else version 3 when that is smaller; else plain.
    pub fn encode(&self, dictionary: Option<&Dictionary>) -> Vec<u8> {
        let plain = codec::encode(self);
        let Some(dictionary) = dictionary else {
            return plain;
        };
        // The body ends with the JSON then the repository (field order).
        let tail = self.raw_json.len() + codec::encode(&self.repo).len() - 1;
        let first = plain.len() - 1 - tail;
        // Version 5 only when its first block gives back this verdict's head: by construction,
        // whatever blocks zstd made.
        codec::compress_split(&plain, &self.repo, first, dictionary)
            .filter(|split| {
                VerdictHead::read(split, &mut Vec::new()).ok() == Some(self.as_view().head())
            })
            .or_else(|| codec::compress(&plain, dictionary))
            .unwrap_or(plain)
    }

    /// The same value as a borrowing view.
    pub fn as_view(&self) -> VerdictValueRef<'_> {
        VerdictValueRef {
            pr_number: self.pr_number,
            head_sha: &self.head_sha,
            audited_at: &self.audited_at,
            overall: &self.overall,
            one_liner: &self.one_liner,
            findings_block: self.findings_block,
            findings_warn: self.findings_warn,
            findings_info: self.findings_info,
            audit_duration_ms: self.audit_duration_ms,
            received_at_ms: self.received_at_ms,
            raw_json: &self.raw_json,
            repo: &self.repo,
        }
    }
}

/// The version-1 verdict layout is the one `migrations/` froze.
impl Layout<'_> for VerdictValue {
    type V1 = VerdictV1;
    fn from_v1(v: VerdictV1) -> VerdictValue {
        VerdictValue {
            pr_number: v.pr_number,
            head_sha: v.head_sha,
            audited_at: v.audited_at,
            overall: v.overall,
            one_liner: v.one_liner,
            findings_block: v.findings_block,
            findings_warn: v.findings_warn,
            findings_info: v.findings_info,
            audit_duration_ms: v.audit_duration_ms,
            received_at_ms: v.received_at_ms,
            raw_json: v.raw_json,
            repo: String::new(),
        }
    }
}

/// A [`VerdictValue`] read in place: PR history and neighbour answers read a few fields of
/// many verdicts and should not copy each one's whole JSON to get them.
#[derive(Debug, PartialEq, Deserialize)]
pub struct VerdictValueRef<'a> {
    pub pr_number: u64,
    pub head_sha: &'a str,
    pub audited_at: &'a str,
    pub overall: &'a str,
    pub one_liner: &'a str,
    pub findings_block: u64,
    pub findings_warn: u64,
    pub findings_info: Option<u64>,
    pub audit_duration_ms: Option<f64>,
    pub received_at_ms: u64,
    pub raw_json: &'a str,
    pub repo: &'a str,
}

impl<'a> VerdictValueRef<'a> {
    /// Its fields but the JSON.
    pub fn head(&self) -> VerdictHead<'a> {
        VerdictHead {
            pr_number: self.pr_number,
            head_sha: self.head_sha,
            audited_at: self.audited_at,
            overall: self.overall,
            one_liner: self.one_liner,
            findings_block: self.findings_block,
            findings_warn: self.findings_warn,
            findings_info: self.findings_info,
            audit_duration_ms: self.audit_duration_ms,
            received_at_ms: self.received_at_ms,
            repo: self.repo,
        }
    }
}

/// A verdict's fields but its JSON: what its KB row and observer event are recomputed from. A
/// verdict stored by codec version 5 gives them without decompressing its JSON
/// ([`VerdictHead::read`]). Deserialized, it is the start of a version-2 verdict body, whose
/// fields come in this order up to the JSON; the repository, after the JSON there, is not read.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct VerdictHead<'a> {
    pub pr_number: u64,
    pub head_sha: &'a str,
    pub audited_at: &'a str,
    pub overall: &'a str,
    pub one_liner: &'a str,
    pub findings_block: u64,
    pub findings_warn: u64,
    pub findings_info: Option<u64>,
    pub audit_duration_ms: Option<f64>,
    pub received_at_ms: u64,
    #[serde(skip_deserializing)]
    pub repo: &'a str,
}

impl<'a> VerdictHead<'a> {
    /// The head of the stored verdict `bytes`: from the first block of a version-5 value (its
    /// repository is the lead), else from the whole value, decompressed into `scratch`.
    pub fn read(bytes: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<VerdictHead<'a>, CodecError> {
        if !codec::is_split(bytes) {
            let plain = codec::open_in(bytes, scratch)?;
            return Ok(codec::decode_borrowed::<VerdictValueRef>(plain)?.head());
        }
        let (repo, body) = codec::open_first_block(bytes, scratch)?;
        Ok(VerdictHead {
            repo,
            ..codec::decode_prefix(body)?
        })
    }

    /// The fields its KB row and observer event are written from: `None` when a field could
    /// not have come from a valid verdict. An absent and a null optional metric are both stored
    /// as `None` and come back absent, so a record made from a null one does not recompute (and
    /// is stored whole, see `verdict_lines.rs`).
    pub fn audit_fields(&self) -> Option<AuditFields<'a>> {
        fn absent_if_none<T>(v: Option<T>) -> JsField<T> {
            v.map_or(JsField::Absent, JsField::Value)
        }
        let repo = Repo::parse("repo", self.repo).ok()?;
        Some(AuditFields {
            pr_number: self.pr_number,
            head_sha: self.head_sha,
            audited_at: self.audited_at,
            overall: Overall::parse(self.overall)?,
            one_liner: self.one_liner,
            findings_block: self.findings_block,
            findings_warn: self.findings_warn,
            findings_info: absent_if_none(self.findings_info),
            audit_duration_ms: absent_if_none(self.audit_duration_ms),
            repo: repo.name().map(|_| self.repo),
        })
    }

    /// The verdict as far as its KB row and observer event need it (no claims or findings, no
    /// JSON): [`VerdictHead::audit_fields`] owned.
    pub fn to_verdict(&self) -> Option<Verdict> {
        let fields = self.audit_fields()?;
        Some(Verdict {
            pr_number: fields.pr_number,
            head_sha: fields.head_sha.to_owned(),
            audited_at: fields.audited_at.to_owned(),
            overall: fields.overall,
            one_liner: fields.one_liner.to_owned(),
            findings_block: fields.findings_block,
            findings_warn: fields.findings_warn,
            findings_info: fields.findings_info,
            audit_duration_ms: fields.audit_duration_ms,
            claims: Vec::new(),
            findings: None,
            repo: Repo::parse("repo", self.repo).ok()?,
            raw_json: String::new(),
        })
    }
}

/// [`VerdictValueRef`]'s version-1 layout.
#[derive(Deserialize)]
pub struct VerdictValueRefV1<'a> {
    pr_number: u64,
    head_sha: &'a str,
    audited_at: &'a str,
    overall: &'a str,
    one_liner: &'a str,
    findings_block: u64,
    findings_warn: u64,
    findings_info: Option<u64>,
    audit_duration_ms: Option<f64>,
    received_at_ms: u64,
    raw_json: &'a str,
}

impl<'a> Layout<'a> for VerdictValueRef<'a> {
    type V1 = VerdictValueRefV1<'a>;
    fn from_v1(v: VerdictValueRefV1<'a>) -> VerdictValueRef<'a> {
        VerdictValueRef {
            pr_number: v.pr_number,
            head_sha: v.head_sha,
            audited_at: v.audited_at,
            overall: v.overall,
            one_liner: v.one_liner,
            findings_block: v.findings_block,
            findings_warn: v.findings_warn,
            findings_info: v.findings_info,
            audit_duration_ms: v.audit_duration_ms,
            received_at_ms: v.received_at_ms,
            raw_json: v.raw_json,
            repo: "",
        }
    }
}

/// An observed event (codec version 2: version 1 plus `repo`): the indexed fields typed, the
/// exact `ops.jsonl` line, and the request body when there was one (a line imported from a
/// legacy file has none).
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
    /// The repository; empty for the default namespace.
    pub repo: String,
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
            // Only a string is an index key: another value is in the line alone.
            sig_hash: op
                .sig_hash
                .value()
                .and_then(|t| t.as_str())
                .map(str::to_owned),
            event_kind: op
                .event_kind
                .value()
                .and_then(|t| t.as_str())
                .map(str::to_owned),
            source_original,
            body,
            line,
            repo: op.repo.as_str().to_owned(),
        }
    }

    pub fn source(&self) -> Source {
        Source::parse(&self.source).unwrap_or(Source::Scenario)
    }
}

/// [`EventValue`]'s version-1 layout.
#[derive(Deserialize)]
pub struct EventValueV1 {
    received_at_ms: u64,
    source: String,
    success: bool,
    sig_hash: Option<String>,
    event_kind: Option<String>,
    source_original: Option<String>,
    body: Option<String>,
    line: String,
}

impl Layout<'_> for EventValue {
    type V1 = EventValueV1;
    fn from_v1(v: EventValueV1) -> EventValue {
        EventValue {
            received_at_ms: v.received_at_ms,
            source: v.source,
            success: v.success,
            sig_hash: v.sig_hash,
            event_kind: v.event_kind,
            source_original: v.source_original,
            body: v.body,
            line: v.line,
            repo: String::new(),
        }
    }
}

/// A KB outcome row (codec version 2: version 1 plus `repo`): its exact line and what was
/// read out of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeValue {
    pub received_at_ms: u64,
    pub sig_hash: String,
    pub kind: String,
    pub line: String,
    /// The repository; empty for the default namespace.
    pub repo: String,
}

/// [`OutcomeValue`]'s version-1 layout.
#[derive(Deserialize)]
pub struct OutcomeValueV1 {
    received_at_ms: u64,
    sig_hash: String,
    kind: String,
    line: String,
}

impl Layout<'_> for OutcomeValue {
    type V1 = OutcomeValueV1;
    fn from_v1(v: OutcomeValueV1) -> OutcomeValue {
        OutcomeValue {
            received_at_ms: v.received_at_ms,
            sig_hash: v.sig_hash,
            kind: v.kind,
            line: v.line,
            repo: String::new(),
        }
    }
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
    pub repo: &'a str,
}

/// [`EventValueRef`]'s version-1 layout.
#[derive(Deserialize)]
pub struct EventValueRefV1<'a> {
    received_at_ms: u64,
    source: &'a str,
    success: bool,
    sig_hash: Option<&'a str>,
    event_kind: Option<&'a str>,
    source_original: Option<&'a str>,
    body: Option<&'a str>,
    line: &'a str,
}

impl<'a> Layout<'a> for EventValueRef<'a> {
    type V1 = EventValueRefV1<'a>;
    fn from_v1(v: EventValueRefV1<'a>) -> EventValueRef<'a> {
        EventValueRef {
            received_at_ms: v.received_at_ms,
            source: v.source,
            success: v.success,
            sig_hash: v.sig_hash,
            event_kind: v.event_kind,
            source_original: v.source_original,
            body: v.body,
            line: v.line,
            repo: "",
        }
    }
}

/// An [`OutcomeValue`] read in place, as [`EventValueRef`].
#[derive(Debug, PartialEq, Deserialize)]
pub struct OutcomeValueRef<'a> {
    pub received_at_ms: u64,
    pub sig_hash: &'a str,
    pub kind: &'a str,
    pub line: &'a str,
    pub repo: &'a str,
}

/// [`OutcomeValueRef`]'s version-1 layout.
#[derive(Deserialize)]
pub struct OutcomeValueRefV1<'a> {
    received_at_ms: u64,
    sig_hash: &'a str,
    kind: &'a str,
    line: &'a str,
}

impl<'a> Layout<'a> for OutcomeValueRef<'a> {
    type V1 = OutcomeValueRefV1<'a>;
    fn from_v1(v: OutcomeValueRefV1<'a>) -> OutcomeValueRef<'a> {
        OutcomeValueRef {
            received_at_ms: v.received_at_ms,
            sig_hash: v.sig_hash,
            kind: v.kind,
            line: v.line,
            repo: "",
        }
    }
}

/// The layout a value type first stored in codec version 2 has in version 1: none. Decoding a
/// version-1 value of such a type fails, as a corrupt value should.
#[derive(Debug, Deserialize)]
pub enum NoV1 {}

/// Where an audit raised a finding: the verdict's seq, head and audit time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    pub seq: u64,
    pub head_sha: String,
    pub audited_at: String,
}

/// A head that raised a finding, and the seq of the first audit of it that did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadSeen {
    pub head_sha: String,
    pub seq: u64,
}

/// The terms of a finding's wording, as the similar tier compares them (the on-disk form of
/// [`FindingTerms`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsValue {
    pub words: Vec<String>,
    pub ids: Vec<String>,
}

impl From<&FindingTerms> for TermsValue {
    fn from(t: &FindingTerms) -> TermsValue {
        TermsValue {
            words: t.words.clone(),
            ids: t.ids.clone(),
        }
    }
}

impl From<&TermsValue> for FindingTerms {
    fn from(t: &TermsValue) -> FindingTerms {
        FindingTerms {
            words: t.words.clone(),
            ids: t.ids.clone(),
        }
    }
}

/// How the latest audit that raised a finding matched it (`FindingValue::last_tier`).
pub const TIER_NEW: u8 = 0;
pub const TIER_EXACT: u8 = 1;
pub const TIER_SIMILAR: u8 = 2;

/// One remembered finding of a PR (table `findings`, codec version 2), under the fingerprint
/// of its first wording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingValue {
    pub check: String,
    /// The latest audit's severity and wording, and the terms of that wording.
    pub severity: String,
    pub summary: String,
    pub terms: TermsValue,
    /// The terms of the first wording: a rewording is matched against both.
    pub first_terms: TermsValue,
    pub first_seen: Sighting,
    pub last_seen: Sighting,
    /// Audits that raised it.
    pub times_raised: u64,
    /// Distinct heads (by lowercase sha) that raised it, oldest first; at most
    /// `findings::MAX_HEADS` are kept.
    pub heads: Vec<HeadSeen>,
    /// How the latest audit that raised it matched it: [`TIER_NEW`] (it was the first),
    /// [`TIER_EXACT`] or [`TIER_SIMILAR`].
    pub last_tier: u8,
    /// The wordings it was raised as between its first and its latest, oldest first, each
    /// once; at most `findings::MAX_WORDINGS_BETWEEN` (the most recent). A dismissal of one
    /// wording reaches its close rewordings through them (`dismissals::which_applies`).
    pub between: Vec<WordingValue>,
    /// The seq of the audit that first raised its latest wording.
    pub latest_since: u64,
    // (`between` and `latest_since` from findings rules 6 and 8: a memory built under older
    // rules is rebuilt, never read.)
}

/// A wording a finding was raised as: its fingerprint, its terms, and whether it has a
/// negation ([`is_negated`](crate::model::polarity::is_negated)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordingValue {
    pub fingerprint: u64,
    pub terms: TermsValue,
    pub negated: bool,
    /// The seq of the audit that first raised it.
    pub since: u64,
}

impl Layout<'_> for FindingValue {
    type V1 = NoV1;
    fn from_v1(never: NoV1) -> FindingValue {
        match never {}
    }
}

/// A dismissal (table `dismissals`, codec version 2): a finding that does not apply, in one PR
/// or a whole repository. Revoked ones are kept, with when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DismissalValue {
    /// The repository; empty for the default namespace.
    pub repo: String,
    /// The PR it applies to; `None`: every PR of the repository.
    pub pr_number: Option<u64>,
    pub fingerprint: u64,
    /// The finding's check, severity and wording when known (given, or found in the memory);
    /// empty when the dismissal named a fingerprint the memory did not know. Its terms are
    /// made when it is matched, under the rules of the day.
    pub check: String,
    pub severity: String,
    pub summary: String,
    pub reason: String,
    pub by: String,
    pub created_ms: u64,
    pub revoked_ms: Option<u64>,
}

impl Layout<'_> for DismissalValue {
    type V1 = NoV1;
    fn from_v1(never: NoV1) -> DismissalValue {
        match never {}
    }
}
