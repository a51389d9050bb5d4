//! Ingest load generator (issue 3): durable `POST /event` and `POST /verdicts` throughput and
//! latency at several client counts, with group commit on and off (the baseline) in the same
//! run, against the real release server. Figures go to docs/BENCHMARKS.md.
//!
//! cargo build --release -p lakehouse-kb -p lakehouse-kb-tools
//! target/release/loadgen --clients 1,16,64 --seconds 10

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lakehouse_kb_tools::loadgen::{self, LoadConfig, Route};
use lakehouse_kb_tools::{load_average, machine, server};

#[derive(Debug, Parser)]
#[command(about = "Durable ingest throughput and latency against the real server")]
struct Args {
    /// The server binary (default: lakehouse-kb next to this executable)
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Routes to load
    #[arg(long, value_delimiter = ',', default_value = "event,verdicts")]
    routes: Vec<Route>,
    /// Concurrent keep-alive clients, one cell per value
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Group-commit settings to run (`false` is the one-commit-per-request baseline)
    #[arg(long, value_delimiter = ',', default_value = "true,false")]
    group_commit: Vec<bool>,
    /// Seconds measured per cell
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of warm-up per cell, not measured
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seed of the generated bodies
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// PR numbers the verdicts spread over
    #[arg(long, default_value_t = 10_000)]
    prs: u64,
    /// Directory for the temporary data directories (default: the system temp dir)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Extra argument passed to `lakehouse-kb serve` (repeat for several)
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Connections posting heavy batches (30 verdicts of 256 new findings each, about 960 KB)
    /// back to back beside the measured clients, not measured with them
    #[arg(long, default_value_t = 0)]
    heavy_clients: usize,
    /// Connections reading a large answer (`GET /sig` of 1,000 records of 8 KB, stored first)
    /// back to back beside the measured clients, not measured with them
    #[arg(long, default_value_t = 0)]
    heavy_readers: usize,
    /// A tiny run (2 clients, 0.2 s per cell) that proves the tool works; any error fails it
    #[arg(long)]
    smoke: bool,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let (clients, seconds, warmup) = if args.smoke {
        (vec![2], 0.2, 0.05)
    } else {
        (args.clients, args.seconds, args.warmup)
    };
    let config = LoadConfig {
        bin: server::locate_binary(args.bin.as_deref())?,
        dir: args.dir,
        routes: args.routes,
        clients,
        group_commit: args.group_commit,
        warmup: Duration::from_secs_f64(warmup),
        duration: Duration::from_secs_f64(seconds),
        seed: args.seed,
        n_prs: args.prs,
        server_args: args.server_args,
        heavy_clients: args.heavy_clients,
        heavy_readers: args.heavy_readers,
    };
    println!("machine: {}", machine());
    println!(
        "server: {}; {:.1} s measured after {:.1} s warm-up per cell; seed {}\n",
        config.bin.display(),
        seconds,
        warmup,
        config.seed
    );
    println!("load average at start: {}", load_average());
    let results = loadgen::run(&config, |cell| {
        eprintln!(
            "{} clients={} group_commit={}: {:.0} requests/s, {} errors (load average {})",
            cell.route.path(),
            cell.clients,
            cell.group_commit,
            cell.requests_per_sec(),
            cell.drive.errors,
            load_average()
        );
    })?;
    println!("load average at end: {}\n", load_average());
    loadgen::print_report(&results);
    let errors: usize = results
        .iter()
        .map(|c| c.drive.errors + c.heavy.as_ref().map_or(0, |h| h.errors))
        .sum();
    let empty = results.iter().any(|c| c.drive.ok == 0);
    if args.smoke && (errors > 0 || empty) {
        eprintln!("smoke run failed: {errors} errors, a cell with no answered request: {empty}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
