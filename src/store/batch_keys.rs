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

use std::collections::{BTreeMap, HashSet};
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

/// The decisions for a run of puts that are one request's batch lines.
#[derive(Debug)]
pub(super) struct Run {
    start: usize,
    decisions: Vec<LineKeyed>,
}

impl Run {
    /// The decision for `puts[i]`, when it is in this run.
    pub fn get(&self, i: usize) -> Option<LineKeyed> {
        self.decisions.get(i.checked_sub(self.start)?).copied()
    }
}

/// Decides the run of batch lines that begins at `puts[start]`: the puts from there whose keys
/// have the same header and rising positions (a request's lines follow each other in a write,
/// numbered from 1; the next request's begin again).
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
            start,
            decisions: Vec::new(),
        });
    };
    let mut lines = Vec::new();
    let mut last_position = 0;
    for (key, fingerprint) in puts[start..].iter().map_while(line_key) {
        if key.header != first.header || key.position <= last_position {
            break;
        }
        last_position = key.position;
        lines.push((key.position_key, fingerprint));
    }
    let mut claimed = HashSet::new();
    let mut decided: Vec<Option<LineKeyed>> = vec![None; lines.len()];
    // 1. By position.
    let mut at_position = Vec::with_capacity(lines.len());
    for (j, (position_key, fingerprint)) in lines.iter().enumerate() {
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
        for (j, (_, fingerprint)) in lines.iter().enumerate() {
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
    let decisions = decided
        .into_iter()
        .zip(at_position)
        .map(|(decided, at_position)| {
            decided.unwrap_or(match at_position {
                Some(seq) if !claimed.contains(&seq) => LineKeyed::Refused(seq),
                Some(_) => LineKeyed::New { at_position: false },
                None => LineKeyed::New { at_position: true },
            })
        })
        .collect();
    Ok(Run { start, decisions })
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
