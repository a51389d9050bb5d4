//! The crash harness from the command line: kill -9 the real server under concurrent writers,
//! restart it, verify nothing acknowledged was lost or duplicated. See `tools/src/crash.rs`.
//!
//! cargo build --release && cargo run --release -p lakehouse-kb-tools --bin crashtest -- --kills 200

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lakehouse_kb_tools::crash::{Config, run};

#[derive(Debug, Parser)]
struct Args {
    /// The lakehouse-kb binary (default: next to this tool)
    #[arg(long)]
    server: Option<PathBuf>,
    /// Server kills
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Concurrent writers
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Shortest life of a server before the kill, ms
    #[arg(long, default_value_t = 100)]
    min_life_ms: u64,
    /// Longest life of a server before the kill, ms
    #[arg(long, default_value_t = 1500)]
    max_life_ms: u64,
    /// Verdicts in the version-1 file the first server migrates (and is killed during)
    #[arg(long, default_value_t = 200_000)]
    prefill_v1_verdicts: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Data directory to use (default: a temporary one, removed when the run passes)
    #[arg(long)]
    data: Option<PathBuf>,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let server = match args.server {
        Some(server) => server,
        None => std::env::current_exe()?.with_file_name("lakehouse-kb"),
    };
    anyhow::ensure!(
        server.exists(),
        "{} not found (build it, or pass --server)",
        server.display()
    );
    let temp = tempfile::tempdir()?;
    let data = args.data.unwrap_or_else(|| temp.path().join("data"));
    let config = Config {
        server,
        data: data.clone(),
        writers: args.writers,
        kills: args.kills,
        life_ms: (args.min_life_ms, args.max_life_ms.max(args.min_life_ms)),
        prefill_v1_verdicts: args.prefill_v1_verdicts,
        kill_during_export: true,
        extra_serve_args: vec!["--export-interval".into(), "300ms".into()],

        seed: args.seed,
    };
    let started = std::time::Instant::now();
    let report = run(&config)?;
    let mut recovery = report.recovery_ms.clone();
    recovery.sort_unstable();
    println!("crash harness: {:.1} s", started.elapsed().as_secs_f64());
    println!(
        "kills: {} ({} during the migration, {} during an export)",
        report.kills, report.kills_during_migration, report.kills_during_export
    );
    for (kind, n) in &report.acknowledged {
        println!("acknowledged {kind}: {n}");
    }
    println!(
        "unacknowledged writes: {} ({} found stored whole, the rest wholly absent)",
        report.unacknowledged, report.unacknowledged_present
    );
    println!(
        "writes retried with their idempotency key (no answer or 503): {}",
        report.retried
    );
    println!(
        "lost: {}  duplicated: {}  partly stored: {}",
        report.lost, report.duplicated, report.torn
    );
    println!(
        "restart to healthy: median {} ms, max {} ms",
        recovery.get(recovery.len() / 2).copied().unwrap_or(0),
        recovery.last().copied().unwrap_or(0)
    );
    println!(
        "check after the run: {}",
        if report.check_passed {
            "passed"
        } else {
            "FAILED"
        }
    );
    match report.export_matches {
        Some(true) => println!("exported files equal a clean export: yes"),
        Some(false) => println!("exported files equal a clean export: NO"),
        None => println!("exported files: not compared (no export command)"),
    }
    for problem in report.problems.iter().take(20) {
        println!("problem: {problem}");
    }
    if report.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!("data kept at {}", data.display());
        std::mem::forget(temp);
        Ok(ExitCode::FAILURE)
    }
}
