//! The comparison benchmark: the same workloads, in the same run, on lakehouse-kb and on what a
//! team would use instead.
//!
//! - **ingest over HTTP**: `POST /event` at N closed-loop clients against lakehouse-kb, the
//!   legacy observer in Node.js (as deployed, and with an fdatasync per event so its 200 means
//!   what lakehouse-kb's does), and an axum handler that does nothing (the HTTP ceiling);
//! - **ingest at the storage layer**: one writer, K events per durable commit (what group commit
//!   makes of K waiting clients), through the store API, raw redb, and SQLite;
//! - **history and bulk** at each dataset size: one generated dataset written to the store, to
//!   SQLite and to the legacy files; PR history through the store API, lakehouse-kb over HTTP,
//!   SQLite, and the legacy observer's file scan; full export and import of the legacy files;
//!   bytes on disk.
//!
//! Every server and every storage-layer job runs in its own process, so its peak memory is its
//! own. The report prints one table per figure with ratios to the alternatives.

pub mod peers;
mod scorecard;
pub mod sqlite;
pub mod worker;

pub use scorecard::print as print_scorecard;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::synth::{Rng, Synth};
use anyhow::{Context, bail, ensure};
use lakehouse_kb::import::{OPS_PATH, OUTCOMES_PATH};
use lakehouse_kb::intake::{event_record, outcome_record, verdict_record};
use lakehouse_kb::store::{DB_FILE, Put, Record, Store, StoreOptions};
use serde_json::Value;

use crate::client::Connection;
use crate::loadgen::{Drive, Route, drive};
use crate::server::ServerProcess;
use crate::{Samples, fmt_duration, fmt_rate, print_table};
use peers::Peer;
use worker::{Figures, Job, System, run_in_child};

#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The lakehouse-kb binary.
    pub bin: PathBuf,
    /// The Node.js binary for the legacy observer.
    pub node: PathBuf,
    /// Where the temporary data directories go (the system temp dir if `None`).
    pub dir: Option<PathBuf>,
    /// Concurrent HTTP clients per ingest cell.
    pub clients: Vec<usize>,
    pub warmup: Duration,
    pub seconds: Duration,
    /// Events per commit in the storage-layer ingest.
    pub batches: Vec<usize>,
    pub storage_seconds: Duration,
    /// Verdicts in each history dataset.
    pub sizes: Vec<usize>,
    /// Timed history lookups per system and size (the legacy scan: `scans`).
    pub lookups: usize,
    pub scans: usize,
    pub audits_per_pr: u64,
    pub seed: u64,
    /// What the history datasets hold besides verdicts.
    pub mix: Mix,
    /// Export and import run only on datasets of at most this many verdicts (they need two
    /// more copies of the data on disk).
    pub bulk_up_to: usize,
    /// `sizes`: keep the datasets on disk rather than removing them.
    pub keep: bool,
}

/// What a history dataset holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Verdicts interleaved with as many observer events and scenario rows (a third each).
    Mixed,
    /// Verdicts only (each with its KB row and observer event): the same history question in
    /// about half the disk, for the largest sizes.
    Verdicts,
}

/// Which parts to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Ingest,
    Storage,
    History,
}

/// The HTTP servers of the ingest comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpSystem {
    LakehouseKb,
    Legacy,
    LegacyFsync,
    Noop,
}

impl HttpSystem {
    pub const ALL: [HttpSystem; 4] = [
        HttpSystem::LakehouseKb,
        HttpSystem::Legacy,
        HttpSystem::LegacyFsync,
        HttpSystem::Noop,
    ];

    pub fn label(self) -> &'static str {
        match self {
            HttpSystem::LakehouseKb => "lakehouse-kb",
            HttpSystem::Legacy => "legacy observer (Node, no fsync)",
            HttpSystem::LegacyFsync => "legacy observer + fdatasync",
            HttpSystem::Noop => "no-op axum (ceiling)",
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpCell {
    pub system: HttpSystem,
    pub clients: usize,
    pub drive: Drive,
    pub peak_rss_kib: u64,
}

#[derive(Debug, Clone)]
pub struct StorageCell {
    pub system: System,
    pub batch: usize,
    pub figures: Figures,
}

/// Everything measured on one dataset.
#[derive(Debug, Clone, Default)]
pub struct SizeResult {
    pub verdicts: usize,
    /// Lines of the legacy files (= rows each export writes, rows each import reads).
    pub rows: u64,
    pub load_store: Duration,
    pub load_sqlite: Duration,
    pub bytes_store: u64,
    pub bytes_sqlite: u64,
    pub bytes_legacy: u64,
    /// What the files take on disk (allocated blocks): the store's length runs ahead of it.
    pub disk_store: u64,
    pub disk_sqlite: u64,
    pub history_store: Figures,
    pub history_sqlite: Figures,
    pub history_http: Figures,
    pub history_legacy: Figures,
    pub export_store: Figures,
    pub export_sqlite: Figures,
    pub import_store: Figures,
    pub import_sqlite: Figures,
    /// Whether export and import ran on this dataset (`CompareConfig::bulk_up_to`).
    pub bulk: bool,
}

#[derive(Debug, Default)]
pub struct Report {
    pub http: Vec<HttpCell>,
    pub storage: Vec<StorageCell>,
    pub sizes: Vec<SizeResult>,
}

/// Runs the parts asked for; `progress` hears what starts.
pub fn run(
    config: &CompareConfig,
    parts: &[Part],
    mut progress: impl FnMut(&str),
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    if parts.contains(&Part::Ingest) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        // Client counts outermost, systems alternating inside: drift in the machine's load
        // hits every system alike.
        for &clients in &config.clients {
            for system in HttpSystem::ALL {
                progress(&format!(
                    "ingest: {} with {clients} clients",
                    system.label()
                ));
                let cell = http_cell(config, &runtime, system, clients)
                    .with_context(|| format!("{} at {clients} clients", system.label()))?;
                report.http.push(cell);
            }
        }
    }
    if parts.contains(&Part::Storage) {
        for &batch in &config.batches {
            for system in [System::Store, System::RawRedb, System::Sqlite] {
                progress(&format!(
                    "storage ingest: {} with {batch} per commit",
                    system.label()
                ));
                let dir = crate::temp_dir_in(config.dir.as_deref())?;
                let figures = run_in_child(&Job::Ingest {
                    system,
                    dir: dir.path().to_owned(),
                    batch,
                    seconds: config.storage_seconds.as_secs_f64(),
                    seed: config.seed,
                })?;
                report.storage.push(StorageCell {
                    system,
                    batch,
                    figures,
                });
            }
        }
    }
    if parts.contains(&Part::History) {
        for &size in &config.sizes {
            let dir = crate::temp_dir_in(config.dir.as_deref())?;
            let result = size_run(config, dir.path(), size, &mut progress)
                .with_context(|| format!("at {size} verdicts"))?;
            report.sizes.push(result);
        }
    }
    Ok(report)
}

fn http_cell(
    config: &CompareConfig,
    runtime: &tokio::runtime::Runtime,
    system: HttpSystem,
    clients: usize,
) -> anyhow::Result<HttpCell> {
    let dir = crate::temp_dir_in(config.dir.as_deref())?;
    enum Running {
        Kb(ServerProcess),
        Other(Peer),
    }
    let server = match system {
        HttpSystem::LakehouseKb => Running::Kb(ServerProcess::start(&config.bin, dir.path(), &[])?),
        HttpSystem::Legacy => Running::Other(Peer::legacy(&config.node, dir.path(), false)?),
        HttpSystem::LegacyFsync => Running::Other(Peer::legacy(&config.node, dir.path(), true)?),
        HttpSystem::Noop => Running::Other(Peer::noop()?),
    };
    let (addr, pid) = match &server {
        Running::Kb(s) => (s.addr, s.pid().unwrap_or(0)),
        Running::Other(p) => (p.addr, p.pid()),
    };
    let drive = runtime.block_on(drive(
        addr,
        Route::Event,
        clients,
        config.warmup,
        config.seconds,
        config.seed,
        1000,
    ))?;
    let peak_rss_kib = crate::peak_rss_kib(pid).unwrap_or(0);
    match server {
        Running::Kb(s) => s.stop()?,
        Running::Other(p) => p.stop()?,
    }
    Ok(HttpCell {
        system,
        clients,
        drive,
        peak_rss_kib,
    })
}

fn size_run(
    config: &CompareConfig,
    dir: &Path,
    size: usize,
    progress: &mut impl FnMut(&str),
) -> anyhow::Result<SizeResult> {
    let kb_dir = dir.join("kb");
    let sqlite_dir = dir.join("sqlite");
    let legacy_dir = dir.join("legacy");
    for d in [&kb_dir, &sqlite_dir] {
        std::fs::create_dir_all(d)?;
    }
    let mut result = SizeResult {
        verdicts: size,
        bulk: size <= config.bulk_up_to,
        ..SizeResult::default()
    };
    // Export and import need every copy at once. Without them, SQLite is loaded (from the same
    // seed, so the same data) only after the store and the legacy files are measured and gone:
    // the disk holds one database at a time.
    progress(&format!("{size} verdicts: generating and loading"));
    let targets = Targets {
        store: Some(&kb_dir),
        sqlite: result.bulk.then_some(sqlite_dir.as_path()),
        legacy: Some(&legacy_dir),
    };
    let prs = load(config, size, targets, &mut result)?;
    result.bytes_store = file_len(&kb_dir.join(DB_FILE));
    result.disk_store = disk_len(&kb_dir.join(DB_FILE));
    result.bytes_legacy =
        file_len(&legacy_dir.join(OUTCOMES_PATH)) + file_len(&legacy_dir.join(OPS_PATH));

    // The same random PRs for every system.
    let mut rng = Rng::new(config.seed ^ 0x5eed_0fc0_4a7e);
    let picks: Vec<u64> = (0..config.lookups.max(1))
        .map(|_| prs[rng.below(prs.len() as u64) as usize])
        .collect();

    progress(&format!("{size} verdicts: history, store API"));
    result.history_store = run_in_child(&Job::History {
        system: System::Store,
        dir: kb_dir.clone(),
        picks: picks.clone(),
    })?;
    if result.bulk {
        sqlite_history(&sqlite_dir, &picks, &mut result, progress)?;
    }

    progress(&format!("{size} verdicts: history over HTTP"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // No export job while the lookups are timed: it would rewrite the whole dataset once.
    let server = ServerProcess::start(
        &config.bin,
        &kb_dir,
        &["--export-interval".to_owned(), "0".to_owned()],
    )?;
    result.history_http = runtime.block_on(http_history(server.addr, &picks, 200, |pr| {
        format!("/prs/{pr}/history")
    }))?;
    result.history_http.peak_rss_kib = crate::peak_rss_kib(server.pid().unwrap_or(0)).unwrap_or(0);
    server.stop()?;
    ensure!(
        result.history_http.answers == result.history_store.answers,
        "HTTP found {} audits, the store {}",
        result.history_http.answers,
        result.history_store.answers
    );

    progress(&format!("{size} verdicts: history by the legacy scan"));
    let legacy = Peer::legacy(&config.node, &legacy_dir, false)?;
    let scan_picks = &picks[..config.scans.min(picks.len())];
    result.history_legacy = runtime.block_on(http_history(legacy.addr, scan_picks, 1, |pr| {
        format!("/history?pr={pr}")
    }))?;
    result.history_legacy.peak_rss_kib = crate::peak_rss_kib(legacy.pid()).unwrap_or(0);
    legacy.stop()?;

    if !result.bulk {
        std::fs::remove_dir_all(&kb_dir)?;
        std::fs::remove_dir_all(&legacy_dir)?;
        progress(&format!("{size} verdicts: loading SQLite"));
        let mut again = SizeResult::default();
        let targets = Targets {
            store: None,
            sqlite: Some(&sqlite_dir),
            legacy: None,
        };
        ensure!(
            load(config, size, targets, &mut again)? == prs,
            "the second generation differs from the first"
        );
        result.load_sqlite = again.load_sqlite;
        sqlite_history(&sqlite_dir, &picks, &mut result, progress)?;
        result.bytes_sqlite = file_len(&sqlite_dir.join(sqlite::DB_FILE));
        result.disk_sqlite = disk_len(&sqlite_dir.join(sqlite::DB_FILE));
        return Ok(result);
    }
    result.bytes_sqlite = file_len(&sqlite_dir.join(sqlite::DB_FILE));
    result.disk_sqlite = disk_len(&sqlite_dir.join(sqlite::DB_FILE));
    progress(&format!("{size} verdicts: export"));
    for (system, dir, out) in [
        (System::Store, &kb_dir, &mut result.export_store),
        (System::Sqlite, &sqlite_dir, &mut result.export_sqlite),
    ] {
        let out_dir = dir.join("export");
        *out = run_in_child(&Job::Export {
            system,
            dir: dir.clone(),
            out: out_dir.clone(),
        })?;
        // Both exports must be the legacy files, byte for byte.
        for relative in [OUTCOMES_PATH, OPS_PATH] {
            ensure!(
                crate::same_bytes(&out_dir.join(relative), &legacy_dir.join(relative))?,
                "{} export of {relative} differs from the legacy file",
                system.label()
            );
        }
        std::fs::remove_dir_all(&out_dir)?;
    }

    progress(&format!("{size} verdicts: import"));
    for (system, out) in [
        (System::Store, &mut result.import_store),
        (System::Sqlite, &mut result.import_sqlite),
    ] {
        let into = dir.join("import");
        *out = run_in_child(&Job::Import {
            system,
            dir: into.clone(),
            from: legacy_dir.clone(),
        })?;
        ensure!(
            out.items == result.rows,
            "{} imported {} rows of {}",
            system.label(),
            out.items,
            result.rows
        );
        std::fs::remove_dir_all(&into)?;
    }
    Ok(result)
}

/// Loads one dataset of `n_verdicts` into the store, SQLite and the legacy files under `dir`
/// and prints what each costs on disk, the store table by table.
pub fn print_sizes(config: &CompareConfig, dir: &Path, n_verdicts: usize) -> anyhow::Result<()> {
    let kb_dir = dir.join("kb");
    let sqlite_dir = dir.join("sqlite");
    let legacy_dir = dir.join("legacy");
    for d in [&kb_dir, &sqlite_dir] {
        std::fs::create_dir_all(d)?;
    }
    let mut result = SizeResult::default();
    let targets = Targets {
        store: Some(&kb_dir),
        sqlite: Some(&sqlite_dir),
        legacy: Some(&legacy_dir),
    };
    load(config, n_verdicts, targets, &mut result)?;
    let store = Store::open(&kb_dir.join(DB_FILE), StoreOptions::default())?;
    let mut sizes = store.table_sizes()?;
    sizes
        .sort_by_key(|t| std::cmp::Reverse(t.stored_bytes + t.metadata_bytes + t.fragmented_bytes));
    let per_line = |bytes: u64| format!("{:.0}", bytes as f64 / result.rows.max(1) as f64);
    let mut rows: Vec<Vec<String>> = sizes
        .iter()
        .filter(|t| t.stored_bytes > 0)
        .map(|t| {
            let all = t.stored_bytes + t.metadata_bytes + t.fragmented_bytes;
            vec![
                t.name.clone(),
                per_line(t.stored_bytes),
                per_line(t.metadata_bytes),
                per_line(t.fragmented_bytes),
                per_line(all),
            ]
        })
        .collect();
    drop(store);
    let legacy = file_len(&legacy_dir.join(OUTCOMES_PATH)) + file_len(&legacy_dir.join(OPS_PATH));
    let (kb_file, sqlite_file) = (kb_dir.join(DB_FILE), sqlite_dir.join(sqlite::DB_FILE));
    for (name, bytes) in [
        ("store file: length", file_len(&kb_file)),
        ("store file: blocks on disk", disk_len(&kb_file)),
        ("SQLite file: length", file_len(&sqlite_file)),
        ("SQLite file: blocks on disk", disk_len(&sqlite_file)),
        ("legacy JSONL", legacy),
    ] {
        rows.push(vec![
            name.into(),
            String::new(),
            String::new(),
            String::new(),
            per_line(bytes),
        ]);
    }
    println!(
        "{n_verdicts} verdicts, {} legacy lines; bytes per legacy line",
        result.rows
    );
    crate::print_table(&["table", "stored", "metadata", "fragmented", "all"], &rows);
    if !config.keep {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

/// Times SQLite's history lookups and checks its answers against the store's.
fn sqlite_history(
    sqlite_dir: &Path,
    picks: &[u64],
    result: &mut SizeResult,
    progress: &mut impl FnMut(&str),
) -> anyhow::Result<()> {
    progress(&format!("{} verdicts: history, SQLite", result.verdicts));
    result.history_sqlite = run_in_child(&Job::History {
        system: System::Sqlite,
        dir: sqlite_dir.to_owned(),
        picks: picks.to_vec(),
    })?;
    ensure!(
        result.history_store.answers == result.history_sqlite.answers,
        "the store found {} audits, SQLite {}",
        result.history_store.answers,
        result.history_sqlite.answers
    );
    Ok(())
}

/// Where `load` writes a dataset: the store's and SQLite's directories, and the legacy data
/// directory; `None` leaves that copy out.
#[derive(Debug, Clone, Copy)]
struct Targets<'a> {
    store: Option<&'a Path>,
    sqlite: Option<&'a Path>,
    legacy: Option<&'a Path>,
}

/// Generates `n_verdicts` verdicts, interleaved with observer events and scenario rows (a third
/// each, as the query benchmark) unless `config.mix` says verdicts only, and writes them, 1,000
/// per durable commit, to the store and to SQLite, and as lines to the legacy files the old
/// writers would have left. The data depends only on the config, not on the targets. Returns
/// the PR number of every verdict.
fn load(
    config: &CompareConfig,
    n_verdicts: usize,
    targets: Targets,
    result: &mut SizeResult,
) -> anyhow::Result<Vec<u64>> {
    const BATCH: usize = 1000;
    let store = match targets.store {
        Some(dir) => Some(Store::open(&dir.join(DB_FILE), StoreOptions::default())?),
        None => None,
    };
    let mut db = match targets.sqlite {
        Some(dir) => Some(sqlite::Sqlite::open(&dir.join(sqlite::DB_FILE))?),
        None => None,
    };
    let mut files = Vec::new();
    for relative in [OUTCOMES_PATH, OPS_PATH] {
        let writer: Box<dyn Write> = match targets.legacy {
            Some(dir) => {
                let path = dir.join(relative);
                std::fs::create_dir_all(path.parent().expect("a relative path with a parent"))?;
                Box::new(BufWriter::with_capacity(1 << 20, File::create(path)?))
            }
            None => Box::new(std::io::sink()),
        };
        files.push(writer);
    }
    let n_prs = (n_verdicts as u64 / config.audits_per_pr.max(1)).max(1);
    let mut synth = Synth::new(config.seed, n_prs);
    let mut prs = Vec::with_capacity(n_verdicts);
    let mut clock_ms = 1_775_000_000_000u64;
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH);
    while prs.len() < n_verdicts {
        clock_ms += 1;
        let pick = match config.mix {
            Mix::Mixed => synth.rng().below(3),
            Mix::Verdicts => 0,
        };
        let record = match pick {
            0 => {
                let record = verdict_record(synth.verdict().as_bytes(), clock_ms)?;
                let Record::Verdict(v) = &record else {
                    bail!("a verdict body produced another record");
                };
                prs.push(v.verdict.pr_number);
                if let Some(line) = &v.outcome_line {
                    writeln!(files[0], "{line}")?;
                    result.rows += 1;
                }
                if let Some(e) = &v.event {
                    writeln!(files[1], "{}", e.value.line)?;
                    result.rows += 1;
                }
                record
            }
            1 => {
                let record = event_record(synth.event().as_bytes(), clock_ms)?;
                let Record::Event(e) = &record else {
                    bail!("an event body produced another record");
                };
                writeln!(files[1], "{}", e.value.line)?;
                result.rows += 1;
                record
            }
            _ => {
                let body = synth.outcome();
                writeln!(files[0], "{body}")?;
                result.rows += 1;
                outcome_record(body.as_bytes(), clock_ms)?
            }
        };
        batch.push(record);
        if batch.len() == BATCH || prs.len() == n_verdicts {
            if let Some(db) = &mut db {
                let refs: Vec<&Record> = batch.iter().collect();
                let start = Instant::now();
                db.write(&refs)?;
                result.load_sqlite += start.elapsed();
            }
            if let Some(store) = &store {
                let puts: Vec<Put> = batch.drain(..).map(Put::from).collect();
                let start = Instant::now();
                store.write(&puts)?;
                result.load_store += start.elapsed();
            }
            batch.clear();
        }
    }
    for mut file in files {
        file.flush()?;
    }
    if let Some(db) = db {
        db.checkpoint()?;
    }
    Ok(prs)
}

/// GETs `path(pr)` for every pick on one keep-alive connection after `warmup` untimed ones;
/// `answers` sums the `count` fields.
async fn http_history(
    addr: std::net::SocketAddr,
    picks: &[u64],
    warmup: usize,
    path: impl Fn(u64) -> String,
) -> anyhow::Result<Figures> {
    let mut connection = Connection::open(addr).await?;
    for &pr in picks.iter().take(warmup) {
        connection.get(&path(pr)).await?;
    }
    let mut samples = Samples::with_capacity(picks.len());
    let mut answers = 0;
    let start = Instant::now();
    for &pr in picks {
        let path = path(pr);
        let sent = Instant::now();
        let answer = connection.get(&path).await?;
        samples.push(sent.elapsed());
        let json: Value = serde_json::from_slice(&answer.body)
            .with_context(|| format!("GET {path}: not JSON"))?;
        let Some(count) = json["count"].as_u64().filter(|_| answer.status == 200) else {
            bail!("GET {path}: {} {json}", answer.status);
        };
        answers += count;
    }
    Ok(Figures::timed(&mut samples, start.elapsed(), answers))
}

/// The bytes `path` takes on disk: its allocated blocks (0 when it cannot be read).
fn disk_len(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// "p50 / p99", each in microseconds.
fn p50_p99(p50_us: f64, p99_us: f64) -> String {
    format!("{} / {}", us(p50_us), us(p99_us))
}

fn us(d: f64) -> String {
    fmt_duration(Duration::from_secs_f64(d / 1e6))
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn ratio(a: f64, b: f64) -> String {
    if b <= 0.0 {
        return "-".into();
    }
    let r = a / b;
    if r >= 100.0 {
        format!("{}x", fmt_rate(r))
    } else {
        format!("{r:.2}x")
    }
}

/// Prints one markdown table per figure.
pub fn print_report(config: &CompareConfig, report: &Report) {
    if !report.http.is_empty() {
        println!(
            "Durable ingest over HTTP: POST /event, closed-loop keep-alive clients, {} s \
             warm-up then {} s measured per cell; each server fresh, in its own process.\n",
            config.warmup.as_secs_f64(),
            config.seconds.as_secs_f64()
        );
        let mut rows = Vec::new();
        for cell in &report.http {
            let kb = report
                .http
                .iter()
                .find(|c| c.clients == cell.clients && c.system == HttpSystem::LakehouseKb);
            rows.push(vec![
                cell.clients.to_string(),
                cell.system.label().to_owned(),
                fmt_rate(cell.drive.requests_per_sec()),
                fmt_duration(cell.drive.p50),
                fmt_duration(cell.drive.p99),
                cell.drive.errors.to_string(),
                mib(cell.peak_rss_kib),
                kb.map_or("-".into(), |kb| {
                    ratio(kb.drive.requests_per_sec(), cell.drive.requests_per_sec())
                }),
            ]);
        }
        print_table(
            &[
                "clients",
                "server",
                "events/s",
                "p50",
                "p99",
                "errors",
                "peak RSS",
                "lakehouse-kb events/s ÷ this",
            ],
            &rows,
        );
        for cell in &report.http {
            if let Some(e) = &cell.drive.first_error {
                println!(
                    "first error, {} at {} clients: {e}",
                    cell.system.label(),
                    cell.clients
                );
            }
        }
    }
    if !report.storage.is_empty() {
        println!(
            "Durable ingest at the storage layer: one writer thread, K observer events per \
             fsync'd commit, {} s per cell, each in its own process.\n",
            config.storage_seconds.as_secs_f64()
        );
        let mut rows = Vec::new();
        for cell in &report.storage {
            let store = report
                .storage
                .iter()
                .find(|c| c.batch == cell.batch && c.system == System::Store);
            rows.push(vec![
                cell.batch.to_string(),
                cell.system.label().to_owned(),
                fmt_rate(cell.figures.rate()),
                us(cell.figures.p50_us),
                us(cell.figures.p99_us),
                mib(cell.figures.peak_rss_kib),
                store.map_or("-".into(), |s| ratio(s.figures.rate(), cell.figures.rate())),
            ]);
        }
        print_table(
            &[
                "events per commit",
                "system",
                "events/s",
                "commit p50",
                "commit p99",
                "peak RSS",
                "store events/s ÷ this",
            ],
            &rows,
        );
    }
    if report.sizes.is_empty() {
        return;
    }
    let mix = match config.mix {
        Mix::Mixed => "interleaved with as many observer events and scenario rows",
        Mix::Verdicts => "only (each with its KB row and observer event)",
    };
    println!(
        "Datasets: N verdicts (about {} audits per PR) {mix}; loaded 1,000 records per fsync'd \
         commit.\n",
        config.audits_per_pr
    );
    if report.sizes.iter().any(|r| !r.bulk) {
        println!(
            "Above {} verdicts no export or import ran, and the store and SQLite were loaded \
             one after the other (the same data from the same seed), one on disk at a time.\n",
            config.bulk_up_to
        );
    }
    let rows: Vec<Vec<String>> = report
        .sizes
        .iter()
        .map(|r| {
            let per_million = |bytes: u64| {
                format!(
                    "{:.0} MiB",
                    bytes as f64 / (1 << 20) as f64 / r.rows as f64 * 1e6
                )
            };
            vec![
                fmt_rate(r.verdicts as f64),
                fmt_rate(r.rows as f64),
                per_million(r.bytes_store),
                per_million(r.bytes_sqlite),
                per_million(r.bytes_legacy),
                ratio(r.bytes_store as f64, r.bytes_sqlite as f64),
                format!("{:.1} s", r.load_store.as_secs_f64()),
                format!("{:.1} s", r.load_sqlite.as_secs_f64()),
            ]
        })
        .collect();
    print_table(
        &[
            "verdicts",
            "JSONL rows",
            "lakehouse-kb per 1M rows",
            "SQLite per 1M rows",
            "legacy JSONL per 1M rows",
            "lakehouse-kb ÷ SQLite size",
            "load, store",
            "load, SQLite",
        ],
        &rows,
    );

    println!(
        "PR history (the Phase B question): {} lookups per system and size after a warm-up, \
         {} for the legacy scan; the same random PRs for all; every system's answers checked \
         equal. \"Again\": the same lookups asked a second time by the same process, its \
         caches holding what the first pass read, as in a server that has run a while.\n",
        config.lookups, config.scans
    );
    let rows: Vec<Vec<String>> = report
        .sizes
        .iter()
        .map(|r| {
            vec![
                fmt_rate(r.verdicts as f64),
                p50_p99(r.history_store.p50_us, r.history_store.p99_us),
                p50_p99(r.history_sqlite.p50_us, r.history_sqlite.p99_us),
                p50_p99(r.history_store.again_p50_us, r.history_store.again_p99_us),
                p50_p99(r.history_sqlite.again_p50_us, r.history_sqlite.again_p99_us),
                p50_p99(r.history_http.p50_us, r.history_http.p99_us),
                p50_p99(r.history_legacy.p50_us, r.history_legacy.p99_us),
                ratio(r.history_sqlite.p50_us, r.history_store.p50_us),
                ratio(r.history_sqlite.again_p50_us, r.history_store.again_p50_us),
                ratio(r.history_legacy.p50_us, r.history_http.p50_us),
                format!(
                    "{} / {} / {} / {}",
                    mib(r.history_store.peak_rss_kib),
                    mib(r.history_sqlite.peak_rss_kib),
                    mib(r.history_http.peak_rss_kib),
                    mib(r.history_legacy.peak_rss_kib)
                ),
            ]
        })
        .collect();
    print_table(
        &[
            "verdicts",
            "store API p50 / p99",
            "SQLite p50 / p99",
            "store API again p50 / p99",
            "SQLite again p50 / p99",
            "lakehouse-kb HTTP p50 / p99",
            "legacy scan (Node, HTTP) p50 / p99",
            "SQLite p50 ÷ store p50",
            "again: SQLite ÷ store",
            "legacy p50 ÷ HTTP p50",
            "peak RSS store / SQLite / server / legacy",
        ],
        &rows,
    );

    println!(
        "Full export of outcomes.jsonl and ops.jsonl (both checked byte-equal to the legacy files) and import of the legacy files into a fresh database:\n"
    );
    let rows: Vec<Vec<String>> = report
        .sizes
        .iter()
        .filter(|r| r.bulk)
        .map(|r| {
            vec![
                fmt_rate(r.rows as f64),
                fmt_rate(r.export_store.rate()),
                fmt_rate(r.export_sqlite.rate()),
                ratio(r.export_store.rate(), r.export_sqlite.rate()),
                fmt_rate(r.import_store.rate()),
                fmt_rate(r.import_sqlite.rate()),
                ratio(r.import_store.rate(), r.import_sqlite.rate()),
                format!(
                    "{} / {}",
                    mib(r.import_store.peak_rss_kib),
                    mib(r.import_sqlite.peak_rss_kib)
                ),
            ]
        })
        .collect();
    print_table(
        &[
            "rows",
            "export rows/s, lakehouse-kb",
            "export rows/s, SQLite",
            "ratio",
            "import rows/s, lakehouse-kb",
            "import rows/s, SQLite",
            "ratio",
            "import peak RSS lakehouse-kb / SQLite",
        ],
        &rows,
    );
}
