//! The real `lakehouse-kb` binary: migrate (plan, run, refuse a newer file) and check.

use std::path::Path;
use std::process::{Command, Output};

use lakehouse_kb::ingest::event_record;
use lakehouse_kb::store::{Put, Store, StoreOptions, tables};

pub fn kb(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lakehouse-kb"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("LAKEHOUSE_KB_DATA")
        .output()
        .expect("the lakehouse-kb binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

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
        txn.open_table(tables::EVENTS_BY_KIND)
            .unwrap()
            .remove(("cycle", 1))
            .unwrap();
        txn.commit().unwrap();
    }
    let out = kb(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("problem: event seq 1 is missing from events_by_kind"),
        "{text}"
    );
    assert!(text.contains("check FAILED"), "{text}");
}

#[test]
fn check_without_a_database_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = kb(&dir.path().join("nope"), &["check"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
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
