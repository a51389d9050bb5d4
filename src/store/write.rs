//! The write path: a batch of records committed in one durable write transaction, with every
//! index and counter updated in that same transaction.
//!
//! Index entries wait for the end of the transaction and are inserted sorted (`deferred.rs`).
//! What the transaction must look up before then it finds in two places: the tables, for what
//! earlier transactions committed, and [`Deferred`]'s maps, for what it wrote itself. So the
//! result at commit is the same as if every entry had been inserted at once.
//!
//! Costs per record are bounded by the record: a verdict's identity is one lookup
//! (`verdict_identities`), its PR counts one read-modify-write per PR and head per transaction, its
//! claims one entry per claim and per distinct term of a claim's first
//! [`MAX_TERMS_PER_TEXT`](crate::model::text::MAX_TERMS_PER_TEXT) terms, its findings what
//! `findings.rs` says (bounded by the verdict's findings and its PR's).
//!
//! The findings memory and the dismissals are written at once rather than deferred: the next
//! record of the transaction (a verdict of the same PR, the same dismissal again) must see them.

use redb::{Key, ReadableTable, Table, TableDefinition, Value, WriteTransaction};

use std::collections::BTreeMap;
use std::sync::Arc;

use super::batch_keys::{self, LineKeyed};
use super::codec::{self, Dictionary, encode_with};
use super::deferred::{Deferred, KeyCheck, client_key_lookup};
use super::dictionary::current_in;
use super::dismissals::{self, DismissalTables};
use super::findings::{self, MemoryTables, RecentFindings};
use super::history::verdict_head;
use super::journaled::Pace;
use super::meta::{self, CounterDeltas};
use super::postings::Posting;
use super::records::{ClientKey, DismissalChange, NewEvent, NewVerdict, Put, Record, Written};
use super::repos::RepoIds;
use super::seq_blocks;
use super::tables::*;
use super::text_index::{claim_doc, count_claim_doc};
use super::values::{EventValue, OutcomeValue, Sighting, VerdictValue};
use super::verdict_lines::{self, EVENT, OUTCOME};
use super::{Store, StoreError};

impl Store {
    /// Writes `puts` in order in one write transaction, durable (synced) before it returns:
    /// through the write-ahead journal for a batch of events (`journaled.rs`), else by a
    /// durable commit. Either every put is applied or, on error, none is.
    ///
    /// For a caller that writes batch after batch with nothing else to run ([`Pace::Alone`]).
    pub fn write(&self, puts: &[Put]) -> Result<Vec<Written>, StoreError> {
        self.write_paced(puts, Pace::Alone)
    }

    /// [`Store::write`], with what the caller knows of the writes around this one (the writer
    /// thread knows how busy the server is).
    pub fn write_paced(&self, puts: &[Put], pace: Pace) -> Result<Vec<Written>, StoreError> {
        // (Takes the journal's lock for a moment.)
        self.check_in_place()?;
        let mut journal = self.shared.journal.lock();
        // While faulted, every write fails at once with the fault, durable commits as events
        // (at 2ab15cf verdicts were committed while events were refused: a review's): after a
        // failed write or sync what the disk holds is unknown until the reopen reads it again.
        if let Some(fault) = self.fault() {
            return Err(StoreError::Unavailable(fault));
        }
        let (written, plain) = match self.write_journaled(&mut journal, puts, pace)? {
            Some(done) => done,
            None => {
                let done = self.write_durably(puts)?;
                // Durable now: everything the journal holds.
                if let Some(journal) = journal.as_mut() {
                    journal.restart();
                }
                done
            }
        };
        drop(journal);
        if plain {
            self.after_plain_writes(puts.len());
        }
        Ok(written)
    }

    fn write_durably(&self, puts: &[Put]) -> Result<(Vec<Written>, bool), StoreError> {
        let txn = self.begin_write()?;
        let done = apply_batch(&txn, puts, None)?;
        txn.commit().map_err(|e| self.commit_failed(e.into()))?;
        Ok(done)
    }

    /// What a durable commit's failure says of its writes. A full disk fails it before its
    /// header is written: nothing stored. Another I/O error may be its last sync's, once the
    /// header that makes it the database's state is written: the commit may survive the
    /// reopen, so its writes may be stored (answered so, not with `Retry-After`, which says
    /// nothing was: a client that obeyed it without a key stored the record twice, a
    /// review's). The store is faulted by the error either way.
    fn commit_failed(&self, e: StoreError) -> StoreError {
        if !e.is_storage_fault() || e.is_no_space() {
            return e;
        }
        self.note_error(&e);
        StoreError::MaybeStored(format!(
            "the commit failed as it was being made durable ({e}), and may have reached the disk"
        ))
    }
}

/// Applies `puts` in `txn`, index entries included, and records `journal_lsn`, the journal
/// entry they came from (`journaled.rs`), when they came through the journal. Returns what
/// became of each put, and whether values were stored plain (the file has no dictionary yet).
pub(super) fn apply_batch(
    txn: &WriteTransaction,
    puts: &[Put],
    journal_lsn: Option<u64>,
) -> Result<(Vec<Written>, bool), StoreError> {
    let mut later = Deferred::default();
    let mut t = Tables::open(txn, &mut later)?;
    let plain = t.dictionary.is_none();
    let written = write_in(&mut t, puts, KeyCheck::Lookup)?;
    t.insert_deferred(KeyCheck::Lookup)?;
    if let Some(lsn) = journal_lsn {
        t.meta.insert(super::journaled::JOURNAL_LSN, lsn)?;
    }
    Ok((written, plain))
}

/// Every table a write may touch, in one transaction; each is opened when first used, so that
/// a transaction opens only the tables its records touch (opening all of them took 13% of a
/// one-event commit's CPU time: docs/benchmarks/log-2026-12.md).
pub(super) struct Tables<'txn> {
    pub meta: Table<'txn, &'static str, u64>,
    pub verdicts: Lazy<'txn, u64, &'static [u8]>,
    pub outcomes: Lazy<'txn, u64, &'static [u8]>,
    pub events: Lazy<'txn, u64, &'static [u8]>,
    pub by_sig: Lazy<'txn, (u32, &'static str, u8, u64), ()>,
    pub verdict_identities: Lazy<'txn, (u32, u64, u64), ()>,
    pub pr_verdicts: Lazy<'txn, (u32, u64, u64), ()>,
    pub prs: Lazy<'txn, (u32, u64), (u64, u64, u64, u64)>,
    pub pr_heads: Lazy<'txn, (u32, u64, &'static str), (u64, u64, u64)>,
    pub claim_hashes: Lazy<'txn, (u64, u32, u64), ()>,
    pub claim_terms: Lazy<'txn, (&'static str, u32, u64), &'static [u8]>,
    pub event_source_seqs: Lazy<'txn, (&'static str, u64), &'static [u8]>,
    pub event_kind_seqs: Lazy<'txn, (&'static str, u64), &'static [u8]>,
    pub import_keys: Lazy<'txn, &'static [u8], u64>,
    pub client_keys: Lazy<'txn, &'static [u8], (u64, u64, u64)>,
    pub client_keys_by_time: Lazy<'txn, (u64, &'static [u8]), ()>,
    pub findings: Lazy<'txn, (u32, u64, u64), &'static [u8]>,
    pub finding_fps: Lazy<'txn, (u32, u64, u64), u64>,
    pub findings_by_last_audit: Lazy<'txn, (u32, u64, u64, u64), u8>,
    pub findings_audits: Lazy<'txn, (u32, u64), u64>,
    pub dismissals: Lazy<'txn, u64, &'static [u8]>,
    pub dismissal_ids: Lazy<'txn, (u32, u64, u64), u64>,
    pub dismissals_by_repo: Lazy<'txn, (u32, u64), u64>,
    pub dismissals_by_scope: Lazy<'txn, (u32, u64, u64), ()>,
    pub repos: RepoIds<'txn>,
    pub later: &'txn mut Deferred,
    /// What verdicts, outcome rows, events and findings are compressed with (none: stored plain): the
    /// dictionary `meta` names in this transaction.
    pub dictionary: Option<Arc<Dictionary>>,
    /// The findings memory's last PR's candidates (see [`RecentFindings`]).
    recent_findings: RecentFindings,
}

/// A table of a write transaction, opened the first time it is used.
pub(super) struct Lazy<'txn, K: Key + 'static, V: Value + 'static> {
    txn: &'txn WriteTransaction,
    definition: TableDefinition<'static, K, V>,
    table: Option<Table<'txn, K, V>>,
}

impl<'txn, K: Key + 'static, V: Value + 'static> Lazy<'txn, K, V> {
    fn new(txn: &'txn WriteTransaction, definition: TableDefinition<'static, K, V>) -> Self {
        Lazy {
            txn,
            definition,
            table: None,
        }
    }

    /// The table, opened now if it was not yet.
    pub(super) fn open(&mut self) -> Result<&mut Table<'txn, K, V>, StoreError> {
        match &mut self.table {
            Some(table) => Ok(table),
            slot @ None => Ok(slot.insert(self.txn.open_table(self.definition)?)),
        }
    }
}

impl<'txn> Tables<'txn> {
    pub(super) fn open(
        txn: &'txn WriteTransaction,
        later: &'txn mut Deferred,
    ) -> Result<Tables<'txn>, StoreError> {
        let meta = txn.open_table(META)?;
        let dictionary = current_in(&meta)?;
        Ok(Tables {
            meta,
            verdicts: Lazy::new(txn, VERDICTS_BY_SEQ),
            outcomes: Lazy::new(txn, OUTCOMES),
            events: Lazy::new(txn, EVENTS),
            by_sig: Lazy::new(txn, BY_SIG),
            verdict_identities: Lazy::new(txn, VERDICT_IDENTITIES),
            pr_verdicts: Lazy::new(txn, PR_VERDICTS),
            prs: Lazy::new(txn, PRS),
            pr_heads: Lazy::new(txn, PR_HEADS),
            claim_hashes: Lazy::new(txn, CLAIM_HASHES),
            claim_terms: Lazy::new(txn, CLAIM_TERMS),
            event_source_seqs: Lazy::new(txn, EVENT_SOURCE_SEQS),
            event_kind_seqs: Lazy::new(txn, EVENT_KIND_SEQS),
            import_keys: Lazy::new(txn, IMPORT_KEYS),
            client_keys: Lazy::new(txn, CLIENT_KEYS),
            client_keys_by_time: Lazy::new(txn, CLIENT_KEYS_BY_TIME),
            findings: Lazy::new(txn, FINDINGS),
            finding_fps: Lazy::new(txn, FINDING_FPS),
            findings_by_last_audit: Lazy::new(txn, FINDINGS_BY_LAST_AUDIT),
            findings_audits: Lazy::new(txn, FINDINGS_AUDITS),
            dismissals: Lazy::new(txn, DISMISSALS),
            dismissal_ids: Lazy::new(txn, DISMISSAL_IDS),
            dismissals_by_repo: Lazy::new(txn, DISMISSALS_BY_REPO),
            dismissals_by_scope: Lazy::new(txn, DISMISSALS_BY_SCOPE),
            repos: RepoIds::open(txn)?,
            later,
            dictionary,
            recent_findings: RecentFindings::default(),
        })
    }

    /// Inserts the entries waiting in `later` into these tables (see [`Deferred::insert`]).
    pub(super) fn insert_deferred(&mut self, check: KeyCheck) -> Result<u64, StoreError> {
        std::mem::take(&mut *self.later).insert(self, check)
    }

    fn memory(&mut self) -> Result<MemoryTables<'_, 'txn>, StoreError> {
        Ok(MemoryTables {
            findings: self.findings.open()?,
            fps: self.finding_fps.open()?,
            by_last_audit: self.findings_by_last_audit.open()?,
            audits: self.findings_audits.open()?,
            dictionary: self.dictionary.as_deref(),
            recent: &mut self.recent_findings,
        })
    }

    fn dismissal_tables(&mut self) -> Result<DismissalTables<'_, 'txn>, StoreError> {
        Ok(DismissalTables {
            dismissals: self.dismissals.open()?,
            ids: self.dismissal_ids.open()?,
            by_repo: self.dismissals_by_repo.open()?,
            by_scope: self.dismissals_by_scope.open()?,
        })
    }

    /// The seq of the verdict with this identity, if one is stored or was written earlier in
    /// this transaction, and the identity's hash: one range lookup of the hash, and a read of
    /// each verdict under it (none for a new verdict, one for a repeated one, more only when
    /// two identities share a 64-bit SHA-256 prefix).
    fn verdict_with_identity(
        &mut self,
        repo: u32,
        pr: u64,
        head: &str,
        at: &str,
    ) -> Result<(u64, Option<u64>), StoreError> {
        let hash = verdict_identity_hash(pr, head, at);
        let is_it = |verdicts: &mut Lazy<'txn, u64, &'static [u8]>, seq: u64| {
            let Some(bytes) = verdicts.open()?.get(seq)? else {
                return Err(StoreError::Dangling {
                    index: "verdict_identities",
                    seq,
                });
            };
            let mut scratch = Vec::new();
            let found = verdict_head(bytes.value(), seq, &mut scratch)?;
            Ok(found.pr_number == pr && found.head_sha == head && found.audited_at == at)
        };
        for seq in self.later.new_ids.seqs(repo, hash) {
            if is_it(&mut self.verdicts, seq)? {
                return Ok((hash, Some(seq)));
            }
        }
        for row in self
            .verdict_identities
            .open()?
            .range((repo, hash, 0)..=(repo, hash, u64::MAX))?
        {
            let seq = row?.0.value().2;
            if is_it(&mut self.verdicts, seq)? {
                return Ok((hash, Some(seq)));
            }
        }
        Ok((hash, None))
    }
}

/// Applies `puts` in `t`'s transaction, leaving their index entries in `t.later`.
pub(super) fn write_in(
    t: &mut Tables<'_>,
    puts: &[Put],
    check: KeyCheck,
) -> Result<Vec<Written>, StoreError> {
    let mut last_seq = meta::get(&t.meta, meta::LAST_SEQ)?;
    let mut counters = CounterDeltas::default();
    let mut written = Vec::with_capacity(puts.len());
    // The outcome row the previous put stored, when it was an audit row: the legacy import
    // stores a verdict's KB row just before the verdict (`verdict_lines.rs`).
    let mut audit_row: Option<(u64, OutcomeValue)> = None;
    // The decisions of the batch lines the loop is in (one request's, matched as a whole).
    let mut run: Option<batch_keys::Run> = None;
    for (i, put) in puts.iter().enumerate() {
        let previous_row = audit_row.take();
        if let (Some(key), KeyCheck::Lookup) = (&put.import_key, check) {
            let stored = match t.later.new_keys.get(key.as_slice()) {
                Some(&seq) => Some(seq),
                None => t
                    .import_keys
                    .open()?
                    .get(key.as_slice())?
                    .map(|seq| seq.value()),
            };
            if let Some(seq) = stored {
                written.push(Written::Duplicate { seq });
                continue;
            }
        }
        let mut line = None;
        if let Some(client) = &put.client_key {
            let known = if client.batch_line_key().is_some() {
                if run.as_ref().is_none_or(|r| r.get(i).is_none()) {
                    let table = &*t.client_keys.open()?;
                    run = Some(batch_keys::decide_run(t.later, table, puts, i)?);
                }
                line = run.as_ref().and_then(|r| r.get(i));
                match line {
                    Some(LineKeyed::Stored(seq)) => Some(Written::Duplicate { seq }),
                    Some(LineKeyed::Refused(seq)) => Some(Written::KeyReused { seq }),
                    Some(LineKeyed::New { .. }) | None => None,
                }
            } else {
                known_client_key(t, client)?
            };
            if let Some(known) = known {
                written.push(known);
                continue;
            }
        }
        let result = match &put.record {
            Record::Verdict(v) => put_verdict(t, &mut last_seq, &mut counters, v, previous_row)?,
            Record::Event(e) => {
                let seq = put_event(t, &mut last_seq, &mut counters, e, None)?;
                Written::Stored {
                    seq,
                    outcome_seq: None,
                    event_seq: None,
                }
            }
            Record::Outcome(o) => {
                let row = &o.row;
                let value = OutcomeValue {
                    received_at_ms: o.received_at_ms,
                    sig_hash: row.sig_hash.clone(),
                    kind: row.kind.clone(),
                    line: row.line.clone(),
                    repo: row.repo.as_str().to_owned(),
                };
                let seq = put_outcome(t, &mut last_seq, &mut counters, &value, None)?;
                if value.kind == "audit" {
                    audit_row = Some((seq, value));
                }
                Written::Stored {
                    seq,
                    outcome_seq: None,
                    event_seq: None,
                }
            }
            Record::Dismissal(DismissalChange::New(new)) => {
                let repo = t.repos.id_for_write(new.repo.as_str())?;
                dismissals::dismiss(t.dismissal_tables()?, repo, &mut last_seq, new)?
            }
            Record::Dismissal(DismissalChange::Revoke { id, at_ms }) => {
                let Tables {
                    dismissals,
                    dismissal_ids,
                    dismissals_by_repo,
                    dismissals_by_scope,
                    repos,
                    ..
                } = &mut *t;
                let tables = DismissalTables {
                    dismissals: dismissals.open()?,
                    ids: dismissal_ids.open()?,
                    by_repo: dismissals_by_repo.open()?,
                    by_scope: dismissals_by_scope.open()?,
                };
                dismissals::revoke(tables, repos, *id, *at_ms)?
            }
        };
        if let (Written::Stored { seq, .. }, Some(key)) = (&result, &put.import_key) {
            match check {
                KeyCheck::Lookup => t.later.new_keys.insert(key.clone(), *seq),
                KeyCheck::Fresh => {
                    t.later.fresh_keys.push((key.clone(), *seq));
                    None
                }
            };
        }
        // A key is first used by this request whether it stored its record or found it stored
        // already (a verdict or dismissal by its identity): either way the key now names that
        // seq, so that another request under it is refused and a retry answered alike.
        if let (Written::Stored { seq, .. } | Written::Duplicate { seq }, Some(client)) =
            (&result, &put.client_key)
        {
            let value = (*seq, client.created_ms, client.fingerprint);
            match line {
                Some(LineKeyed::New { at_position }) => {
                    for key in batch_keys::keys_of_new_line(client, *seq, at_position) {
                        t.later.new_client_keys.insert(key, value);
                    }
                }
                _ => {
                    // Known by its content under the key of the batch it is a line of: `K` for
                    // a write keyed `K#n`, and for one keyed `K`, whose line 1 it is too (a
                    // retry may send it as a batch, at another line).
                    let header = client.position_header().unwrap_or(&client.key);
                    let content = ClientKey::content_key(header, client.fingerprint, *seq);
                    t.later.new_client_keys.insert(content, value);
                    if client.position_header().is_none() {
                        t.later.new_client_keys.insert(client.line_one_key(), value);
                    }
                    t.later.new_client_keys.insert(client.key.clone(), value);
                }
            }
        }
        written.push(result);
    }
    t.meta.insert(meta::LAST_SEQ, last_seq)?;
    counters.apply(&mut t.meta)?;
    Ok(written)
}

/// What a put's client key (not a batch line's) says before it is applied: a duplicate when it
/// names this request already, refused when it names another; `None` when the key is new.
fn known_client_key(t: &mut Tables<'_>, client: &ClientKey) -> Result<Option<Written>, StoreError> {
    let table = &*t.client_keys.open()?;
    let mut found = client_key_lookup(t.later, table, &client.key)?;
    // A single write keyed `K` after a batch keyed `K`: the batch's line 1 (a client that
    // retried a write as a one-line batch, or the other way round, stored it twice at
    // 3ab4e2b: a review's).
    if found.is_none() && client.position_header().is_none() {
        found = client_key_lookup(t.later, table, &client.line_one_key())?;
    }
    Ok(found.map(|(seq, fingerprint)| client.found(seq, fingerprint)))
}

/// Index of an overall in the PR count tuples.
pub(super) fn overall_slot(overall: &str) -> Option<usize> {
    match overall {
        "approve" => Some(0),
        "request_changes" => Some(1),
        "block" => Some(2),
        _ => None,
    }
}

/// Stores a verdict, with its KB row and event when it brings them; `previous_row` is the
/// audit row stored by the put before it, which becomes a reference to it when the verdict
/// recomputes it.
fn put_verdict(
    t: &mut Tables<'_>,
    last_seq: &mut u64,
    counters: &mut CounterDeltas,
    new: &NewVerdict,
    previous_row: Option<(u64, OutcomeValue)>,
) -> Result<Written, StoreError> {
    let v = &new.verdict;
    let repo = t.repos.id_for_write(v.repo.as_str())?;
    let (identity_hash, found) =
        t.verdict_with_identity(repo, v.pr_number, &v.head_sha, &v.audited_at)?;
    if let Some(seq) = found {
        return Ok(Written::Duplicate { seq });
    }
    let sig_hash = v.sig_hash();
    *last_seq += 1;
    let seq = *last_seq;
    let value = VerdictValue::from_verdict(v, new.received_at_ms);
    t.verdicts
        .open()?
        .insert(seq, value.encode(t.dictionary.as_deref()).as_slice())?;
    if let Some((row_seq, row)) = previous_row
        && let Some(reference) = OUTCOME.reference(&row, row_seq, seq, &value.as_view().head())
    {
        t.outcomes.open()?.insert(row_seq, reference.as_slice())?;
        // Found through the verdict's entry from now on.
        let entry = (repo, row.sig_hash, KIND_OUTCOME, row_seq);
        if let Some(at) = t.later.by_sig.iter().rposition(|e| *e == entry) {
            t.later.by_sig.remove(at);
        }
    }
    let from = Some((seq, &value));
    let later = &mut *t.later;
    later
        .by_sig
        .push((repo, sig_hash.clone(), KIND_VERDICT, seq));
    later.new_ids.insert(repo, identity_hash, seq);
    later.pr_verdicts.push((repo, v.pr_number, seq));
    let slot = overall_slot(v.overall.as_str());
    let pr = later.prs.entry((repo, v.pr_number)).or_default();
    pr.last_seq = pr.last_seq.max(seq);
    let head = later
        .heads
        .entry((repo, v.pr_number, v.head_sha.to_ascii_lowercase()))
        .or_default();
    if let Some(slot) = slot {
        pr.by_overall[slot] += 1;
        head[slot] += 1;
    }
    for claim in &v.claims {
        later.claim_hashes.push((claim.hash.0, repo, seq));
    }
    for (index, terms) in &new.claim_terms {
        let doc = claim_doc(seq, *index);
        for (term, tf) in &terms.terms {
            let posting = Posting {
                doc,
                tf: *tf,
                len: terms.len,
            };
            later.claim_terms.push(term, repo, posting);
        }
        count_claim_doc(counters, repo, terms.len, 1);
    }
    let sighting = Sighting {
        seq,
        head_sha: v.head_sha.clone(),
        audited_at: v.audited_at.clone(),
    };
    // The findings were fingerprinted and analysed when the verdict was parsed, off this thread.
    let findings = v.findings.as_deref();
    findings::remember(&mut t.memory()?, repo, v.pr_number, &sighting, findings)?;
    counters.add(meta::VERDICTS, 1);
    counters.add_keyed(meta::VERDICTS_BY_OVERALL, v.overall.as_str(), 1);
    counters.add_keyed(meta::VERDICTS_BY_REPO, v.repo.as_str(), 1);

    let outcome_seq = match &new.outcome_line {
        Some(line) => Some(put_outcome(
            t,
            last_seq,
            counters,
            &OutcomeValue {
                received_at_ms: new.received_at_ms,
                sig_hash: sig_hash.clone(),
                kind: "audit".into(),
                line: line.clone(),
                repo: v.repo.as_str().to_owned(),
            },
            from,
        )?),
        None => None,
    };
    let event_seq = match &new.event {
        Some(event) => Some(put_event(t, last_seq, counters, event, from)?),
        None => None,
    };
    Ok(Written::Stored {
        seq,
        outcome_seq,
        event_seq,
    })
}

/// Stores an outcome row; `verdict` is the verdict (and its seq) the row was made from, if
/// any, which stores it as a reference when it recomputes it (`verdict_lines.rs`).
fn put_outcome(
    t: &mut Tables<'_>,
    last_seq: &mut u64,
    counters: &mut CounterDeltas,
    value: &OutcomeValue,
    verdict: Option<(u64, &VerdictValue)>,
) -> Result<u64, StoreError> {
    *last_seq += 1;
    let seq = *last_seq;
    let dictionary = t.dictionary.as_deref();
    let stored = OUTCOME.stored(value, seq, verdict, |v| encode_with(v, dictionary));
    t.outcomes.open()?.insert(seq, stored.as_slice())?;
    // A reference is found through its verdict's `by_sig` entry (`verdict_lines.rs`).
    if !value.sig_hash.is_empty() && !codec::is_reference(&stored) {
        let repo = t.repos.id_for_write(&value.repo)?;
        t.later
            .by_sig
            .push((repo, value.sig_hash.clone(), KIND_OUTCOME, seq));
    }
    counters.add(meta::OUTCOMES, 1);
    counters.add_keyed(meta::OUTCOMES_BY_KIND, &value.kind, 1);
    Ok(seq)
}

/// Stores an event; `verdict` as for [`put_outcome`].
fn put_event(
    t: &mut Tables<'_>,
    last_seq: &mut u64,
    counters: &mut CounterDeltas,
    new: &NewEvent,
    verdict: Option<(u64, &VerdictValue)>,
) -> Result<u64, StoreError> {
    *last_seq += 1;
    let seq = *last_seq;
    let value = &new.value;
    let dictionary = t.dictionary.as_deref();
    let stored = EVENT.stored(value, seq, verdict, |v| encode_with(v, dictionary));
    t.events.open()?.insert(seq, stored.as_slice())?;
    let repo = t.repos.id_for_write(&value.repo)?;
    let later = &mut *t.later;
    later.by_source.push(&value.source, seq);
    if let Some(sig_hash) = &value.sig_hash
        && !codec::is_reference(&stored)
    {
        later.by_sig.push((repo, sig_hash.clone(), KIND_EVENT, seq));
    }
    if let Some(kind) = &value.event_kind {
        later.by_kind.push(kind, seq);
    }
    count_event(counters, value, 1);
    Ok(seq)
}

/// Adds (`delta` 1) or takes away (`delta` -1) an event's counts.
fn count_event(counters: &mut CounterDeltas, value: &EventValue, delta: i64) {
    if let Some(kind) = &value.event_kind {
        counters.add_keyed(meta::EVENTS_BY_KIND, kind, delta);
    }
    counters.add(meta::EVENTS, delta);
    counters.add_keyed(meta::EVENTS_BY_SOURCE, &value.source, delta);
    counters.add(
        if value.success {
            meta::EVENTS_SUCCESS
        } else {
            meta::EVENTS_FAILURE
        },
        delta,
    );
}

/// Deletes events `seqs` from the table and every index, at once (nothing waits for the
/// commit), keeping counters true. Used by retention, in transactions of its own; returns how
/// many were deleted.
pub(super) fn delete_events(txn: &WriteTransaction, seqs: &[u64]) -> Result<u64, StoreError> {
    let mut events = txn.open_table(EVENTS)?;
    let verdicts = txn.open_table(VERDICTS_BY_SEQ)?;
    let mut by_source = txn.open_table(EVENT_SOURCE_SEQS)?;
    let mut by_kind = txn.open_table(EVENT_KIND_SEQS)?;
    let mut by_sig = txn.open_table(BY_SIG)?;
    let mut repos = RepoIds::open(txn)?;
    let mut counters = CounterDeltas::default();
    let mut n_deleted = 0;
    // The filters' seqs, by text: each block loses all of its deleted seqs in one rewrite.
    let mut sources: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut kinds: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for &seq in seqs {
        let Some(bytes) = events.remove(seq)? else {
            continue;
        };
        let value = verdict_lines::event(&verdicts, seq, bytes.value())?;
        drop(bytes);
        if let Some(sig_hash) = &value.sig_hash {
            let repo = repos.id_of_stored(&value.repo)?;
            by_sig.remove((repo, sig_hash.as_str(), KIND_EVENT, seq))?;
        }
        count_event(&mut counters, &value, -1);
        sources.entry(value.source).or_default().push(seq);
        if let Some(kind) = value.event_kind {
            kinds.entry(kind).or_default().push(seq);
        }
        n_deleted += 1;
    }
    for (table, name, by_text) in [
        (&mut by_source, "event_source_seqs", sources),
        (&mut by_kind, "event_kind_seqs", kinds),
    ] {
        for (text, mut seqs) in by_text {
            seqs.sort_unstable();
            seq_blocks::remove(table, name, &text, &seqs)?;
        }
    }
    counters.apply(&mut txn.open_table(META)?)?;
    Ok(n_deleted)
}
