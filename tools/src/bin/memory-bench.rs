//! Review-memory benchmark (issue 17): `/neighbors` latency over HTTP against the real release
//! server on N stored verdicts with 3 claims each. Figures go to docs/BENCHMARKS.md.
//!
//! cargo build --release -p lakehouse-kb -p lakehouse-kb-tools
//! target/release/memory-bench --verdicts 100000

/// The service's allocator (see `src/main.rs`), so that the store loads here as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::Parser;
use lakehouse_kb_tools::memorybench::{self, MemoryConfig};
use lakehouse_kb_tools::{fmt_duration, load_average, machine, print_table, server};

#[derive(Debug, Parser)]
#[command(about = "Neighbours by similar claims: latency over HTTP on a large memory")]
struct Args {
    /// The server binary (default: lakehouse-kb next to this executable)
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Verdicts stored before the queries
    #[arg(long, default_value_t = 100_000)]
    verdicts: usize,
    /// Claims per verdict and per query
    #[arg(long, default_value_t = 3)]
    claims: usize,
    /// Timed queries per route
    #[arg(long, default_value_t = 2_000)]
    queries: usize,
    /// Audits per PR
    #[arg(long, default_value_t = 4)]
    audits_per_pr: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the temporary data directory (default: the system temp dir)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A tiny run (500 verdicts, 50 queries) that proves the tool works
    #[arg(long)]
    smoke: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (verdicts, queries) = if args.smoke {
        (500, 50)
    } else {
        (args.verdicts, args.queries)
    };
    let config = MemoryConfig {
        bin: server::locate_binary(args.bin.as_deref())?,
        dir: args.dir,
        verdicts,
        claims: args.claims,
        queries,
        audits_per_pr: args.audits_per_pr,
        seed: args.seed,
    };
    println!("{}; load average {}", machine(), load_average());
    let result = memorybench::run(&config, &mut |step| eprintln!("memory-bench: {step}"))?;
    println!(
        "loaded {} verdicts in {} ({:.0} MiB on disk); the commonest term is in {:.1}% of the \
         claims",
        result.verdicts,
        fmt_duration(result.load),
        result.db_mib,
        result.commonest_term_share * 100.0
    );
    print_table(
        &[
            "route",
            "verdicts × claims",
            "p50",
            "p95",
            "p99",
            "neighbours",
        ],
        &memorybench::table(&result),
    );
    Ok(())
}
