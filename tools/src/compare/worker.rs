//! Storage-layer measurements, each run in a child process (this executable's `worker`
//! subcommand) so the peak memory it reports is that system's alone: the job goes in as JSON
//! on the command line, the figures come back as one JSON line on stdout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::synth::Synth;
use anyhow::{Context, bail, ensure};
use lakehouse_kb::export::ExportJob;
use lakehouse_kb::import::{self, ImportOptions, NoProgress};
use lakehouse_kb::intake::event_record;
use lakehouse_kb::store::{DB_FILE, IMPORT_CACHE_MB, Put, Record, Store, StoreOptions};
use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::sqlite::{self, Sqlite};
use crate::Samples;

/// Which storage a job runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    /// lakehouse-kb's `Store` (redb, its tables, indexes, counters and codec), no HTTP.
    Store,
    /// redb alone: one table `seq -> line`, no index, no codec: the floor under the store.
    RawRedb,
    /// SQLite, WAL, `synchronous=FULL` (`sqlite.rs`).
    Sqlite,
}

impl System {
    pub fn label(self) -> &'static str {
        match self {
            System::Store => "lakehouse-kb store API",
            System::RawRedb => "raw redb (one table)",
            System::Sqlite => "SQLite (WAL, FULL)",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// One writer committing `batch` observer events per durable commit for `seconds`.
    Ingest {
        system: System,
        dir: PathBuf,
        batch: usize,
        seconds: f64,
        seed: u64,
    },
    /// The PR history of every pick, in order, after a warm-up of the first 200.
    History {
        system: System,
        dir: PathBuf,
        picks: Vec<u64>,
    },
    /// A full export of `outcomes.jsonl` and `ops.jsonl` into `out`.
    Export {
        system: System,
        dir: PathBuf,
        out: PathBuf,
    },
    /// An import of the legacy directory `from` into a fresh database in `dir`.
    Import {
        system: System,
        dir: PathBuf,
        from: PathBuf,
    },
}

/// What a job measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figures {
    /// Events committed, lookups answered or rows exported/imported.
    pub items: u64,
    pub seconds: f64,
    /// Per commit (ingest) or per lookup (history), microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
    /// History: audits found over all picks (to check every system answers the same).
    pub answers: u64,
    /// History: the p50 and p99 of the same picks asked again by the same process, its caches
    /// holding what the first pass read (as in a server that has run a while).
    #[serde(default)]
    pub again_p50_us: f64,
    #[serde(default)]
    pub again_p99_us: f64,
    /// The process's peak resident memory (VmHWM), KiB.
    pub peak_rss_kib: u64,
}

impl Figures {
    /// One item per sample, its p50 and p99, over `elapsed`.
    pub fn timed(samples: &mut Samples, elapsed: Duration, answers: u64) -> Figures {
        Figures {
            items: samples.len() as u64,
            seconds: elapsed.as_secs_f64(),
            p50_us: samples.percentile(50.0).as_secs_f64() * 1e6,
            p99_us: samples.percentile(99.0).as_secs_f64() * 1e6,
            answers,
            ..Figures::default()
        }
    }

    pub fn rate(&self) -> f64 {
        self.items as f64 / self.seconds.max(1e-9)
    }
}

/// Runs `job` in a child process and returns its figures.
pub fn run_in_child(job: &Job) -> anyhow::Result<Figures> {
    let output = Command::new(std::env::current_exe()?)
        .arg("worker")
        .arg(serde_json::to_string(job)?)
        .output()
        .context("starting a worker")?;
    if !output.status.success() {
        bail!(
            "worker {job:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("worker output {stdout:?}"))
}

/// The `worker` subcommand: runs the job and prints its figures.
pub fn worker_main(job_json: &str) -> anyhow::Result<()> {
    let job: Job = serde_json::from_str(job_json)?;
    let mut figures = run(&job)?;
    figures.peak_rss_kib = crate::peak_rss_kib(std::process::id()).unwrap_or(0);
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

fn run(job: &Job) -> anyhow::Result<Figures> {
    match job {
        Job::Ingest {
            system,
            dir,
            batch,
            seconds,
            seed,
        } => ingest(
            *system,
            dir,
            *batch,
            Duration::from_secs_f64(*seconds),
            *seed,
        ),
        Job::History { system, dir, picks } => history(*system, dir, picks),
        Job::Export { system, dir, out } => export(*system, dir, out),
        Job::Import { system, dir, from } => import_into(*system, dir, from),
    }
}

const RAW_EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

fn ingest(
    system: System,
    dir: &Path,
    batch: usize,
    duration: Duration,
    seed: u64,
) -> anyhow::Result<Figures> {
    // A pool of distinct events, cycled: generating bodies is not what is measured.
    let mut synth = Synth::new(seed, 1000);
    let pool: Vec<Record> = (0..4096)
        .map(|i| event_record(synth.event().as_bytes(), 1_775_000_000_000 + i))
        .collect::<Result<_, _>>()?;
    let mut next = 0;
    let mut take = || {
        let records: Vec<&Record> = (0..batch)
            .map(|_| {
                next = (next + 1) % pool.len();
                &pool[next]
            })
            .collect();
        records
    };
    let mut commits = Samples::default();
    let mut events = 0u64;
    let start = Instant::now();
    match system {
        System::Store => {
            let store = Store::open(&dir.join(DB_FILE), StoreOptions::default())?;
            while start.elapsed() < duration {
                let puts: Vec<Put> = take().into_iter().cloned().map(Put::from).collect();
                commits.time(|| store.write(&puts))?;
                events += batch as u64;
            }
        }
        System::RawRedb => {
            let db = redb::Database::create(dir.join("raw.redb"))?;
            let mut seq = 0u64;
            while start.elapsed() < duration {
                let records = take();
                commits.time(|| -> anyhow::Result<()> {
                    let tx = db.begin_write()?;
                    {
                        let mut table = tx.open_table(RAW_EVENTS)?;
                        for record in records {
                            let Record::Event(e) = record else {
                                unreachable!("the pool holds events")
                            };
                            seq += 1;
                            table.insert(seq, e.value.line.as_bytes())?;
                        }
                    }
                    tx.commit()?;
                    Ok(())
                })?;
                events += batch as u64;
            }
            ensure!(
                db.begin_read()?.open_table(RAW_EVENTS)?.len()? == seq,
                "raw redb lost events"
            );
        }
        System::Sqlite => {
            let mut db = Sqlite::open(&dir.join(sqlite::DB_FILE))?;
            while start.elapsed() < duration {
                let records = take();
                commits.time(|| db.write(&records))?;
                events += batch as u64;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Figures {
        items: events,
        seconds,
        p50_us: commits.percentile(50.0).as_secs_f64() * 1e6,
        p99_us: commits.percentile(99.0).as_secs_f64() * 1e6,
        ..Figures::default()
    })
}

fn history(system: System, dir: &Path, picks: &[u64]) -> anyhow::Result<Figures> {
    let lookup: Box<dyn Fn(u64) -> anyhow::Result<usize>> = match system {
        System::Store => {
            let store = Store::open(&dir.join(DB_FILE), StoreOptions::default())?;
            Box::new(move |pr| Ok(crate::store_pr_history(&store, pr)? as usize))
        }
        System::Sqlite => {
            let db = Sqlite::open(&dir.join(sqlite::DB_FILE))?;
            Box::new(move |pr| db.pr_history(pr))
        }
        System::RawRedb => bail!("raw redb has no index to ask"),
    };
    for &pr in picks.iter().take(200) {
        lookup(pr)?;
    }
    let mut samples = Samples::with_capacity(picks.len());
    let mut answers = 0;
    let start = Instant::now();
    for &pr in picks {
        answers += samples.time(|| lookup(pr))? as u64;
    }
    let mut figures = Figures::timed(&mut samples, start.elapsed(), answers);
    let mut again = Samples::with_capacity(picks.len());
    for &pr in picks {
        again.time(|| lookup(pr))?;
    }
    figures.again_p50_us = again.percentile(50.0).as_secs_f64() * 1e6;
    figures.again_p99_us = again.percentile(99.0).as_secs_f64() * 1e6;
    Ok(figures)
}

fn export(system: System, dir: &Path, out: &Path) -> anyhow::Result<Figures> {
    let start = Instant::now();
    let rows = match system {
        System::Store => {
            let store = Arc::new(Store::open(&dir.join(DB_FILE), StoreOptions::default())?);
            let report = ExportJob::new(store, out.to_owned()).run()?;
            report.outcomes.rows_written + report.ops.rows_written
        }
        System::Sqlite => Sqlite::open(&dir.join(sqlite::DB_FILE))?.export(out)?,
        System::RawRedb => bail!("raw redb has no export"),
    };
    Ok(Figures {
        items: rows,
        seconds: start.elapsed().as_secs_f64(),
        ..Figures::default()
    })
}

fn import_into(system: System, dir: &Path, from: &Path) -> anyhow::Result<Figures> {
    std::fs::create_dir_all(dir)?;
    let start = Instant::now();
    let rows = match system {
        System::Store => {
            // As `lakehouse-kb import` opens it.
            let options = StoreOptions {
                cache_mb: IMPORT_CACHE_MB,
                ..StoreOptions::default()
            };
            let store = Store::open(&dir.join(DB_FILE), options)?;
            let report = import::import(&store, from, &ImportOptions::default(), &mut NoProgress)?;
            ensure!(
                report.outcomes.rejected + report.ops.rejected == 0,
                "the import rejected lines: {:?}",
                report.rejections
            );
            report.outcomes.stored + report.ops.stored
        }
        System::Sqlite => {
            Sqlite::open(&dir.join(sqlite::DB_FILE))?.import(from, import::DEFAULT_BATCH_SIZE)?
        }
        System::RawRedb => bail!("raw redb has no import"),
    };
    Ok(Figures {
        items: rows,
        seconds: start.elapsed().as_secs_f64(),
        ..Figures::default()
    })
}
