//! Fuzz target: the value codec's decoder never panics on arbitrary bytes (a corrupt or
//! unknown-version value is a typed error), and whatever it accepts survives a re-encode and
//! decode unchanged (compared as bytes, so NaNs compare too). A verdict's head reader
//! (`VerdictHead::read`, the first block of a version-5 value) never panics either.
#![no_main]

use lakehouse_kb::store::codec::{Layout, decode, encode};
use lakehouse_kb::store::values::{EventValue, OutcomeValue, VerdictHead, VerdictValue};
use libfuzzer_sys::fuzz_target;

fn stable<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + for<'a> Layout<'a>,
{
    if let Ok(value) = decode::<T>(data) {
        let once = encode(&value);
        let again: T = decode(&once).expect("a re-encoded value decodes");
        assert_eq!(encode(&again), once);
    }
}

fuzz_target!(|data: &[u8]| {
    stable::<VerdictValue>(data);
    stable::<EventValue>(data);
    stable::<OutcomeValue>(data);
    let _ = VerdictHead::read(data, &mut Vec::new());
});
