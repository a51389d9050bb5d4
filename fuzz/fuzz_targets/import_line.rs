//! Fuzz target: the legacy import's line parsers. The light row parser accepts exactly the
//! lines the full JSON parser accepts as objects and reads the same `sig_hash`, `kind`,
//! `pr_number`, `head_sha` and `audited_at`; the ops-line reader never panics.
#![no_main]

use lakehouse_kb::import::lines::{parse_object_line, parse_row};
use lakehouse_kb::model::ObservedOp;
use libfuzzer_sys::fuzz_target;

/// serde_json (with its `raw_value` feature, which the service uses) reads an object whose key is
/// this token as a raw value, so `Value` refuses such a line where the light parse does not. No
/// legacy writer produces the key; it is left out of the comparison.
const SERDE_JSON_RAW_VALUE_TOKEN: &[u8] = b"$serde_json::private::RawValue";

fuzz_target!(|data: &[u8]| {
    if data
        .windows(SERDE_JSON_RAW_VALUE_TOKEN.len())
        .any(|w| w == SERDE_JSON_RAW_VALUE_TOKEN)
    {
        return;
    }
    let light = parse_row(data);
    let full = parse_object_line(data);
    assert_eq!(
        light.is_ok(),
        full.is_ok(),
        "{:?} vs {:?}",
        light.err(),
        full.err()
    );
    if let (Ok((_, head)), Ok((text, object))) = (light, full) {
        let field = |key: &str| object.get(key).and_then(|v| v.as_str());
        assert_eq!(head.sig_hash.as_deref(), field("sig_hash"));
        assert_eq!(head.kind.as_deref(), field("kind"));
        assert_eq!(head.head_sha.as_deref(), field("head_sha"));
        assert_eq!(head.audited_at.as_deref(), field("audited_at"));
        let pr_number = object.get("pr_number").and_then(|v| v.as_number());
        assert_eq!(head.pr_number.as_ref(), pr_number);
        let _ = ObservedOp::from_line(text);
    }
});
