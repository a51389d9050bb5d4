//! Storage micro-benchmark: durable batched commit throughput at batch sizes 1, 64 and 1024,
//! and point-lookup latency (by sig_hash, by PR prefix) at N stored rows, on the store API
//! without HTTP. Figures go to docs/BENCHMARKS.md.
//!
//! cargo run --release -p lakehouse-kb-tools --bin store-bench -- --rows 1000000

/// The service's allocator (see `src/main.rs`), so that the store runs here as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use clap::Parser;
use lakehouse_kb::intake::{event_record, outcome_record, verdict_record};
use lakehouse_kb::model::Repo;
use lakehouse_kb::store::{Put, Store, StoreOptions};
use lakehouse_kb_tools::synth::Synth;
use lakehouse_kb_tools::{
    Samples, file_mib, fmt_duration, fmt_rate, machine, print_table, temp_dir_in,
};

#[derive(Debug, Parser)]
struct Args {
    /// Rows to load before measuring lookups
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Seconds spent on each commit-throughput measurement
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Lookups per lookup measurement
    #[arg(long, default_value_t = 20_000)]
    lookups: usize,
    /// Directory for the temporary database (default: the system temp dir)
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Measure commits with redb quick-repair on as well, side by side
    #[arg(long)]
    compare_quick_repair: bool,
}

fn mixed(synth: &mut Synth, n: usize) -> Vec<Put> {
    (0..n)
        .map(|_| {
            let record = match synth.rng().below(10) {
                0..=2 => verdict_record(synth.verdict().as_bytes(), 1).unwrap(),
                3..=6 => event_record(synth.event().as_bytes(), 1).unwrap(),
                _ => outcome_record(synth.outcome().as_bytes(), 1).unwrap(),
            };
            Put::from(record)
        })
        .collect()
}

fn main() {
    let args = Args::parse();
    let dir = temp_dir_in(args.dir.as_deref()).unwrap();
    println!("machine: {}\n", machine());

    // Commit throughput: each batch is one durable (fsync'd) transaction. With
    // --compare-quick-repair the two modes alternate per batch size, on separate files, so
    // both see the same machine conditions.
    let modes: &[bool] = if args.compare_quick_repair {
        &[false, true]
    } else {
        &[false]
    };
    let stores: Vec<Store> = modes
        .iter()
        .map(|&quick_repair| {
            let path = dir.path().join(format!("commit-{quick_repair}.redb"));
            Store::open(
                &path,
                StoreOptions {
                    quick_repair,
                    ..StoreOptions::default()
                },
            )
            .unwrap()
        })
        .collect();
    let mut synth = Synth::new(1, 5_000);
    let mut rows = Vec::new();
    let mut baseline = 0.0;
    for batch in [1usize, 64, 1024] {
        for (store, &quick_repair) in stores.iter().zip(modes) {
            let mut samples = Samples::default();
            let mut n_records = 0usize;
            let mut in_commit = std::time::Duration::ZERO;
            let start = Instant::now();
            while start.elapsed().as_secs_f64() < args.seconds {
                // Generated outside the timed section: only the commit is measured.
                let puts = mixed(&mut synth, batch);
                let commit = Instant::now();
                store.write(&puts).unwrap();
                let took = commit.elapsed();
                samples.push(took);
                in_commit += took;
                n_records += batch;
            }
            let per_sec = n_records as f64 / in_commit.as_secs_f64();
            if batch == 1 && !quick_repair {
                baseline = per_sec;
            }
            rows.push(vec![
                batch.to_string(),
                if quick_repair {
                    "quick-repair"
                } else {
                    "default"
                }
                .to_owned(),
                fmt_rate(samples.len() as f64 / in_commit.as_secs_f64()),
                fmt_rate(per_sec),
                format!("{:.1}x", per_sec / baseline),
                fmt_duration(samples.percentile(50.0)),
                fmt_duration(samples.percentile(99.0)),
            ]);
        }
    }
    println!("durable commit throughput (mixed verdicts/events/rows; a verdict is 3 records):");
    print_table(
        &[
            "batch",
            "mode",
            "commits/s",
            "puts/s",
            "vs batch 1",
            "commit p50",
            "commit p99",
        ],
        &rows,
    );
    drop(stores);

    // Point lookups at N rows.
    let path = dir.path().join("lookup.redb");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let mut synth = Synth::new(2, (args.rows / 20).max(10) as u64);
    let load_start = Instant::now();
    let mut loaded = 0;
    while loaded < args.rows {
        let n = 10_000.min(args.rows - loaded);
        store.write(&mixed(&mut synth, n)).unwrap();
        loaded += n;
    }
    let load = load_start.elapsed();
    let stats = store.stats().unwrap();
    println!(
        "loaded {} puts ({} records: {} verdicts, {} events, {} rows) in {:.1} s, {} MiB on disk\n",
        args.rows,
        stats.last_seq,
        stats.verdicts,
        stats.events,
        stats.outcomes,
        load.as_secs_f64(),
        file_mib(&path).round()
    );

    let n_prs = (args.rows / 20).max(10) as u64;
    let sigs: Vec<String> = (0..args.lookups)
        .map(|i| {
            let pr = 1 + (i as u64 * 7919) % n_prs;
            let first = store.pr_verdict_seqs(&Repo::default(), pr).unwrap();
            first
                .first()
                .and_then(|&seq| store.verdict(seq).unwrap())
                .map(|v| v.sig_hash)
                .unwrap_or_default()
        })
        .filter(|s| !s.is_empty())
        .collect();
    let mut by_sig = Samples::default();
    let mut n_found = 0;
    for sig in &sigs {
        n_found += by_sig.time(|| {
            store
                .by_sig(&Repo::default(), sig, 0, 50)
                .unwrap()
                .items
                .len()
        });
    }
    let mut by_pr = Samples::default();
    for i in 0..args.lookups {
        let pr = 1 + (i as u64 * 104_729) % n_prs;
        by_pr.time(|| lakehouse_kb_tools::store_pr_history(&store, pr).unwrap());
    }
    let row = |name: &str, s: &mut Samples, per: String| {
        vec![
            name.to_owned(),
            s.len().to_string(),
            fmt_duration(s.percentile(50.0)),
            fmt_duration(s.percentile(99.0)),
            per,
        ]
    };
    let avg_sig = n_found as f64 / sigs.len().max(1) as f64;
    println!(
        "point lookups at {} stored records (one read transaction each):",
        stats.last_seq
    );
    print_table(
        &["lookup", "n", "p50", "p99", "records per answer"],
        &[
            row(
                "by sig_hash (verdicts+rows+events)",
                &mut by_sig,
                format!("{avg_sig:.1}"),
            ),
            row("PR history (pr{N}- prefix)", &mut by_pr, "all heads".into()),
        ],
    );
}
