//! The idempotency keys of an NDJSON batch's lines keyed by their request's header `K`
//! ([`ClientKey::batch_line`]), matched as a whole request.
//!
//! A line is stored under the key of its position (`K#n`, when free) and under a key of its
//! content (`K`, a NUL, its fingerprint, its seq). A retry of the batch is matched against what
//! is stored under `K` in three passes over its lines:
//! 1. a line whose position holds the same line is that line;
//! 2. any other line is a line stored under `K` with the same fingerprint that no other line of
//!    the request was matched to (the oldest first): a retry without its rejected lines, with
//!    them mended, with lines added or in another order finds every line it stored before;
//! 3. what is left is new, except a line whose position holds a line this request did not
//!    send (a line changed in place, say): that is refused as a key used with another request.
//!
//! Identical lines are as many records as there are lines; each stored record is matched once.
//! The match is a function of what is stored and of the request, as the journal's replay needs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use redb::ReadableTable;

use super::StoreError;
use super::deferred::{Deferred, client_key_lookup};
use super::records::{BatchLineKey, ClientKey, Put};

/// Most keys of one header read in each of its two ranges (positions, contents) to find the
/// lines stored under it: four times the largest default batch. A header given to more lines
/// than that (by a client's own keys named `K#n`, say) is matched on what was read.
const MAX_KEYS_READ: usize = 40_000;

/// What a batch line's key says before the line is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LineKeyed {
    /// Stored before under the request's header: this seq.
    Stored(u64),
    /// A new line where one this request did not send is stored (that line's seq): refused.
    Refused(u64),
    /// A new line: stored under its content key, and under its position's when that is free.
    New { at_position: bool },
}

/// The decisions for one request's batch lines, by their index in the write's puts.
#[derive(Debug)]
pub(super) struct Run {
    decisions: HashMap<usize, LineKeyed>,
}

impl Run {
    /// The decision for `puts[i]`, when it is one of this request's lines.
    pub fn get(&self, i: usize) -> Option<LineKeyed> {
        self.decisions.get(&i).copied()
    }
}

/// Decides the run of batch lines that begins at `puts[start]`: the lines of its request (the
/// same header and request number; a request's puts follow each other in a write, with its
/// lines keyed otherwise among them).
pub(super) fn decide_run(
    later: &Deferred,
    table: &impl ReadableTable<&'static [u8], (u64, u64, u64)>,
    puts: &[Put],
    start: usize,
) -> Result<Run, StoreError> {
    fn line_key(put: &Put) -> Option<(BatchLineKey<'_>, u64)> {
        let client = put.client_key.as_ref()?;
        Some((client.batch_line_key()?, client.fingerprint))
    }
    let Some((first, _)) = puts.get(start).and_then(line_key) else {
        return Ok(Run {
            decisions: HashMap::new(),
        });
    };
    // The request's lines, by their index in `puts`.
    let mut lines = Vec::new();
    for (i, put) in puts.iter().enumerate().skip(start) {
        match line_key(put) {
            Some((key, fingerprint))
                if (key.header, key.request) == (first.header, first.request) =>
            {
                lines.push((i, key.position_key, fingerprint));
            }
            // Another request's lines: this one's have all been seen.
            Some(_) => break,
            None => {}
        }
    }
    let mut claimed = HashSet::new();
    let mut decided: Vec<Option<LineKeyed>> = vec![None; lines.len()];
    // 1. By position.
    let mut at_position = Vec::with_capacity(lines.len());
    for (j, (_, position_key, fingerprint)) in lines.iter().enumerate() {
        let found = client_key_lookup(later, table, position_key)?;
        if let Some((seq, stored)) = found
            && stored == *fingerprint
            && claimed.insert(seq)
        {
            decided[j] = Some(LineKeyed::Stored(seq));
        }
        at_position.push(found.map(|(seq, _)| seq));
    }
    // 2. By content, among the lines stored under the header.
    if decided.iter().any(Option::is_none) {
        let stored = stored_under(later, table, first.header)?;
        for (j, (_, _, fingerprint)) in lines.iter().enumerate() {
            if decided[j].is_some() {
                continue;
            }
            let same = stored
                .get(fingerprint)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if let Some(&seq) = same.iter().find(|seq| !claimed.contains(*seq)) {
                claimed.insert(seq);
                decided[j] = Some(LineKeyed::Stored(seq));
            }
        }
    }
    // 3. New, or refused.
    let decisions = lines
        .iter()
        .zip(decided)
        .zip(at_position)
        .map(|((&(i, ..), decided), at_position)| {
            let decision = decided.unwrap_or(match at_position {
                Some(seq) if !claimed.contains(&seq) => LineKeyed::Refused(seq),
                Some(_) => LineKeyed::New { at_position: false },
                None => LineKeyed::New { at_position: true },
            });
            (i, decision)
        })
        .collect();
    Ok(Run { decisions })
}

/// The seqs of the lines stored under `header` (route tag and key), by fingerprint, oldest
/// first: under their content keys and under their positions' (keys written before lines had
/// content keys, and a client's own keys named `K#n`).
fn stored_under(
    later: &Deferred,
    table: &impl ReadableTable<&'static [u8], (u64, u64, u64)>,
    header: &[u8],
) -> Result<BTreeMap<u64, Vec<u64>>, StoreError> {
    let (positions, contents) = (after(header, b'#'), after(header, 0));
    let is_line = |key: &[u8]| {
        if key.starts_with(&positions.start) {
            let n = &key[positions.start.len()..];
            !n.is_empty() && n.iter().all(u8::is_ascii_digit)
        } else {
            key.starts_with(&contents.start)
        }
    };
    let mut stored: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for range in [&positions, &contents] {
        let rows = table.range(range.start.as_slice()..range.end.as_slice())?;
        for row in rows.take(MAX_KEYS_READ) {
            let (key, value) = row?;
            let (seq, _, fingerprint) = value.value();
            if is_line(key.value()) {
                stored.entry(fingerprint).or_default().push(seq);
            }
        }
    }
    for (key, &(seq, _, fingerprint)) in &later.new_client_keys {
        if is_line(key) {
            stored.entry(fingerprint).or_default().push(seq);
        }
    }
    for seqs in stored.values_mut() {
        seqs.sort_unstable();
        seqs.dedup();
    }
    Ok(stored)
}

/// The keys that begin with `header` and then `byte`.
fn after(header: &[u8], byte: u8) -> Range<Vec<u8>> {
    let start = [header, &[byte]].concat();
    let end = [header, &[byte + 1]].concat();
    start..end
}

/// The keys a new batch line stored as `seq` is known by: its content's, and its position's
/// when `at_position`.
pub(super) fn keys_of_new_line(
    client: &ClientKey,
    seq: u64,
    at_position: bool,
) -> impl Iterator<Item = Vec<u8>> {
    let line = client.batch_line_key();
    let content = line.map(|l| ClientKey::content_key(l.header, client.fingerprint, seq));
    let position = line
        .filter(|_| at_position)
        .map(|l| l.position_key.to_vec());
    content.into_iter().chain(position)
}

#[cfg(test)]
mod tests {
    use super::super::{Store, StoreOptions, Written};
    use super::*;
    use crate::intake::{event_record, verdict_record};

    /// The puts of one request (numbered `n`) under the header `header`: its lines as (record
    /// number, body).
    fn request(header: &str, n: u64, lines: &[(usize, &str)]) -> Vec<Put> {
        lines
            .iter()
            .map(|&(record_no, body)| {
                let record = if body.contains("head_sha") {
                    verdict_record(body.as_bytes(), 7)
                } else {
                    event_record(body.as_bytes(), 7)
                };
                let mut put = Put::from(record.unwrap());
                put.client_key = Some(ClientKey::batch_line(
                    b'e',
                    header,
                    record_no,
                    body.as_bytes(),
                    n,
                    // Each request at a time of its own.
                    n * 1000,
                ));
                put
            })
            .collect()
    }

    fn own_keyed(key: &str, body: &str) -> Put {
        let mut put = Put::from(event_record(body.as_bytes(), 7).unwrap());
        put.client_key = Some(ClientKey::new(b'e', key, body.as_bytes(), 7));
        put
    }

    /// What each put of a write came to: `S` stored, `D` a duplicate, `R` refused.
    fn outcome(written: &[Written]) -> String {
        written
            .iter()
            .map(|w| match w {
                Written::Stored { .. } => 'S',
                Written::Duplicate { .. } => 'D',
                Written::KeyReused { .. } => 'R',
                Written::Refused => 'X',
            })
            .collect()
    }

    /// Found by a review of abe6527, which took a request's lines to be the puts with its
    /// header and rising positions: a line keyed by its own field among them split the request
    /// (its later identical line was answered as a duplicate of its first), and two requests
    /// under one key written together were taken for one (a line stored twice).
    #[test]
    fn a_request_s_lines_are_matched_together_and_apart_from_another_s() {
        const T: &str = r#"{"source":"bot","n":1}"#;
        const U: &str = r#"{"source":"bot","n":2}"#;
        const V: &str = r#"{"pr_number":1,"head_sha":"abcdef12","overall":"approve","one_liner":"x","metrics":{"findings_block":0,"findings_warn":0},"audited_at":"t"}"#;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
        let own = own_keyed("own-1", r#"{"source":"bot","n":3}"#);
        let one_write = |parts: Vec<Vec<Put>>| parts.concat();
        #[rustfmt::skip]
        let writes: Vec<(&str, Vec<Put>, &str)> = vec![
            // name, the puts of one write, what they came to
            ("a line with its own key between two alike",
                one_write(vec![request("a", 1, &[(1, T)]), vec![own], request("a", 1, &[(3, T)])]), "SSS"),
            ("the first request again", request("a", 2, &[(1, T), (3, T)]), "DD"),
            ("both requests of a retry written together, the second after a rejected line",
                one_write(vec![request("b", 3, &[(1, U)]), request("b", 4, &[(2, U)])]), "SD"),
            // A verdict new by its key and a duplicate by its identity: `check` holds after.
            ("a verdict", request("c", 5, &[(1, V)]), "S"),
            ("the verdict twice", request("c", 6, &[(1, V), (2, V)]), "DD"),
        ];
        for (name, puts, want) in writes {
            let written = store.write(&puts).unwrap();
            assert_eq!(outcome(&written), want, "{name}");
        }
        assert!(store.check().unwrap().passed());
    }
}
