//! Rows a legacy writer appends to `outcomes.jsonl` are taken in: once, beside the database's
//! own writes, whatever else was appended.

use super::*;

/// Rows a legacy writer appends to `outcomes.jsonl` itself (an auditor left unchanged:
/// `appendVerdictToKbOutcomes`; a scenario runner) are taken into the database when the
/// service exports, as the import takes them: an audit row brings its verdict, so the PR's
/// history has it. Where the database wrote nothing of its own since, the file keeps them in
/// place; else the tail is written again in seq order. At 11cb16f they were kept aside and
/// cut, and the second time the export paused: the seed's Phase A check (one new row per
/// audited head) failed against the service (a review's).
#[test]
fn rows_a_legacy_writer_appends_are_taken_in() {
    let mut server = InProcessServer::start_with(&["--export-interval", "0"]);
    let path = server.data.join(OUTCOMES);
    let post_row = |row: &str| post_row(&server, row);
    let export = || {
        let answer = server.post_json("/export", "");
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json["outcomes"].clone()
    };
    let own_1 = r#"{"sig_hash":"s-1","kind":"scenario","ok":true}"#;
    post_row(own_1);
    export();
    let audit = r#"{"kind":"audit","sig_hash":"pr77-abcdef01","audited_at":"2026-06-01T00:00:00.000Z","pr_number":77,"head_sha":"abcdef0123456789abcdef0123456789abcdef01","overall":"block","one_liner":"tests missing","ok_events":0,"total_events":1,"findings":{"block":1,"warn":0,"info":2},"elapsed_secs":1.5}"#;
    let scenario_2 = r#"{"sig_hash":"s-2","kind":"scenario","ok":false}"#;
    let before = std::fs::read(&path).unwrap();
    append_to(&path, format!("{audit}\n{scenario_2}\n").as_bytes());
    let appended = std::fs::read(&path).unwrap();
    let report = export();
    assert_eq!(report["lines_taken_in"], 2, "{report}");
    assert_eq!(std::fs::read(&path).unwrap(), appended, "kept in place");
    assert!(appended.starts_with(&before));
    let history = server.get("/prs/77/history");
    assert_eq!(
        (&history.json["count"], &history.json["by_overall"]["block"]),
        (&serde_json::json!(1), &serde_json::json!(1)),
        "{}",
        history.text
    );
    // A row of the database's own not exported yet, then one appended: written in seq order.
    let own_3 = r#"{"sig_hash":"s-3","kind":"scenario","ok":true}"#;
    post_row(own_3);
    let scenario_4 = r#"{"sig_hash":"s-4","kind":"scenario","ok":true}"#;
    append_to(&path, format!("{scenario_4}\n").as_bytes());
    assert_eq!(export()["lines_taken_in"], 1);
    let again = export();
    assert_eq!(
        (&again["action"], again.get("lines_taken_in")),
        (&serde_json::json!("unchanged"), None),
        "{again}"
    );
    assert_nothing_kept(&server.data.join("_kb"));
    // A line that is not a legacy outcome row is not stored, and the file holding it is kept
    // aside and cut, as any foreign bytes; the rows beside it are stored (until 2026-12-06
    // they were kept aside with it).
    let scenario_5 = r#"{"sig_hash":"s-5","kind":"scenario","ok":true}"#;
    let scenario_6 = r#"{"sig_hash":"s-6","kind":"scenario","ok":false}"#;
    append_to(
        &path,
        format!("{scenario_5}\nnot a row\n{scenario_6}\n").as_bytes(),
    );
    let report = export();
    assert!(
        report["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("kept as"),
        "{report}"
    );
    assert_eq!(report["lines_taken_in"], 2, "{report}");
    let kept = kept_aside(&server.data.join("_kb"));
    assert_eq!(kept.len(), 1);
    let aside = std::fs::read_to_string(server.data.join("_kb").join(&kept[0])).unwrap();
    assert!(aside.ends_with(&format!("{scenario_5}\nnot a row\n{scenario_6}\n")));

    server.stop().unwrap();
    let store = Arc::new(open_store(&server.data));
    assert_matches_clean_export(&store, &server.data);
    let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
    for row in [
        own_1, audit, scenario_2, own_3, scenario_4, scenario_5, scenario_6,
    ] {
        assert_eq!(text.matches(row).count(), 1, "{row} in {text}");
    }
    assert!(!text.contains("not a row"));
    assert_eq!(store.stats().unwrap().outcomes, 7);
}

/// A file never exported into, of lines another writer appended (a fresh directory, a legacy
/// appender and clients at once), some already taken in by an export that died before its
/// checkpoint, with rows of the database's own stored around them: the lines taken in are not
/// taken for rows moved by an edit (which would have the file kept aside and the lines after
/// them never stored: a review's stress run lost 97 to 127 of 7,300 so).
#[test]
fn a_file_never_exported_into_keeps_the_lines_it_had_taken_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(dir.path()));
    load(&store, 5, 20);
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("_kb")).unwrap();
    let path = out.join(OUTCOMES);
    std::fs::write(&path, b"{\"sig_hash\":\"a-1\"}\n{\"sig_hash\":\"a-2\"}\n").unwrap();
    let rows = store.stats().unwrap().outcomes;
    ExportJob::new(store.clone(), out.clone())
        .with_adopter(storing(&store, true))
        .run()
        .unwrap();
    assert_eq!(
        store.checkpoint("outcomes").unwrap().seq,
        0,
        "never exported into"
    );
    load(&store, 6, 3);
    append_to(&path, b"{\"sig_hash\":\"a-3\"}\n");
    let grown = store.stats().unwrap().outcomes;
    let report = ExportJob::new(store.clone(), out.clone())
        .with_adopter(storing(&store, false))
        .run()
        .unwrap();
    assert_eq!(report.outcomes.lines_taken_in, 3, "{report:?}");
    assert_eq!(store.stats().unwrap().outcomes, grown + 1);
    assert!(grown > rows + 2);
    assert_nothing_kept(&out.join("_kb"));
    assert_matches_clean_export(&store, &out);
}

/// A database exported into a directory, and a job that exports into it again, taking in what
/// is appended there (and storing it: no crash).
fn taking_in() -> (tempfile::TempDir, Arc<Store>, ExportJob) {
    let (dir, store, job) = exported(30);
    let job = ExportJob::new(store.clone(), job.out_dir().to_owned())
        .with_adopter(storing(&store, false));
    (dir, store, job)
}

/// A line that is not a row, then rows, then a row still being written: the rows are stored,
/// and the file is kept aside and cut only once the last line is whole, so that its rest does
/// not follow the cut as foreign bytes (which paused the export, the row never stored: a
/// review of 96658b2's).
#[test]
fn a_file_with_a_line_that_is_not_a_row_is_cut_only_between_whole_lines() {
    let (_dir, store, job) = taking_in();
    let (out, path) = (job.out_dir().to_owned(), job.out_dir().join(OUTCOMES));
    let rows = store.stats().unwrap().outcomes;
    append_to(
        &path,
        b"junk\n{\"sig_hash\":\"r-1\",\"kind\":\"scenario\"}\n{\"sig_hash\":\"r-2\"",
    );
    let report = job.run().unwrap();
    assert!(
        report
            .outcomes
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("still being written")),
        "{report:?}"
    );
    assert_nothing_kept(&out.join("_kb"));
    append_to(&path, b",\"kind\":\"scenario\"}\n");
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.lines_taken_in, 2, "{report:?}");
    assert_eq!(store.stats().unwrap().outcomes, rows + 2);
    let kept = kept_aside(&out.join("_kb"));
    assert_eq!(kept.len(), 1);
    let aside = std::fs::read_to_string(out.join("_kb").join(&kept[0])).unwrap();
    assert!(aside.contains("junk\n"), "{aside}");
    assert_matches_clean_export(&store, &out);
    let text = std::fs::read_to_string(&path).unwrap();
    for row in [
        r#"{"sig_hash":"r-1","kind":"scenario"}"#,
        r#"{"sig_hash":"r-2","kind":"scenario"}"#,
    ] {
        assert_eq!(text.matches(row).count(), 1, "{row}");
    }
}

/// An audit taken in while the legacy auditor still runs gets its verdict file's claims and
/// findings: the auditor writes `_auditor/verdicts/{pr}-{sha12}.json`, then appends the row.
/// At 3457f34 its verdict was made from the row alone, without claims or findings, and no
/// command could mend it (the import found it stored already): neighbours and the findings
/// memory never saw the audit (a review's). A file of another audit of the head (a re-audit
/// overwrote it) is not taken for this one's. A file naming no repository goes with its row's
/// (the client's `repo` option names it in the body and the row, not in the auditor's file).
#[test]
fn an_audit_taken_in_gets_its_verdict_files_claims_and_findings() {
    let server = InProcessServer::start_with(&["--export-interval", "0"]);
    let path = server.data.join(OUTCOMES);
    let export = || {
        let answer = server.post_json("/export", "");
        assert_eq!(answer.status, 200, "{}", answer.text);
    };
    export();
    let verdicts = server.data.join("_auditor/verdicts");
    std::fs::create_dir_all(&verdicts).unwrap();
    let audit = |pr: u64, at: &str, file_at: &str, repo: Option<&str>, row_repo: Option<&str>| {
        let head = format!("{pr:04}abcdef0123456789abcdef0123456789abcd");
        let mut verdict = serde_json::json!({
            "pr_number": pr, "head_sha": head, "overall": "request_changes",
            "one_liner": "retry path untested", "audited_at": file_at,
            "findings": [{"check": "static", "severity": "warn", "summary": "no test covers the S3 upload retry path"}],
            "claims": [{"text": "adds exponential backoff retries to the S3 upload path", "source": "commit_message"}],
            "metrics": {"findings_block": 0, "findings_warn": 1, "findings_info": 0, "audit_duration_ms": 1000},
        });
        if let Some(repo) = repo {
            verdict["repo"] = serde_json::json!(repo);
        }
        let name = format!("{pr}-{}.json", &head[..12]);
        std::fs::write(
            verdicts.join(name),
            serde_json::to_string_pretty(&verdict).unwrap(),
        )
        .unwrap();
        let named = row_repo.map_or(String::new(), |r| format!(r#","repo":"{r}""#));
        let row = format!(
            r#"{{"kind":"audit","sig_hash":"pr{pr}-{}","audited_at":"{at}","pr_number":{pr},"head_sha":"{head}","overall":"request_changes","one_liner":"retry path untested","ok_events":0,"total_events":1,"findings":{{"block":0,"warn":1,"info":0}},"elapsed_secs":1{named}}}"#,
            &head[..8]
        );
        append_to(&path, format!("{row}\n").as_bytes());
    };
    audit(
        42,
        "2026-06-10T00:00:00.000Z",
        "2026-06-10T00:00:00.000Z",
        None,
        None,
    );
    // PR 43's file is of a later audit of the head than its row.
    audit(
        43,
        "2026-06-10T00:00:00.000Z",
        "2026-06-11T00:00:00.000Z",
        None,
        None,
    );
    // PR 44's names a repository its row does not: the verdict stays beside its row.
    audit(
        44,
        "2026-06-10T00:00:00.000Z",
        "2026-06-10T00:00:00.000Z",
        Some("gitea:team/app"),
        None,
    );
    // PR 45's names none, and its row one: the verdict is the file's, in the row's repository.
    audit(
        45,
        "2026-06-10T00:00:00.000Z",
        "2026-06-10T00:00:00.000Z",
        None,
        Some("gitea:team/app"),
    );
    export();
    let findings = server.get("/prs/42/findings");
    assert_eq!(findings.status, 200, "{}", findings.text);
    assert_eq!(
        findings.json["findings"][0]["summary"], "no test covers the S3 upload retry path",
        "{}",
        findings.text
    );
    let near = server.post_json(
        "/neighbors",
        r#"{"claims":["retry S3 uploads with exponential backoff"]}"#,
    );
    let prs: Vec<u64> = near.json["neighbors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pr_number"].as_u64().unwrap())
        .collect();
    assert_eq!(prs, [42], "{}", near.text);
    let other = server.get("/prs/43/findings");
    assert_eq!(
        other.json["findings"].as_array().map(Vec::len),
        Some(0),
        "{}",
        other.text
    );
    let history = server.get("/prs/43/history");
    assert_eq!(history.json["count"], 1, "{}", history.text);
    let history = server.get("/prs/44/history");
    assert_eq!(history.json["count"], 1, "{}", history.text);
    let findings = server.get("/prs/45/findings?repo=gitea%3Ateam%2Fapp");
    assert_eq!(
        findings.json["findings"][0]["summary"], "no test covers the S3 upload retry path",
        "{}",
        findings.text
    );
    // What the feed and `/sig` serve of it names its repository, as a posted verdict does.
    let sig = server.get("/sig/pr45-0045abcd?repo=gitea%3Ateam%2Fapp");
    let records = sig.json["records"].as_array().unwrap();
    let verdict = records.iter().find(|r| r["type"] == "verdict").unwrap();
    assert_eq!(verdict["verdict"]["repo"], "gitea:team/app", "{}", sig.text);
    assert_eq!(server.get("/prs/45/history").json["count"], 0);
}

/// A row appended after NUL bytes (the zero-filled tail a crash left in the file, which a
/// writer then appended after) is stored, as the import stores it, and the file, which no
/// export writes so, is kept aside and rebuilt without the NULs. At 47acc62 the row was taken
/// for a line that is not a row: kept aside and never stored (a review's).
#[test]
fn a_row_appended_after_a_zero_filled_tail_is_taken_in() {
    let (_dir, store, job) = taking_in();
    let (out, path) = (job.out_dir().to_owned(), job.out_dir().join(OUTCOMES));
    let rows = store.stats().unwrap().outcomes;
    append_to(
        &path,
        b"\0\0\0{\"sig_hash\":\"after-nul\",\"kind\":\"scenario\"}\n{\"sig_hash\":\"next\"}\n",
    );
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.lines_taken_in, 2, "{report:?}");
    assert!(
        report
            .outcomes
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("kept as")),
        "{report:?}"
    );
    assert_eq!(store.stats().unwrap().outcomes, rows + 2);
    assert_eq!(kept_aside(&out.join("_kb")).len(), 1);
    assert_matches_clean_export(&store, &out);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains('\0'));
    assert_eq!(
        text.matches(r#"{"sig_hash":"after-nul","kind":"scenario"}"#)
            .count(),
        1,
        "{text}"
    );
    // Taken in again (a crash before the checkpoint moved), nothing is stored twice.
    assert_eq!(job.run().unwrap().outcomes.lines_taken_in, 0);
    assert_eq!(store.stats().unwrap().outcomes, rows + 2);
}

/// A legacy directory with a row after a crash's NUL bytes, imported (the import leaves the
/// NULs out and keeps the row), then exported into by the service, with and without a row the
/// legacy writer appended after the import: the file holds the database's rows, one of them
/// after NULs, so it is kept as it is, and the appended row is taken in. At 3457f34 the row
/// after the NULs was taken for another writer's line and stored a second time (the audit
/// twice in its PR's history and in the file); at 6ec4ba6 the file was rebuilt instead, and
/// the appended row was only in the copy kept aside (reviews').
#[test]
fn a_row_the_import_kept_after_nul_bytes_is_not_taken_in_again() {
    use lakehouse_kb::import::{self, ImportOptions, NoProgress};
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("legacy");
    let rows: Vec<String> = (0..6)
        .map(|i| format!("{{\"sig_hash\":\"nul-{i}\",\"kind\":\"scenario\",\"ok\":true}}"))
        .collect();
    for (nul_before, appended) in [(5, false), (2, false), (5, true), (0, true)] {
        let case = format!("NULs before row {nul_before}, a row appended: {appended}");
        let _ = std::fs::remove_dir_all(&legacy);
        std::fs::create_dir_all(legacy.join("_kb")).unwrap();
        let mut text = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if i == nul_before {
                text.extend_from_slice(b"\0\0\0");
            }
            text.extend_from_slice(row.as_bytes());
            text.push(b'\n');
        }
        std::fs::write(legacy.join(OUTCOMES), &text).unwrap();
        let db = dir.path().join(format!("kb-{nul_before}-{appended}.redb"));
        let store =
            Arc::new(Store::open(&db, lakehouse_kb::store::StoreOptions::default()).unwrap());
        let report =
            import::import(&store, &legacy, &ImportOptions::default(), &mut NoProgress).unwrap();
        assert_eq!(report.outcomes.stored, 6, "{case}: {report:?}");
        if appended {
            append_to(&legacy.join(OUTCOMES), b"{\"sig_hash\":\"after-import\"}\n");
            text.extend_from_slice(b"{\"sig_hash\":\"after-import\"}\n");
        }
        let job =
            ExportJob::new(store.clone(), legacy.clone()).with_adopter(storing(&store, false));
        let exported = job.run().unwrap();
        let want = 6 + u64::from(appended);
        assert_eq!(
            store.stats().unwrap().outcomes,
            want,
            "{case}: {exported:?}"
        );
        assert_eq!(
            exported.outcomes.lines_taken_in,
            u64::from(appended),
            "{case}: {exported:?}"
        );
        assert_eq!(
            std::fs::read(legacy.join(OUTCOMES)).unwrap(),
            text,
            "{case}: kept as it is"
        );
        assert!(kept_aside(&legacy.join("_kb")).is_empty(), "{case}");
        assert_eq!(
            job.run().unwrap().outcomes.action,
            Action::Unchanged,
            "{case}"
        );
        // A row the database stores next is appended after them.
        store
            .write(&[Put::from(
                outcome_record(br#"{"sig_hash":"next"}"#, 1).unwrap(),
            )])
            .unwrap();
        job.run().unwrap();
        text.extend_from_slice(b"{\"sig_hash\":\"next\"}\n");
        assert_eq!(
            std::fs::read(legacy.join(OUTCOMES)).unwrap(),
            text,
            "{case}"
        );
    }
}

/// Taking appended rows in again after they were stored and before the checkpoint moved (a
/// crash between the two) stores nothing twice: each line's import key is its bytes and its
/// offset. A line still being written waits; stored rows stay in place.
#[test]
fn appended_rows_taken_in_twice_are_stored_once() {
    let (_dir, store, job) = exported(90);
    let path = job.out_dir().join(OUTCOMES);
    let out = job.out_dir().to_owned();
    drop(job);
    let stored_through = store.stats().unwrap().outcomes;
    append_to(
        &path,
        b"{\"sig_hash\":\"late-1\",\"kind\":\"scenario\"}\n{\"sig_hash\":\"late-2\"",
    );
    let crashed = ExportJob::new(store.clone(), out.clone()).with_adopter(storing(&store, true));
    let report = crashed.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Unchanged, "{report:?}");
    assert_eq!(store.stats().unwrap().outcomes, stored_through + 1);
    let job = ExportJob::new(store.clone(), out.clone()).with_adopter(storing(&store, false));
    // The second line is not whole yet: the first, stored, is a row of the database's in its
    // place (nothing taken in again), the second waits.
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.lines_taken_in, 0, "{report:?}");
    assert!(
        report
            .outcomes
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("still being written")),
        "{report:?}"
    );
    append_to(&path, b",\"kind\":\"scenario\"}\n");
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.lines_taken_in, 1, "{report:?}");
    assert_eq!(store.stats().unwrap().outcomes, stored_through + 2);
    load(&store, 6, 4);
    job.run().unwrap();
    assert_matches_clean_export(&store, &out);
    assert_nothing_kept(&out.join("_kb"));
}

/// Another writer's append that lands between the export's last look at the file and its write
/// of new rows (the hook puts it there). The rows were written at the offset looked at, over the
/// appended line, lost with no log line (a review: about 1 export run in 225 at 40 appends a
/// second). They are now appended after it, and the next run takes it in and writes the rows
/// again in seq order.
#[test]
fn a_line_appended_just_before_the_rows_are_written_is_not_written_over() {
    let (_dir, store, job) = taking_in();
    let out = job.out_dir().to_owned();
    let path = out.join(OUTCOMES);
    load(&store, 5, 3);
    let rows = store.stats().unwrap().outcomes;
    let before = std::fs::read_to_string(&path).unwrap();
    let raced = ExportJob::new(store.clone(), out.clone())
        .with_adopter(storing(&store, false))
        .with_crash_hook(CrashHook::AppendBeforeWrite(ExportFile::Outcomes));
    let report = raced.run().unwrap();
    assert!(reason(&report.outcomes).contains("appended"), "{report:?}");
    // The rows written after the line are taken back off: left there, the next run would take
    // them for another writer's rows too, and store them twice.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        before + APPENDED_BEFORE_WRITE
    );
    let count = |text: &str| text.matches(APPENDED_BEFORE_WRITE).count();
    let report = job.run().unwrap();
    assert_eq!(store.stats().unwrap().outcomes, rows + 1, "{report:?}");
    assert_matches_clean_export(&store, &out);
    assert_eq!(count(&std::fs::read_to_string(&path).unwrap()), 1);
    assert_nothing_kept(&out.join("_kb"));
}

/// Rows appended by other writers while the database writes rows of its own and the export
/// runs every 50 ms: every appended line and every acknowledged row is in the file once, and
/// the file is the database's export. The first form of taking rows in (87078e4) cut lines
/// appended while it stored the ones before (a review: 309 of 7,240 lost, silently); the export
/// now looks at the file again just before it cuts or writes, and leaves it for the next run
/// when it grew.
#[test]
fn appended_rows_are_not_lost_while_the_database_writes_too() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut server = InProcessServer::start_with(&["--export-interval", "50ms"]);
    let path = server.data.join(OUTCOMES);
    post_row(&server, r#"{"sig_hash":"first"}"#);
    server.post_json("/export", "");
    let stop = AtomicBool::new(false);
    /// The sig_hashes `each` returns for i = 0, 1, ... until `stop` is raised.
    fn until_stopped<'a>(
        stop: &'a AtomicBool,
        mut each: impl FnMut(u64) -> Option<String> + Send + 'a,
    ) -> impl FnOnce() -> Vec<String> + Send + 'a {
        move || {
            let mut done = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                done.extend(each(i));
            }
            done
        }
    }
    let (acked, appended) = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let server = &server;
                scope.spawn(until_stopped(&stop, move |i| {
                    let sig = format!("http-{w}-{i}");
                    let row = format!(r#"{{"sig_hash":"{sig}"}}"#);
                    (server.post_json("/outcomes", row).status == 201).then_some(sig)
                }))
            })
            .collect();
        let appenders: Vec<_> = (0..2)
            .map(|a| {
                let path = &path;
                scope.spawn(until_stopped(&stop, move |i| {
                    let sig = format!("legacy-{a}-{i}");
                    let line = format!("{{\"sig_hash\":\"{sig}\",\"kind\":\"scenario\"}}\n");
                    append_to(path, line.as_bytes());
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    Some(sig)
                }))
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        let join = |handles: Vec<std::thread::ScopedJoinHandle<'_, Vec<String>>>| -> Vec<String> {
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        };
        (join(writers), join(appenders))
    });
    eventually("the export took every appended row in", || {
        let report = server.post_json("/export", "");
        report.json["outcomes"]["action"] == "unchanged"
            && report.json["outcomes"].get("lines_taken_in").is_none()
    });
    server.stop().unwrap();
    let store = Arc::new(open_store(&server.data));
    assert_matches_clean_export(&store, &server.data);
    let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
    let mut count = std::collections::HashMap::new();
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        *count
            .entry(row["sig_hash"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    let wrong: Vec<_> = acked
        .iter()
        .chain(&appended)
        .filter(|sig| count.get(*sig) != Some(&1))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} acknowledged and {} appended rows not in the file once: {:?}",
        wrong.len(),
        acked.len(),
        appended.len(),
        &wrong[..wrong.len().min(10)]
    );
    assert!(
        acked.len() > 100 && appended.len() > 100,
        "{} {}",
        acked.len(),
        appended.len()
    );
    assert_nothing_kept(&server.data.join("_kb"));
}

/// Stopping the service leaves every stored row in the legacy file (README, "Going back"),
/// whatever another writer left after the checkpoint: a whole row is taken in before the
/// writer stops, a line still being written is kept aside and cut. At 46ce3e2 either made the
/// last export wait, and an acknowledged row was missing from the file (a review's).
#[test]
fn stopping_writes_every_stored_row_whatever_was_appended() {
    for (case, appended) in [
        (
            "a whole row",
            "{\"sig_hash\":\"legacy-1\",\"kind\":\"scenario\"}\n",
        ),
        ("a line being written", "{\"sig_hash\":\"legacy-2\",\"ki"),
    ] {
        let mut server = InProcessServer::start_with(&["--export-interval", "10s"]);
        let path = server.data.join(OUTCOMES);
        let post = |sig: &str| {
            let row = format!(r#"{{"sig_hash":"{sig}"}}"#);
            assert_eq!(server.post_json("/outcomes", row).status, 201);
        };
        post("http-0");
        server.post_json("/export", "");
        post("http-1");
        append_to(&path, appended.as_bytes());
        server.stop().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(r#"{"sig_hash":"http-1"}"#),
            "{case}: {text:?}"
        );
        let store = Arc::new(open_store(&server.data));
        assert_matches_clean_export(&store, &server.data);
    }
}

/// Going back, then the CLI's `export` before a re-import: rows the legacy writers appended
/// after the service stopped are taken in as the service takes them in, and stay in the file.
/// At 3457f34 the CLI's export had no take-in: it kept them aside and cut them, and the
/// re-import then found nothing to store (a review's).
#[test]
fn the_cli_export_takes_in_rows_appended_after_going_back() {
    let mut server = InProcessServer::start_with(&["--export-interval", "10s"]);
    let path = server.data.join(OUTCOMES);
    post_row(&server, r#"{"sig_hash":"svc"}"#);
    server.stop().unwrap();
    let appended = "{\"sig_hash\":\"legacy-back-1\",\"ok_events\":1}\n{\"sig_hash\":\"legacy-back-2\",\"ok_events\":0}\n";
    append_to(&path, appended.as_bytes());
    let before = std::fs::read(&path).unwrap();
    let out = kb(&server.data, &["export"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "kept in place");
    assert_nothing_kept(&server.data.join("_kb"));
    let store = Arc::new(open_store(&server.data));
    assert_eq!(store.stats().unwrap().outcomes, 3);
    assert_matches_clean_export(&store, &server.data);
}

/// Rows of the database's own already in the file after the checkpoint (an export that wrote
/// them and died before its checkpoint), then a line another writer appended: the former are
/// kept as the export's, the latter taken in; nothing is stored twice. And a file never
/// exported into that holds every row of the database then appended lines (a legacy
/// directory imported, then written to before the service started) keeps them all. (Until
/// 2026-12-06 this case ran an export for the file's bytes, which recorded a checkpoint, so
/// the file was not one never exported into; such a file was kept aside, its appended lines
/// never stored: a review's.)
#[test]
fn appended_lines_after_rows_of_the_databases_own_are_taken_in_once() {
    let own_rows = |store: &Store, from: usize, n: usize| {
        let rows: Vec<Put> = (from..from + n)
            .map(|i| {
                let row = format!(r#"{{"sig_hash":"own-{i}","kind":"scenario"}}"#);
                Put::from(outcome_record(row.as_bytes(), 1).unwrap())
            })
            .collect();
        store.write(&rows).unwrap();
    };
    let appended = b"{\"sig_hash\":\"late-1\",\"kind\":\"scenario\"}\n";
    // (case, exported before, rows of its own stored after the file was written (the next
    // export's, or one a client posted before the first export), rows swapped in the file, the
    // file holds the rows (else only the appended line), whether that line is taken in). Until 2026-12-06 the own rows past the checkpoint
    // were taken in again when a row of the database's followed them (stored twice), and a
    // file never exported into was kept aside when the database had a row of its own after
    // its first rows (the appended rows never stored): a review's.
    let cases = [
        ("written before a crash", true, 0, false, true, true),
        (
            "written before a crash, then a row",
            true,
            1,
            false,
            true,
            true,
        ),
        ("never exported into", false, 0, false, true, true),
        (
            "never exported into, then a row",
            false,
            1,
            false,
            true,
            true,
        ),
        (
            "never exported into, out of order",
            false,
            0,
            true,
            true,
            false,
        ),
        (
            "never exported into, none of the rows",
            false,
            0,
            false,
            false,
            true,
        ),
    ];
    for (case, exported, after, swapped, with_rows, taken_in) in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open_store(dir.path()));
        load(&store, 4, 60);
        let out = dir.path().join("out");
        if exported {
            ExportJob::new(store.clone(), out.clone()).run().unwrap();
            own_rows(&store, 0, 3);
        }
        // The file as a clean export writes it now, then the line; the checkpoint the crash
        // left behind, or none.
        let mut lines = Vec::new();
        store
            .for_each_outcome_line(
                0,
                |_, line| -> Result<(), lakehouse_kb::store::StoreError> {
                    lines.push(format!("{line}\n"));
                    Ok(())
                },
            )
            .unwrap();
        if swapped {
            let n = lines.len();
            lines.swap(n - 2, n - 1);
        }
        if !with_rows {
            lines.clear();
        }
        assert_eq!(store.checkpoint("outcomes").unwrap().seq > 0, exported);
        std::fs::create_dir_all(out.join("_kb")).unwrap();
        let file = [lines.concat().as_bytes(), appended].concat();
        std::fs::write(out.join(OUTCOMES), file).unwrap();
        own_rows(&store, 3, after);
        let rows = store.stats().unwrap().outcomes;
        let job = ExportJob::new(store.clone(), out.clone()).with_adopter(storing(&store, false));
        let report = job.run().unwrap();
        let taken = u64::from(taken_in);
        assert_eq!(report.outcomes.lines_taken_in, taken, "{case}: {report:?}");
        assert_eq!(store.stats().unwrap().outcomes, rows + taken, "{case}");
        assert_matches_clean_export(&store, &out);
        assert_eq!(kept_aside(&out.join("_kb")).is_empty(), taken_in, "{case}");
    }
}

/// The service dies with rows not exported yet, the legacy writers append to the file
/// meanwhile, and the operator imports the directory before starting the service again (as
/// the README says to, after a crash): the import stores the appended lines, and the export,
/// taking in what follows its checkpoint, does not store them a second time. At 3ab4e2b it
/// did: the import keyed a line by its digest and its copies before it in the file, the
/// take-in by its digest and offset, and neither knew the other's (a review's). Past the
/// checkpoint of the file the service exports into, the import now keys a line as the take-in
/// does, a copy of one of the database's rows included.
#[test]
fn lines_the_import_stored_after_a_crash_are_not_taken_in_again() {
    use lakehouse_kb::import::{self, ImportOptions, NoProgress};
    let (_dir, store, job) = exported(20);
    let out = job.out_dir().to_owned();
    let path = out.join(OUTCOMES);
    let exported_file = std::fs::read(&path).unwrap();
    let a_row_of_its_own = exported_file
        .split(|&b| b == b'\n')
        .nth(3)
        .unwrap()
        .to_vec();
    // A row received and not exported before the crash.
    let unexported = r#"{"sig_hash":"own-late","kind":"scenario","ok":true}"#;
    store
        .write(&[Put::from(outcome_record(unexported.as_bytes(), 1).unwrap())])
        .unwrap();
    let stored_before = store.stats().unwrap().outcomes;
    // The legacy writers' lines: two new rows, and a copy of one the file holds already.
    let mut appended = b"{\"sig_hash\":\"back-1\",\"ok_events\":1,\"total_events\":1}\n".to_vec();
    appended.extend_from_slice(&a_row_of_its_own);
    appended.extend_from_slice(b"\n{\"sig_hash\":\"back-2\",\"kind\":\"scenario\"}\n");
    append_to(&path, &appended);
    let report = import::import(&store, &out, &ImportOptions::default(), &mut NoProgress).unwrap();
    assert_eq!(report.outcomes.stored, 3, "{report:?}");
    assert_eq!(store.stats().unwrap().outcomes, stored_before + 3);
    let job = ExportJob::new(store.clone(), out.clone()).with_adopter(storing(&store, false));
    // Taken in again by the export (it cannot know they are stored), found under their keys.
    job.run().unwrap();
    assert_eq!(
        store.stats().unwrap().outcomes,
        stored_before + 3,
        "stored twice"
    );
    assert_eq!(job.run().unwrap().outcomes.action, Action::Unchanged);
    assert_matches_clean_export(&store, &out);
    for sig in ["back-1", "back-2", "own-late"] {
        let n = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| l.contains(&format!("\"{sig}\"")))
            .count();
        assert_eq!(n, 1, "{sig}");
    }
    // A line appended after, a copy of a row the import stored: taken in, a copy of its own.
    let again = "{\"sig_hash\":\"back-1\",\"ok_events\":1,\"total_events\":1}\n";
    append_to(&path, again.as_bytes());
    assert_eq!(job.run().unwrap().outcomes.lines_taken_in, 1);
    assert_eq!(store.stats().unwrap().outcomes, stored_before + 4);
    assert_matches_clean_export(&store, &out);
}

/// Lines a take-in stored before the service was killed (its checkpoint not moved), then an
/// import of the directory: the import finds them under the take-in's keys and stores none a
/// second time (a review's: 212,292 to 241,988 rows for 200,004).
#[test]
fn a_take_in_cut_short_then_an_import_stores_each_line_once() {
    use lakehouse_kb::import::{self, ImportOptions, NoProgress};
    let (_dir, store, job) = exported(20);
    let out = job.out_dir().to_owned();
    let path = out.join(OUTCOMES);
    let unexported = r#"{"sig_hash":"own-late","kind":"scenario","ok":true}"#;
    store
        .write(&[Put::from(outcome_record(unexported.as_bytes(), 1).unwrap())])
        .unwrap();
    let stored_before = store.stats().unwrap().outcomes;
    let appended: String = (0..5)
        .map(|i| format!("{{\"sig_hash\":\"taken-{i}\",\"ok_events\":1}}\n"))
        .collect();
    append_to(&path, appended.as_bytes());
    // Stored, then "killed" before the checkpoint moved.
    let crashed = ExportJob::new(store.clone(), out.clone()).with_adopter(storing(&store, true));
    crashed.run().unwrap();
    assert_eq!(store.stats().unwrap().outcomes, stored_before + 5);
    let report = import::import(&store, &out, &ImportOptions::default(), &mut NoProgress).unwrap();
    assert_eq!(report.outcomes.stored, 0, "{report:?}");
    assert_eq!(store.stats().unwrap().outcomes, stored_before + 5);
    job.run().unwrap();
    assert_eq!(store.stats().unwrap().outcomes, stored_before + 5);
    assert_matches_clean_export(&store, &out);
}

/// Where another writer may append, a pass writes a bounded part of the rows (64 MiB; 2 KiB
/// here): one run still writes every row, in as many passes as they need, and says so. A run
/// stopped after its first pass and reported the file up to date (a review's: 325,771 of
/// 400,010 rows, `export` exiting 0 and the last export at shutdown leaving the rest out).
#[test]
fn one_run_writes_every_row_however_many_passes_they_take() {
    let (_dir, store, job) = exported(30);
    let job = ExportJob::new(store.clone(), job.out_dir().to_owned())
        .with_adopter(storing(&store, false))
        .with_pass_bytes(2048);
    let before = store.checkpoint("outcomes").unwrap().seq;
    load(&store, 5, 300);
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Appended);
    assert!(report.outcomes.rows_written > 20, "{report:?}");
    assert!(report.outcomes.bytes_written > 2048 * 4, "{report:?}");
    assert!(report.outcomes.checkpoint.seq > before);
    assert_eq!(
        job.lag(lakehouse_kb::export::ExportFile::Outcomes).unwrap(),
        0
    );
    assert_matches_clean_export(&store, job.out_dir());
    assert_eq!(job.run().unwrap().outcomes.action, Action::Unchanged);
}

/// A paused file is not read again while nothing changes: each run re-read and re-parsed the
/// whole foreign tail (up to 256 MiB), logging the same warning, before finding the pause: a
/// core kept busy for as long as the pause lasted (a review's). Once more is appended, or the
/// copy is removed, the file is looked at again.
#[test]
fn a_paused_file_is_not_read_again_until_it_changes() {
    const NOT_ROWS: &str = "are not legacy outcome rows";
    let server = crate::support::TestServer::start_with(&["--export-interval", "0"], &[]);
    let export = || {
        let answer = server.post_json("/export", "");
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json["outcomes"]["action"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let row = r#"{"sig_hash":"pr1-abcdef12","kind":"audit","ok":true}"#;
    assert_eq!(server.post_json("/outcomes", row).status, 201);
    export();
    let path = server.data.join(OUTCOMES);
    append_to(&path, b"[1]\n");
    assert_eq!(export(), "appended");
    append_to(&path, b"[2]\n");
    assert_eq!(export(), "paused");
    for _ in 0..3 {
        assert_eq!(export(), "paused");
    }
    append_to(&path, b"[3]\n");
    assert_eq!(export(), "paused");
    // Changed in place, its length kept (a line edited back, say): read again.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 3;
    bytes[at] = b'4';
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(export(), "paused");
    // Read when first appended to, when appended to again, after the last append and after
    // the edit: not in the runs between.
    let log = crate::support::log_with(&server.data, NOT_ROWS, 4);
    assert_eq!(
        log.lines().filter(|l| l.contains(NOT_ROWS)).count(),
        4,
        "{log}"
    );
    let kb_dir = server.data.join("_kb");
    std::fs::remove_file(kb_dir.join(&kept_aside(&kb_dir)[0])).unwrap();
    assert_eq!(export(), "appended");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{row}\n"));
}
