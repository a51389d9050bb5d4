//! The crash harness: runs the real server on a data directory, has concurrent writers log
//! every write the server acknowledged, kills the server with SIGKILL at random moments (also
//! in the middle of a schema migration and of an export), restarts it, and finally verifies:
//! every acknowledged record is stored exactly once; an unacknowledged verdict (with its KB
//! row and event) or batch is wholly present or wholly absent; counters equal a recount
//! (`check`, which also compares every index with a rebuild); the exported files equal a clean
//! export.
//!
//! Every write carries an `Idempotency-Key`, and every write that got no answer (the server
//! died) or a 503 is retried with the same key, by a writer of the next life, as an honest
//! client would: retried writes must never be stored twice.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::synth::Rng;
use lakehouse_kb::store::Store;
use lakehouse_kb_migrations::frozen_verdict_v1::{self, VerdictV1};
use lakehouse_kb_migrations::v0001_initial;
use serde_json::{Value, json};

use crate::server::ServerProcess;

/// What a run does.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `lakehouse-kb` binary under test.
    pub server: PathBuf,
    /// The data directory (created; should be empty).
    pub data: PathBuf,
    /// Concurrent writers.
    pub writers: usize,
    /// Server kills (each followed by a restart).
    pub kills: usize,
    /// A server lives this long (uniformly random, ms) before it is killed.
    pub life_ms: (u64, u64),
    /// Verdicts in the version-1 file the first server must migrate (0: start empty, no
    /// migration kill).
    pub prefill_v1_verdicts: u64,
    /// Ask for an export just before some kills (needs the export routes).
    pub kill_during_export: bool,
    /// More `serve` arguments (e.g. `--export-interval 300ms`).
    pub extra_serve_args: Vec<String>,
    pub seed: u64,
}

/// What a run found. `lost` and `duplicated` must be 0, `check_passed` and `export_matches`
/// true.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub kills: usize,
    pub kills_during_migration: usize,
    pub kills_during_export: usize,
    pub acknowledged: BTreeMap<&'static str, u64>,
    pub unacknowledged: u64,
    pub unacknowledged_present: u64,
    /// Writes sent again (with their key) after no answer or a 503.
    pub retried: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub torn: u64,
    pub recovery_ms: Vec<u64>,
    pub check_passed: bool,
    pub export_matches: Option<bool>,
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.torn == 0
            && self.check_passed
            && self.export_matches != Some(false)
            && self.problems.is_empty()
    }
}

/// What was stored by one write, as its writer saw it.
#[derive(Debug, Clone)]
enum Stored {
    Event {
        sig: String,
    },
    Outcome {
        sig: String,
    },
    /// A verdict: its sig_hash and audited_at identify it, with its row and event.
    Verdict {
        sig: String,
        audited_at: String,
    },
    Batch {
        sigs: Vec<String>,
    },
}

/// One write: the request (sent again as it was, key included, when it is retried) and what
/// it stores.
#[derive(Debug, Clone)]
struct Write {
    path: &'static str,
    content_type: &'static str,
    body: String,
    key: String,
    stored: Stored,
}

impl Write {
    fn kind(&self) -> &'static str {
        match self.stored {
            Stored::Event { .. } => "events",
            Stored::Outcome { .. } => "outcome rows",
            Stored::Verdict { .. } => "verdicts",
            Stored::Batch { .. } => "batches",
        }
    }
}

#[derive(Default)]
struct Log {
    acked: Vec<Write>,
    unacked: Vec<Write>,
}

pub fn run(config: &Config) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&config.data)?;
    let mut report = Report::default();
    let mut rng = Rng::new(config.seed);
    let log = Arc::new(Mutex::new(Log::default()));
    let mut next_id = 0u64;

    if config.prefill_v1_verdicts > 0 {
        prefill_version_1(&config.data.join("kb.redb"), config.prefill_v1_verdicts)?;
    }

    for cycle in 0..config.kills {
        let started = Instant::now();
        let mut server = spawn(config)?;
        if cycle == 0 && config.prefill_v1_verdicts > 0 {
            // Kill in the middle of the version-2 backfill the first start runs.
            server.wait_for_log("migrating database schema", Duration::from_secs(60))?;
            std::thread::sleep(Duration::from_millis(rng.below(50)));
            let healthy = server.healthy();
            server.kill();
            if !healthy {
                report.kills_during_migration += 1;
            }
            report.kills += 1;
            continue;
        }
        server.wait_healthy_within(Duration::from_secs(120))?;
        report
            .recovery_ms
            .push(started.elapsed().as_millis() as u64);

        let stop = Arc::new(AtomicBool::new(false));
        // Unacknowledged writes are retried with their keys, as an honest client would: they
        // must end up stored exactly once.
        let retry: Vec<Write> = std::mem::take(&mut log.lock().unwrap().unacked);
        report.retried += retry.len() as u64;
        let retry = Arc::new(Mutex::new(retry));
        let writers: Vec<_> = (0..config.writers)
            .map(|w| {
                let base = server.base_url();
                let (stop, log, retry) = (stop.clone(), log.clone(), retry.clone());
                let seed = config.seed ^ ((cycle as u64) << 32) ^ w as u64;
                let first_id = next_id + w as u64 * 1_000_000;
                std::thread::spawn(move || writer(&base, seed, first_id, &stop, &log, &retry))
            })
            .collect();
        next_id += config.writers as u64 * 1_000_000;

        let life = config.life_ms.0 + rng.below(config.life_ms.1 - config.life_ms.0 + 1);
        std::thread::sleep(Duration::from_millis(life));
        if config.kill_during_export && rng.chance(50) {
            // Kill while an export is (very likely) running.
            let base = server.base_url();
            std::thread::spawn(move || {
                let _ = reqwest::blocking::Client::new()
                    .post(format!("{base}/export"))
                    .send();
            });
            std::thread::sleep(Duration::from_millis(1 + rng.below(5)));
            report.kills_during_export += 1;
        }
        server.kill();
        report.kills += 1;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        }
        // Whatever was being retried and was not reached stays unacknowledged.
        let left = std::mem::take(&mut *retry.lock().unwrap());
        log.lock().unwrap().unacked.extend(left);
    }

    // A clean last life: the server comes back by itself, then everything is verified.
    let started = Instant::now();
    let mut server = spawn(config)?;
    server.wait_healthy_within(Duration::from_secs(120))?;
    report
        .recovery_ms
        .push(started.elapsed().as_millis() as u64);
    let log = std::mem::take(&mut *log.lock().unwrap());
    verify(&server, &log, config.prefill_v1_verdicts, &mut report)?;
    server.stop()?;

    let check = Command::new(&config.server)
        .arg("--data")
        .arg(&config.data)
        .arg("check")
        .output()?;
    report.check_passed = check.status.success();
    if !report.check_passed {
        report.problems.push(format!(
            "check failed:\n{}",
            String::from_utf8_lossy(&check.stdout)
        ));
    }
    report.export_matches = compare_exports(config)?;
    Ok(report)
}

/// One writer: a random mix of events, verdicts (new heads and re-audits), outcome rows and
/// NDJSON batches, plus retries of verdicts a killed server never acknowledged.
fn writer(
    base: &str,
    seed: u64,
    first_id: u64,
    stop: &AtomicBool,
    log: &Mutex<Log>,
    retry: &Mutex<Vec<Write>>,
) -> anyhow::Result<()> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut rng = Rng::new(seed);
    let mut id = first_id;
    let mut heads: Vec<(u64, String)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        id += 1;
        let retried = if rng.chance(20) {
            retry.lock().unwrap().pop()
        } else {
            None
        };
        let write = match retried {
            Some(write) => write,
            None => new_write(&mut rng, id, &mut heads),
        };
        let sent = client
            .post(format!("{base}{}", write.path))
            .header("content-type", write.content_type)
            .header("idempotency-key", &write.key)
            .body(write.body.clone())
            .send();
        match sent {
            Ok(response) if response.status().is_success() => log.lock().unwrap().acked.push(write),
            Ok(response) if response.status().as_u16() == 503 => {
                log.lock().unwrap().unacked.push(write)
            }
            Ok(response) => {
                let status = response.status();
                anyhow::bail!(
                    "{} answered {status}: {}",
                    write.path,
                    response.text().unwrap_or_default()
                );
            }
            Err(_) => {
                // The server died under us: this write is unacknowledged; stop.
                log.lock().unwrap().unacked.push(write);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A new write: a random mix of events, verdicts (new heads and re-audits), outcome rows and
/// NDJSON batches, each with a key of its own.
fn new_write(rng: &mut Rng, id: u64, heads: &mut Vec<(u64, String)>) -> Write {
    let key = format!("w{id}");
    let (path, content_type, body, stored) = match rng.below(10) {
        0..=2 => {
            let sig = format!("e{id}");
            let body = json!({"source": "bot", "event_kind": "crash", "sig_hash": sig, "n": id});
            (
                "/event",
                "application/json",
                body.to_string(),
                Stored::Event { sig },
            )
        }
        3..=5 => {
            let (pr, head) = if !heads.is_empty() && rng.chance(30) {
                heads[rng.below(heads.len() as u64) as usize].clone()
            } else {
                let head = (
                    1 + rng.below(40),
                    format!("{:016x}{:024x}", id, rng.next_u64()),
                );
                heads.push(head.clone());
                head
            };
            let audited_at = format!("2026-11-24T00:00:00.000Z#{id}");
            let body = json!({
                "pr_number": pr, "head_sha": head, "overall": "block", "one_liner": format!("w{id}"),
                "claims": [format!("claim {} about the {} module", rng.below(20), rng.below(7))],
                "findings": findings(rng, pr),
                "metrics": {"findings_block": 1, "findings_warn": 0, "audit_duration_ms": id % 5000},
                "audited_at": audited_at,
            })
            .to_string();
            let sig = format!("pr{pr}-{}", &head[..8]);
            (
                "/verdicts",
                "application/json",
                body,
                Stored::Verdict { sig, audited_at },
            )
        }
        6..=7 => {
            let sig = format!("o{id}");
            let body = json!({"sig_hash": sig, "staffer_id": "staffer-1", "n": id});
            (
                "/outcomes",
                "application/json",
                body.to_string(),
                Stored::Outcome { sig },
            )
        }
        _ => {
            let n = 5 + rng.below(16);
            let sigs: Vec<String> = (0..n).map(|k| format!("b{id}-{k}")).collect();
            let body: String = sigs
                .iter()
                .map(|s| format!("{}\n", json!({"source": "scenario", "sig_hash": s})))
                .collect();
            (
                "/event",
                "application/x-ndjson",
                body,
                Stored::Batch { sigs },
            )
        }
    };
    Write {
        path,
        content_type,
        body,
        key,
        stored,
    }
}

/// A verdict's findings: a few of its PR's, each as first worded or reworded, its line
/// moved, so that the findings memory (checked against a rebuild by `check`) sees repeats,
/// rewordings, findings that go and come back, and new ones.
fn findings(rng: &mut Rng, pr: u64) -> Value {
    const SUBJECTS: [&str; 5] = [
        "parse_body",
        "write_batch",
        "export_now",
        "check_token",
        "upload_with_retry",
    ];
    let wordings: [(&str, [&str; 2]); 3] = [
        (
            "static",
            [
                "unwrap() on user input in {s} (src/lib.rs:{n}) can panic",
                "{s} unwraps user input at src/lib.rs:{n} and can panic",
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
            "security",
            [
                "{s} logs the bearer token at info level",
                "the bearer token is logged at info level by {s}",
            ],
        ),
    ];
    (0..rng.below(4))
        .map(|_| {
            let (check, forms) = wordings[rng.below(3) as usize];
            let subject = SUBJECTS[((pr + rng.below(2)) % 5) as usize];
            let summary = forms[rng.below(2) as usize]
                .replace("{s}", subject)
                .replace("{n}", &(10 + rng.below(90)).to_string());
            json!({"check": check, "severity": "warn", "summary": summary})
        })
        .collect()
}

/// Checks the stored records against the log.
fn verify(
    server: &ServerProcess,
    log: &Log,
    prefill: u64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let client = reqwest::blocking::Client::new();
    // Each sig_hash is read once and summarised: a long run puts thousands of records under
    // one sig_hash, and hundreds of thousands of writes are checked against them.
    let mut by_sig: HashMap<String, SigSummary> = HashMap::new();
    let base = server.base_url();
    for (write, acked) in log
        .acked
        .iter()
        .map(|w| (w, true))
        .chain(log.unacked.iter().map(|w| (w, false)))
    {
        // How many copies of the write are stored (for a verdict or batch: of each part).
        let copies: Vec<usize> = match &write.stored {
            Stored::Event { sig } => {
                vec![SigSummary::get(&mut by_sig, &client, &base, sig)?.events]
            }
            Stored::Outcome { sig } => {
                vec![SigSummary::get(&mut by_sig, &client, &base, sig)?.outcomes]
            }
            Stored::Batch { sigs } => {
                let mut copies = Vec::new();
                for sig in sigs {
                    copies.push(SigSummary::get(&mut by_sig, &client, &base, sig)?.events);
                }
                copies
            }
            Stored::Verdict { sig, audited_at } => {
                SigSummary::get(&mut by_sig, &client, &base, sig)?
                    .verdict_parts
                    .get(audited_at)
                    .copied()
                    .unwrap_or_default()
                    .to_vec()
            }
        };
        let all_once = copies.iter().all(|&c| c == 1);
        let none = copies.iter().all(|&c| c == 0);
        if copies.iter().any(|&c| c > 1) {
            report.duplicated += 1;
            report
                .problems
                .push(format!("stored more than once: {write:?} ({copies:?})"));
        } else if acked && !all_once {
            report.lost += 1;
            report
                .problems
                .push(format!("acknowledged but missing: {write:?} ({copies:?})"));
        } else if !all_once && !none {
            report.torn += 1;
            report
                .problems
                .push(format!("partly stored: {write:?} ({copies:?})"));
        }
        if acked {
            *report.acknowledged.entry(write.kind()).or_default() += 1;
        } else {
            report.unacknowledged += 1;
            report.unacknowledged_present += u64::from(all_once);
        }
    }
    let stats: Value = client
        .get(format!("{}/stats", server.base_url()))
        .send()?
        .json()?;
    if stats["verdicts"].as_u64().unwrap_or(0) < prefill {
        report.problems.push(format!(
            "the {prefill} migrated verdicts are not all there: {stats}"
        ));
    }
    Ok(())
}

/// What is stored under one sig_hash, counted for the checks.
#[derive(Debug, Default)]
struct SigSummary {
    events: usize,
    outcomes: usize,
    /// By `audited_at`: the verdicts, the KB rows and the observer events carrying it.
    verdict_parts: HashMap<String, [usize; 3]>,
}

impl SigSummary {
    /// The summary of `sig`, fetched on first use.
    fn get<'a>(
        by_sig: &'a mut HashMap<String, SigSummary>,
        client: &reqwest::blocking::Client,
        base: &str,
        sig: &str,
    ) -> anyhow::Result<&'a SigSummary> {
        if !by_sig.contains_key(sig) {
            by_sig.insert(sig.to_owned(), SigSummary::fetch(client, base, sig)?);
        }
        Ok(&by_sig[sig])
    }

    /// Reads every page of `GET /sig/{sig}`: many writes share a sig_hash (all heads of a PR
    /// start with 8 zeros).
    fn fetch(
        client: &reqwest::blocking::Client,
        base: &str,
        sig: &str,
    ) -> anyhow::Result<SigSummary> {
        let mut found = SigSummary::default();
        let mut after_seq = 0;
        loop {
            let answer: Value = client
                .get(format!("{base}/sig/{sig}?limit=1000&after_seq={after_seq}"))
                .send()?
                .json()?;
            for record in answer["records"].as_array().into_iter().flatten() {
                found.add(record);
            }
            match answer["next_after_seq"].as_u64() {
                Some(next) => after_seq = next,
                None => return Ok(found),
            }
        }
    }

    fn add(&mut self, record: &Value) {
        let (part, audited_at) = match record["type"].as_str() {
            Some("verdict") => (0, &record["verdict"]["audited_at"]),
            Some("outcome") => {
                self.outcomes += 1;
                (1, &record["row"]["audited_at"])
            }
            Some("event") => {
                self.events += 1;
                (2, &record["body"]["audited_at"])
            }
            _ => return,
        };
        if let Some(at) = audited_at.as_str() {
            self.verdict_parts.entry(at.to_owned()).or_default()[part] += 1;
        }
    }
}

/// `None` when the binary has no `export` command yet.
fn compare_exports(config: &Config) -> anyhow::Result<Option<bool>> {
    let clean = config.data.join("clean-export");
    let _ = std::fs::remove_dir_all(&clean);
    let run = |out: &Path| {
        Command::new(&config.server)
            .arg("--data")
            .arg(&config.data)
            .arg("export")
            .arg("--out")
            .arg(out)
            .output()
    };
    // Bring the incremental export (left behind by the killed servers) up to date, then make
    // a clean one from scratch, and compare.
    let incremental = run(&config.data)?;
    if !incremental.status.success() {
        return Ok(None);
    }
    let fresh = run(&clean)?;
    anyhow::ensure!(
        fresh.status.success(),
        "clean export failed: {}",
        String::from_utf8_lossy(&fresh.stderr)
    );
    for file in ["_kb/outcomes.jsonl", "_observer/ops.jsonl"] {
        if !crate::same_bytes(&config.data.join(file), &clean.join(file))? {
            return Ok(Some(false));
        }
    }
    Ok(Some(true))
}

/// Writes a version-1 file with `n` verdicts (as a version-1 binary would have), so the
/// first server must migrate it.
fn prefill_version_1(path: &Path, n: u64) -> anyhow::Result<()> {
    Store::create_at_version(path, 1)?;
    let db = redb::Database::create(path)?;
    let txn = db.begin_write()?;
    {
        let mut verdicts = txn.open_table(v0001_initial::VERDICTS)?;
        let mut keys = txn.open_table(v0001_initial::VERDICT_KEYS)?;
        let mut meta = txn.open_table(lakehouse_kb_migrations::META)?;
        for seq in 1..=n {
            let head = format!("{:08x}{seq:032x}", seq.wrapping_mul(2_654_435_761) as u32);
            let sig = format!("pr{}-{}", 1000 + seq % 500, &head[..8]);
            let value = VerdictV1 {
                pr_number: 1000 + seq % 500,
                head_sha: head.clone(),
                audited_at: format!("v1-{seq}"),
                overall: "approve".into(),
                one_liner: "migrated".into(),
                findings_block: 0,
                findings_warn: 0,
                findings_info: None,
                audit_duration_ms: None,
                received_at_ms: 0,
                raw_json: json!({"claims": [format!("claim {}", seq % 20)]}).to_string(),
            };
            verdicts.insert(
                (sig.as_str(), seq),
                frozen_verdict_v1::encode(&value).as_slice(),
            )?;
            keys.insert(
                (value.pr_number, head.as_str(), value.audited_at.as_str()),
                seq,
            )?;
        }
        meta.insert("last_seq", n)?;
        meta.insert("count/verdicts", n)?;
        meta.insert("count/verdicts/overall/approve", n)?;
    }
    txn.commit()?;
    Ok(())
}

fn spawn(config: &Config) -> anyhow::Result<ServerProcess> {
    ServerProcess::spawn(&config.server, &config.data, &config.extra_serve_args)
}
