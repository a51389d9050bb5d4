//! `check`: redb's own integrity check, then ours — every index entry points at a row that has
//! the indexed value, every row is indexed, seqs are unique, and every counter equals a recount.
//! The verdict-derived indexes (identity, PR counts, claims, the text index) are checked in
//! `check_verdicts.rs`, the findings memory in `findings.rs` and the dismissals in
//! `dismissals.rs`.

use std::collections::BTreeMap;

use redb::{
    DatabaseError, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, StorageError,
};

use super::codec;
use super::read::{event_entry, outcome_entry};
use super::seq_blocks;
use super::tables::*;
use super::{Stats, Store, StoreError};

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

    pub(super) fn problem(&mut self, text: String) {
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
        match self.with_db_mut(|db| db.check_integrity())? {
            Ok(true) => {}
            Ok(false) => {
                report.problem("redb integrity check failed; redb repaired the file".into());
            }
            // Beyond repair: nothing after it can be read reliably.
            Err(DatabaseError::Storage(StorageError::Corrupted(detail))) => {
                return Err(StoreError::Damaged {
                    path: self.path().to_owned(),
                    detail,
                });
            }
            Err(e) => return Err(e.into()),
        }
        let txn = self.db()?.begin_read()?;
        let mut recount = Stats::default();
        let mut seqs = Vec::new();
        super::check_verdicts::check_verdicts(&txn, &mut report, &mut recount, &mut seqs)?;
        check_outcomes(&txn, &mut report, &mut recount, &mut seqs)?;
        check_events(&txn, &mut report, &mut recount, &mut seqs)?;
        check_by_sig(&txn, &mut report)?;
        check_repos(&txn, &mut report)?;
        super::findings::check_memory(&txn, &mut report)?;
        super::dismissals::check_dismissals(&txn, &mut report, &mut seqs)?;
        super::dictionary::check_dictionaries(&txn, &mut report)?;

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
        check_client_keys(&txn, &mut report, stats.last_seq)?;
        compare_counters(&mut report, &stats, &recount);
        Ok(report)
    }
}

/// The id a repository name has in `repos` (0 for the default namespace), or a problem.
pub(super) fn repo_id(
    repos: &impl ReadableTable<&'static str, u32>,
    report: &mut CheckReport,
    name: &str,
    what: &str,
) -> Result<Option<u32>, StoreError> {
    if name.is_empty() {
        return Ok(Some(DEFAULT_REPO));
    }
    let id = repos.get(name)?.map(|id| id.value());
    if id.is_none() {
        report.problem(format!("{what} names repository {name:?}, which has no id"));
    }
    Ok(id)
}

fn check_outcomes(
    txn: &ReadTransaction,
    report: &mut CheckReport,
    recount: &mut Stats,
    seqs: &mut Vec<u64>,
) -> Result<(), StoreError> {
    let outcomes = txn.open_table(OUTCOMES)?;
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let by_sig = txn.open_table(BY_SIG)?;
    let repos = txn.open_table(REPOS)?;
    for row in outcomes.iter()? {
        let (seq, bytes) = row?;
        let seq = seq.value();
        seqs.push(seq);
        let entry = match outcome_entry(&verdicts, seq, bytes.value()) {
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
        let what = format!("outcome seq {seq}");
        let Some(repo) = repo_id(&repos, report, &entry.value.repo, &what)? else {
            continue;
        };
        if !sig.is_empty() {
            let reference = codec::referenced_seq(seq, bytes.value()).ok().flatten();
            check_sig_entry(
                &by_sig,
                report,
                (repo, sig, KIND_OUTCOME, seq),
                reference,
                &what,
            )?;
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
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let by_sig = txn.open_table(BY_SIG)?;
    let repos = txn.open_table(REPOS)?;
    // Each filter's seqs by text, read once: a damaged block is a problem of its own.
    let mut indexed: [BTreeMap<String, Vec<u64>>; 2] = Default::default();
    let names = ["event_source_seqs", "event_kind_seqs"];
    for (i, definition) in [EVENT_SOURCE_SEQS, EVENT_KIND_SEQS].into_iter().enumerate() {
        for row in txn.open_table(definition)?.iter()? {
            let (key, value) = row?;
            let (text, first) = key.value();
            match seq_blocks::decode(names[i], text, first, value.value()) {
                Ok(block) => {
                    let seqs = indexed[i].entry(text.to_owned()).or_default();
                    if seqs.last().is_some_and(|&last| last >= first) {
                        report.problem(format!(
                            "{}: the block ({text:?}, {first}) overlaps the one before it",
                            names[i]
                        ));
                    }
                    seqs.extend(block);
                }
                Err(e) => report.problem(e.to_string()),
            }
        }
    }
    let mut expected = [0u64; 2];
    for row in events.iter()? {
        let (seq, bytes) = row?;
        let seq = seq.value();
        seqs.push(seq);
        let entry = match event_entry(&verdicts, seq, bytes.value()) {
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
        let what = format!("event seq {seq}");
        if let Some(sig) = &e.sig_hash
            && let Some(repo) = repo_id(&repos, report, &e.repo, &what)?
        {
            let reference = codec::referenced_seq(seq, bytes.value()).ok().flatten();
            let entry = (repo, sig.as_str(), KIND_EVENT, seq);
            check_sig_entry(&by_sig, report, entry, reference, &what)?;
        }
        let keys = [Some(&e.source), e.event_kind.as_ref()];
        for (i, key) in keys.into_iter().enumerate() {
            let Some(key) = key else { continue };
            expected[i] += 1;
            let found = indexed[i]
                .get(key.as_str())
                .is_some_and(|seqs| seqs.binary_search(&seq).is_ok());
            if !found {
                report.problem(format!("event seq {seq} is missing from {}", names[i]));
            }
        }
    }
    for (i, by_text) in indexed.iter().enumerate() {
        let name = names[i];
        let n: u64 = by_text.values().map(|seqs| seqs.len() as u64).sum();
        if n != expected[i] {
            report.problem(format!(
                "{name} has {n} entries, the events need {}",
                expected[i]
            ));
        }
        for (key, seqs) in by_text {
            for &seq in seqs {
                let value = match events.get(seq)? {
                    Some(bytes) => event_entry(&verdicts, seq, bytes.value())
                        .ok()
                        .map(|e| e.value),
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
    }
    Ok(())
}

/// A record with a sig_hash has its `by_sig` entry; one stored as a reference to a verdict
/// has none of its own, and is found through its verdict's (`verdict_lines.rs`).
fn check_sig_entry(
    by_sig: &ReadOnlyTable<(u32, &'static str, u8, u64), ()>,
    report: &mut CheckReport,
    entry: (u32, &str, u8, u64),
    reference: Option<u64>,
    what: &str,
) -> Result<(), StoreError> {
    let (repo, sig, _, _) = entry;
    let own = by_sig.get(entry)?.is_some();
    match reference {
        None if !own => report.problem(format!("{what} is missing from by_sig")),
        Some(_) if own => report.problem(format!(
            "{what} is a reference to a verdict but has a by_sig entry of its own"
        )),
        Some(verdict) if by_sig.get((repo, sig, KIND_VERDICT, verdict))?.is_none() => report
            .problem(format!(
                "{what} refers to verdict seq {verdict}, which by_sig does not hold under its \
                 sig_hash"
            )),
        _ => {}
    }
    Ok(())
}

/// Every `by_sig` entry points at a record of its kind that has that sig_hash and repository.
fn check_by_sig(txn: &ReadTransaction, report: &mut CheckReport) -> Result<(), StoreError> {
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let outcomes = txn.open_table(OUTCOMES)?;
    let events = txn.open_table(EVENTS)?;
    let names = txn.open_table(REPO_NAMES)?;
    for row in txn.open_table(BY_SIG)?.iter()? {
        let key = row?.0;
        let (repo, sig, kind, seq) = key.value();
        let name = super::repos::name_of(&names, repo)?;
        let found = match kind {
            KIND_VERDICT => verdicts
                .get(seq)?
                .and_then(|b| super::read::verdict_entry(sig, seq, b.value()).ok())
                .is_some_and(|e| {
                    e.value.repo == name
                        && crate::model::verdict::sig_hash(e.value.pr_number, &e.value.head_sha)
                            == sig
                }),
            KIND_OUTCOME => outcomes
                .get(seq)?
                .and_then(|b| outcome_entry(&verdicts, seq, b.value()).ok())
                .is_some_and(|e| e.value.sig_hash == sig && e.value.repo == name),
            KIND_EVENT => events
                .get(seq)?
                .and_then(|b| event_entry(&verdicts, seq, b.value()).ok())
                .is_some_and(|e| e.value.sig_hash.as_deref() == Some(sig) && e.value.repo == name),
            _ => false,
        };
        if !found {
            report.problem(format!(
                "by_sig entry (repo {repo}, {sig}, kind {kind}, {seq}) has no matching row"
            ));
        }
    }
    Ok(())
}

/// `repos` and `repo_names` are each other's inverse.
fn check_repos(txn: &ReadTransaction, report: &mut CheckReport) -> Result<(), StoreError> {
    let repos = txn.open_table(REPOS)?;
    let names = txn.open_table(REPO_NAMES)?;
    for row in repos.iter()? {
        let (name, id) = row?;
        let (name, id) = (name.value(), id.value());
        if id == DEFAULT_REPO || names.get(id)?.map(|n| n.value() == name) != Some(true) {
            report.problem(format!(
                "repository {name:?} has id {id}, which names another"
            ));
        }
    }
    if repos.len()? != names.len()? {
        report.problem(format!(
            "repos has {} entries, repo_names {}",
            repos.len()?,
            names.len()?
        ));
    }
    Ok(())
}

/// Client keys point at stored seqs, and each is in the expiry order once.
fn check_client_keys(
    txn: &ReadTransaction,
    report: &mut CheckReport,
    last_seq: u64,
) -> Result<(), StoreError> {
    let keys = txn.open_table(CLIENT_KEYS)?;
    let by_time = txn.open_table(CLIENT_KEYS_BY_TIME)?;
    for row in keys.iter()? {
        let (key, value) = row?;
        let (seq, created, _) = value.value();
        if seq > last_seq {
            report.problem(format!("a client key points at seq {seq}, after last_seq"));
        }
        if by_time.get((created, key.value()))?.is_none() {
            report.problem(format!(
                "a client key given at {created} is missing from client_keys_by_time"
            ));
        }
    }
    if keys.len()? != by_time.len()? {
        report.problem(format!(
            "client_keys has {} entries, client_keys_by_time {}",
            keys.len()?,
            by_time.len()?
        ));
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
    let maps: [(&str, &Counts, &Counts); 5] = [
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
            "verdicts by repo",
            &stored.verdicts_by_repo,
            &recount.verdicts_by_repo,
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
