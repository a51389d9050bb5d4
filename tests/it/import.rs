//! The legacy import on real directories: the fixtures' round trip through import and export
//! (byte-identical), idempotence, a legacy file that grew, each kind of malformed line with its
//! file and line number, `--strict` committing nothing, the verdict files (matched, stale,
//! without a row, invalid), lines over the limit, and links not followed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::synth::Synth;
use lakehouse_kb::export::{Action, ExportJob};
use lakehouse_kb::import::{self, ImportError, ImportOptions, ImportReport, NoProgress, Totals};
use lakehouse_kb::model::Verdict;
use lakehouse_kb::model::claims::MAX_CLAIMS;
use lakehouse_kb::store::Store;

use crate::support::{
    LEGACY_DATA, OPS, OUTCOMES, assert_same_bytes, kb, open_store, stderr, stdout,
};

fn fixtures() -> PathBuf {
    let path = PathBuf::from(LEGACY_DATA);
    assert!(
        path.join(OUTCOMES).is_file(),
        "the legacy fixtures are expected at {} (vendored under tests/fixtures)",
        path.display()
    );
    path
}

/// A writable copy of a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::write(&target, std::fs::read(entry.path()).unwrap()).unwrap();
        }
    }
}

/// The first line of a JSONL file's bytes, with its newline.
fn first_line(bytes: &[u8]) -> Vec<u8> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .next()
        .unwrap()
        .to_vec()
}

fn write(dir: &Path, file: &str, bytes: &[u8]) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn import_lib(store: &Store, from: &Path, strict: bool) -> Result<ImportReport, ImportError> {
    let options = ImportOptions {
        strict,
        // Small batches, so that several transactions are exercised.
        batch_size: 7,
        ..ImportOptions::default()
    };
    import::import(store, from, &options, &mut NoProgress)
}

fn export_to(store: Store, out: &Path) -> lakehouse_kb::export::ExportReport {
    ExportJob::new(Arc::new(store), out.to_owned())
        .run()
        .unwrap()
}

/// Exports `store` into `out` and checks both files are `outcomes` and `ops`, byte for byte.
fn exports_as(store: Store, out: &Path, outcomes: &[u8], ops: &[u8]) {
    export_to(store, out);
    assert_same_bytes(
        "outcomes",
        &std::fs::read(out.join(OUTCOMES)).unwrap(),
        outcomes,
    );
    assert_same_bytes("ops", &std::fs::read(out.join(OPS)).unwrap(), ops);
}

/// The issue's round trip: the fixtures into an empty database, exported, byte-identical.
#[test]
fn fixtures_round_trip_byte_identical_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = kb(&data, &["import", "--from", LEGACY_DATA]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "_kb/outcomes.jsonl: 40 lines read, 40 stored, 0 skipped as duplicates, 0 rejected"
        ),
        "{text}"
    );
    assert!(
        text.contains("_observer/ops.jsonl: 60 lines read, 60 stored"),
        "{text}"
    );
    // 20 audit rows: 17 match their verdict file, 3 are older audits of a head whose file a
    // re-audit overwrote.
    assert!(
        text.contains("verdicts: 20 stored (17 with their verdict file's JSON, 3 from their KB row, 0 from a file without a row)"),
        "{text}"
    );
    assert!(stderr(&out).contains("importing:"), "plain progress lines");

    // Indexes and counters agree with the rows.
    let out = kb(&data, &["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let out = kb(&data, &["export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for file in [OUTCOMES, OPS] {
        assert_same_bytes(
            file,
            &std::fs::read(data.join(file)).unwrap(),
            &std::fs::read(fixtures().join(file)).unwrap(),
        );
    }
}

#[test]
fn importing_twice_stores_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let first = import_lib(&store, &fixtures(), false).unwrap();
    assert_eq!(
        first.totals(),
        Totals {
            read: 117,
            stored: 100,
            duplicates: 0,
            rejected: 0
        }
    );
    let stats = store.stats().unwrap();
    let again = import_lib(&store, &fixtures(), false).unwrap();
    assert_eq!(
        again.totals(),
        Totals {
            read: 117,
            stored: 0,
            duplicates: 100,
            rejected: 0
        }
    );
    assert_eq!((again.verdicts.stored, again.verdicts.duplicates), (0, 20));
    assert_eq!(store.stats().unwrap(), stats);
    drop(store);

    let out = kb(dir.path(), &["import", "--from", LEGACY_DATA]);
    assert!(
        stdout(&out).contains("total: 117 read, 0 stored, 100 skipped as duplicates, 0 rejected"),
        "{}",
        stdout(&out)
    );
}

/// A legacy writer kept appending after the first import: the second brings in only the new
/// lines, including a new copy of a line that was already there.
#[test]
fn a_grown_legacy_file_brings_only_its_new_lines() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    copy_dir(&fixtures(), &legacy);
    let store = open_store(dir.path());
    import_lib(&store, &legacy, false).unwrap();

    let mut outcomes = std::fs::read(legacy.join(OUTCOMES)).unwrap();
    let first_line = first_line(&outcomes);
    let verdict = Verdict::parse(&Synth::new(1, 5).verdict()).unwrap();
    outcomes.extend_from_slice(&first_line);
    outcomes.extend_from_slice(format!("{}\n", verdict.kb_outcome_line()).as_bytes());
    write(&legacy, OUTCOMES, &outcomes);
    let mut ops = std::fs::read(legacy.join(OPS)).unwrap();
    ops.extend_from_slice(b"{\"timestamp\":\"2026-04-03T00:00:00.000Z\",\"endpoint\":\"bot:cycle\",\"input_summary\":\"cycle ?\\u00d7? in ?, ?\",\"success\":true,\"duration_ms\":5,\"output_summary\":\"ok\",\"source\":\"bot\"}\n");
    write(&legacy, OPS, &ops);

    let report = import_lib(&store, &legacy, false).unwrap();
    assert_eq!(
        (report.outcomes.stored, report.outcomes.duplicates),
        (2, 40)
    );
    assert_eq!((report.ops.stored, report.ops.duplicates), (1, 60));
    assert_eq!(report.verdicts.stored, 1, "the new audit row's verdict");
    exports_as(store, &dir.path().join("out"), &outcomes, &ops);
}

/// A copy of the fixtures (`DIR/legacy`) imported into a database in `DIR/data`: `(DIR,
/// legacy, data)`.
fn fixtures_imported() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    copy_dir(&fixtures(), &legacy);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    import_lib(&open_store(&data), &legacy, false).unwrap();
    (dir, legacy, data)
}

/// README step 3: a legacy directory imported, then written to by a legacy auditor before the
/// service first exports into it: its rows are kept where they are and the lines appended
/// after them taken in. Until 2026-12-06 the file was kept aside as another writer's and
/// rebuilt from the database, the appended rows never stored (a review's).
#[test]
fn rows_appended_after_the_import_are_taken_in_by_the_first_export() {
    let (_dir, legacy, data) = fixtures_imported();
    let mut outcomes = std::fs::read(legacy.join(OUTCOMES)).unwrap();
    let verdict = Verdict::parse(&Synth::new(2, 5).verdict()).unwrap();
    outcomes.extend_from_slice(b"{\"sig_hash\":\"late-1\",\"kind\":\"scenario\",\"ok\":true}\n");
    outcomes.extend_from_slice(format!("{}\n", verdict.kb_outcome_line()).as_bytes());
    write(&legacy, OUTCOMES, &outcomes);

    let legacy_arg = legacy.to_str().unwrap();
    let server = crate::support::InProcessServer::start_in(
        &data,
        &["--export-out", legacy_arg, "--export-interval", "0"],
    );
    let audits = || {
        let history = server.get(&format!("/prs/{}/history", verdict.pr_number));
        history.json["count"].as_u64().unwrap()
    };
    let audits_before = audits();
    let report = server.post_json("/export", "");
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(
        report.json["outcomes"]["lines_taken_in"], 2,
        "{}",
        report.text
    );
    assert_eq!(std::fs::read(legacy.join(OUTCOMES)).unwrap(), outcomes);
    let kept: Vec<_> = std::fs::read_dir(legacy.join("_kb"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".replaced-"))
        .collect();
    assert!(kept.is_empty(), "{kept:?}");
    let stats = server.get("/stats");
    assert_eq!(stats.json["outcomes"], 42, "{}", stats.text);
    assert_eq!(
        audits(),
        audits_before + 1,
        "the appended audit row's verdict"
    );
}

/// A legacy directory the service has exported into holds rows the service received and rows
/// it took in from another writer: importing it again (the README's way back and forth) stores
/// none of them a second time. A review found the taken-in rows, which no import key names,
/// stored again (3,468 of them in one run) and then exported twice.
#[test]
fn importing_a_directory_the_service_exported_into_stores_nothing_twice() {
    let (dir, legacy, data) = fixtures_imported();
    let legacy_arg = legacy.to_str().unwrap();
    let mut server = crate::support::InProcessServer::start_in(
        &data,
        &["--export-out", legacy_arg, "--export-interval", "0"],
    );
    // Rows the service receives, and rows a legacy writer appends, which the export takes in.
    let verdict = Synth::new(3, 5).verdict();
    assert_eq!(server.post_json("/verdicts", verdict).status, 201);
    let event = r#"{"source":"bot","event_kind":"cycle","ok":true}"#;
    assert_eq!(server.post_json("/event", event).status, 200);
    assert_eq!(server.post_json("/export", "").status, 200);
    let late = "{\"sig_hash\":\"legacy-late\",\"staffer_id\":\"s9\",\"ok_events\":1}\n";
    let mut outcomes = std::fs::read(legacy.join(OUTCOMES)).unwrap();
    outcomes.extend_from_slice(late.as_bytes());
    write(&legacy, OUTCOMES, &outcomes);
    let report = server.post_json("/export", "");
    assert_eq!(
        report.json["outcomes"]["lines_taken_in"], 1,
        "{}",
        report.text
    );
    let row = r#"{"sig_hash":"s-after","kind":"scenario","ok":true}"#;
    assert_eq!(server.post_json("/outcomes", row).status, 201);
    assert_eq!(server.post_json("/export", "").status, 200);
    server.stop().unwrap();
    drop(server);

    let store = open_store(&data);
    let stats = store.stats().unwrap();
    let again = import_lib(&store, &legacy, false).unwrap();
    assert_eq!(again.totals().stored, 0, "{again:?}");
    assert_eq!((again.verdicts.stored, again.verdicts.duplicates), (0, 21));
    assert_eq!(store.stats().unwrap(), stats);
    let (outcomes, ops) = (
        std::fs::read(legacy.join(OUTCOMES)).unwrap(),
        std::fs::read(legacy.join(OPS)).unwrap(),
    );
    let late_rows = outcomes
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"{\"sig_hash\":\"legacy-late\""))
        .count();
    assert_eq!(late_rows, 1);
    exports_as(store, &dir.path().join("out"), &outcomes, &ops);
}

/// The same line three times in one file is three records, and a second import of the file
/// stores none of them again (its import keys count that line's occurrences; a line met once
/// is not counted).
#[test]
fn a_line_repeated_in_its_file_keeps_every_copy_once() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    copy_dir(&fixtures(), &legacy);
    let mut ops = std::fs::read(legacy.join(OPS)).unwrap();
    let first_line = first_line(&ops);
    ops.extend_from_slice(&first_line);
    ops.extend_from_slice(&first_line);
    write(&legacy, OPS, &ops);
    let store = open_store(dir.path());
    let first = import_lib(&store, &legacy, false).unwrap();
    assert_eq!((first.ops.stored, first.ops.duplicates), (62, 0));
    let again = import_lib(&store, &legacy, false).unwrap();
    assert_eq!((again.ops.stored, again.ops.duplicates), (0, 62));
    let out = dir.path().join("out");
    export_to(store, &out);
    assert_same_bytes("ops", &std::fs::read(out.join(OPS)).unwrap(), &ops);
}

/// One legacy directory with every kind of malformed line (and a blank one).
fn malformed_dir(root: &Path) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let legacy = root.join("legacy");
    let good = [
        r#"{"sig_hash":"6cd5d79c4f5d42c9","ok_events":4,"total_events":5,"elapsed_secs":15.8}"#,
        r#"{"no_sig_hash":true}"#,
        r#"{"sig_hash":"802359ae21fa2e90","ok_events":2}"#,
    ];
    let mut outcomes = Vec::new();
    outcomes.extend_from_slice(format!("{}\n", good[0]).as_bytes());
    outcomes.extend_from_slice(b"{\"sig_hash\":\"x\",\n"); // line 2: bad JSON
    outcomes.extend_from_slice(b"[1,2]\n"); // line 3: not an object
    outcomes.extend_from_slice(b"{\"sig_hash\":\"\xff\xfe\"}\n"); // line 4: invalid UTF-8
    outcomes.extend_from_slice(format!("{}\n", good[1]).as_bytes());
    outcomes.extend_from_slice(b"  \n"); // line 6: blank
    outcomes.extend_from_slice(format!("{}\n", good[2]).as_bytes());
    write(&legacy, OUTCOMES, &outcomes);
    let op = r#"{"timestamp":"2026-04-01T22:51:58.709Z","endpoint":"scenario:fill","input_summary":"search welder×2 in Gary, IN","success":true,"duration_ms":3314,"output_summary":"ok","source":"scenario","event_kind":"search"}"#;
    let ops = format!("{op}\n\"just a string\"\n{op}\n");
    write(&legacy, OPS, ops.as_bytes());
    let kept_outcomes = format!("{}\n{}\n{}\n", good[0], good[1], good[2]).into_bytes();
    let kept_ops = format!("{op}\n{op}\n").into_bytes();
    (legacy, kept_outcomes, kept_ops)
}

#[test]
fn malformed_lines_are_reported_with_file_and_line_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (legacy, kept_outcomes, kept_ops) = malformed_dir(dir.path());
    let store = open_store(dir.path());
    let report = import_lib(&store, &legacy, false).unwrap();
    let listed: Vec<(String, Option<u64>, String)> = report
        .rejections
        .iter()
        .map(|p| {
            let file = p.path.strip_prefix(&legacy).unwrap();
            (file.display().to_string(), p.line, p.message.clone())
        })
        .collect();
    let expect = [
        (
            OUTCOMES,
            2,
            "bad JSON: EOF while parsing a value at line 1 column 16",
        ),
        (OUTCOMES, 3, "not a JSON object (got an array)"),
        (OUTCOMES, 4, "invalid UTF-8 (at byte 13 of the line)"),
        (OPS, 2, "not a JSON object (got a string)"),
    ];
    assert_eq!(
        listed,
        expect
            .iter()
            .map(|(f, l, m)| ((*f).to_owned(), Some(*l), (*m).to_owned()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        (
            report.outcomes.read,
            report.outcomes.stored,
            report.outcomes.rejected,
            report.outcomes.blank
        ),
        (7, 3, 3, 1)
    );
    assert_eq!((report.ops.stored, report.ops.rejected), (2, 1));
    let out = dir.path().join("out");
    export_to(store, &out);
    assert_same_bytes(
        "outcomes",
        &std::fs::read(out.join(OUTCOMES)).unwrap(),
        &kept_outcomes,
    );
    assert_same_bytes("ops", &std::fs::read(out.join(OPS)).unwrap(), &kept_ops);

    // The CLI says the same, file:line first.
    let data = dir.path().join("data");
    let out = kb(&data, &["import", "--from", legacy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    for (file, line, message) in expect {
        let want = format!(
            "rejected: {}:{line}: {message}",
            legacy.join(file).display()
        );
        assert!(text.contains(&want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn strict_import_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (legacy, _, _) = malformed_dir(dir.path());
    let store = open_store(dir.path());
    match import_lib(&store, &legacy, true) {
        Err(ImportError::Strict {
            n_rejected,
            rejections,
            ..
        }) => {
            assert_eq!(n_rejected, 4);
            assert_eq!(
                rejections.iter().map(|p| p.line).collect::<Vec<_>>(),
                [Some(2), Some(3), Some(4), Some(2)]
            );
        }
        other => panic!("expected a strict refusal, got {other:?}"),
    }
    assert_eq!(store.last_seq().unwrap(), 0);
    drop(store);

    let data = dir.path().join("data");
    let out = kb(
        &data,
        &["import", "--strict", "--from", legacy.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("nothing was imported (--strict)"), "{text}");
    assert!(
        text.contains(&format!(
            "rejected: {}:3: not a JSON object",
            legacy.join(OUTCOMES).display()
        )),
        "{text}"
    );
    assert_eq!(open_store(&data).last_seq().unwrap(), 0);

    // A well-formed directory imports the same with --strict.
    let out = kb(&data, &["import", "--strict", "--from", LEGACY_DATA]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(open_store(&data).stats().unwrap().outcomes, 40);
}

/// Verdict files: one matched by its audit row, one stale (a re-audit overwrote it), one no row
/// matches, one invalid; and an audit row too incomplete to make a verdict from.
#[test]
fn verdict_files_are_matched_kept_without_rows_or_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    let mut synth = Synth::new(3, 5);
    let matched = synth.verdict_for(7, "aaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    let older = synth.verdict_for(8, "ccccccccccccdddddddddddddddddddddddddddd");
    let reaudit = synth.verdict_for(8, "ccccccccccccdddddddddddddddddddddddddddd");
    let without_row = synth.verdict_for(7, "eeeeeeeeeeeeffffffffffffffffffffffffffff");
    let pretty = |text: &str| {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        serde_json::to_string_pretty(&value).unwrap()
    };
    let verdicts_dir = "_auditor/verdicts";
    write(
        &legacy,
        &format!("{verdicts_dir}/7-aaaaaaaaaaaa.json"),
        pretty(&matched).as_bytes(),
    );
    // The file holds the re-audit, which has no row: the older audit's row does not match it.
    write(
        &legacy,
        &format!("{verdicts_dir}/8-cccccccccccc.json"),
        pretty(&reaudit).as_bytes(),
    );
    write(
        &legacy,
        &format!("{verdicts_dir}/7-eeeeeeeeeeee.json"),
        pretty(&without_row).as_bytes(),
    );
    write(
        &legacy,
        &format!("{verdicts_dir}/9-000000000000.json"),
        br#"{"pr_number":"nine"}"#,
    );
    let row = |v: &str| Verdict::parse(v).unwrap().kb_outcome_line();
    // An orphan audited before the first audit row is stored before it.
    let earliest = "{\"pr_number\":7,\"head_sha\":\"0123456789ab0123456789ab0123456789ab0123\",\"overall\":\"block\",\"one_liner\":\"x\",\"metrics\":{\"findings_block\":0,\"findings_warn\":0},\"audited_at\":\"2000-01-01T00:00:00.000Z\"}";
    write(
        &legacy,
        &format!("{verdicts_dir}/7-0123456789ab.json"),
        earliest.as_bytes(),
    );
    let incomplete = r#"{"kind":"audit","sig_hash":"pr9-00000000","pr_number":9}"#;
    let outcomes = format!("{}\n{}\n{incomplete}\n", row(&matched), row(&older));
    write(&legacy, OUTCOMES, outcomes.as_bytes());

    let store = open_store(dir.path());
    let report = import_lib(&store, &legacy, false).unwrap();
    assert_eq!(report.verdicts.from_file, 1);
    assert_eq!(report.verdicts.from_row, 1);
    // The re-audit's file, the earliest and the other file without a row match no row.
    assert_eq!(report.verdicts.without_row, 3);
    assert_eq!(report.verdicts.not_made, 1);
    assert_eq!(report.verdict_files.read, 5);
    assert_eq!(report.verdict_files.rejected, 1);
    assert_eq!(report.rejections.len(), 1);
    assert_eq!(report.rejections[0].line, None);
    assert!(report.rejections[0].path.ends_with("9-000000000000.json"));
    assert!(
        report.rejections[0]
            .message
            .starts_with("not a valid verdict: pr_number must be a non-negative integer"),
        "{:?}",
        report.rejections[0]
    );
    assert_eq!(report.n_warnings, 1);
    assert_eq!(report.warnings[0].line, Some(3));
    assert!(
        report.warnings[0]
            .message
            .contains("no verdict could be made")
    );

    // Seq order follows audit order: a file without a row takes its place among the rows by
    // its audited_at (here both come after every audit row).
    let pr7 = store.pr_verdicts(&Default::default(), 7).unwrap();
    assert_eq!(pr7.len(), 3);
    assert_eq!(pr7[0].value.raw_json, earliest);
    assert_eq!(
        pr7[1].value.raw_json,
        pretty(&matched),
        "the file's whole JSON"
    );
    assert_eq!(pr7[2].value.raw_json, pretty(&without_row));
    let pr8 = store.pr_verdicts(&Default::default(), 8).unwrap();
    assert_eq!(pr8.len(), 2);
    let from_row = &pr8[0].value;
    let older = Verdict::parse(&older).unwrap();
    assert_eq!(from_row.audited_at, older.audited_at);
    assert!(
        !from_row.raw_json.contains("\"claims\""),
        "made from the row, which has no claims: {}",
        from_row.raw_json
    );
    assert_eq!(
        from_row.audit_duration_ms,
        older.audit_duration_ms.value().copied()
    );
    assert_eq!(pr8[1].value.raw_json, pretty(&reaudit));

    let out = dir.path().join("out");
    export_to(store, &out);
    assert_same_bytes(
        "outcomes: no row invented for verdicts without one",
        &std::fs::read(out.join(OUTCOMES)).unwrap(),
        outcomes.as_bytes(),
    );
}

/// Importing the data directory into itself, then exporting there: the legacy files already
/// hold the database's rows, so they are kept as they are (same inode, no rewrite).
#[test]
fn a_directory_imported_in_place_is_adopted_by_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&fixtures(), &data);
    let out = kb(&data, &["import", "--from", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let inode = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    };
    let before = inode(&data.join(OUTCOMES));
    let store = open_store(&data);
    let report = export_to(store, &data);
    for file in report.files() {
        assert_eq!(file.action, Action::Unchanged, "{file:?}");
    }
    assert_eq!(inode(&data.join(OUTCOMES)), before);
    assert_eq!(report.outcomes.checkpoint.len, 10536);
    for file in [OUTCOMES, OPS] {
        assert_same_bytes(
            file,
            &std::fs::read(data.join(file)).unwrap(),
            &std::fs::read(fixtures().join(file)).unwrap(),
        );
    }
}

#[test]
fn missing_pieces_are_fine_and_a_missing_directory_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    let op = r#"{"timestamp":"t","endpoint":"e","input_summary":"i","success":false,"duration_ms":1,"output_summary":"failed","source":"mcp"}"#;
    write(&legacy, OPS, format!("{op}\n").as_bytes());
    let store = open_store(dir.path());
    let report = import_lib(&store, &legacy, true).unwrap();
    assert_eq!(
        report.totals(),
        Totals {
            read: 1,
            stored: 1,
            duplicates: 0,
            rejected: 0
        }
    );
    let err = import_lib(&store, &dir.path().join("nope"), false).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

/// A legacy file that cannot be read stops the import with its path while the verdict files
/// are being read in the background, and nothing is stored.
#[test]
fn an_unreadable_legacy_file_stops_the_import_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    copy_dir(&fixtures(), &legacy);
    let outcomes = legacy.join(OUTCOMES);
    std::fs::remove_file(&outcomes).unwrap();
    // A directory where the file should be: its length reads (not 0: it holds an entry, for
    // file systems that size directories by their entries), its bytes do not.
    std::fs::create_dir(&outcomes).unwrap();
    std::fs::write(outcomes.join("entry"), b"").unwrap();
    let store = open_store(dir.path());
    for strict in [false, true] {
        match import_lib(&store, &legacy, strict) {
            Err(ImportError::Io { path, .. }) => assert_eq!(path, outcomes),
            other => panic!("{other:?}"),
        }
    }
    // A FIFO there (or a device) has no length: it read as an empty file, "0 lines read".
    std::fs::remove_dir_all(&outcomes).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&outcomes)
        .status()
        .unwrap();
    assert!(status.success());
    match import_lib(&store, &legacy, false) {
        Err(ImportError::Io { path, source }) => {
            assert_eq!(path, outcomes);
            assert!(
                source.to_string().contains("not a regular file"),
                "{source}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.last_seq().unwrap(), 0);
}

/// An audit row whose `kind` is written with an escape (`"\u0061udit"`) still finds its
/// verdict file: the file's JSON is kept, not replaced by a verdict made from the row.
#[test]
fn an_audit_row_with_an_escaped_kind_finds_its_verdict_file() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    let file = r#"{"pr_number":7,"head_sha":"aaaaaaaabbbbbbbbccccccccdddddddd00000000","audited_at":"2026-01-01T00:00:00.000Z","overall":"block","one_liner":"file version","claims":["c1"],"metrics":{"findings_block":1,"findings_warn":0,"findings_info":0,"audit_duration_ms":1000},"extra":"kept"}"#;
    write(
        &legacy,
        "_auditor/verdicts/7-aaaaaaaabbbb.json",
        file.as_bytes(),
    );
    let row = r#"{"kind":"\u0061udit","sig_hash":"pr7-aaaaaaaa","audited_at":"2026-01-01T00:00:00.000Z","pr_number":7,"head_sha":"aaaaaaaabbbbbbbbccccccccdddddddd00000000","overall":"block","one_liner":"file version","ok_events":0,"total_events":1,"findings":{"block":1,"warn":0,"info":0},"elapsed_secs":1}"#;
    write(&legacy, "_kb/outcomes.jsonl", format!("{row}\n").as_bytes());
    let store = open_store(dir.path());
    let report = import_lib(&store, &legacy, false).unwrap();
    assert_eq!(
        (
            report.verdicts.from_file,
            report.verdicts.from_row,
            report.verdicts.duplicates
        ),
        (1, 0, 0),
        "{report:?}"
    );
}

/// A legacy verdict file is history: one with more claims than a request may carry is kept
/// whole, its first claims indexed, with a warning naming it (it was rejected, and the verdict
/// made from its KB row lost its claims, findings and unknown fields).
#[test]
fn a_verdict_file_with_more_claims_than_a_request_may_carry_is_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    let claims: Vec<String> = (0..=MAX_CLAIMS).map(|i| format!("claim {i}")).collect();
    let file = serde_json::json!({
        "pr_number": 6,
        "head_sha": "7fe47bab0c9d7fe47bab0c9d7fe47bab0c9d7fe4",
        "audited_at": "2026-04-22T17:20:00.000Z",
        "overall": "block",
        "one_liner": "x",
        "claims": claims,
        "metrics": {"findings_block": 1, "findings_warn": 0, "findings_info": 0, "audit_duration_ms": 5},
        "extra": "kept",
    })
    .to_string();
    assert!(
        Verdict::parse(&file).is_err(),
        "a request this large is refused"
    );
    write(
        &legacy,
        "_auditor/verdicts/6-7fe47bab0c9d.json",
        file.as_bytes(),
    );
    let (verdict, more) = Verdict::parse_history(&file).unwrap();
    assert!(more);
    assert_eq!(verdict.claims.len(), MAX_CLAIMS);
    let row = verdict.kb_outcome_line();
    write(&legacy, "_kb/outcomes.jsonl", format!("{row}\n").as_bytes());

    let mut store = open_store(dir.path());
    let report = import_lib(&store, &legacy, false).unwrap();
    assert_eq!(
        (
            report.verdicts.from_file,
            report.verdicts.from_row,
            report.verdict_files.rejected
        ),
        (1, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.n_warnings, 1, "{report:?}");
    assert_eq!(report.warnings[0].line, None);
    assert!(report.warnings[0].path.ends_with("6-7fe47bab0c9d.json"));
    assert!(
        report.warnings[0]
            .message
            .contains("the first 1000 are indexed"),
        "{:?}",
        report.warnings[0]
    );
    let stored = store.pr_verdicts(&Default::default(), 6).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].value.raw_json, file);
    // The claims index holds the first ones, as a reread of the stored verdict gives them.
    let check = store.check().unwrap();
    assert!(check.passed(), "{check:?}");
}

/// A verdict file naming a repository its KB row does not (a `repo` field the legacy auditor
/// kept, say) gives no verdict apart from its row: the verdict is made from the row, in the
/// row's namespace, with a warning, as the export's take-in does. A review found the verdict
/// in the file's namespace and the row in the default one, whose history said "no prior
/// audits".
#[test]
fn a_verdict_file_naming_another_repository_than_its_row_gives_the_rows_verdict() {
    // Imports the verdict file `file` and its KB row `row` into a fresh database.
    let import = |file: &str, row: &str| {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("legacy");
        let name = "_auditor/verdicts/6-7fe47bab0c9d.json";
        write(&legacy, name, file.as_bytes());
        write(&legacy, "_kb/outcomes.jsonl", format!("{row}\n").as_bytes());
        let store = open_store(dir.path());
        let report = import_lib(&store, &legacy, false).unwrap();
        (dir, store, report)
    };
    let file = serde_json::json!({
        "pr_number": 6,
        "head_sha": "7fe47bab0c9d7fe47bab0c9d7fe47bab0c9d7fe4",
        "audited_at": "2026-04-22T17:20:00.000Z",
        "overall": "block",
        "one_liner": "x",
        "repo": "profit/lakehouse",
        "claims": ["the upload retries forever"],
        "metrics": {"findings_block": 1, "findings_warn": 0, "findings_info": 0},
    })
    .to_string();
    // The row the legacy auditor wrote for it: no repo.
    let row = r#"{"kind":"audit","sig_hash":"pr6-7fe47bab","audited_at":"2026-04-22T17:20:00.000Z","pr_number":6,"head_sha":"7fe47bab0c9d7fe47bab0c9d7fe47bab0c9d7fe4","overall":"block","one_liner":"x","ok_events":0,"total_events":1,"findings":{"block":1,"warn":0,"info":0},"elapsed_secs":0}"#;
    let (_dir, mut store, report) = import(&file, row);
    assert_eq!(
        (report.verdicts.from_file, report.verdicts.from_row),
        (0, 1),
        "{report:?}"
    );
    assert_eq!(report.n_warnings, 1, "{report:?}");
    assert!(
        report.warnings[0].message.contains("profit/lakehouse"),
        "{:?}",
        report.warnings[0]
    );
    let named = lakehouse_kb::model::Repo::parse("repo", "profit/lakehouse").unwrap();
    assert!(store.pr_verdicts(&named, 6).unwrap().is_empty());
    let stored = store.pr_verdicts(&Default::default(), 6).unwrap();
    assert_eq!(stored.len(), 1);
    let check = store.check().unwrap();
    assert!(check.passed(), "{check:?}");

    // A row whose `repo` is not a valid name is in the default namespace, and so is a file
    // naming none: the same namespace, the file's verdict (a review found it made from the
    // row, its claims lost, when the row's raw `repo` was compared).
    let file = file.replace(r#","repo":"profit/lakehouse""#, "");
    assert!(!file.contains("repo"), "{file}");
    let long = "r".repeat(201);
    let row = row.replace(
        r#""elapsed_secs":0}"#,
        &format!(r#""elapsed_secs":0,"repo":"{long}"}}"#),
    );
    let (_dir, _, report) = import(&file, &row);
    assert_eq!(
        (report.verdicts.from_file, report.verdicts.from_row),
        (1, 0),
        "{report:?}"
    );

    // A file naming none goes with a row naming one: an auditor posting with the client's
    // `repo` option writes its files as before, without one, and the exported rows carry the
    // repository (a review found every claim and finding of that round trip lost).
    let row = row.replace(&long, "profit/lakehouse");
    let (_dir, mut store, report) = import(&file, &row);
    assert_eq!(
        (
            report.verdicts.from_file,
            report.verdicts.from_row,
            report.n_warnings
        ),
        (1, 0, 0),
        "{report:?}"
    );
    let stored = store.pr_verdicts(&named, 6).unwrap();
    assert_eq!(stored.len(), 1);
    // The file's verdict, claims and all, its JSON naming the repository it is in.
    let named_json = format!(r#"{},"repo":"profit/lakehouse"}}"#, &file[..file.len() - 1]);
    assert_eq!(stored[0].value.raw_json, named_json);
    assert!(
        store
            .pr_verdicts(&Default::default(), 6)
            .unwrap()
            .is_empty()
    );
    let check = store.check().unwrap();
    assert!(check.passed(), "{check:?}");

    // `null` and `""` name the default namespace as leaving `repo` out does: such a file goes
    // with its row too, the value replaced where it stands (the last of two, the one read).
    let cases = [
        (r#","repo":null}"#, r#","repo":"profit/lakehouse"}"#),
        (r#","repo" : "" }"#, r#","repo" : "profit/lakehouse" }"#),
        (
            r#","repo":"elsewhere","repo":null}"#,
            r#","repo":"elsewhere","repo":"profit/lakehouse"}"#,
        ),
    ];
    for (tail, named_tail) in cases {
        let file = format!("{}{tail}", &file[..file.len() - 1]);
        let (_dir, store, report) = import(&file, &row);
        assert_eq!(
            (report.verdicts.from_file, report.n_warnings),
            (1, 0),
            "{tail}: {report:?}"
        );
        let stored = store.pr_verdicts(&named, 6).unwrap();
        let named_json = format!("{}{named_tail}", &file[..file.len() - tail.len()]);
        assert_eq!(stored[0].value.raw_json, named_json);
    }
}

/// An audit row the database holds without its verdict (posted to `POST /outcomes`, which
/// stores a row byte for byte and makes no verdict), exported, then imported with its verdict
/// file: the verdict is stored from the file. A review found the row skipped as held and its
/// verdict file dropped with it.
#[test]
fn a_held_audit_row_still_brings_its_verdict_file() {
    let dir = tempfile::tempdir().unwrap();
    let (legacy, data) = (dir.path().join("legacy"), dir.path().join("data"));
    let legacy_arg = legacy.to_str().unwrap();
    let mut server = crate::support::InProcessServer::start_in(
        &data,
        &["--export-out", legacy_arg, "--export-interval", "0"],
    );
    let head = "abcdef0123456789abcdef0123456789abcdef01";
    let at = "2026-06-01T00:00:00.000Z";
    let row = format!(
        r#"{{"kind":"audit","sig_hash":"pr50-abcdef01","audited_at":"{at}","pr_number":50,"head_sha":"{head}","overall":"block","one_liner":"SQL from input","ok_events":0,"total_events":1,"findings":{{"block":1,"warn":0,"info":0}},"elapsed_secs":1}}"#
    );
    assert_eq!(server.post_json("/outcomes", row).status, 201);
    assert_eq!(server.post_json("/export", "").status, 200);
    server.stop().unwrap();
    drop(server);
    let verdict = format!(
        r#"{{"pr_number":50,"head_sha":"{head}","overall":"block","one_liner":"SQL from input","claims":["builds SQL from the request"],"findings":[{{"check":"security","severity":"block","summary":"SQL built from request input"}}],"metrics":{{"findings_block":1,"findings_warn":0}},"audited_at":"{at}"}}"#
    );
    write(
        &legacy,
        "_auditor/verdicts/50-abcdef01.json",
        verdict.as_bytes(),
    );
    let store = open_store(&data);
    let report = import_lib(&store, &legacy, false).unwrap();
    assert_eq!(report.outcomes.duplicates, 1, "{report:?}");
    assert_eq!(
        (report.verdicts.stored, report.verdicts.from_file),
        (1, 1),
        "{report:?}"
    );
    let again = import_lib(&store, &legacy, false).unwrap();
    assert_eq!((again.verdicts.stored, again.verdicts.duplicates), (0, 1));
}

/// A legacy writer that crashed can leave its file's tail zero-filled, and appends after the
/// zeros when it runs again: the row after them is kept, with a warning naming the line, where
/// a review found the whole line rejected and the row lost. A file that ends in zeros (nothing
/// appended after) still has them reported as a torn last line.
#[test]
fn a_row_appended_after_a_zero_filled_tail_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    let first = "{\"sig_hash\":\"before\",\"x\":1}\n";
    let after = "{\"sig_hash\":\"after-nul\",\"x\":2}\n";
    let mut outcomes = first.as_bytes().to_vec();
    outcomes.extend_from_slice(&[0; 4096]);
    outcomes.extend_from_slice(after.as_bytes());
    outcomes.extend_from_slice(&[0; 100]);
    write(&legacy, OUTCOMES, &outcomes);
    let store = open_store(dir.path());
    let report = import_lib(&store, &legacy, false).unwrap();
    assert_eq!(
        (report.outcomes.stored, report.outcomes.rejected),
        (2, 1),
        "{report:?}"
    );
    assert_eq!(report.warnings.len(), 1, "{report:?}");
    assert_eq!(report.warnings[0].line, Some(2));
    assert!(
        report.warnings[0].message.contains("4096 NUL bytes"),
        "{report:?}"
    );
    assert_eq!(report.rejections[0].line, Some(3), "{report:?}");
    exports_as(
        store,
        &dir.path().join("out"),
        format!("{first}{after}").as_bytes(),
        b"",
    );
}

/// A legacy line whose `repo` is not a valid name is kept, in the default namespace, with a
/// warning naming it (it was silent), and exported as written.
#[test]
fn a_legacy_line_with_an_invalid_repo_is_kept_in_the_default_namespace_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    let long = "r".repeat(300);
    let outcomes = format!(
        "{{\"sig_hash\":\"a\",\"repo\":\"{long}\",\"x\":5}}\n{{\"sig_hash\":\"a\",\"repo\":\"acme/api\",\"x\":6}}\n"
    );
    let ops = "{\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"endpoint\":\"e\",\"input_summary\":\"i\",\"success\":true,\"duration_ms\":1,\"output_summary\":\"o\",\"source\":\"bot\",\"sig_hash\":\"a\",\"repo\":\"a\\nb\"}\n";
    write(&legacy, OUTCOMES, outcomes.as_bytes());
    write(&legacy, OPS, ops.as_bytes());
    let store = open_store(dir.path());
    let report = import_lib(&store, &legacy, false).unwrap();
    assert_eq!(
        (report.outcomes.stored, report.ops.stored, report.n_warnings),
        (2, 1, 2),
        "{report:?}"
    );
    let messages: Vec<(Option<u64>, &str)> = report
        .warnings
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        [
            (
                Some(1),
                "row kept in the default namespace: repo must be at most 200 bytes, got 300"
            ),
            (
                Some(1),
                "line kept in the default namespace: repo must not contain control characters, \
                 got \"a\\nb\""
            ),
        ]
    );
    // The default namespace answers for both invalid ones; the valid name has its own.
    let stats = store.stats().unwrap();
    assert_eq!(stats.outcomes, 2);
    let default_sig = store.by_sig(&Default::default(), "a", 0, 100).unwrap();
    assert_eq!(default_sig.items.len(), 2, "{default_sig:?}");
    exports_as(
        store,
        &dir.path().join("out"),
        outcomes.as_bytes(),
        ops.as_bytes(),
    );
}

/// The legacy fixtures copied into `legacy`, with `outcome` added as the last outcome row and the
/// first op again with `extra` (`"name":value`) as the last op; the two files as written.
fn fixtures_with_one_more_line(legacy: &Path, outcome: &str, extra: &str) -> (Vec<u8>, Vec<u8>) {
    copy_dir(&fixtures(), legacy);
    let mut outcomes = std::fs::read(legacy.join(OUTCOMES)).unwrap();
    outcomes.extend_from_slice(outcome.as_bytes());
    outcomes.push(b'\n');
    write(legacy, OUTCOMES, &outcomes);
    let mut ops = std::fs::read(legacy.join(OPS)).unwrap();
    let mut line = first_line(&ops);
    line.pop();
    let line = String::from_utf8(line).unwrap();
    let cut = line.rfind('}').unwrap();
    ops.extend_from_slice(format!("{},{extra}}}\n", &line[..cut]).as_bytes());
    write(legacy, OPS, &ops);
    (outcomes, ops)
}

/// JavaScript writes half an emoji as a lone surrogate escape (`"\ud83d"`) and reads it back:
/// a legacy line holding one is imported (read as U+FFFD), kept as written, exported
/// byte-identical, and served as U+FFFD.
#[test]
fn legacy_lines_with_lone_surrogates_are_kept_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    let (outcomes, ops) = fixtures_with_one_more_line(
        &legacy,
        r#"{"sig_hash":"pr9-0badcafe","note":"half \ud83d and \udc00","ok_events":1,"total_events":1}"#,
        r#""note":"x\ud83d""#,
    );

    let mut store = open_store(dir.path());
    let report = import_lib(&store, &legacy, true).unwrap();
    assert_eq!(report.outcomes.rejected + report.ops.rejected, 0);
    let checked = store.check().unwrap();
    assert!(checked.problems.is_empty(), "{:?}", checked.problems);
    let records = store
        .by_sig(&Default::default(), "pr9-0badcafe", 0, 10)
        .unwrap();
    assert_eq!(records.items.len(), 1, "{:?}", records.items);
    exports_as(store, &dir.path().join("out"), &outcomes, &ops);
    // Served mended: the kept line is not JSON serde reads as it is.
    let server = crate::support::InProcessServer::start_in(dir.path(), &[]);
    let sig = server.get("/sig/pr9-0badcafe");
    assert!(
        sig.json.to_string().contains("half \u{fffd} and \u{fffd}"),
        "{}",
        sig.text
    );
}

/// JavaScript's writer never puts a number too large for a double in a legacy line (it writes
/// `null`), and the import keeps each line as written: such a line is refused, not kept with a
/// text no strict reader takes (found by a review of 1404c0d, which took `1e999` as `null` on
/// every parse and stored these lines literally).
#[test]
fn legacy_lines_with_numbers_past_a_double_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    let before = (
        std::fs::read(fixtures().join(OUTCOMES)).unwrap(),
        std::fs::read(fixtures().join(OPS)).unwrap(),
    );
    fixtures_with_one_more_line(
        &legacy,
        r#"{"sig_hash":"pr9-0badcafe","v":1e999}"#,
        r#""x":-1E400"#,
    );

    let mut store = open_store(dir.path());
    let report = import_lib(&store, &legacy, false).unwrap();
    assert_eq!(
        (report.outcomes.rejected, report.ops.rejected),
        (1, 1),
        "{report:?}"
    );
    assert!(store.check().unwrap().problems.is_empty());
    exports_as(store, &dir.path().join("out"), &before.0, &before.1);
}

/// A line or verdict file over `--max-line` is reported and skipped, read past without being
/// held (a 200 MB row imported whole was then served whole by `/feed`, outside any answer
/// bound); the lines around it are imported, and a byte-order mark is named as such.
#[test]
fn lines_and_verdict_files_over_the_limit_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    let row = |n: usize| format!(r#"{{"sig_hash":"s{n}","ok_events":1}}"#);
    let huge = format!(r#"{{"sig_hash":"big","pad":"{}"}}"#, "A".repeat(5 << 20));
    let outcomes = format!("{}\n{huge}\n{}\n\u{feff}{}\n", row(1), row(2), row(3));
    write(&legacy, OUTCOMES, outcomes.as_bytes());
    let op = |n: usize| {
        format!(
            r#"{{"timestamp":"t{n}","endpoint":"e","input_summary":"i","success":true,"duration_ms":1,"output_summary":"ok","source":"bot"}}"#
        )
    };
    let long_op = format!(r#"{{"timestamp":"t","note":"{}"}}"#, "B".repeat(1500));
    write(
        &legacy,
        OPS,
        format!("{}\n{long_op}\n{}\n", op(1), op(2)).as_bytes(),
    );
    let mut synth = Synth::new(5, 5);
    let small = synth.verdict_for(7, "aaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    let mut large: serde_json::Value =
        serde_json::from_str(&synth.verdict_for(8, "ccccccccccccdddddddddddddddddddddddddddd"))
            .unwrap();
    large["notes"] = serde_json::json!("C".repeat(1500));
    write(
        &legacy,
        "_auditor/verdicts/7-aaaaaaaaaaaa.json",
        small.as_bytes(),
    );
    write(
        &legacy,
        "_auditor/verdicts/8-cccccccccccc.json",
        large.to_string().as_bytes(),
    );
    assert!(small.len() < 1024, "{}", small.len());

    let store = open_store(dir.path());
    let options = ImportOptions {
        max_line_bytes: 1024,
        ..ImportOptions::default()
    };
    let report = import::import(&store, &legacy, &options, &mut NoProgress).unwrap();
    let listed: Vec<(String, Option<u64>, String)> = report
        .rejections
        .iter()
        .map(|p| {
            let file = p.path.strip_prefix(&legacy).unwrap();
            (file.display().to_string(), p.line, p.message.clone())
        })
        .collect();
    let over = |bytes: usize| {
        format!(
            "{bytes} bytes long, over the 1024-byte limit of a line: not imported (--max-line raises it)"
        )
    };
    assert_eq!(
        listed,
        [
            (
                "_auditor/verdicts/8-cccccccccccc.json".to_owned(),
                None,
                "over the 1024-byte limit of a verdict file: not imported (--max-line raises it)"
                    .to_owned()
            ),
            (OUTCOMES.to_owned(), Some(2), over(huge.len())),
            (
                OUTCOMES.to_owned(),
                Some(4),
                "bad JSON: the line starts with a byte-order mark (U+FEFF), which JSON does not \
                 allow: save the file as UTF-8 without one"
                    .to_owned()
            ),
            (OPS.to_owned(), Some(2), over(long_op.len())),
        ]
    );
    assert_eq!((report.outcomes.stored, report.ops.stored), (2, 2));
    let out = dir.path().join("out");
    export_to(store, &out);
    let kept = format!("{}\n{}\n", row(1), row(2));
    let outcomes_out = std::fs::read(out.join(OUTCOMES)).unwrap();
    assert_same_bytes("outcomes", &outcomes_out, kept.as_bytes());

    // The CLI's flag: the default (4 MiB) refuses the 5 MiB row too, a larger one takes it.
    let data = dir.path().join("data");
    let cli = kb(&data, &["import", "--from", legacy.to_str().unwrap()]);
    assert!(cli.status.success(), "{}", stderr(&cli));
    assert!(
        stderr(&cli).contains(&format!(
            ":2: {}",
            over(huge.len()).replace("1024", "4194304")
        )),
        "{}",
        stderr(&cli)
    );
    let data = dir.path().join("data-large");
    let cli = kb(
        &data,
        &[
            "import",
            "--from",
            legacy.to_str().unwrap(),
            "--max-line",
            "6MiB",
        ],
    );
    assert!(cli.status.success(), "{}", stderr(&cli));
    assert!(
        !stderr(&cli).contains("limit of a line"),
        "{}",
        stderr(&cli)
    );
}

/// Nothing outside the legacy directory is read: a link where one of its directories or JSONL
/// files should be stops the import, naming it; a verdict file that is a link is reported and
/// skipped while the rest is imported.
#[test]
fn links_in_the_legacy_directory_are_not_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    let mut synth = Synth::new(6, 5);
    let secret = synth.verdict_for(9, "9999999999999999999999999999999999999999");
    write(&outside, "secret.json", secret.as_bytes());
    write(&outside, "rows.jsonl", b"{\"sig_hash\":\"secret-row\"}\n");
    std::fs::create_dir_all(outside.join("kb")).unwrap();
    write(
        &outside,
        "kb/outcomes.jsonl",
        b"{\"sig_hash\":\"secret-dir\"}\n",
    );

    let legacy = dir.path().join("legacy");
    let own = synth.verdict_for(7, "aaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    write(
        &legacy,
        "_auditor/verdicts/7-aaaaaaaaaaaa.json",
        own.as_bytes(),
    );
    symlink(
        outside.join("secret.json"),
        legacy.join("_auditor/verdicts/9-999999999999.json"),
    )
    .unwrap();
    // Not files, named like them: reported too (they were left out unsaid), and not opened
    // (a FIFO would block).
    let fifo = legacy.join("_auditor/verdicts/8-fifo.json");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    std::fs::create_dir(legacy.join("_auditor/verdicts/8-dir.json")).unwrap();
    let not_a_file = "not a regular file (a FIFO, a device or a directory): not read";
    let store = open_store(dir.path());
    let report = import_lib(&store, &legacy, false).unwrap();
    let rejected: Vec<(String, String)> = report
        .rejections
        .iter()
        .map(|p| {
            (
                p.path.strip_prefix(&legacy).unwrap().display().to_string(),
                p.message.clone(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (
                "_auditor/verdicts/8-dir.json".to_owned(),
                not_a_file.to_owned()
            ),
            (
                "_auditor/verdicts/8-fifo.json".to_owned(),
                not_a_file.to_owned()
            ),
            (
                "_auditor/verdicts/9-999999999999.json".to_owned(),
                "a symbolic link: not followed (the import reads only what is inside the legacy \
                 directory)"
                    .to_owned()
            )
        ]
    );
    assert_eq!(report.verdicts.without_row, 1, "{report:?}");
    assert_eq!(store.last_seq().unwrap(), 1);

    // A linked JSONL file, or a linked directory, stops the import before anything is read.
    let linked_file = dir.path().join("linked-file");
    std::fs::create_dir_all(linked_file.join("_kb")).unwrap();
    symlink(outside.join("rows.jsonl"), linked_file.join(OUTCOMES)).unwrap();
    let linked_dir = dir.path().join("linked-dir");
    std::fs::create_dir_all(&linked_dir).unwrap();
    symlink(outside.join("kb"), linked_dir.join("_kb")).unwrap();
    for (legacy, link) in [
        (&linked_file, linked_file.join(OUTCOMES)),
        (&linked_dir, linked_dir.join("_kb")),
    ] {
        match import_lib(&store, legacy, false) {
            Err(ImportError::Link(path)) => assert_eq!(path, link),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.last_seq().unwrap(), 1, "nothing more was stored");
}

/// What the service exports, its import reads back whole with default flags: an event posted
/// within `--max-body` whose `error` the observer's rules copy into `output_summary` makes an
/// `ops.jsonl` line nearly twice its body, which the import's default limit (then 1 MiB)
/// rejected, losing an acknowledged event on the way through the legacy files (a review's).
/// A body whose line would pass the longest line the service writes (numbers written in full
/// by JavaScript's rules) is refused when posted, naming the limit.
#[test]
fn the_services_own_export_is_imported_whole() {
    let server = crate::support::InProcessServer::start_with(&["--export-interval", "0"]);
    let big = serde_json::json!({
        "source": "bot",
        "event_kind": "crash",
        "error": "E".repeat(700_000),
        "role": "R".repeat(200_000),
    });
    let posted = server.post_json("/event", big.to_string());
    assert_eq!(posted.status, 200, "{}", posted.text);
    // `1e20` is 21 digits in the line, twice: a 1 MiB body, a line of about 9 MiB.
    let numbers = format!(
        r#"{{"source":"bot","error":[{}1]}}"#,
        "1e20,".repeat(200_000)
    );
    let refused = server.post_json("/event", numbers);
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.json["field"], "body", "{}", refused.text);
    assert!(
        refused.json["error"]
            .as_str()
            .unwrap()
            .contains("4194304 bytes"),
        "{}",
        refused.text
    );
    assert_eq!(server.post_json("/export", "").status, 200);
    let line_len = std::fs::read_to_string(server.data.join(OPS))
        .unwrap()
        .lines()
        .map(str::len)
        .max()
        .unwrap();
    assert!(line_len > 1_500_000, "{line_len}");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cli = kb(&data, &["import", "--from", server.data.to_str().unwrap()]);
    assert!(cli.status.success(), "{}", stderr(&cli));
    assert!(
        !stderr(&cli).contains("limit of a line"),
        "{}",
        stderr(&cli)
    );
    let store = open_store(&dir.path().join("data"));
    assert_eq!(store.stats().unwrap().events, 1);
}

/// Events received over HTTP, exported into `ops.jsonl`, then deleted by retention (the file
/// keeps their lines); the operator goes back to the legacy observer, which appends, and comes
/// back by importing the directory: the lines the export wrote are held, as its checkpoint
/// says, and only the appended one is stored. At 3ab4e2b the import compared the file with the
/// database's rows alone: the first deleted event ended what it held, and every event after it
/// was stored a second time, and the deleted ones again (a review's: 11 stored for 1).
#[test]
fn coming_back_after_retention_stores_only_what_was_appended() {
    use lakehouse_kb::intake::event_record;
    use lakehouse_kb::store::{Put, Retention};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(dir.path()));
    // Events numbered `n`, received at `1_000 * at + n`.
    let events = |n: std::ops::Range<u64>, at: u64| -> Vec<Put> {
        n.map(|i| {
            let body = format!(r#"{{"source":"bot","ok":true,"n":{i}}}"#);
            event_record(body.as_bytes(), 1_000 * at + i)
                .unwrap()
                .into()
        })
        .collect()
    };
    store.write(&events(0..10, 1)).unwrap();
    let out = dir.path().join("legacy");
    ExportJob::new(store.clone(), out.clone()).run().unwrap();
    let rules = Retention {
        max_age_ms: None,
        max_count: Some(5),
        keep_after_seq: None,
    };
    while store.retain_events(rules, 10_000, 100).unwrap() > 0 {}
    assert_eq!(store.stats().unwrap().events, 5);
    // Three events more, whose lines an export wrote before it was killed, its checkpoint not
    // moved: held too, as the rows after the checkpoint's (a review of the first form of this).
    let more = events(10..13, 2);
    store.write(&more).unwrap();
    // Their lines as an export writes them: the same events' export from a scratch store.
    let scratch = tempfile::tempdir().unwrap();
    let other = Arc::new(open_store(scratch.path()));
    other.write(&more).unwrap();
    ExportJob::new(other, scratch.path().join("out"))
        .run()
        .unwrap();
    let unexported =
        std::fs::read_to_string(scratch.path().join("out/_observer/ops.jsonl")).unwrap();
    assert_eq!(unexported.lines().count(), 3);
    let ops = out.join("_observer/ops.jsonl");
    let mut file = std::fs::OpenOptions::new().append(true).open(&ops).unwrap();
    std::io::Write::write_all(&mut file, unexported.as_bytes()).unwrap();
    std::io::Write::write_all(
        &mut file,
        b"{\"timestamp\":\"2026-07-02T00:00:00.000Z\",\"source\":\"mcp\",\"success\":true}\n",
    )
    .unwrap();
    let report = import::import(&store, &out, &ImportOptions::default(), &mut NoProgress).unwrap();
    assert_eq!(
        (report.ops.stored, report.ops.duplicates),
        (1, 13),
        "{report:?}"
    );
    assert_eq!(store.stats().unwrap().events, 9);
}
