//! Backup: a consistent copy while the server keeps taking writes (`check` passes on it and
//! it opens and serves), directly from the file when no server runs, and refusals.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::{BIN, TestServer, assert_error};

fn kb(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("LAKEHOUSE_KB_DATA")
        .output()
        .unwrap()
}

#[test]
fn backup_while_writing_is_consistent_and_serves() {
    let live = TestServer::start();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, stop) = (live.base.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut synth = lakehouse_kb::synth::Synth::new(w, 50);
                while !stop.load(Ordering::Relaxed) {
                    let (path, body) = match synth.rng().below(3) {
                        0 => ("/verdicts", synth.verdict()),
                        1 => ("/event", synth.event()),
                        _ => ("/outcomes", synth.outcome()),
                    };
                    let r = client
                        .post(format!("{url}{path}"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                }
            })
        })
        .collect();
    while live.stats()["last_seq"].as_u64().unwrap() < 300 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let dest = tempfile::tempdir().unwrap();
    let backup_dir = dest.path().join("copy");
    let out = Command::new(BIN)
        .arg("--data")
        .arg(&live.data)
        .arg("backup")
        .arg(&backup_dir)
        .args(["--url", &live.base])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("backup written by the running server"),
        "{stdout}"
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }

    let check = kb(&backup_dir, &["check"]);
    let report = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(check.status.success(), "{report}");
    assert!(report.contains("check passed"));

    let copy = TestServer::start_in(&backup_dir, &[], &[]);
    let copied = copy.stats();
    let now = live.stats();
    let copied_seq = copied["last_seq"].as_u64().unwrap();
    assert!(copied_seq >= 300 && copied_seq <= now["last_seq"].as_u64().unwrap());
    assert_eq!(
        copy.post_json("/event", r#"{"source":"bot"}"#).status,
        200,
        "the backup takes writes"
    );
}

#[test]
fn backup_without_a_server_reads_the_file_itself_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(dir.path(), &[], &[]);
    let verdicts = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/legacy/verdicts.ndjson"
    ))
    .unwrap();
    assert_eq!(server.post_ndjson("/verdicts", verdicts).status, 200);
    assert!(server.stop().success());

    let dest = tempfile::tempdir().unwrap();
    let out = kb(dir.path(), &["backup", dest.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("through seq 78"), "{stdout}");
    assert!(kb(dest.path(), &["check"]).status.success());

    let again = kb(dir.path(), &["backup", dest.path().to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn backup_route_refuses_bad_destinations() {
    let server = TestServer::start();
    assert_error(
        &server.post_json("/backup", r#"{"dest":"relative/dir"}"#),
        400,
        "dest",
        "absolute directory path",
    );
    assert_error(
        &server.post_json("/backup", "{}"),
        400,
        "dest",
        "dest is required",
    );
    let dest = tempfile::tempdir().unwrap();
    let body = serde_json::json!({"dest": dest.path()}).to_string();
    assert_eq!(server.post_json("/backup", body.clone()).status, 201);
    let again = server.post_json("/backup", body);
    assert_eq!(again.status, 409, "{}", again.text);
    assert!(
        again.json["error"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
}

/// Two backups into one place at once: one is written whole, the other refused, never a
/// 201 for a file the other request was still writing (a second request used to remove the
/// first one's partial file and start its own at the same path).
#[test]
fn two_backups_into_one_place_at_once_write_one_whole_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        lakehouse_kb::store::Store::open(
            &dir.path().join("kb.redb"),
            lakehouse_kb::store::StoreOptions::default(),
        )
        .unwrap(),
    );
    let mut synth = lakehouse_kb::synth::Synth::new(3, 200);
    let puts: Vec<_> = (0..20_000)
        .map(|i| {
            let record = lakehouse_kb::ingest::event_record(synth.event().as_bytes(), i).unwrap();
            lakehouse_kb::store::Put::from(record)
        })
        .collect();
    store.write(&puts).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let target = dest.path().join("kb.redb");
    let results: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| store.backup_to(&target)))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let (done, refused): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!((done.len(), refused.len()), (1, 1));
    assert!(matches!(
        refused[0],
        Err(lakehouse_kb::store::StoreError::BackupExists(_))
    ));
    // Whole: as many rows as a backup made alone.
    let alone = tempfile::tempdir().unwrap();
    let reference = store.backup_to(&alone.path().join("kb.redb")).unwrap();
    assert_eq!(done[0].as_ref().unwrap().rows, reference.rows);
    assert!(reference.rows > 20_000);
    drop(store);
    let out = kb(dest.path(), &["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dest.path().join("kb.redb.partial").exists());
}

/// A destination the server cannot write into is the client's mistake: 400 naming `dest`.
#[cfg(target_os = "linux")]
#[test]
fn backup_route_answers_400_for_a_destination_it_cannot_write() {
    let server = TestServer::start();
    assert_error(
        &server.post_json("/backup", r#"{"dest":"/proc"}"#),
        400,
        "dest",
        "cannot write the backup",
    );
}
