//! Smoke runs of the benchmark tools at tiny sizes: CI proves they start the real server, load
//! it, measure and report, without asserting any figure. They run against the server binary
//! that `cargo test --workspace` builds next to them (target/debug/lakehouse-kb).

use std::process::Command;

/// Runs `tool` with `args`; fails the test unless it succeeds; its stdout.
fn run(tool: &str, args: &[&str]) -> String {
    let output = Command::new(tool)
        .args(args)
        .output()
        .expect("running the tool");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{tool} {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn run_smoke(tool: &str) -> String {
    run(tool, &["--smoke"])
}

#[test]
fn loadgen_smoke() {
    let stdout = run_smoke(env!("CARGO_BIN_EXE_loadgen"));
    assert!(stdout.contains("POST /event:"), "{stdout}");
    assert!(stdout.contains("POST /verdicts:"), "{stdout}");
    assert!(stdout.contains("| requests/commit |"), "{stdout}");
}

#[test]
fn loadgen_smoke_with_heavy_clients_beside() {
    let stdout = run(
        env!("CARGO_BIN_EXE_loadgen"),
        &["--smoke", "--routes", "event", "--heavy-clients", "1"],
    );
    assert!(stdout.contains("POST /event:"), "{stdout}");
    assert!(stdout.contains("heavy batches answered"), "{stdout}");
}

#[test]
fn loadgen_smoke_with_heavy_readers_beside() {
    let stdout = run(
        env!("CARGO_BIN_EXE_loadgen"),
        &["--smoke", "--routes", "event", "--heavy-readers", "1"],
    );
    assert!(stdout.contains("POST /event:"), "{stdout}");
    assert!(stdout.contains("large answers read"), "{stdout}");
    assert!(stdout.contains("server peak RSS"), "{stdout}");
}

#[test]
fn findings_bench_smoke() {
    let stdout = run_smoke(env!("CARGO_BIN_EXE_findings-bench"));
    assert!(stdout.contains("POST /prs/{n}/findings/check"), "{stdout}");
    assert!(stdout.contains("| 2 |"), "{stdout}");
    assert!(
        stdout.contains("Store::write, batches of 20 verdicts"),
        "{stdout}"
    );
}

#[test]
fn query_bench_smoke() {
    let stdout = run_smoke(env!("CARGO_BIN_EXE_query-bench"));
    assert!(stdout.contains("PR history"), "{stdout}");
    assert!(stdout.contains("sig_hash lookup"), "{stdout}");
    assert!(stdout.contains("| 300 |"), "{stdout}");
}

#[test]
fn memory_bench_smoke() {
    let stdout = run_smoke(env!("CARGO_BIN_EXE_memory-bench"));
    assert!(stdout.contains("| POST /neighbors | 500 × 3 |"), "{stdout}");
    assert!(stdout.contains("| GET /prs/{n}/neighbors |"), "{stdout}");
}

#[test]
fn cost_bench_smoke() {
    let stdout = run_smoke(env!("CARGO_BIN_EXE_cost-bench"));
    assert!(stdout.contains("| re-audits of one head |"), "{stdout}");
    assert!(stdout.contains("| new heads |"), "{stdout}");
}

#[test]
fn compare_smoke() {
    // Every part at a tiny scale: lakehouse-kb, the legacy observer (Node.js), the no-op
    // server, the storage-layer workers, and a dataset whose exports are checked byte-equal to
    // the legacy files and whose history answers are checked equal across systems.
    #[rustfmt::skip]
    let stdout = run(env!("CARGO_BIN_EXE_compare"), &[
        "all",
        "--clients", "1,2", "--warmup", "0.1", "--seconds", "0.3",
        "--batches", "1,4", "--storage-seconds", "0.3",
        "--sizes", "300", "--lookups", "50", "--scans", "2",
    ]);
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

#[test]
fn compare_history_verdicts_only_without_bulk() {
    // The large-size mode: a verdicts-only dataset, history answers checked equal across
    // systems, export and import left out above `--bulk-up-to`.
    #[rustfmt::skip]
    let stdout = run(env!("CARGO_BIN_EXE_compare"), &[
        "history", "--mix", "verdicts", "--bulk-up-to", "100",
        "--sizes", "100,300", "--lookups", "50", "--scans", "2",
    ]);
    assert!(stdout.contains("only (each with its KB row"), "{stdout}");
    // Every verdict brings one KB row and one ops line: 300 verdicts, 600 legacy lines.
    assert!(stdout.contains("| 300 | 600 |"), "{stdout}");
    // The bulk table has the 100-verdict dataset's 200 rows and nothing for 300 verdicts.
    let bulk = stdout
        .split("Full export")
        .nth(1)
        .expect("the export and import table");
    assert!(bulk.contains("| 200 |"), "{bulk}");
    assert!(!bulk.contains("| 600 |"), "{bulk}");
}

/// export-bench at 2,000 lines: it imports, writes the store's floor, exports (checking the
/// export byte for byte against the legacy files) and exports incrementally.
#[test]
fn export_bench_small_run() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = run(
        env!("CARGO_BIN_EXE_export-bench"),
        &[
            "--rows",
            "2000",
            "--repeats",
            "2",
            "--new-rows",
            "10",
            "--compare-batch",
            "0",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    for row in [
        "| import (",
        "store floor: the ",
        "index entries, in key order",
        "| full export (fsync'd) |",
        "| 2000 |",
    ] {
        assert!(stdout.contains(row), "{row}: {stdout}");
    }
}
