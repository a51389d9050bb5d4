//! Talking to a running server from the CLI: when the server holds the database file, the
//! commands that need a snapshot of it (backup, export) ask the server over HTTP instead, once
//! they have checked that the server at `--url` is the one holding it.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::fsutil;

/// Where the running server is: `--url`, else `LAKEHOUSE_KB_URL`, else the default bind.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// URL of the running server, used when it holds the database file
    #[arg(
        long,
        env = "LAKEHOUSE_KB_URL",
        default_value = "http://127.0.0.1:3800"
    )]
    pub url: String,
}

/// The longest answer the CLI reads from a server (its answers are a few hundred bytes): what
/// answers at `--url` may be anything.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// How long the probe of `/healthz` may take: a server answers it at once.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request to the server that holds the database may take: a backup or an export
/// runs within the server's `--request-timeout`, which an operator may have raised.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// Fails unless the server at `url` holds the database file at `db_path`: its `/healthz` names
/// the file it holds by [`fsutil::file_identity`]. Another instance answering at `url` (its own
/// data directory, another port's default) must not be the one that backs up or exports, and
/// is never sent the token (`/healthz` takes none).
pub fn require_holder(url: &str, db_path: &Path) -> anyhow::Result<()> {
    let ours =
        fsutil::file_identity(db_path).with_context(|| format!("reading {}", db_path.display()))?;
    let probe = Request {
        method: hyper::Method::GET,
        path: "/healthz",
        body: None,
        token: None,
        timeout: PROBE_TIMEOUT,
    };
    let (_, health) = request(url, probe).with_context(|| {
        format!(
            "the database is open in another process, and asking the server at {url} failed: \
             if a check, backup or migration holds it, run this again when it has finished; if \
             a server does, name it with --url (or LAKEHOUSE_KB_URL)"
        )
    })?;
    match health["database"].as_str() {
        Some(theirs) if theirs == ours => Ok(()),
        Some(_) => anyhow::bail!(
            "the server at {url} holds another database, not {}: name the server that holds it \
             with --url (or LAKEHOUSE_KB_URL)",
            db_path.display()
        ),
        None => anyhow::bail!(
            "the server at {url} does not say which database it holds, so it is not asked: \
             name the lakehouse-kb server that holds {} with --url",
            db_path.display()
        ),
    }
}

/// POSTs a JSON body to the server [`require_holder`] found (with `LAKEHOUSE_KB_TOKEN` as
/// bearer token, if set); returns the status and the JSON answer.
pub fn post_json(url: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let token = std::env::var("LAKEHOUSE_KB_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let post = Request {
        method: hyper::Method::POST,
        path,
        body: Some(body),
        token,
        timeout: REQUEST_TIMEOUT,
    };
    request(url, post)
}

struct Request<'a> {
    method: hyper::Method,
    path: &'a str,
    body: Option<&'a Value>,
    token: Option<String>,
    timeout: Duration,
}

/// One request, its answer read whole within `timeout` and [`MAX_ANSWER_BYTES`].
fn request(url: &str, r: Request<'_>) -> anyhow::Result<(u16, Value)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let uri = format!("{}{}", url.trim_end_matches('/'), r.path);
    let what = format!("{} {uri}", r.method);
    let exchange = async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = hyper::Request::builder().method(r.method).uri(&uri);
        if let Some(token) = &r.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match r.body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let response = client.request(request.body(Full::new(body))?).await?;
        let status = response.status().as_u16();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
            .to_bytes();
        let answer = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        anyhow::Ok((status, answer))
    };
    // The timer is made inside the runtime, which it needs.
    match runtime.block_on(async { tokio::time::timeout(r.timeout, exchange).await }) {
        Ok(answered) => answered,
        Err(_) => Err(anyhow::anyhow!("no answer within {:?}", r.timeout)),
    }
    .with_context(|| what)
}
