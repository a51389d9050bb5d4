//! The idempotency keys of an NDJSON batch's lines keyed by their request's header `K`
//! ([`ClientKey::batch_line`]), matched as a whole request.
//!
//! A line is stored under the key of its position (`K#n`, when free) and under a key of its
//! content (`K`, a NUL, its fingerprint, its seq). A retry of the batch is matched against what
//! is stored under `K` in three passes over its lines:
//! 1. a line whose position holds the same line is that line;
//! 2. any other line is a line stored under `K` with the same fingerprint that no other line of
//!    the request was matched to (the first in its content keys' order): a retry without its
//!    rejected lines, with them mended, with lines added or in another order finds every line
//!    it stored before;
//! 3. what is left is new, except a line whose position holds a line this request did not
//!    send (a line changed in place, say): that is refused as a key used with another request.
//!
//! Identical lines are as many records as there are lines; each stored record is matched once.
//! The match is a function of what is stored and of the request, as the journal's replay needs.
//!
//! What matching a request costs the writer is bounded by the request: a lookup of each line's
//! position, and for the lines not found there one range per fingerprint, read no further than
//! the lines with that fingerprint need (stored lines the request took by position are skipped,
//! at most one for each of its lines). How many lines are stored under `K` does not count: a
//! single write keyed `K#n` has a content key as a batch line does, and schema 14 gave one to
//! every key stored before content keys.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use redb::ReadableTable;

use super::StoreError;
use super::deferred::{Deferred, client_key_lookup};
use super::records::{BatchLineKey, ClientKey, Put};

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
    // 2. By content: a line stored under the header with the same fingerprint that no other
    // line of the request took, in key order (a content key names its fingerprint, so each
    // fingerprint is one range, read no further than its lines need).
    let mut unmatched: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (j, (_, _, fingerprint)) in lines.iter().enumerate() {
        if decided[j].is_none() {
            unmatched.entry(*fingerprint).or_default().push(j);
        }
    }
    for (fingerprint, js) in unmatched {
        let mut js = js.into_iter().peekable();
        let mut visit = |seq: u64| {
            if js.peek().is_some() && claimed.insert(seq) {
                decided[js.next().expect("peeked")] = Some(LineKeyed::Stored(seq));
            }
            js.peek().is_some()
        };
        stored_with(later, table, first.header, fingerprint, &mut visit)?;
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

/// Gives `visit` the seqs of the lines stored under `header` (route tag and key) with
/// `fingerprint`, in their content keys' order (those this transaction wrote among them), until
/// it returns false.
fn stored_with(
    later: &Deferred,
    table: &impl ReadableTable<&'static [u8], (u64, u64, u64)>,
    header: &[u8],
    fingerprint: u64,
    visit: &mut impl FnMut(u64) -> bool,
) -> Result<(), StoreError> {
    let start = ClientKey::content_prefix(header, fingerprint);
    let mut end = start.clone();
    *end.last_mut().expect("the prefix ends with '.'") += 1;
    let mut stored = table.range(start.as_slice()..end.as_slice())?;
    let mut next_stored = || -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        let Some(row) = stored.next() else {
            return Ok(None);
        };
        let (key, value) = row?;
        Ok(Some((key.value().to_vec(), value.value().0)))
    };
    let bounds = (
        Bound::Included(start.as_slice()),
        Bound::Excluded(end.as_slice()),
    );
    let mut written = later.new_client_keys.range::<[u8], _>(bounds);
    // The two ranges merged in key order.
    let (mut from_table, mut from_txn) = (next_stored()?, written.next());
    loop {
        let take_table = match (&from_table, from_txn) {
            (None, None) => return Ok(()),
            (Some((key, _)), Some((new_key, _))) => key < new_key,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        let seq = if take_table {
            let (_, seq) = from_table.take().expect("matched as some");
            from_table = next_stored()?;
            seq
        } else {
            let (new_key, &(seq, ..)) = from_txn.expect("matched as some");
            // A key in both ranges is one this transaction wrote again.
            if from_table.as_ref().is_some_and(|(key, _)| key == new_key) {
                from_table = next_stored()?;
            }
            from_txn = written.next();
            seq
        };
        if !visit(seq) {
            return Ok(());
        }
    }
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

    /// Past 40,000 lines under one key, a retry used to be matched against the first 40,000
    /// content keys read (in fingerprint order), and stored lines beyond them again.
    #[test]
    fn a_retry_finds_its_lines_however_many_are_stored_under_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
        let bodies: Vec<String> = (0..45_000)
            .map(|n| format!(r#"{{"source":"bot","n":{n}}}"#))
            .collect();
        // Five requests of 9,000 lines, numbered on from each other (as a client's own keys
        // named `K#n` could be).
        let numbered: Vec<(usize, &str)> = (1..).zip(bodies.iter().map(String::as_str)).collect();
        let requests: Vec<&[(usize, &str)]> = numbered.chunks(9_000).collect();
        for (n, lines) in requests.iter().enumerate() {
            let written = store.write(&request("big", n as u64 + 1, lines)).unwrap();
            assert_eq!(outcome(&written), "S".repeat(lines.len()));
        }
        // The first request again without its first line: every line has moved.
        let moved: Vec<(usize, &str)> = requests[0][1..]
            .iter()
            .enumerate()
            .map(|(i, &(_, body))| (i + 1, body))
            .collect();
        let written = store.write(&request("big", 9, &moved)).unwrap();
        assert_eq!(outcome(&written), "D".repeat(moved.len()));
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
