//! The value codec: a leading format-version byte, then bincode 2 (standard configuration:
//! little-endian varints). Decoding never panics: an unknown version, a truncated or corrupt value,
//! or trailing bytes are each a typed error.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Version 1: bincode 2.0.1, `config::standard()`, serde encoding of the structs in
/// `store/values.rs` (field order is the format). Frozen copy: `migrations/src/v0002_claims.rs`.
pub const CODEC_VERSION: u8 = 1;

/// A value larger than this is corrupt: no request body comes near it.
const MAX_VALUE_BYTES: usize = 256 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    #[error("unknown codec version {found} (this binary reads version {CODEC_VERSION})")]
    UnknownVersion { found: u8 },
    #[error("corrupt value: {0}")]
    Corrupt(String),
    #[error("corrupt value: {0} trailing bytes")]
    TrailingBytes(usize),
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(CODEC_VERSION);
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .expect("the value structs always encode and writing to a Vec cannot fail");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_borrowed(bytes)
}

/// Like [`decode`], for a value that borrows its strings from `bytes` instead of copying them
/// (the `…Ref` views in `store/values.rs`), with the same checks.
pub fn decode_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != CODEC_VERSION {
        return Err(CodecError::UnknownVersion { found: version });
    }
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
        EventValue, EventValueRef, OutcomeValue, OutcomeValueRef, VerdictValue,
    };
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
            (any::<u64>(), ".*"),
        )
            .prop_map(
                |((pr, head, at, overall, one), (b, w, i, ms), (recv, raw))| VerdictValue {
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
            (any::<Option<String>>(), ".*"),
        )
            .prop_map(
                |((recv, source, success), (sig, kind, orig), (body, line))| EventValue {
                    received_at_ms: recv,
                    source,
                    success,
                    sig_hash: sig,
                    event_kind: kind,
                    source_original: orig,
                    body,
                    line,
                },
            )
    }

    fn outcome() -> impl Strategy<Value = OutcomeValue> {
        (any::<u64>(), ".*", ".*", ".*").prop_map(|(recv, sig, kind, line)| OutcomeValue {
            received_at_ms: recv,
            sig_hash: sig,
            kind,
            line,
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
        }

        #[test]
        fn outcome_ref_reads_the_outcome_layout(o in outcome()) {
            let bytes = encode(&o);
            let r: OutcomeValueRef = decode_borrowed(&bytes).unwrap();
            prop_assert_eq!(r.received_at_ms, o.received_at_ms);
            prop_assert_eq!(r.sig_hash, o.sig_hash.as_str());
            prop_assert_eq!(r.kind, o.kind.as_str());
            prop_assert_eq!(r.line, o.line.as_str());
        }

        /// The frozen copy in migrations/ reads exactly what the store writes.
        #[test]
        fn verdict_layout_matches_the_frozen_v1_copy(v in verdict()) {
            let frozen = frozen_verdict_v1::decode(&encode(&v)).unwrap();
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
            prop_assert_eq!(frozen_verdict_v1::encode(&as_frozen), encode(&v));
            prop_assert_eq!(frozen.raw_json, v.raw_json);
        }

        /// Arbitrary bytes never panic the decoder: each is a value or a typed error.
        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<VerdictValue>(&bytes);
            let _ = decode::<EventValue>(&bytes);
            let _ = decode::<OutcomeValue>(&bytes);
            let _ = decode_borrowed::<EventValueRef>(&bytes);
            let _ = decode_borrowed::<OutcomeValueRef>(&bytes);
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
        };
        let mut bytes = encode(&o);
        assert_eq!(decode::<OutcomeValue>(&[]), Err(CodecError::Empty));
        bytes[0] = 2;
        assert_eq!(
            decode::<OutcomeValue>(&bytes),
            Err(CodecError::UnknownVersion { found: 2 })
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
