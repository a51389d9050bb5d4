//! The exact tier: a finding's [`Fingerprint`], of its check and its summary normalised
//! (see the module documentation of [`super`]).

use std::borrow::Cow;
use std::fmt;

use super::positions::{POSITION_CONTEXT, is_position_before};
use crate::model::tail;

/// A finding's identity within a PR: the first 16 hex digits of SHA-256 of its normalised
/// check and summary (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    pub fn of(check: &str, summary: &str) -> Fingerprint {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(normalise_check(check).as_bytes());
        hasher.update(b"\n");
        hasher.update(normalise_summary(summary).as_bytes());
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Fingerprint(u64::from_be_bytes(first))
    }

    /// Parses 16 hex digits (either case).
    pub fn parse(hex: &str) -> Option<Fingerprint> {
        crate::model::parse_hex16(hex).map(Fingerprint)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The check as the fingerprint sees it: trimmed, lowercased, whitespace runs one space.
pub fn normalise_check(check: &str) -> String {
    check
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn is_quote(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '`' | '\u{2018}' | '\u{2019}' | '\u{201c}' | '\u{201d}' | '\u{ab}' | '\u{bb}'
    )
}

/// The summary as the fingerprint sees it (see the module documentation).
pub fn normalise_summary(summary: &str) -> String {
    let summary = nfc(summary);
    let mut out = String::with_capacity(summary.len());
    let mut space = false;
    // Inside a run of digits: `Some(true)` a position (written as one `#`), `Some(false)` a
    // number kept as written.
    let mut digits: Option<bool> = None;
    // Whether the last character kept was part of a name: digits after one are part of it.
    let mut in_name = false;
    for c in summary.chars() {
        if is_quote(c) {
            continue;
        }
        if c.is_whitespace() {
            space = !out.is_empty();
            digits = None;
            in_name = false;
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        if c.is_ascii_digit()
            && (digits.is_some() || !in_name || out.ends_with("#l") || out.ends_with("#-l"))
        {
            let first = digits.is_none();
            if !*digits.get_or_insert_with(|| is_position_before(tail(&out, POSITION_CONTEXT))) {
                out.push(c);
            } else if first && !out.ends_with('#') {
                // One `#` for `line 42` and `line #42` alike.
                out.push('#');
            }
            continue;
        }
        digits = None;
        in_name = c.is_alphanumeric() || c == '_';
        out.extend(c.to_lowercase());
    }
    while let Some(last) = out.chars().last() {
        if matches!(last, '.' | '!' | ';' | ':' | ',') || last.is_whitespace() {
            out.pop();
        } else {
            break;
        }
    }
    out
}

/// `text` in Unicode NFC: borrowed when it already is (almost every wording: a quick check,
/// no copy), composed otherwise.
pub(super) fn nfc(text: &str) -> Cow<'_, str> {
    use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => Cow::Borrowed(text),
        IsNormalized::No | IsNormalized::Maybe => Cow::Owned(text.nfc().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_ignores_case_quoting_positions_whitespace_and_a_final_stop() {
        let a = Fingerprint::of(
            "Static",
            "Unwrap in \"parse_body\" at ingest.rs:42 can panic.",
        );
        let b = Fingerprint::of(
            " static ",
            "unwrap  in `parse_body` at\tingest.rs:57 can panic",
        );
        assert_eq!(a, b);
        assert_eq!(
            normalise_summary("  Unwrap in ‘parse_body’ at ingest.rs:1042 can panic!! "),
            "unwrap in parse_body at ingest.rs:# can panic"
        );
        // printf 'static\nunwrap in parse_body at ingest.rs:# can panic' | sha256sum | cut -c1-16
        assert_eq!(a.to_string(), "9c4a927d6182d1c8");
        assert_eq!(Fingerprint::parse("9C4A927D6182D1C8"), Some(a));
        assert_eq!(Fingerprint::parse("9c4a927d6182d1c"), None);
        // Another check, or other words, is another finding.
        assert_ne!(
            a,
            Fingerprint::of("security", "unwrap in parse_body at ingest.rs:42 can panic")
        );
        assert_ne!(
            a,
            Fingerprint::of("static", "unwrap in parse_query at ingest.rs:42 can panic")
        );
    }
}
