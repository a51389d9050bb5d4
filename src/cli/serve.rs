//! `lakehouse-kb serve`: run the HTTP service until SIGINT or SIGTERM, then stop accepting,
//! answer the requests in flight, drain the writer and close the database cleanly. A second
//! signal exits at once.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::ArgAction;
use tokio::net::TcpListener;

use super::GlobalArgs;
use crate::http::{self, AppState, ServerConfig};
use crate::metrics::Metrics;
use crate::store::Store;
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
    #[arg(long, env = "LAKEHOUSE_KB_GROUP_COMMIT", default_value_t = true, action = ArgAction::Set)]
    pub group_commit: bool,
    /// Bearer token required on write routes (prefer the environment variable: argv is visible)
    #[arg(long, env = "LAKEHOUSE_KB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With a token set, require it on read routes too
    #[arg(long, env = "LAKEHOUSE_KB_AUTH_READS")]
    pub auth_reads: bool,
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
    let token = args.token.filter(|t| !t.is_empty());
    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && token.is_none() {
        let warning = format!(
            "lakehouse-kb is listening on {addr}, beyond this machine, and LAKEHOUSE_KB_TOKEN is \
             not set: anyone who can reach it can write"
        );
        eprintln!("WARNING: {warning}");
        tracing::warn!("{warning}");
    }

    std::fs::create_dir_all(&global.data)
        .with_context(|| format!("creating the data directory {}", global.data.display()))?;
    let path = global.db_path();
    let options = global.store_options();
    let store = tokio::task::spawn_blocking(move || Store::open(&path, options))
        .await?
        .with_context(|| format!("opening {}", global.db_path().display()))?;
    let store = Arc::new(store);

    let metrics = Arc::new(Metrics::new());
    let writer_config = WriterConfig {
        queue_capacity: args.queue_capacity,
        max_batch_puts: args.max_commit_batch,
        group_commit: args.group_commit,
    };
    let (writer, writer_thread) = Writer::spawn(store.clone(), writer_config, metrics.clone());
    let config = ServerConfig {
        max_body_bytes: args.max_body,
        max_batch_lines: args.max_batch_lines,
        token,
        auth_reads: args.auth_reads,
    };
    let state = AppState {
        store: store.clone(),
        writer,
        metrics,
        config: Arc::new(config),
    };

    // A machine-readable line on stdout: tests and scripts learn the port from it.
    println!("lakehouse-kb listening on http://{addr}");
    tracing::info!(%addr, data = %global.data.display(), group_commit = args.group_commit, "serving");
    http::serve(listener, state, shutdown_signal()).await?;

    // Every handler has returned, so every writer handle is gone: the thread drains what is
    // queued, answers it, and stops.
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    match Arc::try_unwrap(store) {
        Ok(store) => drop(store),
        Err(_) => {
            tracing::warn!("the database is still referenced at exit; redb closes it on drop")
        }
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Completes at the first SIGINT or SIGTERM; a second one exits the process at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("shutting down: finishing requests in flight (signal again to exit at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second signal: exiting without finishing");
        std::process::exit(130);
    });
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

/// `1048576`, `512KiB`, `1MiB` (also `KB`/`MB`, `K`/`M`, read as binary units).
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
        _ => return Err(format!("unknown size unit in {text:?} (use KiB or MiB)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("1GiB").is_err());
        assert!(parse_size("lots").is_err());
    }
}
