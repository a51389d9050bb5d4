//! Fuzz target: the `POST /event` body parser (`intake::event_record`) never panics, and every
//! rejection names a field and says why.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = lakehouse_kb::intake::event_record(data, 1_700_000_000_000) {
        assert!(!e.field.is_empty() && !e.message.is_empty());
    }
});
