//! Flat-cost benchmark (issue 16): per-verdict cost of N re-audits of one head against N new
//! heads, and the latency of an unrelated `POST /event` meanwhile, against the real release
//! server. Figures go to docs/BENCHMARKS.md.
//!
//! cargo build --release -p lakehouse-kb -p lakehouse-kb-tools
//! target/release/cost-bench --verdicts 10000

use std::path::PathBuf;

use clap::Parser;
use lakehouse_kb_tools::costbench::{self, CostConfig};
use lakehouse_kb_tools::{load_average, machine, print_table, server};

#[derive(Debug, Parser)]
#[command(about = "Verdict cost with a head's history growing, and event latency meanwhile")]
struct Args {
    /// The server binary (default: lakehouse-kb next to this executable)
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Verdicts per scenario
    #[arg(long, default_value_t = 10_000)]
    verdicts: usize,
    /// Verdicts per NDJSON batch
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Directory for the temporary data directory (default: the system temp dir)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A tiny run (200 verdicts) that proves the tool works
    #[arg(long)]
    smoke: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (verdicts, batch) = if args.smoke {
        (200, 50)
    } else {
        (args.verdicts, args.batch)
    };
    let config = CostConfig {
        bin: server::locate_binary(args.bin.as_deref())?,
        dir: args.dir,
        verdicts,
        batch,
    };
    println!("{}; load average {}", machine(), load_average());
    let scenarios = costbench::run(&config, &mut |step| eprintln!("cost-bench: {step}"))?;
    print_table(
        &[
            "verdicts",
            "per verdict, first tenth",
            "per verdict, last tenth",
            "per verdict, all",
            "POST /event p50",
            "POST /event p99",
        ],
        &costbench::table(&scenarios),
    );
    Ok(())
}
