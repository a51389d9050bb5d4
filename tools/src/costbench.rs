//! The flat-cost benchmark (issue 16): verdicts cost the same whatever a head's history. One
//! run stores N re-audits of one head, then N verdicts of new heads, in NDJSON batches through
//! the real server, timing each batch, while another client posts unrelated events one at a time
//! and records their latency: the identity check is one lookup, so re-audits must not slow down
//! as a head's audits pile up, nor hold the writer from the events.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use bytes::Bytes;
use serde_json::json;

use crate::client::Connection;
use crate::server::ServerProcess;
use crate::{Samples, fmt_duration};

#[derive(Debug, Clone)]
pub struct CostConfig {
    /// The server binary.
    pub bin: PathBuf,
    /// Where the temporary data directory goes (the system temp dir if `None`).
    pub dir: Option<PathBuf>,
    /// Verdicts per scenario.
    pub verdicts: usize,
    /// Verdicts per NDJSON batch.
    pub batch: usize,
}

/// The figures of one scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    /// Time per verdict, over the first and the last tenth of the batches.
    pub first: Duration,
    pub last: Duration,
    /// Time per verdict over the whole scenario.
    pub mean: Duration,
    /// Latency of the unrelated events posted meanwhile.
    pub event_p50: Duration,
    pub event_p99: Duration,
    pub events: usize,
}

fn verdict(pr: u64, head: &str, i: usize) -> String {
    json!({
        "pr_number": pr,
        "head_sha": head,
        "audited_at": format!("2026-06-01T00:00:00.000Z#{i}"),
        "overall": "request_changes",
        "one_liner": format!("audit {i}"),
        "claims": [format!("claim {} of the upload path", i % 50)],
        "metrics": {"findings_block": 0, "findings_warn": 1},
    })
    .to_string()
}

pub fn run(config: &CostConfig, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Vec<Scenario>> {
    let temp = crate::temp_dir_in(config.dir.as_deref())?;
    let data = temp.path().join("data");
    let server = ServerProcess::start(&config.bin, &data, &[])?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut scenarios = Vec::new();
    let same_head = format!("{:040x}", 0xabcdef_u64);
    for (name, new_heads) in [("re-audits of one head", false), ("new heads", true)] {
        progress(name);
        let bodies: Vec<Bytes> = (0..config.verdicts)
            .collect::<Vec<_>>()
            .chunks(config.batch)
            .map(|chunk| {
                let lines: String = chunk
                    .iter()
                    .map(|&i| {
                        let (pr, head) = if new_heads {
                            (1_000 + i as u64, format!("{:08x}{:032x}", i, i))
                        } else {
                            (7, same_head.clone())
                        };
                        format!("{}\n", verdict(pr, &head, i))
                    })
                    .collect();
                Bytes::from(lines)
            })
            .collect();
        let addr = server.addr;
        scenarios.push(runtime.block_on(async move {
            let stop = Arc::new(AtomicBool::new(false));
            let events = tokio::spawn({
                let stop = stop.clone();
                async move {
                    let mut connection = Connection::open(addr).await?;
                    let mut latencies = Samples::default();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let body = json!({"source": "bot", "event_kind": "tick", "n": n});
                        let start = Instant::now();
                        let answer = connection
                            .post_json("/event", Bytes::from(body.to_string()))
                            .await?;
                        latencies.push(start.elapsed());
                        ensure!(
                            answer.status == 200,
                            "POST /event answered {}",
                            answer.status
                        );
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    anyhow::Ok(latencies)
                }
            });
            let mut connection = Connection::open(addr).await?;
            let mut per_batch = Vec::with_capacity(bodies.len());
            for body in bodies {
                let start = Instant::now();
                let answer = connection
                    .send(
                        hyper::Method::POST,
                        "/verdicts",
                        Some("application/x-ndjson"),
                        body,
                    )
                    .await?;
                ensure!(
                    answer.status == 200,
                    "POST /verdicts answered {}",
                    answer.status
                );
                per_batch.push(start.elapsed());
            }
            stop.store(true, Ordering::Relaxed);
            let mut latencies = events.await??;
            let per_verdict = |batches: &[Duration]| {
                batches.iter().sum::<Duration>() / (batches.len() * config.batch).max(1) as u32
            };
            let tenth = (per_batch.len() / 10).max(1);
            anyhow::Ok(Scenario {
                name,
                first: per_verdict(&per_batch[..tenth]),
                last: per_verdict(&per_batch[per_batch.len() - tenth..]),
                mean: per_verdict(&per_batch),
                event_p50: latencies.percentile(50.0),
                event_p99: latencies.percentile(99.0),
                events: latencies.len(),
            })
        })?);
    }
    server.stop()?;
    Ok(scenarios)
}

/// The scenarios as a table.
pub fn table(scenarios: &[Scenario]) -> Vec<Vec<String>> {
    scenarios
        .iter()
        .map(|s| {
            vec![
                s.name.to_owned(),
                fmt_duration(s.first),
                fmt_duration(s.last),
                fmt_duration(s.mean),
                format!("{} ({} events)", fmt_duration(s.event_p50), s.events),
                fmt_duration(s.event_p99),
            ]
        })
        .collect()
}
