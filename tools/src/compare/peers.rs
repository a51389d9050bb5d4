//! The other servers the comparison drives over HTTP, each a child process like lakehouse-kb
//! itself so its memory is its own: the legacy observer in Node.js, and an axum handler that
//! does nothing (the HTTP ceiling), run by this tool's `noop-server` subcommand.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

/// The legacy observer script, next to this crate's sources.
pub const LEGACY_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/compare/legacy-observer.mjs");

/// A child server that prints `... listening on http://ADDR` as its first line.
pub struct Peer {
    child: Option<Child>,
    pub addr: SocketAddr,
}

impl Peer {
    /// Starts `command` and waits for its address line.
    pub fn start(mut command: Command) -> anyhow::Result<Peer> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        let first_line = crate::server::first_stdout_line(&mut child);
        let mut peer = Peer {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = first_line(Duration::from_secs(30))
            .with_context(|| format!("{command:?} printed no address line"))?;
        peer.addr = line
            .split_once("listening on http://")
            .and_then(|(_, addr)| addr.trim().parse().ok())
            .with_context(|| format!("unexpected first line {line:?} from {command:?}"))?;
        Ok(peer)
    }

    /// The legacy observer over `data` (`DATA/_observer/ops.jsonl`, `DATA/_kb/outcomes.jsonl`).
    pub fn legacy(node: &Path, data: &Path, fsync: bool) -> anyhow::Result<Peer> {
        let mut command = Command::new(node);
        command.arg(LEGACY_SCRIPT).arg(data);
        if fsync {
            command.arg("--fsync");
        }
        Peer::start(command)
    }

    /// The no-op axum server (this executable's `noop-server` subcommand).
    pub fn noop() -> anyhow::Result<Peer> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg("noop-server");
        Peer::start(command)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Stops the server (SIGTERM, SIGKILL after 10 s) and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // The exit status is not checked: the no-op server has no signal handler and dies of
        // the SIGTERM, which is how it is meant to stop.
        crate::server::terminate(&mut child, Duration::from_secs(10))?;
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// The HTTP ceiling: an axum server whose `POST /event` reads the body and answers
/// `{"ok":true}`, on the same runtime configuration as lakehouse-kb (multi-threaded tokio).
pub fn run_noop_server() -> anyhow::Result<()> {
    use axum::Router;
    use axum::routing::{get, post};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let app = Router::new()
            .route(
                "/event",
                post(|body: bytes::Bytes| async move {
                    std::hint::black_box(body);
                    axum::Json(serde_json::json!({"ok": true}))
                }),
            )
            .route("/healthz", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("noop-server listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}
