//! Storage faults, driven through the store's backend seam (`StoreOptions::backend`): a redb
//! `StorageBackend` over the real file that fails writes on demand, as a full disk does, and
//! can hold the backup thread's reads (to catch a backup mid-copy).
//!
//! The story of the bug: after one ENOSPC, redb answered "Previous I/O error occurred" to
//! every later write and export until a restart, even after space was freed, and `/healthz`
//! said ok. Now the store reopens itself; meanwhile writes get 507 with `Retry-After` and
//! `/healthz` says degraded; once space returns, writes succeed with no restart and nothing
//! acknowledged is lost. Also here: a 0-byte or foreign `kb.redb` is refused at start instead of
//! being taken for a new, empty database.

use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lakehouse_kb::export::ExportJob;
use lakehouse_kb::http::{
    self, AppState, ConnectionLimits, Recovery, ServerConfig, Switch, recovering_router,
};
use lakehouse_kb::metrics::Metrics;
use lakehouse_kb::store::{Store, StoreError, StoreOptions};
use lakehouse_kb::writer::{Writer, WriterConfig};
use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use crate::support::{Answer, answer};

/// What the tests switch on and off in [`FaultyBackend`].
#[derive(Debug, Default)]
pub struct Faults {
    /// Every write, resize and sync fails with "no space left on device".
    pub fail_writes: AtomicBool,
    /// Reads on the `kb-backup` thread wait while this is set.
    pub hold_backup_reads: AtomicBool,
    /// Reads waiting on `hold_backup_reads` now.
    pub held_reads: AtomicUsize,
    /// Syncs (the fsync of a commit) wait while this is set: a commit that takes its time.
    pub hold_syncs: AtomicBool,
    /// Syncs waiting on `hold_syncs` now.
    pub held_syncs: AtomicUsize,
}

#[derive(Debug)]
struct FaultyBackend {
    inner: FileBackend,
    faults: Arc<Faults>,
}

impl FaultyBackend {
    fn check_write(&self) -> io::Result<()> {
        if self.faults.fail_writes.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ));
        }
        Ok(())
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        if std::thread::current().name() == Some("kb-backup") {
            while self.faults.hold_backup_reads.load(Ordering::SeqCst) {
                self.faults.held_reads.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
                self.faults.held_reads.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_write()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.check_write()?;
        while self.faults.hold_syncs.load(Ordering::SeqCst) {
            self.faults.held_syncs.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            self.faults.held_syncs.fetch_sub(1, Ordering::SeqCst);
        }
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check_write()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// Opens `dir/kb.redb` through a [`FaultyBackend`] driven by the returned switches; a small
/// page cache, so that reads reach the backend.
pub fn faulty_store(dir: &Path) -> (Arc<Store>, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    let switches = faults.clone();
    let options = StoreOptions {
        cache_mb: 1,
        backend: Some(Arc::new(move |inner| {
            Box::new(FaultyBackend {
                inner,
                faults: switches.clone(),
            })
        })),
        ..StoreOptions::default()
    };
    let store = Store::open(&dir.join("kb.redb"), options).unwrap();
    (Arc::new(store), faults)
}

/// The real router around `store`, with its writer and an export job, served by the real
/// accept loop on an ephemeral port from a runtime of its own; stops when dropped.
pub struct InProcess {
    pub base: String,
    pub client: reqwest::blocking::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    pub fn start(store: Arc<Store>, config: ServerConfig, export_dir: &Path) -> InProcess {
        let metrics = Arc::new(Metrics::new());
        let (writer, writer_thread) =
            Writer::spawn(store.clone(), WriterConfig::default(), metrics.clone());
        let export = Arc::new(ExportJob::new(store.clone(), export_dir.to_owned()));
        let state = AppState {
            store,
            writer,
            metrics,
            config: Arc::new(config),
            export: Some(export),
            feed: Default::default(),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let (_app_tx, app_rx) = tokio::sync::watch::channel(Some(http::app(state)));
                let switch = Switch::new(app_rx, recovering_router(Recovery::default()));
                let limits = ConnectionLimits {
                    shutdown_timeout: Duration::from_secs(1),
                    ..ConnectionLimits::default()
                };
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                http::serve(listener, switch, limits, shutdown)
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        InProcess {
            base: format!("http://{addr}"),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            stop: Some(stop_tx),
            thread: Some(thread),
            writer_thread: Some(writer_thread),
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        answer(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .unwrap(),
        )
    }

    pub fn post_json(&self, path: &str, body: &str) -> Answer {
        self.post_keyed(path, body, None)
    }

    pub fn post_keyed(&self, path: &str, body: &str, key: Option<&str>) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        answer(request.send().unwrap())
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The runtime is gone with the router and every writer handle: the writer drains and
        // stops, letting go of the store.
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits until `cond` holds, polling; fails after 60 s.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// At 669becd a write that timed out after it was queued got 503 with `Retry-After: 1`, and was
/// then committed: a client that obeyed retried and stored the record twice. Now the timeout of
/// a queued write says it may have been committed, without `Retry-After`, and a retry with the
/// same idempotency key learns its seq instead of storing it again.
#[test]
fn a_queued_write_that_times_out_may_have_been_committed_and_its_key_tells() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = faulty_store(dir.path());
    let config = ServerConfig {
        request_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = InProcess::start(store, config, dir.path());
    let event = r#"{"source":"bot","event_kind":"slow-disk"}"#;
    faults.hold_syncs.store(true, Ordering::SeqCst);
    let timed_out = server.post_keyed("/event", event, Some("k-1"));
    assert_eq!(timed_out.status, 503, "{}", timed_out.text);
    assert_eq!(
        timed_out.retry_after, None,
        "no Retry-After: it may be stored"
    );
    assert!(
        timed_out.json["error"]
            .as_str()
            .unwrap()
            .contains("may have been committed"),
        "{}",
        timed_out.text
    );
    eventually("the commit waits on its sync", || {
        faults.held_syncs.load(Ordering::SeqCst) > 0
    });
    faults.hold_syncs.store(false, Ordering::SeqCst);
    // The honest client retries with its key until it gets an answer: the one commit's seq.
    let mut retry = server.post_keyed("/event", event, Some("k-1"));
    eventually("the retry is answered", || {
        if retry.status == 503 {
            retry = server.post_keyed("/event", event, Some("k-1"));
        }
        retry.status == 200
    });
    assert_eq!(retry.json["duplicate"], true, "{}", retry.text);
    assert_eq!(server.get("/stats").json["total"], 1);
}

#[test]
fn a_full_disk_degrades_then_the_store_reopens_itself_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = faulty_store(dir.path());
    let server = InProcess::start(store.clone(), ServerConfig::default(), dir.path());
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let a = server.post_json("/event", &format!(r#"{{"source":"bot","i":{i}}}"#));
        assert_eq!(a.status, 200, "{}", a.text);
        acknowledged.push(a.json["seq"].as_u64().unwrap());
    }
    assert_eq!(server.post_json("/export", "{}").status, 200);

    faults.fail_writes.store(true, Ordering::SeqCst);
    for i in 0..5 {
        let a = server.post_json("/event", &format!(r#"{{"source":"bot","lost":{i}}}"#));
        assert_eq!(a.status, 507, "{}", a.text);
        assert!(a.retry_after.is_some(), "no Retry-After: {a:?}");
        let error = a.json["error"].as_str().unwrap();
        assert!(error.contains("no space left"), "{error}");
    }
    let health = server.get("/healthz");
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.json["status"], "degraded", "{}", health.text);
    assert_eq!(health.json["storage"]["no_space"], true, "{}", health.text);
    // Reads never answer 500: what redb still has answers, the rest is a 503 to retry.
    for path in ["/stats", "/events?limit=5", "/metrics"] {
        let a = server.get(path);
        assert!(
            matches!(a.status, 200 | 503),
            "{path}: {} {}",
            a.status,
            a.text
        );
    }
    assert!(
        server
            .get("/metrics")
            .text
            .contains("lakehousekb_storage_fault 1")
    );
    // The export meets the same fault: reported, not a 500.
    let export = server.post_json("/export", "{}");
    assert_ne!(export.status, 500, "{}", export.text);

    // Space returns: no restart, writes succeed again.
    faults.fail_writes.store(false, Ordering::SeqCst);
    eventually("writes succeed again", || {
        let a = server.post_json("/event", r#"{"source":"bot","after":true}"#);
        if a.status == 200 {
            acknowledged.push(a.json["seq"].as_u64().unwrap());
        }
        a.status == 200
    });
    let health = server.get("/healthz");
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.json["status"], "ok", "{}", health.text);
    // Nothing acknowledged was lost, nothing refused was stored.
    let events = server.get("/events?limit=1000");
    assert_eq!(events.status, 200, "{}", events.text);
    let seqs: Vec<u64> = events.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, acknowledged, "{}", events.text);
    assert!(!events.text.contains("lost"), "{}", events.text);
    // The export works again too, and the database checks clean.
    let export = server.post_json("/export", "{}");
    assert_eq!(export.status, 200, "{}", export.text);
    assert_eq!(
        export.json["ops"]["checkpoint"]["seq"],
        *acknowledged.last().unwrap()
    );
    drop(server);
    let mut store = Arc::try_unwrap(store).expect("the server let go of the store");
    assert!(store.check().unwrap().passed());
}

/// The same at the store level: the fault is recorded with its cause, and the store comes back
/// by itself once the disk takes writes.
#[test]
fn the_store_records_a_fault_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = faulty_store(dir.path());
    crate::export::load(&store, 1, 30);
    let before = store.last_seq().unwrap();
    faults.fail_writes.store(true, Ordering::SeqCst);
    let failed = store
        .checkpoint("ops")
        .and_then(|c| store.set_checkpoint("ops", c));
    let error = failed.unwrap_err();
    assert!(error.is_storage_fault(), "{error}");
    let fault = store.note_error(&error).expect("an I/O error is a fault");
    assert!(fault.no_space, "{fault:?}");
    assert!(store.fault().is_some());
    // While the disk is full the store stays faulted (the probe fails, the database is kept).
    std::thread::sleep(Duration::from_millis(300));
    assert!(store.fault().is_some());
    faults.fail_writes.store(false, Ordering::SeqCst);
    eventually("the store recovered", || store.fault().is_none());
    crate::export::load(&store, 2, 30);
    assert_eq!(
        store.last_seq().unwrap(),
        2 * before,
        "nothing lost, the new batch stored"
    );
}

/// A 0-byte `kb.redb` used to be taken as a new, empty database, and the next export emptied
/// the legacy files. Now `serve` and `export` refuse it with what was found and what to do, and
/// the legacy files are untouched. A file that is not a database is refused the same way.
#[test]
fn an_empty_or_foreign_database_file_is_refused_at_start() {
    for (content, needle) in [
        (&b""[..], "empty file (0 bytes)"),
        (&b"id,name\n1,legacy\n"[..], "not a redb database"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        std::fs::write(data.join("kb.redb"), content).unwrap();
        std::fs::create_dir_all(data.join("_kb")).unwrap();
        std::fs::create_dir_all(data.join("_observer")).unwrap();
        let outcomes = b"{\"sig_hash\":\"pr1-aaaaaaaa\",\"legacy\":true}\n";
        let ops = b"{\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"endpoint\":\"scenario:fill\"}\n";
        std::fs::write(data.join("_kb/outcomes.jsonl"), outcomes).unwrap();
        std::fs::write(data.join("_observer/ops.jsonl"), ops).unwrap();

        let export = crate::cli::kb(data, &["export"]);
        assert!(!export.status.success());
        let stderr = String::from_utf8_lossy(&export.stderr);
        assert!(stderr.contains(needle), "{stderr}");
        assert!(
            stderr.contains("restore it from a backup") || stderr.contains("restore a backup"),
            "{stderr}"
        );

        // Spawned with a bound: a server that took the file would serve until killed.
        let mut serve = std::process::Command::new(crate::support::BIN)
            .arg("--data")
            .arg(data)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env_remove("LAKEHOUSE_KB_DATA")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let status = crate::support::wait_exit(&mut serve, Duration::from_secs(60));
        assert!(!status.success());
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(stderr.contains(needle), "{stderr}");

        assert_eq!(std::fs::read(data.join("kb.redb")).unwrap(), content);
        assert_eq!(
            std::fs::read(data.join("_kb/outcomes.jsonl")).unwrap(),
            outcomes
        );
        assert_eq!(
            std::fs::read(data.join("_observer/ops.jsonl")).unwrap(),
            ops
        );
        for sub in ["_kb", "_observer"] {
            assert_eq!(std::fs::read_dir(data.join(sub)).unwrap().count(), 1);
        }
        assert!(matches!(
            Store::open(&data.join("kb.redb"), StoreOptions::default()),
            Err(StoreError::EmptyFile { .. } | StoreError::NotADatabase { .. })
        ));
    }
}
