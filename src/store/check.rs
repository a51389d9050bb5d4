//! `check`: redb's own integrity check, then ours — every index entry points at a row that has
//! the indexed value, every row is indexed, seqs are unique, and every counter equals a recount.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::read::{event_entry, outcome_entry, verdict_entry};
use super::tables::*;
use super::{Stats, Store, StoreError};
use crate::model::claims::claims_of;
use crate::model::verdict::sig_hash;

/// Problems listed in full; beyond this only their number is kept.
const MAX_LISTED: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub verdicts: u64,
    pub outcomes: u64,
    pub events: u64,
    pub claims: u64,
    pub problems: Vec<String>,
    pub n_problems: u64,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.n_problems == 0
    }

    fn problem(&mut self, text: String) {
        self.n_problems += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(text);
        }
    }
}

impl Store {
    /// Runs every check; `Err` only when the file cannot be read at all.
    pub fn check(&mut self) -> Result<CheckReport, StoreError> {
        let mut report = CheckReport::default();
        if !self.with_db_mut(|db| db.check_integrity())?? {
            report.problem("redb integrity check failed; redb repaired the file".into());
        }
        let txn = self.db()?.begin_read()?;
        let mut recount = Stats::default();
        let mut seqs = Vec::new();
        check_verdicts(&txn, &mut report, &mut recount, &mut seqs)?;
        check_outcomes(&txn, &mut report, &mut recount, &mut seqs)?;
        check_events(&txn, &mut report, &mut recount, &mut seqs)?;
        check_sig_index(&txn, &mut report)?;

        seqs.sort_unstable();
        for pair in seqs.windows(2) {
            if pair[0] == pair[1] {
                report.problem(format!("seq {} is used by two records", pair[0]));
            }
        }
        let stats = self.stats()?;
        recount.last_seq = stats.last_seq;
        if let Some(&max) = seqs.last()
            && max > stats.last_seq
        {
            report.problem(format!(
                "seq {max} is stored but last_seq is {}",
                stats.last_seq
            ));
        }
        for row in txn.open_table(IMPORT_KEYS)?.iter()? {
            let seq = row?.1.value();
            if seq > stats.last_seq {
                report.problem(format!("an import key points at seq {seq}, after last_seq"));
            }
        }
        compare_counters(&mut report, &stats, &recount);
        Ok(report)
    }
}

fn check_verdicts(
    txn: &ReadTransaction,
    report: &mut CheckReport,
    recount: &mut Stats,
    seqs: &mut Vec<u64>,
) -> Result<(), StoreError> {
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let claims = txn.open_table(CLAIMS)?;
    let by_sig = txn.open_table(SIG_INDEX)?;
    let mut n_claims = 0u64;
    for row in verdicts.iter()? {
        let (seq, bytes) = row?;
        let seq = seq.value();
        seqs.push(seq);
        let value = match verdict_entry("", seq, bytes.value()) {
            Ok(entry) => entry.value,
            Err(e) => {
                report.problem(e.to_string());
                continue;
            }
        };
        report.verdicts += 1;
        recount.verdicts += 1;
        *recount
            .verdicts_by_overall
            .entry(value.overall.clone())
            .or_default() += 1;
        let sig = sig_hash(value.pr_number, &value.head_sha);
        if by_sig.get((sig.as_str(), KIND_VERDICT, seq))?.is_none() {
            report.problem(format!(
                "verdict seq {seq} is not indexed under its sig_hash {sig}"
            ));
        }
        let object = serde_json::from_str(&value.raw_json).unwrap_or_default();
        for claim in claims_of(&object).unwrap_or_default() {
            n_claims += 1;
            if claims.get((claim.hash.0, seq))?.map(|s| s.value() == sig) != Some(true) {
                report.problem(format!(
                    "verdict seq {seq} claim {} is not indexed",
                    claim.hash
                ));
            }
        }
    }
    for row in claims.iter()? {
        let (key, sig) = row?;
        let (hash, seq) = key.value();
        report.claims += 1;
        let verdict_sig = match verdicts.get(seq)? {
            Some(bytes) => verdict_entry("", seq, bytes.value())
                .ok()
                .map(|e| sig_hash(e.value.pr_number, &e.value.head_sha)),
            None => None,
        };
        if verdict_sig.as_deref() != Some(sig.value()) {
            report.problem(format!(
                "claims entry {hash:016x} points at seq {seq}, which is no verdict with sig_hash {}",
                sig.value()
            ));
        }
    }
    if report.claims != n_claims {
        report.problem(format!(
            "claims index has {} entries, the verdicts carry {n_claims} claims",
            report.claims
        ));
    }
    Ok(())
}

fn check_outcomes(
    txn: &ReadTransaction,
    report: &mut CheckReport,
    recount: &mut Stats,
    seqs: &mut Vec<u64>,
) -> Result<(), StoreError> {
    let outcomes = txn.open_table(OUTCOMES)?;
    let by_sig = txn.open_table(SIG_INDEX)?;
    for row in outcomes.iter()? {
        let (seq, bytes) = row?;
        let seq = seq.value();
        seqs.push(seq);
        let entry = match outcome_entry(seq, bytes.value()) {
            Ok(entry) => entry,
            Err(e) => {
                report.problem(e.to_string());
                continue;
            }
        };
        report.outcomes += 1;
        recount.outcomes += 1;
        *recount
            .outcomes_by_kind
            .entry(entry.value.kind.clone())
            .or_default() += 1;
        let sig = entry.value.sig_hash.as_str();
        if !sig.is_empty() && by_sig.get((sig, KIND_OUTCOME, seq))?.is_none() {
            report.problem(format!("outcome seq {seq} is missing from sig_index"));
        }
    }
    Ok(())
}

fn check_events(
    txn: &ReadTransaction,
    report: &mut CheckReport,
    recount: &mut Stats,
    seqs: &mut Vec<u64>,
) -> Result<(), StoreError> {
    let events = txn.open_table(EVENTS)?;
    let by_sig = txn.open_table(SIG_INDEX)?;
    let indexes = [
        ("events_by_source", txn.open_table(EVENTS_BY_SOURCE)?),
        ("events_by_kind", txn.open_table(EVENTS_BY_KIND)?),
    ];
    let mut expected = [0u64; 2];
    for row in events.iter()? {
        let (seq, bytes) = row?;
        let seq = seq.value();
        seqs.push(seq);
        let entry = match event_entry(seq, bytes.value()) {
            Ok(entry) => entry,
            Err(e) => {
                report.problem(e.to_string());
                continue;
            }
        };
        let e = &entry.value;
        report.events += 1;
        recount.events += 1;
        *if e.success {
            &mut recount.events_success
        } else {
            &mut recount.events_failure
        } += 1;
        *recount
            .events_by_source
            .entry(e.source.clone())
            .or_default() += 1;
        if let Some(kind) = &e.event_kind {
            *recount.events_by_kind.entry(kind.clone()).or_default() += 1;
        }
        if let Some(sig) = &e.sig_hash
            && by_sig.get((sig.as_str(), KIND_EVENT, seq))?.is_none()
        {
            report.problem(format!("event seq {seq} is missing from sig_index"));
        }
        let keys = [Some(&e.source), e.event_kind.as_ref()];
        for (i, key) in keys.into_iter().enumerate() {
            let Some(key) = key else { continue };
            expected[i] += 1;
            if indexes[i].1.get((key.as_str(), seq))?.is_none() {
                report.problem(format!("event seq {seq} is missing from {}", indexes[i].0));
            }
        }
    }
    for (i, (name, index)) in indexes.iter().enumerate() {
        if index.len()? != expected[i] {
            report.problem(format!(
                "{name} has {} entries, the events need {}",
                index.len()?,
                expected[i]
            ));
        }
        for row in index.iter()? {
            let (index_key, _) = row?;
            let (key, seq) = index_key.value();
            let value = match events.get(seq)? {
                Some(bytes) => event_entry(seq, bytes.value()).ok().map(|e| e.value),
                None => None,
            };
            let matches = value.is_some_and(|e| {
                [Some(&e.source), e.event_kind.as_ref()][i].is_some_and(|k| k == key)
            });
            if !matches {
                report.problem(format!("{name} entry ({key}, {seq}) has no matching event"));
            }
        }
    }
    Ok(())
}

/// Every `sig_index` entry points at a record of its kind that has that sig_hash, and the
/// verdicts of one sig_hash (which come together, in seq order) have distinct identities.
fn check_sig_index(txn: &ReadTransaction, report: &mut CheckReport) -> Result<(), StoreError> {
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let outcomes = txn.open_table(OUTCOMES)?;
    let events = txn.open_table(EVENTS)?;
    let mut run_sig = String::new();
    let mut run_identities: Vec<(u64, String, String)> = Vec::new();
    for row in txn.open_table(SIG_INDEX)?.iter()? {
        let key = row?.0;
        let (sig, kind, seq) = key.value();
        let found = match kind {
            KIND_VERDICT => {
                let value = verdicts
                    .get(seq)?
                    .and_then(|b| verdict_entry(sig, seq, b.value()).ok())
                    .map(|e| e.value)
                    .filter(|v| sig_hash(v.pr_number, &v.head_sha) == sig);
                if let Some(v) = &value {
                    if run_sig != sig {
                        run_sig = sig.to_owned();
                        run_identities.clear();
                    }
                    let identity = (v.pr_number, v.head_sha.clone(), v.audited_at.clone());
                    if run_identities.contains(&identity) {
                        report.problem(format!(
                            "verdict seq {seq} repeats an earlier verdict (same pr_number, \
                             head_sha, audited_at)"
                        ));
                    }
                    run_identities.push(identity);
                }
                value.is_some()
            }
            KIND_OUTCOME => outcomes
                .get(seq)?
                .and_then(|b| outcome_entry(seq, b.value()).ok())
                .is_some_and(|e| e.value.sig_hash == sig),
            KIND_EVENT => events
                .get(seq)?
                .and_then(|b| event_entry(seq, b.value()).ok())
                .is_some_and(|e| e.value.sig_hash.as_deref() == Some(sig)),
            _ => false,
        };
        if !found {
            report.problem(format!(
                "sig_index entry ({sig}, kind {kind}, {seq}) has no matching row"
            ));
        }
    }
    Ok(())
}

fn compare_counters(report: &mut CheckReport, stored: &Stats, recount: &Stats) {
    let scalars = [
        ("events", stored.events, recount.events),
        (
            "events success",
            stored.events_success,
            recount.events_success,
        ),
        (
            "events failure",
            stored.events_failure,
            recount.events_failure,
        ),
        ("verdicts", stored.verdicts, recount.verdicts),
        ("outcomes", stored.outcomes, recount.outcomes),
    ];
    for (name, counter, count) in scalars {
        if counter != count {
            report.problem(format!(
                "counter {name} is {counter}, a recount gives {count}"
            ));
        }
    }
    type Counts = BTreeMap<String, u64>;
    let maps: [(&str, &Counts, &Counts); 4] = [
        (
            "events by source",
            &stored.events_by_source,
            &recount.events_by_source,
        ),
        (
            "events by kind",
            &stored.events_by_kind,
            &recount.events_by_kind,
        ),
        (
            "verdicts by overall",
            &stored.verdicts_by_overall,
            &recount.verdicts_by_overall,
        ),
        (
            "outcomes by kind",
            &stored.outcomes_by_kind,
            &recount.outcomes_by_kind,
        ),
    ];
    for (name, counter, count) in maps {
        if counter != count {
            report.problem(format!(
                "counters {name} are {counter:?}, a recount gives {count:?}"
            ));
        }
    }
}
