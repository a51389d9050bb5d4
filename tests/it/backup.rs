//! Backup: a consistent copy while the server keeps taking writes (`check` passes on it and
//! it opens and serves), directly from the file when no server runs, and refusals.
//!
//! The story of the bug: `POST /backup {"dest": "/etc/anything/sub"}` answered 201 and wrote a
//! world-readable copy there, deleted a `kb.redb.partial` it had not made, replaced a dangling
//! `kb.redb` link, told clients which paths existed, and queued every backup behind the running
//! one (540 requests wrote 2.6 GB while `/healthz` timed out). Now server backups go only under
//! `--backup-dir` by a plain name, never through a link, one at a time (409 for the next), are
//! cancelled when their client goes away, and the oldest server-made ones are pruned.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lakehouse_kb::http::ServerConfig;

use crate::support::{
    BIN, InProcessServer, LEGACY_VERDICTS, RouterServer, TestServer, assert_error, eventually,
    faulty_store, kb, load, open_store,
};

#[test]
fn backup_while_writing_is_consistent_and_serves() {
    let live = InProcessServer::start();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, stop) = (live.base.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut synth = crate::synth::Synth::new(w, 50);
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
    let backup_dir = live.data.join("backups").join("copy");
    let out = Command::new(BIN)
        .arg("--data")
        .arg(&live.data)
        .args(["backup", "--name", "copy", "--url", &live.base])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("written by the running server"), "{stdout}");
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
    let verdicts = std::fs::read_to_string(LEGACY_VERDICTS).unwrap();
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

/// DEST may be a symbolic link to a directory: the copy is written where it leads. Until
/// 2026-12-05 the copy was linked there and then the backup failed (the directory's sync does
/// not follow links), leaving the file, or an older file's journal copy alone.
#[test]
fn backup_into_a_dest_that_is_a_link_to_a_directory_writes_there() {
    let older = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/db-669becd/kb.redb.zst"),
    )
    .unwrap();
    let older = zstd::decode_all(older.as_slice()).unwrap();
    // (case, the database's bytes; None: one of this binary's schema)
    let cases: [(&str, Option<&[u8]>); 2] = [("current", None), ("older", Some(&older))];
    for (case, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        match bytes {
            Some(bytes) => std::fs::write(data.join("kb.redb"), bytes).unwrap(),
            None => drop(open_store(&data)),
        }
        std::fs::create_dir(dir.path().join("real")).unwrap();
        let via = dir.path().join("via");
        std::os::unix::fs::symlink(dir.path().join("real"), &via).unwrap();
        let out = kb(&data, &["backup", via.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let copy = dir.path().join("real/kb.redb");
        assert!(copy.is_file(), "{case}");
        if let Some(bytes) = bytes {
            assert_eq!(
                std::fs::read(&copy).unwrap(),
                bytes,
                "{case}: the file as it is"
            );
        }
        let check = kb(&dir.path().join("real"), &["check"]);
        assert!(
            check.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
    }
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
    let mut synth = crate::synth::Synth::new(3, 200);
    let puts: Vec<_> = (0..20_000)
        .map(|i| {
            let record = lakehouse_kb::intake::event_record(synth.event().as_bytes(), i).unwrap();
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
        Err(lakehouse_kb::store::StoreError::BackupExists(_)
            | lakehouse_kb::store::StoreError::BackupBusy)
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

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// Every file and directory under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn post_backup_writes_only_under_the_backup_dir_and_reveals_no_path() {
    let server = InProcessServer::start();
    let data = server.data.display().to_string();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("sub");
    let body = serde_json::json!({ "dest": target }).to_string();
    let refused = server.post_json("/backup", body);
    assert_error(&refused, 400, "dest", "unknown field");
    assert!(
        !target.exists(),
        "a backup was written outside the backup directory"
    );
    assert!(!refused.text.contains(&outside.path().display().to_string()));

    for bad in [
        r#"{"name":"../escape"}"#,
        r#"{"name":"/etc/x"}"#,
        r#"{"name":"a/b"}"#,
        r#"{"name":"a\\b"}"#,
        r#"{"name":".hidden"}"#,
        r#"{"name":""}"#,
        r#"{"name":"nul\u0000byte"}"#,
        r#"{"name":"tab\there"}"#,
        r#"{"name":5}"#,
    ] {
        let a = server.post_json("/backup", bad);
        assert_eq!(a.status, 400, "{bad}: {}", a.text);
        assert_eq!(a.json["field"], "name", "{bad}: {}", a.text);
        assert!(!a.text.contains(&data), "{bad}: {}", a.text);
    }
    let long = serde_json::json!({ "name": "x".repeat(101) }).to_string();
    assert_error(&server.post_json("/backup", long), 400, "name", "101 bytes");
    assert!(!server.data.join("backups").exists() || tree(&server.data.join("backups")).is_empty());

    let first = server.post_json("/backup", "{}");
    assert_eq!(first.status, 201, "{}", first.text);
    let name = first.json["name"].as_str().unwrap().to_owned();
    assert!(
        name.len() == "kb-20261203T072831Z".len()
            && name.starts_with("kb-")
            && name.ends_with('Z')
            && name.as_bytes()[11] == b'T',
        "{name}"
    );
    assert!(first.json.get("path").is_none(), "{}", first.text);
    assert!(!first.text.contains(&data), "{}", first.text);
    let copy = server.data.join("backups").join(&name);
    assert_eq!(mode(&copy), 0o700);
    assert_eq!(mode(&copy.join("kb.redb")), 0o600);
    // Two in the same second still get distinct names; a `null` name is no name.
    let second = server.post_json("/backup", r#"{"name":null}"#);
    assert_eq!(second.status, 201, "{}", second.text);
    assert_ne!(second.json["name"], first.json["name"]);

    assert_eq!(
        server.post_json("/backup", r#"{"name":"nightly"}"#).status,
        201
    );
    let again = server.post_json("/backup", r#"{"name":"nightly"}"#);
    assert_eq!(again.status, 409, "{}", again.text);
    assert!(again.text.contains("already exists"), "{}", again.text);
    assert!(!again.text.contains(&data), "{}", again.text);
    // A backup is a whole database.
    assert!(
        kb(&server.data.join("backups/nightly"), &["check"])
            .status
            .success()
    );
}

#[test]
fn backups_never_follow_links_and_pruning_removes_only_what_the_server_made() {
    let backups = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("theirs"), b"theirs").unwrap();
    std::os::unix::fs::symlink(outside.path(), backups.path().join("linked")).unwrap();
    std::fs::create_dir(backups.path().join("foreign")).unwrap();
    std::fs::write(backups.path().join("foreign/kb.redb"), b"someone else's").unwrap();
    // Markers that are not regular files are no markers: a link to a valid-looking one, and a
    // pipe (reading it would block the backup for good).
    let marker = r#"{"created_by":"lakehouse-kb","name":"fake","created_ms":0}"#;
    std::fs::write(outside.path().join("marker"), marker).unwrap();
    std::fs::create_dir(backups.path().join("fake")).unwrap();
    std::fs::write(backups.path().join("fake/kb.redb"), b"not the server's").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("marker"),
        backups.path().join("fake/.lakehouse-kb-backup"),
    )
    .unwrap();
    std::fs::create_dir(backups.path().join("stuck")).unwrap();
    let fifo = backups.path().join("stuck/.lakehouse-kb-backup");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let dir_arg = backups.path().to_str().unwrap();
    let server = InProcessServer::start_with(&["--backup-dir", dir_arg, "--backup-keep", "2"]);

    // A name taken by a link is taken: nothing is written through it.
    let a = server.post_json("/backup", r#"{"name":"linked"}"#);
    assert_eq!(a.status, 409, "{}", a.text);
    assert_eq!(tree(outside.path()), vec!["marker", "theirs"]);

    for name in ["b1", "b2", "b3"] {
        let a = server.post_json("/backup", format!(r#"{{"name":"{name}"}}"#));
        assert_eq!(a.status, 201, "{}", a.text);
    }
    // A server-made backup holding a file the server did not make is left whole: that file,
    // and its copy and marker (until a review, its copy was removed before the directory's
    // removal failed).
    std::fs::write(backups.path().join("b2/notes.txt"), b"mine").unwrap();
    let a = server.post_json("/backup", r#"{"name":"b4"}"#);
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json["pruned"], serde_json::json!([]), "{}", a.text);
    let listing = tree(backups.path());
    for kept in [
        "b3",
        "b4",
        "foreign",
        "foreign/kb.redb",
        "linked",
        "b2/notes.txt",
        "b2/kb.redb",
        "b2/.lakehouse-kb-backup",
        "fake/kb.redb",
        "stuck/.lakehouse-kb-backup",
    ] {
        assert!(
            listing.contains(&kept.to_owned()),
            "{kept} gone: {listing:?}"
        );
    }
    assert!(!listing.contains(&"b1".to_owned()), "{listing:?}");
    assert_eq!(
        std::fs::read(backups.path().join("foreign/kb.redb")).unwrap(),
        b"someone else's"
    );
    assert_eq!(tree(outside.path()), vec!["marker", "theirs"]);
}

/// Pruning keeps the backups made last, whatever the clock and the database's seqs did. At
/// 2ab15cf (by the clock) backups stamped while the clock ran a month fast were kept, and each
/// made after the clock was set right pruned the one made just before it; by the last seq a
/// copy holds, a database restored from its oldest backup did the same with its new ones
/// (two reviews').
#[test]
fn pruning_goes_by_the_order_backups_were_made_in() {
    let dir = tempfile::tempdir().unwrap();
    let (data, backups) = (dir.path().join("data"), dir.path().join("backups"));
    let args = [
        "--backup-dir",
        backups.to_str().unwrap(),
        "--backup-keep",
        "3",
    ];
    let backup = |server: &InProcessServer, name: &str| {
        assert_eq!(server.post_json("/event", "{}").status, 200);
        let made = server.post_json("/backup", format!(r#"{{"name":"{name}"}}"#));
        assert_eq!(made.status, 201, "{}", made.text);
    };
    let left = || {
        let mut names: Vec<String> = std::fs::read_dir(&backups)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let mut server = InProcessServer::start_in(&data, &args);
    for name in ["fast-1", "fast-2", "good-1", "good-2"] {
        backup(&server, name);
        if name.starts_with("fast") {
            // Stamped by a clock a month ahead.
            let marker = backups.join(name).join(".lakehouse-kb-backup");
            let mut json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
            let created = json["created_ms"].as_u64().unwrap();
            json["created_ms"] = (created + 30 * 86_400_000).into();
            std::fs::write(&marker, json.to_string()).unwrap();
        }
    }
    assert_eq!(left(), ["fast-2", "good-1", "good-2"]);

    // Restored from its oldest backup (a copy into the same file: the same database to
    // the backups), then backed up again: its seqs are below those of the history left.
    server.stop().unwrap();
    drop(server);
    std::fs::copy(backups.join("fast-2/kb.redb"), data.join("kb.redb")).unwrap();
    let server = InProcessServer::start_in(&data, &args);
    for name in ["new-1", "new-2", "new-3"] {
        backup(&server, name);
    }
    assert_eq!(left(), ["new-1", "new-2", "new-3"]);
}

/// Two servers given one backup directory each prune only their own database's backups (a
/// review saw a staging server's backups push out production's); a backup a crash interrupted
/// (its marker and a `kb.redb.partial`) is pruned whole, not left as a directory no pruning
/// would touch again, and does not count towards `--backup-keep`.
#[test]
fn pruning_keeps_other_databases_backups_and_clears_an_interrupted_one() {
    let backups = tempfile::tempdir().unwrap();
    let dir_arg = backups.path().to_str().unwrap();
    let args = ["--backup-dir", dir_arg, "--backup-keep", "2"];
    let prod = InProcessServer::start_with(&args);
    let staging = InProcessServer::start_with(&args);
    // Interrupted by a crash, before markers named their database.
    std::fs::create_dir(backups.path().join("crashed")).unwrap();
    std::fs::write(
        backups.path().join("crashed/.lakehouse-kb-backup"),
        r#"{"created_by":"lakehouse-kb","name":"crashed","created_ms":0}"#,
    )
    .unwrap();
    std::fs::write(
        backups.path().join("crashed/kb.redb.partial"),
        b"half a copy",
    )
    .unwrap();
    for name in ["prod-1", "prod-2"] {
        if name == "prod-2" {
            // Interrupted after prod-1, so newer than it: counted towards --backup-keep, it
            // made prod-1 the one removed, leaving one whole copy (a review's, at 3457f34).
            std::fs::create_dir(backups.path().join("crashed-late")).unwrap();
            std::fs::write(
                backups.path().join("crashed-late/.lakehouse-kb-backup"),
                r#"{"created_by":"lakehouse-kb","name":"crashed-late","created_ms":9999999999999}"#,
            )
            .unwrap();
        }
        let a = prod.post_json("/backup", format!(r#"{{"name":"{name}"}}"#));
        assert_eq!(a.status, 201, "{}", a.text);
    }
    for name in ["staging-1", "staging-2", "staging-3"] {
        let a = staging.post_json("/backup", format!(r#"{{"name":"{name}"}}"#));
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let listing = tree(backups.path());
    for kept in [
        "prod-1/kb.redb",
        "prod-2/kb.redb",
        "staging-2/kb.redb",
        "staging-3/kb.redb",
    ] {
        assert!(
            listing.contains(&kept.to_owned()),
            "{kept} gone: {listing:?}"
        );
    }
    assert!(
        !listing.iter().any(|f| f.starts_with("staging-1")),
        "{listing:?}"
    );
    assert!(
        !listing.iter().any(|f| f.starts_with("crashed")),
        "{listing:?}"
    );
    assert!(!backups.path().join("crashed-late").exists(), "{listing:?}");
}

#[test]
fn cli_backup_never_removes_or_replaces_what_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    load(&open_store(dir.path()), 1, 30);
    // A partial file it did not make: refused, left as it is.
    let dest = tempfile::tempdir().unwrap();
    std::fs::write(dest.path().join("kb.redb.partial"), b"not ours").unwrap();
    let out = kb(dir.path(), &["backup", dest.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(
        std::fs::read(dest.path().join("kb.redb.partial")).unwrap(),
        b"not ours"
    );
    // A dangling link where the copy goes: refused, the link kept, its target never made.
    let dest = tempfile::tempdir().unwrap();
    let target = dest.path().join("target");
    std::os::unix::fs::symlink(&target, dest.path().join("kb.redb")).unwrap();
    let out = kb(dir.path(), &["backup", dest.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!target.exists());
    assert!(
        std::fs::symlink_metadata(dest.path().join("kb.redb"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!dest.path().join("kb.redb.partial").exists());
}

#[test]
fn cli_backup_while_a_server_runs_asks_for_a_named_backup_and_refuses_a_dest() {
    let server = InProcessServer::start();
    let dest = tempfile::tempdir().unwrap();
    let elsewhere = dest.path().join("copy");
    let out = Command::new(BIN)
        .arg("--data")
        .arg(&server.data)
        .args(["backup", elsewhere.to_str().unwrap(), "--url", &server.base])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("only under its own --backup-dir"),
        "{stderr}"
    );
    assert!(!elsewhere.exists());
    let out = Command::new(BIN)
        .arg("--data")
        .arg(&server.data)
        .args(["backup", "--url", &server.base])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("backup kb-"), "{stdout}");
}

/// One backup at a time: a second request while one copies is refused at once (no queue),
/// `/healthz` keeps answering, and a copy whose client went away stops and leaves nothing.
#[test]
fn one_backup_at_a_time_cancelled_when_its_client_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = faulty_store(dir.path());
    load(&store, 3, 6_000);
    let backups = dir.path().join("backups");
    let config = ServerConfig {
        backup_dir: Some(backups.clone()),
        ..ServerConfig::default()
    };
    let server = RouterServer::start(store, config, dir.path());

    faults.hold_backup_reads.store(true, Ordering::SeqCst);
    let base = server.base.clone();
    let first = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::new();
        let r = client
            .post(format!("{base}/backup"))
            .header("content-type", "application/json")
            .body(r#"{"name":"first"}"#)
            .send()
            .unwrap();
        r.status().as_u16()
    });
    eventually("the first backup is copying", || {
        faults.held_reads.load(Ordering::SeqCst) > 0
    });
    let start = Instant::now();
    let second = server.post_json("/backup", r#"{"name":"second"}"#);
    assert_eq!(second.status, 409, "{}", second.text);
    assert!(second.text.contains("already running"), "{}", second.text);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the second request waited"
    );
    assert!(!backups.join("second").exists());
    // The copy starves no one: health, writes and reads are answered while it runs.
    for i in 0..5 {
        assert_eq!(server.get("/healthz").status, 200);
        let write = server.post_json("/event", format!(r#"{{"source":"bot","during":{i}}}"#));
        assert_eq!(write.status, 200, "{}", write.text);
        assert_eq!(server.get("/stats").status, 200);
    }
    faults.hold_backup_reads.store(false, Ordering::SeqCst);
    assert_eq!(first.join().unwrap(), 201);

    // A client that gives up: its copy stops and leaves nothing behind.
    faults.hold_backup_reads.store(true, Ordering::SeqCst);
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(format!("{}/backup", server.base))
        .header("content-type", "application/json")
        .body(r#"{"name":"gone"}"#)
        .send();
    assert!(gave_up.is_err(), "{gave_up:?}");
    assert!(backups.join("gone").exists(), "the copy had begun");
    faults.hold_backup_reads.store(false, Ordering::SeqCst);
    eventually("the cancelled copy left nothing behind", || {
        !backups.join("gone").exists()
    });
    // And the next one runs, once the cancelled one has let go of the slot (its directory is
    // removed just before: a 409 "already running" may come first under load).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let next = loop {
        let next = server.post_json("/backup", r#"{"name":"next"}"#);
        if next.status != 409 || std::time::Instant::now() > deadline {
            break next;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(next.status, 201, "{}", next.text);
    assert_eq!(
        tree(&backups).iter().filter(|p| !p.contains('/')).count(),
        2
    );
}

/// Two instances on one host: the CLI asked to back up or export one database with the other
/// one's `--url` refuses (that server would copy its own database and answer 201), and asks
/// nothing of it.
#[test]
fn cli_refuses_a_server_that_holds_another_database() {
    let ours = InProcessServer::start_with(&["--export-interval", "0"]);
    let theirs = InProcessServer::start_with(&["--export-interval", "0"]);
    for server in [&ours, &theirs] {
        assert_eq!(
            server.post_json("/event", r#"{"source":"bot"}"#).status,
            200
        );
    }
    let named = |server: &InProcessServer| server.get("/healthz").json["database"].clone();
    assert!(named(&ours).is_string());
    assert_ne!(named(&ours), named(&theirs));

    for args in [
        &["backup", "--name", "copy", "--url", &theirs.base][..],
        &["export", "--url", &theirs.base][..],
    ] {
        let out = kb(&ours.data, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains("holds another database"), "{stderr}");
    }
    for server in [&ours, &theirs] {
        assert!(!server.data.join("backups").exists());
        assert!(!server.data.join("_observer").exists());
    }

    // The right server is asked.
    let out = kb(
        &ours.data,
        &["backup", "--name", "copy", "--url", &ours.base],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ours.data.join("backups/copy/kb.redb").exists());
}

/// What answers at `--url` may be anyone listening there (the default URL is a port any local
/// user can take). Found by a review at f639646: the CLI sent `LAKEHOUSE_KB_TOKEN` with its
/// `/healthz` probe, before it knew the server held its database, and read an answer of any
/// length (4.4 GB in 15 s from an endless one). Now the probe carries no token (`/healthz`
/// takes none), and an answer past 1 MiB is refused.
#[test]
fn cli_sends_an_impostor_no_token_and_reads_no_endless_answer() {
    use std::io::{BufRead, BufReader, Write};
    let ours = InProcessServer::start_with(&["--export-interval", "0"]);
    for endless in [false, true] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let heads = std::thread::spawn(move || {
            let mut heads = Vec::new();
            let stream = accept_within(&listener, Duration::from_secs(30));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            while reader.read_line(&mut head).unwrap() > 2 {}
            heads.push(head);
            let mut stream = stream;
            if endless {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
                );
                let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
                // Until the CLI hangs up.
                while stream.write_all(chunk.as_bytes()).is_ok() {}
            } else {
                let body = r#"{"status":"ok"}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            heads
        });
        let out = Command::new(crate::support::BIN)
            .arg("--data")
            .arg(&ours.data)
            .args(["backup", "--name", "copy", "--url", &url])
            .env("LAKEHOUSE_KB_TOKEN", "s3cret-token")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        let heads = heads.join().unwrap();
        assert!(heads[0].starts_with("GET /healthz "), "{heads:?}");
        assert!(
            !heads[0].to_ascii_lowercase().contains("authorization"),
            "{heads:?}"
        );
        let expected = if endless {
            "reading the answer"
        } else {
            "does not say which database"
        };
        assert!(stderr.contains(expected), "{stderr}");
    }
    assert!(!ours.data.join("backups").exists());
}

/// A second review's, at 761026c: something at `--url` that relays `/healthz` to the server
/// holding the database and answers the backup itself was taken at its word (a backup named
/// `x` reported written, exit 0, none on disk). Now the CLI fails unless the answer names
/// the backup it asked for. (That such a relay receives the token is a known limit:
/// docs/RELIABILITY.md.)
#[test]
fn cli_says_a_backup_the_server_did_not_name_is_not_done() {
    use std::io::{BufRead, BufReader, Read, Write};
    let ours = InProcessServer::start_with(&["--export-interval", "0"]);
    let health = ours.get("/healthz").text;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let relay = std::thread::spawn(move || {
        for _ in 0..2 {
            let stream = accept_within(&listener, Duration::from_secs(30));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut head, mut length) = (String::new(), 0);
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            reader.read_exact(&mut vec![0; length]).unwrap();
            let (status, body) = if head.starts_with("GET /healthz") {
                ("200 OK", health.clone())
            } else {
                (
                    "201 Created",
                    r#"{"name":"x","last_seq":1,"rows":1,"bytes":1,"millis":1,"pruned":[]}"#
                        .to_owned(),
                )
            };
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
    });
    let out = kb(&ours.data, &["backup", "--name", "nightly", "--url", &url]);
    relay.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("not the one asked for"), "{stderr}");
}

/// The next connection to `listener`, or a panic after `timeout`: a CLI that fails before it
/// connects fails the test rather than leave it waiting forever.
fn accept_within(listener: &std::net::TcpListener, timeout: Duration) -> std::net::TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "nothing connected in {timeout:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A retried backup with the first attempt's idempotency key is answered with the backup that
/// attempt made, for as long as it is kept: nothing new is written and nothing pruned (a review
/// found each retry made another backup, pushing older ones out, and a named backup's retry
/// answered 409 as if it had failed). The key with another name is a 409 naming the key; a new
/// key is a new backup; one backup's key never answers for another database's.
#[test]
fn a_backup_retried_with_its_key_is_the_backup_made_once() {
    let backups = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let dir_arg = backups.path().to_str().unwrap();
    let args = ["--backup-dir", dir_arg, "--backup-keep", "2"];
    let mut server = InProcessServer::start_in(data.path(), &args);
    let first = server.post_keyed(
        "/backup",
        "application/json",
        Some("k-nightly"),
        r#"{"name":"nightly"}"#,
    );
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.json.get("duplicate"), None, "{}", first.text);
    // The key is kept with the backup: a restart does not forget it.
    server.stop().unwrap();
    drop(server);
    let server = InProcessServer::start_in(data.path(), &args);
    let post =
        |key: &str, body: &str| server.post_keyed("/backup", "application/json", Some(key), body);
    assert_eq!(
        server.post_json("/event", r#"{"source":"bot"}"#).status,
        200
    );
    for _ in 0..3 {
        let again = post("k-nightly", r#"{ "name": "nightly" }"#);
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(again.json["duplicate"], true, "{}", again.text);
        for field in ["name", "last_seq", "rows", "bytes", "millis"] {
            assert_eq!(
                again.json[field], first.json[field],
                "{field}: {}",
                again.text
            );
        }
        assert_eq!(again.json["pruned"], serde_json::json!([]));
    }
    let reused = post("k-nightly", r#"{"name":"other"}"#);
    assert_eq!(reused.status, 409, "{}", reused.text);
    assert_eq!(reused.json["field"], "idempotency-key", "{}", reused.text);
    // A server-named backup: its retries name it, and make no other.
    let unnamed = post("k-unnamed", "{}");
    assert_eq!(unnamed.status, 201, "{}", unnamed.text);
    let retried = post("k-unnamed", "{}");
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(retried.json["name"], unnamed.json["name"]);
    let listing = tree(backups.path());
    let made: Vec<&String> = listing.iter().filter(|p| !p.contains('/')).collect();
    assert_eq!(made.len(), 2, "{listing:?}");
    // A new key is a new backup; with --backup-keep 2 the oldest goes, and its key with it.
    let newer = post("k-new", "{}");
    assert_eq!(newer.status, 201, "{}", newer.text);
    assert_eq!(
        newer.json["pruned"],
        serde_json::json!(["nightly"]),
        "{}",
        newer.text
    );
    let after_pruning = post("k-nightly", r#"{"name":"nightly"}"#);
    assert_eq!(after_pruning.status, 201, "{}", after_pruning.text);
}

/// A backup's key answers within `--idempotency-window`, as every write's does: a job that
/// sends one fixed key each night gets a new backup each night, not the first one again.
#[test]
fn a_backup_key_answers_only_within_the_idempotency_window() {
    let backups = tempfile::tempdir().unwrap();
    let dir_arg = backups.path().to_str().unwrap();
    let server =
        InProcessServer::start_with(&["--backup-dir", dir_arg, "--idempotency-window", "1s"]);
    let post = || server.post_keyed("/backup", "application/json", Some("nightly-job"), "{}");
    let first = post();
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(post().status, 200);
    std::thread::sleep(Duration::from_millis(1_100));
    let next = post();
    assert_eq!(next.status, 201, "{}", next.text);
    assert_ne!(next.json["name"], first.json["name"]);
}

/// A keyed backup whose attempt never answered (the server killed mid-copy, or between the
/// copy and the marker that keeps the answer) is made again by its retry, under the name it
/// had: a review found the retry of a named one refused as a name taken (409), and a server-named
/// one's retry made a second backup beside the first. The states are the ones a crash leaves,
/// made by editing a whole backup's directory.
#[test]
fn a_keyed_backup_whose_attempt_never_answered_is_made_again_by_its_retry() {
    let backups = tempfile::tempdir().unwrap();
    let dir_arg = backups.path().to_str().unwrap();
    let server = InProcessServer::start_with(&["--backup-dir", dir_arg]);
    let post =
        |key: &str, body: &str| server.post_keyed("/backup", "application/json", Some(key), body);
    // What a crash before the answer was kept leaves in the marker: no `done`.
    fn unanswered(dir: &Path) {
        let marker = dir.join(".lakehouse-kb-backup");
        let mut kept: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
        kept.as_object_mut().unwrap().remove("done").unwrap();
        std::fs::write(&marker, kept.to_string()).unwrap();
    }
    type Crash = fn(&Path);
    let crashes: [(&str, Crash); 3] = [
        (
            "killed after the copy, before its answer was kept",
            unanswered,
        ),
        ("killed mid-copy", |dir| {
            std::fs::rename(dir.join("kb.redb"), dir.join("kb.redb.partial")).unwrap();
            unanswered(dir);
        }),
        (
            "killed after linking, before removing the partial file",
            |dir| {
                std::fs::hard_link(dir.join("kb.redb"), dir.join("kb.redb.partial")).unwrap();
                unanswered(dir);
            },
        ),
    ];
    for (n, (case, crash)) in crashes.iter().enumerate() {
        for body in [format!(r#"{{"name":"named-{n}"}}"#), "{}".to_owned()] {
            let key = format!("k-{n}-{}", body.len());
            let first = post(&key, &body);
            assert_eq!(first.status, 201, "{case}: {}", first.text);
            let name = first.json["name"].as_str().unwrap().to_owned();
            crash(&backups.path().join(&name));
            let made = |listing: &[String]| listing.iter().filter(|p| !p.contains('/')).count();
            let before = made(&tree(backups.path()));
            let retried = post(&key, &body);
            assert_eq!(retried.status, 201, "{case}, {body}: {}", retried.text);
            assert_eq!(
                retried.json["name"],
                name.as_str(),
                "{case}: {}",
                retried.text
            );
            assert!(
                retried.json["rows"].as_u64().unwrap() > 0,
                "{}",
                retried.text
            );
            let listing = tree(backups.path());
            assert_eq!(made(&listing), before, "{case}: {listing:?}");
            assert_eq!(
                tree(&backups.path().join(&name)),
                [".lakehouse-kb-backup", "kb.redb"],
                "{case}"
            );
            // Answered now: the next retry is the backup made once.
            let again = post(&key, &body);
            assert_eq!(again.status, 200, "{case}: {}", again.text);
            assert_eq!(again.json["name"], name.as_str());
        }
    }
}

/// A named backup without a key that a crash cut short (its directory holds the marker and the
/// partial copy) is made again by the same request: a review found it refused as a name taken
/// (409) until some later backup pruned it, the CLI's `backup --name` included (it sends no key).
/// A whole backup of that name, or an interrupted one holding a file the server did not make,
/// is still a name taken.
#[test]
fn a_named_backup_a_crash_cut_short_is_made_again_under_its_name() {
    let backups = tempfile::tempdir().unwrap();
    let dir_arg = backups.path().to_str().unwrap();
    let server = InProcessServer::start_with(&["--backup-dir", dir_arg]);
    let post = |body: &str| server.post_keyed("/backup", "application/json", None, body);
    let body = r#"{"name":"nightly"}"#;
    assert_eq!(post(body).status, 201);
    let dir = backups.path().join("nightly");
    assert_eq!(post(body).status, 409, "a whole backup of that name");
    // Killed mid-copy: the copy is still its partial file.
    std::fs::rename(dir.join("kb.redb"), dir.join("kb.redb.partial")).unwrap();
    let again = post(body);
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.json["name"], "nightly");
    assert_eq!(tree(&dir), [".lakehouse-kb-backup", "kb.redb"]);
    std::fs::rename(dir.join("kb.redb"), dir.join("kb.redb.partial")).unwrap();
    std::fs::write(dir.join("NOTES.txt"), b"an operator's").unwrap();
    let before = tree(&dir);
    assert_eq!(post(body).status, 409);
    assert_eq!(tree(&dir), before);
}

/// A backup directory the server made that holds a file it did not make is left whole, by a
/// keyed retry and by pruning alike: a review found its copy and marker removed before the
/// directory's removal failed, leaving a directory no longer known as the server's, and the
/// copy gone.
#[test]
fn a_backup_directory_holding_a_stranger_s_file_is_left_whole() {
    let backups = tempfile::tempdir().unwrap();
    let dir_arg = backups.path().to_str().unwrap();
    let server = InProcessServer::start_with(&["--backup-dir", dir_arg, "--backup-keep", "1"]);
    let post =
        |key: &str, body: &str| server.post_keyed("/backup", "application/json", Some(key), body);
    let first = post("k-1", r#"{"name":"held"}"#);
    assert_eq!(first.status, 201, "{}", first.text);
    let held = backups.path().join("held");
    // What a crash before the answer was kept leaves, and a file of an operator's.
    let marker = held.join(".lakehouse-kb-backup");
    let mut kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    kept.as_object_mut().unwrap().remove("done").unwrap();
    std::fs::write(&marker, kept.to_string()).unwrap();
    std::fs::write(held.join("NOTES.txt"), b"an operator's").unwrap();
    let before = tree(&held);
    let retried = post("k-1", r#"{"name":"held"}"#);
    assert_eq!(retried.status, 409, "{}", retried.text);
    assert_eq!(tree(&held), before);
    // Pruning (keep 1) passes it by too.
    let next = post("k-2", "{}");
    assert_eq!(next.status, 201, "{}", next.text);
    assert_eq!(next.json["pruned"], serde_json::json!([]), "{}", next.text);
    assert_eq!(tree(&held), before);
}

/// `--backup-dir` given as a link to a real directory (backups on another disk) is resolved
/// when the server starts: backups are made and pruned there. A link put where the backup
/// directory is afterwards (here the default `DATA/backups`) is refused before anything is
/// written. At 3ab4e2b each backup went through such a link, then failed to sync the
/// directory and answered that nothing was kept, leaving the whole copy there, never pruned
/// (a review's: ten retries, ten copies).
#[test]
fn a_linked_backup_dir_is_resolved_and_a_link_put_there_later_is_refused() {
    let real = tempfile::tempdir().unwrap();
    let links = tempfile::tempdir().unwrap();
    let via = links.path().join("backups");
    std::os::unix::fs::symlink(real.path(), &via).unwrap();
    let server =
        InProcessServer::start_with(&["--backup-dir", via.to_str().unwrap(), "--backup-keep", "2"]);
    for name in ["l1", "l2", "l3"] {
        let a = server.post_json("/backup", format!(r#"{{"name":"{name}"}}"#));
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let listing = tree(real.path());
    assert!(listing.contains(&"l3/kb.redb".to_owned()), "{listing:?}");
    assert!(!listing.contains(&"l1".to_owned()), "pruned: {listing:?}");

    let server = InProcessServer::start();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), server.data.join("backups")).unwrap();
    for _ in 0..2 {
        let a = server.post_json("/backup", r#"{"name":"x1"}"#);
        assert_eq!(a.status, 500, "{}", a.text);
        assert!(a.text.contains("nothing of it was kept"), "{}", a.text);
        assert_eq!(tree(outside.path()), Vec::<String>::new());
    }
}
