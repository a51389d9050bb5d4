//! The export job on real files: byte compatibility with the seed's JavaScript (computed by Node
//! from the seed's own expressions), incremental runs, every recovery path (torn tail, file cut
//! or edited by hand, missing, a stranger's file), and crashes of the real binary between the
//! append and the checkpoint (abort hook) or in the middle of a line (SIGKILL).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use lakehouse_kb::export::{
    APPENDED_BEFORE_WRITE, Action, CrashHook, ExportFile, ExportJob, ExportReport, FileReport,
    NotStored,
};
use lakehouse_kb::intake::{event_record, outcome_record, verdict_record};
use lakehouse_kb::store::{Put, Store};

use crate::support::{
    EXPORT_CRASH_CHILD, InProcessServer, LEGACY_VERDICTS, OPS, OUTCOMES, assert_same_bytes,
    eventually, kb, load, open_store, spawn_export_crash,
};

mod compat;
mod crash;
mod faults;
mod recovery;
mod serve;
mod takein;

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap()
}

/// Both files as a clean export writes them: a fresh directory, the same store.
fn clean_export(store: &Arc<Store>) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    ExportJob::new(store.clone(), dir.path().to_owned())
        .run()
        .unwrap();
    (read(dir.path(), OUTCOMES), read(dir.path(), OPS))
}

fn assert_matches_clean_export(store: &Arc<Store>, out: &Path) {
    let (outcomes, ops) = clean_export(store);
    assert_same_bytes("outcomes.jsonl", &read(out, OUTCOMES), &outcomes);
    assert_same_bytes("ops.jsonl", &read(out, OPS), &ops);
}

/// Sets up a store with rows, exported once into `out`.
fn exported(rows: usize) -> (tempfile::TempDir, Arc<Store>, ExportJob) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(dir.path()));
    load(&store, 4, rows);
    let job = ExportJob::new(store.clone(), dir.path().join("out"));
    job.run().unwrap();
    (dir, store, job)
}

/// Why the run did what it did to a file (the report must say).
fn reason(file: &FileReport) -> &str {
    file.reason.as_deref().expect("a reason")
}

/// Names of the files kept aside in `dir` (`NAME.replaced-{ms}`), sorted.
fn kept_aside(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".replaced-"))
        .collect();
    names.sort();
    names
}

/// Fails unless `dir` holds exactly one file kept aside, holding `bytes`.
fn assert_kept_aside(dir: &Path, bytes: &[u8]) {
    let kept = kept_aside(dir);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_same_bytes(&kept[0], &std::fs::read(dir.join(&kept[0])).unwrap(), bytes);
}

/// Fails if `dir` holds a file kept aside.
fn assert_nothing_kept(dir: &Path) {
    assert_eq!(kept_aside(dir), Vec::<String>::new());
}

/// What the service gives the export to take appended lines in with: stores them in `store`;
/// with `crash_after`, then says the writer is busy, as a process that died once they were
/// stored, before the file's checkpoint moved.
fn storing(store: &Arc<Store>, crash_after: bool) -> lakehouse_kb::export::Adopter {
    let store = store.clone();
    Arc::new(move |puts: Vec<Put>| {
        store.write(&puts).expect("stored");
        if crash_after {
            return Err(NotStored::Busy("crashed".into()));
        }
        Ok(())
    })
}

/// Posts one outcome row, stored (201).
#[track_caller]
fn post_row(server: &crate::support::Http, row: &str) {
    let answer = server.post_json("/outcomes", row.to_owned());
    assert_eq!(answer.status, 201, "{}", answer.text);
}

/// Appends `bytes` to the file at `path`.
fn append_to(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}
