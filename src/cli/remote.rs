//! Talking to a running server from the CLI: when the server holds the database file, the
//! commands that need a snapshot of it (backup, export) ask the server over HTTP instead, once
//! they have checked that the server at `--url` is the one holding it.

use std::path::Path;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
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

/// Fails unless the server at `url` holds the database file at `db_path`: its `/healthz` names
/// the file it holds by [`fsutil::file_identity`]. Another instance answering at `url` (its own
/// data directory, another port's default) must not be the one that backs up or exports.
pub fn require_holder(url: &str, db_path: &Path) -> anyhow::Result<()> {
    let ours =
        fsutil::file_identity(db_path).with_context(|| format!("reading {}", db_path.display()))?;
    let (_, health) = request(url, hyper::Method::GET, "/healthz", None).with_context(|| {
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

/// POSTs a JSON body (with `LAKEHOUSE_KB_TOKEN` as bearer token, if set); returns the status
/// and the JSON answer.
pub fn post_json(url: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    request(url, hyper::Method::POST, path, Some(body))
}

fn request(
    url: &str,
    method: hyper::Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let uri = format!("{}{path}", url.trim_end_matches('/'));
        let mut request = hyper::Request::builder().method(method.clone()).uri(&uri);
        if let Ok(token) = std::env::var("LAKEHOUSE_KB_TOKEN")
            && !token.is_empty()
        {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let response = client
            .request(request.body(Full::new(body))?)
            .await
            .with_context(|| format!("{method} {uri}"))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let answer = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, answer))
    })
}
