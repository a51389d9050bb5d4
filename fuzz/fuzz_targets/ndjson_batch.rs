//! Fuzz target: NDJSON batches on every write route (`http::ingest::parse_batch`) never panic;
//! every line is either a put or a numbered rejection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lakehouse_kb::http::ingest::parse_batch;
use lakehouse_kb::intake::{event_record, outcome_record, verdict_record};

fuzz_target!(|data: &[u8]| {
    for parse in [event_record, verdict_record, outcome_record] {
        if let Ok((puts, rejected)) = parse_batch(data, 10_000, parse, 0) {
            assert!(!puts.is_empty() || !rejected.is_empty());
            assert!(rejected.iter().all(|r| r.line >= 1 && !r.error.is_empty()));
        }
    }
});
