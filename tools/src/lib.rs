//! Shared pieces of the lakehouse-kb benchmarks and harnesses: timing, percentiles, and a
//! markdown table printer, so every tool reports figures the same way; and one module per
//! measurement (`loadgen`, `querybench`) with the pieces they share (`server`, `client`), so
//! later comparisons reuse them behind thin binaries.

pub mod claims;
pub mod client;
pub mod compare;
pub mod costbench;
pub mod findingsbench;
pub mod loadgen;
pub mod memorybench;
pub mod querybench;
pub mod server;
pub mod synth;

pub mod crash;

use std::time::{Duration, Instant};

/// Latency samples of one measurement.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn with_capacity(n: usize) -> Samples {
        Samples(Vec::with_capacity(n))
    }

    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// Times `f` and records it.
    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.0.push(start.elapsed());
        out
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `p`-th percentile (0-100), nearest-rank.
    pub fn percentile(&mut self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.sort_unstable();
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }
}

/// Microseconds with one decimal, or milliseconds past 10 ms: how figures are printed.
pub fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// Rate with thousands grouped: `1 234 567/s`.
pub fn fmt_rate(n: f64) -> String {
    let whole = n.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Prints a markdown table.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    println!("| {} |", headers.join(" | "));
    println!(
        "|{}|",
        headers.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
    println!();
}

/// A temporary directory inside `dir`, or in the system temp dir when `None` (the tools'
/// `--dir`): benchmarks put their databases where the disk under test is. A `dir` that does
/// not exist yet is created, as `tools/run-benchmarks` does for its own.
pub fn temp_dir_in(dir: Option<&std::path::Path>) -> std::io::Result<tempfile::TempDir> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::tempdir_in(d)
        }
        None => tempfile::tempdir(),
    }
}

/// Whether two files hold the same bytes, read in chunks (exports of millions of rows are
/// compared without holding either in memory).
pub fn same_bytes(a: &std::path::Path, b: &std::path::Path) -> std::io::Result<bool> {
    use std::io::Read;
    if std::fs::metadata(a)?.len() != std::fs::metadata(b)?.len() {
        return Ok(false);
    }
    let (mut a, mut b) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(true);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

/// Size of a file in MiB.
pub fn file_mib(path: &std::path::Path) -> f64 {
    std::fs::metadata(path)
        .map(|m| m.len() as f64 / (1 << 20) as f64)
        .unwrap_or(0.0)
}

/// The 1, 5 and 15-minute load averages: the machine is shared, so every run logs them next to
/// its figures to show whether someone else's work was competing for the cores.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// Bytes a process has read from storage so far (`read_bytes` of `/proc/PID/io`): reads served
/// by the page cache do not count, so a rise shows lookups that went to the disk.
pub fn disk_read_bytes(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("read_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// A process's peak resident memory so far (`VmHWM` of `/proc/PID/status`), KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A one-line description of the machine, for the benchmark documents.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

/// PR history as the API reads it (counts, the finding sentence's newest outcomes, a page of
/// 50 audits) in the default namespace; returns how many audits the PR has.
pub fn store_pr_history(store: &lakehouse_kb::store::Store, pr_number: u64) -> anyhow::Result<u64> {
    let query = lakehouse_kb::store::HistoryQuery {
        repo: lakehouse_kb::model::Repo::default(),
        pr_number,
        exclude_sha: None,
        before_seq: None,
        limit: 50,
    };
    let mut budget = lakehouse_kb::store::ReadBudget::unlimited();
    Ok(store.pr_history(&query, &mut budget)?.count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Samples::default();
        for ms in 1..=100 {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.percentile(50.0), Duration::from_millis(50));
        assert_eq!(s.percentile(99.0), Duration::from_millis(99));
        assert_eq!(s.percentile(100.0), Duration::from_millis(100));
        assert_eq!(fmt_rate(1234567.4), "1 234 567");
    }

    /// `compare --dir /var/tmp/new` failed with "No such file or directory" until 2026-12-05.
    #[test]
    fn a_missing_dir_is_created_for_the_temporary_one() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("not/yet");
        let temp = temp_dir_in(Some(&dir)).unwrap();
        assert!(temp.path().starts_with(&dir) && temp.path().is_dir());
    }
}
