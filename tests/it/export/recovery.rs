//! Every recovery path of a file: a torn tail, a tail someone else appended, a file cut or
//! edited by hand, missing, or a stranger's; concurrent runs.

use super::*;

#[test]
fn a_torn_tail_is_cut_and_its_rows_written_once() {
    let (_dir, store, job) = exported(90);
    let path = job.out_dir().join(OUTCOMES);
    let exported_through = store.checkpoint("outcomes").unwrap().seq;
    load(&store, 5, 6);
    // What a crash mid-append leaves: the first new row, then the start of the second.
    let mut new_lines = Vec::new();
    store
        .for_each_outcome_line(exported_through, |_, line| {
            new_lines.push(format!("{line}\n"));
            Ok::<_, lakehouse_kb::store::StoreError>(())
        })
        .unwrap();
    assert_eq!(new_lines.len(), 4);
    let torn = format!("{}{}", new_lines[0], &new_lines[1][..10]);
    let torn = torn.as_bytes();
    append_to(&path, torn);
    let report = job.run().unwrap();
    assert_eq!(
        (
            report.outcomes.action,
            report.outcomes.bytes_truncated,
            report.outcomes.rows_written
        ),
        (Action::Appended, torn.len() as u64, 4)
    );
    assert!(reason(&report.outcomes).starts_with("cut "), "{report:?}");
    assert_matches_clean_export(&store, job.out_dir());
    assert_nothing_kept(&job.out_dir().join("_kb"));
}

/// Bytes beyond the checkpoint that the export did not write (someone else appended, or the
/// file is a copy of the rows that grew elsewhere) are cut too, but not lost: the file is kept
/// aside first.
#[test]
fn a_tail_someone_else_appended_is_kept_aside_then_cut() {
    let (_dir, store, job) = exported(90);
    let path = job.out_dir().join(OUTCOMES);
    let before = std::fs::read(&path).unwrap();
    let theirs = b"{\"sig_hash\":\"late\",\"appended\":\"by someone else\"}\n";
    append_to(&path, theirs);
    load(&store, 5, 3);
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.bytes_truncated, theirs.len() as u64);
    assert_eq!(report.outcomes.rows_written, 2);
    assert!(reason(&report.outcomes).contains("kept as"), "{report:?}");
    assert_matches_clean_export(&store, job.out_dir());
    assert_kept_aside(
        &job.out_dir().join("_kb"),
        &[before.as_slice(), theirs].concat(),
    );
}

/// The checkpoint describes content, not a directory: exporting into a second directory that
/// holds the same rows plus a line of its own must not take that line for a torn tail.
#[test]
fn a_second_directory_with_a_line_of_its_own_keeps_it() {
    let (dir, store, job) = exported(90);
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("_kb")).unwrap();
    let mut legacy = std::fs::read(job.out_dir().join(OUTCOMES)).unwrap();
    legacy.extend_from_slice(b"{\"sig_hash\":\"late\"}\n");
    std::fs::write(elsewhere.join(OUTCOMES), &legacy).unwrap();
    ExportJob::new(store.clone(), elsewhere.clone())
        .run()
        .unwrap();
    assert_matches_clean_export(&store, &elsewhere);
    assert_kept_aside(&elsewhere.join("_kb"), &legacy);
}

#[test]
fn a_file_cut_by_hand_is_rebuilt() {
    let (_dir, store, job) = exported(90);
    let path = job.out_dir().join(OPS);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let report = job.run().unwrap();
    assert_eq!(report.ops.action, Action::Rebuilt);
    assert!(reason(&report.ops).contains("shorter"));
    assert_eq!(report.ops.rows_written, 60);
    assert_eq!(report.outcomes.action, Action::Unchanged);
    assert_matches_clean_export(&store, job.out_dir());
    assert!(!job.out_dir().join("_observer/ops.jsonl.tmp").exists());
    // What was left of the file is a prefix of the rows: nothing to keep.
    assert_nothing_kept(&job.out_dir().join("_observer"));
}

/// A rebuilt file has the permissions of the one it replaces, not the process umask's: a
/// review found a legacy file readable by the report scripts' user (0644) rebuilt as 0600
/// under the shipped unit's umask, and the scripts refused.
#[test]
fn a_rebuilt_file_keeps_the_permissions_of_the_one_it_replaces() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, store, job) = exported(90);
    let path = job.out_dir().join(OPS);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(file.metadata().unwrap().len() - 100).unwrap();
    // Not what the umask of this process makes of the export's 0666.
    file.set_permissions(std::fs::Permissions::from_mode(0o640))
        .unwrap();
    drop(file);
    let report = job.run().unwrap();
    assert_eq!(report.ops.action, Action::Rebuilt);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "{mode:o}");
    assert_matches_clean_export(&store, job.out_dir());
    // A file made read-only is rebuilt writable by its owner: the export appends to it next.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(file.metadata().unwrap().len() - 100).unwrap();
    file.set_permissions(std::fs::Permissions::from_mode(0o444))
        .unwrap();
    drop(file);
    let report = job.run().unwrap();
    assert_eq!(report.ops.action, Action::Rebuilt, "{report:?}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "{mode:o}");
}

/// A file shorter than its checkpoint that is not a cut copy of the rows (someone else's file
/// in the export's place) is kept aside before the rebuild.
#[test]
fn a_shorter_file_that_is_not_the_rows_is_kept_aside() {
    let (_dir, store, job) = exported(90);
    let path = job.out_dir().join(OUTCOMES);
    std::fs::write(&path, "{\"precious\":1}\n").unwrap();
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Rebuilt);
    assert!(reason(&report.outcomes).contains("kept as"), "{report:?}");
    assert_matches_clean_export(&store, job.out_dir());
    assert_kept_aside(&job.out_dir().join("_kb"), b"{\"precious\":1}\n");
}

#[test]
fn a_file_edited_by_hand_is_rebuilt() {
    let (_dir, store, job) = exported(90);
    let path = job.out_dir().join(OUTCOMES);
    let mut bytes = std::fs::read(&path).unwrap();
    // Same length, one byte changed near the end: only the fingerprint can tell.
    let at = bytes.len() - 30;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&path, &bytes).unwrap();
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Rebuilt);
    assert!(reason(&report.outcomes).contains("changed"), "{report:?}");
    assert_matches_clean_export(&store, job.out_dir());
    // The edit is kept.
    assert_kept_aside(&job.out_dir().join("_kb"), &bytes);
}

/// The documented limit of the constant-cost check: an edit of the same length further than
/// 4 KiB before the end is not seen.
#[test]
fn an_edit_before_the_fingerprinted_tail_goes_unseen() {
    let (_dir, _store, job) = exported(300);
    let path = job.out_dir().join(OUTCOMES);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 2 * 4096);
    bytes[10] = b' ';
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(job.run().unwrap().outcomes.action, Action::Unchanged);
}

#[test]
fn a_missing_file_is_rebuilt() {
    let (_dir, store, job) = exported(30);
    std::fs::remove_dir_all(job.out_dir().join("_kb")).unwrap();
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Rebuilt);
    assert!(reason(&report.outcomes).contains("missing"));
    assert_matches_clean_export(&store, job.out_dir());
}

/// A file this database never exported into is not destroyed: it may hold rows that were never
/// imported.
#[test]
fn a_strangers_file_is_kept_aside_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(dir.path()));
    load(&store, 6, 30);
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("_kb")).unwrap();
    std::fs::write(out.join(OUTCOMES), "{\"theirs\":1}\n").unwrap();
    let report = ExportJob::new(store.clone(), out.clone()).run().unwrap();
    assert_eq!(report.outcomes.action, Action::Rebuilt);
    assert_kept_aside(&out.join("_kb"), b"{\"theirs\":1}\n");
    assert_matches_clean_export(&store, &out);
}

#[test]
fn concurrent_runs_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(dir.path()));
    load(&store, 7, 3000);
    let job = Arc::new(ExportJob::new(store.clone(), dir.path().join("out")));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let job = job.clone();
            std::thread::spawn(move || job.run().unwrap())
        })
        .collect();
    let reports: Vec<ExportReport> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let total: u64 = reports.iter().map(|r| r.outcomes.rows_written).sum();
    assert_eq!(total, 2000, "every row written exactly once");
    assert_matches_clean_export(&store, job.out_dir());
}
