//! Storage tests on real redb files: batches in, every read path out, compared with a model of
//! what was written; counters against a recount; `check` on healthy and damaged files.

use std::collections::BTreeMap;

use crate::synth::Synth;
use lakehouse_kb::intake::{event_record, outcome_record, verdict_record};
use lakehouse_kb::model::{ClaimHash, Repo, Source, Verdict};
use lakehouse_kb::store::{
    EventFilter, Put, ReadBudget, Record, Retention, SigRecord, Store, StoreOptions, Written,
    codec, tables,
};
use proptest::prelude::*;
use redb::{ReadableDatabase, ReadableTable, TableHandle};

/// What the test wrote, kept the simple way: one entry per stored record.
#[derive(Default)]
struct Model {
    /// seq → (kind, sig_hash or "", line for rows and events)
    records: BTreeMap<u64, (&'static str, String, String)>,
    /// seq → (pr_number, sig_hash) of verdicts
    verdicts: BTreeMap<u64, (u64, String)>,
    /// seq → (source, event_kind, success)
    events: BTreeMap<u64, (String, Option<String>, bool)>,
}

impl Model {
    fn apply(&mut self, record: &Record, written: Written) {
        let Written::Stored {
            seq,
            outcome_seq,
            event_seq,
        } = written
        else {
            return;
        };
        match record {
            Record::Verdict(v) => {
                let sig = v.verdict.sig_hash();
                self.records
                    .insert(seq, ("verdict", sig.clone(), String::new()));
                self.verdicts
                    .insert(seq, (v.verdict.pr_number, sig.clone()));
                if let (Some(s), Some(line)) = (outcome_seq, &v.outcome_line) {
                    self.records
                        .insert(s, ("outcome", sig.clone(), line.clone()));
                }
                if let (Some(s), Some(e)) = (event_seq, &v.event) {
                    self.add_event(s, e);
                }
            }
            Record::Event(e) => self.add_event(seq, e),
            Record::Outcome(o) => {
                let row = &o.row;
                self.records
                    .insert(seq, ("outcome", row.sig_hash.clone(), row.line.clone()));
            }
            // Dismissals are modelled by tests/it/findings/.
            Record::Dismissal(_) => {}
        }
    }

    fn add_event(&mut self, seq: u64, e: &lakehouse_kb::store::NewEvent) {
        let e = &e.value;
        let sig = e.sig_hash.clone().unwrap_or_default();
        self.records.insert(seq, ("event", sig, e.line.clone()));
        self.events
            .insert(seq, (e.source.clone(), e.event_kind.clone(), e.success));
    }

    fn lines(&self, kind: &str, after: u64) -> Vec<(u64, String)> {
        self.records
            .range(after + 1..)
            .filter(|(_, r)| r.0 == kind)
            .map(|(seq, r)| (*seq, r.2.clone()))
            .collect()
    }
}

fn mixed_records(synth: &mut Synth, n: usize, now_ms: u64) -> Vec<Record> {
    (0..n)
        .map(|_| match synth.rng().below(10) {
            0..=2 => verdict_record(synth.verdict().as_bytes(), now_ms).unwrap(),
            3..=6 => event_record(synth.event().as_bytes(), now_ms).unwrap(),
            _ => outcome_record(synth.outcome().as_bytes(), now_ms).unwrap(),
        })
        .collect()
}

fn write_all(store: &Store, model: &mut Model, records: Vec<Record>, batch: usize) {
    for chunk in records.chunks(batch) {
        let puts: Vec<Put> = chunk.iter().cloned().map(Put::from).collect();
        let written = store.write(&puts).unwrap();
        assert_eq!(written.len(), puts.len());
        for (record, w) in chunk.iter().zip(written) {
            model.apply(record, w);
        }
    }
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
    (dir, store)
}

/// A store that never trains a compression dictionary: its values' bytes depend only on what
/// was written, not on when its dictionary was trained.
fn plain_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        dictionary: lakehouse_kb::store::DictionaryOptions {
            train_at: u64::MAX,
            ..Default::default()
        },
        ..StoreOptions::default()
    };
    let store = Store::open(&dir.path().join("kb.redb"), options).unwrap();
    (dir, store)
}

#[test]
fn hundred_thousand_mixed_records_read_back_every_way() {
    let (dir, store) = temp_store();
    let mut model = Model::default();
    let mut synth = Synth::new(42, 2_000);
    write_all(
        &store,
        &mut model,
        mixed_records(&mut synth, 100_000, 1_000),
        1_000,
    );

    // seqs are gap-free from 1.
    let last = *model.records.keys().last().unwrap();
    assert_eq!(model.records.len() as u64, last);
    assert_eq!(store.last_seq().unwrap(), last);

    // By seq range, as the export reads: every line, in order, from several checkpoints.
    for after in [0, 1, last / 3, last - 1, last] {
        let mut got = Vec::new();
        store
            .for_each_outcome_line::<lakehouse_kb::store::StoreError>(after, |seq, line| {
                got.push((seq, line.to_owned()));
                Ok(())
            })
            .unwrap();
        assert_eq!(got, model.lines("outcome", after), "outcomes after {after}");
        let mut got = Vec::new();
        store
            .for_each_event_line::<lakehouse_kb::store::StoreError>(after, |seq, line| {
                got.push((seq, line.to_owned()));
                Ok(())
            })
            .unwrap();
        assert_eq!(got, model.lines("event", after), "events after {after}");
    }

    // By sig_hash: every record under a sample of sig_hashes, paged.
    let sigs: Vec<String> = model
        .records
        .values()
        .map(|r| r.1.clone())
        .filter(|s| !s.is_empty())
        .step_by(997)
        .collect();
    for sig in &sigs {
        let want: Vec<u64> = model
            .records
            .iter()
            .filter(|(_, r)| &r.1 == sig)
            .map(|(s, _)| *s)
            .collect();
        let mut got = Vec::new();
        let mut after = 0;
        loop {
            let page = store.by_sig(&Repo::default(), sig, after, 2).unwrap();
            got.extend(page.items.iter().map(SigRecord::seq));
            after = got.last().copied().unwrap_or(after);
            if !page.more {
                break;
            }
        }
        assert_eq!(got, want, "sig_hash {sig}");
    }

    // By prefix: all heads of a sample of PRs, and pr6- is not pr60-.
    for pr in (1..=2_000).step_by(97).chain([6, 60]) {
        let want: Vec<u64> = model
            .verdicts
            .iter()
            .filter(|(_, v)| v.0 == pr)
            .map(|(s, _)| *s)
            .collect();
        let got = store.pr_verdict_seqs(&Repo::default(), pr).unwrap();
        assert_eq!(got, want, "pr {pr}");
    }

    // Newest first with a cursor, per source: no seq twice, none missed.
    for source in Source::ALL {
        let filter = EventFilter {
            source: Some(source),
            ..Default::default()
        };
        let want: Vec<u64> = model
            .events
            .iter()
            .rev()
            .filter(|(_, e)| e.0 == source.as_str())
            .map(|(s, _)| *s)
            .collect();
        let mut got = Vec::new();
        let mut before = None;
        loop {
            let page = store.events_page(&filter, before, 1_000).unwrap();
            got.extend(page.items.iter().map(|e| e.seq));
            before = got.last().copied();
            if !page.more {
                break;
            }
        }
        assert_eq!(got, want, "source {source:?}");
    }

    // Counters equal a recount of the model.
    let stats = store.stats().unwrap();
    let count = |kind| model.records.values().filter(|r| r.0 == kind).count() as u64;
    assert_eq!(stats.verdicts, count("verdict"));
    assert_eq!(stats.outcomes, count("outcome"));
    assert_eq!(stats.events, count("event"));
    assert_eq!(
        stats.events_success,
        model.events.values().filter(|e| e.2).count() as u64
    );
    let mut by_source = BTreeMap::new();
    for e in model.events.values() {
        *by_source.entry(e.0.clone()).or_insert(0u64) += 1;
    }
    assert_eq!(stats.events_by_source, by_source);

    let path = store.path().to_owned();
    drop(store);
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    let report = store.check().unwrap();
    assert!(report.passed(), "{:?}", report.problems);
    assert_eq!(report.verdicts, count("verdict"));
    drop(dir);
}

#[test]
fn check_finds_a_damaged_index_and_a_wrong_counter() {
    let (_dir, store) = temp_store();
    let mut model = Model::default();
    let mut synth = Synth::new(3, 20);
    write_all(
        &store,
        &mut model,
        mixed_records(&mut synth, 300, 1_000),
        100,
    );
    let path = store.path().to_owned();
    drop(store);

    let damage = |f: &dyn Fn(&redb::WriteTransaction)| {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        f(&txn);
        txn.commit().unwrap();
    };
    let problems = || {
        let mut store = Store::open(&path, StoreOptions::default()).unwrap();
        store.check().unwrap().problems
    };
    assert!(problems().is_empty());

    // An event's sig_hash index entry removed: a row that is not indexed. (An event stored
    // whole: one stored as a reference to its verdict has no entry of its own.)
    let stored_whole = |seq: u64| {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let events = txn.open_table(tables::EVENTS).unwrap();
        !codec::is_reference(events.get(seq).unwrap().unwrap().value())
    };
    let (seq, sig) = model
        .events
        .keys()
        .find_map(|s| {
            Some((*s, model.records[s].1.clone()))
                .filter(|(seq, sig)| !sig.is_empty() && stored_whole(*seq))
        })
        .unwrap();
    damage(&|txn| {
        txn.open_table(tables::BY_SIG)
            .unwrap()
            .remove((0, sig.as_str(), tables::KIND_EVENT, seq))
            .unwrap();
    });
    let found = problems();
    assert!(
        found
            .iter()
            .any(|p| p == &format!("event seq {seq} is missing from by_sig")),
        "{found:?}"
    );
    damage(&|txn| {
        txn.open_table(tables::BY_SIG)
            .unwrap()
            .insert((0, sig.as_str(), tables::KIND_EVENT, seq), ())
            .unwrap();
    });
    assert!(problems().is_empty());

    // An index entry pointing at no row.
    damage(&|txn| {
        txn.open_table(tables::BY_SIG)
            .unwrap()
            .insert((0, "nowhere", tables::KIND_OUTCOME, 999_999), ())
            .unwrap();
    });
    let found = problems();
    assert!(
        found
            .iter()
            .any(|p| p
                .contains("by_sig entry (repo 0, nowhere, kind 1, 999999) has no matching row")),
        "{found:?}"
    );
    damage(&|txn| {
        txn.open_table(tables::BY_SIG)
            .unwrap()
            .remove((0, "nowhere", tables::KIND_OUTCOME, 999_999))
            .unwrap();
    });

    // The same verdict stored twice under its sig_hash (what idempotency must prevent).
    let (&vseq, (_, vsig)) = model.verdicts.iter().next().unwrap();
    damage(&|txn| {
        let mut verdicts = txn.open_table(tables::VERDICTS_BY_SEQ).unwrap();
        let bytes = verdicts.get(vseq).unwrap().unwrap().value().to_vec();
        verdicts.insert(999_998, bytes.as_slice()).unwrap();
        txn.open_table(tables::BY_SIG)
            .unwrap()
            .insert((0, vsig.as_str(), tables::KIND_VERDICT, 999_998), ())
            .unwrap();
    });
    let found = problems();
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("verdict seq 999998 repeats an earlier verdict")),
        "{found:?}"
    );
    damage(&|txn| {
        txn.open_table(tables::VERDICTS_BY_SEQ)
            .unwrap()
            .remove(999_998)
            .unwrap();
        txn.open_table(tables::BY_SIG)
            .unwrap()
            .remove((0, vsig.as_str(), tables::KIND_VERDICT, 999_998))
            .unwrap();
    });

    // A counter that no longer matches the rows.

    damage(&|txn| {
        let mut meta = txn.open_table(tables::META).unwrap();
        let n = meta.get("count/verdicts").unwrap().unwrap().value();
        meta.insert("count/verdicts", n + 1).unwrap();
    });
    let found = problems();
    assert!(
        found.iter().any(|p| p.starts_with("counter verdicts is")),
        "{found:?}"
    );
}

/// A read that meets an index entry pointing at no record says which index it was (it used to
/// say "verdict index" or "events index", names of no table).
#[test]
fn a_dangling_index_entry_is_reported_with_its_table() {
    let (_dir, store) = temp_store();
    let mut model = Model::default();
    let mut synth = Synth::new(5, 10);
    write_all(&store, &mut model, mixed_records(&mut synth, 20, 1_000), 20);
    let path = store.path().to_owned();
    drop(store);
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let mut by_sig = txn.open_table(tables::BY_SIG).unwrap();
        by_sig
            .insert((0, "gone-verdict", tables::KIND_VERDICT, 999_999), ())
            .unwrap();
        by_sig
            .insert((0, "gone-event", tables::KIND_EVENT, 999_998), ())
            .unwrap();
        drop(by_sig);
        txn.open_table(tables::EVENT_KIND_SEQS)
            .unwrap()
            .insert(
                ("gone", 999_997),
                tables::encode_seq_block(&[999_997]).as_slice(),
            )
            .unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let by_sig = |sig: &str| {
        store
            .by_sig(&Repo::default(), sig, 0, 10)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        by_sig("gone-verdict"),
        "by_sig points at seq 999999, which is not stored"
    );
    assert_eq!(
        by_sig("gone-event"),
        "by_sig points at seq 999998, which is not stored"
    );
    let filter = EventFilter {
        event_kind: Some("gone".into()),
        ..EventFilter::default()
    };
    assert_eq!(
        store
            .events_page(&filter, None, 10)
            .unwrap_err()
            .to_string(),
        "event_kind_seqs points at seq 999997, which is not stored"
    );
}

#[test]
fn repeated_verdict_is_a_duplicate_and_a_reaudit_is_new() {
    let (_dir, store) = temp_store();
    let mut synth = Synth::new(1, 5);
    let text = synth.verdict();
    let first = store
        .write(&[verdict_record(text.as_bytes(), 1).unwrap().into()])
        .unwrap()[0];
    let Written::Stored {
        seq,
        outcome_seq,
        event_seq,
    } = first
    else {
        panic!("{first:?}")
    };
    assert_eq!((outcome_seq, event_seq), (Some(seq + 1), Some(seq + 2)));
    // Twice in one batch and once more later: nothing new, the original seq.
    let again = store
        .write(&[
            verdict_record(text.as_bytes(), 2).unwrap().into(),
            verdict_record(text.as_bytes(), 3).unwrap().into(),
        ])
        .unwrap();
    assert_eq!(
        again,
        vec![Written::Duplicate { seq }, Written::Duplicate { seq }]
    );
    assert_eq!(store.last_seq().unwrap(), seq + 2);

    // Same head, new audited_at: a re-audit, stored under the same sig_hash.
    let v = Verdict::parse(&text).unwrap();
    let reaudit = text.replace(&v.audited_at, "2030-01-01T00:00:00.000Z");
    let w = store
        .write(&[verdict_record(reaudit.as_bytes(), 4).unwrap().into()])
        .unwrap()[0];
    assert!(matches!(w, Written::Stored { .. }));
    let under_sig = store
        .by_sig(&Repo::default(), &v.sig_hash(), 0, 10)
        .unwrap();
    let n_verdicts = under_sig
        .items
        .iter()
        .filter(|r| matches!(r, SigRecord::Verdict(_)))
        .count();
    assert_eq!(n_verdicts, 2);
    let stats = store.stats().unwrap();
    assert_eq!((stats.verdicts, stats.outcomes, stats.events), (2, 2, 2));

    // A new verdict twice in the batch that stores it: the second finds the first, written
    // earlier in the same transaction.
    let other = synth.verdict();
    let both = store
        .write(&[
            verdict_record(other.as_bytes(), 5).unwrap().into(),
            verdict_record(other.as_bytes(), 6).unwrap().into(),
        ])
        .unwrap();
    let Written::Stored { seq: new_seq, .. } = both[0] else {
        panic!("{both:?}")
    };
    assert_eq!(both[1], Written::Duplicate { seq: new_seq });
    assert_eq!(store.stats().unwrap().verdicts, 3);
}

/// Verdict identities are indexed by a 64-bit hash: a verdict whose hash is already taken by
/// another identity (forced here by an entry written under the new identity's hash) is stored,
/// not taken for a repeat of the other one, and a retry of either is still a duplicate.
#[test]
fn a_verdict_whose_identity_hash_is_taken_by_another_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let mut synth = Synth::new(2, 5);
    let (first, second) = (synth.verdict(), synth.verdict());
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let written = store
        .write(&[verdict_record(first.as_bytes(), 1).unwrap().into()])
        .unwrap()[0];
    let Written::Stored { seq: first_seq, .. } = written else {
        panic!("{written:?}")
    };
    drop(store);
    let v = Verdict::parse(&second).unwrap();
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let hash = tables::verdict_identity_hash(v.pr_number, &v.head_sha, &v.audited_at);
        txn.open_table(tables::VERDICT_IDENTITIES)
            .unwrap()
            .insert((tables::DEFAULT_REPO, hash, first_seq), ())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let written = store
        .write(&[verdict_record(second.as_bytes(), 2).unwrap().into()])
        .unwrap()[0];
    let Written::Stored {
        seq: second_seq, ..
    } = written
    else {
        panic!("{written:?}")
    };
    let again = store
        .write(&[
            verdict_record(second.as_bytes(), 3).unwrap().into(),
            verdict_record(first.as_bytes(), 3).unwrap().into(),
        ])
        .unwrap();
    assert_eq!(
        again,
        vec![
            Written::Duplicate { seq: second_seq },
            Written::Duplicate { seq: first_seq }
        ]
    );
    assert_eq!(store.stats().unwrap().verdicts, 2);
}

/// Verdicts share their sig_hash's index with any number of rows and events under it: history
/// (heads of PR 6, not of PR 60), the identity check, and the paged lookups by sig_hash must
/// keep each kind apart and merge them in seq order.
#[test]
fn verdict_reads_among_rows_and_events_of_the_same_sig_hash() {
    let (_dir, store) = temp_store();
    let verdict = |pr: u64, head: &str, at: &str| {
        let body = format!(
            r#"{{"pr_number":{pr},"head_sha":"{head}","audited_at":"{at}","overall":"approve",
                "one_liner":"ok","findings":[],"claims":["c"],
                "metrics":{{"findings_block":0,"findings_warn":0}}}}"#
        );
        Put::from(verdict_record(body.as_bytes(), 1).unwrap())
    };
    let (head_a, head_b) = (
        &format!("aaaaaaaa{}", "1".repeat(32)),
        &format!("bbbbbbbb{}", "2".repeat(32)),
    );
    let sig_a = "pr6-aaaaaaaa";
    let event = |n: u64| {
        let body = format!(r#"{{"source":"agent","sig_hash":"{sig_a}","n":{n}}}"#);
        Put::from(event_record(body.as_bytes(), 1).unwrap())
    };
    let row =
        Put::from(outcome_record(format!(r#"{{"sig_hash":"{sig_a}"}}"#).as_bytes(), 1).unwrap());

    let mut puts = vec![event(0), row.clone()];
    puts.push(verdict(6, head_a, "t1"));
    puts.extend((1..40).map(event));
    puts.push(verdict(60, head_a, "t1"));
    puts.push(verdict(6, head_b, "t1"));
    let first = store.write(&puts).unwrap();
    let a1 = first[2].seq();
    let (c1, b1) = (first[42].seq(), first[43].seq());
    // More events first, then a re-audit of head A and its repeat, in one batch.
    let mut puts: Vec<Put> = (40..80).map(event).collect();
    puts.push(verdict(6, head_a, "t2"));
    puts.push(verdict(6, head_a, "t1"));
    puts.push(verdict(6, head_a, "t2"));
    let second = store.write(&puts).unwrap();
    let a2 = second[40].seq();
    assert_eq!(second[41], Written::Duplicate { seq: a1 });
    assert_eq!(second[42], Written::Duplicate { seq: a2 });

    let d = Repo::default();
    assert_eq!(store.pr_verdict_seqs(&d, 6).unwrap(), vec![a1, b1, a2]);
    assert_eq!(store.pr_verdict_seqs(&d, 60).unwrap(), vec![c1]);

    // Everything under sig A, 7 at a time: the verdicts, their KB rows and events, the row and
    // the 80 events, each once, in seq order.
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.by_sig(&d, sig_a, after, 7).unwrap();
        all.extend(page.items.iter().map(SigRecord::seq));
        after = *all.last().unwrap();
        if !page.more {
            break;
        }
    }
    let verdicts = all.iter().filter(|&&s| s == a1 || s == a2).count();
    assert_eq!(verdicts, 2);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
    // 2 verdicts with their KB row and event each, 1 row, 80 events.
    assert_eq!(all.len(), 2 * 3 + 1 + 80);
    let filter = EventFilter {
        sig_hash: Some(sig_a.to_owned()),
        ..EventFilter::default()
    };
    assert_eq!(
        store.events_page(&filter, None, 1000).unwrap().items.len(),
        80 + 2
    );
}

/// An outcome row (sig_hash `abc`) with the import key `key`.
fn keyed_outcome(key: &[u8]) -> Put {
    Put {
        client_key: None,
        record: outcome_record(br#"{"sig_hash":"abc","n":1}"#, 0).unwrap(),
        import_key: Some(key.to_vec()),
    }
}

#[test]
fn import_key_makes_a_put_idempotent() {
    let (_dir, store) = temp_store();
    let first = store
        .write(&[keyed_outcome(b"k1"), keyed_outcome(b"k2")])
        .unwrap();
    let again = store
        .write(&[
            keyed_outcome(b"k1"),
            keyed_outcome(b"k2"),
            keyed_outcome(b"k3"),
        ])
        .unwrap();
    assert_eq!(
        &again[..2],
        &[
            Written::Duplicate {
                seq: first[0].seq()
            },
            Written::Duplicate {
                seq: first[1].seq()
            }
        ]
    );
    assert!(matches!(again[2], Written::Stored { seq: 3, .. }));
    assert_eq!(store.stats().unwrap().outcomes, 3);
}

/// Import keys are inserted at the end of the transaction (in key order): a key repeated
/// within one batch must still be a duplicate the second time.
#[test]
fn an_import_key_twice_in_one_batch_is_stored_once() {
    let (_dir, store) = temp_store();
    let written = store
        .write(&[
            keyed_outcome(b"k1"),
            keyed_outcome(b"k2"),
            keyed_outcome(b"k1"),
        ])
        .unwrap();
    assert!(matches!(written[0], Written::Stored { seq: 1, .. }));
    assert!(matches!(written[1], Written::Stored { seq: 2, .. }));
    assert_eq!(written[2], Written::Duplicate { seq: 1 });
    assert_eq!(store.stats().unwrap().outcomes, 2);
    let again = store.write(&[keyed_outcome(b"k2")]).unwrap();
    assert_eq!(again[0], Written::Duplicate { seq: 2 });
}

/// Every entry of every table, for comparing two files.
fn dump(path: &std::path::Path) -> Vec<String> {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let mut out = Vec::new();
    macro_rules! dump {
        ($($table:expr),*) => {$(
            for row in txn.open_table($table).unwrap().iter().unwrap() {
                let (key, value) = row.unwrap();
                out.push(format!("{} {:?} {:?}", $table.name(), key.value(), value.value()));
            }
        )*};
    }
    dump!(
        tables::META,
        tables::VERDICTS_BY_SEQ,
        tables::OUTCOMES,
        tables::EVENTS,
        tables::EVENT_SOURCE_SEQS,
        tables::EVENT_KIND_SEQS,
        tables::IMPORT_KEYS,
        tables::REPOS,
        tables::REPO_NAMES,
        tables::BY_SIG,
        tables::VERDICT_IDENTITIES,
        tables::PR_VERDICTS,
        tables::PRS,
        tables::PR_HEADS,
        tables::CLAIM_HASHES,
        tables::CLAIM_TERMS,
        tables::CLIENT_KEYS,
        tables::CLIENT_KEYS_BY_TIME
    );
    // Each file's own feed history, random by design: not what was stored.
    out.retain(|row| !row.starts_with("meta \"feed/history\""));
    out
}

/// The import's bulk writer (many writes per transaction, index entries inserted at each
/// commit, import keys not looked up while only its own are stored) must store exactly what
/// `Store::write` stores for the same puts, duplicates included: with a commit every 2,400
/// puts, and with one transaction large enough for its index entries to be inserted on
/// several threads.
#[test]
fn a_bulk_writer_stores_byte_for_byte_what_write_stores() {
    let mut synth = Synth::new(7, 300);
    let mut records = mixed_records(&mut synth, 20_000, 1_000);
    // Verdicts given again, in the same transaction and in later ones: duplicates.
    let verdicts: Vec<Record> = records
        .iter()
        .filter(|r| matches!(r, Record::Verdict(_)))
        .take(20)
        .cloned()
        .collect();
    records.splice(1_000..1_000, verdicts.clone());
    records.extend(verdicts);
    let puts: Vec<Put> = (0..)
        .zip(records)
        .map(|(i, record)| Put {
            record,
            import_key: Some(format!("key {i}").into_bytes()),
            client_key: None,
        })
        .collect();

    let (plain_dir, plain) = plain_store();
    let mut expected = Vec::new();
    for chunk in puts.chunks(1_000) {
        expected.extend(plain.write(chunk).unwrap());
    }
    let (bulk_dir, bulk) = plain_store();
    let mut writer = bulk.bulk_writer();
    let mut got = Vec::new();
    for (i, chunk) in puts.chunks(300).enumerate() {
        got.extend(writer.write(chunk).unwrap());
        if i % 8 == 7 {
            writer.commit().unwrap();
        }
    }
    writer.commit().unwrap();
    assert_eq!(got, expected);
    let n_duplicates = got
        .iter()
        .filter(|w| matches!(w, Written::Duplicate { .. }))
        .count();
    assert_eq!(n_duplicates, 40);

    // Now that the store holds keys, a new bulk writer looks them up: all duplicates.
    let mut again = bulk.bulk_writer();
    let written = again.write(&puts[..500]).unwrap();
    again.commit().unwrap();
    let seqs: Vec<u64> = expected[..500].iter().map(Written::seq).collect();
    assert!(
        written
            .iter()
            .zip(seqs)
            .all(|(w, seq)| *w == Written::Duplicate { seq })
    );

    let (one_dir, one) = plain_store();
    let mut writer = one.bulk_writer();
    let mut got = Vec::new();
    for chunk in puts.chunks(8_192) {
        got.extend(writer.write(chunk).unwrap());
    }
    writer.commit().unwrap();
    assert_eq!(got, expected);

    let paths = [plain.path(), bulk.path(), one.path()].map(std::path::Path::to_owned);
    drop((plain, bulk, one));
    let plain_dump = dump(&paths[0]);
    // The parallel inserts start at 50,000 index entries in one transaction.
    let index_entries = plain_dump
        .iter()
        .filter(|row| {
            [
                "claim_hashes ",
                "by_sig ",
                "events_by_",
                "import_keys ",
                "verdict_identities ",
            ]
            .iter()
            .any(|table| row.starts_with(table))
        })
        .count();
    assert!(index_entries > 50_000, "{index_entries}");
    for path in &paths[1..] {
        assert_eq!(dump(path), plain_dump);
        let mut reopened = Store::open(path, StoreOptions::default()).unwrap();
        let report = reopened.check().unwrap();
        assert!(report.passed(), "{:?}", report.problems);
    }
    drop((plain_dir, bulk_dir, one_dir));
}

/// A bulk writer skips key lookups only while `import_keys` holds nothing but its own keys:
/// once another writer stored one, it looks them up again.
#[test]
fn a_bulk_writer_looks_keys_up_once_another_writer_stored_one() {
    let (_dir, store) = temp_store();
    let mut bulk = store.bulk_writer();
    bulk.write(&[keyed_outcome(b"a")]).unwrap();
    bulk.commit().unwrap();
    store.write(&[keyed_outcome(b"b")]).unwrap();
    let written = bulk
        .write(&[
            keyed_outcome(b"b"),
            keyed_outcome(b"c"),
            keyed_outcome(b"a"),
        ])
        .unwrap();
    bulk.commit().unwrap();
    assert_eq!(written[0], Written::Duplicate { seq: 2 });
    assert!(matches!(written[1], Written::Stored { seq: 3, .. }));
    assert_eq!(written[2], Written::Duplicate { seq: 1 });
    assert_eq!(store.stats().unwrap().outcomes, 3);
}

/// Without lookups a key repeated to one bulk writer is found when the keys are inserted: the
/// commit fails and the transaction stores nothing. A writer dropped before its commit stores
/// nothing either.
#[test]
fn a_bulk_writer_stores_nothing_uncommitted_and_refuses_a_repeated_key() {
    let (_dir, store) = temp_store();
    let mut bulk = store.bulk_writer();
    bulk.write(&[keyed_outcome(b"a"), keyed_outcome(b"b")])
        .unwrap();
    bulk.write(&[keyed_outcome(b"a")]).unwrap();
    let error = bulk.commit().unwrap_err();
    assert!(
        matches!(&error, lakehouse_kb::store::StoreError::RepeatedImportKey(key) if key == "61"),
        "{error}"
    );
    assert_eq!(store.last_seq().unwrap(), 0);
    // What it had answered is gone: the writer refuses to go on.
    for error in [
        bulk.write(&[keyed_outcome(b"c")]).unwrap_err(),
        bulk.commit().unwrap_err(),
    ] {
        assert!(
            matches!(error, lakehouse_kb::store::StoreError::BulkAborted),
            "{error}"
        );
    }
    drop(bulk);

    let mut bulk = store.bulk_writer();
    bulk.write(&[keyed_outcome(b"a")]).unwrap();
    drop(bulk);
    assert_eq!(store.last_seq().unwrap(), 0);
    assert_eq!(store.stats().unwrap().outcomes, 0);
    // The store is still writable and the keys were never stored.
    let written = store.write(&[keyed_outcome(b"a")]).unwrap();
    assert!(matches!(written[0], Written::Stored { seq: 1, .. }));
}

/// The same refusal from a transaction large enough for its index entries to be inserted on
/// several threads (60,000: an import key and a sig_hash entry per row).
#[test]
fn a_large_bulk_transaction_with_a_repeated_key_stores_nothing() {
    let (_dir, store) = temp_store();
    let mut bulk = store.bulk_writer();
    let mut puts: Vec<Put> = (0..30_000)
        .map(|i| keyed_outcome(format!("key {i}").as_bytes()))
        .collect();
    puts.push(keyed_outcome(b"key 17"));
    for chunk in puts.chunks(8_192) {
        bulk.write(chunk).unwrap();
    }
    let error = bulk.commit().unwrap_err();
    assert!(
        matches!(&error, lakehouse_kb::store::StoreError::RepeatedImportKey(key)
            if key == "6b6579203137"),
        "{error}"
    );
    drop(bulk);
    assert_eq!(store.last_seq().unwrap(), 0);
    assert_eq!(store.stats().unwrap().outcomes, 0);
}

/// The exact tier: claims that normalise to the same hash score 1 each; a neighbour's score is
/// the sum over the query's claims; ties go to the newer audit; the excluded PR and other
/// repositories are left out.
#[test]
fn neighbors_rank_by_matched_claims_then_recency() {
    let (_dir, store) = temp_store();
    let verdict = |pr: u64, head: &str, at: &str, claims: &[&str], repo: &str| {
        let claims: Vec<String> = claims.iter().map(|c| format!("{c:?}")).collect();
        let text = format!(
            r#"{{"pr_number":{pr},"head_sha":"{head}","overall":"block","one_liner":"x","metrics":{{"findings_block":1,"findings_warn":0}},"audited_at":"{at}","claims":[{}],"repo":"{repo}"}}"#,
            claims.join(",")
        );
        Put::from(verdict_record(text.as_bytes(), 0).unwrap())
    };
    let written = store
        .write(&[
            verdict(10, "aaaaaaaa11", "t1", &["Alpha one", "Beta two"], ""),
            verdict(10, "bbbbbbbb22", "t2", &["Beta two"], ""),
            verdict(11, "cccccccc33", "t3", &["beta  TWO", "Gamma three"], ""),
            verdict(12, "dddddddd44", "t4", &["Zeta"], ""),
            verdict(
                13,
                "eeeeeeee55",
                "t5",
                &["Beta two", "Gamma three"],
                "other/repo",
            ),
        ])
        .unwrap();
    let claim = |text: &str| lakehouse_kb::model::claims::Claim {
        hash: ClaimHash::of_text(text).unwrap(),
        text: None,
    };
    let query = |claims: Vec<lakehouse_kb::model::claims::Claim>, exclude_pr, all_repos| {
        lakehouse_kb::store::NeighborQuery {
            claims,
            repo: Repo::default(),
            all_repos,
            exclude_pr,
            limit: 10,
            min_score: 0.3,
        }
    };
    let ranked = |hits: Vec<lakehouse_kb::store::NeighborHit>| {
        hits.iter().map(|n| (n.seq, n.score)).collect::<Vec<_>>()
    };
    let got = store
        .neighbors(
            &query(
                vec![claim("Beta two"), claim("Gamma three")],
                Some(11),
                false,
            ),
            &mut ReadBudget::unlimited(),
        )
        .unwrap();
    // Both of PR 10's verdicts match one claim: the PR is answered once, as its newer one.
    assert_eq!(ranked(got), vec![(written[1].seq(), 1.0)]);
    let got = store
        .neighbors(
            &query(vec![claim("beta two"), claim("gamma three")], None, false),
            &mut ReadBudget::unlimited(),
        )
        .unwrap();
    assert_eq!(
        ranked(got),
        vec![(written[2].seq(), 2.0), (written[1].seq(), 1.0)]
    );
    let got = store
        .neighbors(
            &query(vec![claim("Gamma three")], None, true),
            &mut ReadBudget::unlimited(),
        )
        .unwrap();
    assert_eq!(
        ranked(got),
        vec![(written[4].seq(), 1.0), (written[2].seq(), 1.0)]
    );
    let mut zero = query(vec![claim("Alpha one")], None, false);
    zero.limit = 0;
    let none = store.neighbors(&zero, &mut ReadBudget::unlimited());
    assert_eq!(none.unwrap().len(), 0);
}

#[test]
fn retention_deletes_oldest_events_and_keeps_counters_true() {
    let (_dir, store) = temp_store();
    let mut synth = Synth::new(9, 10);
    let old: Vec<Put> = (0..50)
        .map(|_| {
            event_record(synth.event().as_bytes(), 1_000)
                .unwrap()
                .into()
        })
        .collect();
    let new: Vec<Put> = (0..30)
        .map(|_| {
            event_record(synth.event().as_bytes(), 9_000)
                .unwrap()
                .into()
        })
        .collect();
    store.write(&old).unwrap();
    store
        .write(&[verdict_record(synth.verdict().as_bytes(), 1_000)
            .unwrap()
            .into()])
        .unwrap();
    store.write(&new).unwrap();
    assert_eq!(store.stats().unwrap().events, 81);

    // By count, in bounded batches.
    let rules = Retention {
        max_age_ms: None,
        max_count: Some(70),
        keep_after_seq: None,
    };
    assert_eq!(store.retain_events(rules, 10_000, 4).unwrap(), 4);
    while store.retain_events(rules, 10_000, 4).unwrap() > 0 {}
    assert_eq!(store.stats().unwrap().events, 70);

    // By age: everything received before 10_000 - 5_000.
    let rules = Retention {
        max_age_ms: Some(5_000),
        max_count: None,
        keep_after_seq: None,
    };
    while store.retain_events(rules, 10_000, 7).unwrap() > 0 {}
    let stats = store.stats().unwrap();
    assert_eq!(stats.events, 30);
    assert_eq!(
        (stats.verdicts, stats.outcomes),
        (1, 1),
        "retention never touches history"
    );

    // Events not yet exported are never deleted, whatever the rules say.
    let last = store.last_seq().unwrap();
    let rules = Retention {
        max_age_ms: None,
        max_count: Some(0),
        keep_after_seq: Some(last - 10),
    };
    while store.retain_events(rules, 10_000, 7).unwrap() > 0 {}
    assert_eq!(store.stats().unwrap().events, 10);

    let path = store.path().to_owned();
    drop(store);
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    let report = store.check().unwrap();
    assert!(report.passed(), "{:?}", report.problems);
}

#[test]
fn version_1_file_is_upgraded_on_open_and_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    Store::create_at_version(&path, 1).unwrap();
    let plan = Store::plan(&path, StoreOptions::default()).unwrap();
    let latest = lakehouse_kb::store::SCHEMA_VERSION;
    assert_eq!(
        (plan.from, plan.to, plan.steps.len() as u64),
        (1, latest, latest - 1)
    );
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.schema_version().unwrap(), latest);
    assert!(store.check().unwrap().passed());
    // The migrated file has exactly the current tables.
    drop(store);
    let db = redb::Database::create(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let mut names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = tables::ALL_TABLE_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    want.sort();
    assert_eq!(names, want);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever was written, each index answer equals a full scan of the model.
    #[test]
    fn index_answers_equal_a_full_scan(seed in any::<u64>(), n in 1usize..120, n_prs in 1u64..8) {
        let (_dir, store) = temp_store();
        let mut model = Model::default();
        let mut synth = Synth::new(seed, n_prs);
        let records = mixed_records(&mut synth, n, 5);
        write_all(&store, &mut model, records, 17);
        for pr in 1..=n_prs {
            let want: Vec<u64> = model.verdicts.iter().filter(|(_, v)| v.0 == pr).map(|(s, _)| *s).collect();
            let got: Vec<u64> = store.pr_verdict_seqs(&Repo::default(), pr).unwrap();
            prop_assert_eq!(got, want);
        }
        for (seq, (_, sig, _)) in &model.records {
            if sig.is_empty() { continue; }
            let want: Vec<u64> = model.records.iter().filter(|(_, r)| &r.1 == sig).map(|(s, _)| *s).collect();
            let got: Vec<u64> = store.by_sig(&Repo::default(), sig, 0, 1_000).unwrap().items.iter().map(SigRecord::seq).collect();
            prop_assert_eq!(got, want, "sig {} (seq {})", sig, seq);
        }
        for kind in ["fill", "search", "cycle"] {
            let filter = EventFilter { event_kind: Some(kind.into()), source: Some(Source::Scenario), ..Default::default() };
            let want: Vec<u64> = model.events.iter().rev()
                .filter(|(_, e)| e.1.as_deref() == Some(kind) && e.0 == "scenario")
                .map(|(s, _)| *s).collect();
            let got: Vec<u64> = store.events_page(&filter, None, 1_000).unwrap().items.iter().map(|e| e.seq).collect();
            prop_assert_eq!(got, want);
        }
    }
}

/// The similar-claims index is derived data with its own analyser version: a file migrated
/// from schema 4 gets it built on open; a build interrupted part way resumes where it stopped;
/// an index built by another analyser version is rebuilt; and `check` compares the index with
/// a rebuild from the verdicts' claims both ways.
#[test]
fn the_claims_index_is_built_resumed_rebuilt_and_checked() {
    use lakehouse_kb::store::postings::{self, Posting};
    let (dir, store) = temp_store();
    let mut synth = Synth::new(11, 40);
    let mut model = Model::default();
    write_all(&store, &mut model, mixed_records(&mut synth, 3_000, 1), 250);
    let path = store.path().to_owned();
    drop(store);
    let postings_in = |path: &std::path::Path| {
        let db = redb::Database::open(path).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(tables::CLAIM_TERMS).unwrap();
        let mut all = Vec::new();
        postings::for_each(&table, |term, repo, posting| {
            all.push((term.to_owned(), repo, posting))
        })
        .unwrap();
        all
    };
    let written = postings_in(&path);
    assert!(written.len() > 1_000, "{}", written.len());
    let edit = |f: &dyn Fn(&redb::WriteTransaction)| {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        f(&txn);
        txn.commit().unwrap();
    };
    let check = || {
        let mut store = Store::open(&path, StoreOptions::default()).unwrap();
        store.check().unwrap()
    };

    // Another analyser's index: rebuilt from scratch on open, to the same postings.
    edit(&|txn| {
        let mut meta = txn.open_table(tables::META).unwrap();
        meta.insert("text/claims/version", 999).unwrap();
    });
    assert!(check().passed());
    assert_eq!(postings_in(&path), written);

    // A build killed half way: its progress mark says so, and the postings and corpus counts
    // of the verdicts after it are not there yet. The next open carries on from the mark.
    let half_seq = model
        .verdicts
        .keys()
        .nth(model.verdicts.len() / 2)
        .copied()
        .unwrap();
    edit(&|txn| {
        let kept: Vec<(String, u32, Posting)> = written
            .iter()
            .filter(|(_, _, p)| p.doc >> 10 <= half_seq)
            .cloned()
            .collect();
        let mut docs = BTreeMap::new();
        for (_, _, p) in written.iter().filter(|(_, _, p)| p.doc >> 10 > half_seq) {
            docs.insert(p.doc, u64::from(p.len));
        }
        txn.delete_table(tables::CLAIM_TERMS).unwrap();
        let mut table = txn.open_table(tables::CLAIM_TERMS).unwrap();
        write_postings(&mut table, &kept);
        let (n_docs, n_len) = (docs.len() as u64, docs.values().sum::<u64>());
        let mut meta = txn.open_table(tables::META).unwrap();
        for (key, less) in [
            ("text/claims/docs", n_docs),
            ("text/claims/len", n_len),
            ("text/claims/docs/repo/0", n_docs),
            ("text/claims/len/repo/0", n_len),
        ] {
            let now = meta.get(key).unwrap().unwrap().value();
            meta.insert(key, now - less).unwrap();
        }
        meta.remove("text/claims/version").unwrap();
        let mark = format!(
            "text/claims/built_through/v{}",
            lakehouse_kb::model::text::ANALYZER_VERSION
        );
        meta.insert(mark.as_str(), half_seq).unwrap();
    });
    let report = check();
    assert!(report.passed(), "{:?}", report.problems);
    assert_eq!(postings_in(&path), written);

    // A changed posting and a missing one are both found and named.
    let (term, repo, posting) = written[7].clone();
    let (gone_term, gone_repo, gone) = written[800].clone();
    edit(&|txn| {
        let mut all = written.clone();
        all.retain(|(t, r, p)| !(*t == gone_term && *r == gone_repo && *p == gone));
        for (t, r, p) in &mut all {
            if *t == term && *r == repo && *p == posting {
                p.tf += 1;
            }
        }
        txn.delete_table(tables::CLAIM_TERMS).unwrap();
        let mut table = txn.open_table(tables::CLAIM_TERMS).unwrap();
        write_postings(&mut table, &all);
    });
    let found = check().problems;
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("claim_terms differs from a rebuild")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|p| p.contains(&format!("term {term:?}"))),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains(&format!("holds None for term {gone_term:?}"))),
        "{found:?}"
    );
    drop(dir);
}

/// Writes `entries` into an emptied `claim_terms` table as the write path would.
fn write_postings(
    table: &mut lakehouse_kb::store::postings::PostingsTable<'_>,
    entries: &[(String, u32, lakehouse_kb::store::postings::Posting)],
) {
    let mut new = lakehouse_kb::store::postings::NewPostings::default();
    for (term, repo, posting) in entries {
        new.push(term, *repo, *posting);
    }
    new.append_all(table).unwrap();
}

/// A new database file is its user's alone (0600, as the journal and backups are), whatever the
/// umask: with `--auth-reads`, copying the file must not be a way around the token.
#[test]
fn a_new_database_file_is_readable_by_its_user_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let store = Store::open(&path, lakehouse_kb::store::StoreOptions::default()).unwrap();
    drop(store);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}
