//! Talking to a running server from the CLI: when the server holds the database file, the
//! commands that need a snapshot of it (backup) ask the server over HTTP instead.

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

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

/// POSTs a JSON body (with `LAKEHOUSE_KB_TOKEN` as bearer token, if set); returns the status
/// and the JSON answer.
pub fn post_json(url: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let uri = format!("{}{path}", url.trim_end_matches('/'));
        let mut request = hyper::Request::post(&uri).header("content-type", "application/json");
        if let Ok(token) = std::env::var("LAKEHOUSE_KB_TOKEN")
            && !token.is_empty()
        {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::from(body.to_string())))?;
        let response = client
            .request(request)
            .await
            .with_context(|| format!("POST {uri}"))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let answer = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, answer))
    })
}
