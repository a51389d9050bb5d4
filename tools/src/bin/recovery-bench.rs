//! Start-up after a crash: builds databases of N records, then times restart-to-healthy after
//! a clean stop and after `kill -9` (redb repairs an uncleanly closed file at open, in time
//! proportional to the file), and counts how often `/healthz` answered 503 "recovering"
//! meanwhile: the port answers throughout instead of refusing connections.
//!
//! cargo build --release && cargo run --release -p lakehouse-kb-tools --bin recovery-bench -- \
//!     --records 1000000,10000000 --dir /var/tmp/kb-recovery

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use lakehouse_kb::ingest::{event_record, outcome_record, verdict_record};
use lakehouse_kb::store::{Put, Store, StoreOptions};
use lakehouse_kb::synth::Synth;
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
    let binary = args.server.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .expect("own path")
            .with_file_name("lakehouse-kb")
    });
    let server = Launcher {
        binary,
        quick_repair: args.quick_repair,
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
        for _ in 0..args.rounds {
            // Clean: a graceful stop, then a start.
            let s = Server::start(&server, &data)?;
            s.wait_healthy()?;
            s.stop()?;
            let start = Instant::now();
            let s = Server::start(&server, &data)?;
            s.wait_healthy()?;
            clean.push(start.elapsed());
            // Crashed: writes, kill -9, then a start that must repair.
            s.post_some()?;
            s.kill();
            let start = Instant::now();
            let s = Server::start(&server, &data)?;
            let (_, seen) = s.wait_healthy()?;
            crashed.push(start.elapsed());
            recovering_answers += seen;
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

/// How to start the server under test.
struct Launcher {
    binary: PathBuf,
    quick_repair: bool,
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(launcher: &Launcher, data: &Path) -> anyhow::Result<Server> {
        let mut child = Command::new(&launcher.binary)
            .arg("--data")
            .arg(data)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(launcher.quick_repair.then_some("--quick-repair"))
            .env("LAKEHOUSE_KB_LOG", "lakehouse_kb=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let base = line
            .trim()
            .strip_prefix("lakehouse-kb listening on ")
            .ok_or_else(|| anyhow::anyhow!("unexpected first line {line:?}"))?
            .to_owned();
        Ok(Server { child, base })
    }

    /// Polls `/healthz` until 200; returns the time and the 503 answers seen on the way.
    fn wait_healthy(&self) -> anyhow::Result<(Duration, u64)> {
        let start = Instant::now();
        let client = reqwest::blocking::Client::new();
        let mut recovering = 0;
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send() {
                match r.status().as_u16() {
                    200 => return Ok((start.elapsed(), recovering)),
                    503 => recovering += 1,
                    other => anyhow::bail!("/healthz answered {other}"),
                }
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(1800),
                "not healthy after 30 min"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn post_some(&self) -> anyhow::Result<()> {
        let client = reqwest::blocking::Client::new();
        for i in 0..100 {
            let r = client
                .post(format!("{}/event", self.base))
                .header("content-type", "application/json")
                .body(format!(r#"{{"source":"bot","i":{i}}}"#))
                .send()?;
            anyhow::ensure!(r.status().is_success());
        }
        Ok(())
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}
