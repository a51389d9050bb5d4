//! The standard `process_*` metrics (CPU time, memory, file descriptors, start time), read from
//! `/proc/self` at each scrape, as the Go and Python clients do. Where `/proc` cannot be read
//! (another OS, a sandbox hiding it) the metrics are left out rather than reported as zero:
//! the start time needs the boot time from `/proc/stat`, which the systemd unit's
//! `ProcSubset=pid` hides, so under that unit it is the one left out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug, Default)]
pub struct ProcessCollector;

/// One reading of `/proc/self`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    /// `None` without the boot time (`/proc/stat` hidden).
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads `/proc/self/stat` and the boot time in `/proc/stat`.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let proc_stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        ProcessStats::parse(
            &stat,
            &proc_stat,
            rustix::param::clock_ticks_per_second(),
            rustix::param::page_size() as u64,
        )
    }

    /// `stat` is `/proc/self/stat`: the command name, in parentheses, may hold spaces and
    /// parentheses itself, so the fields are counted from the last `)` (proc(5): field 3 is
    /// the state, 14 utime, 15 stime, 22 starttime, 23 vsize, 24 rss).
    pub fn parse(stat: &str, proc_stat: &str, ticks: u64, page_size: u64) -> Option<ProcessStats> {
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        let ticks = ticks.max(1) as f64;
        let boot_time: Option<u64> = proc_stat
            .lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|text| text.trim().parse().ok());
        let started = field(22)? as f64 / ticks;
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            resident_bytes: field(24)?.saturating_mul(page_size),
            virtual_bytes: field(23)?,
            start_time_seconds: boot_time.map(|boot| boot as f64 + started),
        })
    }
}

/// Entries in `/proc/self/fd` (the directory handle the count itself opens included, as in
/// the other clients).
fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(stats) = ProcessStats::read() {
            let cpu = ConstCounter::new(stats.cpu_seconds);
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                cpu.metric_type(),
            )?;
            cpu.encode(m)?;
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                stats.resident_bytes as f64,
            )?;
            gauge(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                stats.virtual_bytes as f64,
            )?;
            if let Some(start_time) = stats.start_time_seconds {
                gauge(
                    &mut encoder,
                    "process_start_time_seconds",
                    "Start time of the process since the Unix epoch in seconds",
                    start_time,
                )?;
            }
        }
        if let Some(n) = open_fds() {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                n as f64,
            )?;
        }
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if let Some(max) = limit.current {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors",
                max as f64,
            )?;
        }
        Ok(())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(m)
}

#[cfg(test)]
mod tests {
    use super::ProcessStats;

    #[test]
    fn parses_proc_self_stat_with_a_hostile_command_name() {
        // A command name may hold spaces and parentheses: fields count from the last `)`.
        let stat = "4242 (kb) (x y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 \
                    12000 1048576 256 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0";
        let proc_stat = "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n";
        let stats = ProcessStats::parse(stat, proc_stat, 100, 4096).unwrap();
        assert_eq!(
            stats,
            ProcessStats {
                cpu_seconds: 3.0,
                resident_bytes: 256 * 4096,
                virtual_bytes: 1_048_576,
                start_time_seconds: Some(1_700_000_120.0),
            }
        );
        assert_eq!(ProcessStats::parse("garbage", proc_stat, 100, 4096), None);
        let without_boot_time = ProcessStats::parse(stat, "", 100, 4096).unwrap();
        assert_eq!(without_boot_time.start_time_seconds, None);
        assert_eq!(without_boot_time.cpu_seconds, 3.0);
    }

    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::read().expect("/proc/self is readable on Linux");
        assert!(stats.resident_bytes > 0, "{stats:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // Started within the last day, not in the future (one tick of rounding allowed).
        let started = stats
            .start_time_seconds
            .expect("/proc/stat is readable here");
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{stats:?} at {now}"
        );
    }
}
