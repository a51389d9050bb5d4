//! The real `lakehouse-kb serve` binary as a child process, for benchmarks that measure it over
//! HTTP: find the binary, start it on `127.0.0.1:0` over a data directory, learn its address
//! from the first stdout line, stop it gracefully (SIGTERM) so the database closes cleanly.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// File in the data directory that receives the server's stderr.
pub const STDERR_LOG: &str = "server.stderr.log";

/// The server binary: `explicit` if given, else `lakehouse-kb` next to the running executable
/// (`target/release/loadgen` finds `target/release/lakehouse-kb`; a test binary in
/// `target/debug/deps/` finds `target/debug/lakehouse-kb`).
pub fn locate_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("server binary {} does not exist", path.display());
        }
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe().context("finding the running executable")?;
    let mut dir = exe.parent().map(Path::to_owned).unwrap_or_default();
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    let candidate = dir.join(format!("lakehouse-kb{}", std::env::consts::EXE_SUFFIX));
    if !candidate.is_file() {
        bail!(
            "server binary not found at {}: build it first (cargo build --release -p \
             lakehouse-kb) or pass --bin PATH",
            candidate.display()
        );
    }
    Ok(candidate)
}

/// Takes the child's piped stdout; the returned function waits (at most its argument) for
/// the first line. The rest of the output is drained, so the child never blocks on a full pipe.
pub fn first_stdout_line(child: &mut Child) -> impl FnOnce(Duration) -> Option<String> + use<> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    move |timeout| rx.recv_timeout(timeout).ok()
}

/// A running server. Stopped (SIGTERM, then SIGKILL after a grace period) on `stop` or drop.
pub struct ServerProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data: PathBuf,
}

impl ServerProcess {
    /// Starts `bin --data DATA serve --bind 127.0.0.1:0 EXTRA...` and waits for its address
    /// line and a 200 from `/healthz`.
    pub fn start(bin: &Path, data: &Path, extra_args: &[String]) -> anyhow::Result<ServerProcess> {
        let mut server = ServerProcess::spawn(bin, data, extra_args)?;
        server.wait_healthy_within(Duration::from_secs(60))?;
        Ok(server)
    }

    /// Starts the server and returns once it listens, before it is healthy (it may still be
    /// opening or repairing the database).
    pub fn spawn(bin: &Path, data: &Path, extra_args: &[String]) -> anyhow::Result<ServerProcess> {
        std::fs::create_dir_all(data)?;
        let stderr = std::fs::File::create(data.join(STDERR_LOG))?;
        let mut child = Command::new(bin)
            .arg("--data")
            .arg(data)
            .arg("serve")
            .args(["--bind", "127.0.0.1:0"])
            .args(extra_args)
            .env_remove("LAKEHOUSE_KB_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let first_line = first_stdout_line(&mut child);
        let mut server = ServerProcess {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data: data.to_owned(),
        };
        let Some(line) = first_line(Duration::from_secs(120)) else {
            bail!("the server printed no address line\n{}", server.log_tail());
        };
        let Some(addr) = line
            .trim()
            .strip_prefix("lakehouse-kb listening on http://")
            .and_then(|a| a.parse().ok())
        else {
            bail!(
                "unexpected first line from the server: {line:?}\n{}",
                server.log_tail()
            );
        };
        server.addr = addr;
        Ok(server)
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether `/healthz` answers 200 right now.
    pub fn healthy(&self) -> bool {
        crate::client::get_status_blocking(self.addr, "/healthz").is_ok_and(|s| s == 200)
    }

    /// Polls `/healthz` until it answers 200 (at most `timeout`); returns how many answers
    /// were 503 on the way ("recovering" while the database opens).
    pub fn wait_healthy_within(&mut self, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        let mut unavailable = 0;
        loop {
            match crate::client::get_status_blocking(self.addr, "/healthz") {
                Ok(200) => return Ok(unavailable),
                Ok(503) => unavailable += 1,
                _ => {}
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("the server exited with {status}\n{}", self.log_tail());
            }
            if Instant::now() > deadline {
                bail!("/healthz never answered 200\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's whole stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join(STDERR_LOG)).unwrap_or_default()
    }

    /// Waits until the server's stderr contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            if Instant::now() > deadline {
                bail!("the server never logged {needle:?}\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// SIGKILL: no chance to close anything, as in a crash.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines of the server's stderr, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data.join(STDERR_LOG)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the server gracefully and waits for it: the database is closed when this returns.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = terminate(&mut child, Duration::from_secs(120))?;
        if !status.success() {
            bail!("the server exited with {status}\n{}", self.log_tail());
        }
        Ok(())
    }
}

/// Sends `child` SIGTERM and waits up to `grace` for it to exit; SIGKILLs it after that (an
/// error: it did not stop by itself). Returns how it exited.
pub fn terminate(child: &mut Child, grace: Duration) -> anyhow::Result<ExitStatus> {
    // SIGTERM through kill(1): the workspace forbids unsafe code, so no libc::kill here.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "pid {} did not stop within {grace:?} of SIGTERM; killed",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}
