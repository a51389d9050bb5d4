//! The service's background jobs: the periodic export, event retention, the expiry of
//! idempotency keys and the systemd watchdog, each a task that ends on the stop signal. The
//! three database jobs share one loop ([`periodically`]): wait a period (or the stop), run
//! the job on a blocking thread, log what it did; a failure is logged and retried next time.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{ServiceConfig, stopped, systemd};
use crate::export::{ExportFile, ExportJob};
use crate::metrics::Metrics;
use crate::model::expiry_now_ms;
use crate::store::{Retention, Store, StoreError};
use crate::writer::Writer;

/// Events deleted (or keys expired) per transaction: keeps each one short next to the
/// writer's.
const RETENTION_BATCH: usize = 10_000;

/// What the jobs work on.
pub(super) struct Handles {
    pub store: Arc<Store>,
    pub export: Arc<ExportJob>,
    /// For the watchdog only: dropped at once without one, so the writer can drain at stop.
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
}

/// Starts the jobs `config` asks for; each ends on `stop`, releasing what it holds.
pub(super) fn spawn(
    config: &ServiceConfig,
    handles: Handles,
    stop: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let Handles {
        store,
        export,
        writer,
        metrics,
    } = handles;
    let mut tasks = Vec::new();
    let exporting = config.export_interval.is_some();
    if !config.retention.is_off() {
        let (store, rules) = (store.clone(), config.retention);
        tasks.push(tokio::spawn(periodically(
            "retention",
            config.retention_interval,
            stop.clone(),
            move || {
                retain_events(&store, rules, exporting, expiry_now_ms()).inspect_err(|e| {
                    store.note_error(e);
                })
            },
            |deleted| {
                if deleted > 0 {
                    tracing::info!(deleted, "retention deleted old events");
                }
            },
        )));
    }
    if let Some(interval) = config.export_interval {
        let store = store.clone();
        tasks.push(tokio::spawn(periodically(
            "export",
            interval,
            stop.clone(),
            // Not from a database no longer at its path (removed or moved while the service
            // ran): the files would go to a directory made anew for them, from data the next
            // start does not have. The check faults the store, so `/healthz` says so.
            move || match store.check_in_place() {
                Ok(()) => export.run().map(Some),
                Err(_) => Ok(None),
            },
            |_| {},
        )));
    }
    let window = config.idempotency_window;
    let every = (window / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    tasks.push(tokio::spawn(periodically(
        "idempotency key expiry",
        every,
        stop.clone(),
        move || {
            expire_client_keys(&store, window).inspect_err(|e| {
                store.note_error(e);
            })
        },
        |removed| {
            if removed > 0 {
                tracing::debug!(removed, "expired idempotency keys");
            }
        },
    )));
    // `WatchdogSec=` in the unit: ping while the runtime and the writer live.
    match config.watchdog {
        Some(interval) => {
            tracing::info!(interval = %humantime::format_duration(interval), "pinging the systemd watchdog");
            let task = systemd::watchdog(interval, writer, metrics, stop.clone());
            tasks.push(tokio::spawn(task));
        }
        None => drop(writer),
    }
    tasks
}

/// Runs `job` on a blocking thread every `interval` until `stop`; what it returns goes to
/// `done` (which logs it), a failure to the error log, and the next tick retries.
async fn periodically<T, E>(
    name: &'static str,
    interval: Duration,
    stop: watch::Receiver<bool>,
    job: impl Fn() -> Result<T, E> + Send + Sync + 'static,
    done: impl Fn(T),
) where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let job = Arc::new(job);
    let stopped = stopped(stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = &mut stopped => return,
        }
        let job = job.clone();
        match tokio::task::spawn_blocking(move || job()).await {
            Ok(Ok(result)) => done(result),
            Ok(Err(e)) => {
                tracing::error!(job = name, error = %e, "background job failed; will retry")
            }
            Err(e) => tracing::error!(job = name, error = %e, "background job panicked"),
        }
    }
}

/// Deletes the events `rules` condemn at `now_ms`, in transactions of [`RETENTION_BATCH`],
/// until none is left; returns how many it deleted.
///
/// Architecture invariant: while the service exports (`exporting`), retention never deletes
/// an event not yet in `ops.jsonl`, which is a log every event must reach once: the events
/// after the ops file's checkpoint are kept, whatever `rules` say.
pub fn retain_events(
    store: &Store,
    mut rules: Retention,
    exporting: bool,
    now_ms: u64,
) -> Result<u64, StoreError> {
    if exporting {
        rules.keep_after_seq = Some(store.checkpoint(ExportFile::Ops.name())?.seq);
    }
    let mut deleted = 0;
    loop {
        match store.retain_events(rules, now_ms, RETENTION_BATCH)? {
            0 => return Ok(deleted),
            n => deleted += n,
        }
    }
}

/// Removes the idempotency keys older than `window`, in transactions of [`RETENTION_BATCH`].
/// First looks that the database is still at its path ([`Store::check_in_place`]): this job
/// runs whatever the service's configuration, so a file removed while no client writes is
/// found within a minute.
fn expire_client_keys(store: &Store, window: Duration) -> Result<u64, StoreError> {
    store.check_in_place()?;
    let cutoff =
        expiry_now_ms().saturating_sub(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
    let mut removed = 0;
    loop {
        match store.expire_client_keys(cutoff, RETENTION_BATCH)? {
            0 => return Ok(removed),
            n => removed += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::retain_events;
    use crate::export::ExportJob;
    use crate::intake::event_record;
    use crate::store::{Put, Retention, Store, StoreOptions};

    fn store_with_events(n: u64) -> (tempfile::TempDir, std::sync::Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
        add_events(&store, n);
        (dir, std::sync::Arc::new(store))
    }

    fn add_events(store: &Store, n: u64) {
        let puts: Vec<Put> = (0..n)
            .map(|i| Put::from(event_record(br#"{"source":"bot"}"#, 1_000 + i).unwrap()))
            .collect();
        store.write(&puts).unwrap();
    }

    const KEEP_NONE: Retention = Retention {
        max_age_ms: None,
        max_count: Some(0),
        keep_after_seq: None,
    };

    #[test]
    fn retention_never_deletes_events_not_yet_exported() {
        let (dir, store) = store_with_events(3);
        ExportJob::new(store.clone(), dir.path().to_owned())
            .run()
            .unwrap();
        add_events(&store, 2);
        // Exporting: the three in ops.jsonl go, the two after its checkpoint stay.
        assert_eq!(retain_events(&store, KEEP_NONE, true, 10_000).unwrap(), 3);
        assert_eq!(store.stats().unwrap().events, 2);
        assert_eq!(retain_events(&store, KEEP_NONE, true, 10_000).unwrap(), 0);
        // Not exporting: nothing holds them.
        assert_eq!(retain_events(&store, KEEP_NONE, false, 10_000).unwrap(), 2);
        assert_eq!(store.stats().unwrap().events, 0);
    }

    #[test]
    fn retention_with_the_export_on_and_nothing_exported_keeps_everything() {
        let (_dir, store) = store_with_events(4);
        assert_eq!(retain_events(&store, KEEP_NONE, true, 10_000).unwrap(), 0);
        assert_eq!(store.stats().unwrap().events, 4);
    }
}
