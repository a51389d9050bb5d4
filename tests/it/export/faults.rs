//! What the export never does: write through a link, let one file's fault stop the other,
//! overwrite a file a foreign writer keeps writing; and how `/healthz` and `/metrics` say so.

use super::*;

/// The files the export must never touch: everything outside its directory.
fn outside_file(dir: &Path) -> std::path::PathBuf {
    let outside = dir.join("outside.txt");
    std::fs::write(&outside, b"not the export's\n").unwrap();
    outside
}

/// A symlink at `_kb/outcomes.jsonl.tmp` pointing outside: a rebuild used to write its target
/// through it and then rename the link into place. Now the link is an error for that file
/// alone, left as it is, and its target is untouched; ops.jsonl is exported all the same.
#[test]
fn a_link_at_the_temporary_file_is_refused_and_its_target_untouched() {
    let (dir, store, job) = exported(90);
    let outside = outside_file(dir.path());
    let tmp = job.out_dir().join("_kb/outcomes.jsonl.tmp");
    std::os::unix::fs::symlink(&outside, &tmp).unwrap();
    // Cut by hand: the next run rebuilds through the temporary file.
    std::fs::write(job.out_dir().join(OUTCOMES), b"").unwrap();
    load(&store, 7, 3);
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Failed, "{report:?}");
    let error = report.outcomes.error.as_deref().unwrap();
    assert!(error.contains("symbolic link"), "{error}");
    assert_eq!(report.ops.action, Action::Appended, "{report:?}");
    assert_eq!(std::fs::read(&outside).unwrap(), b"not the export's\n");
    assert!(
        std::fs::symlink_metadata(&tmp)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(job.problems().len(), 1);
    assert_eq!(job.problems()[0].file, OUTCOMES);
    // Once the link is gone, the file is rebuilt and the problem cleared.
    std::fs::remove_file(&tmp).unwrap();
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Rebuilt, "{report:?}");
    assert!(job.problems().is_empty());
    assert_matches_clean_export(&store, job.out_dir());
}

/// A dangling symlink at `_observer/ops.jsonl`: the export used to create its target. Now it
/// is refused, the target never created, and outcomes.jsonl (the other, independent file) is
/// exported.
#[test]
fn a_dangling_link_at_ops_is_refused_and_its_target_never_created() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(dir.path()));
    load(&store, 8, 30);
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("_observer")).unwrap();
    let target = dir.path().join("created-by-the-export");
    std::os::unix::fs::symlink(&target, out.join(OPS)).unwrap();
    let job = ExportJob::new(store.clone(), out.clone());
    let report = job.run().unwrap();
    assert_eq!(report.ops.action, Action::Failed, "{report:?}");
    assert!(report.failed());
    assert!(!target.exists(), "the export created the link's target");
    assert_eq!(report.outcomes.action, Action::Appended, "{report:?}");
    let (outcomes, _) = clean_export(&store);
    assert_same_bytes("outcomes.jsonl", &read(&out, OUTCOMES), &outcomes);
}

/// `_kb` itself a link to a directory elsewhere: nothing is written through it.
#[test]
fn a_link_instead_of_the_kb_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(dir.path()));
    load(&store, 9, 30);
    let out = dir.path().join("out");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("_kb")).unwrap();
    let report = ExportJob::new(store, out.clone()).run().unwrap();
    assert_eq!(report.outcomes.action, Action::Failed, "{report:?}");
    assert!(
        report
            .outcomes
            .error
            .as_deref()
            .unwrap()
            .contains("symbolic link"),
        "{report:?}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(report.ops.action, Action::Appended, "{report:?}");
}

/// A fault on outcomes.jsonl (here: a directory where the file should be, as an immutable or
/// unwritable file would be) used to stop the run before ops.jsonl: the files are independent.
#[test]
fn a_fault_on_outcomes_does_not_stop_ops() {
    let (_dir, store, job) = exported(30);
    let path = job.out_dir().join(OUTCOMES);
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    load(&store, 10, 9);
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Failed, "{report:?}");
    assert_eq!(report.ops.action, Action::Appended, "{report:?}");
    assert_eq!(report.ops.rows_written, 6);
    let (_, ops) = clean_export(&store);
    assert_same_bytes("ops.jsonl", &read(job.out_dir(), OPS), &ops);
}

/// A foreign writer that keeps appending used to cost a full copy kept aside per append. Now
/// one copy is kept; foreign bytes found again while it exists pause that file (untouched)
/// until the operator removes the copy; the other file goes on meanwhile.
#[test]
fn a_foreign_writer_that_keeps_writing_pauses_the_file_until_the_copy_is_removed() {
    let (_dir, store, job) = exported(90);
    let kb_dir = job.out_dir().join("_kb");
    let path = job.out_dir().join(OUTCOMES);
    append_to(&path, b"{\"sig_hash\":\"legacy\",\"n\":1}\n");
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Appended, "{report:?}");
    assert_eq!(kept_aside(&kb_dir).len(), 1);

    append_to(&path, b"{\"sig_hash\":\"legacy\",\"n\":2}\n");
    let before = std::fs::read(&path).unwrap();
    load(&store, 11, 6);
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Paused, "{report:?}");
    let error = report.outcomes.error.as_deref().unwrap();
    assert!(error.contains("remove"), "{error}");
    assert!(error.contains(&kept_aside(&kb_dir)[0]), "{error}");
    assert_eq!(kept_aside(&kb_dir).len(), 1, "a second copy was kept");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "a paused file is left alone"
    );
    assert_eq!(report.ops.action, Action::Appended, "{report:?}");
    assert!(job.problems()[0].paused);
    // Paused until an operator acts: another run changes nothing.
    assert_eq!(job.run().unwrap().outcomes.action, Action::Paused);

    // The operator keeps what they need, removes the copy: the export resumes, keeping the
    // file as it now is aside (it holds the second foreign line) and cutting it.
    std::fs::remove_file(kb_dir.join(&kept_aside(&kb_dir)[0])).unwrap();
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Appended, "{report:?}");
    assert!(job.problems().is_empty());
    assert_kept_aside(&kb_dir, &before);
    assert_matches_clean_export(&store, job.out_dir());
}

/// The server reports a file it cannot export in `/healthz` (degraded, still 200: the database
/// takes writes) and in metrics, with no path of the server's in the answer.
#[test]
fn healthz_and_metrics_report_a_file_the_export_cannot_write() {
    let server = crate::support::TestServer::start_with(&["--export-interval", "0"], &[]);
    std::fs::create_dir_all(server.data.join("_observer")).unwrap();
    let target = server.data.join("elsewhere.jsonl");
    let link = server.data.join(OPS);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_eq!(
        server.post_json("/event", r#"{"source":"bot"}"#).status,
        200
    );
    let answer = server.post_json("/export", "");
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["ops"]["action"], "failed", "{}", answer.text);
    assert!(!target.exists());
    let health = server.get("/healthz");
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.json["status"], "degraded", "{}", health.text);
    assert_eq!(health.json["export"][0]["file"], OPS, "{}", health.text);
    assert_eq!(health.json["export"][0]["paused"], false, "{}", health.text);
    assert!(health.text.contains("symbolic link"), "{}", health.text);
    let data = server.data.display().to_string();
    assert!(!health.text.contains(&data), "{}", health.text);
    let metrics = server.get("/metrics").text;
    assert!(
        metrics.contains(r#"lakehousekb_export_file_state{file="ops"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"lakehousekb_export_file_state{file="outcomes"} 0"#),
        "{metrics}"
    );
    crate::support::log_with(&server.data, "symbolic link", 1);

    std::fs::remove_file(&link).unwrap();
    assert_eq!(
        server.post_json("/export", "").json["ops"]["action"],
        "appended"
    );
    let health = server.get("/healthz");
    assert_eq!(health.json["status"], "ok", "{}", health.text);
    assert!(
        server
            .get("/metrics")
            .text
            .contains(r#"lakehousekb_export_file_state{file="ops"} 0"#)
    );
}

/// The last export at shutdown says which file it left behind, however long ago its problem
/// began: a review found a paused `ops.jsonl` logged once when it paused, then a shutdown that
/// said only "last export done" and "stopped cleanly" while an acknowledged event was not in
/// the file.
#[test]
fn a_shutdown_that_leaves_a_file_behind_says_so() {
    let mut server = crate::support::TestServer::start_with(&[], &[]);
    std::fs::create_dir_all(server.data.join("_observer")).unwrap();
    let link = server.data.join(OPS);
    std::os::unix::fs::symlink(server.data.join("elsewhere.jsonl"), &link).unwrap();
    assert_eq!(
        server.post_json("/event", r#"{"source":"bot"}"#).status,
        200
    );
    assert!(server.stop().success());
    let log = crate::support::log_with(&server.data, "the last export left this file", 1);
    let line = log
        .lines()
        .find(|l| l.contains("the last export left this file"))
        .unwrap();
    assert!(
        line.contains("ERROR") && line.contains("ops.jsonl"),
        "{line}"
    );
    assert!(line.contains("symbolic link"), "{line}");
    assert!(
        !log.lines()
            .any(|l| l.contains("the last export left") && l.contains("outcomes.jsonl"))
    );
}

/// A rebuild that fails after the old file was kept aside (here a directory stands where its
/// temporary file goes; a full disk did it in a review) leaves no copy kept aside while the old
/// file is still in place: the next run keeps it aside and rebuilds again. Left there, the copy
/// read as a legacy writer still appending, and the export paused for good.
#[test]
fn a_rebuild_that_fails_after_keeping_the_file_aside_is_tried_again() {
    let (_dir, store, job) = exported(30);
    let path = job.out_dir().join(OUTCOMES);
    let mut edited = std::fs::read(&path).unwrap();
    let near_the_end = edited.len() - 10;
    edited[near_the_end] = b'#';
    std::fs::write(&path, &edited).unwrap();
    let tmp = job.out_dir().join("_kb/outcomes.jsonl.tmp");
    std::fs::create_dir(&tmp).unwrap();
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Failed, "{report:?}");
    assert_nothing_kept(&job.out_dir().join("_kb"));
    assert_eq!(std::fs::read(&path).unwrap(), edited);
    std::fs::remove_dir(&tmp).unwrap();
    let report = job.run().unwrap();
    assert_eq!(report.outcomes.action, Action::Rebuilt, "{report:?}");
    assert_kept_aside(&job.out_dir().join("_kb"), &edited);
    assert_matches_clean_export(&store, job.out_dir());
}
