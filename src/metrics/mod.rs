//! Prometheus metrics: requests and latencies per route, commit batch sizes and times, the
//! writer queue depth, export lag, the build and the process. Encoded by `GET /metrics` as
//! OpenMetrics or as the classic text format (`format.rs`).
//!
//! Every name of ours starts with [`PREFIX`]; the `process_*` metrics have the names every
//! Prometheus client gives them.

mod format;
mod process;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing_appender::non_blocking::ErrorCounter;

pub use format::Format;
pub use process::ProcessStats;

/// The log writer's count of lines it dropped, once logging is set up (`cli::init_tracing`).
static DROPPED_LOG_LINES: OnceLock<ErrorCounter> = OnceLock::new();

/// Reports `counter` (the log writer's dropped lines) as `lakehousekb_log_lines_dropped_total`.
pub fn count_dropped_log_lines(counter: ErrorCounter) {
    let _ = DROPPED_LOG_LINES.set(counter);
}

/// `log_lines_dropped`: read at each scrape; 0 where logging was not set up (tests).
#[derive(Debug)]
struct LogCollector;

impl Collector for LogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let dropped = DROPPED_LOG_LINES
            .get()
            .map_or(0, ErrorCounter::dropped_lines);
        let counter = ConstCounter::new(dropped as u64);
        let metric = encoder.encode_descriptor(
            "log_lines_dropped",
            "Log lines dropped because stderr was not read fast enough",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

/// The prefix of our metric names. Not `lakehouse_kb`: promtool's linter reads `_kb_` in a
/// name as an abbreviated unit (kilobytes) and fails the check.
pub const PREFIX: &str = "lakehousekb";

/// The commit the binary was built from, when the build set `LAKEHOUSE_KB_BUILD_REVISION`
/// (e.g. `LAKEHOUSE_KB_BUILD_REVISION=$(git rev-parse HEAD) cargo build --release`); no build
/// script, so a build from a source tarball without git works the same.
pub const BUILD_REVISION: &str = match option_env!("LAKEHOUSE_KB_BUILD_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabels {
    file: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<RouteLabels>,
    commit_requests: Histogram,
    commit_puts: Histogram,
    commit_seconds: Histogram,
    commit_failures: Counter,
    queue_depth: Gauge,
    export_lag: Family<FileLabels, Gauge>,
    /// Commits completed (failed ones included): the watchdog's sign that the writer moves.
    commits: AtomicU64,
    export_file_state: Family<FileLabels, Gauge>,
    storage_fault: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix(PREFIX);
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram);
        let commit_requests = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        let commit_puts = Histogram::new(exponential_buckets(1.0, 2.0, 15));
        let commit_seconds = latency_histogram();
        let commit_failures = Counter::default();
        let queue_depth = Gauge::default();
        let export_lag = Family::<FileLabels, Gauge>::default();
        let export_file_state = Family::<FileLabels, Gauge>::default();
        let storage_fault = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "commit_batch_requests",
            "Requests sharing one durable commit (group commit)",
            commit_requests.clone(),
        );
        registry.register(
            "commit_batch_puts",
            "Records in one durable commit",
            commit_puts.clone(),
        );
        registry.register(
            "commit_duration_seconds",
            "Time of one durable commit, fsync included",
            commit_seconds.clone(),
        );
        registry.register(
            "commit_failures",
            "Commits that failed",
            commit_failures.clone(),
        );
        registry.register(
            "writer_queue_depth",
            "Write requests queued or being committed",
            queue_depth.clone(),
        );
        registry.register(
            "export_lag_rows",
            "Records (seqs) committed since the exported file was last known to hold every row of \
             its kinds",
            export_lag.clone(),
        );
        registry.register(
            "export_file_state",
            "Each exported file after the last run: 0 up to date, 1 failing (retried every run), \
             2 paused until an operator acts",
            export_file_state.clone(),
        );
        registry.register(
            "storage_fault",
            "1 while the database's storage is failing and the store recovers, else 0",
            storage_fault.clone(),
        );
        registry.register_collector(Box::new(LogCollector));
        // A gauge rather than OpenMetrics' `info` type, which the classic format lacks.
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                revision: BUILD_REVISION.to_owned(),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the labels name the version and the commit of this binary",
            build_info,
        );
        Metrics {
            registry: root,
            requests,
            latency,
            commit_requests,
            commit_puts,
            commit_seconds,
            commit_failures,
            queue_depth,
            export_lag,
            commits: AtomicU64::new(0),
            export_file_state,
            storage_fault,
        }
    }

    /// One answered request. The labels are static: a label a client could choose would grow
    /// the series without bound, and this runs for every request.
    pub fn record_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { method, route })
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_commit(&self, n_requests: usize, n_puts: usize, elapsed: Duration, ok: bool) {
        self.commit_requests.observe(n_requests as f64);
        self.commit_puts.observe(n_puts as f64);
        self.commit_seconds.observe(elapsed.as_secs_f64());
        if !ok {
            self.commit_failures.inc();
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// Commits completed so far, failed ones included.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    pub fn set_export_lag(&self, file: &str, rows: u64) {
        self.export_lag
            .get_or_create(&FileLabels {
                file: file.to_owned(),
            })
            .set(i64::try_from(rows).unwrap_or(i64::MAX));
    }

    /// `state`: 0 up to date, 1 failing, 2 paused (see `export_file_state`).
    pub fn set_export_file_state(&self, file: &str, state: i64) {
        self.export_file_state
            .get_or_create(&FileLabels {
                file: file.to_owned(),
            })
            .set(state);
    }

    pub fn set_storage_fault(&self, faulted: bool) {
        self.storage_fault.set(i64::from(faulted));
    }

    /// Every metric, in `format`.
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        match format {
            Format::OpenMetrics => out,
            Format::Classic => format::openmetrics_to_classic(&out),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Format, Metrics};

    /// `openmetrics_to_classic` copies help texts as they are: they must need no escaping.
    #[test]
    fn help_texts_need_no_escaping() {
        let metrics = Metrics::new();
        let body = metrics.encode(Format::OpenMetrics);
        for line in body.lines().filter(|l| l.starts_with("# HELP ")) {
            assert!(!line.contains('\\'), "{line}");
        }
    }

    /// Both bodies carry the same samples; only the metadata differs.
    #[test]
    fn both_formats_carry_the_same_samples() {
        let metrics = Metrics::new();
        metrics.record_request("GET", "/stats", 200, Duration::from_millis(3));
        metrics.record_commit(2, 5, Duration::from_millis(1), false);
        let samples = |body: &str| -> Vec<String> {
            body.lines()
                .filter(|l| !l.starts_with('#'))
                // The process metrics change between two reads.
                .filter(|l| !l.starts_with("process_"))
                .map(str::to_owned)
                .collect()
        };
        let openmetrics = metrics.encode(Format::OpenMetrics);
        let classic = metrics.encode(Format::Classic);
        assert!(openmetrics.ends_with("# EOF\n"));
        assert!(!classic.contains("# EOF"));
        assert_eq!(samples(&openmetrics), samples(&classic));
        for needle in [
            "# TYPE lakehousekb_http_requests counter\n",
            "lakehousekb_http_requests_total{method=\"GET\",route=\"/stats\",status=\"200\"} 1\n",
            "# TYPE lakehousekb_commit_failures counter\n",
            "lakehousekb_build_info{version=\"",
            "# TYPE process_cpu_seconds counter\n",
            "process_resident_memory_bytes ",
        ] {
            assert!(openmetrics.contains(needle), "{needle}: {openmetrics}");
        }
        for needle in [
            "# TYPE lakehousekb_http_requests_total counter\n",
            "# TYPE lakehousekb_commit_failures_total counter\n",
            "# TYPE lakehousekb_build_info gauge\n",
            "# TYPE process_cpu_seconds_total counter\n",
            "# TYPE process_open_fds gauge\n",
        ] {
            assert!(classic.contains(needle), "{needle}: {classic}");
        }
    }
}
