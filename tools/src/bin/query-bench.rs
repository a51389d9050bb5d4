//! Query benchmark (issue 4): PR-history and sig_hash lookup latency at 10k, 100k and 1M
//! stored verdicts, through the store API, over HTTP against the real release server, and by
//! the legacy scan of `outcomes.jsonl`, in the same run. Figures go to docs/BENCHMARKS.md.
//!
//! cargo build --release -p lakehouse-kb -p lakehouse-kb-tools
//! target/release/query-bench --sizes 10000,100000,1000000

/// The service's allocator (see `src/main.rs`), so that the store runs here as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::Parser;
use lakehouse_kb_tools::querybench::{self, QueryConfig};
use lakehouse_kb_tools::{load_average, machine, server};

#[derive(Debug, Parser)]
#[command(about = "History and sig_hash lookup latency against the legacy full-file scan")]
struct Args {
    /// The server binary (default: lakehouse-kb next to this executable)
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Stored verdicts at each measured size
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    sizes: Vec<usize>,
    /// Timed lookups per query and size, through the store and over HTTP
    #[arg(long, default_value_t = 5_000)]
    lookups: usize,
    /// Timed legacy scans per query and size (each reads the whole file)
    #[arg(long, default_value_t = 20)]
    scans: usize,
    /// Average audits per PR (PR numbers span size / this)
    #[arg(long, default_value_t = 4)]
    audits_per_pr: u64,
    /// Puts per transaction while loading
    #[arg(long, default_value_t = 10_000)]
    load_batch: usize,
    /// Seed of the generated traffic and of the lookups
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the temporary data directories (default: the system temp dir)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A tiny run (300 verdicts, 50 lookups, 3 scans) that proves the tool works
    #[arg(long)]
    smoke: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (sizes, lookups, scans) = if args.smoke {
        (vec![300], 50, 3)
    } else {
        (args.sizes, args.lookups, args.scans)
    };
    let config = QueryConfig {
        bin: server::locate_binary(args.bin.as_deref())?,
        dir: args.dir,
        sizes,
        lookups,
        scans,
        audits_per_pr: args.audits_per_pr,
        load_batch: args.load_batch,
        seed: args.seed,
    };
    println!("machine: {}", machine());
    println!("server: {}; seed {}\n", config.bin.display(), config.seed);
    println!("load average at start: {}", load_average());
    let results = querybench::run(&config, |step| {
        eprintln!("{step} (load average {})", load_average())
    })?;
    println!("load average at end: {}\n", load_average());
    querybench::print_report(&results, config.scans);
    Ok(())
}
