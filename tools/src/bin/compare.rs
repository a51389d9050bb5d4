//! Side-by-side benchmark of lakehouse-kb against what a team would run instead: the legacy
//! observer (Node.js, JSONL files), SQLite, and the ceilings (raw redb, a no-op axum handler).
//! Figures go to docs/BENCHMARKS.md.
//!
//! cargo build --release --workspace && target/release/compare all

/// The service's allocator (see `src/main.rs`), so that the store runs here as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use lakehouse_kb_tools::compare::{self, CompareConfig, Mix, Part};
use lakehouse_kb_tools::{load_average, machine, server};

#[derive(Debug, Parser)]
#[command(about = "Compare lakehouse-kb with the legacy observer, SQLite and the ceilings")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every part: HTTP ingest, storage-layer ingest, history/export/import/size per dataset
    All(Options),
    /// Durable ingest over HTTP at each client count
    Ingest(Options),
    /// Durable ingest at the storage layer at each commit size
    Storage(Options),
    /// History, export, import and size at each dataset size
    History(Options),
    /// (internal) run one storage-layer job and print its figures as JSON
    #[command(hide = true)]
    Worker { job: String },
    /// (internal) the no-op axum server
    #[command(hide = true)]
    NoopServer,
    /// What one dataset costs on disk: the store table by table, SQLite and the legacy files
    Sizes(Options),
}

#[derive(Debug, clap::Args)]
struct Options {
    /// The lakehouse-kb binary (default: next to this tool)
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Node.js, for the legacy observer
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// Directory for the temporary data (default: the system temp dir)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Concurrent HTTP clients, one ingest cell each
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured seconds per HTTP ingest cell
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Events per commit, one storage-layer cell each
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    batches: Vec<usize>,
    /// Seconds per storage-layer cell
    #[arg(long, default_value_t = 5.0)]
    storage_seconds: f64,
    /// Verdicts per dataset (history, export, import, size)
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    sizes: Vec<usize>,
    /// Timed history lookups per system and size
    #[arg(long, default_value_t = 2000)]
    lookups: usize,
    /// Timed legacy scans per size (each reads the whole file)
    #[arg(long, default_value_t = 5)]
    scans: usize,
    #[arg(long, default_value_t = 4)]
    audits_per_pr: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// What the history datasets hold besides verdicts
    #[arg(long, value_enum, default_value_t = Mix::Mixed)]
    mix: Mix,
    /// Run export and import only on datasets of at most this many verdicts (default: all)
    #[arg(long)]
    bulk_up_to: Option<usize>,
    /// `sizes` only: keep the datasets (`kb/`, `sqlite/`, `legacy/` per size under --dir) to
    /// profile the store, SQLite and the CLI on them, e.g. `lakehouse-kb --data DIR/kb export`
    #[arg(long)]
    keep: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (options, parts) = match args.command {
        Command::Worker { job } => return compare::worker::worker_main(&job),
        Command::NoopServer => return compare::peers::run_noop_server(),
        Command::All(o) => (o, vec![Part::Ingest, Part::Storage, Part::History]),
        Command::Ingest(o) => (o, vec![Part::Ingest]),
        Command::Storage(o) => (o, vec![Part::Storage]),
        Command::History(o) => (o, vec![Part::History]),
        Command::Sizes(o) => (o, vec![]),
    };
    let config = CompareConfig {
        bin: server::locate_binary(options.bin.as_deref())?,
        node: options.node,
        dir: options.dir,
        clients: options.clients,
        warmup: Duration::from_secs_f64(options.warmup),
        seconds: Duration::from_secs_f64(options.seconds),
        batches: options.batches,
        storage_seconds: Duration::from_secs_f64(options.storage_seconds),
        sizes: options.sizes,
        lookups: options.lookups,
        scans: options.scans,
        audits_per_pr: options.audits_per_pr,
        seed: options.seed,
        mix: options.mix,
        bulk_up_to: options.bulk_up_to.unwrap_or(usize::MAX),
        keep: options.keep,
    };
    if parts.is_empty() {
        let dir = lakehouse_kb_tools::temp_dir_in(config.dir.as_deref())?;
        for &n in &config.sizes {
            compare::print_sizes(&config, &dir.path().join(n.to_string()), n)?;
        }
        if config.keep {
            eprintln!("datasets kept under {}", dir.keep().display());
        }
        return Ok(());
    }
    println!("machine: {}", machine());
    println!("load average at start: {}\n", load_average());
    let report = compare::run(&config, &parts, |what| {
        eprintln!("{what} (load average {})", load_average());
    })?;
    compare::print_report(&config, &report);
    compare::print_scorecard(&report);
    println!("load average at end: {}", load_average());
    Ok(())
}
