//! The ingest load generator: the real server binary on a fresh data directory per cell, N
//! keep-alive connections each sending seeded realistic write requests back to back (closed
//! loop), a warm-up, then a measured window. Reports requests/s, latency percentiles, errors,
//! and from the server's `/metrics` how many requests shared each durable commit. With
//! `heavy_clients`, that many more connections post heavy batches (verdicts with many findings)
//! beside the measured ones: what the measured route's latency is while the writer has heavy
//! work queued. With `heavy_readers`, that many more connections read a large answer
//! ([`HEAVY_READ_RECORDS`] records under one sig_hash) back to back: what the measured route's
//! latency is while the server builds and sends large answers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::synth::Synth;
use anyhow::Context;
use bytes::Bytes;
use hyper::Method;
use lakehouse_kb::model::Verdict;

use crate::client::Connection;
use crate::server::ServerProcess;
use crate::{Samples, fmt_duration, fmt_rate};

/// A write route under load, with the bodies it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /event`: observer events from all four sources (a quarter are the auditor's own
    /// event, the body `indexVerdictToObserver` posted).
    Event,
    /// `POST /verdicts`: auditor verdicts across PRs, with new heads and re-audits.
    Verdicts,
    /// `POST /verdicts` with the same verdicts' claims left out: run beside `verdicts`, it
    /// measures what indexing the claims (hashes and postings) costs a write.
    VerdictsWithoutClaims,
    /// `POST /verdicts` of [`heavy_batch`]es, all of PR [`HEAVY_PR`]: the heavy load beside
    /// the measured clients (`LoadConfig::heavy_clients`).
    Heavy,
    /// `GET /sig/{HEAVY_READ_SIG}?limit=1000`: a large answer, read beside the measured clients
    /// (`LoadConfig::heavy_readers`).
    HeavyRead,
}

impl Route {
    pub fn path(self) -> &'static str {
        match self {
            Route::Event => "/event",
            Route::Verdicts | Route::VerdictsWithoutClaims | Route::Heavy => "/verdicts",
            Route::HeavyRead => HEAVY_READ_PATH,
        }
    }

    pub fn method(self) -> Method {
        match self {
            Route::HeavyRead => Method::GET,
            _ => Method::POST,
        }
    }

    /// The content type of its bodies (none for a read).
    pub fn content_type(self) -> Option<&'static str> {
        match self {
            Route::Heavy => Some("application/x-ndjson"),
            Route::HeavyRead => None,
            _ => Some("application/json"),
        }
    }

    /// The route's name in tables and errors.
    pub fn label(self) -> &'static str {
        match self {
            Route::Event => "POST /event",
            Route::Verdicts => "POST /verdicts",
            Route::VerdictsWithoutClaims => "POST /verdicts, claims left out",
            Route::Heavy => "POST /verdicts, batches of verdicts with findings",
            Route::HeavyRead => "GET /sig of a large answer",
        }
    }

    /// The next request body for this route.
    pub fn body(self, synth: &mut Synth) -> String {
        match self {
            Route::Heavy => heavy_batch(synth, HEAVY_PR),
            Route::HeavyRead => String::new(),
            Route::Verdicts => synth.verdict(),
            Route::VerdictsWithoutClaims => {
                let mut verdict: serde_json::Value =
                    serde_json::from_str(&synth.verdict()).expect("synth verdicts are JSON");
                verdict
                    .as_object_mut()
                    .expect("synth verdicts are objects")
                    .remove("claims");
                verdict.to_string()
            }
            Route::Event if synth.rng().below(4) == 0 => Verdict::parse(&synth.verdict())
                .expect("synth verdicts are valid")
                .observer_body(),
            Route::Event => synth.event(),
        }
    }
}

impl std::str::FromStr for Route {
    type Err = String;

    fn from_str(s: &str) -> Result<Route, String> {
        match s.trim_start_matches('/') {
            "event" => Ok(Route::Event),
            "verdicts" => Ok(Route::Verdicts),
            "verdicts-without-claims" => Ok(Route::VerdictsWithoutClaims),
            "heavy" => Ok(Route::Heavy),
            _ => Err(format!(
                "unknown route {s:?} (event, verdicts, verdicts-without-claims or heavy)"
            )),
        }
    }
}

/// What to run: every combination of route, client count and group-commit setting.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server binary.
    pub bin: PathBuf,
    /// Where the per-cell temporary data directories go (the system temp dir if `None`).
    pub dir: Option<PathBuf>,
    pub routes: Vec<Route>,
    pub clients: Vec<usize>,
    pub group_commit: Vec<bool>,
    pub warmup: Duration,
    pub duration: Duration,
    pub seed: u64,
    /// PR numbers the verdicts spread over.
    pub n_prs: u64,
    /// Extra `serve` arguments (e.g. `--queue-capacity 4096`).
    pub server_args: Vec<String>,
    /// Connections posting [`heavy_batch`]es back to back beside the measured clients.
    pub heavy_clients: usize,
    /// Connections reading a large answer back to back beside the measured clients.
    pub heavy_readers: usize,
}

/// Records stored under [`HEAVY_READ_SIG`] before a cell with heavy readers, and the bytes of
/// each one's summary: an answer of about 8.2 MB, `--max-response`'s default limit.
pub const HEAVY_READ_RECORDS: usize = 1_000;
pub const HEAVY_READ_SUMMARY_BYTES: usize = 8_000;
pub const HEAVY_READ_SIG: &str = "loadgen-heavy-read";
const HEAVY_READ_PATH: &str = "/sig/loadgen-heavy-read?limit=1000";

/// Stores the records heavy readers read: NDJSON batches of events of one sig_hash.
async fn store_heavy_read_records(addr: SocketAddr) -> anyhow::Result<()> {
    let mut connection = Connection::open(addr).await?;
    let summary = "s".repeat(HEAVY_READ_SUMMARY_BYTES);
    for batch in 0..HEAVY_READ_RECORDS / 100 {
        let body: String = (0..100)
            .map(|i| {
                let event = serde_json::json!({
                    "source": "scenario", "sig_hash": HEAVY_READ_SIG, "i": batch * 100 + i,
                    "input_summary": summary,
                });
                format!("{event}\n")
            })
            .collect();
        let answer = connection
            .send(
                Method::POST,
                "/event",
                Some("application/x-ndjson"),
                Bytes::from(body),
            )
            .await?;
        anyhow::ensure!(
            answer.status == 200,
            "storing the heavy readers' records: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    Ok(())
}

/// Verdicts in one heavy batch, and distinct findings in each: about 960 KB of NDJSON that
/// takes the writer about 0.3 s of a release build (docs/benchmarks/log-2026-12.md).
pub const HEAVY_VERDICTS: usize = 30;
pub const HEAVY_FINDINGS: usize = 256;
/// The PR every heavy batch is of (none of the measured verdicts' PRs).
pub const HEAVY_PR: u64 = 900_000_000;

/// A heavy write: an NDJSON batch of [`HEAVY_VERDICTS`] new verdicts of PR `pr`, each with
/// [`HEAVY_FINDINGS`] findings no verdict before had (the memory compares each with the PR's
/// most recently raised ones and stores it).
pub fn heavy_batch(synth: &mut Synth, pr: u64) -> String {
    let mut out = String::with_capacity(HEAVY_VERDICTS * 33_000);
    for _ in 0..HEAVY_VERDICTS {
        let rng = synth.rng();
        let head = rng.hex(40);
        let findings: Vec<serde_json::Value> = (0..HEAVY_FINDINGS)
            .map(|_| {
                let words: Vec<&str> = (0..8).map(|_| *rng.pick(&HEAVY_WORDS)).collect();
                let summary = format!("{} in src/mod_{}.rs", words.join(" "), rng.hex(8));
                serde_json::json!({"check": "static", "severity": "warn", "summary": summary})
            })
            .collect();
        let verdict = serde_json::json!({
            "pr_number": pr, "head_sha": head, "overall": "block", "one_liner": "heavy",
            "metrics": {"findings_block": 0, "findings_warn": HEAVY_FINDINGS},
            "audited_at": "2026-12-06T00:00:00.000Z", "findings": findings,
        });
        out.push_str(&verdict.to_string());
        out.push('\n');
    }
    out
}

const HEAVY_WORDS: [&str; 16] = [
    "buffer",
    "handler",
    "retry",
    "timeout",
    "index",
    "cache",
    "parser",
    "socket",
    "queue",
    "writer",
    "reader",
    "token",
    "schema",
    "export",
    "unchecked",
    "leaks",
];

/// The figures of one (route, clients, group commit) cell.
#[derive(Debug, Clone)]
pub struct CellResult {
    pub route: Route,
    pub clients: usize,
    pub group_commit: bool,
    /// What the clients measured.
    pub drive: Drive,
    /// Durable commits the server made during the window (from `/metrics`).
    pub commits: f64,
    /// Requests those commits held (from `/metrics`).
    pub committed_requests: f64,
    /// Total time inside those commits, fsync included (from `/metrics`).
    pub commit_seconds: f64,
    /// What the heavy clients beside the measured ones saw, when there were any.
    pub heavy: Option<Drive>,
    /// What the heavy readers beside the measured ones saw, when there were any.
    pub heavy_reads: Option<Drive>,
    /// The server's peak RSS at the cell's end, KiB.
    pub server_peak_rss_kib: Option<u64>,
}

impl CellResult {
    pub fn requests_per_sec(&self) -> f64 {
        self.drive.requests_per_sec()
    }

    /// Requests sharing one fsync'd commit, on average.
    pub fn requests_per_commit(&self) -> f64 {
        self.committed_requests / self.commits.max(1.0)
    }

    pub fn mean_commit(&self) -> Duration {
        Duration::from_secs_f64(self.commit_seconds / self.commits.max(1.0))
    }
}

/// Runs every cell in order (route, then group commit on/off, then clients) and returns them.
/// `progress` hears about each cell as it finishes.
pub fn run(
    config: &LoadConfig,
    mut progress: impl FnMut(&CellResult),
) -> anyhow::Result<Vec<CellResult>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for &route in &config.routes {
        for &group_commit in &config.group_commit {
            for &clients in &config.clients {
                let dir = crate::temp_dir_in(config.dir.as_deref())?;
                let mut args = vec!["--group-commit".to_owned(), group_commit.to_string()];
                args.extend(config.server_args.iter().cloned());
                let server = ServerProcess::start(&config.bin, dir.path(), &args)?;
                let mut cell = runtime
                    .block_on(run_cell(config, server.addr, route, clients, group_commit))
                    .with_context(|| format!("{} with {clients} clients", route.label()))?;
                cell.server_peak_rss_kib = server.pid().and_then(crate::peak_rss_kib);
                server.stop()?;
                progress(&cell);
                results.push(cell);
            }
        }
    }
    Ok(results)
}

struct ClientOutcome {
    samples: Samples,
    errors: usize,
    first_error: Option<String>,
}

/// What a closed-loop drive of one address measured.
#[derive(Debug, Clone)]
pub struct Drive {
    /// Requests answered 2xx inside the measured window.
    pub ok: usize,
    /// Non-2xx answers and transport errors inside the measured window.
    pub errors: usize,
    pub first_error: Option<String>,
    pub window: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    /// The machine's load average when the window opened (the machine is shared).
    pub load_average: String,
}

impl Drive {
    pub fn requests_per_sec(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }
}

/// Drives any HTTP server speaking the route (lakehouse-kb, the legacy observer, a no-op
/// handler): `n_clients` keep-alive connections sending seeded bodies back to back for
/// `warmup + duration`; `at_window_open` runs when the measured window opens. Each client's
/// bodies depend only on `seed` and its index, so every server gets the same requests.
pub async fn drive(
    addr: SocketAddr,
    route: Route,
    n_clients: usize,
    warmup: Duration,
    duration: Duration,
    seed: u64,
    n_prs: u64,
) -> anyhow::Result<Drive> {
    // Connections are opened before the clock starts.
    let mut connections = Vec::with_capacity(n_clients);
    for _ in 0..n_clients {
        connections.push(Connection::open(addr).await?);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + warmup;
    let measure_to = measure_from + duration;
    let mut tasks = Vec::with_capacity(n_clients);
    for (client_idx, connection) in connections.into_iter().enumerate() {
        // Each client its own stream of records, all distinct (random 40-digit heads).
        let seed = seed.wrapping_mul(1_000_003).wrapping_add(client_idx as u64);
        let synth = Synth::new(seed, n_prs);
        tasks.push(tokio::spawn(client_loop(
            addr,
            connection,
            route,
            synth,
            start,
            measure_from,
            measure_to,
        )));
    }
    tokio::time::sleep_until((measure_from).into()).await;
    let load_average = crate::load_average();
    let mut samples = Samples::default();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let outcome = task.await?;
        samples.extend(outcome.samples);
        errors += outcome.errors;
        first_error = first_error.or(outcome.first_error);
    }
    Ok(Drive {
        ok: samples.len(),
        errors,
        first_error,
        window: duration,
        p50: samples.percentile(50.0),
        p99: samples.percentile(99.0),
        p999: samples.percentile(99.9),
        load_average,
    })
}

async fn run_cell(
    config: &LoadConfig,
    addr: SocketAddr,
    route: Route,
    n_clients: usize,
    group_commit: bool,
) -> anyhow::Result<CellResult> {
    // The commit counters are read as the window opens (after the warm-up) and once every
    // client has stopped: the commits after the window are only the last requests'.
    let metrics_at_open = async {
        tokio::time::sleep(config.warmup + Duration::from_millis(20)).await;
        commit_metrics(addr).await
    };
    // The clients beside the measured ones, each kind with seeds of its own.
    let beside = |route: Route, n_clients: usize, seed_offset: u64| async move {
        if n_clients == 0 {
            return Ok(None);
        }
        let seed = config.seed.wrapping_add(seed_offset);
        drive(
            addr,
            route,
            n_clients,
            config.warmup,
            config.duration,
            seed,
            config.n_prs,
        )
        .await
        .map(Some)
    };
    if config.heavy_readers > 0 {
        store_heavy_read_records(addr).await?;
    }
    let heavy = beside(Route::Heavy, config.heavy_clients, 1);
    let heavy_reads = beside(Route::HeavyRead, config.heavy_readers, 2);
    let (drive, before, heavy, heavy_reads) = tokio::join!(
        drive(
            addr,
            route,
            n_clients,
            config.warmup,
            config.duration,
            config.seed,
            config.n_prs,
        ),
        metrics_at_open,
        heavy,
        heavy_reads,
    );
    let (drive, before, heavy, heavy_reads) = (drive?, before?, heavy?, heavy_reads?);
    let after = commit_metrics(addr).await?;
    Ok(CellResult {
        route,
        clients: n_clients,
        group_commit,
        drive,
        commits: after.commits - before.commits,
        committed_requests: after.requests - before.requests,
        commit_seconds: after.seconds - before.seconds,
        heavy,
        heavy_reads,
        server_peak_rss_kib: None,
    })
}

/// One closed-loop client: the next request goes out as soon as the last one is answered.
/// Latency and success count for requests that complete inside `[measure_from, measure_to]`.
async fn client_loop(
    addr: SocketAddr,
    mut connection: Connection,
    route: Route,
    mut synth: Synth,
    start: Instant,
    measure_from: Instant,
    measure_to: Instant,
) -> ClientOutcome {
    let mut outcome = ClientOutcome {
        samples: Samples::with_capacity(1 << 14),
        errors: 0,
        first_error: None,
    };
    tokio::time::sleep_until(start.into()).await;
    loop {
        // The body is generated before the timer starts: only the round trip is measured.
        let body = Bytes::from(route.body(&mut synth));
        let sent = Instant::now();
        if sent >= measure_to {
            break;
        }
        let answer = connection
            .send(route.method(), route.path(), route.content_type(), body)
            .await;
        let done = Instant::now();
        let measured = done >= measure_from && done <= measure_to;
        let error = match answer {
            Ok(answer) if (200..300).contains(&answer.status) => None,
            Ok(answer) => Some(format!(
                "{} {}: {}",
                route.path(),
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )),
            Err(e) => {
                // A broken connection is replaced; the failed request counts as an error.
                if let Ok(fresh) = Connection::open(addr).await {
                    connection = fresh;
                }
                Some(format!("{}: {e:#}", route.label()))
            }
        };
        if !measured {
            continue;
        }
        match error {
            None => outcome.samples.push(done - sent),
            Some(message) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert(message);
            }
        }
    }
    outcome
}

/// Cumulative commit counters read from `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitMetrics {
    pub commits: f64,
    pub requests: f64,
    pub seconds: f64,
}

/// Reads `lakehousekb_commit_batch_requests_{count,sum}` and
/// `lakehousekb_commit_duration_seconds_sum` from the server's `/metrics`.
pub async fn commit_metrics(addr: SocketAddr) -> anyhow::Result<CommitMetrics> {
    let mut connection = Connection::open(addr).await?;
    let answer = connection.get("/metrics").await?;
    let text = String::from_utf8_lossy(&answer.body);
    let value = |name: &str| -> anyhow::Result<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("{name} missing from /metrics"))
    };
    Ok(CommitMetrics {
        commits: value("lakehousekb_commit_batch_requests_count")?,
        requests: value("lakehousekb_commit_batch_requests_sum")?,
        seconds: value("lakehousekb_commit_duration_seconds_sum")?,
    })
}

/// Prints one markdown table per route: every client count with group commit on and off, and
/// the ratio to the one-commit-per-request baseline at the same client count.
pub fn print_report(results: &[CellResult]) {
    let mut routes: Vec<Route> = results.iter().map(|r| r.route).collect();
    routes.dedup();
    for route in routes {
        println!("{}:", route.label());
        let mut rows = Vec::new();
        for cell in results.iter().filter(|c| c.route == route) {
            let baseline = results
                .iter()
                .find(|b| b.route == route && b.clients == cell.clients && !b.group_commit);
            let ratio = baseline.map_or("-".to_owned(), |b| {
                format!(
                    "{:.1}x",
                    cell.requests_per_sec() / b.requests_per_sec().max(f64::MIN_POSITIVE)
                )
            });
            rows.push(vec![
                cell.clients.to_string(),
                if cell.group_commit { "on" } else { "off" }.to_owned(),
                fmt_rate(cell.requests_per_sec()),
                ratio,
                fmt_duration(cell.drive.p50),
                fmt_duration(cell.drive.p99),
                fmt_duration(cell.drive.p999),
                cell.drive.errors.to_string(),
                format!("{:.1}", cell.requests_per_commit()),
                fmt_duration(cell.mean_commit()),
                cell.drive
                    .load_average
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            ]);
        }
        crate::print_table(
            &[
                "clients",
                "group commit",
                "requests/s",
                "vs off",
                "p50",
                "p99",
                "p99.9",
                "errors",
                "requests/commit",
                "commit mean",
                "load avg",
            ],
            &rows,
        );
        for cell in results.iter().filter(|c| c.route == route) {
            if let Some(heavy) = &cell.heavy {
                println!(
                    "beside {} clients, group commit {}: {} heavy batches answered in the window, \
                     p50 {}, p99 {}, {} errors",
                    cell.clients,
                    if cell.group_commit { "on" } else { "off" },
                    heavy.ok,
                    fmt_duration(heavy.p50),
                    fmt_duration(heavy.p99),
                    heavy.errors
                );
            }
            if let Some(reads) = &cell.heavy_reads {
                println!(
                    "beside {} clients, group commit {}: {} large answers read in the window, \
                     p50 {}, p99 {}, {} errors (503s among them)",
                    cell.clients,
                    if cell.group_commit { "on" } else { "off" },
                    reads.ok,
                    fmt_duration(reads.p50),
                    fmt_duration(reads.p99),
                    reads.errors
                );
            }
            if let Some(kib) = cell.server_peak_rss_kib {
                println!(
                    "server peak RSS at {} clients, group commit {}: {} MiB",
                    cell.clients,
                    if cell.group_commit { "on" } else { "off" },
                    kib / 1024
                );
            }
            if let Some(e) = &cell.drive.first_error {
                println!(
                    "first error at {} clients, group commit {}: {e}",
                    cell.clients, cell.group_commit
                );
            }
        }
    }
}
