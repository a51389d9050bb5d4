//! The server's life: a graceful stop answers what is in flight, loses nothing acknowledged
//! and closes the database cleanly (no repair at the next start); a second signal exits at once.

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{LEGACY_VERDICTS, TestServer, eventually, server_log};

#[test]
fn sigterm_finishes_in_flight_writes_and_closes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(dir.path(), &[], &[]);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let url = server.url("/event");
            let acked = acked.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                for i in 0..10_000 {
                    let body = format!(r#"{{"source":"bot","w":{w},"i":{i}}}"#);
                    let Ok(r) = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                    else {
                        return;
                    };
                    if r.status().as_u16() != 200 {
                        return;
                    }
                    let seq = r.json::<serde_json::Value>().unwrap()["seq"]
                        .as_u64()
                        .unwrap();
                    acked.lock().unwrap().push(seq);
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 200 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = server.stop();
    assert!(status.success(), "exit status {status:?}");
    for w in writers {
        w.join().unwrap();
    }
    let log = server_log(dir.path());
    assert!(log.contains("stopped cleanly"), "{log}");

    let restarted = TestServer::start_in(dir.path(), &[], &[]);
    let log = server_log(dir.path());
    assert!(
        !log.contains("repairing"),
        "a clean stop needs no repair: {log}"
    );
    let acked = acked.lock().unwrap().clone();
    let stored = restarted.stats()["total"].as_u64().unwrap();
    assert!(
        stored >= acked.len() as u64,
        "{stored} stored, {} acknowledged",
        acked.len()
    );
    let page = restarted.get("/events?limit=1000");
    let mut seqs: Vec<u64> = page.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let mut before = page.json["next_before_seq"].as_u64();
    while let Some(b) = before {
        let page = restarted.get(&format!("/events?limit=1000&before_seq={b}"));
        seqs.extend(
            page.json["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap()),
        );
        before = page.json["next_before_seq"].as_u64();
    }
    let stored: std::collections::HashSet<u64> = seqs.into_iter().collect();
    for seq in acked {
        assert!(stored.contains(&seq), "acknowledged seq {seq} was lost");
    }
}

/// A hangup (a foreground `serve` whose terminal or ssh session went away) stops the service
/// as SIGTERM does: it ended the process unhandled, without the last export, and the next
/// start applied the journal as after a crash.
/// `--data` given as a symbolic link to a directory (`/var/lib/kb` to a volume): at 2ab15cf
/// every write was a 503, the store faulted with "Not a directory" (the directory was synced
/// without following links, as the files in it are opened), and so was the export (a
/// review's). The link is the operator's, and followed once.
#[test]
fn a_data_directory_given_as_a_link_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (real, link) = (dir.path().join("volume"), dir.path().join("data"));
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let server = TestServer::start_in(&link, &["--export-interval", "100ms"], &[]);
    let event = server.post_json("/event", r#"{"source":"bot"}"#);
    assert_eq!(event.status, 200, "{}", event.text);
    let verdicts = std::fs::read_to_string(LEGACY_VERDICTS).unwrap();
    let verdict = server.post_json("/verdicts", verdicts.lines().next().unwrap());
    assert_eq!(verdict.status, 201, "{}", verdict.text);
    eventually("the export writes its files", || {
        real.join("_observer/ops.jsonl").exists() && real.join("_kb/outcomes.jsonl").exists()
    });
    let health = server.get("/healthz");
    assert_eq!(health.status, 200, "{}", health.text);
    assert!(real.join("kb.redb").is_file());
}

#[test]
fn sighup_stops_the_service_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), &[], &[]);
    assert_eq!(
        server.post_json("/event", r#"{"source":"bot"}"#).status,
        200
    );
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}");
    let log = server_log(dir.path());
    assert!(log.contains("stopped cleanly"), "{log}");
    let ops = std::fs::read_to_string(dir.path().join("_observer/ops.jsonl")).unwrap();
    assert_eq!(ops.lines().count(), 1, "the last export ran: {ops:?}");
}

#[test]
fn a_restart_after_kill_9_repairs_and_logs_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), &[], &[]);
    let acked = server.post_json("/event", r#"{"source":"bot"}"#);
    assert_eq!(acked.status, 200);
    drop(server); // SIGKILL
    let restarted = TestServer::start_in(dir.path(), &[], &[]);
    let log = server_log(dir.path());
    assert!(
        log.contains("repairing the database after an unclean shutdown"),
        "{log}"
    );
    assert_eq!(
        restarted.stats()["total"],
        1,
        "the acknowledged event survived"
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    let server = TestServer::start();
    // A request whose body never finishes keeps the graceful shutdown waiting.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stalled = TcpStream::connect(&addr).unwrap();
    stalled
        .write_all(b"POST /event HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let pid = server.pid();
    let kill = |sig: &str| {
        assert!(
            std::process::Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string())
                .status()
                .unwrap()
                .success()
        );
    };
    kill("TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        process_alive(pid),
        "the first signal waits for the request in flight"
    );
    let start = Instant::now();
    kill("INT");
    while process_alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the second signal did not exit at once"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(server_log(&server.data).contains("second signal"));
    drop(stalled);
}

/// Alive and not a zombie waiting to be reaped.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn healthz_says_recovering_until_the_database_can_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    drop(lakehouse_kb::store::Store::open(&path, Default::default()).unwrap());
    // Another process (here: this test) still holds the file, as a previous server would
    // while it finishes exiting.
    let held = redb::Database::create(&path).unwrap();
    let server = TestServer::spawn_in(dir.path(), &[], &[]);
    let health = server.get("/healthz");
    assert_eq!(health.status, 503, "{}", health.text);
    // The fields in the order API.md shows, and when to ask again.
    assert!(
        health
            .text
            .starts_with(r#"{"status":"recovering","progress":"#),
        "{}",
        health.text
    );
    assert_eq!(health.retry_after.as_deref(), Some("2"));
    // Not to be kept by a cache, as every answer of the application.
    let raw = server.client().get(server.url("/healthz")).send().unwrap();
    assert_eq!(raw.headers()["cache-control"], "no-store");
    let write = server.post_json("/event", "{}");
    assert_eq!(
        (write.status, write.retry_after.as_deref()),
        (503, Some("2"))
    );
    assert!(
        write.json["error"]
            .as_str()
            .unwrap()
            .contains("being opened")
    );
    // Release the file only once the server has found it held: on a loaded machine its first
    // attempt may come after the requests above, and would then simply succeed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !server_log(dir.path()).contains("open in another process; waiting") {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never said it waits for the file: {}",
            server_log(dir.path())
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(held);
    server.wait_healthy();
    assert_eq!(server.post_json("/event", "{}").status, 200);
}

/// A stop asked while another process holds the file ends the server at once, and it never
/// opens the file: at 6b64929 it went on waiting, then opened (and migrated, and exported)
/// the file once the other process let go, and only then stopped (found by review).
#[test]
fn a_stop_while_waiting_for_the_database_never_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    drop(lakehouse_kb::store::Store::open(&path, Default::default()).unwrap());
    let held = redb::Database::create(&path).unwrap();
    let mut server = TestServer::spawn_in(dir.path(), &[], &[]);
    eventually("the server says it waits for the file", || {
        server_log(dir.path()).contains("open in another process; waiting")
    });
    let status = server.stop();
    assert!(status.success(), "{status:?}: {}", server_log(dir.path()));
    let log = server_log(dir.path());
    assert!(
        log.contains("stopped before the database was opened"),
        "{log}"
    );
    assert!(!log.contains("serving"), "{log}");
    drop(held);
}

#[test]
fn a_database_that_cannot_be_opened_stops_the_server_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    drop(lakehouse_kb::store::Store::open(&path, Default::default()).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(lakehouse_kb::store::tables::META)
            .unwrap()
            .insert("schema_version", lakehouse_kb::store::SCHEMA_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let server = TestServer::spawn_in(dir.path(), &[], &[]);
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    let log = server_log(dir.path());
    assert!(log.contains("manual upgrade required"), "{log}");
}

#[test]
fn a_write_flood_leaves_health_and_reads_answering() {
    let server = TestServer::start_with(
        &["--max-writes-in-flight", "8", "--queue-capacity", "8"],
        &[],
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let shed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let batch: String = (0..500)
        .map(|i| format!("{{\"source\":\"bot\",\"i\":{i}}}\n"))
        .collect();
    let flood: Vec<_> = (0..32)
        .map(|_| {
            let (url, stop, shed, batch) = (
                server.url("/event"),
                stop.clone(),
                shed.clone(),
                batch.clone(),
            );
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/x-ndjson")
                        .body(batch.clone())
                        .send()
                        .unwrap();
                    match r.status().as_u16() {
                        200 => {}
                        503 => {
                            shed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        other => panic!("unexpected {other}"),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..20 {
        for path in ["/healthz", "/stats", "/events?limit=5"] {
            let start = Instant::now();
            let answer = server.get(path);
            assert_eq!(
                answer.status, 200,
                "{path} during the flood: {}",
                answer.text
            );
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{path} took {:?}",
                start.elapsed()
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in flood {
        t.join().unwrap();
    }
    assert!(
        shed.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "32 flooding clients never hit the limit of 8"
    );
}

#[test]
fn slow_requests_and_slow_headers_are_cut_off() {
    let server = TestServer::start_with(
        &["--body-timeout", "1s", "--header-read-timeout", "1s"],
        &[],
    );
    let addr = server.base.trim_start_matches("http://").to_owned();

    // A body that never arrives: a JSON 408 after the body timeout.
    let post = |length: usize| {
        let head = format!(
            "POST /event HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             content-length: {length}\r\n\r\n{{"
        );
        crate::support::raw_exchange(&server.base, head.as_bytes())
    };
    let (answer, took) = post(100);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1s"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(took < Duration::from_secs(5));

    // A body announced larger than the limit: a 413 at once, its body unread, and the
    // connection closed with it, as the answer says.
    let (answer, took) = post(2_000_000);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(took < Duration::from_secs(5), "closed at once");

    // Headers that never finish: the connection is closed after the header-read timeout.
    let mut slow_headers = TcpStream::connect(&addr).unwrap();
    slow_headers
        .write_all(b"GET /stats HTTP/1.1\r\nhost: localhost\r\n")
        .unwrap();
    slow_headers
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut slow_headers, &mut rest);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "held for {:?}",
        start.elapsed()
    );
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn retention_keeps_the_newest_events_and_all_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(
        dir.path(),
        &["--events-max-count", "5", "--retention-interval", "100ms"],
        &[],
    );
    for i in 0..20 {
        assert_eq!(
            server
                .post_json("/event", format!(r#"{{"source":"bot","i":{i}}}"#))
                .status,
            200
        );
    }
    let verdict = std::fs::read_to_string(LEGACY_VERDICTS).unwrap();
    assert_eq!(server.post_ndjson("/verdicts", verdict).status, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = server.stats();
        if stats["total"] == 5 {
            assert_eq!(stats["verdicts"], 26, "verdicts are history, never deleted");
            assert_eq!(stats["outcomes"], 26);
            let sources = stats["by_source"].as_object().unwrap();
            assert_eq!(
                sources.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
                5
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention never brought events to 5: {stats}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let newest: Vec<u64> = server.get("/events?limit=10").json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(newest.len(), 5);
    assert!(server.stop().success());
    let out = std::process::Command::new(crate::support::BIN)
        .arg("--data")
        .arg(dir.path())
        .arg("check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// What the server tells systemd, read from a `NOTIFY_SOCKET` as systemd would.
struct Notifications {
    socket: std::os::unix::net::UnixDatagram,
    path: std::path::PathBuf,
    seen: Vec<String>,
}

impl Notifications {
    fn bind(dir: &std::path::Path) -> Notifications {
        let path = dir.join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Notifications {
            socket,
            path,
            seen: Vec::new(),
        }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Receives datagrams until one holds the line `line`; returns every line received on the
    /// way, that one included.
    fn until(&mut self, line: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut buf = [0u8; 4096];
            let n = self.socket.recv(&mut buf).unwrap_or_else(|e| {
                panic!("no {line:?} from the server ({e}); got {:?}", self.seen)
            });
            let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = datagram.lines().any(|l| l == line);
            lines.extend(datagram.lines().map(str::to_owned));
            self.seen.extend(datagram.lines().map(str::to_owned));
            if found {
                return lines;
            }
        }
    }
}

/// systemd `Type=notify`: the unit's readiness is the server's own word. With `NOTIFY_SOCKET`
/// set, the server sends `READY=1` only once the database is open and the API answers (so a
/// unit ordered after it starts against a healthy service), `STOPPING=1` on SIGTERM, and with
/// `WATCHDOG_USEC` set (the unit's `WatchdogSec=`), `WATCHDOG=1` pings while it runs. At
/// 669becd there were no pings: a unit with `WatchdogSec=` would have been killed.
#[test]
fn systemd_is_told_ready_when_healthy_pinged_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut notifications = Notifications::bind(dir.path());
    let data = dir.path().join("data");
    let mut server = TestServer::spawn_in(
        &data,
        &[],
        &[
            ("NOTIFY_SOCKET", notifications.path()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let ready = notifications.until("READY=1");
    assert!(
        ready.iter().any(|l| l.starts_with("STATUS=serving on ")),
        "{ready:?}"
    );
    // Ready means healthy: no polling needed after READY=1.
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(
        server
            .post_json("/event", r#"{"source":"bot","event_kind":"ready"}"#)
            .status,
        200
    );
    // Pings keep coming while it serves (every 100 ms for a 200 ms watchdog).
    for _ in 0..3 {
        notifications.until("WATCHDOG=1");
    }

    assert!(server.stop().success());
    notifications.until("STOPPING=1");
    let log = server_log(&data);
    assert!(log.contains("pinging the systemd watchdog"), "{log}");
}

/// A repair at start (after `kill -9`) is reported to systemd as it runs: a status line, and
/// extensions of the start timeout (`EXTEND_TIMEOUT_USEC`), so `TimeoutStartSec` does not kill
/// a repair that is making progress. At 669becd systemd heard nothing until `READY=1`.
#[test]
fn a_repair_at_start_is_reported_to_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, &[], &[]);
    assert_eq!(
        server.post_json("/event", r#"{"source":"bot"}"#).status,
        200
    );
    drop(server); // SIGKILL

    told_before_ready(
        dir.path(),
        &data,
        "STATUS=repairing the database after an unclean shutdown: ",
    );
    crate::support::log_with(&data, "repairing the database", 1);
}

/// A rebuild of the findings memory at start (a database an older binary built, under other
/// rules) is reported to systemd as it runs, with extensions of the start timeout, as a repair
/// is: at 95d2b9c systemd heard nothing until `READY=1`, and a rebuild longer than
/// `TimeoutStartSec` would have been killed (and restarted, again and again: a review's).
#[test]
fn a_rebuild_at_start_is_reported_to_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = TestServer::start_in(&data, &[], &[]);
    let verdict = r#"{"pr_number":3,"head_sha":"abcdef0123456789abcdef0123456789abcdef01","overall":"block","one_liner":"x","audited_at":"2026-06-01T00:00:00.000Z","metrics":{"findings_block":0,"findings_warn":1},"findings":[{"check":"security","severity":"warn","summary":"redis accepts connections without auth"}]}"#;
    assert_eq!(server.post_json("/verdicts", verdict).status, 201);
    assert!(server.stop().success());
    {
        let db = redb::Database::create(data.join("kb.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(lakehouse_kb::store::tables::META)
            .unwrap()
            .insert("findings/rules_version", 4)
            .unwrap();
        txn.commit().unwrap();
    }

    told_before_ready(
        dir.path(),
        &data,
        "STATUS=opening the database: building the findings memory",
    );
}

/// Starts a server on `data` with systemd's `NOTIFY_SOCKET` (under `dir`), and checks that
/// before `READY=1` it sent a status starting with `status` and extended the start timeout.
fn told_before_ready(dir: &std::path::Path, data: &std::path::Path, status: &str) {
    let mut notifications = Notifications::bind(dir);
    let _restarted = TestServer::spawn_in(data, &[], &[("NOTIFY_SOCKET", notifications.path())]);
    let before_ready = notifications.until("READY=1");
    assert!(
        before_ready.iter().any(|l| l.starts_with(status)),
        "{before_ready:?}"
    );
    assert!(
        before_ready
            .iter()
            .any(|l| l == "EXTEND_TIMEOUT_USEC=60000000"),
        "{before_ready:?}"
    );
}

/// stderr is a pipe nobody reads while the requests run: once the pipe's buffer (64 KiB on
/// Linux) is full, a server that wrote its request lines in the request would stop answering.
/// The lines wait in the log writer's queue instead, and all come out once stderr is read.
#[test]
fn a_stalled_stderr_reader_stalls_no_request() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    const REQUESTS: usize = 1_500;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(crate::support::BIN)
        .arg("--data")
        .arg(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("LAKEHOUSE_KB_TOKEN")
        .env("LAKEHOUSE_KB_LOG", "lakehouse_kb=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("lakehouse-kb listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let start = Instant::now();
    while client
        .get(format!("{base}/healthz"))
        .send()
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(start.elapsed() < Duration::from_secs(60), "never healthy");
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 0..REQUESTS {
        let answer = client
            .post(format!("{base}/event"))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"source":"mcp","event_kind":"stderr_{i}","success":true,"note":"{}"}}"#,
                "x".repeat(200)
            ))
            .send()
            .unwrap_or_else(|e| panic!("request {i} of {REQUESTS} failed: {e}"));
        assert!(
            answer.status().is_success(),
            "request {i}: {}",
            answer.status()
        );
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("lakehousekb_log_lines_dropped_total 0"),
        "no line dropped while the queue had room: {metrics}"
    );
    // Now stderr is read: every request's line was kept.
    let mut stderr = child.stderr.take().unwrap();
    crate::support::signal(&child, "TERM");
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    crate::support::wait_exit(&mut child, Duration::from_secs(30));
    let logged = log.lines().filter(|l| l.contains("route=/event")).count();
    assert!(
        logged >= REQUESTS,
        "{logged} request lines of {REQUESTS} in {} bytes of log",
        log.len()
    );
    assert!(
        log.len() > 4 * 65_536,
        "the log ({} bytes) must be well beyond a pipe's buffer for the test to mean anything",
        log.len()
    );
    eprintln!("{REQUESTS} requests in {:?}", start.elapsed());
}
