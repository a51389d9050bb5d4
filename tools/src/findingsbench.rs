//! The findings-memory benchmark (issue 18): `POST /prs/{n}/findings/check` with 20 findings
//! against a PR with 50 audits, latency over HTTP against the real server; and the cost the
//! memory adds to `POST /verdicts`, as a ratio measured in the same run: the same verdict
//! bytes posted with their findings under `"findings"` (remembered) and under `"findingx"`, a
//! key of the same length the memory does not read, in alternating rounds, at 1 and at N
//! clients, and through `Store::write` in process.
//!
//! The findings are made the way an auditor's are across pushes: each PR has a pool of them
//! (a defect in a function, worded two ways), and each audit raises most of the last audit's
//! again (its lines moved, a fifth of them reworded), drops some and adds some. So a write
//! meets exact repeats, rewordings and new findings, and the check meets all three and the
//! PR's dismissals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::synth::Rng;
use anyhow::{Context, ensure};
use bytes::Bytes;
use lakehouse_kb::intake::verdict_record;
use lakehouse_kb::store::{Put, Store, StoreOptions};
use serde_json::{Value, json};

use crate::client::Connection;
use crate::loadgen::{CommitMetrics, commit_metrics};
use crate::server::ServerProcess;
use crate::{Samples, fmt_duration};

#[derive(Debug, Clone)]
pub struct FindingsConfig {
    /// The server binary.
    pub bin: PathBuf,
    /// Where the temporary data directories go (the system temp dir if `None`).
    pub dir: Option<PathBuf>,
    /// Other PRs stored before the measurements, with `audits_per_pr` audits each.
    pub background_prs: u64,
    pub audits_per_pr: usize,
    /// Audits of the PR the check asks about.
    pub audits: usize,
    /// Findings per check request.
    pub check_findings: usize,
    /// Timed check requests.
    pub checks: usize,
    /// Findings per verdict of the write measurement.
    pub write_findings: usize,
    /// Client counts of the write measurement.
    pub clients: Vec<usize>,
    /// Rounds (each variant once per round, alternating which goes first) and their length.
    pub rounds: usize,
    pub round: Duration,
    /// Verdicts per `Store::write` in the in-process measurement, and batches per variant.
    pub store_batch: usize,
    pub store_batches: usize,
    pub seed: u64,
}

/// The two variants of the write measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Findings under `"findings"`: remembered.
    Remembered,
    /// The same bytes with the key `"findingx"`: stored whole, not remembered.
    Ignored,
}

/// One variant at one client count: requests per second per round, and latencies.
#[derive(Debug, Clone)]
pub struct WriteFigures {
    pub clients: usize,
    pub variant: Variant,
    pub per_round: Vec<f64>,
    pub p50: Duration,
    pub p99: Duration,
    pub errors: usize,
    /// From the server's `/metrics` over this variant's rounds: durable commits, the requests
    /// they held, and the time inside them (fsync included).
    pub commits: f64,
    pub committed_requests: f64,
    pub commit_seconds: f64,
}

impl WriteFigures {
    /// The median of the rounds' requests per second.
    pub fn median_rps(&self) -> f64 {
        let mut v = self.per_round.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }
}

#[derive(Debug, Clone)]
pub struct FindingsResult {
    pub stored_verdicts: u64,
    /// The check over HTTP.
    pub check: (Duration, Duration, Duration),
    /// Mean answers per status in one check: new, repeat, reopened, dismissed.
    pub statuses: [f64; 4],
    /// The PR's distinct remembered findings.
    pub pr_findings: u64,
    pub writes: Vec<WriteFigures>,
    /// Median `Store::write` time per verdict: remembered, ignored.
    pub store_per_verdict: (Duration, Duration),
    /// Median time to make a verdict's records from its body (the request thread's share:
    /// parsing, the findings' fingerprints and terms): remembered, ignored.
    pub parse_per_verdict: (Duration, Duration),
}

const TEMPLATES: [(&str, [&str; 2]); 8] = [
    (
        "static",
        [
            "unwrap() on user input in {s} (src/lib.rs:{n}) can panic",
            "{s} unwraps user input at src/lib.rs:{n} and can panic",
        ],
    ),
    (
        "static",
        [
            "the result of tx.commit() is ignored in {s}",
            "{s} ignores the result of tx.commit()",
        ],
    ),
    (
        "tests",
        [
            "no test covers the error path of {s}",
            "the error path of {s} has no test covering it",
        ],
    ),
    (
        "tests",
        [
            "{s} is only tested on the happy path",
            "the tests of {s} cover only its happy path",
        ],
    ),
    (
        "security",
        [
            "{s} logs the bearer token at info level",
            "the bearer token is logged at info level by {s}",
        ],
    ),
    (
        "security",
        [
            "path from the request joined to the data directory without normalisation in {s}",
            "{s} joins the request's path to the data directory without normalising it",
        ],
    ),
    (
        "perf",
        [
            "{s} clones the whole verdict inside a hot loop (line {n})",
            "a whole verdict is cloned in a hot loop of {s} at line {n}",
        ],
    ),
    (
        "docs",
        [
            "docs/API.md does not mention the new status that {s} answers",
            "the new status {s} answers is missing from docs/API.md",
        ],
    ),
];

/// One finding of a PR's pool: a template and the function it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    template: usize,
    subject: u64,
}

fn subject_name(pr: u64, subject: u64) -> String {
    format!("handler_{pr}_{subject}")
}

fn finding(rng: &mut Rng, pr: u64, spec: Spec, reworded: bool) -> Value {
    let (check, forms) = TEMPLATES[spec.template];
    let summary = forms[usize::from(reworded)]
        .replace("{s}", &subject_name(pr, spec.subject))
        .replace("{n}", &(10 + rng.below(400)).to_string());
    json!({"check": check, "severity": "warn", "summary": summary})
}

/// The audits of one PR: each raises most of the last audit's findings again, drops some,
/// adds some.
struct PrAudits {
    pr: u64,
    raised: Vec<Spec>,
    next_subject: u64,
}

impl PrAudits {
    fn new(pr: u64) -> PrAudits {
        PrAudits {
            pr,
            raised: Vec::new(),
            next_subject: 0,
        }
    }

    fn fresh(&mut self, rng: &mut Rng) -> Spec {
        self.next_subject += 1;
        Spec {
            template: rng.below(TEMPLATES.len() as u64) as usize,
            subject: self.next_subject,
        }
    }

    /// The next audit's findings, about `n` of them.
    fn next(&mut self, rng: &mut Rng, n: usize) -> Vec<Value> {
        self.raised.retain(|_| rng.below(10) != 0);
        while self.raised.len() < n {
            let spec = self.fresh(rng);
            self.raised.push(spec);
        }
        let pr = self.pr;
        let specs = self.raised.clone();
        specs
            .into_iter()
            .map(|spec| {
                let reworded = rng.below(5) == 0;
                finding(rng, pr, spec, reworded)
            })
            .collect()
    }
}

fn verdict_body(pr: u64, id: u64, findings: Vec<Value>) -> String {
    json!({
        "pr_number": pr,
        "head_sha": format!("{:08x}{:032x}", pr as u32, id),
        "audited_at": format!("2026-06-01T00:00:00.000Z#{id}"),
        "overall": "request_changes",
        "one_liner": format!("audit {id}"),
        "findings": findings,
        "metrics": {"findings_block": 0, "findings_warn": 1},
    })
    .to_string()
}

/// The same bytes, the findings under a key the memory does not read.
fn ignored(body: &str) -> String {
    body.replacen("\"findings\":[", "\"findingx\":[", 1)
}

/// The PR the check asks about.
const CHECKED_PR: u64 = 1;

pub fn run(
    config: &FindingsConfig,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<FindingsResult> {
    let temp = crate::temp_dir_in(config.dir.as_deref())?;
    let data = temp.path().join("data");
    std::fs::create_dir_all(&data)?;
    let db_path = data.join(lakehouse_kb::store::DB_FILE);
    let mut rng = Rng::new(config.seed);
    let mut id = 0u64;

    progress(&format!(
        "loading PR {CHECKED_PR} with {} audits and {} other PRs",
        config.audits, config.background_prs
    ));
    let mut checked = PrAudits::new(CHECKED_PR);
    let mut background: Vec<PrAudits> = (0..config.background_prs)
        .map(|i| PrAudits::new(CHECKED_PR + 1 + i))
        .collect();
    let mut stored_verdicts = 0;
    {
        let store = Store::open(&db_path, StoreOptions::default())?;
        let mut puts = Vec::new();
        for _ in 0..config.audits {
            id += 1;
            let findings = checked.next(&mut rng, config.check_findings);
            puts.push(Put::from(verdict_record(
                verdict_body(CHECKED_PR, id, findings).as_bytes(),
                1,
            )?));
        }
        for _ in 0..config.audits_per_pr {
            for pr in &mut background {
                id += 1;
                let findings = pr.next(&mut rng, config.write_findings);
                puts.push(Put::from(verdict_record(
                    verdict_body(pr.pr, id, findings).as_bytes(),
                    1,
                )?));
            }
        }
        for chunk in puts.chunks(5_000) {
            store.write(chunk)?;
        }
        stored_verdicts += puts.len() as u64;
    }

    let server = ServerProcess::start(&config.bin, &data, &[])?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    progress("dismissals, then the check over HTTP");
    let (check, statuses, pr_findings) =
        runtime.block_on(measure_check(server.addr, config, &mut checked, &mut rng))?;

    let mut writes = Vec::new();
    for &clients in &config.clients {
        progress(&format!("POST /verdicts at {clients} clients"));
        let mut remembered = Vec::new();
        let mut ignored_rounds = Vec::new();
        let mut samples = [Samples::default(), Samples::default()];
        let mut errors = [0usize; 2];
        let mut commits = [CommitMetrics::default(); 2];
        for round in 0..config.rounds {
            let order = if round % 2 == 0 {
                [Variant::Remembered, Variant::Ignored]
            } else {
                [Variant::Ignored, Variant::Remembered]
            };
            for variant in order {
                let bodies = write_bodies(
                    &mut background,
                    &mut rng,
                    &mut id,
                    config.write_findings,
                    clients,
                    variant,
                );
                let before = runtime.block_on(commit_metrics(server.addr))?;
                let (rps, round_samples, round_errors) =
                    runtime.block_on(drive(server.addr, bodies, config.round))?;
                let after = runtime.block_on(commit_metrics(server.addr))?;
                let slot = usize::from(variant == Variant::Ignored);
                commits[slot].commits += after.commits - before.commits;
                commits[slot].requests += after.requests - before.requests;
                commits[slot].seconds += after.seconds - before.seconds;
                samples[slot].extend(round_samples);
                errors[slot] += round_errors;
                match variant {
                    Variant::Remembered => remembered.push(rps),
                    Variant::Ignored => ignored_rounds.push(rps),
                }
            }
        }
        for (slot, (variant, per_round)) in [
            (Variant::Remembered, remembered),
            (Variant::Ignored, ignored_rounds),
        ]
        .into_iter()
        .enumerate()
        {
            writes.push(WriteFigures {
                clients,
                variant,
                per_round,
                p50: samples[slot].percentile(50.0),
                p99: samples[slot].percentile(99.0),
                errors: errors[slot],
                commits: commits[slot].commits,
                committed_requests: commits[slot].requests,
                commit_seconds: commits[slot].seconds,
            });
        }
    }
    server.stop()?;

    progress("Store::write in process");
    let (store_per_verdict, parse_per_verdict) =
        measure_store(config, &mut background, &mut rng, &mut id)?;
    Ok(FindingsResult {
        stored_verdicts,
        check,
        statuses,
        pr_findings,
        writes,
        store_per_verdict,
        parse_per_verdict,
    })
}

/// Posts the PR's dismissals (a tenth of its findings in the PR, as many repository-wide of
/// other PRs'), then times `checks` check requests, each of `check_findings` findings: most
/// the latest audit's (lines moved), some reworded, some absent from it, some new.
async fn measure_check(
    addr: SocketAddr,
    config: &FindingsConfig,
    checked: &mut PrAudits,
    rng: &mut Rng,
) -> anyhow::Result<((Duration, Duration, Duration), [f64; 4], u64)> {
    let mut connection = Connection::open(addr).await?;
    let listed = connection
        .get(&format!("/prs/{CHECKED_PR}/findings?limit=1000"))
        .await?;
    ensure!(listed.status == 200, "listing answered {}", listed.status);
    let listed: Value = serde_json::from_slice(&listed.body)?;
    let remembered: Vec<String> = listed["findings"]
        .as_array()
        .context("findings")?
        .iter()
        .filter_map(|f| f["fingerprint"].as_str().map(str::to_owned))
        .collect();
    for (i, fp) in remembered.iter().enumerate().step_by(10) {
        let scope = if i % 20 == 0 {
            json!(CHECKED_PR)
        } else {
            Value::Null
        };
        let body = json!({"pr_number": scope, "fingerprint": fp, "reason": "bench", "by": "bench", "confirm": true});
        let answer = connection
            .post_json("/findings/dismissals", Bytes::from(body.to_string()))
            .await?;
        ensure!(answer.status == 201, "dismissal answered {}", answer.status);
    }
    let head = format!("{:08x}{:032x}", CHECKED_PR as u32, u64::MAX);
    let bodies: Vec<Bytes> = (0..config.checks + config.checks / 10)
        .map(|_| {
            let mut findings: Vec<Value> = Vec::with_capacity(config.check_findings);
            let mut raised = checked.raised.clone();
            while findings.len() < config.check_findings {
                let spec = if !raised.is_empty() && rng.below(5) != 0 {
                    raised.swap_remove(rng.below(raised.len() as u64) as usize)
                } else {
                    Spec {
                        template: rng.below(TEMPLATES.len() as u64) as usize,
                        subject: 10_000 + rng.below(1_000_000),
                    }
                };
                let reworded = rng.below(5) == 0;
                findings.push(finding(rng, CHECKED_PR, spec, reworded));
            }
            Bytes::from(json!({"head_sha": head, "findings": findings}).to_string())
        })
        .collect();
    let path = format!("/prs/{CHECKED_PR}/findings/check");
    let warmup = config.checks / 10;
    let mut samples = Samples::with_capacity(config.checks);
    let mut statuses = [0u64; 4];
    for (i, body) in bodies.into_iter().enumerate() {
        let start = Instant::now();
        let answer = connection.post_json(&path, body).await?;
        let took = start.elapsed();
        ensure!(answer.status == 200, "check answered {}", answer.status);
        if i < warmup {
            continue;
        }
        samples.push(took);
        let answer: Value = serde_json::from_slice(&answer.body)?;
        for (slot, name) in ["new", "repeat", "reopened", "dismissed"]
            .iter()
            .enumerate()
        {
            statuses[slot] += answer["counts"][name].as_u64().unwrap_or(0);
        }
    }
    let n = samples.len().max(1) as f64;
    Ok((
        (
            samples.percentile(50.0),
            samples.percentile(95.0),
            samples.percentile(99.0),
        ),
        statuses.map(|s| s as f64 / n),
        remembered.len() as u64,
    ))
}

/// Enough verdict bodies for one round at `clients` clients, one list per client.
fn write_bodies(
    prs: &mut [PrAudits],
    rng: &mut Rng,
    id: &mut u64,
    n_findings: usize,
    clients: usize,
    variant: Variant,
) -> Vec<Vec<Bytes>> {
    // More than a round can post: 4,000 a second at most for 1 client, 16,000 for many.
    let per_client = if clients == 1 {
        20_000
    } else {
        60_000 / clients
    };
    (0..clients)
        .map(|_| {
            (0..per_client)
                .map(|_| {
                    *id += 1;
                    let pr = &mut prs[rng.below(prs.len() as u64) as usize];
                    let body = verdict_body(pr.pr, *id, pr.next(rng, n_findings));
                    Bytes::from(match variant {
                        Variant::Remembered => body,
                        Variant::Ignored => ignored(&body),
                    })
                })
                .collect()
        })
        .collect()
}

/// One closed-loop client per body list, for `window`: requests per second, latencies and
/// errors.
async fn drive(
    addr: SocketAddr,
    bodies: Vec<Vec<Bytes>>,
    window: Duration,
) -> anyhow::Result<(f64, Samples, usize)> {
    let mut connections = Vec::with_capacity(bodies.len());
    for _ in 0..bodies.len() {
        connections.push(Connection::open(addr).await?);
    }
    let until = Instant::now() + window;
    let mut tasks = Vec::new();
    for (mut connection, list) in connections.into_iter().zip(bodies) {
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut errors = 0usize;
            for body in list {
                if Instant::now() >= until {
                    break;
                }
                let start = Instant::now();
                match connection.post_json("/verdicts", body).await {
                    Ok(answer) if answer.status == 201 => samples.push(start.elapsed()),
                    _ => errors += 1,
                }
            }
            (samples, errors)
        }));
    }
    let mut samples = Samples::default();
    let mut errors = 0;
    for task in tasks {
        let (s, e) = task.await?;
        samples.extend(s);
        errors += e;
    }
    let rps = samples.len() as f64 / window.as_secs_f64();
    Ok((rps, samples, errors))
}

/// Median `Store::write` time per verdict of batches of `store_batch` verdicts, each variant
/// on a store of its own, batches alternating; and the median time to make the records.
fn measure_store(
    config: &FindingsConfig,
    prs: &mut [PrAudits],
    rng: &mut Rng,
    id: &mut u64,
) -> anyhow::Result<((Duration, Duration), (Duration, Duration))> {
    let temp = crate::temp_dir_in(config.dir.as_deref())?;
    let stores = [
        Store::open(
            &temp.path().join("remembered.redb"),
            StoreOptions::default(),
        )?,
        Store::open(&temp.path().join("ignored.redb"), StoreOptions::default())?,
    ];
    let mut times = [Vec::new(), Vec::new()];
    let mut parse = [Vec::new(), Vec::new()];
    for batch in 0..config.store_batches * 2 {
        let slot = batch % 2;
        let bodies: Vec<String> = (0..config.store_batch)
            .map(|_| {
                *id += 1;
                let pr = &mut prs[rng.below(prs.len() as u64) as usize];
                let body = verdict_body(pr.pr, *id, pr.next(rng, config.write_findings));
                if slot == 0 { body } else { ignored(&body) }
            })
            .collect();
        let start = Instant::now();
        let puts = bodies
            .iter()
            .map(|body| Ok(Put::from(verdict_record(body.as_bytes(), 1)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        parse[slot].push(start.elapsed() / config.store_batch as u32);
        let start = Instant::now();
        stores[slot].write(&puts)?;
        times[slot].push(start.elapsed() / config.store_batch as u32);
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    Ok((
        (median(&mut times[0]), median(&mut times[1])),
        (median(&mut parse[0]), median(&mut parse[1])),
    ))
}

/// The report: the check, then the write cost.
pub fn print(result: &FindingsResult, config: &FindingsConfig) {
    let (p50, p95, p99) = result.check;
    println!(
        "POST /prs/{{n}}/findings/check, {} findings against a PR with {} audits ({} distinct \
         findings remembered), {} other PRs, {} verdicts stored:",
        config.check_findings,
        config.audits,
        result.pr_findings,
        config.background_prs,
        result.stored_verdicts
    );
    crate::print_table(
        &[
            "requests",
            "p50",
            "p95",
            "p99",
            "new / repeat / reopened / dismissed",
        ],
        &[vec![
            config.checks.to_string(),
            fmt_duration(p50),
            fmt_duration(p95),
            fmt_duration(p99),
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1}",
                result.statuses[0], result.statuses[1], result.statuses[2], result.statuses[3]
            ),
        ]],
    );
    println!(
        "POST /verdicts with {} findings each, remembered or not (the same bytes), {} rounds of \
         {:?} per variant, alternating:",
        config.write_findings, config.rounds, config.round
    );
    let mut rows = Vec::new();
    for pair in result.writes.chunks(2) {
        let [on, off] = pair else { continue };
        rows.push(vec![
            on.clients.to_string(),
            format!("{:.0}", on.median_rps()),
            format!("{:.0}", off.median_rps()),
            format!("{:.2}x", off.median_rps() / on.median_rps().max(1e-9)),
            format!("{} / {}", fmt_duration(on.p50), fmt_duration(off.p50)),
            format!("{} / {}", fmt_duration(on.p99), fmt_duration(off.p99)),
            format!(
                "{:.1} / {:.1}",
                on.committed_requests / on.commits.max(1.0),
                off.committed_requests / off.commits.max(1.0)
            ),
            format!(
                "{} / {}",
                fmt_duration(Duration::from_secs_f64(
                    on.commit_seconds / on.commits.max(1.0)
                )),
                fmt_duration(Duration::from_secs_f64(
                    off.commit_seconds / off.commits.max(1.0)
                ))
            ),
            format!("{} / {}", on.errors, off.errors),
        ]);
    }
    crate::print_table(
        &[
            "clients",
            "verdicts/s remembered",
            "verdicts/s not",
            "cost (not / remembered)",
            "p50 remembered / not",
            "p99 remembered / not",
            "requests/commit",
            "mean commit",
            "errors",
        ],
        &rows,
    );
    let (on, off) = result.store_per_verdict;
    println!(
        "Store::write, batches of {} verdicts: {} per verdict remembered, {} not ({:.2}x)",
        config.store_batch,
        fmt_duration(on),
        fmt_duration(off),
        on.as_secs_f64() / off.as_secs_f64().max(1e-12)
    );
    let (on, off) = result.parse_per_verdict;
    println!(
        "making a verdict's records from its body: {} remembered, {} not ({:.2}x)",
        fmt_duration(on),
        fmt_duration(off),
        on.as_secs_f64() / off.as_secs_f64().max(1e-12)
    );
}
