//! The CI-sized crash run: a few kills of the real server under concurrent writers (one during
//! a schema migration), then nothing acknowledged lost, nothing duplicated, no batch or verdict
//! half-stored, `check` passing. The long run is `crashtest` (docs/RELIABILITY.md).

use lakehouse_kb_tools::crash::{Config, run};

/// The server binary `cargo test --workspace` built next to this test's own executable.
fn server_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let server = profile_dir.join("lakehouse-kb");
    assert!(
        server.exists(),
        "{} is missing: run `cargo build` (or cargo test --workspace)",
        server.display()
    );
    server
}

#[test]
fn kill_nine_under_load_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        server: server_binary(),
        data: dir.path().join("data"),
        writers: 4,
        kills: 4,
        life_ms: (150, 600),
        prefill_v1_verdicts: 20_000,
        kill_during_export: true,
        extra_serve_args: vec!["--export-interval".into(), "200ms".into()],
        seed: 7,
    };
    let report = run(&config).unwrap();
    assert_eq!(report.kills, 4);
    assert!(report.acknowledged.values().sum::<u64>() > 50, "{report:?}");
    assert_eq!(report.export_matches, Some(true), "{report:#?}");
    assert!(report.ok(), "{:#?}", report);
}
