//! The server's life: a graceful stop answers what is in flight, loses nothing acknowledged
//! and closes the database cleanly (no repair at the next start); a second signal exits at once.

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{TestServer, server_log};

#[test]
fn sigterm_finishes_in_flight_writes_and_closes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), &[], &[]);
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

#[test]
fn a_second_signal_exits_at_once() {
    let server = TestServer::start();
    // A request whose body never finishes keeps the graceful shutdown waiting.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stalled = TcpStream::connect(&addr).unwrap();
    stalled
        .write_all(b"POST /event HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{")
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
