//! Smoke runs of the benchmark tools at tiny sizes: CI proves they start the real server, load
//! it, measure and report, without asserting any figure. They run against the server binary
//! that `cargo test --workspace` builds next to them (target/debug/lakehouse-kb).

use std::process::Command;

fn run_smoke(tool: &str) -> String {
    let output = Command::new(tool)
        .arg("--smoke")
        .output()
        .expect("running the tool");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{tool} --smoke failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn loadgen_smoke() {
    let stdout = run_smoke(env!("CARGO_BIN_EXE_loadgen"));
    assert!(stdout.contains("POST /event:"), "{stdout}");
    assert!(stdout.contains("POST /verdicts:"), "{stdout}");
    assert!(stdout.contains("| requests/commit |"), "{stdout}");
}

#[test]
fn query_bench_smoke() {
    let stdout = run_smoke(env!("CARGO_BIN_EXE_query-bench"));
    assert!(stdout.contains("PR history"), "{stdout}");
    assert!(stdout.contains("sig_hash lookup"), "{stdout}");
    assert!(stdout.contains("| 300 |"), "{stdout}");
}

#[test]
fn compare_smoke() {
    // Every part at a tiny scale: lakehouse-kb, the legacy observer (Node.js), the no-op
    // server, the storage-layer workers, and a dataset whose exports are checked byte-equal to
    // the legacy files and whose history answers are checked equal across systems.
    let output = Command::new(env!("CARGO_BIN_EXE_compare"))
        .args([
            "all",
            "--clients",
            "1,2",
            "--warmup",
            "0.1",
            "--seconds",
            "0.3",
        ])
        .args(["--batches", "1,4", "--storage-seconds", "0.3"])
        .args(["--sizes", "300", "--lookups", "50", "--scans", "2"])
        .output()
        .expect("running compare");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "compare failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for needle in [
        "| 2 | legacy observer + fdatasync |",
        "| 2 | no-op axum (ceiling) |",
        "| 4 | SQLite (WAL, FULL) |",
        "| 4 | raw redb (one table) |",
        "| 300 |",
        "import rows/s, SQLite",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing from\n{stdout}");
    }
}
