//! `lakehouse-kb serve`: maps the flags to a [`ServiceConfig`], binds the listener and runs
//! [`service::run`] until SIGINT or SIGTERM (the service then stops in order: see
//! `service/mod.rs`). A second signal exits at once.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::ArgAction;
use clap::builder::BoolishValueParser;
use humantime::Duration as HumanDuration;
use tokio::net::TcpListener;

use super::GlobalArgs;
use super::output::{self, Level};
use crate::http::{self, ConnectionLimits, ServerConfig};
use crate::service::{self, ServiceConfig, systemd};
use crate::store::Retention;
use crate::writer::WriterConfig;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (the legacy observer's port is 3800)
    #[arg(long, env = "LAKEHOUSE_KB_BIND", default_value = "127.0.0.1:3800")]
    pub bind: SocketAddr,
    /// On a loopback --bind, a name (besides localhost and IP addresses) a request's Host may
    /// give, e.g. an /etc/hosts alias; others are refused (421), as a web page reaching the
    /// service through DNS rebinding sends its own. Repeatable, or comma-separated
    #[arg(
        long,
        value_name = "NAME",
        env = "LAKEHOUSE_KB_ALLOW_HOST",
        value_delimiter = ','
    )]
    pub allow_host: Vec<String>,
    /// Largest request body accepted (bytes, or with a KiB/MiB/GiB suffix; at most 64MiB)
    #[arg(long, env = "LAKEHOUSE_KB_MAX_BODY", default_value = "1MiB", value_parser = parse_input_size)]
    pub max_body: usize,
    /// Most lines in one NDJSON batch
    #[arg(long, env = "LAKEHOUSE_KB_MAX_BATCH_LINES", default_value_t = 10_000)]
    pub max_batch_lines: usize,
    /// Write requests that may wait for a commit or be in one; beyond it writes get 503 + Retry-After
    #[arg(long, env = "LAKEHOUSE_KB_QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: usize,
    /// Most records committed in one transaction by the group-commit writer
    #[arg(long, env = "LAKEHOUSE_KB_MAX_COMMIT_BATCH", default_value_t = 4096)]
    pub max_commit_batch: usize,
    /// Share commits between concurrent requests; `false` commits each request alone
    #[arg(
        long,
        env = "LAKEHOUSE_KB_GROUP_COMMIT",
        default_value_t = true,
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new()
    )]
    pub group_commit: bool,
    /// Bearer token required on write routes (prefer the environment variable: argv is visible)
    #[arg(long, env = "LAKEHOUSE_KB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With a token set, require it on read routes too
    #[arg(long, env = "LAKEHOUSE_KB_AUTH_READS", value_parser = BoolishValueParser::new())]
    pub auth_reads: bool,
    /// Longest a request may take before it is abandoned with a 503 (e.g. 30s, 2m)
    #[arg(long, env = "LAKEHOUSE_KB_REQUEST_TIMEOUT", default_value = "30s")]
    pub request_timeout: HumanDuration,
    /// Time a client has to send a request's headers; idle keep-alive connections close after it
    #[arg(long, env = "LAKEHOUSE_KB_HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: HumanDuration,
    /// Longest wait for requests in flight after a shutdown signal
    #[arg(long, env = "LAKEHOUSE_KB_SHUTDOWN_TIMEOUT", default_value = "30s")]
    pub shutdown_timeout: HumanDuration,
    /// Write requests handled at once; beyond it writes get 503 + Retry-After
    #[arg(
        long,
        env = "LAKEHOUSE_KB_MAX_WRITES_IN_FLIGHT",
        default_value_t = 1024
    )]
    pub max_writes_in_flight: usize,
    /// Connections open at once; at the limit a new one has an idle one closed for it (silent
    /// 1 s since accepted, else kept alive 5 s without a request, else one whose body has been
    /// arriving for 2 s at under 1 KiB/s), else waits (lowered to leave
    /// 128 of the process's file descriptors, or half, for its files)
    #[arg(
        long,
        env = "LAKEHOUSE_KB_MAX_CONNECTIONS",
        default_value_t = http::DEFAULT_MAX_CONNECTIONS
    )]
    pub max_connections: usize,
    /// Read requests handled at once; beyond it reads get 503 + Retry-After
    #[arg(long, env = "LAKEHOUSE_KB_MAX_READS_IN_FLIGHT", default_value_t = 256)]
    pub max_reads_in_flight: usize,
    /// Change-feed consumers (GET /feed streams and long polls) served at once; beyond it 503
    #[arg(long, env = "LAKEHOUSE_KB_MAX_FEED_CLIENTS", default_value_t = http::DEFAULT_MAX_FEED_CLIENTS)]
    pub max_feed_clients: usize,
    /// Most bytes of a list answer (/sig, /events, /neighbors, PR history); a page stops
    /// early, with its cursor, before it would pass them (at least 1KiB)
    #[arg(long, env = "LAKEHOUSE_KB_MAX_RESPONSE", default_value = "8MiB", value_parser = parse_response_size)]
    pub max_response: usize,
    /// Keys listed per map of /stats (the most frequent; the rest are summed under "omitted")
    #[arg(long, env = "LAKEHOUSE_KB_STATS_TOP", default_value_t = 100)]
    pub stats_top: usize,
    /// Longest a write to a client may wait because it does not read its answer; then the
    /// connection is closed
    #[arg(long, env = "LAKEHOUSE_KB_WRITE_TIMEOUT", default_value = "30s")]
    pub write_timeout: HumanDuration,
    /// Time a request's whole body has to arrive (it is read before the request takes a
    /// permit); then 408
    #[arg(long, env = "LAKEHOUSE_KB_BODY_TIMEOUT", default_value = "10s")]
    pub body_timeout: HumanDuration,
    /// Most bytes of request bodies read or handled at once, over all requests, an NDJSON
    /// batch's lines counted with what their records hold; beyond it requests with a body get
    /// 503 + Retry-After (at least --max-body)
    #[arg(long, env = "LAKEHOUSE_KB_MAX_INFLIGHT_BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub max_inflight_bytes: usize,
    /// Most bytes of read answers being built or held until sent, at once (clients that do
    /// not read their answers hold them); beyond it reads get 503 + Retry-After [default: 32 × --max-response;
    /// at least --max-response]
    #[arg(long, env = "LAKEHOUSE_KB_MAX_ANSWER_BYTES", value_parser = parse_size)]
    pub max_answer_bytes: Option<usize>,
    /// Delete events received longer ago than this (e.g. 30days); verdicts and rows are kept
    #[arg(long, env = "LAKEHOUSE_KB_EVENTS_MAX_AGE")]
    pub events_max_age: Option<HumanDuration>,
    /// Keep at most this many events, deleting the oldest; verdicts and rows are kept
    #[arg(long, env = "LAKEHOUSE_KB_EVENTS_MAX_COUNT")]
    pub events_max_count: Option<u64>,
    /// How often retention runs
    #[arg(long, env = "LAKEHOUSE_KB_RETENTION_INTERVAL", default_value = "60s")]
    pub retention_interval: HumanDuration,
    /// How often the legacy files (_kb/outcomes.jsonl, _observer/ops.jsonl) are brought up to
    /// date; 0 turns the periodic export off (POST /export still works)
    #[arg(long, env = "LAKEHOUSE_KB_EXPORT_INTERVAL", default_value = "2s")]
    pub export_interval: HumanDuration,
    /// Directory the legacy files are exported under [default: the data directory]
    #[arg(long, value_name = "DIR", env = "LAKEHOUSE_KB_EXPORT_OUT")]
    pub export_out: Option<std::path::PathBuf>,
    /// How long a client's idempotency key is remembered: a retry with the same key within it
    /// is answered with the first attempt's result instead of storing again
    #[arg(long, env = "LAKEHOUSE_KB_IDEMPOTENCY_WINDOW", default_value = "24h")]
    pub idempotency_window: HumanDuration,
    /// Directory POST /backup writes under, as NAME/kb.redb [default: DATA/backups]
    #[arg(long, value_name = "DIR", env = "LAKEHOUSE_KB_BACKUP_DIR")]
    pub backup_dir: Option<std::path::PathBuf>,
    /// Server-made backups to keep; after each new one the oldest beyond it are removed
    #[arg(long, value_name = "N", env = "LAKEHOUSE_KB_BACKUP_KEEP", default_value_t = 7,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub backup_keep: u64,
    /// How long to wait for another process to release the database file before giving up
    #[arg(long, env = "LAKEHOUSE_KB_OPEN_TIMEOUT", default_value = "30s")]
    pub open_timeout: HumanDuration,
}

pub fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kb-http")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(global, args))?;
    Ok(ExitCode::SUCCESS)
}

/// The service's configuration from the flags (and their environment variables), refusing
/// combinations that could never work.
pub fn service_config(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<ServiceConfig> {
    let token = checked_token(args.token.as_deref(), args.auth_reads)?;
    if args.max_inflight_bytes < args.max_body {
        anyhow::bail!(
            "--max-inflight-bytes ({} bytes) must be at least --max-body ({} bytes), or no \
             body of the largest size could ever be taken",
            args.max_inflight_bytes,
            args.max_body
        );
    }
    let max_answer_bytes = args
        .max_answer_bytes
        .unwrap_or(args.max_response.saturating_mul(http::ANSWERS_HELD));
    if max_answer_bytes < args.max_response {
        anyhow::bail!(
            "--max-answer-bytes ({max_answer_bytes} bytes) must be at least --max-response ({} \
             bytes), or no answer of the largest size could ever be sent",
            args.max_response
        );
    }
    let export_interval: Duration = args.export_interval.into();
    // Compared as a request's Host is: lower case, without a port or a final dot.
    let mut allowed_hosts = Vec::new();
    for value in &args.allow_host {
        let Some(name) = crate::http::allowed_name(value) else {
            anyhow::bail!("--allow-host {value:?} names no host");
        };
        allowed_hosts.push(name);
    }
    Ok(ServiceConfig {
        db_path: global.db_path(),
        store: global.store_options(),
        open_timeout: args.open_timeout.into(),
        http: ServerConfig {
            max_body_bytes: args.max_body,
            max_batch_lines: args.max_batch_lines,
            token,
            auth_reads: args.auth_reads,
            request_timeout: args.request_timeout.into(),
            max_writes_in_flight: args.max_writes_in_flight,
            max_reads_in_flight: args.max_reads_in_flight,
            max_response_bytes: args.max_response,
            stats_top: args.stats_top,
            body_timeout: args.body_timeout.into(),
            max_inflight_bytes: args.max_inflight_bytes,
            max_answer_bytes,
            // The operator's own path, resolved once: a link in it (backups on another disk)
            // is theirs to make; one made at it later is refused (`Store::backup_into`).
            backup_dir: Some(match &args.backup_dir {
                Some(dir) => std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()),
                None => global.data_dir().join("backups"),
            }),
            backup_keep: usize::try_from(args.backup_keep).unwrap_or(usize::MAX),
            backup_key_window: args.idempotency_window.into(),
            stalled_commit: crate::http::STALLED_COMMIT,
            // A loopback-only server answers to its local names and the operator's; one that
            // listens beyond loopback is named as its clients reach it.
            allowed_hosts: args.bind.ip().is_loopback().then_some(allowed_hosts),
        },
        connections: ConnectionLimits {
            header_read_timeout: args.header_read_timeout.into(),
            write_timeout: args.write_timeout.into(),
            shutdown_timeout: args.shutdown_timeout.into(),
            max_connections: crate::http::connection_limit(args.max_connections),
        },
        writer: WriterConfig {
            queue_capacity: args.queue_capacity,
            max_batch_puts: args.max_commit_batch,
            group_commit: args.group_commit,
        },
        max_feed_clients: args.max_feed_clients,
        // The operator's directory, through a link it is (as `--data`).
        export_dir: args
            .export_out
            .as_deref()
            .map_or_else(|| global.data_dir(), crate::fsutil::through_link),
        export_interval: (!export_interval.is_zero()).then_some(export_interval),
        retention: Retention {
            max_age_ms: args.events_max_age.map(|age| age.as_millis() as u64),
            max_count: args.events_max_count,
            keep_after_seq: None,
        },
        retention_interval: args.retention_interval.into(),
        idempotency_window: args.idempotency_window.into(),
        watchdog: systemd::watchdog_interval(),
    })
}

async fn serve(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    let config = service_config(global, &args)?;
    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && config.http.token.is_none() {
        let warning = format!(
            "lakehouse-kb is listening on {addr}, beyond this machine, and LAKEHOUSE_KB_TOKEN is \
             not set: anyone who can reach it can write"
        );
        // Past the log filter: a service open to writers should never start unannounced.
        output::line(Level::Warn, &warning, &format!("WARNING: {warning}"));
    }
    std::fs::create_dir_all(global.data_dir()).with_context(|| {
        format!(
            "creating the data directory {}",
            global.data_dir().display()
        )
    })?;
    // Before anyone learns the port: from here a stop is a graceful one.
    let stop = first_signal()?;
    // A machine-readable line on stdout: tests and scripts learn the port from it.
    out!("lakehouse-kb listening on http://{addr}");
    service::run(config, listener, stop).await?;
    Ok(())
}

/// The bearer token, refused when a client could never send it back as given (empty, with
/// whitespace around it, or with characters a header cannot carry), and `--auth-reads` refused
/// without one: each would leave the routes open, or closed to everyone, without saying so.
fn checked_token(token: Option<&str>, auth_reads: bool) -> anyhow::Result<Option<String>> {
    let Some(token) = token else {
        if auth_reads {
            anyhow::bail!(
                "--auth-reads (LAKEHOUSE_KB_AUTH_READS) needs a token: set LAKEHOUSE_KB_TOKEN"
            );
        }
        return Ok(None);
    };
    let problem = if token.is_empty() {
        Some("is empty (unset the variable for no token)")
    } else if token.trim() != token {
        Some("has whitespace around it")
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        Some("holds characters other than printable ASCII (no spaces)")
    } else {
        None
    };
    match problem {
        Some(problem) => {
            anyhow::bail!("the bearer token (LAKEHOUSE_KB_TOKEN, --token) {problem}")
        }
        None => Ok(Some(token.to_owned())),
    }
}

/// Completes on the first SIGINT, SIGTERM or SIGHUP, which asks for a graceful stop; a second one
/// exits at once. The handlers are installed here, before the service starts: installed when
/// the returned future was first polled, a signal in between (a stop asked while the server
/// waited for the database file, on a busy machine) killed the process unhandled.
fn first_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut signals = StopSignals::install().context("installing the signal handlers")?;
    Ok(async move {
        signals.recv().await;
        tracing::info!(
            "shutting down: finishing requests in flight (signal again to exit at once)"
        );
        tokio::spawn(async move {
            signals.recv().await;
            tracing::warn!("second signal: exiting without finishing");
            super::flush_logs();
            std::process::exit(130);
        });
    })
}

/// SIGINT, SIGTERM and SIGHUP, handled from the moment this is made. A hangup (the terminal
/// of a foreground `serve` closed, an ssh session dropped) stops the service as SIGTERM does:
/// unhandled, it ended the process as a crash would, without the last export.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            _ = self.hangup.recv() => {}
        }
    }
}

/// A size of at least 1 KiB: a smaller answer budget would leave room for little more than
/// the markers of omitted records.
fn parse_response_size(text: &str) -> Result<usize, String> {
    let size = parse_size(text)?;
    if size < 1 << 10 {
        return Err(format!("{text:?} is under 1KiB"));
    }
    Ok(size)
}

/// A size (as [`parse_size`]) of one input the store keeps whole: a request body, a legacy line
/// or verdict file. Above [`crate::store::codec::MAX_INPUT_BYTES`] a stored value could not be read back
/// (the import stored a 270 MiB line that then failed `check` and every export: a review's).
pub(super) fn parse_input_size(text: &str) -> Result<usize, String> {
    let size = parse_size(text)?;
    let most = crate::store::codec::MAX_INPUT_BYTES;
    if size > most {
        return Err(format!(
            "{text:?} is over {}MiB, the largest input the database keeps whole",
            most >> 20
        ));
    }
    Ok(size)
}

/// `1048576`, `512KiB`, `1MiB`, `1GiB` (also `KB`/`MB`/`GB`, `K`/`M`/`G`, read as binary units).
pub(super) fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("expected a size like 1MiB, got {text:?}"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown size unit in {text:?} (use KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::{checked_token, first_signal, parse_input_size, parse_response_size, parse_size};

    /// A SIGTERM that arrives after the stop future is made but before it is first polled is
    /// the stop, not the end of the process: until 2026-12-06 the handlers were installed on
    /// that first poll, and such a signal (seen in CI, a stop while the server waited for a
    /// held file) killed the server unhandled. Raised at this test process: before the fix it
    /// would end the whole test run.
    #[tokio::test]
    async fn a_stop_signal_before_the_first_poll_is_handled() {
        let stop = first_signal().unwrap();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(std::time::Duration::from_secs(10), stop)
            .await
            .expect("the signal ends the stop future");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_response_size("1023").is_err());
        assert_eq!(parse_response_size("1KiB"), Ok(1024));
        // An input the store could not read back once stored (--max-body, --max-line).
        assert_eq!(parse_input_size("64MiB"), Ok(64 << 20));
        assert!(parse_input_size("65MiB").is_err());
        assert!(parse_input_size("18446744073709551615").is_err());
    }

    #[test]
    fn tokens_a_client_cannot_send_back_are_refused() {
        assert_eq!(checked_token(None, false).unwrap(), None);
        assert_eq!(
            checked_token(Some("s3cret"), true).unwrap().as_deref(),
            Some("s3cret")
        );
        let refused = [
            (Some(""), false, "is empty"),
            (Some(" s3cret"), false, "whitespace around it"),
            (Some("s3cret\n"), false, "whitespace around it"),
            (Some("s3 cret"), false, "printable ASCII"),
            (Some("sécret"), false, "printable ASCII"),
            (None, true, "--auth-reads"),
        ];
        for (token, auth_reads, needle) in refused {
            let error = checked_token(token, auth_reads).unwrap_err().to_string();
            assert!(error.contains(needle), "{token:?}: {error}");
        }
    }
}
