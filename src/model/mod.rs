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
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

/// Longest sig_hash, event_kind or source accepted: they become index keys.
pub const MAX_KEY_BYTES: usize = 512;

/// Longest line the service writes to a legacy file (`outcomes.jsonl`, `ops.jsonl`), and the
/// longest the import reads by default: what the service exports, its import reads back. A
/// body within `--max-body` (1 MiB by default) can make a longer line than itself: the
/// observer's rules copy an event's `error` into `output_summary`, and write its numbers as
/// JavaScript does (`1e20` as 21 digits). A record whose line would be longer is refused.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Refuses a record whose line in the legacy file `file` would be `len` bytes, over
/// [`MAX_LINE_BYTES`].
pub fn within_line_limit(file: &str, len: usize) -> Result<(), FieldError> {
    if len <= MAX_LINE_BYTES {
        return Ok(());
    }
    Err(FieldError::new(
        "body",
        format!(
            "the record's line in {file} would be {len} bytes, over the {MAX_LINE_BYTES} bytes \
             a line of the legacy files may hold (the observer's rules copy `error` into \
             `output_summary` and write numbers in full): send a smaller body"
        ),
    ))
}

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
/// events past their retention): the wall clock, except just after it steps forward. A clock
/// stepped forward (a day, say) made every idempotency key old at once, and a client's retry
/// of a write acknowledged seconds before was stored twice (a review). This clock runs on
/// from where the wall clock was, by the monotonic clock, while the wall clock is ahead of it,
/// and takes the wall clock's time again once it has been ahead, by no further step, for the
/// catch-up time ([`set_expiry_catch_up`]: the service's idempotency window, at least a day):
/// a step forward makes no key old early, and a service started before its clock was set (a
/// machine booting before NTP) forgets late for that long, never for good. Within one
/// process: a step while it is stopped is not seen. The service calls it first as it starts.
pub fn expiry_now_ms() -> u64 {
    let catch_up = std::time::Duration::from_millis(EXPIRY_CATCH_UP_MS.load(Ordering::Relaxed));
    EXPIRY_CLOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .at(now_ms(), std::time::Instant::now(), catch_up)
}

static EXPIRY_CLOCK: std::sync::LazyLock<std::sync::Mutex<ExpiryClock>> =
    std::sync::LazyLock::new(|| {
        std::sync::Mutex::new(ExpiryClock::new(now_ms(), std::time::Instant::now()))
    });

/// The least catch-up time of [`expiry_now_ms`]: a day.
pub const EXPIRY_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

static EXPIRY_CATCH_UP_MS: AtomicU64 = AtomicU64::new(24 * 3_600_000);

/// Sets how long the wall clock may be ahead of the time that passed before
/// [`expiry_now_ms`] takes it as it is: `window` (the longest a key must be kept), at least
/// [`EXPIRY_CATCH_UP`].
pub fn set_expiry_catch_up(window: std::time::Duration) {
    let ms = u64::try_from(window.max(EXPIRY_CATCH_UP).as_millis()).unwrap_or(u64::MAX);
    EXPIRY_CATCH_UP_MS.store(ms, Ordering::Relaxed);
}

/// [`expiry_now_ms`]'s state: where the wall clock was at an instant, and since when (and by
/// how much, at the latest look) it has been ahead of that by more than the time passed.
#[derive(Debug)]
struct ExpiryClock {
    anchor_ms: u64,
    anchor: std::time::Instant,
    ahead: Option<(std::time::Instant, u64)>,
}

/// How far the two clocks may part (rounding, NTP's slewing) without a step being seen.
const CLOCK_TOLERANCE_MS: u64 = 1_000;

impl ExpiryClock {
    fn new(wall_ms: u64, now: std::time::Instant) -> ExpiryClock {
        ExpiryClock {
            anchor_ms: wall_ms,
            anchor: now,
            ahead: None,
        }
    }

    /// The expiry time when the wall clock reads `wall_ms` at `now`.
    fn at(&mut self, wall_ms: u64, now: std::time::Instant, catch_up: std::time::Duration) -> u64 {
        let passed = u64::try_from(now.saturating_duration_since(self.anchor).as_millis())
            .unwrap_or(u64::MAX);
        let steady = self.anchor_ms.saturating_add(passed);
        // Within the tolerance of the time passed, or behind it (a step back: the wall clock
        // forgets late): the wall clock, from here.
        if wall_ms <= steady.saturating_add(CLOCK_TOLERANCE_MS) {
            *self = ExpiryClock::new(wall_ms, now);
            return wall_ms;
        }
        let gap = wall_ms - steady;
        let since = match self.ahead {
            // A further step forward: the catch-up time starts again from it.
            Some((since, seen)) if gap <= seen.saturating_add(CLOCK_TOLERANCE_MS) => since,
            _ => now,
        };
        self.ahead = Some((since, gap));
        if now.saturating_duration_since(since) >= catch_up {
            *self = ExpiryClock::new(wall_ms, now);
            return wall_ms;
        }
        steady
    }
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
    fn the_expiry_clock_lets_a_forward_step_age_nothing_until_it_catches_up() {
        use std::time::{Duration, Instant};
        let day = 24 * 3_600_000;
        let catch_up = EXPIRY_CATCH_UP.as_secs();
        let hour = 3_600;
        // Per clock: where the wall clock starts; then each look: (seconds since the start by
        // the monotonic clock, the wall clock's ms, the expiry clock's ms).
        type Looks = Vec<(u64, u64, u64)>;
        let cases: [(&str, u64, Looks); 3] = [
            (
                "one step forward, then back",
                1_000 * day,
                vec![
                    // Time passes as the wall clock says (within a second): the wall clock.
                    (10, 1_000 * day + 10_000, 1_000 * day + 10_000),
                    (15, 1_000 * day + 15_500, 1_000 * day + 15_500),
                    // Stepped forward a day: the clock runs on from where it was.
                    (20, 1_001 * day + 20_000, 1_000 * day + 20_500),
                    (hour, 1_001 * day + 3_600_000, 1_000 * day + 3_600_500),
                    // Ahead for a whole catch-up time: the wall clock is taken, and kept.
                    (
                        20 + catch_up,
                        1_001 * day + (20 + catch_up) * 1_000,
                        1_001 * day + (20 + catch_up) * 1_000,
                    ),
                    (
                        25 + catch_up,
                        1_001 * day + (25 + catch_up) * 1_000,
                        1_001 * day + (25 + catch_up) * 1_000,
                    ),
                    // Stepped back: the wall clock (later expiry), and time runs on from there.
                    (
                        26 + catch_up,
                        1_000 * day + (26 + catch_up) * 1_000,
                        1_000 * day + (26 + catch_up) * 1_000,
                    ),
                    (
                        27 + catch_up,
                        1_000 * day + (27 + catch_up) * 1_000,
                        1_000 * day + (27 + catch_up) * 1_000,
                    ),
                ],
            ),
            (
                // Set at boot, then by NTP: followed after the catch-up time, not never.
                "a clock set after the start",
                0,
                vec![
                    (1, 40 * day, 1_000),
                    (
                        1 + catch_up,
                        40 * day + (1 + catch_up) * 1_000,
                        40 * day + (1 + catch_up) * 1_000,
                    ),
                ],
            ),
            (
                // A second step restarts the catch-up time: a key written just before it is
                // not aged by it an hour later.
                "two steps forward",
                0,
                vec![
                    (1, day, 1_000),
                    (23 * hour, day + 23 * hour * 1_000, 23 * hour * 1_000),
                    (
                        23 * hour + 1,
                        2 * day + (23 * hour + 1) * 1_000,
                        (23 * hour + 1) * 1_000,
                    ),
                    (25 * hour, 2 * day + 25 * hour * 1_000, 25 * hour * 1_000),
                    (
                        23 * hour + 1 + catch_up,
                        2 * day + (23 * hour + 1 + catch_up) * 1_000,
                        2 * day + (23 * hour + 1 + catch_up) * 1_000,
                    ),
                ],
            ),
        ];
        let start = Instant::now();
        for (case, wall_at_start, looks) in cases {
            let mut clock = ExpiryClock::new(wall_at_start, start);
            for (secs, wall, expected) in looks {
                let at = start + Duration::from_secs(secs);
                assert_eq!(
                    clock.at(wall, at, EXPIRY_CATCH_UP),
                    expected,
                    "{case}, {secs} s"
                );
            }
        }
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
