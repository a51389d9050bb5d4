//! Compressed values (codec version 3, `store/dictionary.rs`): the dictionary is trained from
//! a database's values, old databases are converted by bounded, resumable transactions, and
//! nothing a reader sees changes.

use std::path::Path;
use std::sync::Arc;

use lakehouse_kb::export::ExportJob;
use lakehouse_kb::intake::verdict_record;
use lakehouse_kb::model::Repo;
use lakehouse_kb::store::codec::{
    self, CODEC_VERSION, Dictionary, REFERENCE_VERSION, SPLIT_VERSION,
};
use lakehouse_kb::store::tables::{
    CODEC_DICTIONARIES, EVENTS, META, OUTCOMES as OUTCOME_ROWS, VERDICTS_BY_SEQ,
};
use lakehouse_kb::store::values::VerdictValue;
use lakehouse_kb::store::{
    DictionaryOptions, HistoryQuery, ReadBudget, SCHEMA_VERSION, Store, StoreOptions, Written,
};
use redb::{ReadableDatabase, ReadableTable};

use crate::support::{
    OPS, OUTCOMES, assert_same_bytes, check_resumes_from, kb, kill_check_midway, load, stderr,
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/db-669becd");

fn options(train_at: u64, convert_batch: u64) -> StoreOptions {
    StoreOptions {
        dictionary: DictionaryOptions {
            train_at,
            convert_batch,
        },
        ..StoreOptions::default()
    }
}

/// How many values of the three compressed tables are stored compressed, and how many in all,
/// leaving out references to a verdict (`store/verdict_lines.rs`), which are not values of
/// their own.
fn compressed_values(path: &Path) -> (u64, u64) {
    let (compressed, references, all) = stored_values(path);
    (compressed, all - references)
}

/// Values of the three compressed tables: compressed, references to a verdict, all.
fn stored_values(path: &Path) -> (u64, u64, u64) {
    // A writable open: after a kill, redb repairs the file first.
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let (mut compressed, mut references, mut all) = (0, 0, 0);
    for table in [VERDICTS_BY_SEQ, OUTCOME_ROWS, EVENTS] {
        for row in txn.open_table(table).unwrap().iter().unwrap() {
            let (_, value) = row.unwrap();
            all += 1;
            compressed += u64::from(matches!(value.value()[0], CODEC_VERSION | SPLIT_VERSION));
            references += u64::from(value.value()[0] == REFERENCE_VERSION);
        }
    }
    (compressed, references, all)
}

fn meta_value(path: &Path, key: &str) -> Option<u64> {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    meta.get(key).unwrap().map(|v| v.value())
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap()
}

#[test]
fn a_database_made_by_669becd_is_converted_and_exports_the_same_bytes() {
    // The file the binary of commit 669becd (schema 4, codec version 1) made from the legacy
    // fixtures and 26 verdicts and 30 events posted to it, and the files it exported
    // (tests/fixtures/db-669becd/README.md).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let packed = std::fs::read(Path::new(FIXTURE).join("kb.redb.zst")).unwrap();
    let path = data.join("kb.redb");
    std::fs::write(&path, zstd::decode_all(packed.as_slice()).unwrap()).unwrap();
    let (compressed, all) = compressed_values(&path);
    assert_eq!((compressed, all), (0, 168));

    // Few values, so a low threshold to train from them; small batches, so the conversion
    // takes many transactions.
    let mut store = Store::open(&path, options(10, 16)).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let report = store.check().unwrap();
    assert!(report.passed(), "{report:?}");
    // The migrated identity index (schema 8) knows every verdict: each one sent again is a
    // duplicate of itself.
    let mut n_verdicts = 0;
    for seq in 1..=store.last_seq().unwrap() {
        let Some(entry) = store.verdict(seq).unwrap() else {
            continue;
        };
        n_verdicts += 1;
        let again = verdict_record(entry.value.raw_json.as_bytes(), 1).unwrap();
        assert_eq!(
            store.write(&[again.into()]).unwrap(),
            [Written::Duplicate { seq }]
        );
    }
    assert!(n_verdicts > 20, "{n_verdicts}");
    drop(store);
    // Schema 9: every audit row is a reference to its verdict now (the 20 the import stored
    // just before the verdict it made of each, and the KB rows of the six verdicts posted that
    // the import had not brought), and so are those six verdicts' events.
    let (compressed, references, all) = stored_values(&path);
    assert_eq!(all, 168);
    assert_eq!(references, 20 + 2 * 6);
    assert!(
        compressed + references > 150,
        "{compressed} of {all} values compressed, {references} references"
    );
    assert_eq!(meta_value(&path, "codec/plain_below"), None);
    assert_eq!(meta_value(&path, "lines/references"), Some(1));

    // The export of the converted file is the export the old binary wrote, byte for byte.
    let out = kb(&data, &["export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for file in [OUTCOMES, OPS] {
        assert_same_bytes(file, &read(&data, file), &read(Path::new(FIXTURE), file));
    }
    let out = kb(&data, &["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_new_database_trains_its_dictionary_and_compresses_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let store = Arc::new(Store::open(&path, options(1_000, 64)).unwrap());
    load(&store, 3, 300);
    let before = export_of(&store);
    drop(store);
    // Below the threshold: plain.
    assert_eq!(compressed_values(&path).0, 0);
    let mut store = Arc::new(Store::open(&path, options(1_000, 64)).unwrap());
    // One write brings it over the threshold: the dictionary is trained after that write
    // commits and the values before it are converted.
    load(&store, 4, 300);
    let after = export_of(&store);
    let report = Arc::get_mut(&mut store).unwrap().check().unwrap();
    assert!(report.passed(), "{report:?}");
    drop(store);
    let (compressed, all) = compressed_values(&path);
    assert!(
        compressed * 10 > all * 9,
        "{compressed} of {all} values compressed"
    );
    assert!(meta_value(&path, "codec/dictionary").is_some());
    assert_eq!(meta_value(&path, "codec/plain_below"), None);
    // What was exported before is still the start of what is exported now.
    assert!(after.0.starts_with(&before.0) && after.1.starts_with(&before.1));
    assert!(after.0.len() > before.0.len() && after.1.len() > before.1.len());
}

/// How many verdicts are stored by codec version 5, and how many in all.
fn split_verdicts(path: &Path) -> (usize, usize) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let verdicts = txn.open_table(VERDICTS_BY_SEQ).unwrap();
    let firsts: Vec<u8> = verdicts
        .iter()
        .unwrap()
        .map(|row| row.unwrap().1.value()[0])
        .collect();
    let split = firsts.iter().filter(|&&v| v == SPLIT_VERSION).count();
    (split, firsts.len())
}

/// Verdicts written once the dictionary exists, and those its conversion compresses, are
/// stored by codec version 5 (their fields readable without their JSON); a file so made
/// exports, answers PR histories and verdicts, and checks as one without a dictionary.
#[test]
fn verdicts_split_at_their_json_read_as_without_a_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let paths = [dir.path().join("split.redb"), dir.path().join("plain.redb")];
    let mut stores = [
        Arc::new(Store::open(&paths[0], options(200, 64)).unwrap()),
        Arc::new(Store::open(&paths[1], options(u64::MAX, 64)).unwrap()),
    ];
    for store in &stores {
        // Over the threshold, then written with the dictionary.
        load(store, 5, 300);
        load(store, 6, 600);
    }
    let [split, plain] = &stores;
    assert_eq!(export_of(split), export_of(plain));
    let mut answers = 0;
    for pr_number in 0..60 {
        for exclude_sha in [None, Some("0".to_owned())] {
            let q = HistoryQuery {
                repo: Repo::default(),
                pr_number,
                exclude_sha,
                before_seq: None,
                limit: 5,
            };
            let [a, b] = [split, plain].map(|s| s.pr_history(&q, &mut ReadBudget::unlimited()));
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a, b, "PR {pr_number}");
            answers += a.audits.len();
        }
    }
    assert!(answers > 100, "{answers} audits answered");
    for seq in 1..=split.last_seq().unwrap() {
        let [a, b] = [split, plain].map(|s| s.verdict(seq).unwrap());
        assert_eq!(a.map(|e| e.value), b.map(|e| e.value), "seq {seq}");
    }
    for store in &mut stores {
        let report = Arc::get_mut(store).unwrap().check().unwrap();
        assert!(report.passed(), "{report:?}");
    }
    drop(stores);
    let (n_split, n_verdicts) = split_verdicts(&paths[0]);
    // Those written before the dictionary too: its conversion splits verdicts as a write does.
    assert_eq!((n_split, n_verdicts), (300, 300));
    assert_eq!(split_verdicts(&paths[1]).0, 0);
}

/// Both legacy files as a clean export writes them.
fn export_of(store: &Arc<Store>) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    ExportJob::new(store.clone(), dir.path().to_owned())
        .run()
        .unwrap();
    (read(dir.path(), OUTCOMES), read(dir.path(), OPS))
}

#[test]
fn a_conversion_killed_midway_finishes_on_the_next_open() {
    // A file of plain values (as every file made before schema 7 is), large enough that its
    // conversion takes many transactions.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let path = data.join("kb.redb");
    let store = Arc::new(Store::open(&path, options(u64::MAX, 4_096)).unwrap());
    for seed in 0..10 {
        load(&store, seed, 3_000);
    }
    let before = export_of(&store);
    drop(store);
    assert_eq!(compressed_values(&path).0, 0);

    // The binary trains the dictionary on open and converts; it is killed once it has
    // committed some of the conversion.
    let log = kill_check_midway(&data, "compressed values");
    let mark = meta_value(&path, "codec/converted_through");
    assert!(
        mark.is_some() && meta_value(&path, "codec/plain_below").is_some(),
        "killed after the conversion ended: {log}"
    );
    let (compressed, all) = compressed_values(&path);
    assert!(compressed > 0 && compressed < all, "{compressed} of {all}");

    // The next open goes on from the mark and finishes; nothing a reader sees changed.
    check_resumes_from(&data, mark.unwrap());
    assert_eq!(meta_value(&path, "codec/plain_below"), None);
    let (compressed, all) = compressed_values(&path);
    assert!(
        compressed * 10 > all * 9,
        "{compressed} of {all} values compressed"
    );
    let store = Arc::new(Store::open(&path, StoreOptions::default()).unwrap());
    assert_eq!(export_of(&store), before);
}

/// Overwrites the value of `seq` in `table` of the file at `path` (as damage would).
fn put_raw(path: &Path, table: redb::TableDefinition<u64, &[u8]>, seq: u64, bytes: &[u8]) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(table).unwrap().insert(seq, bytes).unwrap();
    txn.commit().unwrap();
}

/// The first value of `table` that is a value of its own (not a reference to a verdict).
fn first_seq(path: &Path, table: redb::TableDefinition<u64, &[u8]>) -> (u64, Vec<u8>) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(table).unwrap();
    t.iter()
        .unwrap()
        .map(Result::unwrap)
        .map(|(seq, value)| (seq.value(), value.value().to_vec()))
        .find(|(_, value)| value[0] != REFERENCE_VERSION)
        .unwrap()
}

#[test]
fn a_damaged_value_neither_stops_the_open_nor_the_conversion_and_check_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let store = Store::open(&path, options(u64::MAX, 64)).unwrap();
    load(&store, 5, 1_200);
    drop(store);
    let (seq, _) = first_seq(&path, OUTCOME_ROWS);
    // A plain value whose body is cut short.
    put_raw(&path, OUTCOME_ROWS, seq, &[2, 1]);

    let mut store = Store::open(&path, options(1_000, 64)).unwrap();
    let report = store.check().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("outcomes") && p.contains(&seq.to_string())),
        "{:?}",
        report.problems
    );
    drop(store);
    let (compressed, all) = compressed_values(&path);
    assert_eq!(compressed, all - 1, "every other value is converted");
}

/// Stores `verdicts` as schema 10 did (codec version 3, one zstd block with the file's
/// dictionary) and forgets that they were split; returns the dictionary.
fn set_back_to_version_3(path: &Path, verdicts: &[(u64, VerdictValue)]) -> Arc<Dictionary> {
    let id = meta_value(path, "codec/dictionary").unwrap();
    let dictionary = codec::registry::get(u32::try_from(id).unwrap()).unwrap();
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(VERDICTS_BY_SEQ).unwrap();
        for (seq, value) in verdicts {
            let whole = codec::encode_with(value, Some(&dictionary));
            assert_eq!(whole[0], CODEC_VERSION);
            table.insert(*seq, whole.as_slice()).unwrap();
        }
        txn.open_table(META)
            .unwrap()
            .remove("codec/verdicts_split")
            .unwrap();
    }
    txn.commit().unwrap();
    dictionary
}

/// The verdicts of a file made before schema 11 (codec version 3) are rewritten as version 5
/// on open, four transactions of 4,096 for this file; a kill midway loses one, the next open
/// goes on from the mark, and no reader sees a difference.
#[test]
fn verdicts_stored_before_schema_11_are_split_resumably() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let path = data.join("kb.redb");
    let store = Arc::new(Store::open(&path, options(1_000, 4_096)).unwrap());
    for seed in 0..13 {
        load(&store, seed, 3_000);
    }
    let before = export_of(&store);
    let verdicts: Vec<(u64, _)> = (1..=store.last_seq().unwrap())
        .filter_map(|seq| store.verdict(seq).unwrap().map(|e| (seq, e.value)))
        .collect();
    drop(store);
    let (n_split, n_verdicts) = split_verdicts(&path);
    // Those written before the dictionary too: its conversion splits verdicts.
    assert_eq!(n_split, n_verdicts);
    // As schema 10 stored them: one zstd block with the file's dictionary.
    set_back_to_version_3(&path, &verdicts);
    assert_eq!(split_verdicts(&path).0, 0);

    let log = kill_check_midway(&data, "split");
    let mark = meta_value(&path, "codec/verdicts_split_through");
    let n_halfway = split_verdicts(&path).0;
    assert!(
        meta_value(&path, "codec/verdicts_split").is_none()
            && mark.is_some()
            && n_halfway > 0
            && n_halfway < n_split,
        "{n_halfway} {log}"
    );
    check_resumes_from(&data, mark.unwrap());
    assert_eq!(split_verdicts(&path), (n_split, n_verdicts));
    let store = Arc::new(Store::open(&path, options(1_000, 4_096)).unwrap());
    assert_eq!(export_of(&store), before);
    for (seq, value) in &verdicts {
        assert_eq!(store.verdict(*seq).unwrap().unwrap().value, *value);
    }
}

/// A file whose dictionary this process cannot load keeps its version-3 verdicts for an open
/// that can, instead of marking the rewrite done.
#[test]
fn verdicts_are_split_by_the_first_open_that_can_load_the_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let path = data.join("kb.redb");
    let store = Store::open(&path, options(200, 4_096)).unwrap();
    load(&store, 5, 900);
    let verdicts: Vec<(u64, _)> = (1..=store.last_seq().unwrap())
        .filter_map(|seq| store.verdict(seq).unwrap().map(|e| (seq, e.value)))
        .collect();
    drop(store);
    let dictionary = set_back_to_version_3(&path, &verdicts);
    let id = dictionary.id();
    let set_dictionary = |bytes: &[u8]| {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(CODEC_DICTIONARIES)
            .unwrap()
            .insert(id, bytes)
            .unwrap();
        txn.commit().unwrap();
    };
    set_dictionary(b"not a dictionary");
    // A new process, which knows only what the file holds.
    let out = kb(&data, &["check"]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert_eq!(meta_value(&path, "codec/verdicts_split"), None);
    assert_eq!(split_verdicts(&path), (0, verdicts.len()));

    set_dictionary(dictionary.bytes());
    let out = kb(&data, &["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(meta_value(&path, "codec/verdicts_split"), Some(1));
    assert_eq!(split_verdicts(&path), (verdicts.len(), verdicts.len()));
}

/// A verdict whose first block would name another repository than its body (damage, or a
/// writer's mistake) is reported by `check`: the export and the history read the first block.
#[test]
fn check_names_a_verdict_whose_first_block_disagrees_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let store = Store::open(&path, options(200, 64)).unwrap();
    load(&store, 5, 300);
    load(&store, 6, 300);
    let seq = store.last_seq().unwrap();
    let (seq, value) = (seq - 5..=seq)
        .find_map(|seq| store.verdict(seq).unwrap().map(|e| (seq, e.value)))
        .unwrap();
    drop(store);
    let id = meta_value(&path, "codec/dictionary").unwrap();
    let dictionary = codec::registry::get(u32::try_from(id).unwrap()).unwrap();
    let plain = codec::encode(&value);
    let first = plain.len() - 1 - value.raw_json.len() - codec::encode(&value.repo).len() + 1;
    let other = codec::compress_split(&plain, "other/repo", first, &dictionary).unwrap();
    put_raw(&path, VERDICTS_BY_SEQ, seq, &other);

    let mut store = Store::open(&path, options(200, 64)).unwrap();
    let report = store.check().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&format!("verdict seq {seq}")) && p.contains("first block")),
        "{:?}",
        report.problems
    );
}

/// A verdict too long to split at its JSON (a one-liner past a block) is stored by version 3
/// and serves every reader: export, history, a retry, check.
#[test]
fn a_verdict_too_long_to_split_is_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let mut store = Arc::new(Store::open(&path, options(200, 64)).unwrap());
    load(&store, 5, 300);
    let one_liner = "a long reason ".repeat(10_000);
    let json = format!(
        r#"{{"pr_number":4242,"head_sha":"e9e0d501ff8789cc67d571bd52f177119c19e495","overall":"block","one_liner":"{one_liner}","metrics":{{"findings_block":1,"findings_warn":0}},"audited_at":"2026-04-01T09:15:13.330Z"}}"#
    );
    let put = || {
        verdict_record(json.as_bytes(), 1_775_000_000_000)
            .unwrap()
            .into()
    };
    let Written::Stored { seq, .. } = store.write(&[put()]).unwrap()[0] else {
        panic!("not stored");
    };
    assert_eq!(store.write(&[put()]).unwrap(), [Written::Duplicate { seq }]);
    let q = HistoryQuery {
        repo: Repo::default(),
        pr_number: 4242,
        exclude_sha: None,
        before_seq: None,
        limit: 5,
    };
    let history = store.pr_history(&q, &mut ReadBudget::unlimited()).unwrap();
    assert_eq!(history.audits[0].one_liner, one_liner);
    let (outcomes, _) = export_of(&store);
    assert!(String::from_utf8(outcomes).unwrap().contains(&one_liner));
    let report = Arc::get_mut(&mut store).unwrap().check().unwrap();
    assert!(report.passed(), "{report:?}");
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let stored = txn.open_table(VERDICTS_BY_SEQ).unwrap();
    assert_eq!(stored.get(seq).unwrap().unwrap().value()[0], CODEC_VERSION);
}

#[test]
fn check_refuses_a_value_compressed_with_a_dictionary_of_another_file() {
    // Two files in one process: the first's dictionary is known to the process, not to the
    // second file, whose check must say so even though the value can be read.
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one.redb"), dir.path().join("two.redb"));
    let store = Store::open(&one, options(500, 64)).unwrap();
    load(&store, 6, 600);
    drop(store);
    let (_, foreign) = first_seq(&one, OUTCOME_ROWS);
    assert_eq!(foreign[0], CODEC_VERSION);

    let store = Store::open(&two, options(u64::MAX, 64)).unwrap();
    load(&store, 7, 30);
    drop(store);
    let (seq, _) = first_seq(&two, OUTCOME_ROWS);
    put_raw(&two, OUTCOME_ROWS, seq, &foreign);
    let mut store = Store::open(&two, options(u64::MAX, 64)).unwrap();
    let report = store.check().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(&format!("outcomes seq {seq}: compressed with dictionary"))),
        "{:?}",
        report.problems
    );
}
