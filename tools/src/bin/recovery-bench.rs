//! Start-up after a crash: builds databases of N records, then times restart-to-healthy after
//! a clean stop and after `kill -9` (redb repairs an uncleanly closed file at open, in time
//! proportional to the file), and counts how often `/healthz` answered 503 "recovering"
//! meanwhile: the port answers throughout instead of refusing connections.
//!
//! cargo build --release && cargo run --release -p lakehouse-kb-tools --bin recovery-bench -- \
//!     --records 1000000,10000000 --dir /var/tmp/kb-recovery

/// The service's allocator (see `src/main.rs`), so that the store runs here as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use lakehouse_kb::intake::{event_record, outcome_record, verdict_record};
use lakehouse_kb::store::{Put, Store, StoreOptions};
use lakehouse_kb_tools::server::{ServerProcess, locate_binary};
use lakehouse_kb_tools::synth::Synth;
use lakehouse_kb_tools::{file_mib, machine, print_table};

#[derive(Debug, Parser)]
struct Args {
    /// Database sizes, in records, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    records: Vec<u64>,
    /// Where the databases are built and kept between runs
    #[arg(long)]
    dir: PathBuf,
    /// Restarts measured per size and kind
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The lakehouse-kb binary (default: next to this tool)
    #[arg(long)]
    server: Option<PathBuf>,
    /// Run the server with --quick-repair (commits save redb's allocator state)
    #[arg(long)]
    quick_repair: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = locate_binary(args.server.as_deref())?;
    let serve_args: Vec<String> = if args.quick_repair {
        vec!["--quick-repair".into()]
    } else {
        Vec::new()
    };
    println!(
        "server mode: {}",
        if args.quick_repair {
            "--quick-repair"
        } else {
            "default"
        }
    );
    println!("machine: {}\n", machine());
    let mut rows = Vec::new();
    for &n in &args.records {
        let data = args.dir.join(format!("records-{n}"));
        build(&data, n)?;
        let size = file_mib(&data.join("kb.redb"));
        let mut clean = Vec::new();
        let mut crashed = Vec::new();
        let mut recovering_answers = 0;
        let long = Duration::from_secs(1800);
        for _ in 0..args.rounds {
            // Clean: a graceful stop, then a start.
            ServerProcess::start(&binary, &data, &serve_args)?.stop()?;
            let start = Instant::now();
            let mut s = ServerProcess::spawn(&binary, &data, &serve_args)?;
            s.wait_healthy_within(long)?;
            clean.push(start.elapsed());
            // Crashed: writes, kill -9, then a start that must repair.
            post_some(&s.base_url())?;
            s.kill();
            let start = Instant::now();
            let mut s = ServerProcess::spawn(&binary, &data, &serve_args)?;
            recovering_answers += s.wait_healthy_within(long)?;
            crashed.push(start.elapsed());
            s.stop()?;
        }
        clean.sort();
        crashed.sort();
        let median = |v: &[Duration]| v[v.len() / 2];
        rows.push(vec![
            n.to_string(),
            format!("{size:.0} MiB"),
            format!("{:.2} s", median(&clean).as_secs_f64()),
            format!("{:.2} s", median(&crashed).as_secs_f64()),
            format!("{:.2} s", crashed.last().unwrap().as_secs_f64()),
            recovering_answers.to_string(),
        ]);
    }
    println!("restart to healthy (median of {} rounds):", args.rounds);
    print_table(
        &[
            "records",
            "file",
            "after clean stop",
            "after kill -9",
            "after kill -9, max",
            "503 recovering answers seen",
        ],
        &rows,
    );
    Ok(())
}

/// Builds a database of at least `n` records (mixed, as production) unless one is there.
fn build(data: &Path, n: u64) -> anyhow::Result<()> {
    let marker = data.join("built");
    if marker.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(data)?;
    let store = Store::open(&data.join("kb.redb"), StoreOptions::default())?;
    let mut synth = Synth::new(n, (n / 30).max(10));
    let start = Instant::now();
    while store.last_seq()? < n {
        let puts: Vec<Put> = (0..10_000)
            .map(|_| {
                let record = match synth.rng().below(10) {
                    0..=2 => verdict_record(synth.verdict().as_bytes(), 1),
                    3..=6 => event_record(synth.event().as_bytes(), 1),
                    _ => outcome_record(synth.outcome().as_bytes(), 1),
                };
                Put::from(record.expect("synthetic records are valid"))
            })
            .collect();
        store.write(&puts)?;
    }
    eprintln!(
        "built {} records in {:.0} s",
        store.last_seq()?,
        start.elapsed().as_secs_f64()
    );
    drop(store);
    std::fs::write(marker, b"")?;
    Ok(())
}

fn post_some(base: &str) -> anyhow::Result<()> {
    let client = reqwest::blocking::Client::new();
    for i in 0..100 {
        let r = client
            .post(format!("{base}/event"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"source":"bot","i":{i}}}"#))
            .send()?;
        anyhow::ensure!(r.status().is_success());
    }
    Ok(())
}
