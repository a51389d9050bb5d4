//! Domain types: what a verdict, an observed event and a KB outcome row are, and the rules that
//! turn incoming JSON into them (contract §1-§4). No storage or HTTP concerns live here.

pub mod claims;
pub mod event;
pub mod finding;
pub mod outcome;
pub mod polarity;
pub mod repo;
pub mod text;
pub mod verdict;

pub use claims::ClaimHash;
pub use event::{ObservedEvent, ObservedOp, Source};
pub use outcome::OutcomeRow;
pub use repo::Repo;
pub use verdict::{Overall, Verdict};

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Longest sig_hash, event_kind or source accepted: they become index keys.
pub const MAX_KEY_BYTES: usize = 512;

/// An input rejected by a model rule: the field at fault and a message naming the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// `"{field} must be {expected}, got {value}"`.
    pub fn expected(field: &str, expected: &str, got: &Value) -> Self {
        FieldError::new(
            field,
            format!("{field} must be {expected}, got {}", describe(got)),
        )
    }

    pub fn missing(field: &str) -> Self {
        FieldError::new(field, format!("{field} is required"))
    }
}

/// A JSON field as JavaScript sees it: `undefined`, `null` or a value. The legacy writers left
/// `undefined` out and wrote `null` as `null`, so byte compatibility needs all three.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum JsField<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> JsField<T> {
    /// The same field, borrowing its value.
    pub fn as_ref(&self) -> JsField<&T> {
        match self {
            JsField::Absent => JsField::Absent,
            JsField::Null => JsField::Null,
            JsField::Value(v) => JsField::Value(v),
        }
    }

    /// The same field with `f` of its value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> JsField<U> {
        match self {
            JsField::Absent => JsField::Absent,
            JsField::Null => JsField::Null,
            JsField::Value(v) => JsField::Value(f(v)),
        }
    }

    /// The value, treating null like absent (JavaScript's `??`).
    pub fn value(&self) -> Option<&T> {
        match self {
            JsField::Value(v) => Some(v),
            JsField::Absent | JsField::Null => None,
        }
    }
}

/// The value for display in an error message: compact JSON, cut at 60 characters.
pub(crate) fn describe(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// 16 hex digits (either case) as the `u64` they write: how fingerprints, claim hashes and the
/// change feed's histories are written in answers and read back from requests.
pub fn parse_hex16(hex: &str) -> Option<u64> {
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// `text` cut to at most `max` bytes at a character boundary.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The last `max` bytes of `text` at most, from a character boundary.
pub(crate) fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The body as text; invalid UTF-8 is refused with the offset of the first bad byte.
pub fn utf8(bytes: &[u8]) -> Result<&str, FieldError> {
    std::str::from_utf8(bytes).map_err(|e| {
        FieldError::new(
            "body",
            format!(
                "body is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Parses a request or file body that must be one JSON object. Lone surrogates, which
/// JavaScript's `JSON.parse` takes, are read as U+FFFD ([`crate::jsjson::parse_js`]).
pub(crate) fn parse_object(text: &str) -> Result<Map<String, Value>, FieldError> {
    object_of(crate::jsjson::parse_js(text))
}

/// A body that is kept as well as read: trimmed of surrounding ASCII whitespace and mended
/// (lone surrogates as `\ufffd`, numbers too large for a double as `null`, so that what is kept
/// is JSON every reader takes, read as JavaScript reads it), with its object. The text is
/// scanned for lone surrogates once.
pub(crate) fn parse_kept(text: &str) -> Result<(Cow<'_, str>, Map<String, Value>), FieldError> {
    let text = crate::jsjson::lone_surrogates_replaced(
        text.trim_matches(|c: char| c.is_ascii_whitespace()),
    );
    let (text, parsed) = crate::jsjson::parse_mended(text);
    Ok((text, object_of(parsed)?))
}

fn object_of(parsed: serde_json::Result<Value>) -> Result<Map<String, Value>, FieldError> {
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(FieldError::new(
            "body",
            format!("body must be a JSON object, got {}", json_type(&other)),
        )),
        Err(e) => Err(FieldError::new(
            "body",
            format!("body is not valid JSON: {e}"),
        )),
    }
}

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `obj[key]` with JavaScript's three states.
pub(crate) fn js_field<'a>(obj: &'a Map<String, Value>, key: &str) -> JsField<&'a Value> {
    match obj.get(key) {
        None => JsField::Absent,
        Some(Value::Null) => JsField::Null,
        Some(v) => JsField::Value(v),
    }
}

/// Rejects strings too long to be an index key.
pub(crate) fn check_key_len(field: &str, value: &str) -> Result<(), FieldError> {
    if value.len() > MAX_KEY_BYTES {
        return Err(FieldError::new(
            field,
            format!(
                "{field} must be at most {MAX_KEY_BYTES} bytes, got {}",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// The time by which what is old is forgotten or deleted (idempotency keys, a backup's key,
/// events past their retention): the wall clock, but never ahead of the wall clock at the
/// process's first call plus the time that has passed since, by the monotonic clock. A clock
/// stepped forward (a day, say) made every idempotency key old at once, and a client's retry
/// of a write acknowledged seconds before was stored twice (a review); stepped forward, this
/// clock runs on as time passes, and what it forgets, it forgets late, never early. The
/// service calls it first as it starts.
pub fn expiry_now_ms() -> u64 {
    static ANCHOR: std::sync::LazyLock<(u64, std::time::Instant)> =
        std::sync::LazyLock::new(|| (now_ms(), std::time::Instant::now()));
    not_ahead(now_ms(), *ANCHOR)
}

/// `wall` no later than the anchor's wall time plus the time since the anchor's instant.
fn not_ahead(wall: u64, (anchor_ms, anchor): (u64, std::time::Instant)) -> u64 {
    let passed = u64::try_from(anchor.elapsed().as_millis()).unwrap_or(u64::MAX);
    wall.min(anchor_ms.saturating_add(passed))
}

/// The last millisecond `toISOString` writes with a four-digit year (9999-12-31T23:59:59.999Z).
pub const MAX_ISO_MS: u64 = 253_402_300_799_999;

/// `new Date(ms).toISOString()`: `2026-04-01T09:15:13.330Z`, for a time up to [`MAX_ISO_MS`];
/// a later one (only a damaged or absurd clock gives one) is written as that last millisecond.
pub fn iso_timestamp(ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.min(MAX_ISO_MS));
    humantime::format_rfc3339_millis(time).to_string()
}

/// [`iso_timestamp`], `None` past [`MAX_ISO_MS`] instead of the last millisecond.
pub fn iso_timestamp_checked(ms: u64) -> Option<String> {
    (ms <= MAX_ISO_MS).then(|| iso_timestamp(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_clock_never_runs_ahead_of_the_time_that_passed() {
        let day = 24 * 3_600_000;
        let anchor = (1_000 * day, std::time::Instant::now());
        // The wall clock stepped forward a day: the expiry clock stays where time has taken it.
        let after_step = not_ahead(anchor.0 + day, anchor);
        assert!(
            after_step >= anchor.0 && after_step < anchor.0 + 60_000,
            "{after_step}"
        );
        // Stepped back: the wall clock, which forgets later.
        assert_eq!(not_ahead(anchor.0 - day, anchor), anchor.0 - day);
        // As time passes, it follows the wall clock.
        let later = (anchor.0, anchor.1 - std::time::Duration::from_secs(3_600));
        assert_eq!(not_ahead(anchor.0 + 3_000_000, later), anchor.0 + 3_000_000);
        let now = expiry_now_ms();
        assert!(now <= now_ms() && now + 60_000 > now_ms());
    }

    #[test]
    fn iso_timestamp_matches_javascript() {
        // new Date(1775034913330).toISOString()
        assert_eq!(iso_timestamp(1_775_034_913_330), "2026-04-01T09:15:13.330Z");
        assert_eq!(iso_timestamp(0), "1970-01-01T00:00:00.000Z");
        // Past year 9999 (a damaged receipt time): never a panic.
        assert_eq!(iso_timestamp(MAX_ISO_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso_timestamp(u64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso_timestamp_checked(MAX_ISO_MS + 1), None);
    }

    #[test]
    fn describe_cuts_long_values() {
        assert_eq!(describe(&Value::String("six".into())), "\"six\"");
        let long = Value::String("x".repeat(100));
        assert_eq!(describe(&long).chars().count(), 63);
    }
}
