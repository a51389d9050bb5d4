//! The lines of a legacy JSONL file: reading them (exact bytes, 1-based numbers), telling a
//! malformed line (invalid UTF-8, bad JSON, not an object) from a kept one, and the import key
//! that makes importing the same line twice a no-op.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

/// First byte of an import key: which legacy file the line came from.
pub const OUTCOMES_TAG: u8 = b'o';
pub const OPS_TAG: u8 = b'e';

const READ_BUFFER: usize = 1 << 20;

/// One line: its number, its bytes without the `\n`, whether it had one (only the last line of a
/// file may lack it), and how many bytes it took in the file.
pub(super) struct Line<'a> {
    pub number: u64,
    /// Empty for a line over the reader's limit ([`Line::too_long`]).
    pub bytes: &'a [u8],
    pub complete: bool,
    pub consumed: u64,
    /// Over the limit: the line's length, and the limit. Its bytes were read past, not kept.
    pub over_limit: Option<(u64, usize)>,
    /// NUL bytes the line started with, left out of `bytes`: a file's tail a crash left
    /// zero-filled, which a writer then appended after (the row that follows is kept).
    pub zero_filled: usize,
}

impl Line<'_> {
    /// A line holding nothing but ASCII whitespace: not a row, skipped without complaint.
    pub fn is_blank(&self) -> bool {
        self.over_limit.is_none() && self.bytes.iter().all(u8::is_ascii_whitespace)
    }

    /// Why the line is not imported whatever it holds: it is longer than the limit.
    pub fn too_long(&self) -> Option<Malformed> {
        self.over_limit
            .map(|(bytes, max)| Malformed::TooLong { bytes, max })
    }
}

/// Reads the first `len` bytes of a file line by line. Both passes of an import read exactly
/// the length measured at its start, so a legacy writer appending meanwhile cannot make them
/// disagree; its new lines are for the next import. A line longer than `max_line` bytes is
/// read past without being held (memory stays bounded by the limit, whatever the file holds).
pub(super) struct LineReader {
    reader: BufReader<io::Take<File>>,
    buf: Vec<u8>,
    number: u64,
    max_line: usize,
}

impl LineReader {
    /// Opens `path` without following a link at its last component.
    pub fn open(path: &Path, len: u64, max_line: usize) -> io::Result<LineReader> {
        let file = crate::fsutil::open_read(path)?;
        Ok(LineReader {
            reader: BufReader::with_capacity(READ_BUFFER, file.take(len)),
            buf: Vec::with_capacity(4096),
            number: 0,
            max_line,
        })
    }

    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let mut consumed = 0;
        let mut complete = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            let (n, found) = match memchr::memchr(b'\n', available) {
                Some(at) => (at + 1, true),
                None => (available.len(), false),
            };
            // Held up to one byte past the limit (with the newline): enough to tell.
            let room = (self.max_line + 1).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&available[..n.min(room)]);
            self.reader.consume(n);
            consumed += n as u64;
            if found {
                complete = true;
                break;
            }
        }
        if consumed == 0 {
            return Ok(None);
        }
        self.number += 1;
        let len = if complete { consumed - 1 } else { consumed };
        let over_limit = (len > self.max_line as u64).then_some((len, self.max_line));
        let end = if over_limit.is_some() {
            0
        } else {
            len as usize
        };
        let (zero_filled, bytes) = after_zero_fill(&self.buf[..end]);
        Ok(Some(Line {
            number: self.number,
            bytes,
            complete,
            consumed,
            over_limit,
            zero_filled,
        }))
    }
}

/// The NUL bytes `line` starts with (a file's tail a crash left zero-filled, which a writer
/// then appended after), and the row after them. Only before something: a line of nothing but
/// NULs is the zero-filled tail itself, kept as it is (0 of them).
pub(crate) fn after_zero_fill(line: &[u8]) -> (usize, &[u8]) {
    match line.iter().take_while(|&&b| b == 0).count() {
        zeros if zeros < line.len() => (zeros, &line[zeros..]),
        _ => (0, line),
    }
}

/// Why a line is not imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("invalid UTF-8 (at byte {offset} of the line)")]
    InvalidUtf8 { offset: usize },
    #[error("bad JSON: {0}")]
    BadJson(String),
    #[error("not a JSON object (got {0})")]
    NotAnObject(&'static str),
    #[error(
        "{bytes} bytes long, over the {max}-byte limit of a line: not imported (--max-line \
         raises it)"
    )]
    TooLong { bytes: u64, max: usize },
}

/// The line as text and as a JSON object.
pub fn parse_object_line(bytes: &[u8]) -> Result<(&str, Map<String, Value>), Malformed> {
    let text = as_text(bytes)?;
    refuse_byte_order_mark(text)?;
    // The line is kept as the legacy writer wrote it (its export is the same bytes); a lone
    // surrogate in it, which JavaScript wrote, is read as U+FFFD.
    match crate::jsjson::parse_js::<Value>(text) {
        Ok(Value::Object(obj)) => Ok((text, obj)),
        Ok(other) => Err(Malformed::NotAnObject(crate::model::json_type(&other))),
        Err(e) => Err(Malformed::BadJson(e.to_string())),
    }
}

/// A byte-order mark (an editor's, at the start of a file) is not JSON, and a row kept with one
/// would be served inside JSON answers: refused, saying so rather than where the parse failed.
fn refuse_byte_order_mark(text: &str) -> Result<(), Malformed> {
    if text.starts_with('\u{feff}') {
        return Err(Malformed::BadJson(
            "the line starts with a byte-order mark (U+FEFF), which JSON does not allow: \
             save the file as UTF-8 without one"
                .into(),
        ));
    }
    Ok(())
}

/// What the import reads out of an outcome row: its `sig_hash` and `kind` when they are
/// strings (what the store keeps of the row), and for an audit row what identifies its verdict:
/// `pr_number` when it is a number, `head_sha` and `audited_at` when they are strings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RowHead {
    pub sig_hash: Option<String>,
    pub kind: Option<String>,
    pub pr_number: Option<Number>,
    pub head_sha: Option<String>,
    pub audited_at: Option<String>,
    /// The row's `repo`, when it is a string.
    pub repo: Option<String>,
}

/// The line as text and its [`RowHead`], validating the whole line as a JSON object without
/// building a tree of it (most rows are scenario rows, of which only two fields are needed;
/// an audit row's verdict made from its fields is the one case that needs the whole tree).
/// A repeated key counts with its last value, as in `JSON.parse`.
pub fn parse_row(bytes: &[u8]) -> Result<(&str, RowHead), Malformed> {
    let text = as_text(bytes)?;
    refuse_byte_order_mark(text)?;
    let starts_object = text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{');
    if !starts_object {
        // Not an object: say what it is (or why it is not JSON at all).
        return Err(parse_object_line(bytes)
            .err()
            .unwrap_or(Malformed::NotAnObject("an object")));
    }
    crate::jsjson::parse_js::<RowHead>(text)
        .map(|head| (text, head))
        .map_err(|e| Malformed::BadJson(e.to_string()))
}

impl<'de> Deserialize<'de> for RowHead {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RowHead, D::Error> {
        deserializer.deserialize_map(RowHeadVisitor)
    }
}

struct RowHeadVisitor;

impl<'de> Visitor<'de> for RowHeadVisitor {
    type Value = RowHead;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RowHead, A::Error> {
        let mut head = RowHead::default();
        while let Some(key) = map.next_key::<RowKey>()? {
            let slot = match key {
                RowKey::SigHash => &mut head.sig_hash,
                RowKey::Kind => &mut head.kind,
                RowKey::HeadSha => &mut head.head_sha,
                RowKey::AuditedAt => &mut head.audited_at,
                RowKey::Repo => &mut head.repo,
                RowKey::PrNumber => {
                    head.pr_number = match map.next_value::<Value>()? {
                        Value::Number(n) => Some(n),
                        _ => None,
                    };
                    continue;
                }
                RowKey::Other => {
                    map.next_value::<Skip>()?;
                    continue;
                }
            };
            *slot = match map.next_value::<Value>()? {
                Value::String(s) => Some(s),
                _ => None,
            };
        }
        Ok(head)
    }
}

/// A value the row parse does not keep, validated as the full parse would: unlike
/// `IgnoredAny`, numbers are read, so one out of `f64`'s range (`1e400`) is refused by both.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Skip, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<IgnoredAny, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// A key of an outcome row, told apart without allocating.
enum RowKey {
    SigHash,
    Kind,
    PrNumber,
    HeadSha,
    AuditedAt,
    Repo,
    Other,
}

impl<'de> Deserialize<'de> for RowKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RowKey, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = RowKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<RowKey, E> {
                Ok(match key {
                    "sig_hash" => RowKey::SigHash,
                    "kind" => RowKey::Kind,
                    "pr_number" => RowKey::PrNumber,
                    "head_sha" => RowKey::HeadSha,
                    "audited_at" => RowKey::AuditedAt,
                    "repo" => RowKey::Repo,
                    _ => RowKey::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

pub(super) fn as_text(bytes: &[u8]) -> Result<&str, Malformed> {
    std::str::from_utf8(bytes).map_err(|e| Malformed::InvalidUtf8 {
        offset: e.valid_up_to(),
    })
}

/// A malformed line's message; the last line of a file without its newline is most likely a
/// row a legacy writer was still appending, which the message says.
pub(super) fn describe(line: &Line<'_>, why: &Malformed) -> String {
    if line.complete {
        why.to_string()
    } else {
        format!("{why} (the last line has no newline: a row still being written?)")
    }
}

/// Import keys of one file's lines: the file tag, the first 16 bytes of SHA-256 of the line,
/// and the occurrence number of that exact line within the file (u32 big-endian). Importing the
/// same file again yields the same keys, so nothing is stored twice; a file that grew yields
/// new keys for its new lines only; a line legitimately repeated keeps every copy. (Public for
/// the benchmarks, whose SQLite import keeps the same keys.)
pub struct ImportKeys {
    tag: u8,
    /// Occurrences so far of each line counted.
    seen: foldhash::HashMap<[u8; 16], u32>,
    /// When known, the only lines that can occur more than once: the others are not counted.
    repeats: Option<Repeats>,
}

impl ImportKeys {
    /// Keys that count every line's occurrences (a map entry per distinct line).
    pub fn new(tag: u8) -> ImportKeys {
        ImportKeys {
            tag,
            seen: foldhash::HashMap::default(),
            repeats: None,
        }
    }

    /// Keys that count only the occurrences of the lines `repeats` names (found by a first
    /// read of the same lines), every other line being its file's only copy: the same keys as
    /// [`ImportKeys::new`] gives, without an entry per line.
    pub fn with_repeats(tag: u8, repeats: Repeats) -> ImportKeys {
        ImportKeys {
            repeats: Some(repeats),
            ..ImportKeys::new(tag)
        }
    }

    pub fn key(&mut self, line: &[u8]) -> Vec<u8> {
        let digest = Sha256::digest(line);
        let mut hash = [0; 16];
        hash.copy_from_slice(&digest[..16]);
        let occurrence = match &self.repeats {
            Some(repeats) if !repeats.may_repeat(line) => 0,
            _ => {
                let seen = self.seen.entry(hash).or_insert(0);
                let occurrence = *seen;
                *seen = seen.saturating_add(1);
                occurrence
            }
        };
        let mut key = Vec::with_capacity(21);
        key.push(self.tag);
        key.extend_from_slice(&hash);
        key.extend_from_slice(&occurrence.to_be_bytes());
        key
    }
}

/// The lines of a file that may occur in it more than once, by a 64-bit hash of their bytes:
/// every hash met twice while the file is read. A line met twice is always among them; another
/// line whose hash it shares is too, and is merely counted. Finding them holds 8 bytes per line
/// until [`RepeatsFinder::finish`]; the result, only the repeated hashes.
#[derive(Debug, Default)]
pub struct Repeats(foldhash::HashSet<u64>);

impl Repeats {
    pub fn may_repeat(&self, line: &[u8]) -> bool {
        !self.0.is_empty() && self.0.contains(&line_hash(line))
    }
}

/// Collects the hashes of a file's lines for [`Repeats`]: of those that may be stored, JSON
/// objects (the others are rejected, and need no key). A file of 50 million lines `x` held
/// 643 MB for their hashes, and one of lines `{x}` as much (reviews'); only lines that read as
/// JSON objects cost 8 bytes each now.
#[derive(Debug, Default)]
pub struct RepeatsFinder(Vec<u64>);

impl RepeatsFinder {
    pub fn add(&mut self, line: &[u8]) {
        if may_be_stored(line) {
            self.0.push(line_hash(line));
        }
    }

    pub fn finish(self) -> Repeats {
        let mut hashes = self.0;
        hashes.sort_unstable();
        Repeats(
            hashes
                .windows(2)
                .filter(|pair| pair[0] == pair[1])
                .map(|pair| pair[0])
                .collect(),
        )
    }
}

/// Whether `line` may be a JSON object: `{` and `}` its first and last bytes but for JSON's
/// whitespace.
fn may_be_object(line: &[u8]) -> bool {
    let json_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let first = line.iter().find(|b| !json_space(b));
    let last = line.iter().rev().find(|b| !json_space(b));
    first == Some(&b'{') && last == Some(&b'}')
}

/// Whether pass 2 may store `line`: a JSON object as [`parse_row`] and [`parse_object_line`]
/// read it, checked without building it. It takes no less than they do (a number beyond a
/// double's range passes here, refused there): a line left out would get another key than
/// its repeats', and be stored again by the next import.
fn may_be_stored(line: &[u8]) -> bool {
    may_be_object(line)
        && std::str::from_utf8(line).is_ok_and(|text| {
            !text.starts_with('\u{feff}')
                && crate::jsjson::parse_js::<serde::de::IgnoredAny>(text).is_ok()
        })
}

/// The same hash for the same bytes in every run (a fixed seed).
fn line_hash(line: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x6c61_6b65_686f_7573).hash_one(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_counting_only_repeats_equal_keys_counting_every_line() {
        let (a, b, c, d): (&[u8], &[u8], &[u8], &[u8]) =
            (b"{\"a\":1}", b" {}", b"{\"c\":3}\r", b"{}");
        let lines: Vec<&[u8]> = vec![a, b, a, c, b, a, d, b"", c, b"x", b"x", b"[1]", b"[1]"];
        let mut finder = RepeatsFinder::default();
        lines.iter().for_each(|line| finder.add(line));
        let repeats = finder.finish();
        assert!(repeats.may_repeat(a) && repeats.may_repeat(b) && repeats.may_repeat(c));
        assert!(!repeats.may_repeat(d) && !repeats.may_repeat(b""));
        // Lines that cannot be rows are not held: they are rejected, with no key.
        assert!(!repeats.may_repeat(b"x") && !repeats.may_repeat(b"[1]"));
        let mut every = ImportKeys::new(OPS_TAG);
        let mut only = ImportKeys::with_repeats(OPS_TAG, repeats);
        for line in lines.iter().filter(|line| may_be_stored(line)) {
            assert_eq!(only.key(line), every.key(line), "{line:?}");
        }
        // Only the repeated lines were counted.
        assert_eq!(only.seen.len(), 3);
        assert_eq!(every.seen.len(), 4);
        // A line the first read did not see (the file grew since) is taken for a single one.
        assert_eq!(only.key(b"e"), ImportKeys::new(OPS_TAG).key(b"e"));
    }

    /// Every line pass 2 may store passes the repeats' check (one left out would be keyed
    /// apart from its repeats, and stored again by the next import); junk shaped like an
    /// object does not.
    #[test]
    fn lines_that_may_be_stored_are_the_ones_parsed_as_objects() {
        let lines: [&[u8]; 12] = [
            br#"{"a":1}"#,
            b" {\"a\":1}\r",
            br#"{"s":"\ud800 half an emoji"}"#,
            br#"{"u":"\u00e9","n":[1,{"m":null}],"a":1,"a":2}"#,
            br#"{"n":-0,"f":1.5e3}"#,
            b"{}",
            b"{x}",
            b"{\"a\":1} trailing",
            b"\xef\xbb\xbf{\"bom\":1}",
            b"{\"bad\xff\":1}",
            b"{\"tab\":\"a\tb\"}",
            br#"{"big":1e400}"#,
        ];
        for line in lines {
            let parsed = parse_object_line(line).is_ok() || parse_row(line).is_ok();
            if parsed {
                assert!(may_be_stored(line), "{:?}", String::from_utf8_lossy(line));
            }
        }
        for junk in [&b"{x}"[..], b"{\"a\":1} trailing", b"\xef\xbb\xbf{}"] {
            assert!(!may_be_stored(junk), "{:?}", String::from_utf8_lossy(junk));
        }
    }

    #[test]
    fn keys_count_occurrences_per_exact_line() {
        let mut keys = ImportKeys::new(OUTCOMES_TAG);
        let a0 = keys.key(b"{\"a\":1}");
        let b0 = keys.key(b"{\"b\":1}");
        let a1 = keys.key(b"{\"a\":1}");
        assert_eq!(a0.len(), 21);
        assert_eq!(a0[0], b'o');
        assert_eq!(a0[..17], a1[..17]);
        assert_eq!(a0[17..], [0, 0, 0, 0]);
        assert_eq!(a1[17..], [0, 0, 0, 1]);
        assert_ne!(a0[..17], b0[..17]);
        let mut again = ImportKeys::new(OUTCOMES_TAG);
        assert_eq!(again.key(b"{\"a\":1}"), a0);
        assert_ne!(ImportKeys::new(OPS_TAG).key(b"{\"a\":1}"), a0);
    }

    #[test]
    fn malformed_kinds() {
        assert_eq!(
            parse_object_line(b"{\"a\":\"\xff\"}").unwrap_err(),
            Malformed::InvalidUtf8 { offset: 6 }
        );
        assert_eq!(
            parse_object_line(b"[1]").unwrap_err(),
            Malformed::NotAnObject("an array")
        );
        assert!(matches!(
            parse_object_line(b"{\"a\":").unwrap_err(),
            Malformed::BadJson(_)
        ));
        let (text, obj) = parse_object_line(b" {\"a\":1}\r").unwrap();
        assert_eq!(text, " {\"a\":1}\r");
        assert_eq!(obj["a"], 1);
    }

    /// The light row parse classifies lines as the full parse does, and reads the same fields.
    #[test]
    fn row_parse_agrees_with_the_full_parse() {
        let cases: &[&[u8]] = &[
            br#"{"sig_hash":"a","kind":"audit","x":[1,{"sig_hash":"no"}]}"#,
            br#"{"sig_hash":7,"kind":null}"#,
            br#"{"sig_hash":"first","sig_hash":"last"}"#,
            br#"{"sig_hash":"a","sig_hash":3}"#,
            br#"{"kind":"audit","pr_number":12,"head_sha":"abc","audited_at":"2026-01-01T00:00:00Z"}"#,
            br#"{"pr_number":1.5e1,"head_sha":7,"audited_at":null,"pr_number":"3"}"#,
            br#"{"pr_number":3,"pr_number":4.0,"audited_at":"a","audited_at":"b"}"#,
            br#"{"pr_number":-2,"head_sha":"h","x":{"pr_number":5}}"#,
            br#"{"pr_number":1e2,"h\u0065ad_sha":"escaped","audited\u005fat":"too"}"#,
            br#"{"pr_number":18446744073709551616,"pr_number":123456789012345678901234567890}"#,
            br#"{"s\u0069g_hash":"escaped key"}"#,
            br#" {"kind":"k"} "#,
            br#"{}"#,
            br#"[1,2]"#,
            br#""text""#,
            br#"3"#,
            br#"null"#,
            br#"{"a":1,}"#,
            br#"{"a":1} x"#,
            br#"{"a":"\q"}"#,
            b"{\"a\":\"\xff\"}",
            br#""#,
            br#"{"a""#,
            // Out of f64's range: JSON.parse reads Infinity, both parses refuse it (found by
            // cargo-fuzz, fuzz/artifacts/import_line).
            br#"{"a":8880088888888888800001e66666666666666666666666666666666666685}"#,
            br#"{"a":[{"b":-1e400}]}"#,
            br#"{"a":1e308,"b":-0.0,"c":123456789012345678901234567890}"#,
        ];
        for &line in cases {
            let light = parse_row(line).map(|(text, head)| (text.to_owned(), head));
            let full = parse_object_line(line).map(|(text, obj)| {
                let field = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
                (
                    text.to_owned(),
                    RowHead {
                        sig_hash: field("sig_hash"),
                        kind: field("kind"),
                        pr_number: obj.get("pr_number").and_then(Value::as_number).cloned(),
                        head_sha: field("head_sha"),
                        audited_at: field("audited_at"),
                        repo: field("repo"),
                    },
                )
            });
            match (&light, &full) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", String::from_utf8_lossy(line)),
                (Err(a), Err(b)) => assert_eq!(
                    std::mem::discriminant(a),
                    std::mem::discriminant(b),
                    "{}: {a} vs {b}",
                    String::from_utf8_lossy(line)
                ),
                _ => panic!(
                    "{}: light {light:?}, full {full:?}",
                    String::from_utf8_lossy(line)
                ),
            }
        }
    }

    #[test]
    fn reader_keeps_bytes_and_stops_at_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        std::fs::write(&path, b"one\r\n\ntwo\nthree-and-more").unwrap();
        let mut reader = LineReader::open(&path, 13, 1 << 20).unwrap();
        let mut got = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            got.push((
                line.number,
                line.bytes.to_vec(),
                line.complete,
                line.consumed,
                line.is_blank(),
            ));
        }
        assert_eq!(
            got,
            vec![
                (1, b"one\r".to_vec(), true, 5, false),
                (2, b"".to_vec(), true, 1, true),
                (3, b"two".to_vec(), true, 4, false),
                (4, b"thr".to_vec(), false, 3, false),
            ]
        );
    }

    /// The limit counts a line's bytes before its `\n`, a CRLF's `\r` included; a last line
    /// without a newline is held to it the same way.
    #[test]
    fn the_limit_is_the_line_s_bytes_before_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        let text = "abc\r\nabcd\r\nwxyz";
        std::fs::write(&path, text).unwrap();
        let mut reader = LineReader::open(&path, text.len() as u64, 4).unwrap();
        let mut got = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            got.push((line.bytes.to_vec(), line.complete, line.over_limit));
        }
        assert_eq!(
            got,
            vec![
                (b"abc\r".to_vec(), true, None),
                (vec![], true, Some((5, 4))),
                (b"wxyz".to_vec(), false, None),
            ]
        );
    }

    /// A line over the limit is read past, whatever its length against the read buffer, and
    /// the lines after it are read as ever; one at the limit is a line.
    #[test]
    fn a_line_over_the_limit_is_read_past_and_the_next_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        let huge = "h".repeat(3 * READ_BUFFER + 7);
        let text = format!("abcd\nabcde\n{huge}\nok\nabcdef");
        std::fs::write(&path, &text).unwrap();
        let mut reader = LineReader::open(&path, text.len() as u64, 4).unwrap();
        let mut got = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            got.push((
                line.number,
                line.bytes.to_vec(),
                line.consumed,
                line.over_limit,
                line.is_blank(),
                line.too_long().map(|why| why.to_string()),
            ));
        }
        assert!(reader.buf.capacity() < 1 << 16, "the huge line was held");
        let too_long = |bytes| {
            Some(format!(
                "{bytes} bytes long, over the 4-byte limit of a line: not imported (--max-line raises it)"
            ))
        };
        let huge_len = huge.len() as u64;
        assert_eq!(
            got,
            vec![
                (1, b"abcd".to_vec(), 5, None, false, None),
                (2, vec![], 6, Some((5, 4)), false, too_long(5)),
                (
                    3,
                    vec![],
                    huge_len + 1,
                    Some((huge_len, 4)),
                    false,
                    too_long(huge_len)
                ),
                (4, b"ok".to_vec(), 3, None, false, None),
                (5, vec![], 6, Some((6, 4)), false, too_long(6)),
            ]
        );
    }
}
