//! JavaScript-compatible JSON output and value conversions: what `JSON.stringify`, `Number()` and
//! template-literal `String()` do in the legacy writers, reproduced byte for byte.

use serde_json::Value;
use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` (JSON) with every escaped lone surrogate (`\ud83d` not followed by a low surrogate's
/// escape, or a low one alone) written as `\ufffd`, the replacement character; borrowed when
/// there is none. JavaScript's `JSON.parse` takes lone surrogates and `JSON.stringify` writes
/// them (a string cut in the middle of an emoji); a Rust string cannot hold one, so the text is
/// mended before it is parsed, and kept mended: each lone unit decodes as
/// `String::from_utf16_lossy` would decode it. Other escapes, and text outside escapes, are left
/// as they are.
pub fn lone_surrogates_replaced(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let unit_at = |at: usize| -> Option<u16> {
        if bytes.get(at) != Some(&b'\\') || bytes.get(at + 1) != Some(&b'u') {
            return None;
        }
        let hex = bytes.get(at + 2..at + 6)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    let mut mended: Option<String> = None;
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = bytes.get(at..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        at += found;
        let Some(unit) = unit_at(at) else {
            // Another escape (`\\` included): its two bytes are not the start of one.
            at += 2;
            continue;
        };
        let lone = match unit {
            0xD800..=0xDBFF => {
                if matches!(unit_at(at + 6), Some(0xDC00..=0xDFFF)) {
                    at += 12;
                    continue;
                }
                true
            }
            0xDC00..=0xDFFF => true,
            _ => false,
        };
        if lone {
            let out = mended.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..at]);
            out.push_str("\\ufffd");
            copied = at + 6;
        }
        at += 6;
    }
    match mended {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
    }
}

/// Parses JSON `text` as JavaScript's `JSON.parse` reads it as far as a Rust value can hold it:
/// lone surrogates as U+FFFD ([`lone_surrogates_replaced`]).
///
/// Numbers too large for a double are refused here: a legacy line is kept as it was written,
/// so its text must be what is read ([`parse_mended`] reads a body that is kept as mended).
pub fn parse_js<T: serde::de::DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    serde_json::from_str(&lone_surrogates_replaced(text))
}

/// Parses `text`; when serde_json refuses a number too large for a double (`1e999`, a 400-digit
/// integer), parses it again with each such number written `null`, as JavaScript reads it
/// (`JSON.parse` gives ±Infinity, which `JSON.stringify` writes as `null`). Returns the text
/// parsed, so that what is kept is what was read.
pub fn parse_mended<T: serde::de::DeserializeOwned>(
    text: Cow<'_, str>,
) -> (Cow<'_, str>, serde_json::Result<T>) {
    let parsed = serde_json::from_str(&text);
    match parsed {
        Err(e) if e.to_string().starts_with("number out of range") => {
            match overflowing_numbers_nulled(&text) {
                Some(nulled) => {
                    let parsed = serde_json::from_str(&nulled);
                    (Cow::Owned(nulled), parsed)
                }
                None => (text, Err(e)),
            }
        }
        parsed => (text, parsed),
    }
}

/// Whether `token` is a number by JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(token: &[u8]) -> bool {
    fn digits(s: &[u8]) -> usize {
        s.iter().take_while(|b| b.is_ascii_digit()).count()
    }
    let mut rest = token.strip_prefix(b"-").unwrap_or(token);
    let int = digits(rest);
    if int == 0 || (int > 1 && rest[0] == b'0') {
        return false;
    }
    rest = &rest[int..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = digits(fraction);
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    if let Some(exponent) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exponent = exponent
            .strip_prefix(b"+")
            .or_else(|| exponent.strip_prefix(b"-"))
            .unwrap_or(exponent);
        let n = digits(exponent);
        if n == 0 {
            return false;
        }
        rest = &exponent[n..];
    }
    rest.is_empty()
}

/// `text` with every number outside its strings whose value overflows a double written as
/// `null`; `None` when it has none.
fn overflowing_numbers_nulled(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let (mut at, mut copied, mut in_string) = (0, 0, false);
    while at < bytes.len() {
        let b = bytes[at];
        if in_string {
            match b {
                b'\\' => at += 1,
                b'"' => in_string = false,
                _ => {}
            }
            at += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            at += 1;
            continue;
        }
        if b != b'-' && !b.is_ascii_digit() {
            at += 1;
            continue;
        }
        let start = at;
        while at < bytes.len()
            && matches!(bytes[at], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        {
            at += 1;
        }
        let token = &text[start..at];
        // Only a number as JSON writes it: `01e999` or `1.e999` stay, and stay refused.
        if is_json_number(token.as_bytes()) && token.parse::<f64>().is_ok_and(f64::is_infinite) {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..start]);
            out.push_str("null");
            copied = at;
        }
    }
    let mut out = out?;
    out.push_str(&text[copied..]);
    Some(out)
}

/// `JSON.stringify(x)` for a number: like `number_to_string`, but NaN and ±Infinity are written as
/// `null`.
pub fn write_number(out: &mut String, x: f64) {
    if x.is_finite() {
        push_number(out, x);
    } else {
        out.push_str("null");
    }
}

/// `Number.prototype.toString()` / `String(x)` in base 10: shortest round-trip digits, JS layout
/// rules (ECMA-262 Number::toString): 2 not 2.0, 1.5, 0.333, 0.000001, 1e-7, 1e+21,
/// 123456789012345680000, -0 prints "0", NaN "NaN", Infinity "Infinity", -Infinity "-Infinity".
pub fn number_to_string(x: f64) -> String {
    let mut out = String::new();
    push_number(&mut out, x);
    out
}

/// ECMA-262 Number::toString(x, 10), appended to `out`.
fn push_number(out: &mut String, x: f64) {
    // Integers below 2^53 are most of what the legacy lines hold (counts, PR numbers): each has
    // a double of its own on either side, so the shortest digits that round-trip are the
    // integer's own, printed as is (-0 included: JS prints both zeros as "0").
    if x.fract() == 0.0 && x.abs() < MAX_SAFE_INTEGER {
        if x < 0.0 {
            out.push('-');
        }
        out.push_str(itoa::Buffer::new().format(x.abs() as u64));
        return;
    }
    // ryu-js: the shortest digits that round-trip, the one closest to x when several qualify,
    // laid out by ECMA-262's rules; NaN and the infinities as JS spells them.
    out.push_str(ryu_js::Buffer::new().format(x));
}

/// 2^53: below it, every integer is a double.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// `JSON.stringify(s)` for a string, quotes included: `\"` `\\` `\b` `\f` `\n` `\r` `\t`, other
/// U+0000..U+001F as `\u00xx` with lowercase hex; everything else (non-ASCII, U+2028, U+2029, `/`,
/// U+007F) raw UTF-8.
pub fn write_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    // Most strings need no escape: one pass over all bytes (which the compiler vectorises)
    // says so, and the string goes out as it is.
    let plain = s.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push_str(s);
        out.push('"');
        return;
    }
    // Every escaped character is ASCII and no byte of a multi-byte UTF-8 sequence is, so a
    // byte scan finds them, and the runs between them start and end on char boundaries.
    let mut run_start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(run_start..i).unwrap_or_default());
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        run_start = i + 1;
    }
    out.push_str(s.get(run_start..).unwrap_or_default());
    out.push('"');
}

/// ECMAScript WhiteSpace and LineTerminator code points: what StringToNumber trims. Not Rust's
/// `char::is_whitespace`, which accepts U+0085 and rejects U+FEFF. Also the set of `\s` and
/// `trim` in a regular expression.
pub fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// JS `Number(s)` for a string (StringToNumber): trim JS whitespace (WhiteSpace + LineTerminator:
/// \t \n \v \f \r space U+00A0 U+1680 U+2000-U+200A U+2028 U+2029 U+202F U+205F U+3000 U+FEFF);
/// empty → 0; `0x`/`0X`, `0o`/`0O`, `0b`/`0B` integer literals (no sign, no fraction); optional
/// sign then `Infinity`; optional sign then a decimal literal (`12`, `12.`, `.5`, `1e3`,
/// `1.5E-3`). Anything else (including "inf", "nan", "1_000", "0x", "1e", "+0x10", " 1 2 ") is
/// NaN. Returns f64 (NaN for invalid). Rust's `f64::from_str` accepts "inf"/"nan"/"infinity":
/// must not leak through.
pub fn string_to_number(s: &str) -> f64 {
    let s = s.trim_matches(is_js_space);
    if s.is_empty() {
        return 0.0;
    }
    let bytes = s.as_bytes();
    if bytes.len() > 2 && bytes[0] == b'0' {
        let bits_per_digit = match bytes[1] {
            b'x' | b'X' => Some(4),
            b'o' | b'O' => Some(3),
            b'b' | b'B' => Some(1),
            _ => None,
        };
        if let Some(bits) = bits_per_digit {
            return parse_power_of_two_radix(&bytes[2..], bits);
        }
    }
    let (negative, unsigned) = match bytes[0] {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    if unsigned == b"Infinity" {
        return if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    // Only a string matching the JS grammar reaches Rust's parser, so its extra spellings
    // ("inf", "nan", "infinity") never do; on this grammar it rounds correctly, as JS does.
    if is_decimal_literal(unsigned) {
        s.parse::<f64>().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

/// StrUnsignedDecimalLiteral without `Infinity`: `D+ [. D*] [Exp] | . D+ [Exp]`, where
/// Exp is `[eE] [+-]? D+`.
fn is_decimal_literal(b: &[u8]) -> bool {
    let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = int_len;
    let mut frac_len = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_len;
    }
    if int_len == 0 && frac_len == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_len == 0 {
            return false;
        }
        i += exp_len;
    }
    i == b.len()
}

/// Value of the digits of a `0x`/`0o`/`0b` literal, rounded to the nearest double (ties to even),
/// as 𝔽(MV) requires for any length. NaN when empty or when a digit is out of range.
fn parse_power_of_two_radix(digits: &[u8], bits_per_digit: u32) -> f64 {
    let radix = 1u32 << bits_per_digit;
    if digits.is_empty() {
        return f64::NAN;
    }
    // Invariant: the value is (mantissa + fraction) × 2^dropped, where the dropped low bits are
    // summarised by `sticky` (any of them set). Once the top bit of the mantissa is set it holds
    // 64 significant bits, 11 more than a double keeps, so the sticky bit can only break ties.
    let mut mantissa: u64 = 0;
    let mut dropped: u32 = 0;
    let mut sticky = false;
    for &d in digits {
        let Some(value) = char::from(d).to_digit(radix) else {
            return f64::NAN;
        };
        for shift in (0..bits_per_digit).rev() {
            let bit = (value >> shift) & 1 == 1;
            if mantissa >> 63 == 0 {
                mantissa = (mantissa << 1) | u64::from(bit);
            } else {
                dropped = dropped.saturating_add(1);
                sticky |= bit;
            }
        }
    }
    if dropped == 0 {
        // `as` rounds to nearest, ties to even.
        return mantissa as f64;
    }
    mantissa |= u64::from(sticky);
    if dropped > 1023 {
        // mantissa ≥ 2^63, so the value is at least 2^1087.
        return f64::INFINITY;
    }
    // Scaling by a power of two commutes with rounding; overflow gives Infinity as it should.
    (mantissa as f64) * f64::from_bits(u64::from(1023 + dropped) << 52)
}

/// JS `Number(v)` for a parsed JSON value: null → 0, bool → 0/1, number → itself, string →
/// string_to_number, array → Number(String(array)) (so [] → 0, [5] → 5, [1,2] → NaN), object →
/// NaN.
pub fn value_to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => string_to_number(s),
        Value::Array(_) => string_to_number(&to_js_string(v)),
        Value::Object(_) => f64::NAN,
    }
}

/// What a template literal `${v}` produces for a parsed JSON value: string as is; number via
/// number_to_string (serde_json numbers converted with as_f64, i.e. to the nearest double, as
/// JSON.parse does); true/false; null → "null"; array → elements joined by "," where null elements
/// become "" and nested arrays recurse; object → "[object Object]".
pub fn to_js_string(v: &Value) -> String {
    let mut out = String::new();
    push_js_string(&mut out, v);
    out
}

fn push_js_string(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => push_number(out, n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            // Array.prototype.join: null and undefined elements contribute the empty string.
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !item.is_null() {
                    push_js_string(out, item);
                }
            }
        }
        Value::Object(_) => out.push_str("[object Object]"),
    }
}

/// A JSON value as `JSON.parse` builds it, for writing back as `JSON.stringify` would: object
/// properties in JavaScript's order (integer-like keys first, ascending, then the others in the
/// order they first came), a repeated key's last value in its first place, every number a
/// double. serde_json's own map sorts its keys, so a value copied into a line whole is read
/// again into this (`ObservedEvent` does, for the observer's copied fields).
#[derive(Debug, Clone, PartialEq)]
pub enum JsValue {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<JsValue>),
    Object(Vec<(String, JsValue)>),
}

impl JsValue {
    /// The value of `key` when this is an object.
    pub fn get(&self, key: &str) -> Option<&JsValue> {
        match self {
            JsValue::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// `JSON.stringify(value)`, appended to `out`.
    pub fn write(&self, out: &mut String) {
        match self {
            JsValue::Null => out.push_str("null"),
            JsValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JsValue::Number(x) => write_number(out, *x),
            JsValue::String(text) => write_string(out, text),
            JsValue::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            JsValue::Object(fields) => {
                out.push('{');
                let mut indexed: Vec<(u32, &JsValue)> = Vec::new();
                let mut named: Vec<(&str, &JsValue)> = Vec::new();
                for (key, value) in fields {
                    match array_index(key) {
                        Some(i) => indexed.push((i, value)),
                        None => named.push((key, value)),
                    }
                }
                indexed.sort_unstable_by_key(|(i, _)| *i);
                let mut first = true;
                let mut field = |out: &mut String, key: &str, value: &JsValue| {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    write_string(out, key);
                    out.push(':');
                    value.write(out);
                };
                for (i, value) in indexed {
                    field(out, itoa::Buffer::new().format(i), value);
                }
                for (key, value) in named {
                    field(out, key, value);
                }
                out.push('}');
            }
        }
    }
}

/// A property key JavaScript orders first: an array index, `0` to 2^32 - 2 written without
/// leading zeros.
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u32>().ok().filter(|&i| i != u32::MAX)
}

impl<'de> serde::Deserialize<'de> for JsValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = JsValue;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<JsValue, E> {
                Ok(JsValue::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<JsValue, E> {
                Ok(JsValue::Bool(b))
            }
            // JavaScript holds every number as a double: the nearest one, as `as` rounds.
            fn visit_i64<E>(self, n: i64) -> Result<JsValue, E> {
                Ok(JsValue::Number(n as f64))
            }
            fn visit_u64<E>(self, n: u64) -> Result<JsValue, E> {
                Ok(JsValue::Number(n as f64))
            }
            fn visit_f64<E>(self, x: f64) -> Result<JsValue, E> {
                Ok(JsValue::Number(x))
            }
            fn visit_str<E>(self, s: &str) -> Result<JsValue, E> {
                Ok(JsValue::String(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<JsValue, E> {
                Ok(JsValue::String(s))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<JsValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(JsValue::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsValue, A::Error> {
                // Where each key is, so that a body of many keys costs a lookup a key, not a
                // pass over the keys before it.
                let mut at = std::collections::HashMap::<String, usize>::new();
                let mut fields: Vec<(String, JsValue)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, JsValue>()? {
                    match at.get(&key) {
                        Some(&i) => fields[i].1 = value,
                        None => {
                            at.insert(key.clone(), fields.len());
                            fields.push((key, value));
                        }
                    }
                }
                Ok(JsValue::Object(fields))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Writes one JSON object field by field in the caller's order, JSON.stringify style (no spaces).
/// A field whose value would be `undefined` in JS is simply not written: callers use the `Option`
/// variants for that.
pub struct ObjectWriter<'a> {
    out: &'a mut String,
    /// No field written yet, so the next one needs no leading comma.
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Writes `{`.
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        ObjectWriter { out, first: true }
    }

    /// Keys are the legacy writers' field names, literals that JSON writes as they are (the
    /// export writes a few million of them: no escaping pass).
    fn key(&mut self, key: &'static str) {
        debug_assert!(
            key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'),
            "{key:?} needs escaping"
        );
        self.out.reserve(key.len() + 4);
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    pub fn str(&mut self, key: &'static str, v: &str) -> &mut Self {
        self.key(key);
        write_string(self.out, v);
        self
    }

    /// `None`: the field is left out.
    pub fn opt_str(&mut self, key: &'static str, v: Option<&str>) -> &mut Self {
        if let Some(v) = v {
            self.str(key, v);
        }
        self
    }

    /// Via `write_number`: NaN and ±Infinity become `null`, as in JS.
    pub fn num(&mut self, key: &'static str, v: f64) -> &mut Self {
        self.key(key);
        write_number(self.out, v);
        self
    }

    /// `None`: the field is left out.
    pub fn opt_num(&mut self, key: &'static str, v: Option<f64>) -> &mut Self {
        if let Some(v) = v {
            self.num(key, v);
        }
        self
    }

    /// As JS would print it: JS holds the value as a double, so above 2^53 it is rounded
    /// (`v as f64`, nearest, ties to even) before printing.
    pub fn uint(&mut self, key: &'static str, v: u64) -> &mut Self {
        self.num(key, v as f64)
    }

    pub fn bool(&mut self, key: &'static str, v: bool) -> &mut Self {
        self.key(key);
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    pub fn null(&mut self, key: &'static str) -> &mut Self {
        self.key(key);
        self.out.push_str("null");
        self
    }

    /// Writes `"key":` then lets the closure write the value (e.g. a nested ObjectWriter).
    pub fn with(&mut self, key: &'static str, f: impl FnOnce(&mut String)) -> &mut Self {
        self.key(key);
        f(self.out);
        self
    }

    /// Writes `}`.
    pub fn finish(&mut self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Numbers too large for a double are read as JavaScript reads them: `JSON.parse` gives
    /// ±Infinity, `JSON.stringify` writes `null` (the expected texts are Node 20's output for
    /// `JSON.stringify(JSON.parse(input))`). serde_json refused them, so the legacy observer's
    /// clients had such an event stored where this service answered 400.
    #[test]
    fn numbers_past_a_double_read_as_null_as_javascript_reads_them() {
        let big = format!("1{}", "0".repeat(400));
        #[rustfmt::skip]
        let cases: Vec<(String, &str)> = vec![
            (r#"{"x":1e999}"#.into(), r#"{"x":null}"#),
            (r#"{"x":-1E+400,"s":"1e999 \"1e999\"","a":[1e308,2e308,-0.0]}"#.into(),
                r#"{"x":null,"s":"1e999 \"1e999\"","a":[1e308,null,-0.0]}"#),
            (format!(r#"{{"big":{big},"k\\":[{{"n":-{big}}}],"t":1e-999}}"#),
                r#"{"big":null,"k\\":[{"n":null}],"t":1e-999}"#),
            // Nothing out of range: the text as it is.
            (r#"{"x":1.5e300,"y":"2e308"}"#.into(), r#"{"x":1.5e300,"y":"2e308"}"#),
        ];
        for (input, want) in cases {
            let (read, parsed) = parse_mended::<Value>(Cow::Borrowed(&input));
            assert_eq!(read, want, "{input}");
            let want: Value = serde_json::from_str(want).unwrap();
            assert_eq!(parsed.unwrap(), want, "{input}");
        }
        // Still refused: what JavaScript refuses too, beside an overflow or not (found by a
        // review: Rust's float parser takes `01e999` and `1.e999`, JSON does not).
        for bad in [
            "{\"x\":Infinity}",
            "{\"x\":1e999",
            "{\"x\":--1e999}",
            "{\"v\":[1e999,01e999]}",
            "{\"v\":[1e999,1.e999]}",
            "{\"v\":[1e999,-00001e400]}",
            "{\"v\":[1e999,1.E400]}",
            "{\"v\":[1e999,1e+]}",
        ] {
            let (_, parsed) = parse_mended::<Value>(Cow::Borrowed(bad));
            assert!(parsed.is_err(), "{bad}");
        }
        // A legacy line is read as written: an overflowing number in it is refused.
        assert!(parse_js::<Value>(r#"{"x":1e999}"#).is_err());
    }

    #[test]
    fn json_numbers_by_the_grammar() {
        for good in [
            "0",
            "-0",
            "1",
            "-12",
            "1.5",
            "0.25e3",
            "1E+400",
            "1e-9",
            "123456789",
        ] {
            assert!(is_json_number(good.as_bytes()), "{good}");
        }
        for bad in [
            "", "-", "01", "-01", "1.", ".5", "1e", "1e+", "1.e9", "1-2", "1e5.5", "+1",
        ] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
    }

    fn json_num(x: f64) -> String {
        let mut s = String::new();
        write_number(&mut s, x);
        s
    }

    fn json_str(x: &str) -> String {
        let mut s = String::new();
        write_string(&mut s, x);
        s
    }

    #[test]
    fn numbers_literal_table() {
        let cases: &[(f64, &str)] = &[
            (2000.0 / 1000.0, "2"),
            (1500.0 / 1000.0, "1.5"),
            (333.0 / 1000.0, "0.333"),
            (0.0, "0"),
            (-0.0, "0"),
            (1e-6, "0.000001"),
            (1.5e-6, "0.0000015"),
            (1e-7, "1e-7"),
            (-1.5e-7, "-1.5e-7"),
            (1e21, "1e+21"),
            (1.25e21, "1.25e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (0.1 + 0.2, "0.30000000000000004"),
            (5e-324, "5e-324"),
            (-5e-324, "-5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (9007199254740993.0, "9007199254740992"),
            (-42.0, "-42"),
            (123.456, "123.456"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for &(x, want) in cases {
            assert_eq!(number_to_string(x), want, "number_to_string({x:e})");
            let want_json = if x.is_finite() { want } else { "null" };
            assert_eq!(json_num(x), want_json, "write_number({x:e})");
        }
    }

    #[test]
    fn strings_literal_table() {
        let cases: &[(&str, &str)] = &[
            ("", r#""""#),
            ("plain", r#""plain""#),
            ("a\"b", r#""a\"b""#),
            ("a\\b", r#""a\\b""#),
            ("\u{8}\u{c}\n\r\t", r#""\b\f\n\r\t""#),
            ("\u{0}", r#""\u0000""#),
            ("\u{1}", r#""\u0001""#),
            ("\u{1f}", r#""\u001f""#),
            ("\u{b}", r#""\u000b""#),
            ("\u{7f}", "\"\u{7f}\""),
            ("\u{2028}\u{2029}", "\"\u{2028}\u{2029}\""),
            ("a/b", r#""a/b""#),
            ("🦀 é", "\"🦀 é\""),
            ("é\u{1}é", "\"é\\u0001é\""),
        ];
        for &(s, want) in cases {
            assert_eq!(json_str(s), want, "write_string({s:?})");
        }
    }

    #[test]
    fn string_to_number_literal_table() {
        let cases: &[(&str, f64)] = &[
            ("", 0.0),
            ("   ", 0.0),
            ("12", 12.0),
            ("  12  ", 12.0),
            ("\u{a0}7\u{feff}", 7.0),
            ("\u{2028}\t\u{3000}8\n", 8.0),
            ("12.", 12.0),
            (".5", 0.5),
            (".5e1", 5.0),
            ("1.", 1.0),
            ("1e3", 1000.0),
            ("1E3", 1000.0),
            ("1e+3", 1000.0),
            ("1.5E-3", 0.0015),
            ("-12.5", -12.5),
            ("+12.5", 12.5),
            ("00012", 12.0),
            ("1e400", f64::INFINITY),
            ("-1e400", f64::NEG_INFINITY),
            ("1e-400", 0.0),
            ("Infinity", f64::INFINITY),
            ("+Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("0x1F", 31.0),
            ("0X1f", 31.0),
            ("0b101", 5.0),
            ("0B11", 3.0),
            ("0o17", 15.0),
            ("0O17", 15.0),
            ("0xfffffffffffffff8", 18446744073709552000.0),
        ];
        for &(s, want) in cases {
            let got = string_to_number(s);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "string_to_number({s:?}) = {got}"
            );
        }
        assert_eq!(string_to_number("-0").to_bits(), (-0.0f64).to_bits());
        let nan_cases = [
            "inf",
            "-inf",
            "nan",
            "NaN",
            "infinity",
            "INFINITY",
            "1_000",
            "0x",
            "0b",
            "0o",
            "1e",
            "1e+",
            "+0x10",
            "-0x10",
            "0x1.8",
            "0b2",
            "0o8",
            " 1 2 ",
            ".",
            "+",
            "-",
            ".e3",
            "e3",
            "1..2",
            "1e3.5",
            "12px",
            "\u{85}1",
            "\u{180e}1",
            "abc",
        ];
        for s in nan_cases {
            assert!(
                string_to_number(s).is_nan(),
                "string_to_number({s:?}) should be NaN"
            );
        }
    }

    #[test]
    fn values_literal_table() {
        let cases: Vec<(Value, &str, f64)> = vec![
            (json!(null), "null", 0.0),
            (json!(true), "true", 1.0),
            (json!(false), "false", 0.0),
            (json!(1.5), "1.5", 1.5),
            (json!(-7), "-7", -7.0),
            (json!(1e21), "1e+21", 1e21),
            (
                json!(u64::MAX),
                "18446744073709552000",
                18446744073709552000.0,
            ),
            (json!(" 12 "), " 12 ", 12.0),
            (json!("x"), "x", f64::NAN),
            (json!([]), "", 0.0),
            (json!([5]), "5", 5.0),
            (json!([[" 5"]]), " 5", 5.0),
            (json!([null]), "", 0.0),
            (json!([1, 2]), "1,2", f64::NAN),
            (json!({"a": 1}), "[object Object]", f64::NAN),
            (
                json!([1, [2, [3, null]], {"a": 1}]),
                "1,2,3,,[object Object]",
                f64::NAN,
            ),
            (json!([true, "a", 0.5, -0.0]), "true,a,0.5,0", f64::NAN),
        ];
        for (v, want_str, want_num) in cases {
            assert_eq!(to_js_string(&v), want_str, "to_js_string({v})");
            let got = value_to_number(&v);
            assert!(
                got == want_num || (got.is_nan() && want_num.is_nan()),
                "value_to_number({v}) = {got}, want {want_num}"
            );
        }
    }

    #[test]
    fn object_writer_matches_audit_row_layout() {
        let mut s = String::new();
        ObjectWriter::new(&mut s)
            .str("kind", "audit")
            .str("sig_hash", "pr6-7fe47bab")
            .uint("pr_number", 6)
            .opt_str("missing", None)
            .opt_str("one_liner", Some("ok \"quoted\"\n"))
            .num("ok_events", 1.0)
            .with("findings", |out| {
                ObjectWriter::new(out)
                    .num("block", 0.0)
                    .opt_num("warn", Some(2.0))
                    .opt_num("info", None)
                    .finish();
            })
            .num("elapsed_secs", 1500.0 / 1000.0)
            .num("bad", f64::NAN)
            .bool("ok", false)
            .null("error")
            .with("empty", |out| ObjectWriter::new(out).finish())
            .finish();
        assert_eq!(
            s,
            concat!(
                r#"{"kind":"audit","sig_hash":"pr6-7fe47bab","pr_number":6,"#,
                r#""one_liner":"ok \"quoted\"\n","ok_events":1,"findings":{"block":0,"warn":2},"#,
                r#""elapsed_secs":1.5,"bad":null,"ok":false,"error":null,"empty":{}}"#
            )
        );
        let mut empty = String::new();
        ObjectWriter::new(&mut empty).finish();
        assert_eq!(empty, "{}");
    }

    #[test]
    fn radix_literals_round_to_nearest_even() {
        let p60 = 2f64.powi(60);
        // ulp(2^60) is 256: +128 is a tie (to even, down), +129 rounds up, +384 ties up to even.
        assert_eq!(string_to_number("0x1000000000000080"), p60);
        assert_eq!(string_to_number("0x1000000000000081"), p60 + 256.0);
        assert_eq!(string_to_number("0x1000000000000180"), p60 + 512.0);
        // Beyond 64 bits the dropped bits only count through the sticky bit: ulp(2^96) is 2^44.
        let p96 = 2f64.powi(96);
        let tie = format!("0x1{}8{}", "0".repeat(13), "0".repeat(10));
        assert_eq!(string_to_number(&tie), p96);
        let above_tie = format!("0x1{}8{}1", "0".repeat(13), "0".repeat(9));
        assert_eq!(string_to_number(&above_tie), p96 + 2f64.powi(44));
        assert!(string_to_number(&format!("0x{}", "f".repeat(256))).is_infinite());
        assert!(string_to_number(&format!("0x{}", "f".repeat(255))).is_finite());
        assert_eq!(string_to_number(&format!("0x{}1", "0".repeat(5000))), 1.0);
    }

    /// JSON text of `units` as JavaScript's `JSON.stringify` writes a string holding them: lone
    /// surrogates escaped, the rest as the characters they make (with the escapes JSON needs).
    fn js_stringified(units: &[u16]) -> String {
        let mut out = String::from("\"");
        for decoded in char::decode_utf16(units.iter().copied()) {
            match decoded {
                Ok(c) => {
                    let one = serde_json::to_string(&c.to_string()).unwrap();
                    out.push_str(&one[1..one.len() - 1]);
                }
                Err(lone) => {
                    write!(out, "\\u{:04x}", lone.unpaired_surrogate()).unwrap();
                }
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn lone_surrogates_are_mended_and_nothing_else() {
        let cases = [
            (r#""a\ud83d""#, r#""a\ufffd""#),
            (r#""\ud83d\ude00""#, r#""\ud83d\ude00""#),
            (r#""\ude00\ud83d""#, r#""\ufffd\ufffd""#),
            (r#""\ud83d\ud83d\ude00""#, r#""\ufffd\ud83d\ude00""#),
            (r#""\\ud83d""#, r#""\\ud83d""#),
            (r#""\\\ud83d""#, r#""\\\ufffd""#),
            (r#""\uD83D x""#, r#""\ufffd x""#),
            (r#""\u+d80""#, r#""\u+d80""#),
            ("\\", "\\"),
            ("x\\", "x\\"),
            (r#""\ud8"#, r#""\ud8"#),
            ("", ""),
        ];
        for (text, mended) in cases {
            assert_eq!(lone_surrogates_replaced(text), mended, "{text}");
        }
        assert!(matches!(
            lone_surrogates_replaced(r#"{"a":"\ud83d\ude00 \n"}"#),
            Cow::Borrowed(_)
        ));
    }

    /// `JSON.stringify(JSON.parse(text))` in Node 20, for texts whose order JavaScript changes.
    #[test]
    fn a_value_is_written_back_as_javascript_writes_what_it_read() {
        let cases = [
            (
                r#"{"b":1,"a":[1.50,-0,1e21,null,"\u00e9"],"2":true,"10":{},"1":"x","01":0}"#,
                r#"{"1":"x","2":true,"10":{},"b":1,"a":[1.5,0,1e+21,null,"é"],"01":0}"#,
            ),
            (r#"{"z":1,"a":2,"z":3}"#, r#"{"z":3,"a":2}"#),
            (
                r#"{"4294967295":1,"4294967294":2,"-1":3}"#,
                r#"{"4294967294":2,"4294967295":1,"-1":3}"#,
            ),
            (
                r#"[{"k":"\u2028\u0007"}, 18446744073709551615]"#,
                "[{\"k\":\"\u{2028}\\u0007\"},18446744073709552000]",
            ),
        ];
        for (text, expected) in cases {
            let value: JsValue = serde_json::from_str(text).unwrap();
            let mut out = String::new();
            value.write(&mut out);
            assert_eq!(out, expected, "{text}");
        }
    }

    /// A value's object keys and strings, in key order (numbers may round to a double).
    fn keys_and_strings(value: &Value) -> String {
        match value {
            Value::String(s) => format!("{s:?}"),
            Value::Array(items) => items
                .iter()
                .map(keys_and_strings)
                .collect::<Vec<_>>()
                .join(","),
            Value::Object(fields) => fields
                .iter()
                .map(|(k, v)| format!("{k:?}:{}", keys_and_strings(v)))
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        }
    }

    /// JSON values of a few levels, with keys JavaScript orders first among the others.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(|x| serde_json::json!(x)),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            "\\PC{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(("[0-9a-c]{1,3}", inner), 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// What is written is JSON holding the same keys and strings, and read and written
        /// again it is the same text (`JSON.stringify(JSON.parse(s)) === s` for such an `s`).
        #[test]
        fn a_written_value_is_written_again_the_same(value in json_value()) {
            let text = serde_json::to_string(&value).unwrap();
            let read: JsValue = serde_json::from_str(&text).unwrap();
            let mut once = String::new();
            read.write(&mut once);
            let reparsed: Value = serde_json::from_str(&once).unwrap();
            prop_assert_eq!(keys_and_strings(&reparsed), keys_and_strings(&value));
            let again: JsValue = serde_json::from_str(&once).unwrap();
            let mut twice = String::new();
            again.write(&mut twice);
            prop_assert_eq!(twice, once);
        }
    }

    proptest! {
        /// Whatever UTF-16 JavaScript held, the mended text parses, as `from_utf16_lossy`
        /// decodes the units.
        #[test]
        fn any_javascript_string_parses_once_mended(units in proptest::collection::vec(
            prop_oneof![any::<u16>(), 0xd800u16..0xe000, Just(0x5cu16), Just(0x75u16)],
            0..40,
        )) {
            let text = js_stringified(&units);
            let mended = lone_surrogates_replaced(&text);
            let parsed: String = serde_json::from_str(&mended).unwrap();
            prop_assert_eq!(parsed, String::from_utf16_lossy(&units));
        }

        /// Text serde writes holds no lone surrogate, and is left as it is.
        #[test]
        fn valid_json_text_is_left_alone(s in any::<String>()) {
            let text = serde_json::to_string(&s).unwrap();
            prop_assert!(matches!(lone_surrogates_replaced(&text), Cow::Borrowed(t) if t == text));
        }

        #[test]
        fn number_to_string_round_trips(x in any::<f64>().prop_filter("finite", |x| {
            x.is_finite()
        })) {
            let s = number_to_string(x);
            // Rust's parser accepts the "e+N" form JS prints for large exponents.
            prop_assert_eq!(s.parse::<f64>().ok(), Some(x), "{}", s);
            prop_assert_eq!(string_to_number(&s), x, "{}", s);
        }

        #[test]
        fn write_string_is_valid_json_for_the_same_text(s in any::<String>()) {
            let out = json_str(&s);
            prop_assert_eq!(serde_json::from_str::<String>(&out).ok(), Some(s));
        }

        #[test]
        fn string_to_number_never_panics(s in "[ 0-9a-fA-FxXoObB.eE+_\\-\u{a0}\u{feff}]{0,12}") {
            let _ = string_to_number(&s);
        }
    }

    /// splitmix64: a fixed, dependency-free generator so the oracle inputs are reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
            &items[self.below(items.len() as u64) as usize]
        }
    }

    fn hex(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(h: &str) -> String {
        let bytes: Vec<u8> = (0..h.len() / 2)
            .filter_map(|i| h.get(2 * i..2 * i + 2))
            .filter_map(|p| u8::from_str_radix(p, 16).ok())
            .collect();
        String::from_utf8(bytes).expect("node printed valid UTF-8")
    }

    fn oracle_numbers(rng: &mut Rng) -> Vec<f64> {
        let mut xs = vec![
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
        ];
        xs.extend([f64::MIN, f64::MIN_POSITIVE, 5e-324, f64::EPSILON, 0.1 + 0.2]);
        for _ in 0..2000 {
            xs.push(f64::from_bits(rng.next()));
        }
        for _ in 0..500 {
            let magnitude = 1u64 << rng.below(64);
            let i = (rng.next() % magnitude) as i64;
            xs.push(if rng.below(2) == 0 {
                i as f64
            } else {
                -(i as f64)
            });
        }
        for k in 0..=2000 {
            xs.push(f64::from(k) / 1000.0);
        }
        for e in -330..=310 {
            let p: f64 = format!("1e{e}").parse().unwrap_or(0.0);
            let bits = p.to_bits();
            xs.extend([
                p,
                f64::from_bits(bits + 1),
                f64::from_bits(bits.saturating_sub(1)),
            ]);
            xs.push(p * 1.5);
        }
        for x in [1e-7, 1e-6, 1e21, 1e20] {
            let bits = f64::to_bits(x);
            for d in 0..4 {
                xs.extend([f64::from_bits(bits + d), f64::from_bits(bits - d)]);
            }
        }
        xs
    }

    fn random_string(rng: &mut Rng) -> String {
        let len = rng.below(12);
        (0..len)
            .filter_map(|_| {
                let cp = match rng.below(8) {
                    0 => rng.below(0x20) as u32,
                    1 => *rng.pick(&[0x22, 0x5c, 0x2f, 0x7f, 0x2028, 0x2029, 0xfeff]),
                    2 | 3 => 0x20 + rng.below(0x5f) as u32,
                    4 => 0x80 + rng.below(0x780) as u32,
                    5 | 6 => rng.below(0x10000) as u32,
                    _ => 0x10000 + rng.below(0x100000) as u32,
                };
                char::from_u32(cp)
            })
            .collect()
    }

    fn random_numeric_string(rng: &mut Rng) -> String {
        const TOKENS: &[&str] = &[
            "0",
            "1",
            "9",
            "12",
            "007",
            ".",
            "e",
            "E",
            "+",
            "-",
            "x",
            "X",
            "o",
            "b",
            "0x",
            "0b",
            "0o",
            "f",
            "F",
            "_",
            " ",
            "\t",
            "\n",
            "\u{a0}",
            "\u{feff}",
            "\u{2028}",
            "\u{3000}",
            "\u{85}",
            "\u{180e}",
            "\u{200b}",
            "Infinity",
            "inf",
            "nan",
            "NaN",
            "e5",
            "e-400",
            "e400",
            "123456789012345678901234567890",
            "1e",
            "0.",
            ".5",
            "n",
        ];
        let len = 1 + rng.below(5);
        (0..len).map(|_| *rng.pick(TOKENS)).collect()
    }

    fn random_value(rng: &mut Rng, depth: u32) -> Value {
        let kinds = if depth >= 3 { 5 } else { 7 };
        match rng.below(kinds) {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 0),
            2 => {
                let x = f64::from_bits(rng.next());
                serde_json::Number::from_f64(x).map_or_else(|| json!(rng.next()), Value::Number)
            }
            3 => json!(rng.next() as i64 >> rng.below(64)),
            4 => Value::String(if rng.below(2) == 0 {
                random_numeric_string(rng)
            } else {
                random_string(rng)
            }),
            5 => Value::Array(
                (0..rng.below(4))
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            ),
            _ => json!({"k": random_value(rng, depth + 1)}),
        }
    }

    const NODE_SCRIPT: &str = r#"
const fs = require('fs');
const dv = new DataView(new ArrayBuffer(8));
const bits = (x) => {
  if (Number.isNaN(x)) return 'nan';
  dv.setFloat64(0, x);
  return dv.getBigUint64(0).toString(16);
};
const hex = (s) => Buffer.from(s, 'utf8').toString('hex');
const unhex = (h) => Buffer.from(h, 'hex').toString('utf8');
const out = [];
for (const line of fs.readFileSync(process.argv[1], 'utf8').split('\n')) {
  if (line === '') continue;
  const [tag, arg] = line.split(' ');
  if (tag === 'n') {
    dv.setBigUint64(0, BigInt('0x' + arg));
    const x = dv.getFloat64(0);
    out.push(String(x) + ' ' + JSON.stringify(x));
  } else if (tag === 's') {
    out.push(hex(JSON.stringify(unhex(arg))));
  } else if (tag === 't') {
    out.push(bits(Number(unhex(arg))));
  } else if (tag === 'j') {
    const v = JSON.parse(unhex(arg));
    out.push(hex(`${v}`) + ' ' + bits(Number(v)));
  }
}
process.stdout.write(out.join('\n') + '\n');
"#;

    fn bits_repr(x: f64) -> String {
        if x.is_nan() {
            "nan".to_owned()
        } else {
            format!("{:x}", x.to_bits())
        }
    }

    #[test]
    fn matches_node_oracle() {
        let mut rng = Rng(0x1ead_5eed);
        let numbers = oracle_numbers(&mut rng);
        let strings: Vec<String> = (0..3000).map(|_| random_string(&mut rng)).collect();
        let mut numeric: Vec<String> = (0..3000).map(|_| random_numeric_string(&mut rng)).collect();
        numeric.extend(
            [
                "0x",
                "0x1F",
                "+0x10",
                "1_000",
                " 1 2 ",
                "1e",
                "-0",
                "1e400",
                "0b101",
                "0o17",
                "1.",
                ".5e1",
                "\u{a0}7\u{feff}",
                "  12  ",
                ".",
                "+",
                "-",
                "inf",
                "nan",
            ]
            .map(String::from),
        );
        for len in [13, 14, 15, 16, 17, 20, 64, 200, 255, 256, 300] {
            for _ in 0..10 {
                let digits: String = (0..len)
                    .map(|_| *rng.pick(&['0', '1', '8', 'f', 'F', '7', 'c']))
                    .collect();
                numeric.push(format!("0x{digits}"));
                let bin: String = (0..len * 4).map(|_| *rng.pick(&['0', '1'])).collect();
                numeric.push(format!("0b{bin}"));
            }
        }
        let values: Vec<Value> = (0..1000).map(|_| random_value(&mut rng, 0)).collect();

        let mut input = String::new();
        for x in &numbers {
            let _ = writeln!(input, "n {:016x}", x.to_bits());
        }
        for s in &strings {
            let _ = writeln!(input, "s {}", hex(s));
        }
        for s in &numeric {
            let _ = writeln!(input, "t {}", hex(s));
        }
        for v in &values {
            let _ = writeln!(input, "j {}", hex(&v.to_string()));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("jsjson-oracle-{}-{nanos}.txt", std::process::id()));
        std::fs::write(&path, &input).expect("write oracle input");
        let output = std::process::Command::new("node")
            .arg("-e")
            .arg(NODE_SCRIPT)
            .arg(&path)
            .output();
        let _ = std::fs::remove_file(&path);
        let output = match output {
            Ok(o) => o,
            Err(e) => panic!(
                "the Node.js oracle is required: could not run `node` ({e}); install Node.js \
                 (v20) and put `node` on PATH"
            ),
        };
        assert!(
            output.status.success(),
            "node failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).expect("node output is UTF-8");
        let mut lines = stdout.lines();
        let mut mismatches = Vec::new();
        let mut next_line = || lines.next().unwrap_or("<missing>").to_owned();

        for &x in &numbers {
            let want = next_line();
            let got = format!("{} {}", number_to_string(x), json_num(x));
            if got != want {
                mismatches.push(format!(
                    "number {x:e} ({:016x}): rust {got}, node {want}",
                    x.to_bits()
                ));
            }
        }
        for s in &strings {
            let want = unhex(&next_line());
            let got = json_str(s);
            if got != want {
                mismatches.push(format!("string {s:?}: rust {got}, node {want}"));
            }
        }
        for s in &numeric {
            let want = next_line();
            let got = bits_repr(string_to_number(s));
            if got != want {
                mismatches.push(format!("Number({s:?}): rust {got}, node {want}"));
            }
        }
        for v in &values {
            let line = next_line();
            let (want_str, want_num) = line.split_once(' ').unwrap_or((&line, ""));
            let want_str = unhex(want_str);
            let got_str = to_js_string(v);
            let got_num = bits_repr(value_to_number(v));
            if got_str != want_str || got_num != want_num {
                mismatches.push(format!(
                    "value {v}: rust ({got_str:?}, {got_num}), node ({want_str:?}, {want_num})"
                ));
            }
        }
        let total = numbers.len() + strings.len() + numeric.len() + values.len();
        assert!(
            mismatches.is_empty(),
            "{} of {total} oracle cases differ from node, first ones:\n{}",
            mismatches.len(),
            mismatches
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
