//! The service's life as a library function: open the database while a "recovering" router
//! answers, start the writer and the background jobs, serve until `shutdown`, then stop in
//! order (stop accepting, answer what is in flight, drain the writer, export the last rows,
//! close the database). `lakehouse-kb serve` maps its flags to a [`ServiceConfig`] and calls
//! [`run`]; the tests call it in process.
//!
//! Shutdown order (each step waits for the one before):
//! 1. `shutdown` completes: the accept loop stops, open feed streams end, the background jobs
//!    stop at their next tick;
//! 2. the requests in flight are answered (bounded by `shutdown_timeout`);
//! 3. the application, holding the last writer handles, is dropped, and the writer thread
//!    commits what is queued and ends;
//! 4. the periodic export, if on, runs once more: the legacy readers get every acknowledged row;
//! 5. the database is closed.

mod jobs;
pub mod systemd;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::export::{Adopter, ExportJob, NotStored};
use crate::http::{
    self, AppState, ConnectionLimits, Feed, Recovery, ServerConfig, Switch, recovering_router,
};
use crate::metrics::Metrics;
use crate::store::{Retention, Store, StoreError, StoreOptions};
use crate::writer::{WriteError, Writer, WriterConfig};

pub use jobs::retain_events;

/// Everything [`run`] needs. Its defaults live in one place, `serve`'s flags: the CLI builds
/// it (`cli::service_config`), and so do the in-process tests, from the same flags.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The database file.
    pub db_path: PathBuf,
    pub store: StoreOptions,
    /// How long to wait for another process to release the database file.
    pub open_timeout: Duration,
    pub http: ServerConfig,
    pub connections: ConnectionLimits,
    pub writer: WriterConfig,
    /// Change-feed consumers served at once.
    pub max_feed_clients: usize,
    /// The directory the legacy files are exported under.
    pub export_dir: PathBuf,
    /// How often the legacy files are brought up to date; `None`: never by itself (nor at
    /// shutdown), only on `POST /export`.
    pub export_interval: Option<Duration>,
    /// Which events retention deletes (`keep_after_seq` is set by the job itself).
    pub retention: Retention,
    pub retention_interval: Duration,
    /// How long a client's idempotency key is remembered.
    pub idempotency_window: Duration,
    /// `WATCHDOG=1` pings to systemd at half this interval, while the writer lives.
    pub watchdog: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("opening {path}: {source}")]
    Open { path: PathBuf, source: StoreError },
    #[error("serving: {0}")]
    Serve(#[from] std::io::Error),
    #[error("a service task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the writer thread panicked")]
    WriterPanicked,
}

/// Runs the service on `listener` until `shutdown` completes, then stops in the order the
/// module documentation gives. Returns once the database is closed. The listener answers at
/// once: `/healthz` says "recovering" while the database opens (redb may repair it after a
/// crash, in time proportional to the file) instead of the port refusing connections.
pub async fn run(
    config: ServiceConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let addr = listener.local_addr()?;
    // Anchors the clock by which keys and events expire: a step of the wall clock from now on
    // makes no key old early.
    crate::model::set_expiry_catch_up(config.idempotency_window);
    crate::model::expiry_now_ms();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        }
    });
    let recovery = Recovery::default();
    let (app_tx, app_rx) = watch::channel(None);
    let switch = Switch::new(app_rx, recovering_router(recovery.clone()));
    let server = tokio::spawn(http::serve(
        listener,
        switch,
        config.connections,
        stopped(stop_rx.clone()),
    ));

    let store = match open(&config, recovery, stop_rx.clone()).await? {
        Ok(Some(store)) => Arc::new(store),
        // Stopped while another process held the file: nothing was opened, nothing to close.
        Ok(None) => {
            let _ = server.await;
            tracing::info!("stopped before the database was opened");
            return Ok(());
        }
        Err(source) => {
            let _ = stop_tx.send(true);
            let _ = server.await;
            return Err(ServiceError::Open {
                path: config.db_path,
                source,
            });
        }
    };

    let metrics = Arc::new(Metrics::new());
    let (writer, writer_thread) = Writer::spawn(store.clone(), config.writer, metrics.clone());
    // The export takes rows another writer appends to outcomes.jsonl in through the writer;
    // its handle is let go before the writer is drained at stop.
    let taking_in = Arc::new(std::sync::Mutex::new(Some(writer.clone())));
    let export = Arc::new(
        ExportJob::new(store.clone(), config.export_dir.clone())
            .with_adopter(adopter(taking_in.clone())),
    );
    let feed = Feed::new(config.max_feed_clients);
    // Open feed streams never end by themselves: end them when the stop is asked, or the
    // graceful shutdown would wait for them until its timeout.
    tokio::spawn({
        let (feed, stop) = (feed.clone(), stop_rx.clone());
        async move {
            stopped(stop).await;
            feed.close();
        }
    });
    let state = AppState::new(http::Shared {
        store: store.clone(),
        writer: writer.clone(),
        metrics: metrics.clone(),
        config: Arc::new(config.http.clone()),
        export: Some(export.clone()),
        feed,
    });
    let _ = app_tx.send(Some(http::app(state)));
    tracing::info!(%addr, db = %config.db_path.display(), group_commit = config.writer.group_commit, "serving");
    // systemd `Type=notify`: ready means the database is open and the API live (a no-op
    // outside systemd).
    systemd::ready(&format!("serving on {addr}"));

    let background = jobs::spawn(
        &config,
        jobs::Handles {
            store: store.clone(),
            export: export.clone(),
            writer,
            metrics,
        },
        &stop_rx,
    );

    server.await??;
    systemd::stopping();
    // Rows another writer appended to outcomes.jsonl are taken in while the writer still
    // takes them; what is appended after this is kept aside by the last export, which writes
    // every stored row (README, "Going back").
    if config.export_interval.is_some() {
        let export = export.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || export.run()).await? {
            tracing::warn!(error = %e, "the export before the writer stops failed");
        }
    }
    // The server has answered its last request; drop the application (and with it the last
    // writer handles) so the writer thread drains its queue and stops. The background jobs
    // end on the stop signal, releasing theirs.
    let _ = app_tx.send(None);
    drop(app_tx);
    taking_in
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    for task in background {
        let _ = task.await;
    }
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await?
        .map_err(|_| ServiceError::WriterPanicked)?;
    // Everything acknowledged is committed; the legacy readers get it all before we exit.
    if config.export_interval.is_some() {
        match tokio::task::spawn_blocking(move || export.run()).await? {
            Ok(report) => {
                tracing::info!(
                    outcomes_rows = report.outcomes.rows_written,
                    ops_rows = report.ops.rows_written,
                    "last export done"
                );
                // A paused or failed file was logged when its problem began, maybe long ago:
                // said again here, since the legacy readers now lack what the service acked.
                for file in report.files() {
                    if let Some(error) = &file.error {
                        tracing::error!(
                            path = %file.path,
                            error = %error,
                            "the last export left this file without the rows stored since its \
                             checkpoint; the next start (or `lakehouse-kb export`) writes them \
                             once the problem is mended"
                        );
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the last export failed; the next start resumes it")
            }
        }
    } else {
        drop(export);
    }
    // A database a storage fault left refusing writes cannot be closed cleanly: said so, not
    // "stopped cleanly" before a start that then repairs it (a review's). A journal removed
    // meanwhile goes back to its path for the next start to apply (a review's).
    let fault = store.fault();
    let journal_kept = match fault {
        Some(_) => store.put_back_journal().inspect_err(|e| {
            tracing::error!(
                error = %e,
                "the write-ahead journal, removed during the storage fault, could not be put \
                 back: the events it held beyond the database's last checkpoint are lost"
            )
        }),
        None => Ok(()),
    };
    match Arc::try_unwrap(store) {
        Ok(store) => drop(store),
        Err(_) => {
            tracing::warn!("the database is still referenced at exit; redb closes it on drop")
        }
    }
    match fault {
        None => tracing::info!("stopped cleanly"),
        Some(fault) if journal_kept.is_err() => tracing::warn!(
            reason = %fault.reason,
            no_space = fault.no_space,
            "stopped during a storage fault, the database not closed cleanly: the next start \
             repairs it"
        ),
        Some(fault) => tracing::warn!(
            reason = %fault.reason,
            no_space = fault.no_space,
            "stopped during a storage fault: nothing acknowledged is lost, but the database \
             was not closed cleanly, and the next start repairs it"
        ),
    }
    Ok(())
}

/// Stores the rows the export takes in (see `export/adopt.rs`) through `writer` while it is
/// there, from the export's blocking thread.
fn adopter(writer: Arc<std::sync::Mutex<Option<Writer>>>) -> Adopter {
    let runtime = tokio::runtime::Handle::current();
    Arc::new(move |puts| {
        let held = writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(writer) = held.clone() else {
            return Err(NotStored::Stopped("the service is stopping".into()));
        };
        drop(held);
        if puts.is_empty() {
            return Ok(()); // asked whether it still stores
        }
        match runtime.block_on(writer.submit(puts)) {
            Ok(_) => Ok(()),
            Err(e @ (WriteError::Closed | WriteError::Store(_))) => {
                Err(NotStored::Stopped(e.to_string()))
            }
            Err(e) => Err(NotStored::Busy(e.to_string())),
        }
    })
}

/// Opens the store on a blocking thread, telling `recovery` (for `/healthz`) and systemd how a
/// crash repair progresses.
async fn open(
    config: &ServiceConfig,
    recovery: Recovery,
    stop: watch::Receiver<bool>,
) -> Result<Result<Option<Store>, StoreError>, ServiceError> {
    let mut options = config.store.clone();
    let report = options.on_repair.take();
    let progress = recovery.clone();
    let waiting = recovery.clone();
    // systemd hears of a repair too (STATUS=, EXTEND_TIMEOUT_USEC=), so that its start timeout
    // does not kill a repair that is making progress.
    let repair = systemd::Repair::default();
    let (opened_tx, opened_rx) = watch::channel(false);
    tokio::spawn(repair.clone().report_while_running(recovery, opened_rx));
    let (build, open_over) = (repair.clone(), repair.clone());
    options.on_repair = Some(Arc::new(move |fraction| {
        progress.set(fraction);
        repair.progress(fraction);
        if let Some(report) = &report {
            report(fraction);
        }
    }));
    // A build of derived indexes (after an upgrade) is said so too.
    options.on_build = Some(Arc::new(move |what, through_seq| {
        build.building(what, through_seq);
    }));
    let (path, timeout) = (config.db_path.clone(), config.open_timeout);
    let opened =
        tokio::task::spawn_blocking(move || open_waiting(&path, options, timeout, &stop, &waiting))
            .await;
    open_over.opened();
    let _ = opened_tx.send(true);
    Ok(opened?)
}

/// Opens the store, waiting up to `timeout` while another process holds the file (a restart
/// racing the previous server's exit) rather than failing at once, and for as long as it takes
/// while the disk is full (an open writes: the journal's replay, redb's repair, a new file),
/// trying again every [`FULL_DISK_RETRY`]: a server restarted on a full disk used to exit, and
/// needed someone to free space and start it again (a review), where a running one heals by
/// itself. `None` when a stop is asked meanwhile (the file is then never opened: a stop must
/// not wait for the other process, nor migrate or export after it).
fn open_waiting(
    path: &Path,
    options: StoreOptions,
    timeout: Duration,
    stop: &watch::Receiver<bool>,
    recovery: &Recovery,
) -> Result<Option<Store>, StoreError> {
    let deadline = std::time::Instant::now() + timeout;
    let mut logged = false;
    // When the disk was first found full, and when that was last logged and told systemd.
    let mut full: Option<(std::time::Instant, std::time::Instant, std::time::Instant)> = None;
    loop {
        match Store::open(path, options.clone()) {
            Err(e) if e.is_no_space() => {
                let now = std::time::Instant::now();
                match &mut full {
                    None => {
                        tracing::error!(
                            path = %path.display(),
                            error = %e,
                            "no space left to open the database; trying again every second \
                             until there is (free space on its file system)"
                        );
                        systemd::waiting_for_space();
                        recovery.set_no_space(true);
                        full = Some((now, now, now));
                    }
                    Some((since, logged, told)) => {
                        if logged.elapsed() >= Duration::from_secs(60) {
                            tracing::warn!(
                                waited_secs = since.elapsed().as_secs(),
                                "still no space to open the database"
                            );
                            *logged = now;
                        }
                        if told.elapsed() >= systemd::WAIT_REPORT_EVERY {
                            systemd::waiting_for_space();
                            *told = now;
                        }
                    }
                }
                std::thread::sleep(FULL_DISK_RETRY);
                if *stop.borrow() {
                    return Ok(None);
                }
            }
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
                // Checked before the next attempt, which may find the file free.
                if *stop.borrow() {
                    return Ok(None);
                }
            }
            result => {
                recovery.set_no_space(false);
                return result.map(Some);
            }
        }
    }
}

/// How often an open that found the disk full is tried again.
const FULL_DISK_RETRY: Duration = Duration::from_secs(1);

/// Completes once a stop has been requested (at once if it already was).
async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}
