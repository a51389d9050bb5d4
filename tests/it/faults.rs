//! Storage faults, driven through the store's backend seam (`StoreOptions::backend`): a redb
//! `StorageBackend` over the real file that fails writes on demand, as a full disk does, and
//! can hold the backup thread's reads (to catch a backup mid-copy).
//!
//! The story of the bug: after one ENOSPC, redb answered "Previous I/O error occurred" to
//! every later write and export until a restart, even after space was freed, and `/healthz`
//! said ok. Now the store reopens itself; meanwhile writes get 507 with `Retry-After` and
//! `/healthz` says degraded; once space returns, writes succeed with no restart and nothing
//! acknowledged is lost. Also here: a 0-byte or foreign `kb.redb` is refused at start instead of
//! being taken for a new, empty database.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lakehouse_kb::http::ServerConfig;
use lakehouse_kb::store::{Store, StoreError, StoreOptions};
use serde_json::json;

use crate::support::{OPS, OUTCOMES, RouterServer, eventually, faulty_store, kb, load};

/// At 669becd a write that timed out after it was queued got 503 with `Retry-After: 1`, and was
/// then committed: a client that obeyed retried and stored the record twice. Now the timeout of
/// a queued write says it may have been committed, without `Retry-After`, and a retry with the
/// same idempotency key learns its seq instead of storing it again.
#[test]
fn a_queued_write_that_times_out_may_have_been_committed_and_its_key_tells() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = faulty_store(dir.path());
    let config = ServerConfig {
        request_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = RouterServer::start(store, config, dir.path());
    let event = r#"{"source":"bot","event_kind":"slow-disk"}"#;
    faults.hold_syncs.store(true, Ordering::SeqCst);
    let timed_out = server.post_keyed("/event", "application/json", Some("k-1"), event);
    assert_eq!(timed_out.status, 503, "{}", timed_out.text);
    assert_eq!(
        timed_out.retry_after, None,
        "no Retry-After: it may be stored"
    );
    assert!(
        timed_out.json["error"]
            .as_str()
            .unwrap()
            .contains("may have been committed"),
        "{}",
        timed_out.text
    );
    eventually("the commit waits on its sync", || {
        faults.held_syncs.load(Ordering::SeqCst) > 0
    });
    faults.hold_syncs.store(false, Ordering::SeqCst);
    // The honest client retries with its key until it gets an answer: the one commit's seq.
    let mut retry = server.post_keyed("/event", "application/json", Some("k-1"), event);
    eventually("the retry is answered", || {
        if retry.status == 503 {
            retry = server.post_keyed("/event", "application/json", Some("k-1"), event);
        }
        retry.status == 200
    });
    assert_eq!(retry.json["duplicate"], true, "{}", retry.text);
    assert_eq!(server.get("/stats").json["total"], 1);
}

/// Found at a0c1c44: `/healthz` read the database, and redb's reads wait for a commit's sync,
/// so while a disk held a sync the probe hung (no timeout applies to it) instead of saying
/// anything, each probe holding a blocking thread. Now it answers from what the writer
/// publishes, and a commit running past the stall threshold is `degraded` (503) with how long.
#[test]
fn healthz_answers_while_a_sync_hangs_and_says_the_commit_is_stalled() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = faulty_store(dir.path());
    let config = ServerConfig {
        stalled_commit: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = RouterServer::start(store, config, dir.path());
    let first = server.post_json("/outcomes", r#"{"sig_hash":"s","i":1}"#);
    assert_eq!(first.status, 201, "{}", first.text);
    let syncs = faults.holding_syncs();
    std::thread::scope(|scope| {
        let held = scope.spawn(|| server.post_json("/outcomes", r#"{"sig_hash":"s","i":2}"#));
        eventually("the commit waits on its sync", || {
            faults.held_syncs.load(Ordering::SeqCst) > 0
        });
        let mut health = server.get("/healthz");
        eventually("the probe says the commit is stalled", || {
            health = server.get("/healthz");
            health.status == 503
        });
        assert_eq!(health.json["status"], "degraded", "{}", health.text);
        assert_eq!(health.retry_after.as_deref(), Some("1"), "{health:?}");
        assert!(
            health.json["stalled_commit_ms"].as_u64().unwrap() >= 300,
            "{}",
            health.text
        );
        assert_eq!(health.json["last_seq"], 1, "{}", health.text);
        assert_eq!(health.json["queue_depth"], 1, "{}", health.text);
        drop(syncs);
        let held = held.join().unwrap();
        assert_eq!(held.status, 201, "{}", held.text);
    });
    let health = server.get("/healthz");
    assert_eq!((health.status, &health.json["status"]), (200, &json!("ok")));
    assert_eq!(health.json["last_seq"], 2, "{}", health.text);
    assert!(
        health.json.get("stalled_commit_ms").is_none(),
        "{}",
        health.text
    );
}

#[test]
fn a_full_disk_degrades_then_the_store_reopens_itself_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = faulty_store(dir.path());
    let server = RouterServer::start(store.clone(), ServerConfig::default(), dir.path());
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let a = server.post_json("/event", format!(r#"{{"source":"bot","i":{i}}}"#));
        assert_eq!(a.status, 200, "{}", a.text);
        acknowledged.push(a.json["seq"].as_u64().unwrap());
    }
    assert_eq!(server.post_json("/export", "{}").status, 200);

    faults.fail_writes.store(true, Ordering::SeqCst);
    for i in 0..5 {
        let a = server.post_json("/event", format!(r#"{{"source":"bot","lost":{i}}}"#));
        assert_eq!(a.status, 507, "{}", a.text);
        assert!(a.retry_after.is_some(), "no Retry-After: {a:?}");
        let error = a.json["error"].as_str().unwrap();
        assert!(error.contains("no space left"), "{error}");
    }
    let health = server.get("/healthz");
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.json["status"], "degraded", "{}", health.text);
    assert_eq!(health.json["storage"]["no_space"], true, "{}", health.text);
    // Its 503 says when to look again, as the body does (the clients read the header).
    let secs = health.json["storage"]["retry_after_secs"]
        .as_u64()
        .unwrap()
        .max(1);
    assert_eq!(health.retry_after, Some(secs.to_string()), "{health:?}");
    // Reads never answer 500: what redb still has answers, the rest is a 503 to retry.
    for path in ["/stats", "/events?limit=5", "/metrics"] {
        let a = server.get(path);
        assert!(
            matches!(a.status, 200 | 503),
            "{path}: {} {}",
            a.status,
            a.text
        );
    }
    assert!(
        server
            .get("/metrics")
            .text
            .contains("lakehousekb_storage_fault 1")
    );
    // The export meets the same fault: reported, not a 500.
    let export = server.post_json("/export", "{}");
    assert_ne!(export.status, 500, "{}", export.text);
    // A backup copies what the database holds to a disk of its own: it may succeed, and
    // never answers 500 (see `http::backup`'s tests for the faults it meets).
    let backup = server.post_json("/backup", "{}");
    assert!(
        backup.status == 201 || (backup.retry_after.is_some() && backup.status >= 503),
        "{backup:?}"
    );

    // Nor is any other write taken meanwhile: at 2ab15cf a verdict, a durable commit, was
    // answered 201 while the events were refused (a review's).
    let verdict = server.post_json("/verdicts", VERDICT);
    assert_eq!(verdict.status, 507, "{}", verdict.text);
    assert!(verdict.retry_after.is_some(), "{verdict:?}");

    // Space returns: no restart, writes succeed again.
    faults.fail_writes.store(false, Ordering::SeqCst);
    eventually("writes succeed again", || {
        let a = server.post_json("/event", r#"{"source":"bot","after":true}"#);
        if a.status == 200 {
            acknowledged.push(a.json["seq"].as_u64().unwrap());
        }
        a.status == 200
    });
    let health = server.get("/healthz");
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.json["status"], "ok", "{}", health.text);
    // Nothing acknowledged was lost, nothing refused was stored.
    let events = server.get("/events?limit=1000");
    assert_eq!(events.status, 200, "{}", events.text);
    let seqs: Vec<u64> = events.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, acknowledged, "{}", events.text);
    assert!(!events.text.contains("lost"), "{}", events.text);
    // The export works again too, and the database checks clean.
    let export = server.post_json("/export", "{}");
    assert_eq!(export.status, 200, "{}", export.text);
    assert_eq!(
        export.json["ops"]["checkpoint"]["seq"],
        *acknowledged.last().unwrap()
    );
    drop(server);
    let mut store = Arc::try_unwrap(store).expect("the server let go of the store");
    assert!(store.check().unwrap().passed());
}

/// A verdict, for the writes that commit durably rather than through the journal.
const VERDICT: &str = r#"{"pr_number":6,"head_sha":"7fe47bab0c9d7fe47bab0c9d7fe47bab0c9d7fe4","audited_at":"2026-04-22T17:20:00.000Z","overall":"block","one_liner":"x","metrics":{"findings_block":1,"findings_warn":0,"findings_info":0}}"#;

/// Found by a review at 2ab15cf: with its data directory moved or removed while it ran, the
/// service went on acknowledging writes into the file it had open, which the next start did
/// not have (it made a new, empty database at the path), and `/healthz` said ok. Now a write
/// (and the jobs, within their interval) finds the file gone from its path: the store faults,
/// writes are refused with `Retry-After`, `/healthz` says why, the recovery makes no file at
/// the path, and once the directory is back the store is reopened and takes writes again.
#[test]
fn a_database_moved_or_removed_while_serving_refuses_writes_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let (data, moved) = (dir.path().join("data"), dir.path().join("moved"));
    let server = crate::support::InProcessServer::start_in(&data, &["--export-interval", "200ms"]);
    let first = server.post_json("/event", r#"{"source":"bot","i":1}"#);
    assert_eq!(first.status, 200, "{}", first.text);

    std::fs::rename(&data, &moved).unwrap();
    for (path, body) in [
        ("/event", r#"{"source":"bot","lost":1}"#),
        ("/verdicts", VERDICT),
    ] {
        let refused = server.post_json(path, body);
        assert_eq!(refused.status, 503, "{path}: {}", refused.text);
        assert!(refused.retry_after.is_some(), "{path}: {refused:?}");
        let error = refused.json["error"].as_str().unwrap();
        assert!(error.contains("no longer at"), "{path}: {error}");
    }
    let health = server.get("/healthz");
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.json["status"], "degraded", "{}", health.text);
    // Several export ticks and recovery attempts later, nothing is made at the path.
    std::thread::sleep(Duration::from_millis(1_000));
    assert!(
        !data.exists(),
        "{:?}",
        std::fs::read_dir(&data).unwrap().collect::<Vec<_>>()
    );

    std::fs::rename(&moved, &data).unwrap();
    eventually("writes succeed again", || {
        server
            .post_json("/event", r#"{"source":"bot","i":2}"#)
            .status
            == 200
    });
    let events = server.get("/events?limit=10");
    assert_eq!(
        events.json["events"].as_array().unwrap().len(),
        2,
        "{}",
        events.text
    );
    assert!(!events.text.contains("lost"), "{}", events.text);
    assert_eq!(server.get("/healthz").status, 200);

    // Another file put in its place (a backup restored while the service runs) is not
    // opened in its place: that takes a restart, which migrates it and resets what the
    // service derived from the file it had (a review's).
    let (db, aside) = (data.join("kb.redb"), dir.path().join("kb.redb.aside"));
    std::fs::copy(&db, data.join("kb.redb.copy")).unwrap();
    std::fs::rename(&db, &aside).unwrap();
    std::fs::rename(data.join("kb.redb.copy"), &db).unwrap();
    let refused = server.post_json("/event", r#"{"source":"bot","lost":2}"#);
    assert_eq!(refused.status, 503, "{}", refused.text);
    std::thread::sleep(Duration::from_millis(1_000));
    let health = server.get("/healthz");
    assert_eq!(health.status, 503, "{}", health.text);
    let reason = health.json["storage"]["reason"].as_str().unwrap();
    assert!(reason.contains("another file"), "{reason}");
    std::fs::rename(&aside, &db).unwrap();
    eventually("writes succeed again", || {
        server
            .post_json("/event", r#"{"source":"bot","i":3}"#)
            .status
            == 200
    });
    assert!(!server.get("/events?limit=10").text.contains("lost"));

    // Removed, found by the export job alone (no write asks): degraded, and nothing made.
    std::fs::remove_dir_all(&data).unwrap();
    eventually("healthz says degraded", || {
        server.get("/healthz").status == 503
    });
    assert_eq!(
        server.post_json("/event", r#"{"source":"bot"}"#).status,
        503
    );
    std::thread::sleep(Duration::from_millis(1_000));
    assert!(!data.exists());
}

/// The journal removed while the store is faulted (a full disk) holds acknowledged events
/// that the failed database drops at its reopen: they are put back at its path for the
/// recovery to apply. A review lost 2,049 so: the disk filled, the journal was removed, space
/// was freed, and the store recovered without them and gave their seqs to new events.
#[test]
fn a_journal_removed_while_faulted_is_applied_by_the_reopen() {
    let event = |i: u64| {
        let body = format!(r#"{{"source":"bot","i":{i}}}"#);
        lakehouse_kb::store::Put::from(
            lakehouse_kb::intake::event_record(body.as_bytes(), 1_775_000_000_000).unwrap(),
        )
    };
    // 20 events journaled; then a durable commit fails on the full disk, in redb itself (an
    // event's would fail in the journal first), and the journal is removed. (The writer thread
    // notes a write's storage fault; here the test does.)
    let faulted_without_its_journal = || {
        let dir = tempfile::tempdir().unwrap();
        let (store, faults) = faulty_store(dir.path());
        for i in 0..20 {
            store.write(&[event(i)]).unwrap();
        }
        faults.fail_writes.store(true, Ordering::SeqCst);
        let row = br#"{"sig_hash":"pr1-abcdef12","kind":"x"}"#;
        let outcome = lakehouse_kb::intake::outcome_record(row, 1).unwrap();
        let failed = store
            .write(&[lakehouse_kb::store::Put::from(outcome)])
            .unwrap_err();
        assert!(store.note_error(&failed).is_some(), "{failed}");
        std::fs::remove_file(dir.path().join("kb.redb-journal")).unwrap();
        (dir, store, faults)
    };

    let (_dir, store, faults) = faulted_without_its_journal();
    faults.fail_writes.store(false, Ordering::SeqCst);
    eventually("the store recovers", || store.fault().is_none());
    assert_eq!(store.last_seq().unwrap(), 20);
    assert_eq!(store.write(&[event(21)]).unwrap()[0].seq(), 21);

    // Stopped during the fault, before a recovery attempt: the stop puts it back, and the
    // next start applies it (a review lost them all at a SIGTERM within the retry delay).
    let (dir, store, _faults) = faulted_without_its_journal();
    store.put_back_journal().unwrap();
    drop(store);
    let reopened = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
    assert_eq!(reopened.last_seq().unwrap(), 20);
}

/// Found by a review at 3457f34: a commit whose last sync failed (EIO) was answered 503 with
/// `Retry-After`, which says nothing was stored, yet it was: its header had reached the file,
/// and the reopen found it. A client that obeyed, without a key, stored the record twice. Now
/// a durable commit failing on anything but a full disk is answered as one that may have been
/// stored (503 without `Retry-After`), and a retry with the same key learns which.
#[test]
fn a_commit_whose_sync_fails_may_have_been_stored_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = faulty_store(dir.path());
    let server = RouterServer::start(store.clone(), ServerConfig::default(), dir.path());
    let row = r#"{"sig_hash":"sync-failed","kind":"scenario","ok":true}"#;
    let post = || {
        let answer = server
            .client()
            .post(server.url("/outcomes"))
            .header("content-type", "application/json")
            .header("idempotency-key", "sync-failed-1")
            .body(row)
            .send()
            .unwrap();
        crate::support::answer(answer)
    };
    faults.fail_syncs.store(true, Ordering::SeqCst);
    let failed = post();
    assert_eq!(failed.status, 503, "{}", failed.text);
    assert_eq!(failed.retry_after, None, "{failed:?}");
    assert!(failed.text.contains("may have"), "{}", failed.text);
    faults.fail_syncs.store(false, Ordering::SeqCst);
    // The retry, once the store has recovered, is stored once whatever the first attempt did.
    let mut retried = None;
    eventually("the retry is answered", || {
        let answer = post();
        let done = matches!(answer.status, 200 | 201);
        retried = Some(answer);
        done
    });
    let retried = retried.unwrap();
    let sig = server.get("/sig/sync-failed");
    assert_eq!(
        sig.json["records"].as_array().map(Vec::len),
        Some(1),
        "{} / {}",
        retried.text,
        sig.text
    );
}

/// Found by a review at 3457f34: a start after a crash on a full disk trained the values'
/// compression dictionary, met the full disk, logged it and went on; the next step then met
/// redb's "previous I/O error", which says nothing of the disk, and `serve` exited instead of
/// waiting for space (a crash loop under systemd). Now the open fails with the full disk
/// itself, which `serve` waits out, and opens once there is space.
#[test]
fn a_dictionary_trained_at_open_on_a_full_disk_fails_the_open_as_a_full_disk() {
    use crate::support::{Faults, faulty_options};
    use lakehouse_kb::store::DictionaryOptions;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let faults = Arc::new(Faults::default());
    let training_at = |train_at: u64| StoreOptions {
        dictionary: DictionaryOptions {
            train_at,
            ..DictionaryOptions::default()
        },
        ..faulty_options(&faults)
    };
    let stored = {
        // Values stored plain, as by a build that had not trained yet.
        let store = Store::open(&path, training_at(u64::MAX)).unwrap();
        load(&store, 1, 300);
        store.last_seq().unwrap()
    };
    // Room for the open's own writes, not for the compressed copies of the values.
    faults.fail_growth.store(true, Ordering::SeqCst);
    let error = Store::open(&path, training_at(100)).unwrap_err();
    assert!(error.is_no_space(), "{error}");
    faults.fail_growth.store(false, Ordering::SeqCst);
    let mut store = Store::open(&path, training_at(100)).unwrap();
    assert_eq!(store.last_seq().unwrap(), stored);
    assert!(store.check().unwrap().passed());
}

/// The same at the store level: the fault is recorded with its cause, and the store comes back
/// by itself once the disk takes writes.
#[test]
fn the_store_records_a_fault_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = faulty_store(dir.path());
    load(&store, 1, 30);
    let before = store.last_seq().unwrap();
    faults.fail_writes.store(true, Ordering::SeqCst);
    let failed = store
        .checkpoint("ops")
        .and_then(|c| store.set_checkpoint("ops", c));
    let error = failed.unwrap_err();
    assert!(error.is_storage_fault(), "{error}");
    let fault = store.note_error(&error).expect("an I/O error is a fault");
    assert!(fault.no_space, "{fault:?}");
    assert!(store.fault().is_some());
    // While the disk is full the store stays faulted (the probe fails, the database is kept).
    std::thread::sleep(Duration::from_millis(300));
    assert!(store.fault().is_some());
    // Space freed, but the disk fails otherwise now: the fault says so, not "no space" (it
    // kept its first cause, a review's).
    faults.fail_syncs.store(true, Ordering::SeqCst);
    faults.fail_writes.store(false, Ordering::SeqCst);
    eventually("the fault follows its cause", || {
        store.fault().is_some_and(|fault| !fault.no_space)
    });
    faults.fail_syncs.store(false, Ordering::SeqCst);
    eventually("the store recovered", || store.fault().is_none());
    load(&store, 2, 30);
    assert_eq!(
        store.last_seq().unwrap(),
        2 * before,
        "nothing lost, the new batch stored"
    );
}

/// A 0-byte `kb.redb` used to be taken as a new, empty database, and the next export emptied
/// the legacy files. Now `serve` and `export` refuse it with what was found and what to do, and
/// the legacy files are untouched. A file that is not a database is refused the same way.
#[test]
fn an_empty_or_foreign_database_file_is_refused_at_start() {
    for (content, needle) in [
        (&b""[..], "empty file (0 bytes)"),
        (&b"id,name\n1,legacy\n"[..], "not a redb database"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        std::fs::write(data.join("kb.redb"), content).unwrap();
        std::fs::create_dir_all(data.join("_kb")).unwrap();
        std::fs::create_dir_all(data.join("_observer")).unwrap();
        let outcomes = b"{\"sig_hash\":\"pr1-aaaaaaaa\",\"legacy\":true}\n";
        let ops = b"{\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"endpoint\":\"scenario:fill\"}\n";
        std::fs::write(data.join(OUTCOMES), outcomes).unwrap();
        std::fs::write(data.join(OPS), ops).unwrap();

        let export = kb(data, &["export"]);
        assert!(!export.status.success());
        let stderr = String::from_utf8_lossy(&export.stderr);
        assert!(stderr.contains(needle), "{stderr}");
        assert!(
            stderr.contains("restore it from a backup") || stderr.contains("restore a backup"),
            "{stderr}"
        );

        // Spawned with a bound: a server that took the file would serve until killed.
        let mut serve = std::process::Command::new(crate::support::BIN)
            .arg("--data")
            .arg(data)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env_remove("LAKEHOUSE_KB_DATA")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let status = crate::support::wait_exit(&mut serve, Duration::from_secs(60));
        assert!(!status.success());
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(stderr.contains(needle), "{stderr}");

        assert_eq!(std::fs::read(data.join("kb.redb")).unwrap(), content);
        assert_eq!(std::fs::read(data.join(OUTCOMES)).unwrap(), outcomes);
        assert_eq!(std::fs::read(data.join(OPS)).unwrap(), ops);
        for sub in ["_kb", "_observer"] {
            assert_eq!(std::fs::read_dir(data.join(sub)).unwrap().count(), 1);
        }
        assert!(matches!(
            Store::open(&data.join("kb.redb"), StoreOptions::default()),
            Err(StoreError::EmptyFile { .. } | StoreError::NotADatabase { .. })
        ));
    }
}

/// A database that could not be created (a first start on a full disk) leaves no file behind:
/// once space is back, the next start creates it. At 11cb16f the failed creation left the file
/// it had begun (72 KiB of zeros on a real full disk, 0 bytes here), and every later start
/// refused it as not a database, or as empty, telling the operator to restore a backup of a
/// database that never held data (a review's; under `Restart=on-failure`, a crash loop).
/// A server started on a full disk (here, with its database to create; after a crash, with
/// a journal to replay) waits for space, answering 503 meanwhile, and serves once there is: a
/// review found it exited, where a running server heals by itself.
#[test]
fn a_server_started_on_a_full_disk_waits_for_space_and_then_serves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let faults = Arc::new(crate::support::Faults::default());
    faults.fail_writes.store(true, Ordering::SeqCst);
    let mut config = crate::support::serve_config(&data, &[]);
    config.store = crate::support::faulty_options(&faults);
    let server = crate::support::InProcessServer::spawn_configured(&data, config);
    eventually("healthz says the open waits for space", || {
        let health = server.get("/healthz");
        health.status == 503 && health.json["no_space"] == true
    });
    let refused = server.post_json("/event", r#"{"source":"bot"}"#);
    assert_eq!(refused.status, 503, "{}", refused.text);
    faults.fail_writes.store(false, Ordering::SeqCst);
    server.wait_healthy();
    let answer = server.post_json("/event", r#"{"source":"bot"}"#);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(server.get("/stats").json["total"], 1);
}

#[test]
fn a_database_that_could_not_be_created_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let faults = Arc::new(crate::support::Faults::default());
    faults.fail_writes.store(true, Ordering::SeqCst);
    let failed = Store::open(&path, crate::support::faulty_options(&faults));
    assert!(failed.is_err(), "created on a full disk");
    assert!(
        !path.exists(),
        "the failed creation left {}",
        path.display()
    );
    let store = Store::open(&path, StoreOptions::default()).expect("created once space is back");
    drop(store);
    // An existing file is never removed, whatever its open says.
    faults.fail_writes.store(true, Ordering::SeqCst);
    let _ = Store::open(&path, crate::support::faulty_options(&faults));
    assert!(path.exists(), "an existing database was removed");
    Store::open(&path, StoreOptions::default()).expect("the database is still there");
}
