//! The real `lakehouse-kb` binary: migrate (plan, run, refuse a newer file), check and its exit
//! codes, import's guard on `--from`, errors that name an environment variable, stderr as JSON
//! lines with `--log-format json`, and colours and animation only where wanted.

use std::path::Path;
use std::process::Command;

use lakehouse_kb::intake::event_record;
use lakehouse_kb::store::{Put, Store, StoreOptions, tables};

use crate::support::{LEGACY_DATA, OUTCOMES, kb, stderr, stdout};

#[test]
fn migrate_dry_run_prints_the_plan_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = kb(&data, &["migrate", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let latest = lakehouse_kb::store::SCHEMA_VERSION;
    assert!(
        text.contains(&format!("schema version 0 -> {latest} ({latest} steps)")),
        "{text}"
    );
    assert!(
        text.contains("v0001_initial") && text.contains("v0004_verdicts_by_seq"),
        "{text}"
    );
    assert!(!data.exists());

    let out = kb(&data, &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("done: schema version {latest}")));
    let out = kb(&data, &["migrate", "--dry-run"]);
    assert!(stdout(&out).contains(&format!(
        "schema version {latest} is current, nothing to do"
    )));
}

#[test]
fn migrate_from_version_1_runs_only_the_missing_step() {
    let dir = tempfile::tempdir().unwrap();
    Store::create_at_version(&dir.path().join("kb.redb"), 1).unwrap();
    let out = kb(dir.path(), &["migrate", "--dry-run"]);
    let latest = lakehouse_kb::store::SCHEMA_VERSION;
    assert!(
        stdout(&out).contains(&format!(
            "schema version 1 -> {latest} ({} steps)",
            latest - 1
        )),
        "{}",
        stdout(&out)
    );
    let out = kb(dir.path(), &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
    assert_eq!(store.schema_version().unwrap(), latest);
}

#[test]
fn newer_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    drop(Store::open(&path, StoreOptions::default()).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(tables::META)
            .unwrap()
            .insert("schema_version", lakehouse_kb::store::SCHEMA_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    for args in [&["migrate"][..], &["check"], &["migrate", "--dry-run"]] {
        let out = kb(dir.path(), args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains(&format!(
                "manual upgrade required: this binary supports schema version {} at most, found {}",
                lakehouse_kb::store::SCHEMA_VERSION,
                lakehouse_kb::store::SCHEMA_VERSION + 1
            )),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the refused file was modified"
    );
}

#[test]
fn check_passes_on_a_healthy_file_and_fails_on_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let body = r#"{"source":"bot","event_kind":"cycle","sig_hash":"abc"}"#;
    store
        .write(&[Put::from(event_record(body.as_bytes(), 0).unwrap())])
        .unwrap();
    drop(store);

    let out = kb(dir.path(), &["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("0 verdicts, 0 outcome rows, 1 events"));
    assert!(stdout(&out).contains("check passed"));

    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(tables::EVENT_KIND_SEQS)
            .unwrap()
            .remove(("cycle", 1))
            .unwrap();
        txn.commit().unwrap();
    }
    let out = kb(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1), "1: problems found");
    let text = stdout(&out);
    assert!(
        text.contains("problem: event seq 1 is missing from event_kind_seqs"),
        "{text}"
    );
    assert!(text.contains("check FAILED"), "{text}");
}

/// `check` and an offline `backup` leave a file whose findings memory was built under other
/// rules as it is: opening it rebuilds the memory and may re-key its dismissals, which at
/// 95d2b9c both did in place (and so did `export`), so a backup taken before an upgrade was
/// already upgraded (a review's). The check is of a copy; the backup is the file byte for byte.
#[test]
fn check_and_backup_leave_a_memory_built_under_other_rules_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let path = data.join("kb.redb");
    {
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let verdict = r#"{"pr_number":3,"head_sha":"abcdef0123456789abcdef0123456789abcdef01","overall":"block","one_liner":"x","audited_at":"2026-06-01T00:00:00.000Z","metrics":{"findings_block":0,"findings_warn":1},"findings":[{"check":"security","severity":"warn","summary":"redis at cache.internal:6379 accepts connections without auth"}]}"#;
        store
            .write(&[Put::from(
                lakehouse_kb::intake::verdict_record(verdict.as_bytes(), 1).unwrap(),
            )])
            .unwrap();
    }
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(tables::META)
            .unwrap()
            .insert("findings/rules_version", 4)
            .unwrap();
        txn.commit().unwrap();
    }
    let original = std::fs::read(&path).unwrap();
    check_and_backup_leave_it_as_it_is(
        &data,
        &original,
        "findings memory is built under other rules: checking a copy",
        "this binary rebuilds its findings memory when it opens it",
    );
}

/// Runs `check`, then `backup DEST`, on the database in `data`, whose file holds `original`:
/// both pass, saying `check_says` (on stderr) and `backup_says` (on stdout), and leave the
/// file as it is, and the backup is the file byte for byte. Returns DEST.
fn check_and_backup_leave_it_as_it_is(
    data: &Path,
    original: &[u8],
    check_says: &str,
    backup_says: &str,
) -> std::path::PathBuf {
    let path = data.join("kb.redb");
    let out = kb(data, &["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("check passed"), "{}", stdout(&out));
    assert!(stderr(&out).contains(check_says), "{}", stderr(&out));
    assert!(
        std::fs::read(&path).unwrap() == original,
        "check changed the file"
    );
    let backup = data.parent().unwrap().join("backup");
    let out = kb(data, &["backup", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(backup_says), "{}", stdout(&out));
    assert!(
        std::fs::read(&path).unwrap() == original,
        "backup changed the file"
    );
    assert!(
        std::fs::read(backup.join("kb.redb")).unwrap() == original,
        "the backup is not the file"
    );
    backup
}

/// `migrate --dry-run`, `check` and an offline `backup` leave a file made by an older binary as
/// it is: at 6b64929 the plan changed redb's state in it, and the other two migrated it first,
/// so a backup taken before an upgrade was already upgraded and the binary it was kept for
/// refused it. `check` checks a migrated copy and removes it; the backup is the file byte for
/// byte, and checks and migrates like the original.
#[test]
fn check_and_backup_leave_a_file_of_an_older_schema_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let packed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/db-669becd/kb.redb.zst"),
    )
    .unwrap();
    let original = zstd::decode_all(packed.as_slice()).unwrap();
    let path = data.join("kb.redb");
    std::fs::write(&path, &original).unwrap();
    let latest = lakehouse_kb::store::SCHEMA_VERSION;
    let entries = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };

    let out = kb(&data, &["migrate", "--dry-run"]);
    assert!(stdout(&out).contains("dry run: nothing changed"));
    assert!(
        std::fs::read(&path).unwrap() == original,
        "the plan changed the file"
    );

    let backup = check_and_backup_leave_it_as_it_is(
        &data,
        &original,
        &format!(
            "is at schema version 4: checking a copy migrated to version {latest} (the file \
             itself is left as it is)"
        ),
        "the file as it is, at schema version 4",
    );
    assert_eq!(entries(&data), ["kb.redb"], "the copy is removed");
    assert_eq!(entries(&backup), ["kb.redb"]);
    // A journal an interrupted backup left in a DEST: a backup beside it would take it for
    // its own.
    let interrupted = dir.path().join("interrupted");
    std::fs::create_dir(&interrupted).unwrap();
    std::fs::write(interrupted.join("kb.redb-journal"), b"").unwrap();
    let out = kb(&data, &["backup", interrupted.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("kb.redb-journal already exists (a backup, or an interrupted one)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(entries(&interrupted), ["kb.redb-journal"]);

    // A check killed part way left its copy behind: the next check removes it. It leaves the
    // copy of a check still running (its lock held), and what is not a check's: a directory
    // of the same shape whose lock says nothing, or that holds a file of the user's.
    let checks = |name: &str, extra: Option<&str>| {
        use std::os::unix::fs::PermissionsExt;
        let dir = data.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(
            dir.join("lock"),
            b"lakehouse-kb check: a migrated copy of the database\n",
        )
        .unwrap();
        std::fs::write(dir.join("kb.redb.partial"), b"...").unwrap();
        if let Some(extra) = extra {
            std::fs::write(dir.join(extra), b"mine").unwrap();
        }
        dir
    };
    checks(".check-k1ll3d", None);
    let running = checks(".check-runnin", None);
    let lock = std::fs::File::open(running.join("lock")).unwrap();
    lock.lock().unwrap();
    checks(".check-users1", Some("notes.txt"));
    let unmarked = data.join(".check-users2");
    std::fs::create_dir(&unmarked).unwrap();
    std::fs::write(unmarked.join("lock"), b"").unwrap();
    assert!(kb(&data, &["check"]).status.success());
    assert_eq!(
        entries(&data),
        [".check-runnin", ".check-users1", ".check-users2", "kb.redb"]
    );
    drop(lock);
    for name in [".check-runnin", ".check-users1", ".check-users2"] {
        std::fs::remove_dir_all(data.join(name)).unwrap();
    }

    // Not closed cleanly: redb repairs it, as any open would, and nothing more is done to it.
    let mut unclean = original.clone();
    unclean[9] |= 0b10;
    std::fs::write(&path, &unclean).unwrap();
    let out = kb(&data, &["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was not closed cleanly: redb repaired it"),
        "{}",
        stderr(&out)
    );
    let out = kb(&data, &["migrate", "--dry-run"]);
    assert!(
        stdout(&out).contains(&format!("schema version 4 -> {latest}")),
        "{}",
        stdout(&out)
    );
    std::fs::write(&path, &original).unwrap();

    // The backup is a whole database of its version: it checks, then migrates.
    assert!(kb(&backup, &["check"]).status.success());
    let out = kb(&backup, &["migrate"]);
    assert!(
        stdout(&out).contains(&format!("done: schema version {latest}")),
        "{}",
        stderr(&out)
    );
    let out = kb(&backup, &["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("copy"), "{}", stderr(&out));
}

/// A file redb panics on (tests/fixtures/db-damaged) is reported as damaged, not a crash:
/// `check` exits 1 (a problem found), the export fails with the same words. Both exited 101
/// with redb's `unreachable!` at 9f75bad (found by a hostile review).
#[test]
fn a_file_redb_panics_on_is_reported_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let packed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/db-damaged/kb.redb.zst"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("kb.redb"),
        zstd::decode_all(packed.as_slice()).unwrap(),
    )
    .unwrap();
    // (arguments, exit status)
    let cases: [(&[&str], i32); 2] = [(&["check"], 1), (&["export"], 1)];
    for (args, code) in cases {
        let out = kb(dir.path(), args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is damaged: redb cannot read it"),
            "{args:?}: {}",
            stderr(&out)
        );
        // Said once, as the error: not also as a panic message with a backtrace.
        assert!(
            !stderr(&out).contains("panicked at"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

/// A database redb opens but panics on when a read reaches a damaged page
/// (tests/fixtures/db-damaged-pages): the commands that meet it say the database is damaged and
/// what to do (exit 1), and the server says so in `/healthz` once a read met it. At bebc226
/// `export`, `import` and `backup` exited 101 with redb's panic, and the server answered 500
/// while `/healthz` said ok (found by a hostile review).
#[test]
fn damage_met_after_the_open_is_reported_as_damage() {
    let damaged = || {
        let dir = tempfile::tempdir().unwrap();
        let packed = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/db-damaged-pages/kb.redb.zst"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("kb.redb"),
            zstd::decode_all(packed.as_slice()).unwrap(),
        )
        .unwrap();
        // Its findings memory of today's rules, as a file this binary wrote: a backup of an
        // older one is the file as it is, which meets no damage.
        let db = redb::Database::create(dir.path().join("kb.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(lakehouse_kb::store::tables::META)
            .unwrap()
            .insert(
                "findings/rules_version",
                lakehouse_kb::model::finding::FINDING_RULES_VERSION,
            )
            .unwrap();
        txn.commit().unwrap();
        dir
    };
    for backup in [false, true] {
        let dir = damaged();
        let dest = dir.path().join("copy");
        let args = match backup {
            false => vec!["export"],
            true => vec!["backup", dest.to_str().unwrap()],
        };
        let out = kb(dir.path(), &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("the database is damaged"), "{args:?}: {err}");
        assert!(err.contains("lakehouse-kb check"), "{args:?}: {err}");
        assert!(!err.contains("panicked at"), "{args:?}: {err}");
    }

    let dir = damaged();
    let server = crate::support::TestServer::start_in(dir.path(), &["--export-interval", "0"], &[]);
    assert_eq!(server.get("/healthz").status, 200);
    let export = server.post_json("/export", "");
    assert!(export.status >= 500, "{}", export.text);
    let health = server.get("/healthz");
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.json["status"], "degraded", "{}", health.text);
    let said = health.json["damaged"].as_str().unwrap_or_default();
    assert!(said.contains("lakehouse-kb check"), "{}", health.text);
    drop(server);

    // A value the service cannot decode is damage too (a flipped byte inside it, where redb
    // reads the page without a panic): `/events` met one with a 500 while `/healthz` said ok.
    let dir = damaged();
    let server = crate::support::TestServer::start_in(dir.path(), &["--export-interval", "0"], &[]);
    let events = server.get("/events?limit=1000");
    assert_eq!(events.status, 500, "{}", events.text);
    assert!(events.text.contains("corrupt value"), "{}", events.text);
    let health = server.get("/healthz");
    assert_eq!(health.status, 503, "{}", health.text);
    let said = health.json["damaged"].as_str().unwrap_or_default();
    assert!(said.contains("could not be read"), "{}", health.text);
}

/// Exit 2, not 1, when the check could not run: at 669becd a wrong `--data` or a running
/// server exited 1, like a damaged database.
#[test]
fn check_exits_2_when_it_could_not_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = kb(&dir.path().join("nope"), &["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));

    // In use by another process (as by a running server).
    let path = dir.path().join("kb.redb");
    drop(Store::open(&path, StoreOptions::default()).unwrap());
    let held = redb::Database::create(&path).unwrap();
    let out = kb(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot check the database while another process holds it"),
        "{}",
        stderr(&out)
    );
    drop(held);
    assert_eq!(kb(dir.path(), &["check"]).status.code(), Some(0));
}

/// A command refused because another process holds the file names every kind of holder: a
/// `migrate` blocked by a running `check` said only "(a running lakehouse-kb server?)", and
/// `backup DEST` and `export --out` said a server held it, until 2026-12-05. The holder here is
/// another process's redb handle, as a check's would be; no server answers at `--url`.
#[test]
fn a_held_file_is_refused_naming_servers_and_other_commands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    drop(Store::open(&path, StoreOptions::default()).unwrap());
    let legacy = dir.path().join("legacy");
    std::fs::create_dir_all(legacy.join("_kb")).unwrap();
    std::fs::write(legacy.join("_kb/outcomes.jsonl"), "").unwrap();
    let legacy = legacy.to_str().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let elsewhere = elsewhere.to_str().unwrap();
    let nobody = "http://127.0.0.1:9";
    let _held = redb::Database::create(&path).unwrap();
    let holders = "(a running lakehouse-kb server, or a check, backup or migration of the file?)";
    let lets_go = "a check, backup or migration lets go of";
    let run_again = "if a check, backup or migration holds it, run this again";
    // (arguments, what the refusal says)
    let cases: [(&[&str], [&str; 2]); 7] = [
        (&["migrate"], ["reading the schema version of", holders]),
        (
            &["migrate", "--dry-run"],
            ["reading the schema version of", holders],
        ),
        (
            &["check"],
            [
                "cannot check the database while another process holds it",
                holders,
            ],
        ),
        (
            &["import", "--from", legacy],
            ["cannot import while another process holds it", holders],
        ),
        (
            &["backup", elsewhere],
            [
                "A running server writes backups only under its own",
                "A check, backup or migration lets go",
            ],
        ),
        (
            &["export", "--out", elsewhere],
            [
                "cannot export into --out while another process holds the database",
                lets_go,
            ],
        ),
        (
            &["export", "--url", nobody],
            ["open in another process", run_again],
        ),
    ];
    for (args, says) in cases {
        let out = kb(dir.path(), args);
        assert!(!out.status.success(), "{args:?}");
        for words in says {
            assert!(stderr(&out).contains(words), "{args:?}: {}", stderr(&out));
        }
    }
    assert!(!Path::new(elsewhere).exists(), "nothing written elsewhere");
}

/// A file at the database's path that `check` cannot read as a database is a problem found
/// (exit 1), and the file is left as it was. Not a database at all (empty, text, zeros): the
/// check's module doc said 1, and it exited 2 (could not check) until 2026-12-05. A database
/// whose header contradicts itself (`export` and `serve` call it damaged): the read-only open
/// reported redb's "corrupted" as a failure to open (exit 2) until 2026-12-05.
#[test]
fn check_exits_1_on_a_file_it_cannot_read_as_a_database() {
    let database = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.redb");
        drop(Store::open(&path, StoreOptions::default()).unwrap());
        std::fs::read(&path).unwrap()
    };
    let damaged = |offset: usize, byte: u8| {
        let mut bytes = database.clone();
        bytes[offset] = byte;
        bytes
    };
    // (case, the file's bytes, words the error must say)
    let cases = [
        ("empty", Vec::new(), "is an empty file (0 bytes)"),
        (
            "text",
            b"not a redb file".to_vec(),
            "is not a redb database",
        ),
        ("zeros", vec![0; 8192], "is not a redb database"),
        ("header: page size", damaged(12, 0x10), "is damaged"),
        (
            "header: region header pages",
            damaged(19, 0xff),
            "is damaged",
        ),
        (
            "header: region max data pages",
            damaged(26, 0xff),
            "is damaged",
        ),
    ];
    for (case, bytes, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.redb");
        std::fs::write(&path, &bytes).unwrap();
        let out = kb(dir.path(), &["check"]);
        assert_eq!(out.status.code(), Some(1), "{case}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("check FAILED"),
            "{case}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(says), "{case}: {}", stderr(&out));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{case}: the file changed"
        );
    }
}

/// At 669becd `import --from` a mistyped directory created an empty database, and one holding
/// none of the legacy directories "imported" nothing and succeeded.
#[test]
fn import_from_a_directory_that_is_not_a_legacy_one_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stranger = dir.path().join("stranger");
    std::fs::create_dir_all(stranger.join("logs")).unwrap();
    for (from, needle) in [
        (dir.path().join("missing"), "reading the legacy directory"),
        (stranger.clone(), "holds none of _kb, _observer, _auditor"),
    ] {
        let out = kb(&data, &["import", "--from", from.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
        assert!(!data.exists(), "a failed import created {}", data.display());
    }

    // One of the three is enough.
    std::fs::create_dir_all(stranger.join("_observer")).unwrap();
    let out = kb(&data, &["import", "--from", stranger.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A bad value from the environment names the variable (at 669becd only `--cache-mb`, which
/// the unit file or container environment being read does not hold).
#[test]
fn a_bad_environment_value_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("LAKEHOUSE_KB_CACHE_MB", "abc"),
        ("LAKEHOUSE_KB_LOG_FORMAT", "xml"),
        ("LAKEHOUSE_KB_QUICK_REPAIR", "maybe"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_lakehouse-kb"))
            .arg("--data")
            .arg(dir.path())
            .arg("check")
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let text = stderr(&out);
        assert!(
            text.contains(var) && text.contains(&format!("{value:?}")),
            "{var}: {text}"
        );
    }
    // On the command line, the flag is what is named.
    let out = Command::new(env!("CARGO_BIN_EXE_lakehouse-kb"))
        .args(["--cache-mb", "abc", "check"])
        .env("LAKEHOUSE_KB_CACHE_MB", "abc")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--cache-mb"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("LAKEHOUSE_KB_CACHE_MB"),
        "{}",
        stderr(&out)
    );
}

#[track_caller]
fn assert_json_lines(what: &str, text: &str) {
    assert!(!text.trim().is_empty(), "{what}: nothing on stderr");
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{what}: a stderr line is not JSON ({e}): {line:?}"));
        assert!(
            value["level"].is_string() && value["fields"]["message"].is_string(),
            "{line}"
        );
    }
}

/// With `--log-format json` every stderr line is JSON: at 669becd the error that ends a
/// command, import rejections and progress, a refused environment value and the warning about
/// listening beyond loopback were plain text.
#[test]
fn json_logs_make_every_stderr_line_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = ["--log-format", "json"];

    let out = kb(&dir.path().join("nope"), &[&json[..], &["check"]].concat());
    assert_json_lines("check without a database", &stderr(&out));

    let legacy = dir.path().join("legacy");
    std::fs::create_dir_all(legacy.join("_kb")).unwrap();
    std::fs::write(legacy.join(OUTCOMES), "{\"sig_hash\":\"a\"}\nnot json\n").unwrap();
    let data = dir.path().join("data");
    let out = kb(
        &data,
        &[&json[..], &["import", "--from", legacy.to_str().unwrap()]].concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("rejected"), "{}", stderr(&out));
    assert_json_lines("import with a rejected line", &stderr(&out));

    let out = Command::new(env!("CARGO_BIN_EXE_lakehouse-kb"))
        .args(["--data", data.to_str().unwrap(), "check"])
        .env("LAKEHOUSE_KB_LOG_FORMAT", "json")
        .env("LAKEHOUSE_KB_CACHE_MB", "abc")
        .output()
        .unwrap();
    assert_json_lines("a refused environment value", &stderr(&out));

    let mut server = crate::support::TestServer::spawn_in(
        &data,
        &["--bind", "0.0.0.0:0"],
        &[("LAKEHOUSE_KB_LOG_FORMAT", "json")],
    );
    server.wait_healthy();
    assert!(server.stop().success());
    let log = crate::support::server_log(&data);
    assert!(log.contains("beyond this machine"), "{log}");
    assert_json_lines("serve beyond loopback", &log);
}

/// Runs `args` under a pseudo-terminal (util-linux `script`), as a person at a terminal would,
/// with `env`; returns what the terminal showed.
fn on_a_terminal(data: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut line = format!(
        "{} --data {}",
        env!("CARGO_BIN_EXE_lakehouse-kb"),
        data.display()
    );
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    let mut command = Command::new("script");
    command
        .args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("LAKEHOUSE_KB_LOG_FORMAT")
        .env("TERM", "xterm-256color");
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("util-linux script runs");
    assert!(out.status.success(), "{}", stdout(&out));
    stdout(&out)
}

/// Colours and progress animation only for a terminal that wants them: at 669becd `NO_COLOR`
/// and `TERM=dumb` were ignored (coloured logs, an animated import bar).
#[test]
fn no_color_and_a_dumb_terminal_get_no_escape_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = |name: &str| dir.path().join(name);
    let shown = on_a_terminal(&fresh("a"), &["migrate"], &[]);
    assert!(
        shown.contains("\x1b["),
        "a terminal gets colours: {shown:?}"
    );
    for env in [[("NO_COLOR", "1")], [("TERM", "dumb")]] {
        let shown = on_a_terminal(&fresh(env[0].0), &["migrate"], &env);
        assert!(shown.contains("migrating database schema"), "{shown:?}");
        assert!(!shown.contains('\x1b'), "{env:?}: {shown:?}");
    }
    let legacy = LEGACY_DATA;
    let shown = on_a_terminal(
        &fresh("import"),
        &["import", "--from", legacy],
        &[("TERM", "dumb")],
    );
    assert!(!shown.contains('\x1b'), "{shown:?}");
    assert!(shown.contains("total:"), "{shown:?}");
}

#[test]
fn help_documents_every_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_lakehouse-kb"))
        .arg("--help")
        .output()
        .unwrap();
    let text = stdout(&out);
    for word in [
        "serve",
        "import",
        "export",
        "migrate",
        "check",
        "backup",
        "LAKEHOUSE_KB_DATA",
        "LAKEHOUSE_KB_LOG",
        "--cache-mb",
    ] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
}

#[test]
fn settings_come_from_the_environment() {
    // Everything from the environment, as the systemd unit does it: a boolean flag's variable
    // takes 1 as well as true.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_lakehouse-kb"))
        .arg("migrate")
        .env("LAKEHOUSE_KB_DATA", &data)
        .env("LAKEHOUSE_KB_MIGRATE_DRY_RUN", "1")
        .env("LAKEHOUSE_KB_QUICK_REPAIR", "off")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("dry run: nothing changed"), "{text}");
    assert!(!data.exists());
}

/// Found by a review at 3457f34: a command's lines on stdout were `println!`, which panics when
/// stdout cannot be written (`> /dev/full`, a pipe whose reader left): `serve` died on its
/// first line (exit 101, its log on the disk that had just filled), and `check` exited 101
/// after checking. Now a line that cannot be written is dropped; the exit status is the
/// command's.
#[test]
fn a_stdout_that_cannot_be_written_changes_no_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
    let body = r#"{"source":"bot","event_kind":"cycle"}"#;
    store
        .write(&[Put::from(event_record(body.as_bytes(), 0).unwrap())])
        .unwrap();
    drop(store);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lakehouse-kb"))
        .arg("--data")
        .arg(dir.path())
        .arg("check")
        .env_remove("LAKEHOUSE_KB_DATA")
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // An export whose file fails (a link where `_kb` should be), its stderr full too: exit 1.
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::os::unix::fs::symlink(dir.path(), out_dir.join("_kb")).unwrap();
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let out = Command::new(env!("CARGO_BIN_EXE_lakehouse-kb"))
        .arg("--data")
        .arg(dir.path())
        .args(["export", "--out"])
        .arg(&out_dir)
        .env_remove("LAKEHOUSE_KB_DATA")
        .env_remove("LAKEHOUSE_KB_EXPORT_OUT")
        .stdout(full())
        .stderr(full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
