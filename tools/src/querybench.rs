//! The query benchmark: at each size, a database of realistic traffic (verdicts with re-audits
//! across many PRs, interleaved with scenario rows and observer events) and the legacy
//! `outcomes.jsonl` the old writers would have produced from the same traffic; then PR-history
//! and sig_hash lookup latency through the store API, over HTTP against the real server on the
//! same data directory, and by the legacy full-file scan, all in the same run.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::synth::{Rng, Synth};
use anyhow::{Context, bail, ensure};
use lakehouse_kb::intake::{event_record, outcome_record, verdict_record};
use lakehouse_kb::model::Repo;
use lakehouse_kb::store::{Put, Record, SigRecord, Store, StoreOptions, Written};
use serde_json::Value;

use crate::client::Connection;
use crate::server::ServerProcess;
use crate::{Samples, disk_read_bytes, file_mib, fmt_duration, print_table};

/// The legacy KB file, written next to the database while loading.
pub const LEGACY_FILE: &str = "legacy/outcomes.jsonl";

#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// The server binary.
    pub bin: PathBuf,
    /// Where the per-size temporary data directories go (the system temp dir if `None`).
    pub dir: Option<PathBuf>,
    /// Stored verdicts at each measured size.
    pub sizes: Vec<usize>,
    /// Timed lookups per (query, size) through the store and over HTTP.
    pub lookups: usize,
    /// Timed legacy scans per (query, size): each reads the whole file.
    pub scans: usize,
    /// Average audits per PR: the PR numbers span `size / audits_per_pr`, so a history answer
    /// has about the same size at every database size.
    pub audits_per_pr: u64,
    /// Puts per `Store::write` while loading.
    pub load_batch: usize,
    pub seed: u64,
}

/// p50 and p99 of `n` timed calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
}

impl From<&mut Samples> for Latency {
    fn from(samples: &mut Samples) -> Latency {
        Latency {
            n: samples.len(),
            p50: samples.percentile(50.0),
            p99: samples.percentile(99.0),
        }
    }
}

/// One query measured three ways.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryFigures {
    pub store: Latency,
    pub http: Latency,
    pub legacy: Latency,
    /// Mean records in one answer (store API).
    pub mean_answer: f64,
}

impl QueryFigures {
    /// How many times faster the HTTP lookup is than the legacy scan, median against median.
    pub fn speedup_p50(&self) -> f64 {
        ratio(self.legacy.p50, self.http.p50)
    }

    /// The same, pessimistic: the scan's median against the lookup's p99.
    pub fn speedup_p99(&self) -> f64 {
        ratio(self.legacy.p50, self.http.p99)
    }
}

pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// Everything measured at one size.
#[derive(Debug, Clone)]
pub struct SizeResult {
    pub verdicts: usize,
    pub records: u64,
    pub db_mib: f64,
    pub legacy_mib: f64,
    pub legacy_lines: u64,
    pub load: Duration,
    /// The machine's 1-minute load average when the lookups started (the machine is shared).
    pub load_average: String,
    /// MiB read from the disk (not the page cache) during the store and the HTTP lookups.
    pub store_disk_mib: Option<f64>,
    pub http_disk_mib: Option<f64>,
    pub history: QueryFigures,
    pub sig: QueryFigures,
}

/// A loaded verdict: what the lookups ask for.
struct Target {
    pr_number: u64,
    sig_hash: String,
}

/// Measures every size in order, each on its own freshly built data directory.
pub fn run(
    config: &QueryConfig,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<Vec<SizeResult>> {
    let mut results = Vec::new();
    for &size in &config.sizes {
        let dir = crate::temp_dir_in(config.dir.as_deref())?;
        results.push(
            run_size(config, dir.path(), size, &mut progress)
                .with_context(|| format!("at {size} verdicts"))?,
        );
    }
    Ok(results)
}

fn run_size(
    config: &QueryConfig,
    data: &Path,
    size: usize,
    progress: &mut impl FnMut(&str),
) -> anyhow::Result<SizeResult> {
    let db_path = data.join(lakehouse_kb::store::DB_FILE);
    let legacy_path = data.join(LEGACY_FILE);
    std::fs::create_dir_all(legacy_path.parent().expect("a relative path with a parent"))?;

    progress(&format!("{size} verdicts: loading"));
    let store = Store::open(&db_path, StoreOptions::default())?;
    let load_start = Instant::now();
    let (targets, legacy_lines) = load(config, &store, &legacy_path, size)?;
    let load = load_start.elapsed();
    let records = store.last_seq()?;

    // The same random lookups for every way of asking, so the answers can be compared.
    let mut rng = Rng::new(config.seed ^ 0x0005_eed0_f100_c0b5);
    let picks: Vec<&Target> = (0..config.lookups.max(1))
        .map(|_| &targets[rng.below(targets.len() as u64) as usize])
        .collect();
    let warmup = picks.len().min(200);

    progress(&format!("{size} verdicts: store lookups"));
    let load_average = crate::load_average();
    let disk_before = disk_read_bytes(std::process::id());
    let mut history_counts = Vec::with_capacity(picks.len());
    let mut sig_counts = Vec::with_capacity(picks.len());
    let mut sig_outcome_counts = Vec::with_capacity(picks.len());
    for target in &picks[..warmup] {
        crate::store_pr_history(&store, target.pr_number)?;
        store.by_sig(&Repo::default(), &target.sig_hash, 0, 50)?;
    }
    let mut store_history = Samples::with_capacity(picks.len());
    for target in &picks {
        let audits = store_history.time(|| crate::store_pr_history(&store, target.pr_number))?;
        history_counts.push(audits as usize);
    }
    let mut store_sig = Samples::with_capacity(picks.len());
    for target in &picks {
        let page = store_sig.time(|| store.by_sig(&Repo::default(), &target.sig_hash, 0, 50))?;
        ensure!(!page.more, "{} has more than 50 records", target.sig_hash);
        sig_counts.push(page.items.len());
        let n_rows = page
            .items
            .iter()
            .filter(|r| matches!(r, SigRecord::Outcome(_)))
            .count();
        sig_outcome_counts.push(n_rows);
    }
    let store_disk_mib = mib_between(disk_before, disk_read_bytes(std::process::id()));
    drop(store);

    progress(&format!("{size} verdicts: HTTP lookups"));
    let server = ServerProcess::start(&config.bin, data, &[])?;
    let server_pid = server.pid().expect("a started server has a pid");
    let disk_before = disk_read_bytes(server_pid);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut http_history, mut http_sig) = runtime.block_on(http_lookups(
        server.addr,
        &picks,
        warmup,
        &history_counts,
        &sig_counts,
    ))?;
    let http_disk_mib = mib_between(disk_before, disk_read_bytes(server_pid));
    server.stop()?;

    progress(&format!("{size} verdicts: legacy scans"));
    let mut legacy_history = Samples::default();
    let mut legacy_sig = Samples::default();
    for (i, target) in picks.iter().take(config.scans).enumerate() {
        let n = legacy_history.time(|| legacy_pr_history(&legacy_path, target.pr_number))?;
        ensure!(
            n == history_counts[i],
            "legacy scan found {n} audits of PR {}, the store {}",
            target.pr_number,
            history_counts[i]
        );
        let n = legacy_sig.time(|| legacy_by_sig(&legacy_path, &target.sig_hash))?;
        ensure!(
            n == sig_outcome_counts[i],
            "legacy scan found {n} rows under {}, the store {}",
            target.sig_hash,
            sig_outcome_counts[i]
        );
    }

    let mean = |counts: &[usize]| counts.iter().sum::<usize>() as f64 / counts.len() as f64;
    Ok(SizeResult {
        verdicts: size,
        records,
        db_mib: file_mib(&db_path),
        legacy_mib: file_mib(&legacy_path),
        legacy_lines,
        load,
        load_average,
        store_disk_mib,
        http_disk_mib,
        history: QueryFigures {
            store: (&mut store_history).into(),
            http: (&mut http_history).into(),
            legacy: (&mut legacy_history).into(),
            mean_answer: mean(&history_counts),
        },
        sig: QueryFigures {
            store: (&mut store_sig).into(),
            http: (&mut http_sig).into(),
            legacy: (&mut legacy_sig).into(),
            mean_answer: mean(&sig_counts),
        },
    })
}

fn mib_between(before: Option<u64>, after: Option<u64>) -> Option<f64> {
    Some(after?.saturating_sub(before?) as f64 / (1 << 20) as f64)
}

/// Loads `n_verdicts` verdicts, each put a third of the time a verdict (stored with its KB row
/// and observer event), an observer event or a scenario row, in batches of one transaction.
/// Writes the legacy `outcomes.jsonl` as the old writers would have: each verdict's KB row and
/// each scenario row, one a line, in ingest order. Returns the verdicts and the file's lines.
fn load(
    config: &QueryConfig,
    store: &Store,
    legacy_path: &Path,
    n_verdicts: usize,
) -> anyhow::Result<(Vec<Target>, u64)> {
    let n_prs = (n_verdicts as u64 / config.audits_per_pr.max(1)).max(1);
    let mut synth = Synth::new(config.seed, n_prs);
    let mut legacy = BufWriter::with_capacity(1 << 20, File::create(legacy_path)?);
    let mut targets = Vec::with_capacity(n_verdicts);
    let mut legacy_lines = 0;
    let mut clock_ms = 1_775_000_000_000u64;
    let mut puts = Vec::with_capacity(config.load_batch);
    while targets.len() < n_verdicts {
        clock_ms += 1;
        let record = match synth.rng().below(3) {
            0 => {
                let record = verdict_record(synth.verdict().as_bytes(), clock_ms)?;
                let Record::Verdict(verdict) = &record else {
                    bail!("a verdict body produced another record");
                };
                let line = verdict.outcome_line.as_deref().unwrap_or_default();
                writeln!(legacy, "{line}")?;
                legacy_lines += 1;
                targets.push(Target {
                    pr_number: verdict.verdict.pr_number,
                    sig_hash: verdict.verdict.sig_hash(),
                });
                record
            }
            1 => event_record(synth.event().as_bytes(), clock_ms)?,
            _ => {
                let body = synth.outcome();
                writeln!(legacy, "{body}")?;
                legacy_lines += 1;
                outcome_record(body.as_bytes(), clock_ms)?
            }
        };
        puts.push(Put::from(record));
        if puts.len() == config.load_batch || targets.len() == n_verdicts {
            for written in store.write(&puts)? {
                ensure!(
                    matches!(written, Written::Stored { .. }),
                    "the generated traffic repeated a record (seq {})",
                    written.seq()
                );
            }
            puts.clear();
        }
    }
    legacy.flush()?;
    Ok((targets, legacy_lines))
}

/// `GET /prs/{n}/history` then `GET /sig/{sig}` for every pick on one keep-alive connection,
/// each answer checked against the store's.
async fn http_lookups(
    addr: std::net::SocketAddr,
    picks: &[&Target],
    warmup: usize,
    history_counts: &[usize],
    sig_counts: &[usize],
) -> anyhow::Result<(Samples, Samples)> {
    let mut connection = Connection::open(addr).await?;
    let history_path = |t: &Target| format!("/prs/{}/history", t.pr_number);
    let sig_path = |t: &Target| format!("/sig/{}", t.sig_hash);
    for target in &picks[..warmup] {
        connection.get(&history_path(target)).await?;
        connection.get(&sig_path(target)).await?;
    }
    let mut history = Samples::with_capacity(picks.len());
    for (i, target) in picks.iter().enumerate() {
        let path = history_path(target);
        let start = Instant::now();
        let answer = connection.get(&path).await?;
        history.push(start.elapsed());
        let json: Value = serde_json::from_slice(&answer.body)?;
        ensure!(
            answer.status == 200 && json["count"].as_u64() == Some(history_counts[i] as u64),
            "GET {path}: {} {json}, expected count {}",
            answer.status,
            history_counts[i]
        );
    }
    let mut sig = Samples::with_capacity(picks.len());
    for (i, target) in picks.iter().enumerate() {
        let path = sig_path(target);
        let start = Instant::now();
        let answer = connection.get(&path).await?;
        sig.push(start.elapsed());
        let json: Value = serde_json::from_slice(&answer.body)?;
        let n = json["records"].as_array().map_or(0, Vec::len);
        ensure!(
            answer.status == 200 && n == sig_counts[i],
            "GET {path}: {} with {n} records, expected {}",
            answer.status,
            sig_counts[i]
        );
    }
    Ok((history, sig))
}

/// The legacy Phase B read, as the auditor's kb_query check does it: the whole file line by
/// line, each line parsed as JSON, keeping `kind == "audit"` rows of the PR (the `pr{N}-`
/// sig_hash prefix). Returns how many it kept.
pub fn legacy_pr_history(path: &Path, pr_number: u64) -> anyhow::Result<usize> {
    let prefix = format!("pr{pr_number}-");
    let rows = scan(path, |row| {
        row.get("kind").and_then(Value::as_str) == Some("audit")
            && row
                .get("sig_hash")
                .and_then(Value::as_str)
                .is_some_and(|s| s.starts_with(&prefix))
    })?;
    Ok(rows.len())
}

/// The legacy lookup by sig_hash: every row of the file under exactly `sig_hash`.
pub fn legacy_by_sig(path: &Path, sig_hash: &str) -> anyhow::Result<usize> {
    let rows = scan(path, |row| {
        row.get("sig_hash").and_then(Value::as_str) == Some(sig_hash)
    })?;
    Ok(rows.len())
}

fn scan(path: &Path, keep: impl Fn(&Value) -> bool) -> anyhow::Result<Vec<Value>> {
    let reader = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut rows = Vec::new();
    for line in reader.lines() {
        let line = line?;
        // A torn or broken line is skipped, as the legacy readers' try/catch did.
        let Ok(row) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if keep(&row) {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Prints the dataset table and one table per query, every way of asking side by side.
pub fn print_report(results: &[SizeResult], scans: usize) {
    println!("datasets (each size built fresh):");
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                group(r.verdicts as u64),
                group(r.records),
                format!("{:.0}", r.db_mib),
                format!("{:.0}", r.legacy_mib),
                group(r.legacy_lines),
                format!("{:.1} s", r.load.as_secs_f64()),
                format!("{:.1}", r.history.mean_answer),
                format!("{:.1}", r.sig.mean_answer),
                r.load_average.split(' ').next().unwrap_or("").to_owned(),
                format!(
                    "{} / {}",
                    r.store_disk_mib.map_or("-".into(), |m| format!("{m:.1}")),
                    r.http_disk_mib.map_or("-".into(), |m| format!("{m:.1}"))
                ),
            ]
        })
        .collect();
    print_table(
        &[
            "verdicts",
            "records stored",
            "kb.redb MiB",
            "outcomes.jsonl MiB",
            "jsonl lines",
            "load",
            "audits per history",
            "records per sig",
            "load avg",
            "disk MiB read: store / HTTP",
        ],
        &rows,
    );
    let table = |title: &str, pick: fn(&SizeResult) -> &QueryFigures| {
        println!("{title}:");
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                let f = pick(r);
                vec![
                    group(r.verdicts as u64),
                    fmt_duration(f.store.p50),
                    fmt_duration(f.store.p99),
                    fmt_duration(f.http.p50),
                    fmt_duration(f.http.p99),
                    fmt_duration(f.legacy.p50),
                    fmt_duration(f.legacy.p99),
                    format!("{}x", group(f.speedup_p50().round() as u64)),
                    format!("{}x", group(f.speedup_p99().round() as u64)),
                ]
            })
            .collect();
        print_table(
            &[
                "verdicts",
                "store p50",
                "store p99",
                "HTTP p50",
                "HTTP p99",
                "legacy scan p50",
                "legacy scan p99",
                "scan p50 / HTTP p50",
                "scan p50 / HTTP p99",
            ],
            &rows,
        );
        if let (Some(first), Some(last)) = (results.first(), results.last()) {
            let (a, b) = (pick(first), pick(last));
            println!(
                "{} to {} verdicts: store p99 x{:.2}, HTTP p99 x{:.2}, legacy scan p50 x{:.1}\n",
                group(first.verdicts as u64),
                group(last.verdicts as u64),
                ratio(b.store.p99, a.store.p99),
                ratio(b.http.p99, a.http.p99),
                ratio(b.legacy.p50, a.legacy.p50),
            );
        }
    };
    let n = results.first().map_or(0, |r| r.history.store.n);
    println!(
        "{n} lookups per cell through the store and over HTTP (one keep-alive connection), \
         {scans} legacy scans per cell\n"
    );
    table(
        "PR history (store: pr_verdicts; HTTP: GET /prs/{n}/history; legacy: scan for kind=audit \
         rows of the PR)",
        |r| &r.history,
    );
    table(
        "sig_hash lookup (store: by_sig, limit 50; HTTP: GET /sig/{sig}; legacy: scan for rows \
         under the sig_hash)",
        |r| &r.sig,
    );
}

/// An integer with thousands grouped by spaces: `1 000 000`.
pub fn group(n: u64) -> String {
    crate::fmt_rate(n as f64)
}
