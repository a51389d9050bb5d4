//! What a write is made of: the records (a verdict with the KB row and event it implies, an
//! event, an outcome row, a dismissal or its revocation), each as a [`Put`] with the
//! identities that make a repeat a duplicate, and what became of it ([`Written`]).

use crate::model::claims::Claim;
use crate::model::finding::Fingerprint;
use crate::model::text::TermCounts;
use crate::model::{ObservedOp, OutcomeRow, Repo, Verdict};

use super::values::EventValue;

/// A verdict with the records it implies. The outcome row and the event are stored only when
/// the verdict itself is new, so a repeated verdict adds nothing at all.
#[derive(Debug, Clone)]
pub struct NewVerdict {
    pub verdict: Verdict,
    /// The KB row (`kind:"audit"`) to store with it, if any.
    pub outcome_line: Option<String>,
    /// The observer event to store with it, if any.
    pub event: Option<NewEvent>,
    pub received_at_ms: u64,
    /// The analysed text of each claim that has text, by its index in `verdict.claims`:
    /// computed when the record is made, so that the writer thread only inserts.
    pub claim_terms: Vec<(u16, TermCounts)>,
}

impl NewVerdict {
    pub fn new(
        verdict: Verdict,
        outcome_line: Option<String>,
        event: Option<NewEvent>,
        received_at_ms: u64,
    ) -> NewVerdict {
        let claim_terms = claim_terms_of(&verdict.claims);
        NewVerdict {
            verdict,
            outcome_line,
            event,
            received_at_ms,
            claim_terms,
        }
    }
}

/// The analysed text of each of `claims` that has text and any terms, by claim index.
pub fn claim_terms_of(claims: &[Claim]) -> Vec<(u16, TermCounts)> {
    claims
        .iter()
        .enumerate()
        .filter_map(|(i, claim)| {
            let counts = TermCounts::of(claim.text.as_deref()?);
            (!counts.is_empty()).then(|| (u16::try_from(i).unwrap_or(u16::MAX), counts))
        })
        .collect()
}

/// An observer event as it is stored: its op's indexed fields, its exact `ops.jsonl` line, the
/// request body when there was one. Only what is stored, so that the journal can keep it
/// (`journaled.rs`) and apply it again after a crash exactly as it was applied first.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub value: EventValue,
}

impl NewEvent {
    /// `line` is `op`'s exact `ops.jsonl` line.
    pub fn new(
        op: &ObservedOp,
        line: String,
        body: Option<String>,
        source_original: Option<String>,
        received_at_ms: u64,
    ) -> NewEvent {
        NewEvent {
            value: EventValue::new(op, line, body, source_original, received_at_ms),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewOutcome {
    pub row: OutcomeRow,
    pub received_at_ms: u64,
}

/// A dismissal: the finding `fingerprint` does not apply, in PR `pr_number` of `repo` or, with
/// none, in every PR of it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDismissal {
    pub repo: Repo,
    pub pr_number: Option<u64>,
    pub fingerprint: Fingerprint,
    /// The finding's check, severity and wording when known (empty strings when not).
    pub check: String,
    pub severity: String,
    pub summary: String,
    pub reason: String,
    pub by: String,
    pub created_ms: u64,
}

/// A change to the dismissals.
#[derive(Debug, Clone, PartialEq)]
pub enum DismissalChange {
    /// Stored under a new seq, its id (`Written::Stored`); the same live dismissal (repository,
    /// scope, fingerprint) stored before is `Written::Duplicate` with its id; one more than its
    /// scope may hold is `Written::Refused`.
    New(NewDismissal),
    /// Revokes dismissal `id`: `Written::Stored { seq: id }` when revoked now (no new seq is
    /// given), `Written::Duplicate { seq: id }` when it was revoked before or does not exist
    /// (callers look it up first: dismissals are never deleted, so one seen stays).
    Revoke { id: u64, at_ms: u64 },
}

#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "records live briefly in one batch; boxing would add an allocation per verdict"
)]
pub enum Record {
    Verdict(NewVerdict),
    Event(NewEvent),
    Outcome(NewOutcome),
    Dismissal(DismissalChange),
}

/// An idempotency key a client gave with a write: a retry with the same key is answered with
/// what the first write stored instead of storing again.
///
/// A line of an NDJSON batch keyed by its request's header (`K`) is matched as a whole batch
/// (`batch_keys.rs`): by its position (`K#n`, its record's number) and by its content (what
/// the lines stored under `K` were), so that a retry with lines dropped, mended, added or
/// reordered stores none of them twice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientKey {
    /// The route's tag and the client's key, as stored. For a batch line keyed by its header,
    /// `K#n` followed by a NUL (never in a client's key) and the number of its request: see
    /// [`ClientKey::batch_line_key`]. The journal keeps this one field.
    pub key: Vec<u8>,
    /// A fingerprint of the request the key was given with: the same key with another request
    /// is refused rather than answered with the first request's result.
    pub fingerprint: u64,
    /// When the key was first seen (ms since the epoch); keys expire after a window.
    pub created_ms: u64,
}

/// A batch line's key, as [`ClientKey::batch_line_key`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLineKey<'a> {
    /// The route's tag and the request's header key: what every key of its lines begins with.
    pub header: &'a [u8],
    /// `header`, `#` and the line's record number: the key of its position.
    pub position_key: &'a [u8],
    /// The line's record number in its batch (from 1).
    pub position: u64,
    /// What tells its request from others under the same header written together.
    pub request: &'a [u8],
}

impl ClientKey {
    /// The key a client gave on a write route (`route` tells the routes apart: the same key on
    /// two routes is two keys), for the request whose bytes are `request`.
    pub fn new(route: u8, key: &str, request: &[u8], now_ms: u64) -> ClientKey {
        use sha2::{Digest, Sha256};
        let mut stored = Vec::with_capacity(1 + key.len());
        stored.push(route);
        stored.extend_from_slice(key.as_bytes());
        let digest = Sha256::digest(request);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        ClientKey {
            key: stored,
            fingerprint: u64::from_be_bytes(first),
            created_ms: now_ms,
        }
    }

    /// The key of the `record_no`th record of a batch whose request's header key is `header`,
    /// the line `line`; `request` tells the request from any other the writer may commit with
    /// it (the lines of one request are matched together).
    pub fn batch_line(
        route: u8,
        header: &str,
        record_no: usize,
        line: &[u8],
        request: u64,
        now_ms: u64,
    ) -> ClientKey {
        let mut key = ClientKey::new(route, &format!("{header}#{record_no}"), line, now_ms);
        key.key.push(BATCH_LINE_MARK);
        key.key.extend_from_slice(request.to_string().as_bytes());
        key
    }

    /// The parts of a batch line's key; `None` for any other key.
    pub fn batch_line_key(&self) -> Option<BatchLineKey<'_>> {
        let mark = self.key.iter().position(|&b| b == BATCH_LINE_MARK)?;
        let position_key = &self.key[..mark];
        let (header, position) = split_position(position_key)?;
        Some(BatchLineKey {
            header,
            position_key,
            position,
            request: &self.key[mark + 1..],
        })
    }

    /// The key a stored batch line is known by its content under: its header's, a NUL, its
    /// fingerprint in hex, `.` and the seq it was stored as.
    pub fn content_key(header: &[u8], fingerprint: u64, seq: u64) -> Vec<u8> {
        let mut key = ClientKey::content_prefix(header, fingerprint);
        key.extend_from_slice(seq.to_string().as_bytes());
        key
    }

    /// What the content keys of the lines stored under `header` with `fingerprint` begin with.
    pub fn content_prefix(header: &[u8], fingerprint: u64) -> Vec<u8> {
        // The header, the mark, 16 hex digits and '.', then room for a seq.
        let mut key = Vec::with_capacity(header.len() + 18 + 20);
        key.extend_from_slice(header);
        key.push(BATCH_LINE_MARK);
        key.extend_from_slice(format!("{fingerprint:016x}.").as_bytes());
        key
    }

    /// What this key says of its request when it was stored before, with the request
    /// fingerprinted `fingerprint` and answered with `seq`: the same request, or another.
    pub fn found(&self, seq: u64, fingerprint: u64) -> Written {
        if fingerprint == self.fingerprint {
            Written::Duplicate { seq }
        } else {
            Written::KeyReused { seq }
        }
    }

    /// The key of line 1 of a batch keyed as this single write is (`K#1` for `K`): a write
    /// sent once alone and once as a one-line batch under one key is one write.
    pub fn line_one_key(&self) -> Vec<u8> {
        let mut key = self.key.clone();
        key.extend_from_slice(b"#1");
        key
    }

    /// The header `K` of a key a client gave a single write, when it is named like a batch
    /// line's position (`K#n`): such a write counts as line `n` of a batch keyed `K`, and is
    /// known by its content under `K` as a batch line is.
    pub fn position_header(&self) -> Option<&[u8]> {
        if self.key.contains(&BATCH_LINE_MARK) {
            return None;
        }
        // Past the route's tag, a client key of at least one byte.
        let (header, _) = split_position(&self.key)?;
        (header.len() > 1).then_some(header)
    }
}

/// `K#n` as `K` and `n`: the text after the last `#` decimal digits only (no sign).
fn split_position(key: &[u8]) -> Option<(&[u8], u64)> {
    let hash = key.iter().rposition(|&b| b == b'#')?;
    let n = &key[hash + 1..];
    if n.is_empty() || !n.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let position = std::str::from_utf8(n).ok()?.parse().ok()?;
    Some((&key[..hash], position))
}

/// Ends the position key of a batch line keyed by its header, and begins what follows its
/// header in its content keys: a byte no client key holds (they are visible ASCII).
const BATCH_LINE_MARK: u8 = 0;

/// One record to write, with the identities that make a repeat of it a duplicate: the import
/// key of the legacy line it came from, or the idempotency key its client gave.
#[derive(Debug, Clone)]
pub struct Put {
    pub record: Record,
    pub import_key: Option<Vec<u8>>,
    pub client_key: Option<ClientKey>,
}

/// What a finding adds to a verdict's [`Put::work`]: the writer compares it with up to
/// [`MAX_SIMILAR_CANDIDATES`](super::MAX_SIMILAR_CANDIDATES) remembered findings and writes three
/// index rows for it, whatever its length; about what 256 bytes of events cost (1 MiB of 256-finding
/// verdicts took the writer 0.3 s of a release build, a 1 MiB batch of events 0.09 s).
const FINDING_WORK: usize = 256;

/// What each distinct term of a verdict's claims adds to its [`Put::work`]: a posting in the
/// claims index (a megabyte of verdicts of 1,000 claims took the writer 0.23 s, two and a half
/// times a megabyte of events; 16 bytes a term makes up the difference).
const CLAIM_TERM_WORK: usize = 16;

/// What a request's verdicts with findings add once for each PR they are of: when a finding
/// is new, the PR's remembered findings are read for a rewording (up to 256 values decoded;
/// once for the verdicts of one PR that follow each other in a transaction).
const FINDINGS_READ_WORK: usize = 8 * 1024;

/// What a dismissal or its revocation adds to its text in [`Put::work`]: its scope's live
/// dismissals are read (at most 1,000 keys).
const DISMISSAL_WORK: usize = 4 * 1024;

/// What every put adds to its [`Put::work`], whatever its size: its index rows and counters.
const PUT_WORK: usize = 256;

impl Put {
    /// About what applying this put costs the writer thread, in bytes of input: [`PUT_WORK`],
    /// the text it stores, its keys twice (looked up, then written), and for a verdict
    /// [`FINDING_WORK`] for each finding it brings to the findings memory and
    /// [`CLAIM_TERM_WORK`] for each term of its claims' postings. An estimate, not a bound;
    /// the writer schedules by [`work_of`] a request.
    pub fn work(&self) -> usize {
        let record = match &self.record {
            Record::Verdict(v) => {
                let terms: usize = v.claim_terms.iter().map(|(_, t)| t.terms.len()).sum();
                v.verdict.raw_json.len()
                    + v.verdict.findings.as_ref().map_or(0, Vec::len) * FINDING_WORK
                    + terms * CLAIM_TERM_WORK
            }
            Record::Event(e) => e.value.line.len() + e.value.body.as_ref().map_or(0, String::len),
            Record::Outcome(o) => o.row.line.len(),
            Record::Dismissal(DismissalChange::New(d)) => {
                DISMISSAL_WORK + d.summary.len() + d.reason.len()
            }
            Record::Dismissal(DismissalChange::Revoke { .. }) => DISMISSAL_WORK,
        };
        let keys = self.client_key.as_ref().map_or(0, |k| k.key.len())
            + self.import_key.as_ref().map_or(0, Vec::len);
        PUT_WORK + 2 * keys + record
    }
}

/// What a request of `puts` costs the writer, about: their [`Put::work`], and
/// [`FINDINGS_READ_WORK`] for each PR its verdicts with findings are of.
pub fn work_of(puts: &[Put]) -> usize {
    let mut prs = std::collections::BTreeSet::new();
    let mut work = 0;
    for put in puts {
        work += put.work();
        if let Record::Verdict(v) = &put.record
            && v.verdict.findings.as_ref().is_some_and(|f| !f.is_empty())
            && prs.insert((&v.verdict.repo, v.verdict.pr_number))
        {
            work += FINDINGS_READ_WORK;
        }
    }
    work
}

impl From<Record> for Put {
    fn from(record: Record) -> Put {
        Put {
            record,
            import_key: None,
            client_key: None,
        }
    }
}

/// What became of one [`Put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Stored under `seq`; a verdict's outcome row and event got the seqs that follow it.
    Stored {
        seq: u64,
        outcome_seq: Option<u64>,
        event_seq: Option<u64>,
    },
    /// Already stored (same verdict identity, import key or client key) under `seq`; nothing
    /// written.
    Duplicate { seq: u64 },
    /// The client key was first given with another request, which was answered with `seq`
    /// (stored then, or found stored by its identity); nothing written.
    KeyReused { seq: u64 },
    /// Refused by a bound on what is stored (a scope's live dismissals); nothing written.
    Refused,
}

impl Written {
    /// The seq stored (or stored before); 0 for a refused put, which has none.
    pub fn seq(&self) -> u64 {
        match *self {
            Written::Stored { seq, .. }
            | Written::Duplicate { seq }
            | Written::KeyReused { seq } => seq,
            Written::Refused => 0,
        }
    }

    /// The highest seq this put was given, when it stored anything.
    pub fn last_stored_seq(&self) -> Option<u64> {
        match *self {
            Written::Stored {
                seq,
                outcome_seq,
                event_seq,
            } => Some(
                seq.max(outcome_seq.unwrap_or(0))
                    .max(event_seq.unwrap_or(0)),
            ),
            Written::Duplicate { .. } | Written::KeyReused { .. } | Written::Refused => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake;

    fn verdict(extra: &str) -> String {
        format!(
            r#"{{"pr_number":1,"head_sha":"abcdef12","overall":"approve","one_liner":"x","metrics":{{"findings_block":0,"findings_warn":0}},"audited_at":"t"{extra}}}"#
        )
    }

    #[test]
    fn work_counts_bytes_stored_findings_and_claim_terms() {
        let plain = verdict("");
        let findings = verdict(
            r#","findings":[{"check":"a","summary":"one"},{"check":"a","summary":"two"},{"check":"a","summary":"one"}]"#,
        );
        let claims = verdict(r#","claims":["observer counts events","observer counts"]"#);
        let event = r#"{"source":"bot","event_kind":"cycle"}"#;
        let work = |record: Record| Put::from(record).work();
        let verdict_work = |body: &str| work(intake::verdict_record(body.as_bytes(), 0).unwrap());
        let keyed = |body: &str| {
            let mut put = Put::from(intake::verdict_record(body.as_bytes(), 0).unwrap());
            put.client_key = Some(ClientKey {
                key: b"verdicts:k-1".to_vec(),
                fingerprint: 0,
                created_ms: 0,
            });
            put.work()
        };
        #[rustfmt::skip]
        let cases: &[(&str, usize, usize)] = &[
            ("a verdict: its JSON", verdict_work(&plain), PUT_WORK + plain.len()),
            // Two distinct findings (the third repeats the first), and the memory read once.
            ("findings", verdict_work(&findings), PUT_WORK + findings.len() + 2 * FINDING_WORK),
            // Terms of each claim: observer, count, event; observer, count.
            ("claims: 16 bytes a term", verdict_work(&claims), PUT_WORK + claims.len() + 5 * CLAIM_TERM_WORK),
            ("a client key, looked up and written", keyed(&plain), PUT_WORK + plain.len() + 2 * 12),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
        let put = |body: &str| Put::from(intake::verdict_record(body.as_bytes(), 0).unwrap());
        let other_pr = findings.replace(r#""pr_number":1"#, r#""pr_number":2"#);
        let request = [put(&findings), put(&plain), put(&findings), put(&other_pr)];
        let each: usize = request.iter().map(Put::work).sum();
        assert_eq!(
            work_of(&request),
            each + 2 * FINDINGS_READ_WORK,
            "a request: the memory read once for each PR its verdicts with findings are of"
        );
        let NewEvent { value } = intake::event(event.as_bytes(), 0).unwrap();
        let expected = PUT_WORK + value.line.len() + event.len();
        assert_eq!(
            work(Record::Event(NewEvent { value })),
            expected,
            "an event: line and body"
        );
    }

    #[test]
    fn a_batch_line_key_names_its_header_and_position() {
        type Parts = (&'static [u8], &'static [u8], u64, &'static [u8]);
        let line = br#"{"source":"bot"}"#;
        #[rustfmt::skip]
        let cases: &[(&str, ClientKey, Option<Parts>)] = &[
            ("a request's key", ClientKey::new(b'e', "k-1", line, 0), None),
            ("a line's own key", ClientKey::new(b'e', "k#2", line, 0), None),
            ("a batch line", ClientKey::batch_line(b'e', "k", 3, line, 5, 0), Some((b"ek", b"ek#3", 3, b"5"))),
            ("a header with a #", ClientKey::batch_line(b'e', "a#b", 12, line, 0, 0), Some((b"ea#b", b"ea#b#12", 12, b"0"))),
        ];
        for (name, key, want) in cases {
            let got = key
                .batch_line_key()
                .map(|k| (k.header, k.position_key, k.position, k.request));
            assert_eq!(got, *want, "{name}");
        }
        let fp = ClientKey::batch_line(b'e', "k", 1, line, 0, 0).fingerprint;
        assert_eq!(
            fp,
            ClientKey::new(b'e', "x", line, 0).fingerprint,
            "the line's"
        );
        assert_eq!(
            ClientKey::content_key(b"ek", 0xab, 42),
            b"ek\x0000000000000000ab.42".to_vec()
        );
    }
}
