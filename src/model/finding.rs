//! Findings: what an audit says is wrong (`findings: [{check, severity, summary, ...}]` in the
//! verdict JSON), and the rules by which the findings memory recognises one finding across the
//! pushes of a PR. Pure: the memory itself lives in the store (`store/findings.rs`).
//!
//! Two tiers, every answer saying which one matched:
//!
//! 1. **Exact**: the [`Fingerprint`], the first 16 hex digits of SHA-256 of
//!    `normalise_check(check) + "\n" + normalise_summary(summary)`, where
//!    - the check is trimmed, lowercased and its whitespace runs made one space;
//!    - the summary is put in Unicode NFC (`café` typed or pasted decomposed is one wording),
//!      lowercased; quote characters (`"` `'` `` ` `` `‘` `’` `“` `”` `«` `»`) are removed;
//!      every number that is a position in a file becomes one `#`: a run of ASCII digits
//!      after a file's `:` or `(` (`ingest.rs:42`, `ingest.rs:42:7`, `ingest.rs(42,7)`), after
//!      `#L` (`#L42`, `#L42-L57`), after the word `line`, `lines`, `ln`, `col`, `column` or
//!      `columns` (a space, `#` or `.` between), or after such a number and `-`, `–`, `..` or
//!      `,` (`lines 42-57`). Positions move between pushes; every other number names something
//!      (a CVE, a port: `0.0.0.0:5432`, a status code, a version) or measures something (`30s`,
//!      `72%`), and is kept as written (the similar tier leaves measurements out, so a moved
//!      measurement is a rewording);
//!      runs of whitespace become one space; leading and trailing whitespace and trailing
//!      sentence punctuation (`. ! ; : ,`) are dropped.
//!
//!    So `Unwrap in "parse_body" at ingest.rs:42 can panic.` and
//!    ``unwrap in `parse_body` at ingest.rs:57 can panic`` have one fingerprint, and
//!    `log4j 2.14.1 is vulnerable (CVE-2021-44228)` and `... (CVE-2021-45046)` two.
//! 2. **Similar**: a finding reworded by the model matches an earlier finding of the same PR
//!    and the same check when their [`FindingTerms`] score at least [`SIMILAR_THRESHOLD`] in
//!    [`FindingTerms::similarity`] (the Dice coefficient of their terms, 0 when they name
//!    different things). The terms come from the claims analyser (`model/text.rs`: lowercase,
//!    stop words, the Snowball stemmer, developer abbreviations), with identifiers counted
//!    whole, positions and measurements left out and other numbers counted as things named
//!    (`#5432`). Why this
//!    measure rather than BM25, and why this threshold, is said at
//!    [`FindingTerms::similarity`].
//!
//! These rules decide what the stored memory holds, so they are versioned:
//! [`FINDING_RULES_VERSION`] (with the analyser's version) is recorded with the memory, and a
//! store whose memory was built under other rules rebuilds it on open.

use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use super::polarity::Polarity;
use super::text::{self, MAX_TERMS_PER_TEXT};
use super::{FieldError, cut, tail};

/// Version of the rules of this file (fingerprint normalisation, terms, similarity, threshold).
/// Version 1: the rules as first released. Version 2: every number was `#` and left out of the
/// terms, so `CVE-2021-44228` and `CVE-2021-45046`, or ports 22 and 5432, were one finding
/// (and one confirmed dismissal silenced both): only positions are now; other numbers name
/// things, as do advisory ids; wordings are read in NFC. Version 3: a verdict's severities are
/// remembered trimmed and in lowercase (`BLOCK` was remembered as written, and dismissing it
/// needed no confirmation); fingerprints are version 2's. Version 4: a finding given twice in
/// one audit (one fingerprint, or two wordings the memory links) is remembered with the
/// graver severity, not the first given
/// (`warn` then `block` was remembered as warn); a `findings` array of which no entry reads as
/// a finding says nothing, as no array does, instead of resolving every open finding.
/// Version 5: a port after a host name (`cache.internal:6379`, `db.example.com:5432`) is a
/// number that names something, not a line of a file named `cache.internal`: two ports were
/// one finding, and a dismissal of one silenced the other (a review's); a dotfile's name is no
/// host's (`.env.local:3` is a line). Version 6: a remembered
/// finding keeps the wordings it was raised as between its first and its latest, through which
/// a dismissal reaches its rewordings; fingerprints are version 5's. Version 7: a wording that
/// differs from a remembered finding's latest by a pair of opposite words (`enabled`,
/// `disabled`), both or neither negated, is not linked to it as a rewording (it was a repeat);
/// a contraction typed without its apostrophe (`doesnt`), or with another mark for it (`ʼ`,
/// a backtick), is a negation; a number in parentheses after a name that is no source file's
/// is an argument, not a position (`server.listen(3000)` and `(9229)` were one finding).
/// Version 8: a remembered finding's wordings say since which audit the memory knows them, so
/// that a dismissal silences the wordings linked before it; fingerprints are version 7's.
/// Version 9: a line after a file named without an extension (`Dockerfile:3`) is a position;
/// two reversals (`is disabled`, `is not enabled`) do not say the opposite.
pub const FINDING_RULES_VERSION: u64 = 9;

/// The first rules version whose fingerprints are today's: a memory built under an older one
/// has its dismissals given today's fingerprints when it is rebuilt.
/// (A memory of rules 7 built by a build between 95d2b9c and b2076f9 had other fingerprints
/// than today's; re-keying a dismissal whose fingerprint did not change rewrites nothing.)
pub const FINGERPRINTS_SINCE_RULES_VERSION: u64 = 9;

/// A reworded finding matches when its similarity to the earlier one is at least this: the
/// terms the two wordings share weigh at least twice the terms either has alone (see
/// [`FindingTerms::similarity`]).
pub const SIMILAR_THRESHOLD: f64 = 2.0 / 3.0;

/// A rewording is silenced by a dismissal only on stronger evidence than the memory links two
/// wordings on: a similarity of at least this, wording to wording, and the finding agreeing
/// with the dismissal in negation ([`is_negated`](super::polarity::is_negated)) and saying
/// nothing opposite to it ([`Stems::opposes`](super::polarity::Stems::opposes)). Linking a
/// rewording to the wrong remembered finding costs a confused history; silencing the wrong
/// finding hides a real defect behind a team's word about another
/// (`TLS verification disabled` dismissed, `TLS verification enabled` raised; `password is not
/// hashed` and `password is hashed`, which differ only by a stop word). A lexical measure cannot
/// tell `eval` from `exec`, so what is left to it is how much of a wording is shared: one word
/// of four differing (0.75) is not enough to silence. Measured on the labelled sets
/// (`tests/fixtures/findings/`, each pair as raised, dismissed, then raised again reworded):
/// 124 of the 160 rewordings silenced and 31 more answered as resembling their dismissal; none
/// of the 160 different findings silenced, then or once raised. A finding
/// linked to a dismissal below this grade keeps its own status and names the dismissal it
/// resembles, for the auditor to weigh.
pub const DISMISSAL_THRESHOLD: f64 = 0.8;

/// Longest check name accepted (in a request) or remembered (from a verdict).
pub const MAX_CHECK_BYTES: usize = 200;
/// Longest summary a request may give; a stored verdict's longer summary is remembered cut to
/// this (its fingerprint is of the whole summary).
pub const MAX_SUMMARY_BYTES: usize = 4096;
/// Longest severity remembered, from a verdict or a request (a longer one is none).
pub const MAX_SEVERITY_BYTES: usize = 32;
/// Findings of one verdict that are remembered: the first this many distinct ones (a verdict
/// is history and is stored whole whatever it holds; the memory's cost per verdict is bounded).
pub const MAX_FINDINGS_PER_VERDICT: usize = 256;

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
        super::parse_hex16(hex).map(Fingerprint)
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
fn nfc(text: &str) -> Cow<'_, str> {
    use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => Cow::Borrowed(text),
        IsNormalized::No | IsNormalized::Maybe => Cow::Owned(text.nfc().collect()),
    }
}

/// Words after which a number is a position in a file (lowercase).
const POSITION_WORDS: [&str; 6] = ["line", "lines", "ln", "col", "column", "columns"];

/// Units a number may be followed by, as the next word: the number is a measurement
/// (`30 seconds`, `120 lines`), which moves between pushes, not a thing named.
const UNIT_WORDS: [&str; 30] = [
    "%", "b", "bytes", "d", "days", "entries", "gb", "gib", "h", "hours", "items", "kb", "kib",
    "lines", "mb", "mib", "min", "mins", "minutes", "ms", "percent", "rows", "s", "sec", "secs",
    "second", "seconds", "times", "x", "us",
];

/// Units written on a number (`30s`, `1.5gb`, `2x`): the number is a measurement.
const UNIT_SUFFIXES: [&str; 34] = [
    "b", "d", "em", "fps", "gb", "gib", "h", "hr", "hrs", "k", "kb", "kib", "m", "mb", "mib",
    "min", "mins", "ms", "ns", "pt", "px", "qps", "rem", "rps", "s", "sec", "secs", "tb", "tib",
    "us", "w", "x", "\u{b5}s", "%",
];

/// Whether `word` (lowercase) is a measurement: digits, maybe a decimal part, and a unit.
fn is_measurement(word: &str) -> bool {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    if rest.len() == word.len() {
        return false;
    }
    let rest = match rest.strip_prefix('.') {
        Some(fraction) => {
            let unit = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
            if unit.len() == fraction.len() {
                return false;
            }
            unit
        }
        None => rest,
    };
    UNIT_SUFFIXES.contains(&rest)
}

/// Whether `word` is a number, maybe with a decimal part (`72`, `1.5`).
fn is_decimal(word: &str) -> bool {
    let mut halves = word.splitn(2, '.');
    halves.all(|h| !h.is_empty() && is_number(h))
}

/// Whether `word` (lowercase) is an anchor's position: `l42`, `l42-l57`, `l42-57`.
fn is_anchor(word: &str) -> bool {
    word.split('-').enumerate().all(|(i, part)| {
        let digits = part
            .strip_prefix('l')
            .unwrap_or(if i == 0 { "" } else { part });
        !digits.is_empty() && is_number(digits)
    })
}

/// Words that continue a range of positions (`lines 42 to 57`).
const RANGE_WORDS: [&str; 4] = ["to", "and", "through", "thru"];

/// Whether a number starting right after `before` (the last [`POSITION_CONTEXT`] bytes of a
/// summary so far: a summary of many numbers must cost its length, not its length squared) is
/// a position in a file: after a file's `:` (`ingest.rs:42`, and the column after it) or a
/// source file's `(` (`ingest.rs(42,7)`, as compilers write it; after a method's name,
/// `server.listen(3000)`, `res.status(500)`, the number is an argument), after `#l` (an anchor
/// `#L42`, and `#L42-L57`), after a position word (a space, `#` or `.` between), or after a
/// position already written (`#`) and a range's `-`, `–`, `..` or `,`. After a `:` that follows
/// no file (`0.0.0.0:5432`, `localhost:8080`, `node:16`) a number names something.
fn is_position_before(before: &str) -> bool {
    if before.ends_with("#l") || before.ends_with("#-l") {
        return true;
    }
    if let Some(head) = before.strip_suffix(':') {
        return head.ends_with('#') || names_a_file(head);
    }
    if let Some(head) = before.strip_suffix('(') {
        return head.ends_with('#') || names_a_source_file(head);
    }
    for joiner in ["-", "\u{2013}", "..", ",", ", "] {
        if before
            .strip_suffix(joiner)
            .is_some_and(|head| head.ends_with('#'))
        {
            return true;
        }
    }
    let head = before.trim_end_matches([' ', '#', '.']);
    let word_start = head.rfind(|c: char| !c.is_alphanumeric()).map_or(0, |at| {
        at + head[at..].chars().next().map_or(1, char::len_utf8)
    });
    POSITION_WORDS.contains(&&head[word_start..])
}

/// Bytes before a number that [`is_position_before`] needs (a position word and its
/// separators, or a file's extension, its dot and the character before it), and a few more.
const POSITION_CONTEXT: usize = 32;

/// Whether `text` ends with a file's name: a name, a `.`, and an extension of 1 to 10 letters
/// or digits, the first a letter (`ingest.rs`, `src/db/users.ts`, `Cargo.toml`), that is not
/// the last label of a host's name ([`HOST_SUFFIXES`]: `cache.internal`, `db.example.com`), or
/// one of the files named without an extension ([`EXTENSIONLESS_FILES`]: `Dockerfile`,
/// `src/Makefile`). Only the last 16 bytes are read: a summary's every `:` or `(` must not
/// cost a scan back to its start.
fn names_a_file(text: &str) -> bool {
    let extensionless = trailing_name(tail(text, 16));
    if EXTENSIONLESS_FILES
        .iter()
        .any(|file| extensionless.eq_ignore_ascii_case(file))
    {
        return true;
    }
    let Some((name, extension)) = tail(text, 12).rsplit_once('.') else {
        return false;
    };
    let name_ends = name
        .chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
    name_ends
        && (1..=10).contains(&extension.len())
        && extension.starts_with(|c: char| c.is_ascii_alphabetic())
        && extension.bytes().all(|b| b.is_ascii_alphanumeric())
        && !names_a_host(text)
}

/// Files named without an extension that a tool names with a line (`Dockerfile:3`).
const EXTENSIONLESS_FILES: [&str; 16] = [
    "BUILD",
    "Brewfile",
    "Caddyfile",
    "Containerfile",
    "Dockerfile",
    "GNUmakefile",
    "Gemfile",
    "Jenkinsfile",
    "Justfile",
    "Makefile",
    "Podfile",
    "Procfile",
    "Rakefile",
    "Tiltfile",
    "Vagrantfile",
    "WORKSPACE",
];

/// Whether `text` ends with a file's name ([`names_a_file`]) whose extension is one of
/// [`SOURCE_EXTENSIONS`]: where `name.ext(` is a position (`ingest.rs(42,7)`), not a call of
/// a method (`server.listen(3000)`, `math.pow(2, 31)`).
fn names_a_source_file(text: &str) -> bool {
    names_a_file(text)
        && text.rsplit_once('.').is_some_and(|(_, extension)| {
            SOURCE_EXTENSIONS
                .binary_search(&extension.to_ascii_lowercase().as_str())
                .is_ok()
        })
}

/// Extensions of the source and configuration files a compiler or linter names with a
/// position in parentheses (`file.cs(42,7)`), sorted.
const SOURCE_EXTENSIONS: [&str; 102] = [
    "ada",
    "adb",
    "ads",
    "asm",
    "bash",
    "bicep",
    "c",
    "cbl",
    "cc",
    "cfg",
    "cjs",
    "clj",
    "cmake",
    "cob",
    "conf",
    "cpp",
    "cs",
    "cshtml",
    "csproj",
    "css",
    "cts",
    "cxx",
    "dart",
    "dockerfile",
    "ejs",
    "elm",
    "erl",
    "ex",
    "exs",
    "f90",
    "for",
    "fs",
    "fsproj",
    "fsx",
    "go",
    "gradle",
    "groovy",
    "h",
    "hbs",
    "hh",
    "hpp",
    "hs",
    "htm",
    "html",
    "inc",
    "ini",
    "java",
    "jl",
    "js",
    "json",
    "jsonc",
    "jsx",
    "kt",
    "kts",
    "less",
    "lua",
    "m",
    "md",
    "mjs",
    "mk",
    "ml",
    "mm",
    "mts",
    "nim",
    "pas",
    "php",
    "pl",
    "pp",
    "props",
    "proto",
    "ps1",
    "purs",
    "py",
    "r",
    "razor",
    "rb",
    "rc",
    "rs",
    "sass",
    "scala",
    "scss",
    "sh",
    "sql",
    "sv",
    "svelte",
    "swift",
    "targets",
    "tf",
    "toml",
    "ts",
    "tsx",
    "twig",
    "vb",
    "vbproj",
    "vcxproj",
    "vhd",
    "vue",
    "xaml",
    "xml",
    "yaml",
    "yml",
    "zig",
];

/// The name `text` ends with: its last run of letters, digits, `.`, `-` and `_`.
fn trailing_name(text: &str) -> &str {
    let at = text
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_')))
        .map_or(0, |(at, c)| at + c.len_utf8());
    &text[at..]
}

/// Whether `text` ends with a host's name: labels joined by `.`, the last one of
/// [`HOST_SUFFIXES`] (`cache.internal`, `db.example.com`), or `localhost` alone. A name that
/// starts with a `.` is a file's (`.env.local`). Only the last 64 bytes are read.
fn names_a_host(text: &str) -> bool {
    let name = trailing_name(tail(text, 64));
    match name.rsplit_once('.') {
        Some((labels, last)) => {
            !labels.is_empty()
                && !name.starts_with('.')
                && HOST_SUFFIXES.contains(&last.to_ascii_lowercase().as_str())
        }
        None => name.eq_ignore_ascii_case("localhost"),
    }
}

/// Last labels of host names that no source file is named with: the number after
/// `name.<suffix>:` is a port, not a line. Common top-level domains and the private ones of
/// internal networks; not `dev`, `app` or `info`, which name files too (`Dockerfile.dev`, a
/// Drupal module's `.info`).
const HOST_SUFFIXES: [&str; 20] = [
    "com",
    "org",
    "net",
    "io",
    "internal",
    "local",
    "localdomain",
    "localhost",
    "lan",
    "intranet",
    "corp",
    "cloud",
    "edu",
    "gov",
    "biz",
    "co",
    "ai",
    "us",
    "uk",
    "eu",
];

/// The terms of a finding's wording that the similar tier compares, read in NFC: `ids`, the
/// things it names, each counted once as a unit: code identifiers (a word whose parts are
/// joined by `_ . / : \` or camelCase humps, such as `parse_body`, `src/http/ingest.rs:42`,
/// `retryCount`), as their lowercase parts joined by `/`, a line or column number after `:`
/// left out (`src/http/ingest/rs`); versions (three or more numbers joined by dots, `4.17.15`),
/// as `=4.17.15`; advisory ids (three or more parts joined by `-`, two of them holding digits:
/// `CVE-2021-44228`, `GHSA-jfh8-5qgp-2hr2`), as their parts joined by `/`; and every other
/// number that is neither a position (after a file's `(`, after `line`, `lines`, `ln`, `col`,
/// `column`, `columns`, and the rest of a range after one: `lines 42-57`, `lines 42 to 57`;
/// an anchor `#L42-L57`) nor a measurement (a unit written on, `30s`, `1.5GB`, `72%`, or next,
/// `30 seconds`), as `#5432`, with letters after it that are no unit (`5xx`, `32bit`) too; and
/// `words`, the analyser's terms of the rest. Hyphenated prose (`user-supplied`) is words, not an
/// identifier. Both sorted and distinct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingTerms {
    pub words: Vec<String>,
    pub ids: Vec<String>,
}

impl FindingTerms {
    pub fn of(summary: &str) -> FindingTerms {
        let summary = nfc(summary);
        let mut words = BTreeSet::new();
        let mut ids = BTreeSet::new();
        let mut n_terms = 0;
        let mut plain = Vec::new();
        // Whether a number here is a position: after a position word, and through a range.
        let mut positions = false;
        let mut all = text::words(&summary).peekable();
        while let Some(word) = all.next() {
            if n_terms >= MAX_TERMS_PER_TEXT {
                break;
            }
            let parts = text::parts_of(word);
            let lower = word.to_lowercase();
            let numeric = parts.iter().all(|p| is_number(p));
            let at = word.as_ptr() as usize - summary.as_ptr() as usize;
            let (before, after) = (&summary[..at], &summary[at + word.len()..]);
            // A position: after a file's `(` (`ingest.rs(42,7)`), or in a range after one. What
            // decides it is in the last few characters before the number: only those are read,
            // so that a summary of many numbers costs its length, not its length squared.
            let in_range = positions && (numeric || RANGE_WORDS.contains(&lower.as_str()))
                || numeric && is_position_before(&tail(before, POSITION_CONTEXT).to_lowercase());
            positions = in_range || POSITION_WORDS.contains(&lower.as_str());
            // A measurement (`30s`, `1.5GB`, `72%`) moves between pushes; so does an anchor's
            // position (`#L42-L57`).
            if is_measurement(&lower)
                || (is_decimal(word) && after.starts_with('%'))
                || (before.ends_with('#') && is_anchor(&lower))
            {
                continue;
            }
            // A word right after a `.` is a dotfile's name (`.env.local`), not a host's.
            if let Some(id) = identifier(word, &parts, before.ends_with('.')) {
                ids.insert(id);
                n_terms += 1;
                continue;
            }
            // A measurement: a number with its unit, written on or as the next word.
            let unit_next = all
                .peek()
                .is_some_and(|next| UNIT_WORDS.contains(&next.to_lowercase().as_str()));
            for part in parts {
                if is_number(part) {
                    // (A line after a file's `:` that names no identifier: `Dockerfile:3`.)
                    let line_of_a_file = self::before(word, part)
                        .strip_suffix(':')
                        .is_some_and(names_a_file);
                    if !in_range && !unit_next && !line_of_a_file {
                        ids.insert(format!("#{part}"));
                        n_terms += 1;
                    }
                    continue;
                }
                // Digits with letters after them that are no unit name a thing (`5xx`, `32bit`).
                if part.starts_with(|c: char| c.is_ascii_digit()) {
                    ids.insert(format!("#{}", part.to_lowercase()));
                    n_terms += 1;
                    continue;
                }
                plain.clear();
                text::plain_terms(part, &mut plain);
                for term in plain.drain(..) {
                    n_terms += 1;
                    words.insert(term);
                }
            }
        }
        FindingTerms {
            words: words.into_iter().collect(),
            ids: ids.into_iter().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.ids.is_empty()
    }

    /// How alike two wordings are, from 0 to 1: the Dice coefficient of their terms (twice the
    /// shared terms over the terms of both), where two identifiers are shared when they can
    /// name the same thing (equal, or one the other's trailing parts: `ingest.rs` and
    /// `src/http/ingest.rs`); and 0 when each names something the other does not
    /// (`processPayment` and `processRefund`, `lodash 4.17.15` and `minimist 1.2.0`,
    /// `handler_a` and `handler_b` both calling `write_all`: the same defect in another place
    /// is another finding). A rewording may name less or more, not something else.
    ///
    /// Why not BM25 as the claims index does: BM25 weighs a term by its rarity in a corpus, and
    /// the corpus here is one PR's findings of one check, a handful: its weights would swing
    /// with how many findings the PR has, and so would any threshold on them. A model rewording
    /// its own finding keeps what it names and most of its content words, and changes function
    /// words, inflections, order, quoting and line numbers, which the analyser and the number
    /// rule absorb; a different finding of the same check shares the check's vocabulary and
    /// often the file, and differs in the defect or in what it names.
    ///
    /// An identifier counts once: its parts are not words too, or a shared identifier of four
    /// parts would outweigh every word of the defect. [`SIMILAR_THRESHOLD`] is 2/3 (the shared
    /// terms weigh at least twice those either wording has alone) rather than 1/2, because the
    /// two errors do not cost the same: a missed rewording costs a repeated comment, a false
    /// match hides a real finding behind another's history, or behind its dismissal.
    ///
    /// How these were decided: the first rule (identifier parts as words too, threshold 1/2)
    /// was measured on `tests/fixtures/findings/` as first written: every rewording recognised,
    /// but 20% of the different findings matched. The two causes above (identifier parts counted
    /// twice; a short finding where one word is a large share) gave the rule of this version. A
    /// second set, written before that change and evaluated once after it, is part of the
    /// fixtures (`holdout_*.tsv`); the test reports both. Later, a case outside the sets
    /// (`old_handler_7` and `new_handler_7` both calling `write_all`) widened "names nothing
    /// the other names" to "each names something the other does not"; the sets' figures did
    /// not move.
    pub fn similarity(&self, other: &FindingTerms) -> f64 {
        let total = self.words.len() + self.ids.len() + other.words.len() + other.ids.len();
        if total == 0 {
            return 0.0;
        }
        let ours = self
            .ids
            .iter()
            .filter(|a| other.ids.iter().any(|b| same_entity(a, b)))
            .count();
        let theirs = other
            .ids
            .iter()
            .filter(|b| self.ids.iter().any(|a| same_entity(a, b)))
            .count();
        // Each names something the other does not: different things.
        if ours < self.ids.len() && theirs < other.ids.len() {
            return 0.0;
        }
        let shared_words = sorted_intersection(&self.words, &other.words);
        2.0 * (shared_words + ours.min(theirs)) as f64 / total as f64
    }
}

/// The identifier a word of `parts` names, if it names one (see [`FindingTerms`]); `dotfile`:
/// the word follows a `.`, so it names a dotfile (`.env.local`), never a host.
fn identifier(word: &str, parts: &[&str], dotfile: bool) -> Option<String> {
    if parts.len() >= 3 && word.contains('.') && parts.iter().all(|p| is_number(p)) {
        return Some(format!("={}", parts.join(".")));
    }
    // An advisory id: CVE-2021-44228, GHSA-jfh8-5qgp-2hr2, RUSTSEC-2021-0001.
    if parts.len() >= 3
        && word.contains('-')
        && !is_code(word)
        && parts
            .iter()
            .filter(|p| p.bytes().any(|b| b.is_ascii_digit()))
            .count()
            >= 2
    {
        return Some(
            parts
                .iter()
                .map(|p| p.to_lowercase())
                .collect::<Vec<_>>()
                .join("/"),
        );
    }
    if parts.len() < 2 || !is_code(word) {
        return None;
    }
    // A number after `:` is a line or a column (`ingest.rs:42:7`), not part of the name;
    // after a host's name it is a port (`cache.internal:6379`), which is.
    let is_position = |p: &str| {
        is_number(p)
            && before(word, p)
                .strip_suffix(':')
                .is_some_and(|head| dotfile || !names_a_host(head))
    };
    let named: Vec<String> = parts
        .iter()
        .filter(|p| !is_position(p))
        .map(|p| p.to_lowercase())
        .collect();
    (named.len() > 1 && named.iter().any(|p| p.chars().count() > 1)).then(|| named.join("/"))
}

/// What `word` holds before `part`, a slice of it.
fn before<'a>(word: &'a str, part: &str) -> &'a str {
    let at = (part.as_ptr() as usize).saturating_sub(word.as_ptr() as usize);
    word.get(..at).unwrap_or_default()
}

fn is_number(term: &str) -> bool {
    term.bytes().all(|b| b.is_ascii_digit())
}

/// A word of several parts names code when a code connector joins them, or camelCase humps
/// with no hyphen (`retryCount`); hyphens alone join English words (`user-supplied`).
fn is_code(word: &str) -> bool {
    word.contains(['_', '.', '/', ':', '\\']) || !word.contains('-')
}

/// Whether two identifiers (parts joined by `/`) can name the same thing: equal, or the
/// shorter the trailing parts of the longer.
fn same_entity(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long == short
        || long
            .strip_suffix(short)
            .is_some_and(|head| head.ends_with('/'))
}

fn sorted_intersection(a: &[String], b: &[String]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// One finding: as given (check, severity, summary), its fingerprint and its terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub check: String,
    /// As given; empty when the finding has none.
    pub severity: String,
    pub summary: String,
    pub fingerprint: Fingerprint,
    pub terms: FindingTerms,
}

impl Finding {
    pub fn new(check: &str, severity: &str, summary: &str) -> Finding {
        Finding {
            check: check.trim().to_owned(),
            severity: severity.to_owned(),
            summary: cut(summary.trim(), MAX_SUMMARY_BYTES).to_owned(),
            fingerprint: Fingerprint::of(check, summary),
            terms: FindingTerms::of(summary),
        }
    }

    /// The check as compared between findings.
    pub fn check_key(&self) -> String {
        normalise_check(&self.check)
    }
}

/// The findings of a verdict, read leniently: a verdict is the auditor's document and is stored
/// whole whatever its `findings` hold, so entries that are not objects with a non-blank string
/// `check` (at most [`MAX_CHECK_BYTES`]) and a non-blank string `summary` are not remembered,
/// and neither is a `findings` that is not an array. A `severity` that is a string of at most
/// [`MAX_SEVERITY_BYTES`] is kept trimmed and in ASCII lowercase (`" BLOCK"` is `block`, as
/// requests' findings are read too). Deduplicated by fingerprint (the first wording kept, with the
/// gravest severity given), at most [`MAX_FINDINGS_PER_VERDICT`].
///
/// `None` when the verdict carries no `findings` array, or one of entries none of which reads
/// as a finding (an auditor whose output changed shape): it says nothing of its findings, where
/// `"findings": []` says the audit found none (the memory then leaves the PR's open findings
/// open, where an empty list resolves them).
pub fn findings_of(verdict: &Map<String, Value>) -> Option<Vec<Finding>> {
    let Some(Value::Array(entries)) = verdict.get("findings") else {
        return None;
    };
    let found = findings_of_entries(entries);
    (entries.is_empty() || !found.is_empty()).then_some(found)
}

fn findings_of_entries(entries: &[Value]) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    // Where in `out` each fingerprint is.
    let mut seen = BTreeMap::new();
    for entry in entries {
        if out.len() == MAX_FINDINGS_PER_VERDICT {
            break;
        }
        let Value::Object(o) = entry else { continue };
        let (Some(check), Some(summary)) = (
            o.get("check").and_then(Value::as_str),
            o.get("summary").and_then(Value::as_str),
        ) else {
            continue;
        };
        if check.trim().is_empty() || check.len() > MAX_CHECK_BYTES || summary.trim().is_empty() {
            continue;
        }
        let severity = o
            .get("severity")
            .and_then(Value::as_str)
            .map(severity_remembered)
            .unwrap_or_default();
        let finding = Finding::new(check, &severity, summary);
        match seen.entry(finding.fingerprint) {
            Entry::Vacant(slot) => {
                slot.insert(out.len());
                out.push(finding);
            }
            // Raised twice in one audit: once, with the graver severity.
            Entry::Occupied(at) => {
                let kept = &mut out[*at.get()];
                if severity_rank(&finding.severity) > severity_rank(&kept.severity) {
                    kept.severity = finding.severity;
                }
            }
        }
    }
    out
}

/// A severity as it is remembered: trimmed, in ASCII lowercase; none (empty) when longer than
/// [`MAX_SEVERITY_BYTES`].
fn severity_remembered(given: &str) -> String {
    if given.len() > MAX_SEVERITY_BYTES {
        return String::new();
    }
    given.trim().to_ascii_lowercase()
}

/// How grave a severity is: block, then warn, then info, then anything else.
pub fn severity_rank(severity: &str) -> u8 {
    match severity {
        "block" => 3,
        "warn" => 2,
        "info" => 1,
        _ => 0,
    }
}

/// The findings of a stored verdict's JSON (see [`findings_of`]); `None` when it does not
/// parse. Read from the whole object, as the verdict was when it was stored (a key given twice
/// counts as its last), so that a rebuild of the memory finds what the write path found.
pub fn stored_findings(raw_json: &str) -> Option<Vec<Finding>> {
    findings_of(&serde_json::from_str::<Map<String, Value>>(raw_json).ok()?)
}

/// A finding given in a request body (`POST /prs/{n}/findings/check`, a dismissal): an object
/// with `check` (1 to [`MAX_CHECK_BYTES`] bytes, not blank), `summary` (not blank) and
/// optionally `severity` (a string), each of the types a verdict's findings have. What a
/// verdict's finding would be remembered as, it is read as ([`findings_of`]): a summary past
/// [`MAX_SUMMARY_BYTES`] cut to it (its fingerprint is of the whole), a severity trimmed and in
/// ASCII lowercase (`BLOCK` is `block`; one past [`MAX_SEVERITY_BYTES`] is none), so that the
/// auditor may ask about the findings it is about to post, whatever they hold. `field` names
/// it in errors (`findings[3]`).
pub fn request_finding(value: &Value, field: &str) -> Result<Finding, FieldError> {
    let Value::Object(o) = value else {
        return Err(FieldError::expected(
            field,
            "an object with check and summary",
            value,
        ));
    };
    let text = |name: &str, max: usize| -> Result<&str, FieldError> {
        let path = format!("{field}.{name}");
        match o.get(name) {
            None | Some(Value::Null) => Err(FieldError::missing(&path)),
            Some(Value::String(s)) if s.trim().is_empty() => Err(FieldError::new(
                &path,
                format!("{path} must not be blank, got {s:?}"),
            )),
            Some(Value::String(s)) if s.len() > max => Err(FieldError::new(
                &path,
                format!("{path} must be at most {max} bytes, got {}", s.len()),
            )),
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(FieldError::expected(&path, "a string", other)),
        }
    };
    let check = text("check", MAX_CHECK_BYTES)?;
    // The body's limit bounds it; what is kept is cut as a verdict's is.
    let summary = text("summary", usize::MAX)?;
    let severity = match o.get("severity") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => severity_remembered(s),
        Some(other) => {
            return Err(FieldError::expected(
                &format!("{field}.severity"),
                "a string",
                other,
            ));
        }
    };
    Ok(Finding::new(check, &severity, summary))
}

/// What one incoming finding matched among a PR's remembered findings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Match {
    /// Its fingerprint is one the memory knows: the remembered finding `canonical`.
    Exact(u64),
    /// A rewording of the remembered finding `canonical`, with its similarity.
    Similar(u64, f64),
    /// Nothing remembered matches.
    New,
}

impl Match {
    pub fn canonical(&self) -> Option<u64> {
        match *self {
            Match::Exact(c) | Match::Similar(c, _) => Some(c),
            Match::New => None,
        }
    }
}

/// A remembered finding the similar tier may match: its key (canonical fingerprint), its
/// normalised check and the terms of its wordings (a match with any of them counts).
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub key: u64,
    pub check_key: String,
    pub wordings: Vec<&'a FindingTerms>,
    /// Its latest wording's text (the first's is not kept): a finding that differs from it by
    /// a pair of opposite words is not it.
    pub latest: &'a str,
}

/// Matches the findings of one audit (or one check request) against a PR's memory. `exact[i]`
/// is the remembered finding that incoming finding `i`'s fingerprint names, if any. The
/// others are matched to `candidates` of the same check by similarity at least
/// [`SIMILAR_THRESHOLD`], best pairs first (ties: the earlier incoming finding, then the lower
/// key), each remembered finding matched by at most one incoming finding of the audit (two
/// findings raised together are two findings), and none already matched exactly. A finding
/// that differs from a candidate's latest wording by a pair of opposite words, both or neither
/// negated (`rate limiting is enabled` and `... disabled`), is not a rewording of it, however
/// much else the two share; with a negation on one side only the two may say the same thing
/// (`is unvalidated`, `is not validated`), and the similarity decides.
pub fn assign(
    incoming: &[&Finding],
    exact: &[Option<u64>],
    candidates: &[Candidate<'_>],
) -> Vec<Match> {
    let mut out: Vec<Match> = exact
        .iter()
        .map(|e| e.map_or(Match::New, Match::Exact))
        .collect();
    let mut taken: BTreeSet<u64> = exact.iter().flatten().copied().collect();
    let mut pairs = Vec::new();
    for (i, finding) in incoming.iter().enumerate() {
        if out[i] != Match::New || finding.terms.is_empty() {
            continue;
        }
        let check = finding.check_key();
        // Read only for a candidate that scores.
        let mut polarity = None;
        for (j, candidate) in candidates.iter().enumerate() {
            if candidate.check_key != check || taken.contains(&candidate.key) {
                continue;
            }
            let score = candidate
                .wordings
                .iter()
                .map(|w| finding.terms.similarity(w))
                .fold(0.0, f64::max);
            if score >= SIMILAR_THRESHOLD
                && !flips_a_word(
                    polarity.get_or_insert_with(|| Polarity::of(&finding.summary)),
                    &Polarity::of(candidate.latest),
                )
            {
                pairs.push((score, i, candidate.key, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    for (score, i, key, _) in pairs {
        if out[i] == Match::New && !taken.contains(&key) {
            out[i] = Match::Similar(key, text::round_score(score));
            taken.insert(key);
        }
    }
    out
}

/// Whether two wordings differ by a pair of opposite words and agree in negation: they say
/// opposite things (see [`assign`]).
fn flips_a_word(a: &Polarity, b: &Polarity) -> bool {
    a.negated() == b.negated() && a.stems().opposes(b.stems())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(a: &str, b: &str) -> f64 {
        text::round_score(FindingTerms::of(a).similarity(&FindingTerms::of(b)))
    }

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

    /// Rules version 2: positions and measurements move between pushes; every other number,
    /// and an advisory id, names something. At version 1 every number was `#`, so these pairs
    /// were one finding and a confirmed dismissal of one silenced the other (a review).
    #[test]
    fn numbers_that_name_things_keep_findings_apart_and_positions_do_not() {
        // (earlier, later, the same fingerprint, similar enough to be a rewording)
        let cases = [
            (
                "log4j-core 2.14.1 is vulnerable (CVE-2021-44228)",
                "log4j-core 2.14.1 is vulnerable (CVE-2021-45046)",
                false,
                false,
            ),
            (
                "port 22 is exposed to the internet",
                "port 5432 is exposed to the internet",
                false,
                false,
            ),
            (
                "the handler answers 500 on a bad body",
                "the handler answers 400 on a bad body",
                false,
                false,
            ),
            ("uses lodash 4.17.15", "uses lodash 4.17.21", false, false),
            (
                "unwrap in parse_body at ingest.rs:42",
                "unwrap in parse_body at ingest.rs:57",
                true,
                true,
            ),
            (
                "unwrap in parse_body on line 42",
                "unwrap in parse_body on line #57",
                true,
                true,
            ),
            (
                "dead code at lines 42-57 of ingest.rs",
                "dead code at lines 60-75 of ingest.rs",
                true,
                true,
            ),
            ("see src/ingest.rs#L42", "see src/ingest.rs#L57", true, true),
            // Measurements: another fingerprint, the same finding by the similar tier.
            (
                "timeout of 30s hard-coded in client.rs",
                "timeout of 45s hard-coded in client.rs",
                false,
                true,
            ),
            (
                "collect_rows grows its Vec (10k rows)",
                "collect_rows grows its Vec (50k rows)",
                false,
                true,
            ),
            (
                "the upload retries after 1.5s in client.rs",
                "the upload retries after 2.5s in client.rs",
                false,
                true,
            ),
            (
                "the cache in store.rs can grow to 1.5GB",
                "the cache in store.rs can grow to 2.5GB",
                false,
                true,
            ),
            (
                "branch coverage of findings.rs is 72%",
                "branch coverage of findings.rs is 68%",
                false,
                true,
            ),
            // A number in a method's call is an argument, not a position (at cd31122
            // `server.listen(3000)` and `(9229)` were one finding: a review's).
            (
                "server.listen(3000) binds to all interfaces",
                "server.listen(9229) binds to all interfaces",
                false,
                false,
            ),
            (
                "the handler answers res.status(500) on a missing body",
                "the handler answers res.status(404) on a missing body",
                false,
                false,
            ),
            (
                "Math.pow(2, 31) overflows the counter",
                "Math.pow(2, 63) overflows the counter",
                false,
                false,
            ),
            (
                "null dereference at Program.cs(42,7)",
                "null dereference at Program.cs(57,9)",
                true,
                true,
            ),
            (
                "warning MSB3277 in App.csproj(12,5) about conflicting versions",
                "warning MSB3277 in App.csproj(19,5) about conflicting versions",
                true,
                true,
            ),
            // Positions in other notations.
            (
                "unwrap in parse_body at ingest.rs(42,7)",
                "unwrap in parse_body at ingest.rs(57,9)",
                true,
                true,
            ),
            (
                "dead code in src/ingest.rs#L42-L57",
                "dead code in src/ingest.rs#L60-L75",
                true,
                true,
            ),
            // After a `:` that follows no file, a number names something.
            (
                "docker-compose.yml publishes postgres on 0.0.0.0:5432 to every interface",
                "docker-compose.yml publishes postgres on 0.0.0.0:22 to every interface",
                false,
                false,
            ),
            (
                "the admin UI listens on localhost:8080 without auth",
                "the admin UI listens on localhost:9090 without auth",
                false,
                false,
            ),
            // A port after a host's name (at 47acc62 the host was read as a file's name).
            (
                "redis at cache.internal:6379 accepts connections without auth",
                "redis at cache.internal:6380 accepts connections without auth",
                false,
                false,
            ),
            (
                "postgres at db.example.com:5432 takes the default password",
                "postgres at db.example.com:6543 takes the default password",
                false,
                false,
            ),
            (
                "the client calls API.GitHub.COM:443 without a timeout",
                "the client calls API.GitHub.COM:8443 without a timeout",
                false,
                false,
            ),
            // A file named like no host still has lines, and so does a dotfile whatever its
            // extension (`.env.local` is no host).
            (
                "Dockerfile:3 runs the container as root",
                "Dockerfile:9 runs the container as root",
                true,
                true,
            ),
            (
                "docker/Dockerfile:3 runs the container as root",
                "docker/Dockerfile:9 runs the container as root",
                true,
                true,
            ),
            (
                "src/Makefile:3 ignores the exit status of the test target",
                "src/Makefile:12 ignores the exit status of the test target",
                true,
                true,
            ),
            (
                "Dockerfile.dev:12 runs the app as root",
                "Dockerfile.dev:14 runs the app as root",
                true,
                true,
            ),
            (
                ".env.local:3 commits the database password",
                ".env.local:5 commits the database password",
                true,
                true,
            ),
            (
                "config/.env.production.local:3 commits the database password",
                "config/.env.production.local:9 commits the database password",
                true,
                true,
            ),
            (
                "the Dockerfile pins node:16, which is end of life",
                "the Dockerfile pins node:18, which is end of life",
                false,
                false,
            ),
            // Digits with letters that are no unit, and advisory ids, name things.
            (
                "the proxy turns 5xx answers into 200",
                "the proxy turns 4xx answers into 200",
                false,
                false,
            ),
            (
                "the build targets 32bit ARM only",
                "the build targets 64bit ARM only",
                false,
                false,
            ),
            (
                "vulnerable per GHSA-jfh8-5qgp-2hr2",
                "vulnerable per GHSA-jfh8-7qgp-9hr2",
                false,
                false,
            ),
            (
                "the retry waits 30 seconds in client.rs",
                "the retry waits 45 seconds in client.rs",
                false,
                true,
            ),
            (
                "3 tests are skipped in the ingest suite",
                "4 tests are skipped in the ingest suite",
                false,
                false,
            ),
            (
                "panic in caf\u{e9}_handler",
                "panic in cafe\u{301}_handler",
                true,
                true,
            ),
        ];
        for (earlier, later, same, similar) in cases {
            let (a, b) = (Fingerprint::of("c", earlier), Fingerprint::of("c", later));
            assert_eq!(
                a == b,
                same,
                "{earlier:?} / {later:?}: {} / {}",
                normalise_summary(earlier),
                normalise_summary(later)
            );
            let score = sim(earlier, later);
            assert_eq!(
                score >= SIMILAR_THRESHOLD,
                similar,
                "{earlier:?} / {later:?}: {score}"
            );
        }
        assert!(
            SOURCE_EXTENSIONS.windows(2).all(|w| w[0] < w[1]),
            "sorted for binary search"
        );
        assert_eq!(
            FindingTerms::of("log4j-core (CVE-2021-44228) on port 8080 after 30 seconds").ids,
            ["#8080", "cve/2021/44228"]
        );
    }

    /// What a wording costs is linear in its length: a verdict's finding may hold a summary
    /// as long as the body (1 MiB), and its fingerprint and terms are of the whole. At 9f582ca
    /// each number read the summary back to its start (`line 1 1 1 ...` of 900 KB took 111 s
    /// of a release build's CPU in a `POST /verdicts`, and timed out).
    #[test]
    fn a_long_wording_of_many_numbers_costs_its_length() {
        for summary in [
            "line ".to_owned() + &"1 ".repeat(100_000),
            "(1".repeat(100_000),
        ] {
            let start = std::time::Instant::now();
            let finding = Finding::new("c", "warn", &summary);
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "{:?} for {} bytes",
                start.elapsed(),
                summary.len()
            );
            assert!(normalise_summary(&summary).len() <= summary.len());
            assert!(finding.terms.ids.len() + finding.terms.words.len() <= MAX_TERMS_PER_TEXT);
        }
    }

    #[test]
    fn terms_leave_positions_out_and_count_identifiers_once() {
        let t = FindingTerms::of(
            "`src/http/ingest.rs:42` unwraps user-supplied input from parseBody (serde 1.0.40)",
        );
        assert_eq!(t.ids, ["=1.0.40", "parse/body", "src/http/ingest/rs"]);
        assert_eq!(t.words, ["input", "serd", "suppli", "unwrap", "user"]);
        // Hyphenated prose and abbreviations like e.g. are not identifiers.
        assert!(
            FindingTerms::of("user-supplied input, e.g. a header")
                .ids
                .is_empty()
        );
    }

    #[test]
    fn rewordings_score_high_and_other_findings_low() {
        // A moved line and a requoted identifier: the same terms.
        assert_eq!(
            sim(
                "unwrap on 'input' in parse_body (ingest.rs:42)",
                "unwrap on `input` in parse_body (ingest.rs:57)"
            ),
            1.0
        );
        let reworded = sim(
            "Missing error handling for a failed S3 upload in upload.ts:88",
            "upload.ts:91 does not handle a failed S3 upload",
        );
        assert!(reworded >= SIMILAR_THRESHOLD, "{reworded}");
        // The same defect elsewhere: what they name cannot be the same thing.
        assert_eq!(
            sim(
                "Missing error handling for a failed S3 upload in upload.ts:88",
                "Missing error handling for a failed email send in mailer.ts:40",
            ),
            0.0
        );
        assert_eq!(
            sim(
                "lodash 4.17.15 has a known prototype pollution vulnerability",
                "minimist 1.2.0 has a known prototype pollution vulnerability"
            ),
            0.0
        );
        // Each names a handler the other does not: the shared callee does not make them one.
        assert_eq!(
            sim(
                "old_handler_7 ignores the error that write_all returns",
                "function new_handler_7 ignores the error of write_all"
            ),
            0.0
        );
        // Naming more (or less) is still a rewording.
        let more = sim(
            "parse_body unwraps user input and can panic",
            "unwrap() on user input in parse_body (src/http/ingest.rs:42) can panic",
        );
        assert!(more >= SIMILAR_THRESHOLD, "{more}");
        // A shortened path is the same file.
        let shortened = sim(
            "SQL built by string concatenation in src/db/users.ts",
            "users.ts builds SQL by string concatenation",
        );
        assert!(shortened >= SIMILAR_THRESHOLD, "{shortened}");
        // The same file, another defect.
        let other = sim(
            "users.ts builds SQL by string concatenation",
            "users.ts logs the password in plain text",
        );
        assert!(other < SIMILAR_THRESHOLD, "{other}");
        assert_eq!(sim("", "anything"), 0.0);
    }

    #[test]
    fn assignment_prefers_exact_then_best_and_matches_each_remembered_finding_once() {
        let f = |s: &str| Finding::new("static", "warn", s);
        let remembered = [
            f("unwrap on user input in parse_body can panic"),
            f("parse_body unwraps the content-length header"),
        ];
        let candidates: Vec<Candidate<'_>> = remembered
            .iter()
            .enumerate()
            .map(|(i, r)| Candidate {
                key: i as u64 + 1,
                check_key: r.check_key(),
                wordings: vec![&r.terms],
                latest: &r.summary,
            })
            .collect();
        let incoming = [
            f("parse_body can panic: it unwraps user input"),
            f("parse_body can panic: it unwraps user input!"),
            Finding::new(
                "security",
                "warn",
                "parse_body unwraps the content-length header",
            ),
            f("parse_body unwraps the content-length header"),
        ];
        let refs: Vec<&Finding> = incoming.iter().collect();
        let out = assign(&refs, &[None, None, None, Some(2)], &candidates);
        assert!(
            matches!(out[0], Match::Similar(1, s) if s >= SIMILAR_THRESHOLD),
            "{out:?}"
        );
        // Its twin (one fingerprint) was deduplicated away by `findings_of` in a verdict;
        // given twice here, the second finds finding 1 taken.
        assert_eq!(out[1], Match::New);
        // Another check never matches.
        assert_eq!(out[2], Match::New);
        assert_eq!(out[3], Match::Exact(2));
    }

    /// A verdict is stored whole whatever it holds; what the memory takes of it is bounded.
    #[test]
    fn a_verdict_s_findings_are_bounded_in_number_and_size() {
        let entries: Vec<Value> = (0..300)
            .map(|i| serde_json::json!({"check": "static", "summary": format!("finding {i} of write_{i}")}))
            .chain([serde_json::json!({"check": "static", "summary": "é".repeat(10_000)})])
            .collect();
        let mut v = Map::new();
        v.insert("findings".into(), Value::Array(entries));
        let found = findings_of(&v).unwrap();
        assert_eq!(found.len(), MAX_FINDINGS_PER_VERDICT);
        let long = Finding::new("static", "", &"é".repeat(10_000));
        assert_eq!(long.summary.len(), MAX_SUMMARY_BYTES);
        assert_eq!(
            long.fingerprint,
            Fingerprint::of("static", &"é".repeat(10_000))
        );
        let many_words = format!("{} write_all", "word ".repeat(10_000));
        let terms = FindingTerms::of(&many_words);
        assert!(terms.words.len() + terms.ids.len() <= MAX_TERMS_PER_TEXT);
    }

    /// One finding given twice in an audit (one fingerprint) is remembered once, in its first
    /// wording, with the gravest severity either gave, in whichever order.
    #[test]
    fn a_finding_given_twice_in_an_audit_keeps_the_graver_severity() {
        let cases = [
            (["warn", "block"], "block"),
            (["block", "warn"], "block"),
            (["", "info"], "info"),
            (["info", "high"], "info"),
            (["WARN", " Block "], "block"),
        ];
        for (given, kept) in cases {
            let v: Map<String, Value> = serde_json::from_value(serde_json::json!({"findings": [
                {"check": "security", "severity": given[0], "summary": "SQL built from input"},
                {"check": "security", "severity": given[1], "summary": "SQL built from input."},
            ]}))
            .unwrap();
            let found = findings_of(&v).unwrap();
            let got: Vec<(&str, &str)> = found
                .iter()
                .map(|f| (f.summary.as_str(), f.severity.as_str()))
                .collect();
            assert_eq!(got, [("SQL built from input", kept)], "{given:?}");
        }
    }

    #[test]
    fn verdict_findings_are_read_leniently_and_request_findings_strictly() {
        let v: Map<String, Value> = serde_json::from_str(
            r#"{"findings":[{"check":"static","severity":"info","summary":"diff touches docs/PLAN.md"},
                3, {"check":"static"}, {"check":" ","summary":"x"},
                {"check":"static","severity":"info","summary":"Diff touches docs/PLAN.md."},
                {"check":"tests","severity":7,"summary":"no test for the retry path"}]}"#,
        )
        .unwrap();
        let found = findings_of(&v).unwrap();
        let summaries: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.summary.as_str(), f.severity.as_str()))
            .collect();
        assert_eq!(
            summaries,
            [
                ("diff touches docs/PLAN.md", "info"),
                ("no test for the retry path", "")
            ]
        );
        // Findings that are not an array, or none given, say nothing; an empty list says the
        // audit found none.
        assert_eq!(stored_findings(r#"{"findings":"none"}"#), None);
        assert_eq!(stored_findings(r#"{"overall":"block"}"#), None);
        assert_eq!(stored_findings(r#"{"findings":null}"#), None);
        assert_eq!(stored_findings(r#"{"findings":[]}"#), Some(Vec::new()));
        // An array of which nothing reads as a finding says nothing either.
        assert_eq!(stored_findings(r#"{"findings":[3]}"#), None);
        assert_eq!(
            stored_findings(r#"{"findings":[{"rule":"x","message":"y"}]}"#),
            None
        );
        // A key given twice counts as its last, as when the verdict was parsed.
        let twice = r#"{"findings":[{"check":"a","summary":"first"}],"findings":[{"check":"b","summary":"last"}]}"#;
        let parsed: Map<String, Value> = serde_json::from_str(twice).unwrap();
        assert_eq!(stored_findings(twice), findings_of(&parsed));
        assert_eq!(stored_findings(twice).unwrap()[0].summary, "last");
        assert_eq!(stored_findings("not json"), None);

        let err = |v: Value| request_finding(&v, "findings[2]").unwrap_err();
        let e = err(serde_json::json!({"check": "static"}));
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("findings[2].summary", "findings[2].summary is required")
        );
        let e = err(serde_json::json!({"check": "static", "summary": "x", "severity": 3}));
        assert_eq!(e.message, "findings[2].severity must be a string, got 3");
        // As a verdict's finding is remembered.
        let read = |v: Value| request_finding(&v, "findings[2]").unwrap();
        let given = serde_json::json!({"check": "static", "summary": "x", "severity": " BLOCK "});
        assert_eq!(read(given).severity, "block");
        let given = serde_json::json!({"check": "static", "summary": "x", "severity": "high"});
        assert_eq!(read(given).severity, "high");
        let long = "é".repeat(3_000);
        let given = serde_json::json!({"check": "static", "summary": long});
        let finding = read(given);
        assert_eq!(finding.summary.len(), MAX_SUMMARY_BYTES);
        assert_eq!(finding.fingerprint, Fingerprint::of("static", &long));
        let e = err(serde_json::json!({"check": "", "summary": "x"}));
        assert_eq!(e.message, "findings[2].check must not be blank, got \"\"");
        let e = err(serde_json::json!("x"));
        assert_eq!(e.field, "findings[2]");
    }
}
