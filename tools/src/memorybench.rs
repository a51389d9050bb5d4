//! The review-memory benchmark: neighbours by similar claims over HTTP against the real server
//! on a database of N verdicts with 3 claims each (`POST /neighbors` with a new PR's claims, and
//! `GET /prs/{n}/neighbors`), as latency percentiles. What writing that memory costs is
//! measured by `loadgen --routes verdicts,verdicts-without-claims` (docs/BENCHMARKS.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::synth::Rng;
use anyhow::ensure;
use bytes::Bytes;
use lakehouse_kb::intake::verdict_record;
use lakehouse_kb::model::text::TermCounts;
use lakehouse_kb::store::{Put, Store, StoreOptions};
use serde_json::{Value, json};

use crate::claims::ClaimGen;
use crate::client::Connection;
use crate::server::ServerProcess;
use crate::{Samples, fmt_duration};

#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// The server binary.
    pub bin: PathBuf,
    /// Where the temporary data directory goes (the system temp dir if `None`).
    pub dir: Option<PathBuf>,
    /// Verdicts stored before the queries.
    pub verdicts: usize,
    /// Claims per verdict (and per query).
    pub claims: usize,
    /// Timed queries per route.
    pub queries: usize,
    /// Audits per PR (PR numbers span verdicts / this).
    pub audits_per_pr: usize,
    pub seed: u64,
}

/// Latency figures of one route.
#[derive(Debug, Clone)]
pub struct RouteFigures {
    pub route: &'static str,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    /// Mean neighbours answered.
    pub mean_neighbors: f64,
}

#[derive(Debug, Clone)]
pub struct MemoryResult {
    pub verdicts: usize,
    pub claims: usize,
    pub load: Duration,
    pub db_mib: f64,
    /// The share of stored claims the commonest term is in.
    pub commonest_term_share: f64,
    pub routes: Vec<RouteFigures>,
}

fn verdict_body(pr: u64, i: usize, claims: &[String]) -> String {
    let overall = ["approve", "request_changes", "block"][i % 3];
    json!({
        "pr_number": pr,
        "head_sha": format!("{:08x}{:032x}", pr as u32, i),
        "audited_at": format!("2026-05-01T00:00:00.000Z#{i}"),
        "overall": overall,
        "one_liner": format!("reason {i}"),
        "claims": claims,
        "metrics": {"findings_block": 0, "findings_warn": 1},
    })
    .to_string()
}

pub fn run(config: &MemoryConfig, progress: &mut dyn FnMut(&str)) -> anyhow::Result<MemoryResult> {
    let temp = crate::temp_dir_in(config.dir.as_deref())?;
    let data = temp.path().join("data");
    std::fs::create_dir_all(&data)?;
    let db_path = data.join(lakehouse_kb::store::DB_FILE);
    let mut claims = ClaimGen::new(config.seed);
    let n_prs = (config.verdicts / config.audits_per_pr.max(1)).max(1) as u64;

    progress(&format!("loading {} verdicts", config.verdicts));
    let started = Instant::now();
    let mut df: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    {
        let store = Store::open(&db_path, StoreOptions::default())?;
        let mut puts = Vec::with_capacity(10_000);
        for i in 0..config.verdicts {
            let texts: Vec<String> = (0..config.claims).map(|_| claims.claim()).collect();
            for text in &texts {
                for (term, _) in TermCounts::of(text).terms {
                    *df.entry(term).or_default() += 1;
                }
            }
            let pr = 1 + (i as u64 % n_prs);
            let body = verdict_body(pr, i, &texts);
            puts.push(Put::from(verdict_record(body.as_bytes(), 1)?));
            if puts.len() == 10_000 || i + 1 == config.verdicts {
                store.write(&puts)?;
                puts.clear();
            }
        }
    }
    let load = started.elapsed();
    let db_mib = crate::file_mib(&db_path);
    let n_claims = (config.verdicts * config.claims).max(1) as f64;
    let commonest_term_share = df.values().copied().max().unwrap_or(0) as f64 / n_claims;

    progress("querying over HTTP");
    let server = ServerProcess::start(&config.bin, &data, &[])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rng = Rng::new(config.seed ^ 0x5eed);
    let queries: Vec<Bytes> = (0..config.queries)
        .map(|_| {
            let texts: Vec<String> = (0..config.claims).map(|_| claims.claim()).collect();
            Bytes::from(json!({"claims": texts, "limit": 10}).to_string())
        })
        .collect();
    let common: Vec<Bytes> = (0..config.queries)
        .map(|_| {
            let texts: Vec<String> = (0..config.claims).map(|_| claims.common_claim()).collect();
            Bytes::from(json!({"claims": texts, "limit": 10}).to_string())
        })
        .collect();
    let prs: Vec<u64> = (0..config.queries).map(|_| 1 + rng.below(n_prs)).collect();
    let routes = runtime.block_on(async {
        let mut connection = Connection::open(server.addr).await?;
        let warmup = (config.queries / 10).max(1);
        for body in queries.iter().take(warmup) {
            connection.post_json("/neighbors", body.clone()).await?;
        }
        let mut posted = Samples::with_capacity(queries.len());
        let mut found = 0usize;
        for body in &queries {
            let start = Instant::now();
            let answer = connection.post_json("/neighbors", body.clone()).await?;
            posted.push(start.elapsed());
            ensure!(
                answer.status == 200,
                "POST /neighbors answered {}",
                answer.status
            );
            found += neighbors_in(&answer.body)?;
        }
        let post = figures("POST /neighbors", &mut posted, found, queries.len());
        let mut worst = Samples::with_capacity(common.len());
        let mut found = 0usize;
        for body in &common {
            let start = Instant::now();
            let answer = connection.post_json("/neighbors", body.clone()).await?;
            worst.push(start.elapsed());
            ensure!(
                answer.status == 200,
                "POST /neighbors answered {}",
                answer.status
            );
            found += neighbors_in(&answer.body)?;
        }
        let worst = figures(
            "POST /neighbors, common words only",
            &mut worst,
            found,
            common.len(),
        );
        let mut by_pr = Samples::with_capacity(prs.len());
        let mut found = 0usize;
        for pr in &prs {
            let path = format!("/prs/{pr}/neighbors?limit=10");
            let start = Instant::now();
            let answer = connection.get(&path).await?;
            by_pr.push(start.elapsed());
            ensure!(answer.status == 200, "{path} answered {}", answer.status);
            found += neighbors_in(&answer.body)?;
        }
        let get = figures("GET /prs/{n}/neighbors", &mut by_pr, found, prs.len());
        anyhow::Ok(vec![post, get, worst])
    })?;
    server.stop()?;
    Ok(MemoryResult {
        verdicts: config.verdicts,
        claims: config.claims,
        load,
        db_mib,
        commonest_term_share,
        routes,
    })
}

fn neighbors_in(body: &[u8]) -> anyhow::Result<usize> {
    let answer: Value = serde_json::from_slice(body)?;
    Ok(answer["count"].as_u64().unwrap_or(0) as usize)
}

fn figures(route: &'static str, samples: &mut Samples, found: usize, n: usize) -> RouteFigures {
    RouteFigures {
        route,
        p50: samples.percentile(50.0),
        p95: samples.percentile(95.0),
        p99: samples.percentile(99.0),
        mean_neighbors: found as f64 / n.max(1) as f64,
    }
}

/// The result as a table.
pub fn table(result: &MemoryResult) -> Vec<Vec<String>> {
    result
        .routes
        .iter()
        .map(|r| {
            vec![
                r.route.to_owned(),
                format!("{} × {}", result.verdicts, result.claims),
                fmt_duration(r.p50),
                fmt_duration(r.p95),
                fmt_duration(r.p99),
                format!("{:.1}", r.mean_neighbors),
            ]
        })
        .collect()
}
