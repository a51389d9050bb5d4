//! The memory on real store files: built on open, resumed, rebuilt under other rules and
//! checked against a rebuild; dismissals re-keyed when the rules change; files of older
//! schemas; legacy imports and backups.

use super::*;

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Every row of the four memory tables, as bytes.
fn memory_rows(path: &std::path::Path) -> [Rows; 4] {
    let db = redb::Database::open(path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    [
        rows_of(&txn, tables::FINDINGS),
        rows_of(&txn, tables::FINDING_FPS),
        rows_of(&txn, tables::FINDINGS_BY_LAST_AUDIT),
        rows_of(&txn, tables::FINDINGS_AUDITS),
    ]
}

fn rows_of<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    table: redb::TableDefinition<K, V>,
) -> Rows {
    use redb::ReadableTable;
    let bytes = |b: &dyn AsRef<[u8]>| b.as_ref().to_vec();
    txn.open_table(table)
        .unwrap()
        .iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (
                bytes(&K::as_bytes(&k.value())),
                bytes(&V::as_bytes(&v.value())),
            )
        })
        .collect()
}

/// The findings memory is derived data: written with the verdicts, it equals what a build
/// from the verdicts gives; a file migrated from schema 5 gets it built on open; a build
/// interrupted part way resumes where it stopped; a memory built under other rules is rebuilt;
/// and `check` finds a damaged or missing entry.
#[test]
fn the_memory_is_built_resumed_rebuilt_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let puts = traffic(300);
    {
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        for chunk in puts.chunks(37) {
            store.write(chunk).unwrap();
        }
    }
    let written = memory_rows(&path);
    assert!(
        written[0].len() >= 10 && written[1].len() > written[0].len(),
        "{} {}",
        written[0].len(),
        written[1].len()
    );
    // Every finding here was last raised by an audit that repeated it (whether the flag says
    // so audit by audit is the history test's below).
    assert!(written[2].iter().all(|(_, v)| v == &[1]));
    let open_and_check = || {
        let mut store = Store::open(&path, StoreOptions::default()).unwrap();
        store.check().unwrap()
    };
    let report = open_and_check();
    assert!(report.passed(), "{:?}", report.problems);
    let edit = |f: &dyn Fn(&redb::WriteTransaction)| {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        f(&txn);
        txn.commit().unwrap();
    };

    // Other rules: rebuilt from scratch on open, to the same rows.
    edit(&|txn| {
        txn.open_table(tables::META)
            .unwrap()
            .insert("findings/rules_version", 999)
            .unwrap();
    });
    assert!(open_and_check().passed());
    assert_eq!(memory_rows(&path), written);

    // Never built (a file just migrated to schema 6): built on open.
    edit(&|txn| {
        clear_memory(txn);
        let mut meta = txn.open_table(tables::META).unwrap();
        meta.remove("findings/rules_version").unwrap();
        meta.remove("findings/analyzer_version").unwrap();
    });
    assert!(open_and_check().passed());
    assert_eq!(memory_rows(&path), written);

    // A build killed after its first transactions: the memory of the verdicts through its
    // mark (what a file holding only those verdicts has), the mark, no version. The next open
    // goes on from the mark to the same memory.
    let half_path = dir.path().join("half.redb");
    let half = 148;
    let through = {
        let store = Store::open(&half_path, StoreOptions::default()).unwrap();
        let mut last = 0;
        for chunk in puts[..half].chunks(37) {
            last = store.write(chunk).unwrap().last().unwrap().seq();
        }
        last
    };
    edit(&|txn| {
        clear_memory(txn);
        copy_memory(&half_path, txn);
        let mut meta = txn.open_table(tables::META).unwrap();
        meta.remove("findings/rules_version").unwrap();
        meta.remove("findings/analyzer_version").unwrap();
        meta.insert(today_s_mark().as_str(), through).unwrap();
    });
    assert_ne!(memory_rows(&path), written);
    assert!(open_and_check().passed());
    assert_eq!(memory_rows(&path), written);

    // A build another version began under other rules and left with values of its own layout
    // (here: not values at all) and its mark: started again from scratch, not gone on with
    // (at cd31122 the open read them, "corrupt value", and the service would not start: a
    // review's).
    // The half-built memory, with a value no build of this layout wrote, and `meta` as `set`
    // leaves it.
    let half_built_beside = |set: &dyn Fn(&mut redb::Table<&'static str, u64>)| {
        edit(&|txn| {
            clear_memory(txn);
            copy_memory(&half_path, txn);
            let mut findings = txn.open_table(tables::FINDINGS).unwrap();
            findings.insert((0, 1, 1), &b"\x02\xff\xff"[..]).unwrap();
            set(&mut txn.open_table(tables::META).unwrap());
        })
    };
    half_built_beside(&|meta| {
        meta.remove("findings/rules_version").unwrap();
        meta.remove("findings/analyzer_version").unwrap();
        meta.insert("findings/built_through", through).unwrap();
        meta.insert("findings/built_through/v1.1", through).unwrap();
    });
    assert!(open_and_check().passed());
    assert_eq!(memory_rows(&path), written);
    let db = redb::Database::create(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = txn.open_table(tables::META).unwrap();
    for mark in ["findings/built_through", "findings/built_through/v1.1"] {
        assert!(meta.get(mark).unwrap().is_none(), "{mark} left behind");
    }
    drop((meta, txn, db));

    // This build's own mark, beside a memory another build has cleared and finished since (an
    // older binary's, after a downgrade, which knows nothing of the mark): not gone on with
    // either (at 77013cd it was, over the other's values: a review's).
    half_built_beside(&|meta| {
        meta.insert("findings/rules_version", 4).unwrap();
        meta.insert(today_s_mark().as_str(), through).unwrap();
    });
    assert!(open_and_check().passed());
    assert_eq!(memory_rows(&path), written);

    // A damaged value and a missing name are both found.
    edit(&|txn| {
        use redb::ReadableTable;
        let mut fps = txn.open_table(tables::FINDING_FPS).unwrap();
        let first = fps.first().unwrap().map(|(k, _)| k.value()).unwrap();
        fps.remove(first).unwrap();
        let mut findings = txn.open_table(tables::FINDINGS).unwrap();
        let (key, value) = findings
            .last()
            .unwrap()
            .map(|(k, v)| (k.value(), v.value().to_vec()))
            .unwrap();
        // A letter of its text turned into another: a value that decodes, and differs.
        let mut damaged = value;
        let at = damaged
            .windows(4)
            .position(|w| w.iter().all(u8::is_ascii_lowercase))
            .unwrap();
        damaged[at] ^= 1;
        findings.insert(key, damaged.as_slice()).unwrap();
        let mut by_last = txn.open_table(tables::FINDINGS_BY_LAST_AUDIT).unwrap();
        let (key, flag) = by_last
            .first()
            .unwrap()
            .map(|(k, v)| (k.value(), v.value()))
            .unwrap();
        by_last.insert(key, 1 - flag).unwrap();
        let mut audits = txn.open_table(tables::FINDINGS_AUDITS).unwrap();
        let (key, seq) = audits
            .last()
            .unwrap()
            .map(|(k, v)| (k.value(), v.value()))
            .unwrap();
        audits.insert(key, seq - 1).unwrap();
    });
    let problems = open_and_check().problems;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("in findings_by_last_audit; its audits give")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("should name finding")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("(values differ)")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("finding_fps has")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("findings_audits holds Some")),
        "{problems:?}"
    );
}

/// A file of schema 12 holds the index without its flags (`findings_by_last_seen`), one of
/// schema 14 no `findings_audits` (its open findings were those of the latest verdict). Steps
/// 13 and 15 ask for a rebuild: the store rebuilds the memory on open to what a file written
/// today holds, and `check` passes.
#[test]
fn files_of_older_schemas_get_the_memory_of_today_from_a_rebuild() {
    type MakeOlder = fn(&std::path::Path);
    let cases: [(&str, MakeOlder); 2] = [
        ("schema 12", |path| as_schema_12_left_it(path, None)),
        ("schema 14", as_schema_14_left_it),
    ];
    for (case, make_older) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.redb");
        {
            let store = Store::open(&path, StoreOptions::default()).unwrap();
            for chunk in traffic(120).chunks(37) {
                store.write(chunk).unwrap();
            }
        }
        let written = memory_rows(&path);
        make_older(&path);
        let mut store = Store::open(&path, StoreOptions::default()).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            lakehouse_kb::store::SCHEMA_VERSION
        );
        let report = store.check().unwrap();
        assert!(report.passed(), "{case}: {:?}", report.problems);
        drop(store);
        assert_eq!(memory_rows(&path), written, "{case}");
    }
}

/// Turns the database at `path` back into what schema 14 left: no `findings_audits`, the
/// memory as it was built.
fn as_schema_14_left_it(path: &std::path::Path) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    assert!(txn.delete_table(tables::FINDINGS_AUDITS).unwrap());
    txn.open_table(tables::META)
        .unwrap()
        .insert("schema_version", 14)
        .unwrap();
    txn.commit().unwrap();
}

fn clear_memory(txn: &redb::WriteTransaction) {
    txn.delete_table(tables::FINDINGS).unwrap();
    txn.delete_table(tables::FINDING_FPS).unwrap();
    txn.delete_table(tables::FINDINGS_BY_LAST_AUDIT).unwrap();
    txn.delete_table(tables::FINDINGS_AUDITS).unwrap();
    txn.open_table(tables::FINDINGS).unwrap();
    txn.open_table(tables::FINDING_FPS).unwrap();
    txn.open_table(tables::FINDINGS_BY_LAST_AUDIT).unwrap();
    txn.open_table(tables::FINDINGS_AUDITS).unwrap();
}

/// Copies the memory tables of the file at `from` into `txn`.
fn copy_memory(from: &std::path::Path, txn: &redb::WriteTransaction) {
    let db = redb::Database::open(from).unwrap();
    let source = redb::ReadableDatabase::begin_read(&db).unwrap();
    copy_rows(&source, txn, tables::FINDINGS);
    copy_rows(&source, txn, tables::FINDING_FPS);
    copy_rows(&source, txn, tables::FINDINGS_BY_LAST_AUDIT);
    copy_rows(&source, txn, tables::FINDINGS_AUDITS);
}

fn copy_rows<K: redb::Key + 'static, V: redb::Value + 'static>(
    source: &redb::ReadTransaction,
    txn: &redb::WriteTransaction,
    table: redb::TableDefinition<K, V>,
) {
    use redb::ReadableTable;
    let mut to = txn.open_table(table).unwrap();
    for row in source.open_table(table).unwrap().iter().unwrap() {
        let (k, v) = row.unwrap();
        to.insert(k.value(), v.value()).unwrap();
    }
}

/// Dismissals made under other rules (rules 1 read no NFC, so a wording pasted decomposed had
/// a fingerprint of its own) are given today's fingerprints when the memory is rebuilt on
/// open: the two spellings are now one dismissal twice, and the one recorded as block (it was
/// confirmed) is kept and found by its wording, exactly, though it is the newer; the other is
/// revoked. One that named a fingerprint the memory did not know keeps it. `check` passes.
#[test]
fn dismissals_follow_the_rules_when_the_memory_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let composed = "panic in caf\u{e9}_handler when the body is empty";
    let decomposed = "panic in cafe\u{301}_handler when the body is empty";
    let worded = |fingerprint: u64, severity: &str, summary: &str| {
        Put::from(Record::Dismissal(DismissalChange::New(NewDismissal {
            check: "static".into(),
            severity: severity.into(),
            summary: summary.into(),
            ..match dismissal_put(REPO, Some(1), fingerprint).record {
                Record::Dismissal(DismissalChange::New(new)) => new,
                _ => unreachable!(),
            }
        })))
    };
    let (ids, store) = written_then_rebuilt_under_rules_1(
        &path,
        &[
            worded(1, "warn", composed),
            worded(2, "block", decomposed),
            dismissal_put(REPO, Some(1), 3),
        ],
    );
    let today = Fingerprint::of("static", composed).0;
    let live = live_dismissals_of_pr_1(&store);
    assert_eq!(live, [(ids[2], 3), (ids[1], today)]);
    let answer = store
        .check_findings(
            &FindingsCheck {
                repo: Repo::parse("repo", REPO).unwrap(),
                pr_number: 1,
                findings: vec![Finding::new("static", "block", composed)],
            },
            &mut ReadBudget::unlimited(),
        )
        .unwrap();
    let applied = answer[0].dismissal.as_ref().expect("dismissed");
    assert_eq!(applied.entry.id, ids[1]);
    assert_eq!(applied.score, 1.0);
}

/// A dismissal re-keyed onto the fingerprint a newer live dismissal of its scope already holds
/// (one whose fingerprint did not change) is that one's older twin: neither recorded as block,
/// the older is kept and the newer revoked, as a second dismissal of one finding is a duplicate
/// of the first. (Until the reread of 2026-12-05 the one being re-keyed was revoked, whichever
/// was older.)
#[test]
fn a_re_keyed_dismissal_meeting_a_newer_twin_is_the_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let wording = "unwrap in parse_body can panic on an empty body";
    let today = Fingerprint::of("static", wording).0;
    let worded = |fingerprint: u64| {
        let mut put = dismissal_put(REPO, Some(1), fingerprint);
        if let Record::Dismissal(DismissalChange::New(new)) = &mut put.record {
            new.check = "static".into();
            new.severity = "warn".into();
            new.summary = wording.into();
        }
        put
    };
    // The older under another rules' fingerprint, the newer under today's.
    let (ids, store) =
        written_then_rebuilt_under_rules_1(&path, &[worded(today ^ 1), worded(today)]);
    assert_eq!(live_dismissals_of_pr_1(&store), [(ids[0], today)]);
}

/// Only a change of the fingerprint rules re-keys dismissals: a rebuild for the analyser's
/// terms alone leaves a dismissal's fingerprint as it was given; one from rules 4, whose
/// fingerprints read a port after a host's name as a line, gives it today's. (Until rules 5,
/// rules 2's fingerprints were today's, and a rebuild from them left it too.)
#[test]
fn dismissals_are_re_keyed_only_when_the_fingerprint_rules_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let wording = "the session cookie lacks the Secure flag";
    store_dismissal_of_fingerprint_1(&path, "security", wording);
    let fingerprint = |edit: (&str, u64)| {
        set_meta(&path, edit.0, edit.1);
        live_dismissals_of_pr_1(&Store::open(&path, StoreOptions::default()).unwrap())[0].1
    };
    assert_eq!(fingerprint(("findings/analyzer_version", 999)), 1);
    assert_eq!(
        fingerprint(("findings/rules_version", 4)),
        Fingerprint::of("security", wording).0
    );
}

/// A file of schema 12 whose memory was built under rules 1 (any file written before rules 2)
/// gets today's fingerprints for its dismissals from the rebuild step 13 asks for; one built
/// under today's rules keeps them as given. Until 2026-12-05 step 13 cleared the record of the
/// rules too, so no file's dismissals were re-keyed: a dismissed finding came back under its
/// new fingerprint, and dismissing it again made a second live dismissal.
#[test]
fn step_13_re_keys_the_dismissals_of_a_file_built_under_older_rules() {
    use lakehouse_kb::model::finding::FINDING_RULES_VERSION;
    let wording = "the session cookie lacks the Secure flag";
    // (the rules the file's memory was built under, the dismissal's fingerprint after the upgrade)
    let cases = [
        (1, Fingerprint::of("security", wording).0),
        (FINDING_RULES_VERSION, 1),
    ];
    for (built_under, after) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.redb");
        store_dismissal_of_fingerprint_1(&path, "security", wording);
        as_schema_12_left_it(&path, Some(built_under));
        let mut store = Store::open(&path, StoreOptions::default()).unwrap();
        let fingerprints: Vec<u64> = live_dismissals_of_pr_1(&store)
            .iter()
            .map(|(_, fingerprint)| *fingerprint)
            .collect();
        assert_eq!(fingerprints, [after], "built under rules {built_under}");
        let report = store.check().unwrap();
        assert!(report.passed(), "{:?}", report.problems);
    }
}

/// Turns the database at `path` back into what schema 12 left: the index of open findings
/// without its flags (`findings_by_last_seen`), and, with `rules`, the fingerprint rules its
/// memory was built under.
fn as_schema_12_left_it(path: &std::path::Path, rules: Option<u64>) {
    use redb::ReadableTable;
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    let unflagged: redb::TableDefinition<(u32, u64, u64, u64), ()> =
        redb::TableDefinition::new("findings_by_last_seen");
    {
        let mut old = txn.open_table(unflagged).unwrap();
        let new = txn.open_table(tables::FINDINGS_BY_LAST_AUDIT).unwrap();
        for row in new.iter().unwrap() {
            old.insert(row.unwrap().0.value(), ()).unwrap();
        }
    }
    txn.delete_table(tables::FINDINGS_BY_LAST_AUDIT).unwrap();
    let mut meta = txn.open_table(tables::META).unwrap();
    meta.insert("schema_version", 12).unwrap();
    if let Some(rules) = rules {
        meta.insert("findings/rules_version", rules).unwrap();
    }
    drop(meta);
    txn.commit().unwrap();
}

/// Writes `puts` into a new database at `path` (their seqs), marks its findings memory as built
/// under rules 1, and opens it again, which rebuilds the memory and re-keys the dismissals;
/// `check` passes on the result.
fn written_then_rebuilt_under_rules_1(path: &std::path::Path, puts: &[Put]) -> (Vec<u64>, Store) {
    let ids = {
        let store = Store::open(path, StoreOptions::default()).unwrap();
        store
            .write(puts)
            .unwrap()
            .iter()
            .map(Written::seq)
            .collect()
    };
    set_meta(path, "findings/rules_version", 1);
    let mut store = Store::open(path, StoreOptions::default()).unwrap();
    let report = store.check().unwrap();
    assert!(report.passed(), "{:?}", report.problems);
    (ids, store)
}

/// Sets `key` in the `meta` of the database at `path`, as a file built by another build would
/// hold it.
fn set_meta(path: &std::path::Path, key: &str, value: u64) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(tables::META)
        .unwrap()
        .insert(key, value)
        .unwrap();
    txn.commit().unwrap();
}

/// The live dismissals that apply to PR 1 of REPO, as (id, fingerprint), newest first.
fn live_dismissals_of_pr_1(store: &Store) -> Vec<(u64, u64)> {
    let query = lakehouse_kb::store::DismissalsQuery {
        repo: Repo::parse("repo", REPO).unwrap(),
        pr_number: Some(1),
        below_id: None,
        limit: 10,
    };
    let page = store
        .dismissals_page(&query, &mut ReadBudget::unlimited())
        .unwrap();
    page.items
        .iter()
        .map(|e| (e.id, e.value.fingerprint))
        .collect()
}

/// Stores, in a new database at `path`, a dismissal in PR 1 of fingerprint 1 (none a rule
/// gives) for the finding `check` / `wording`: what a rebuild under new rules re-keys.
fn store_dismissal_of_fingerprint_1(path: &std::path::Path, check: &str, wording: &str) {
    let store = Store::open(path, StoreOptions::default()).unwrap();
    let mut put = dismissal_put(REPO, Some(1), 1);
    if let Record::Dismissal(DismissalChange::New(new)) = &mut put.record {
        new.check = check.into();
        new.summary = wording.into();
    }
    store.write(&[put]).unwrap();
}

/// A legacy import brings the findings of its verdict files in with them (through the write
/// path), and a backup carries the memory and the dismissals, which its copy's `check` passes.
#[test]
fn legacy_findings_come_in_with_their_verdicts_and_backups_carry_the_memory() {
    use lakehouse_kb::import::{self, ImportOptions, NoProgress};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
    let options = ImportOptions {
        batch_size: 5,
        ..ImportOptions::default()
    };
    import::import(
        &store,
        std::path::Path::new(LEGACY_DATA),
        &options,
        &mut NoProgress,
    )
    .unwrap();
    // PR 9 was audited on three heads: observer.ts on the first, audit.ts on the next two.
    let page = store
        .pr_findings(
            &FindingsQuery {
                repo: Repo::default(),
                pr_number: 9,
                status: FindingStatus::All,
                below: None,
                limit: 50,
            },
            &mut ReadBudget::unlimited(),
        )
        .unwrap();
    let found: Vec<(&str, u64, bool)> = page
        .items
        .iter()
        .map(|e| (e.value.summary.as_str(), e.value.times_raised, e.open))
        .collect();
    assert_eq!(
        found,
        [
            ("diff touches auditor/audit.ts", 2, true),
            ("diff touches mcp-server/observer.ts", 1, false),
        ]
    );
    store
        .write(&[dismissal_put(
            "",
            Some(9),
            Fingerprint::of("static", "diff touches auditor/audit.ts").0,
        )])
        .unwrap();
    let copy = dir.path().join("copy").join("kb.redb");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    store.backup_to(&copy).unwrap();
    drop(store);
    let mut restored = Store::open(&copy, StoreOptions::default()).unwrap();
    let report = restored.check().unwrap();
    assert!(report.passed(), "{:?}", report.problems);
    let ask = restored
        .check_findings(
            &FindingsCheck {
                repo: Repo::default(),
                pr_number: 9,
                findings: vec![Finding::new(
                    "static",
                    "info",
                    "diff touches auditor/audit.ts",
                )],
            },
            &mut ReadBudget::unlimited(),
        )
        .unwrap();
    assert!(ask[0].dismissal.is_some(), "{ask:?}");
    assert!(matches!(ask[0].matched, Match::Exact(_)));
}

/// The progress mark's key of a findings memory build under today's rules.
fn today_s_mark() -> String {
    use lakehouse_kb::model::finding::FINDING_RULES_VERSION;
    use lakehouse_kb::model::text::ANALYZER_VERSION;
    format!("findings/built_through/v{FINDING_RULES_VERSION}.{ANALYZER_VERSION}")
}
