//! Findings-memory benchmark (issue 18): `POST /prs/{n}/findings/check` (20 findings, a PR with
//! 50 audits) latency over HTTP against the real release server, and the cost the memory adds
//! to `POST /verdicts` as a ratio in the same run. Figures go to docs/BENCHMARKS.md.
//!
//! cargo build --release -p lakehouse-kb -p lakehouse-kb-tools
//! target/release/findings-bench

/// The service's allocator (see `src/main.rs`), so that the store runs here as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use lakehouse_kb_tools::findingsbench::{self, FindingsConfig};
use lakehouse_kb_tools::{load_average, machine, server};

#[derive(Debug, Parser)]
#[command(
    about = "Findings memory: the check's latency over HTTP and what remembering costs a write"
)]
struct Args {
    /// The server binary (default: lakehouse-kb next to this executable)
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Other PRs stored before the measurements
    #[arg(long, default_value_t = 2_000)]
    background_prs: u64,
    /// Audits of each other PR
    #[arg(long, default_value_t = 5)]
    audits_per_pr: usize,
    /// Audits of the PR the check asks about
    #[arg(long, default_value_t = 50)]
    audits: usize,
    /// Findings per check request
    #[arg(long, default_value_t = 20)]
    check_findings: usize,
    /// Timed check requests
    #[arg(long, default_value_t = 2_000)]
    checks: usize,
    /// Findings per verdict of the write measurement
    #[arg(long, default_value_t = 5)]
    write_findings: usize,
    /// Client counts of the write measurement
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
    /// Rounds per client count (each variant once per round)
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Seconds per variant and round
    #[arg(long, default_value_t = 3.0)]
    round_secs: f64,
    /// Verdicts per Store::write in the in-process measurement
    #[arg(long, default_value_t = 500)]
    store_batch: usize,
    /// Batches per variant in the in-process measurement
    #[arg(long, default_value_t = 10)]
    store_batches: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the temporary data directories (default: the system temp dir)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A tiny run that proves the tool works
    #[arg(long)]
    smoke: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = FindingsConfig {
        bin: server::locate_binary(args.bin.as_deref())?,
        dir: args.dir,
        background_prs: args.background_prs,
        audits_per_pr: args.audits_per_pr,
        audits: args.audits,
        check_findings: args.check_findings,
        checks: args.checks,
        write_findings: args.write_findings,
        clients: args.clients,
        rounds: args.rounds,
        round: Duration::from_secs_f64(args.round_secs),
        store_batch: args.store_batch,
        store_batches: args.store_batches,
        seed: args.seed,
    };
    if args.smoke {
        config.background_prs = 20;
        config.audits = 10;
        config.checks = 20;
        config.clients = vec![1, 2];
        config.rounds = 2;
        config.round = Duration::from_millis(200);
        config.store_batch = 20;
        config.store_batches = 2;
    }
    println!("{}; load average {}", machine(), load_average());
    println!("server: {}; seed {}\n", config.bin.display(), config.seed);
    let result = findingsbench::run(&config, &mut |step| eprintln!("findings-bench: {step}"))?;
    findingsbench::print(&result, &config);
    println!("load average at end: {}", load_average());
    Ok(())
}
