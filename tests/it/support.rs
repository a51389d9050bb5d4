//! Test support: `InProcessServer` runs the service (`lakehouse_kb::service::run`) in this
//! process and `TestServer` the real `lakehouse-kb serve` binary, each on an ephemeral port
//! over a temp data directory; both wait on `/healthz` (never on a sleep), stop on drop, and
//! speak HTTP through [`Http`]. A test needs the binary only for what a process has: signals,
//! SIGKILL, systemd, its stderr log, the command line.

use std::future::Future;
use std::io;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::ops::Bound;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::synth::Synth;
use clap::Parser;
use lakehouse_kb::cli::{Cli, Command as Subcommand, service_config};
use lakehouse_kb::export::{ExportFile, ExportJob};
use lakehouse_kb::http::{
    self, AppState, ConnectionLimits, Recovery, ServerConfig, Switch, recovering_router,
};
use lakehouse_kb::intake::{event_record, outcome_record, verdict_record};
use lakehouse_kb::metrics::Metrics;
use lakehouse_kb::service::{self, ServiceConfig, ServiceError};
use lakehouse_kb::store::{AnswerBytes, Put, Store, StoreOptions};
use lakehouse_kb::writer::{Writer, WriterConfig};
use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};
use serde_json::Value;
use tokio::sync::oneshot;

pub const BIN: &str = env!("CARGO_BIN_EXE_lakehouse-kb");

/// Where a test server's stderr goes, inside its data directory.
pub const STDERR_LOG: &str = "server.stderr.log";

/// What the server wrote to stderr so far.
pub fn server_log(data: &Path) -> String {
    std::fs::read_to_string(data.join(STDERR_LOG)).unwrap_or_default()
}

/// The log of the server in `data` once it holds `count` lines containing `needle` (its log is
/// written by a thread of its own, a moment after what it tells of); panics after 10 s.
pub fn log_with(data: &Path, needle: &str, count: usize) -> String {
    let start = std::time::Instant::now();
    loop {
        let log = server_log(data);
        if log.lines().filter(|l| l.contains(needle)).count() >= count {
            return log;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "fewer than {count} lines with {needle:?} in the log: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client of a server under test: its base URL and a blocking HTTP client.
pub struct Http {
    pub base: String,
    client: reqwest::blocking::Client,
}

pub struct TestServer {
    child: Option<Child>,
    http: Http,
    pub data: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Deref for TestServer {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

/// The service in this process, on its own runtime thread, configured by `serve`'s own flags
/// (through the CLI's mapping, so a test's arguments mean what they mean to the binary).
pub struct InProcessServer {
    http: Http,
    pub data: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServiceError>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Deref for InProcessServer {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

impl InProcessServer {
    pub fn start() -> InProcessServer {
        InProcessServer::start_with(&[])
    }

    /// Starts on a fresh temp data directory with extra `serve` arguments.
    pub fn start_with(args: &[&str]) -> InProcessServer {
        let dir = tempfile::tempdir().unwrap();
        let mut server = InProcessServer::start_in(dir.path(), args);
        server._dir = Some(dir);
        server
    }

    /// Starts on an existing data directory (to restart over the same database).
    pub fn start_in(data: &Path, args: &[&str]) -> InProcessServer {
        InProcessServer::start_configured(data, serve_config(data, args))
    }

    /// Starts over `data` with a configuration of the test's own (a store backend, ...).
    pub fn start_configured(data: &Path, config: ServiceConfig) -> InProcessServer {
        let server = InProcessServer::spawn_configured(data, config);
        server.wait_healthy();
        server
    }

    /// As [`InProcessServer::start_configured`], without waiting for the database to open.
    pub fn spawn_configured(data: &Path, config: ServiceConfig) -> InProcessServer {
        std::fs::create_dir_all(data).unwrap();
        let (addr, stop, thread) =
            serve_on_thread(move |listener, shutdown| service::run(config, listener, shutdown));
        InProcessServer {
            http: Http::new(format!("http://{addr}")),
            data: data.to_owned(),
            stop: Some(stop),
            thread: Some(thread),
            _dir: None,
        }
    }

    /// Stops in order (the service's shutdown) and returns what `run` returned. The data
    /// directory stays (it goes when the server does).
    pub fn stop(&mut self) -> Result<(), ServiceError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let thread = self.thread.take().expect("the service is running");
        thread.join().expect("the service thread panicked")
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

/// Runs `serve(listener, shutdown)` on a runtime of its own, on a thread: the address it
/// listens on (`127.0.0.1`, an ephemeral port), the switch that completes `shutdown`, and the
/// thread, which returns what `serve` did.
fn serve_on_thread<T, F>(
    serve: impl FnOnce(tokio::net::TcpListener, Shutdown) -> F + Send + 'static,
) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<T>)
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let (bound_tx, bound_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            bound_tx.send(listener.local_addr().unwrap()).unwrap();
            let shutdown: Shutdown = Box::pin(async {
                let _ = stopped.await;
            });
            serve(listener, shutdown).await
        })
    });
    let addr = bound_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the in-process server never bound its listener");
    (addr, stop, thread)
}

type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The real router and accept loop around a store the test holds (one that fails on demand,
/// say), with its writer and an export job into `export_dir`; stops when dropped.
pub struct RouterServer {
    http: Http,
    /// The server's answers' pool and heavy-read slots.
    pub answers: Arc<AnswerBytes>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    writer_thread: Option<JoinHandle<()>>,
}

impl Deref for RouterServer {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

impl RouterServer {
    pub fn start(store: Arc<Store>, config: ServerConfig, export_dir: &Path) -> RouterServer {
        let metrics = Arc::new(Metrics::new());
        let (writer, writer_thread) =
            Writer::spawn(store.clone(), WriterConfig::default(), metrics.clone());
        let export = Arc::new(ExportJob::new(store.clone(), export_dir.to_owned()));
        let state = AppState::new(lakehouse_kb::http::Shared {
            store,
            writer,
            metrics,
            config: Arc::new(config),
            export: Some(export),
            feed: Default::default(),
        });
        let answers = state.answers().clone();
        let (addr, stop, thread) = serve_on_thread(move |listener, shutdown| async move {
            let (_app_tx, app_rx) = tokio::sync::watch::channel(Some(http::app(state)));
            let switch = Switch::new(app_rx, recovering_router(Recovery::default()));
            let limits = ConnectionLimits {
                shutdown_timeout: Duration::from_secs(1),
                ..ConnectionLimits::default()
            };
            http::serve(listener, switch, limits, shutdown)
                .await
                .unwrap();
        });
        RouterServer {
            http: Http::new(format!("http://{addr}")),
            answers,
            stop: Some(stop),
            thread: Some(thread),
            writer_thread: Some(writer_thread),
        }
    }
}

impl Drop for RouterServer {
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

/// What the tests switch on and off in [`FaultyBackend`].
#[derive(Debug, Default)]
pub struct Faults {
    /// Every write, resize and sync fails with "no space left on device".
    pub fail_writes: AtomicBool,
    /// Reads on the `kb-backup` thread wait while this is set.
    pub hold_backup_reads: AtomicBool,
    /// Reads waiting on `hold_backup_reads` now.
    pub held_reads: AtomicUsize,
    /// Growing the file fails with "no space left on device" while this is set; writes within
    /// it go through (a disk with a little room left).
    pub fail_growth: AtomicBool,
    /// Syncs (the fsync of a commit) fail with an I/O error while this is set; writes go
    /// through (a disk whose cache cannot be flushed).
    pub fail_syncs: AtomicBool,
    /// Syncs (the fsync of a commit) wait while this is set: a commit that takes its time.
    pub hold_syncs: AtomicBool,
    /// Syncs waiting on `hold_syncs` now.
    pub held_syncs: AtomicUsize,
}

impl Faults {
    /// Holds every sync until the guard is dropped, also when the test fails (a request whose
    /// commit is held would keep the test's threads, and so the test, from ending).
    pub fn holding_syncs(&self) -> HeldSyncs<'_> {
        self.hold_syncs.store(true, Ordering::SeqCst);
        HeldSyncs(self)
    }
}

/// Releases the syncs [`Faults::holding_syncs`] holds when dropped.
pub struct HeldSyncs<'a>(&'a Faults);

impl Drop for HeldSyncs<'_> {
    fn drop(&mut self) {
        self.0.hold_syncs.store(false, Ordering::SeqCst);
    }
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
        if self.faults.fail_growth.load(Ordering::SeqCst) && len > self.inner.len()? {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ));
        }
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.check_write()?;
        if self.faults.fail_syncs.load(Ordering::SeqCst) {
            return Err(io::Error::other("input/output error (injected)"));
        }
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
    let store = Store::open(&dir.join("kb.redb"), faulty_options(&faults)).unwrap();
    (Arc::new(store), faults)
}

/// Options that open a store through a backend `faults` switches.
pub fn faulty_options(faults: &Arc<Faults>) -> StoreOptions {
    let switches = faults.clone();
    StoreOptions {
        cache_mb: 1,
        backend: Some(Arc::new(move |inner| {
            Box::new(FaultyBackend {
                inner,
                faults: switches.clone(),
            })
        })),
        ..StoreOptions::default()
    }
}

/// `serve`'s configuration for `--data DATA serve ARGS...`, as the binary maps it.
pub fn serve_config(data: &Path, args: &[&str]) -> ServiceConfig {
    let data = data.to_str().unwrap();
    let argv = ["lakehouse-kb", "--data", data, "serve"]
        .into_iter()
        .chain(args.iter().copied());
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("serve {args:?}: {e}"));
    let Subcommand::Serve(serve) = cli.command else {
        unreachable!("parsed as serve")
    };
    let mut config = service_config(&cli.global, &serve).unwrap();
    // Like the binary under `TestServer`: a token only when the test gives one.
    if !args.contains(&"--token") {
        config.http.token = None;
    }
    config
}

/// One HTTP answer: status, headers we look at, and the body parsed as JSON (`Value::Null`
/// when it is not JSON), plus the raw text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub text: String,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(&[], &[])
    }

    /// Starts on a fresh temp data directory with extra `serve` arguments and environment.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_owned();
        let mut server = TestServer::start_in(&data, args, env);
        server._dir = Some(dir);
        server
    }

    /// Starts on an existing data directory (to restart over the same database).
    pub fn start_in(data: &Path, args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let server = TestServer::spawn_in(data, args, env);
        server.wait_healthy();
        server
    }

    /// Starts and returns as soon as the server listens, before it is healthy.
    pub fn spawn_in(data: &Path, args: &[&str], env: &[(&str, &str)]) -> TestServer {
        std::fs::create_dir_all(data).unwrap();
        let stderr = std::fs::File::create(data.join(STDERR_LOG)).unwrap();
        let mut command = Command::new(BIN);
        command
            .arg("--data")
            .arg(data)
            .arg("serve")
            .args(if args.contains(&"--bind") {
                &[][..]
            } else {
                &["--bind", "127.0.0.1:0"][..]
            })
            .args(args)
            .env_remove("LAKEHOUSE_KB_TOKEN")
            .env("LAKEHOUSE_KB_LOG", "lakehouse_kb=info")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("starting lakehouse-kb serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("no listening line; the server said: {}", server_log(data))
            });
        let base = line
            .strip_prefix("lakehouse-kb listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        TestServer {
            child: Some(child),
            http: Http::new(base),
            data: data.to_owned(),
            _dir: None,
        }
    }

    /// Waits for the process to exit by itself; returns its status.
    pub fn wait_exit(mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        wait_exit(&mut child, timeout)
    }

    /// SIGTERM, then wait for a clean exit; returns the exit status.
    /// The data directory stays (it goes when the `TestServer` does).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the server is running");

        signal(&child, "TERM");
        wait_exit(&mut child, Duration::from_secs(60))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
}

impl Http {
    fn new(base: String) -> Http {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Http { base, client }
    }

    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.client.get(self.url("/healthz")).send()
                && r.status().as_u16() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never became healthy",
                self.base
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client(&self) -> &reqwest::blocking::Client {
        &self.client
    }

    pub fn get(&self, path: &str) -> Answer {
        answer(self.client.get(self.url(path)).send().unwrap())
    }

    pub fn post_json(&self, path: &str, body: impl Into<Vec<u8>>) -> Answer {
        self.post(path, "application/json", body)
    }

    pub fn post_ndjson(&self, path: &str, body: impl Into<Vec<u8>>) -> Answer {
        self.post(path, "application/x-ndjson", body)
    }

    pub fn post(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Answer {
        self.post_keyed(path, content_type, None, body)
    }

    /// A POST with an `Idempotency-Key` header when `key` is given.
    pub fn post_keyed(
        &self,
        path: &str,
        content_type: &str,
        key: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> Answer {
        let mut request = self
            .client
            .post(self.url(path))
            .header("content-type", content_type);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        answer(request.body(body.into()).send().unwrap())
    }

    pub fn stats(&self) -> Value {
        let a = self.get("/stats");
        assert_eq!(a.status, 200, "{}", a.text);
        a.json
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn answer(response: reqwest::blocking::Response) -> Answer {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("").to_owned())
    };
    let retry_after = header("retry-after");
    let content_type = header("content-type");
    let text = response.text().unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        json,
        text,
        retry_after,
        content_type,
    }
}

/// Asserts a 4xx JSON error naming `field`, with a message containing `needle`.
#[track_caller]
pub fn assert_error(answer: &Answer, status: u16, field: &str, needle: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.json["field"], field, "{}", answer.text);
    let message = answer.json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {}", answer.text));
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

/// The legacy files' paths under a data or export directory, as the export names them.
pub const OUTCOMES: &str = ExportFile::Outcomes.relative_path();
pub const OPS: &str = ExportFile::Ops.relative_path();

/// What the original JavaScript wrote: a legacy data directory (`_kb/outcomes.jsonl`,
/// `_observer/ops.jsonl`, the verdict files) and the auditor's verdicts as NDJSON.
pub const LEGACY_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/legacy/data");
pub const LEGACY_VERDICTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/legacy/verdicts.ndjson"
);

/// Set in a child copy of this test binary, to `HOOK\tDATA`: the child runs the export of
/// `DATA` with that crash hook and stops where it says (sled's crash tests re-run their binary
/// the same way), so that no crash switch lives in the product.
pub const EXPORT_CRASH_CHILD: &str = "LAKEHOUSE_KB_TEST_EXPORT_CRASH_CHILD";

/// A child copy of this test binary exporting `data` with the crash hook `hook` (the test
/// `export::crash::export_crash_child` is what it runs).
pub fn spawn_export_crash(data: &Path, hook: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "export::crash::export_crash_child",
            "--nocapture",
        ])
        .env(EXPORT_CRASH_CHILD, format!("{hook}\t{}", data.display()));
    command
}

/// Runs the real binary over `data` with `args`.
pub fn kb(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("LAKEHOUSE_KB_DATA")
        .output()
        .expect("the lakehouse-kb binary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits until `cond` holds, polling; fails after 60 s.
#[track_caller]
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `request`, raw bytes, on a new connection to `base` (`http://HOST:PORT`) and reads
/// until the server closes it (or 10 s pass): the answer as text, and how long it took.
pub fn raw_exchange(base: &str, request: &[u8]) -> (String, Duration) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream.write_all(request).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    (answer, start.elapsed())
}

/// Opens (or creates) `dir/kb.redb`.
pub fn open_store(dir: &Path) -> Store {
    Store::open(&dir.join("kb.redb"), StoreOptions::default()).unwrap()
}

/// Mixed synthetic traffic: verdicts (with their row and event), events, scenario rows.
pub fn load(store: &Store, seed: u64, n: usize) {
    let mut synth = Synth::new(seed, 40);
    let puts: Vec<Put> = (0..n)
        .map(|i| {
            let now = 1_775_000_000_000 + i as u64;
            match i % 3 {
                0 => Put::from(verdict_record(synth.verdict().as_bytes(), now).unwrap()),
                1 => Put::from(event_record(synth.event().as_bytes(), now).unwrap()),
                _ => Put::from(outcome_record(synth.outcome().as_bytes(), now).unwrap()),
            }
        })
        .collect();
    store.write(&puts).unwrap();
}

/// Fails with the first differing line only (never whole files).
#[track_caller]
pub fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let got_lines: Vec<&[u8]> = got.split_inclusive(|&b| b == b'\n').collect();
    let want_lines: Vec<&[u8]> = want.split_inclusive(|&b| b == b'\n').collect();
    for i in 0..got_lines.len().max(want_lines.len()) {
        let (g, w) = (got_lines.get(i), want_lines.get(i));
        if g != w {
            let show = |l: Option<&&[u8]>| {
                l.map_or("<end of file>".to_owned(), |l| {
                    format!("{:?}", String::from_utf8_lossy(l))
                })
            };
            panic!(
                "{what}: first difference at line {} ({} vs {} bytes in all)\n  got:  {}\n  want: {}",
                i + 1,
                got.len(),
                want.len(),
                show(g),
                show(w)
            );
        }
    }
}

/// Runs `lakehouse-kb check` on `data` and kills it (SIGKILL) once its log reports progress of
/// the open-time build or conversion whose name contains `what`, that is once it has committed
/// part of it; returns the log up to there.
pub fn kill_check_midway(data: &Path, what: &str) -> String {
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .arg("check")
        .env_remove("LAKEHOUSE_KB_DATA")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the binary ended before any {what} progress: {log}"))
            .unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("build progress") && line.contains(what) {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    log
}

/// Runs `lakehouse-kb check` on `data` after [`kill_check_midway`]: it passes, and the build
/// or conversion it finishes went on from the mark `mark` the killed run left.
#[track_caller]
pub fn check_resumes_from(data: &Path, mark: u64) {
    let out = kb(data, &["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("from_seq={mark}")),
        "{}",
        stderr(&out)
    );
}
