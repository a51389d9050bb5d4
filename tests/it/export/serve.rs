//! The export as the CLI and the server run it: `lakehouse-kb export` beside a server, the
//! periodic job, `POST /export`, the last export at shutdown, retention.

use super::*;

#[test]
fn cli_export_while_a_server_runs_asks_the_server() {
    let server = InProcessServer::start_with(&["--export-interval", "0"]);
    assert_eq!(
        server.post_json("/event", r#"{"source":"bot"}"#).status,
        200
    );
    let out = kb(&server.data, &["export", "--url", &server.base]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("(by the running server): 1 rows appended"),
        "{stdout}"
    );
    let ops = std::fs::read_to_string(server.data.join(OPS)).unwrap();
    assert_eq!(ops.lines().count(), 1);

    // A file the export cannot write is said to be not exported, as an export in the
    // command's own process says it (it read "0 rows written", like a file up to date).
    std::fs::remove_file(server.data.join(OPS)).unwrap();
    std::os::unix::fs::symlink(server.data.join("nowhere"), server.data.join(OPS)).unwrap();
    assert_eq!(
        server.post_json("/event", r#"{"source":"bot"}"#).status,
        200
    );
    let out = kb(&server.data, &["export", "--url", &server.base]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ops.jsonl (by the running server): NOT exported"),
        "{stdout}"
    );

    // --out cannot be honoured by the server: refused with the reason.
    let elsewhere = server.data.join("elsewhere");
    let out = kb(
        &server.data,
        &["export", "--out", elsewhere.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server exports into its own directory"));
}

#[test]
fn cli_export_on_a_held_file_with_no_server_answering_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let _held = open_store(dir.path());
    let out = kb(dir.path(), &["export", "--url", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("open in another process"), "{stderr}");
    // Who holds it is not known: a server at another address, or a check, backup or migration.
    assert!(
        stderr.contains("if a check, backup or migration holds it, run this again"),
        "{stderr}"
    );
    assert!(stderr.contains("name it with --url"), "{stderr}");
}

#[test]
fn cli_export_writes_under_out() {
    let dir = tempfile::tempdir().unwrap();
    load(&open_store(dir.path()), 12, 9);
    let out_dir = dir.path().join("elsewhere");
    let out = kb(dir.path(), &["export", "--out", out_dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("6 rows appended"), "{stdout}");
    assert!(!dir.path().join("_kb").exists());
    assert_matches_clean_export(&Arc::new(open_store(dir.path())), &out_dir);
}

#[test]
fn serve_exports_periodically_and_the_files_equal_a_clean_export() {
    let mut server = crate::support::TestServer::start_with(&["--export-interval", "100ms"], &[]);
    let verdicts = std::fs::read_to_string(LEGACY_VERDICTS).unwrap();
    assert_eq!(server.post_ndjson("/verdicts", verdicts).status, 200);
    eventually("26 audit rows exported", || {
        lines(&server.data.join(OUTCOMES)) == 26
    });
    eventually("26 ops exported", || lines(&server.data.join(OPS)) == 26);
    let data = server.data.clone();
    assert!(server.stop().success());
    assert_matches_clean_export(&Arc::new(open_store(&data)), &data);
}

#[test]
fn post_export_answers_with_rows_and_checkpoints_and_metrics_show_the_lag() {
    let server = InProcessServer::start_with(&["--export-interval", "0"]);
    for i in 0..3 {
        server.post_json("/event", format!(r#"{{"source":"bot","i":{i}}}"#));
    }
    let metrics = server.get("/metrics").text;
    assert!(
        metrics.contains(r#"lakehousekb_export_lag_rows{file="ops"} 3"#),
        "{metrics}"
    );
    let answer = server.post_json("/export", "");
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["ops"]["rows_written"], 3);
    assert_eq!(answer.json["ops"]["checkpoint"]["seq"], 3);
    assert_eq!(answer.json["outcomes"]["rows_written"], 0);
    // Both files hold every row of their kinds: neither lags, though outcomes.jsonl's
    // checkpoint is at seq 0 (a review found its lag at the last seq for good, no row missing).
    let metrics = server.get("/metrics").text;
    for file in ["ops", "outcomes"] {
        let current = format!(r#"lakehousekb_export_lag_rows{{file="{file}"}} 0"#);
        assert!(metrics.contains(&current), "{metrics}");
    }
    assert_eq!(lines(&server.data.join(OPS)), 3);
    // A row of one kind lags that file alone, until the next run.
    let row = r#"{"sig_hash":"pr1-abcdef12","kind":"scenario"}"#;
    assert_eq!(server.post_json("/outcomes", row).status, 201);
    let metrics = server.get("/metrics").text;
    assert!(
        metrics.contains(r#"lakehousekb_export_lag_rows{file="outcomes"} 1"#),
        "{metrics}"
    );
    assert_eq!(server.post_json("/export", "").status, 200);
    let metrics = server.get("/metrics").text;
    assert!(
        metrics.contains(r#"lakehousekb_export_lag_rows{file="outcomes"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"lakehousekb_export_lag_rows{file="ops"} 0"#),
        "{metrics}"
    );
}

#[test]
fn graceful_shutdown_runs_a_last_export() {
    let mut server = crate::support::TestServer::start_with(&["--export-interval", "1h"], &[]);
    for i in 0..10 {
        server.post_json("/event", format!(r#"{{"source":"mcp","i":{i}}}"#));
    }
    assert_eq!(lines(&server.data.join(OPS)), 0);
    let data = server.data.clone();
    assert!(server.stop().success());
    assert_eq!(lines(&data.join(OPS)), 10);
    assert!(crate::support::server_log(&data).contains("last export done"));
}

#[test]
fn retention_never_deletes_events_not_yet_exported_and_never_rewrites_the_log() {
    let args = [
        "--export-interval",
        "1h",
        "--events-max-count",
        "0",
        "--retention-interval",
        "50ms",
    ];
    let server = InProcessServer::start_with(&args);
    for i in 0..5 {
        server.post_json("/event", format!(r#"{{"source":"bot","i":{i}}}"#));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(server.stats()["total"], 5, "unexported events are kept");
    assert_eq!(server.post_json("/export", "").status, 200);
    eventually("retention deleted the exported events", || {
        server.stats()["total"] == 0
    });
    assert_eq!(
        lines(&server.data.join(OPS)),
        5,
        "ops.jsonl is a log: retention leaves it alone"
    );
    // The next export has nothing to append and rewrites nothing.
    let answer = server.post_json("/export", "");
    assert_eq!(answer.json["ops"]["action"], "unchanged", "{}", answer.text);
}
