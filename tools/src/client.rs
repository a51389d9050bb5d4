//! A minimal HTTP/1.1 client for the benchmarks: one keep-alive connection per simulated client
//! (hyper's connection API, no pool, no retries), so a timed request is exactly one round trip
//! on an open socket, body read included. Plus a blocking one-shot GET for readiness checks.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// One open keep-alive connection. Requests on it are sequential (no pipelining).
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// A response: status and the whole body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes the connection; a failure
            // shows up on the next request instead.
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let request = request.body(Full::new(body))?;
        self.sender.ready().await.context("connection closed")?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body })
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        self.send(Method::GET, path, None, Bytes::new()).await
    }

    pub async fn post_json(&mut self, path: &str, body: Bytes) -> anyhow::Result<Answer> {
        self.send(Method::POST, path, Some("application/json"), body)
            .await
    }
}

/// A blocking `GET path` on a fresh connection, returning the status: for readiness checks
/// outside any async runtime.
pub fn get_status_blocking(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let text = std::str::from_utf8(&head)?;
    match text.strip_prefix("HTTP/1.1 ").and_then(|s| s.parse().ok()) {
        Some(status) => Ok(status),
        None => bail!("not an HTTP/1.1 status line: {text:?}"),
    }
}
