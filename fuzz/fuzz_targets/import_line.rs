//! Fuzz target: the legacy import's line parsers. The light row parser accepts exactly the
//! lines the full JSON parser accepts as objects and reads the same `sig_hash` and `kind`; the
//! ops-line reader never panics.
#![no_main]

use lakehouse_kb::import::lines::{parse_object_line, parse_row};
use lakehouse_kb::model::ObservedOp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let light = parse_row(data);
    let full = parse_object_line(data);
    assert_eq!(light.is_ok(), full.is_ok(), "{:?} vs {:?}", light.err(), full.err());
    if let (Ok((_, head)), Ok((text, object))) = (light, full) {
        let field = |key: &str| object.get(key).and_then(|v| v.as_str());
        assert_eq!(head.sig_hash.as_deref(), field("sig_hash"));
        assert_eq!(head.kind.as_deref(), field("kind"));
        let _ = ObservedOp::from_line(text);
    }
});
