//! Test support: `TestServer` runs the real `lakehouse-kb serve` binary on an ephemeral port
//! over a temp data directory, waits on `/healthz` (never on a sleep), and stops it on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_lakehouse-kb");

/// Where a test server's stderr goes, inside its data directory.
pub const STDERR_LOG: &str = "server.stderr.log";

/// What the server wrote to stderr so far.
pub fn server_log(data: &Path) -> String {
    std::fs::read_to_string(data.join(STDERR_LOG)).unwrap_or_default()
}

pub struct TestServer {
    child: Option<Child>,
    pub base: String,
    pub data: PathBuf,
    _dir: Option<tempfile::TempDir>,
    client: reqwest::blocking::Client,
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
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        TestServer {
            child: Some(child),
            base,
            data: data.to_owned(),
            _dir: None,
            client,
        }
    }

    /// Waits for the process to exit by itself; returns its status.
    pub fn wait_exit(mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        wait_exit(&mut child, timeout)
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
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", content_type);
        answer(request.body(body.into()).send().unwrap())
    }

    pub fn stats(&self) -> Value {
        let a = self.get("/stats");
        assert_eq!(a.status, 200, "{}", a.text);
        a.json
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
