//! Fuzz target: NDJSON batches on every write route (`http::ingest::parse_batch`) never panic;
//! every line is either a put or a numbered rejection.
#![no_main]

use lakehouse_kb::http::ingest::{
    EVENTS, OUTCOMES, ParsedBatch, RecordKind, VERDICTS, parse_batch,
};
use libfuzzer_sys::fuzz_target;

fn check(outcome: Option<ParsedBatch>) {
    if let Some((puts, rejected)) = outcome {
        assert!(!puts.is_empty() || !rejected.is_empty());
        assert!(rejected.iter().all(|r| r.line >= 1 && !r.error.is_empty()));
    }
}

fn batch<R>(data: &[u8], kind: &RecordKind<R>, header_key: Option<&str>) -> Option<ParsedBatch> {
    parse_batch(data, 10_000, kind, 0, header_key).ok()
}

fuzz_target!(|data: &[u8]| {
    for header_key in [None, Some("fuzz-key")] {
        check(batch(data, &VERDICTS, header_key));
        check(batch(data, &EVENTS, header_key));
        check(batch(data, &OUTCOMES, header_key));
    }
});
