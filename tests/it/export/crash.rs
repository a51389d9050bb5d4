//! Crashes of the real binary between the append and the checkpoint (abort hook) or in the
//! middle of a line (SIGKILL), then a rerun.

use super::*;

/// The child process of the crash tests, not a test of its own: without
/// [`EXPORT_CRASH_CHILD`] in its environment it returns at once.
#[test]
fn export_crash_child() {
    let Ok(spec) = std::env::var(EXPORT_CRASH_CHILD) else {
        return;
    };
    let (hook, data) = spec.split_once('\t').unwrap();
    let hook = CrashHook::parse(hook).unwrap_or_else(|| panic!("unknown crash hook {hook:?}"));
    let store = Arc::new(open_store(Path::new(data)));
    let job = ExportJob::new(store, data.into()).with_crash_hook(hook);
    job.run().unwrap();
    panic!("the crash hook never stopped the export");
}

/// Kills an export between the fsync of the appended bytes and the checkpoint (the crash hook
/// aborts there), then runs the real binary's export again: the rows after the checkpoint are cut and written
/// once more, so nothing is doubled or missing.
#[test]
fn abort_between_fsync_and_checkpoint_then_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    {
        let store = open_store(data);
        load(&store, 8, 150);
        ExportJob::new(Arc::new(store), data.to_owned())
            .run()
            .unwrap();
        load(&open_store(data), 9, 60);
    }
    let out = spawn_export_crash(data, "abort-before-checkpoint:outcomes")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the hook should have aborted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("aborting before the outcomes checkpoint")
    );
    let store = open_store(data);
    let checkpoint = store.checkpoint("outcomes").unwrap();
    let on_disk = std::fs::metadata(data.join(OUTCOMES)).unwrap().len();
    assert!(
        on_disk > checkpoint.len,
        "the new rows were appended and fsync'd but not checkpointed"
    );
    drop(store);

    let out = kb(data, &["export"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("longer than its checkpoint"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_matches_clean_export(&Arc::new(open_store(data)), data);
}

/// SIGKILL in the middle of writing a line (the hook pauses there, so the kill lands at a known
/// point): the file ends in a torn line; the next run cuts it and finishes the job.
#[test]
fn sigkill_mid_line_then_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    {
        let store = open_store(data);
        load(&store, 10, 90);
        ExportJob::new(Arc::new(store), data.to_owned())
            .run()
            .unwrap();
        load(&open_store(data), 11, 90);
    }
    kill_export_mid_line(data);
    let out = kb(data, &["export"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_matches_clean_export(&Arc::new(open_store(data)), data);
    assert_nothing_kept(&data.join("_observer"));
}

/// The same in the very first export, before any checkpoint: the torn file holds only this
/// database's rows, so it is cut and appended to, not taken for someone else's.
#[test]
fn sigkill_mid_line_in_the_first_export_then_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    load(&open_store(data), 12, 90);
    kill_export_mid_line(data);
    let out = kb(data, &["export"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("not written by"), "{stderr}");
    assert!(stderr.contains("torn tail"), "{stderr}");
    assert_matches_clean_export(&Arc::new(open_store(data)), data);
    assert_nothing_kept(&data.join("_observer"));
}

/// Runs an export of `data` in a child process and SIGKILLs it while it is paused in the
/// middle of the 20th ops line; checks the file was left with a torn line.
fn kill_export_mid_line(data: &Path) {
    let mut child = spawn_export_crash(data, "pause-mid-line:ops:20")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut paused = false;
    for line in stderr.lines() {
        if line.unwrap().contains("export paused mid-line") {
            paused = true;
            break;
        }
    }
    assert!(paused, "the export never reached the pause");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    let ops = read(data, OPS);
    assert_ne!(
        ops.last(),
        Some(&b'\n'),
        "the kill should leave a torn line"
    );
}
