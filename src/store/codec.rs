//! The value codec: a leading format-version byte, then bincode 2 (standard configuration:
//! little-endian varints). Decoding never panics: an unknown version, a truncated or corrupt value,
//! or trailing bytes are each a typed error.
//!
//! Each value names its own version, so a file holds values of several versions side by side:
//! this binary writes [`CODEC_VERSION`] and reads every version back to
//! [`OLDEST_CODEC_VERSION`], each value type saying how its older layouts map to today's
//! ([`Layout`]).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The version this binary writes.
///
/// - Version 1: bincode 2.0.1, `config::standard()`, serde encoding of the structs in
///   `store/values.rs` (field order is the format). Frozen copy of the verdict layout:
///   `migrations/src/v0002_claims.rs`.
/// - Version 2 (schema version 5): every value gains a last field, `repo`, its repository
///   (empty for the default namespace). Version-1 values read as the default namespace.
pub const CODEC_VERSION: u8 = 2;

/// The oldest version this binary reads.
pub const OLDEST_CODEC_VERSION: u8 = 1;

/// A value larger than this is corrupt: no request body comes near it.
const MAX_VALUE_BYTES: usize = 256 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    #[error(
        "unknown codec version {found} (this binary reads versions {OLDEST_CODEC_VERSION} to \
         {CODEC_VERSION})"
    )]
    UnknownVersion { found: u8 },
    #[error("corrupt value: {0}")]
    Corrupt(String),
    #[error("corrupt value: {0} trailing bytes")]
    TrailingBytes(usize),
}

/// A stored value type and its older layouts.
pub trait Layout<'a>: Deserialize<'a> {
    /// The same value as codec version 1 stored it.
    type V1: Deserialize<'a>;
    /// Today's value from a version-1 one.
    fn from_v1(old: Self::V1) -> Self;
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(CODEC_VERSION);
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .expect("the value structs always encode and writing to a Vec cannot fail");
    out
}

pub fn decode<T: DeserializeOwned + for<'a> Layout<'a>>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_borrowed(bytes)
}

/// Like [`decode`], for a value that borrows its strings from `bytes` instead of copying them
/// (the `…Ref` views in `store/values.rs`), with the same checks.
pub fn decode_borrowed<'a, T: Layout<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    match version {
        CODEC_VERSION => decode_body(body),
        1 => decode_body::<T::V1>(body).map(T::from_v1),
        found => Err(CodecError::UnknownVersion { found }),
    }
}

fn decode_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, CodecError> {
    let config = bincode::config::standard().with_limit::<MAX_VALUE_BYTES>();
    let (value, used) = bincode::serde::borrow_decode_from_slice(body, config)
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::TrailingBytes(body.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::values::{
        EventValue, EventValueRef, OutcomeValue, OutcomeValueRef, VerdictValue, VerdictValueRef,
    };

    /// A value as a version-1 writer encoded it: the version byte, then bincode of `fields`
    /// (a tuple in the struct's field order encodes as the struct did).
    fn v1_bytes<T: Serialize>(fields: &T) -> Vec<u8> {
        let mut out = vec![1];
        bincode::serde::encode_into_std_write(fields, &mut out, bincode::config::standard())
            .unwrap();
        out
    }
    use lakehouse_kb_migrations::frozen_verdict_v1::{self, VerdictV1};
    use proptest::prelude::*;

    fn verdict() -> impl Strategy<Value = VerdictValue> {
        (
            (any::<u64>(), ".*", ".*", ".*", ".*"),
            (
                any::<u64>(),
                any::<u64>(),
                any::<Option<u64>>(),
                any::<Option<f64>>(),
            ),
            (any::<u64>(), ".*", ".*"),
        )
            .prop_map(
                |((pr, head, at, overall, one), (b, w, i, ms), (recv, raw, repo))| VerdictValue {
                    pr_number: pr,
                    head_sha: head,
                    audited_at: at,
                    overall,
                    one_liner: one,
                    findings_block: b,
                    findings_warn: w,
                    findings_info: i,
                    audit_duration_ms: ms,
                    received_at_ms: recv,
                    raw_json: raw,
                    repo,
                },
            )
    }

    fn event() -> impl Strategy<Value = EventValue> {
        (
            (any::<u64>(), ".*", any::<bool>()),
            (
                any::<Option<String>>(),
                any::<Option<String>>(),
                any::<Option<String>>(),
            ),
            (any::<Option<String>>(), ".*", ".*"),
        )
            .prop_map(
                |((recv, source, success), (sig, kind, orig), (body, line, repo))| EventValue {
                    received_at_ms: recv,
                    source,
                    success,
                    sig_hash: sig,
                    event_kind: kind,
                    source_original: orig,
                    body,
                    line,
                    repo,
                },
            )
    }

    fn outcome() -> impl Strategy<Value = OutcomeValue> {
        (any::<u64>(), ".*", ".*", ".*", ".*").prop_map(|(recv, sig, kind, line, repo)| {
            OutcomeValue {
                received_at_ms: recv,
                sig_hash: sig,
                kind,
                line,
                repo,
            }
        })
    }

    /// Equality that treats NaN as equal to itself (bit patterns), for f64 fields.
    fn same_verdict(a: &VerdictValue, b: &VerdictValue) -> bool {
        let bits = |v: &VerdictValue| v.audit_duration_ms.map(f64::to_bits);
        let strip = |v: &VerdictValue| VerdictValue {
            audit_duration_ms: None,
            ..v.clone()
        };
        bits(a) == bits(b) && strip(a) == strip(b)
    }

    proptest! {
        #[test]
        fn verdict_round_trips(v in verdict()) {
            let back: VerdictValue = decode(&encode(&v)).unwrap();
            prop_assert!(same_verdict(&back, &v));
        }

        #[test]
        fn event_round_trips(e in event()) {
            prop_assert_eq!(decode::<EventValue>(&encode(&e)).unwrap(), e);
        }

        #[test]
        fn outcome_round_trips(o in outcome()) {
            prop_assert_eq!(decode::<OutcomeValue>(&encode(&o)).unwrap(), o);
        }

        /// The borrowing views read exactly the owned values' layout.
        #[test]
        fn event_ref_reads_the_event_layout(e in event()) {
            let bytes = encode(&e);
            let r: EventValueRef = decode_borrowed(&bytes).unwrap();
            prop_assert_eq!(r.received_at_ms, e.received_at_ms);
            prop_assert_eq!(r.source, e.source.as_str());
            prop_assert_eq!(r.success, e.success);
            prop_assert_eq!(r.sig_hash, e.sig_hash.as_deref());
            prop_assert_eq!(r.event_kind, e.event_kind.as_deref());
            prop_assert_eq!(r.source_original, e.source_original.as_deref());
            prop_assert_eq!(r.body, e.body.as_deref());
            prop_assert_eq!(r.line, e.line.as_str());
            prop_assert_eq!(r.repo, e.repo.as_str());
        }

        #[test]
        fn verdict_ref_reads_the_verdict_layout(v in verdict()) {
            let bytes = encode(&v);
            let r: VerdictValueRef = decode_borrowed(&bytes).unwrap();
            prop_assert_eq!(r.pr_number, v.pr_number);
            prop_assert_eq!(r.head_sha, v.head_sha.as_str());
            prop_assert_eq!(r.overall, v.overall.as_str());
            prop_assert_eq!(r.one_liner, v.one_liner.as_str());
            prop_assert_eq!(r.raw_json, v.raw_json.as_str());
            prop_assert_eq!(r.repo, v.repo.as_str());
        }

        /// Version-1 values (every value a schema-4 file holds) read as the default namespace,
        /// through the owned and the borrowed views alike.
        #[test]
        fn version_1_values_read_as_the_default_namespace(e in event(), o in outcome()) {
            let v1_event = v1_bytes(&(
                e.received_at_ms, &e.source, e.success, &e.sig_hash, &e.event_kind,
                &e.source_original, &e.body, &e.line,
            ));
            let back: EventValue = decode(&v1_event).unwrap();
            prop_assert_eq!(back, EventValue { repo: String::new(), ..e.clone() });
            let r: EventValueRef = decode_borrowed(&v1_event).unwrap();
            prop_assert_eq!((r.line, r.repo), (e.line.as_str(), ""));
            let v1_outcome = v1_bytes(&(o.received_at_ms, &o.sig_hash, &o.kind, &o.line));
            let back: OutcomeValue = decode(&v1_outcome).unwrap();
            prop_assert_eq!(back, OutcomeValue { repo: String::new(), ..o.clone() });
            let r: OutcomeValueRef = decode_borrowed(&v1_outcome).unwrap();
            prop_assert_eq!((r.line, r.repo), (o.line.as_str(), ""));
        }

        #[test]
        fn outcome_ref_reads_the_outcome_layout(o in outcome()) {
            let bytes = encode(&o);
            let r: OutcomeValueRef = decode_borrowed(&bytes).unwrap();
            prop_assert_eq!(r.received_at_ms, o.received_at_ms);
            prop_assert_eq!(r.sig_hash, o.sig_hash.as_str());
            prop_assert_eq!(r.kind, o.kind.as_str());
            prop_assert_eq!(r.line, o.line.as_str());
            prop_assert_eq!(r.repo, o.repo.as_str());
        }

        /// What a version-1 writer stored (the layout migrations/ froze) reads back as the
        /// same verdict in the default namespace.
        #[test]
        fn verdict_v1_values_read_back(v in verdict()) {
            let as_frozen = VerdictV1 {
                pr_number: v.pr_number,
                head_sha: v.head_sha.clone(),
                audited_at: v.audited_at.clone(),
                overall: v.overall.clone(),
                one_liner: v.one_liner.clone(),
                findings_block: v.findings_block,
                findings_warn: v.findings_warn,
                findings_info: v.findings_info,
                audit_duration_ms: v.audit_duration_ms,
                received_at_ms: v.received_at_ms,
                raw_json: v.raw_json.clone(),
            };
            let v1 = frozen_verdict_v1::encode(&as_frozen);
            let back: VerdictValue = decode(&v1).unwrap();
            let default_namespace = VerdictValue { repo: String::new(), ..v.clone() };
            prop_assert!(same_verdict(&back, &default_namespace));
            let r: VerdictValueRef = decode_borrowed(&v1).unwrap();
            prop_assert_eq!((r.raw_json, r.repo), (v.raw_json.as_str(), ""));
        }

        /// Arbitrary bytes never panic the decoder: each is a value or a typed error.
        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<VerdictValue>(&bytes);
            let _ = decode::<EventValue>(&bytes);
            let _ = decode::<OutcomeValue>(&bytes);
            let _ = decode_borrowed::<EventValueRef>(&bytes);
            let _ = decode_borrowed::<OutcomeValueRef>(&bytes);
            let _ = decode_borrowed::<VerdictValueRef>(&bytes);
        }

        /// Every truncation of a valid value is an error, never a different value.
        #[test]
        fn truncated_values_are_errors(e in event()) {
            let bytes = encode(&e);
            for cut in 0..bytes.len() {
                prop_assert!(decode::<EventValue>(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn version_and_trailing_bytes_are_typed_errors() {
        let o = OutcomeValue {
            received_at_ms: 1,
            sig_hash: "s".into(),
            kind: String::new(),
            line: "{}".into(),
            repo: String::new(),
        };
        let mut bytes = encode(&o);
        assert_eq!(decode::<OutcomeValue>(&[]), Err(CodecError::Empty));
        bytes[0] = CODEC_VERSION + 1;
        assert_eq!(
            decode::<OutcomeValue>(&bytes),
            Err(CodecError::UnknownVersion {
                found: CODEC_VERSION + 1
            })
        );
        bytes[0] = CODEC_VERSION;
        bytes.push(0);
        assert_eq!(
            decode::<OutcomeValue>(&bytes),
            Err(CodecError::TrailingBytes(1))
        );
        // received_at_ms = 1, then a sig_hash length of ~2^63 (varint marker 0xfd + u64):
        // refused by the limit without allocating it.
        let huge = [
            CODEC_VERSION,
            1,
            0xfd,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x7f,
        ];
        let err = decode::<OutcomeValue>(&huge).unwrap_err();
        assert!(
            matches!(err, CodecError::Corrupt(ref m) if m.contains("imit")),
            "{err:?}"
        );
    }
}
