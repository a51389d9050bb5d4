//! A verdict's own KB row and observer event stored as references to it
//! (`store/verdict_lines.rs`): written only when the verdict recomputes the record exactly,
//! read back as the record that was stored by every read path, and rewritten in older files by
//! bounded, resumable transactions.

use std::path::Path;
use std::sync::Arc;

use lakehouse_kb::export::ExportJob;
use lakehouse_kb::import::{ImportOptions, NoProgress, import};
use lakehouse_kb::intake;
use lakehouse_kb::model::Repo;
use lakehouse_kb::store::codec::{self, REFERENCE_VERSION};
use lakehouse_kb::store::tables::{EVENTS, META, OUTCOMES as OUTCOME_ROWS};
use lakehouse_kb::store::{FeedTypes, Put, Retention, SigRecord, Store, StoreOptions};
use redb::{ReadableDatabase, ReadableTable};
use serde_json::{Map, Value};

use crate::support::{
    LEGACY_DATA, OPS, OUTCOMES, assert_same_bytes, check_resumes_from, kill_check_midway, load,
    open_store,
};

const VERDICT: &str = r#"{"pr_number":7,"head_sha":"e9e0d501ff8789cc67d571bd52f177119c19e495","overall":"block","one_liner":"PR claims 'live-verified' with no evidence in diff","findings":[{"check":"static","severity":"warn","summary":"diff touches observer.ts"}],"claims":[{"text":"observer counts auditor events separately","source":"commit_message"}],"metrics":{"findings_block":2,"findings_warn":2,"findings_info":1,"audit_duration_ms":14237},"audited_at":"2026-04-01T09:15:13.330Z"}"#;

const RECEIVED_MS: u64 = 1_775_000_123_456;

/// Whether each seq of `table` holds a reference, by seq.
fn references(path: &Path, table: redb::TableDefinition<u64, &[u8]>) -> Vec<(u64, bool)> {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(table).unwrap();
    t.iter()
        .unwrap()
        .map(|row| {
            let (seq, value) = row.unwrap();
            (seq.value(), value.value()[0] == REFERENCE_VERSION)
        })
        .collect()
}

fn n_references(path: &Path) -> usize {
    [OUTCOME_ROWS, EVENTS]
        .into_iter()
        .flat_map(|t| references(path, t))
        .filter(|(_, reference)| *reference)
        .count()
}

fn export_of(store: &Arc<Store>) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    ExportJob::new(store.clone(), dir.path().to_owned())
        .run()
        .unwrap();
    let read = |file| std::fs::read(dir.path().join(file)).unwrap();
    (read(OUTCOMES), read(OPS))
}

fn metrics(obj: &mut Map<String, Value>) -> &mut Map<String, Value> {
    obj["metrics"].as_object_mut().unwrap()
}

#[test]
fn a_verdicts_own_records_are_references_only_when_it_recomputes_them() {
    type Edit = fn(&mut Map<String, Value>);
    // (case, edit of the verdict, KB row stored as a reference, event stored as one)
    let cases: [(&str, Edit, bool, bool); 10] = [
        ("every metric", |_| {}, true, true),
        (
            "approve",
            |o| {
                o.insert("overall".into(), "approve".into());
            },
            true,
            true,
        ),
        (
            "no optional metrics",
            |o| {
                metrics(o).remove("findings_info");
                metrics(o).remove("audit_duration_ms");
            },
            true,
            true,
        ),
        // The verdict keeps a null metric as absent: the row that says null is kept whole.
        (
            "null findings_info",
            |o| {
                metrics(o).insert("findings_info".into(), Value::Null);
            },
            false,
            true,
        ),
        (
            "null audit_duration_ms",
            |o| {
                metrics(o).insert("audit_duration_ms".into(), Value::Null);
            },
            true,
            false,
        ),
        (
            "fractional duration",
            |o| {
                metrics(o).insert("audit_duration_ms".into(), serde_json::json!(0.1 + 0.2));
            },
            true,
            true,
        ),
        (
            "named repository",
            |o| {
                o.insert("repo".into(), "gitea:profit/lakehouse".into());
            },
            true,
            true,
        ),
        (
            "one-liner to escape",
            |o| {
                o.insert(
                    "one_liner".into(),
                    "\"quoted\"\n\u{2028} é \u{1F600}".into(),
                );
            },
            true,
            true,
        ),
        (
            "pr_number written as a float",
            |o| {
                o.insert("pr_number".into(), serde_json::json!(7.0));
            },
            true,
            true,
        ),
        (
            "upper-case head sha",
            |o| {
                o.insert("head_sha".into(), "E9E0D501FF8789CC".into());
            },
            true,
            true,
        ),
    ];
    for (case, edit, row_is_reference, event_is_reference) in cases {
        let mut obj: Map<String, Value> = serde_json::from_str(VERDICT).unwrap();
        edit(&mut obj);
        let body = serde_json::to_string(&obj).unwrap();
        let new = intake::verdict(body.as_bytes(), RECEIVED_MS).unwrap();
        let (row_line, event) = (
            new.outcome_line.clone().unwrap(),
            new.event.clone().unwrap(),
        );
        let (repo, sig) = (new.verdict.repo.clone(), new.verdict.sig_hash());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.redb");
        let store = Arc::new(Store::open(&path, StoreOptions::default()).unwrap());
        store
            .write(&[Put::from(lakehouse_kb::store::Record::Verdict(new))])
            .unwrap();

        // Every read path gives back the records as they were made.
        let page = store.by_sig(&repo, &sig, 0, 10).unwrap();
        let feed = store.feed(0, FeedTypes::ALL, 10, usize::MAX).unwrap();
        for records in [&page.items, &feed.records] {
            assert_eq!(records.len(), 3, "{case}");
            let SigRecord::Outcome(row) = &records[1] else {
                panic!("{case}: {records:?}")
            };
            assert_eq!(
                (row.seq, row.value.line.as_str(), row.value.kind.as_str()),
                (2, row_line.as_str(), "audit"),
                "{case}"
            );
            assert_eq!(
                (row.value.sig_hash.as_str(), row.value.repo.as_str()),
                (sig.as_str(), repo.as_str()),
                "{case}"
            );
            let SigRecord::Event(e) = &records[2] else {
                panic!("{case}: {records:?}")
            };
            assert_eq!(e.seq, 3, "{case}");
            assert_eq!(e.value.line, event.value.line, "{case}");
            assert_eq!(e.value.body, event.value.body, "{case}");
            assert_eq!(e.value.received_at_ms, RECEIVED_MS, "{case}");
            assert_eq!(e.value.sig_hash.as_deref(), Some(sig.as_str()), "{case}");
        }
        let filter = lakehouse_kb::store::EventFilter {
            event_kind: Some("audit".into()),
            ..Default::default()
        };
        let events = store.events_page(&filter, None, 10).unwrap().items;
        assert_eq!(events.len(), 1, "{case}");
        assert_eq!(events[0].value.line, event.value.line, "{case}");
        let (outcomes, ops) = export_of(&store);
        assert_same_bytes(case, &outcomes, format!("{row_line}\n").as_bytes());
        assert_same_bytes(case, &ops, format!("{}\n", event.value.line).as_bytes());
        let mut store = Arc::into_inner(store).unwrap();
        let report = store.check().unwrap();
        assert!(report.passed(), "{case}: {report:?}");
        drop(store);

        assert_eq!(
            references(&path, OUTCOME_ROWS),
            [(2, row_is_reference)],
            "{case}"
        );
        assert_eq!(
            references(&path, EVENTS),
            [(3, event_is_reference)],
            "{case}"
        );
    }
}

#[test]
fn only_records_next_to_their_verdict_refer_to_it() {
    // The verdict's event posted by a client on its own, apart from the verdict, stays whole;
    // an audit row stored just before the verdict that recomputes it (as the legacy import
    // stores them) becomes a reference, like the verdict's own row and event.
    let new = intake::verdict(VERDICT.as_bytes(), RECEIVED_MS).unwrap();
    let row = new.outcome_line.clone().unwrap();
    let body = new.event.clone().unwrap().value.body.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let event = intake::event_record(body.as_bytes(), RECEIVED_MS).unwrap();
    let outcome = intake::outcome_record(row.as_bytes(), RECEIVED_MS).unwrap();
    let verdict = lakehouse_kb::store::Record::Verdict(new);
    store
        .write(&[event.into(), outcome.into(), verdict.into()])
        .unwrap();
    drop(store);
    assert_eq!(references(&path, OUTCOME_ROWS), [(2, true), (4, true)]);
    assert_eq!(references(&path, EVENTS), [(1, false), (5, true)]);
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    assert!(store.check().unwrap().passed());
}

#[test]
fn imported_audit_rows_refer_to_the_verdicts_made_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let store = Arc::new(Store::open(&path, StoreOptions::default()).unwrap());
    let report = import(
        &store,
        Path::new(LEGACY_DATA),
        &ImportOptions::default(),
        &mut NoProgress,
    )
    .unwrap();
    assert!(report.verdicts.stored > 0, "{report:?}");
    let (outcomes, ops) = export_of(&store);
    let legacy = |file| std::fs::read(Path::new(LEGACY_DATA).join(file)).unwrap();
    assert_same_bytes("outcomes.jsonl", &outcomes, &legacy("_kb/outcomes.jsonl"));
    assert_same_bytes("ops.jsonl", &ops, &legacy("_observer/ops.jsonl"));
    drop(store);
    let audit_rows = String::from_utf8(legacy("_kb/outcomes.jsonl"))
        .unwrap()
        .matches(r#""kind":"audit""#)
        .count();
    assert_eq!(n_references(&path), audit_rows);
}

#[test]
fn retention_deletes_referenced_events_with_their_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    load(&store, 11, 300);
    let before = store.stats().unwrap();
    let deleted = store
        .retain_events(
            Retention {
                max_count: Some(50),
                ..Retention::default()
            },
            RECEIVED_MS,
            10_000,
        )
        .unwrap();
    assert_eq!(deleted, before.events - 50);
    let after = store.stats().unwrap();
    assert_eq!(after.events, 50);
    assert_eq!(
        after.events_by_source.values().sum::<u64>(),
        50,
        "{after:?}"
    );
    let mut store = store;
    let report = store.check().unwrap();
    assert!(report.passed(), "{report:?}");
}

#[test]
fn records_stored_whole_before_references_are_rewritten_resumably() {
    // A file whose verdicts' records are stored whole, as every file before schema 9 holds
    // them, large enough that the rewrite takes several transactions (4,096 verdicts each).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let path = data.join("kb.redb");
    let store = Arc::new(Store::open(&path, StoreOptions::default()).unwrap());
    for seed in 0..13 {
        load(&store, seed, 3_000);
    }
    let before = export_of(&store);
    let whole = store
        .feed(0, FeedTypes::ALL, usize::MAX, usize::MAX)
        .unwrap()
        .records;
    drop(store);
    let n_made = n_references(&path);
    assert!(n_made > 2 * 12_000, "{n_made}");
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut outcomes = txn.open_table(OUTCOME_ROWS).unwrap();
            let mut events = txn.open_table(EVENTS).unwrap();
            for record in &whole {
                match record {
                    SigRecord::Outcome(o) => {
                        outcomes
                            .insert(o.seq, codec::encode(&o.value).as_slice())
                            .unwrap();
                    }
                    SigRecord::Event(e) => {
                        events
                            .insert(e.seq, codec::encode(&e.value).as_slice())
                            .unwrap();
                    }
                    SigRecord::Verdict(_) => {}
                }
            }
            txn.open_table(META)
                .unwrap()
                .remove("lines/references")
                .unwrap();
        }
        txn.commit().unwrap();
    }
    assert_eq!(n_references(&path), 0);

    // The binary rewrites them on open; it is killed once it has committed part of it.
    let log = kill_check_midway(&data, "references");
    let db = redb::Database::open(&path).unwrap();
    let mark = {
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        assert!(meta.get("lines/references").unwrap().is_none(), "{log}");
        meta.get("lines/references_through")
            .unwrap()
            .map(|v| v.value())
    };
    drop(db);
    let n_halfway = n_references(&path);
    assert!(
        mark.is_some() && n_halfway > 0 && n_halfway < n_made,
        "{n_halfway} {log}"
    );

    // The next open goes on from the mark and finishes; nothing a reader sees changed.
    check_resumes_from(&data, mark.unwrap());
    assert_eq!(n_references(&path), n_made);
    let store = Arc::new(Store::open(&path, StoreOptions::default()).unwrap());
    assert_eq!(export_of(&store), before);
    let page = store.by_sig(&Repo::default(), "none", 0, 1).unwrap();
    assert!(page.items.is_empty());
}

#[test]
fn sig_hash_lookups_find_references_through_their_verdicts_page_by_page() {
    // Several audits of one head (one sig_hash), each posted with its row and event; an audit
    // row written just before its verdict (as the import does); and events and rows of their
    // own under the same sig_hashes, between them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    // seq → sig_hash of every record stored, and the events among them
    let mut sigs: Vec<(u64, String)> = Vec::new();
    let mut events: Vec<u64> = Vec::new();
    for i in 0..40u64 {
        let mut obj: Map<String, Value> = serde_json::from_str(VERDICT).unwrap();
        obj.insert("pr_number".into(), (i % 3).into());
        obj.insert(
            "audited_at".into(),
            format!("2026-04-01T09:15:{i:02}.000Z").into(),
        );
        let now = RECEIVED_MS + i;
        let new = intake::verdict(serde_json::to_string(&obj).unwrap().as_bytes(), now).unwrap();
        let sig = new.verdict.sig_hash();
        let event = format!(r#"{{"source":"bot","sig_hash":"{sig}","event_kind":"poke"}}"#);
        let mut puts = vec![Put::from(
            intake::event_record(event.as_bytes(), now).unwrap(),
        )];
        if i % 4 == 0 {
            // The import's order: the row, then a verdict without its own.
            let row = intake::outcome_record(new.outcome_line.as_ref().unwrap().as_bytes(), now);
            puts.push(Put::from(row.unwrap()));
            let verdict = lakehouse_kb::store::NewVerdict::new(new.verdict, None, None, now);
            puts.push(Put::from(lakehouse_kb::store::Record::Verdict(verdict)));
        } else {
            puts.push(Put::from(lakehouse_kb::store::Record::Verdict(new)));
        }
        let written = store.write(&puts).unwrap();
        for (j, w) in written.into_iter().enumerate() {
            let lakehouse_kb::store::Written::Stored {
                seq,
                outcome_seq,
                event_seq,
            } = w
            else {
                panic!("{w:?}")
            };
            for s in [Some(seq), outcome_seq, event_seq].into_iter().flatten() {
                sigs.push((s, sig.clone()));
            }
            // The first put is the event of its own.
            events.extend(if j == 0 { Some(seq) } else { event_seq });
        }
    }
    drop(store);
    // Every verdict's row and event is a reference (ten verdicts came without an event), and
    // none of them has a by_sig entry.
    let referenced: Vec<u64> = [OUTCOME_ROWS, EVENTS]
        .into_iter()
        .flat_map(|t| references(&path, t))
        .filter(|(_, reference)| *reference)
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(referenced.len(), 40 * 2 - 10, "{referenced:?}");
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let index = txn.open_table(lakehouse_kb::store::tables::BY_SIG).unwrap();
    for row in index.iter().unwrap() {
        let seq = row.unwrap().0.value().3;
        assert!(!referenced.contains(&seq), "{seq} has an entry");
    }
    drop((index, txn, db));

    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    assert!(store.check().unwrap().passed());
    let mut distinct: Vec<&String> = sigs.iter().map(|(_, sig)| sig).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);
    for sig in distinct {
        let want: Vec<u64> = sigs
            .iter()
            .filter(|(_, s)| s == sig)
            .map(|(seq, _)| *seq)
            .collect();
        for limit in [1, 2, 5, 1_000] {
            let mut got = Vec::new();
            let mut after = 0;
            loop {
                let page = store.by_sig(&Repo::default(), sig, after, limit).unwrap();
                got.extend(page.items.iter().map(SigRecord::seq));
                after = got.last().copied().unwrap_or(after);
                if !page.more {
                    break;
                }
            }
            assert_eq!(got, want, "{sig}, {limit} a page");
        }
        let want: Vec<u64> = want
            .iter()
            .rev()
            .copied()
            .filter(|s| events.contains(s))
            .collect();
        for limit in [1, 3, 1_000] {
            let filter = lakehouse_kb::store::EventFilter {
                sig_hash: Some(sig.clone()),
                ..Default::default()
            };
            let mut got = Vec::new();
            let mut before = None;
            loop {
                let page = store.events_page(&filter, before, limit).unwrap();
                got.extend(page.items.iter().map(|e| e.seq));
                before = got.last().copied();
                if !page.more {
                    break;
                }
            }
            assert_eq!(got, want, "events of {sig}, {limit} a page");
        }
    }
}

#[test]
fn a_sig_hash_walk_over_verdicts_without_references_keeps_to_the_deadline() {
    // Verdicts of one head whose events are stored whole (a null duration): an events page by
    // sig_hash walks every verdict looking for references, and that walk counts against the
    // read's deadline.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
    let mut puts = Vec::new();
    for i in 0..200u64 {
        let mut obj: Map<String, Value> = serde_json::from_str(VERDICT).unwrap();
        metrics(&mut obj).insert("audit_duration_ms".into(), Value::Null);
        obj.insert(
            "audited_at".into(),
            format!("2026-04-01T09:{:02}:{:02}.000Z", i / 60, i % 60).into(),
        );
        let body = serde_json::to_string(&obj).unwrap();
        puts.push(Put::from(
            intake::verdict_record(body.as_bytes(), RECEIVED_MS + i).unwrap(),
        ));
    }
    store.write(&puts).unwrap();
    let filter = lakehouse_kb::store::EventFilter {
        sig_hash: Some("pr7-e9e0d501".into()),
        ..Default::default()
    };
    assert_eq!(store.events_page(&filter, None, 1).unwrap().items.len(), 1);
    let past =
        lakehouse_kb::store::ReadBudget::unlimited().with_deadline(std::time::Instant::now());
    let result = store.events_page_within(&filter, None, 1, &mut past.clone());
    assert!(
        matches!(
            result,
            Err(lakehouse_kb::store::StoreError::Abandoned { .. })
        ),
        "{result:?}"
    );
}
