//! `lakehouse-kb serve`: run the HTTP service until SIGINT or SIGTERM, then stop accepting,
//! answer the requests in flight, drain the writer and close the database cleanly. A second
//! signal exits at once.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::ArgAction;
use clap::builder::BoolishValueParser;
use humantime::Duration as HumanDuration;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::output::{self, Level};
use super::{GlobalArgs, systemd};
use crate::export::{ExportFile, ExportJob};
use crate::http::{
    self, AppState, ConnectionLimits, Feed, Recovery, ServerConfig, Switch, recovering_router,
};
use crate::metrics::Metrics;

use crate::model::now_ms;
use crate::store::{Retention, Store, StoreError, StoreOptions};
use crate::writer::{Writer, WriterConfig};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (the legacy observer's port is 3800)
    #[arg(long, env = "LAKEHOUSE_KB_BIND", default_value = "127.0.0.1:3800")]
    pub bind: SocketAddr,
    /// Largest request body accepted (bytes, or with a KiB/MiB suffix)
    #[arg(long, env = "LAKEHOUSE_KB_MAX_BODY", default_value = "1MiB", value_parser = parse_size)]
    pub max_body: usize,
    /// Most lines in one NDJSON batch
    #[arg(long, env = "LAKEHOUSE_KB_MAX_BATCH_LINES", default_value_t = 10_000)]
    pub max_batch_lines: usize,
    /// Write requests that may wait for a commit; beyond it writes get 503 + Retry-After
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
    /// Most bytes of request bodies read or handled at once, over all requests; beyond it
    /// requests with a body get 503 + Retry-After (at least --max-body)
    #[arg(long, env = "LAKEHOUSE_KB_MAX_INFLIGHT_BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub max_inflight_bytes: usize,
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

async fn serve(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    let token = checked_token(args.token.as_deref(), args.auth_reads)?;
    if args.max_inflight_bytes < args.max_body {
        anyhow::bail!(
            "--max-inflight-bytes ({} bytes) must be at least --max-body ({} bytes), or no \
             body of the largest size could ever be taken",
            args.max_inflight_bytes,
            args.max_body
        );
    }
    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && token.is_none() {
        let warning = format!(
            "lakehouse-kb is listening on {addr}, beyond this machine, and LAKEHOUSE_KB_TOKEN is \
             not set: anyone who can reach it can write"
        );
        // Past the log filter: a service open to writers should never start unannounced.
        output::line(Level::Warn, &warning, &format!("WARNING: {warning}"));
    }
    std::fs::create_dir_all(&global.data)
        .with_context(|| format!("creating the data directory {}", global.data.display()))?;

    // Serve at once: while the database opens (redb may repair it after a crash, which takes
    // time proportional to the file), /healthz answers 503 "recovering" instead of the port
    // refusing connections.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(watch_signals(stop_tx.clone()));
    let recovery = Recovery::default();
    let (app_tx, app_rx) = watch::channel(None);
    let switch = Switch::new(app_rx, recovering_router(recovery.clone()));
    let limits = ConnectionLimits {
        header_read_timeout: args.header_read_timeout.into(),
        write_timeout: args.write_timeout.into(),
        shutdown_timeout: args.shutdown_timeout.into(),
    };
    let server = tokio::spawn(http::serve(
        listener,
        switch,
        limits,
        stopped(stop_rx.clone()),
    ));
    // A machine-readable line on stdout: tests and scripts learn the port from it.
    println!("lakehouse-kb listening on http://{addr}");

    let path = global.db_path();
    let mut options = global.store_options();
    let report = options.on_repair.take();
    let progress = recovery.clone();
    // systemd hears of a repair too (STATUS=, EXTEND_TIMEOUT_USEC=), so that its start timeout
    // does not kill a repair that is making progress.
    let repair = systemd::Repair::default();
    let (opened_tx, opened_rx) = watch::channel(false);
    tokio::spawn(
        repair
            .clone()
            .report_while_running(recovery.clone(), opened_rx),
    );
    options.on_repair = Some(Arc::new(move |fraction| {
        progress.set(fraction);
        repair.progress(fraction);
        if let Some(report) = &report {
            report(fraction);
        }
    }));
    let open_timeout: Duration = args.open_timeout.into();
    let opened =
        tokio::task::spawn_blocking(move || open_waiting(&path, options, open_timeout)).await?;
    let _ = opened_tx.send(true);
    let store = match opened {
        Ok(store) => Arc::new(store),
        Err(e) => {
            let _ = stop_tx.send(true);
            let _ = server.await;
            return Err(e).with_context(|| format!("opening {}", global.db_path().display()));
        }
    };

    let metrics = Arc::new(Metrics::new());
    let writer_config = WriterConfig {
        queue_capacity: args.queue_capacity,
        max_batch_puts: args.max_commit_batch,
        group_commit: args.group_commit,
    };
    let (writer, writer_thread) = Writer::spawn(store.clone(), writer_config, metrics.clone());
    let watched_writer = writer.clone();
    let config = ServerConfig {
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
        backup_dir: Some(
            args.backup_dir
                .clone()
                .unwrap_or_else(|| global.data.join("backups")),
        ),
        backup_keep: usize::try_from(args.backup_keep).unwrap_or(usize::MAX),
    };
    let export_dir = args
        .export_out
        .clone()
        .unwrap_or_else(|| global.data.clone());
    let export = Arc::new(ExportJob::new(store.clone(), export_dir));
    let feed = Feed::new(args.max_feed_clients);
    // Open feed streams never end by themselves: end them when the stop is asked, or the
    // graceful shutdown would wait for them until its timeout.
    tokio::spawn({
        let (feed, stop) = (feed.clone(), stop_rx.clone());
        async move {
            stopped(stop).await;
            feed.close();
        }
    });
    let state = AppState {
        store: store.clone(),
        writer,
        metrics: metrics.clone(),
        config: Arc::new(config),
        export: Some(export.clone()),
        feed,
    };
    let _ = app_tx.send(Some(http::app(state)));
    tracing::info!(%addr, data = %global.data.display(), group_commit = args.group_commit, "serving");
    // systemd `Type=notify`: ready means the database is open and the API live (a no-op
    // outside systemd).
    let status = format!("serving on {addr}");
    let _ = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ],
    );

    let retention = Retention {
        max_age_ms: args.events_max_age.map(|age| age.as_millis() as u64),
        max_count: args.events_max_count,
        keep_after_seq: None,
    };
    let export_interval: Duration = args.export_interval.into();
    let exporting = !export_interval.is_zero();
    let mut background = Vec::new();
    if !retention.is_off() {
        let interval = args.retention_interval.into();
        // While the export runs, events not yet in ops.jsonl are never deleted (it is a log).
        let task = retain_events(
            store.clone(),
            retention,
            exporting,
            interval,
            stop_rx.clone(),
        );
        background.push(tokio::spawn(task));
    }
    if exporting {
        let task = export_periodically(export.clone(), export_interval, stop_rx.clone());
        background.push(tokio::spawn(task));
    }
    let window: Duration = args.idempotency_window.into();
    let task = expire_client_keys(store.clone(), window, stop_rx.clone());
    background.push(tokio::spawn(task));
    // `WatchdogSec=` in the unit: ping while the runtime and the writer live. The task ends on
    // the stop signal, releasing its writer handle before the writer is drained.
    if let Some(interval) = systemd::watchdog_interval() {
        tracing::info!(interval = %humantime::format_duration(interval), "pinging the systemd watchdog");
        let task = systemd::watchdog(interval, watched_writer, metrics, stop_rx.clone());
        background.push(tokio::spawn(task));
    } else {
        drop(watched_writer);
    }

    server.await??;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    // The server has answered its last request; drop the application (and with it the last
    // writer handles) so the writer thread drains its queue and stops.
    let _ = app_tx.send(None);
    drop(app_tx);
    for task in background {
        let _ = task.await;
    }
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    // Everything acknowledged is committed; the legacy readers get it all before we exit.
    if exporting {
        match tokio::task::spawn_blocking(move || export.run()).await? {
            Ok(report) => tracing::info!(
                outcomes_rows = report.outcomes.rows_written,
                ops_rows = report.ops.rows_written,
                "last export done"
            ),
            Err(e) => {
                tracing::error!(error = %e, "the last export failed; the next start resumes it")
            }
        }
    } else {
        drop(export);
    }
    match Arc::try_unwrap(store) {
        Ok(store) => drop(store),
        Err(_) => {
            tracing::warn!("the database is still referenced at exit; redb closes it on drop")
        }
    }
    tracing::info!("stopped cleanly");
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

/// Opens the store, waiting up to `timeout` while another process holds the file (a restart
/// racing the previous server's exit) rather than failing at once.
fn open_waiting(
    path: &std::path::Path,
    options: StoreOptions,
    timeout: Duration,
) -> Result<Store, StoreError> {
    let deadline = std::time::Instant::now() + timeout;
    let mut logged = false;
    loop {
        match Store::open(path, options.clone()) {
            Err(StoreError::InUse { .. }) if std::time::Instant::now() < deadline => {
                if !logged {
                    tracing::warn!(
                        path = %path.display(),
                        "the database is open in another process; waiting for it to close"
                    );
                    systemd::status("waiting for another process to release the database file");
                    logged = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

/// Runs the export every `interval` until stopped; a failure is logged and retried next time.
async fn export_periodically(
    job: Arc<ExportJob>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let job = job.clone();
        match tokio::task::spawn_blocking(move || job.run()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "export failed; will retry"),
            Err(e) => tracing::error!(error = %e, "export task failed"),
        }
    }
}

/// Applies event retention every `interval`, in bounded transactions, until stopped. With
/// `protect_unexported`, events after the ops file's checkpoint (not yet in ops.jsonl) are kept.
async fn retain_events(
    store: Arc<Store>,
    mut rules: Retention,
    protect_unexported: bool,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let store_for_faults = store.clone();
        let store = store.clone();
        let deleted = tokio::task::spawn_blocking(move || {
            if protect_unexported {
                rules.keep_after_seq = Some(store.checkpoint(ExportFile::Ops.name())?.seq);
            }
            let mut deleted = 0;
            loop {
                match store.retain_events(rules, now_ms(), RETENTION_BATCH) {
                    Ok(0) => return Ok(deleted),
                    Ok(n) => deleted += n,
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        match deleted {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(deleted = n, "retention deleted old events"),
            Ok(Err(e)) => {
                store_for_faults.note_error(&e);
                tracing::error!(error = %e, "retention failed; will retry")
            }
            Err(e) => tracing::error!(error = %e, "retention task failed"),
        }
    }
}

/// Removes client idempotency keys older than `window`, every minute (or every tenth of the
/// window, when that is shorter), in bounded transactions, until stopped.
async fn expire_client_keys(store: Arc<Store>, window: Duration, mut stop: watch::Receiver<bool>) {
    let every = (window / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let store = store.clone();
        let cutoff = now_ms().saturating_sub(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
        let removed = tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            loop {
                match store.expire_client_keys(cutoff, RETENTION_BATCH) {
                    Ok(0) => return Ok(removed),
                    Ok(n) => removed += n,
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        match removed {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(removed = n, "expired idempotency keys"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "expiring idempotency keys failed; will retry")
            }
            Err(e) => tracing::error!(error = %e, "idempotency key expiry task failed"),
        }
    }
}

/// Events deleted per retention transaction: keeps each one short next to the writer's.
const RETENTION_BATCH: usize = 10_000;

/// Completes once a stop has been requested.
async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// The first SIGINT or SIGTERM requests a graceful stop; a second one exits at once.
async fn watch_signals(stop: watch::Sender<bool>) {
    wait_for_signal().await;
    tracing::info!("shutting down: finishing requests in flight (signal again to exit at once)");
    let _ = stop.send(true);
    wait_for_signal().await;
    tracing::warn!("second signal: exiting without finishing");
    std::process::exit(130);
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
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

/// `1048576`, `512KiB`, `1MiB`, `1GiB` (also `KB`/`MB`/`GB`, `K`/`M`/`G`, read as binary units).
fn parse_size(text: &str) -> Result<usize, String> {
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
    use super::{checked_token, parse_response_size, parse_size};

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
