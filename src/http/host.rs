//! The `Host` a request names, on a server listening on loopback only. Such a server is for the
//! machine's own clients, and takes no token by default; but a web page of another site can
//! reach it through DNS rebinding (its name made to resolve to 127.0.0.1): the browser then
//! takes the service for the page's own origin, sends its requests without a preflight and
//! lets the page read the answers. A review's page read every PR's findings and dismissed a
//! block finding repository-wide. Such a request still names the page's site in `Host`, and
//! nothing else tells it from a local client's (a same-origin `GET` carries no `Origin`, and
//! browsers send no `Sec-Fetch-*` to a plain-http site): so only a `Host` that is an IP
//! address (rebinding needs a name), `localhost`, a name under `.localhost` (which browsers
//! resolve to loopback themselves) or a name the operator allows (`--allow-host`) is served;
//! another is a 421. A request without `Host` (HTTP/1.0) comes from no browser, and is served.
//! A request target in absolute form (`GET http://name/stats`) names the host there, and its
//! `Host` is then not looked at (RFC 9112, 3.2.2).
//!
//! On every server, as RFC 9112 (3.2) asks: an HTTP/1.1 request without `Host`, and any
//! request with two `Host` lines or one that is not a host and port, is a 400 naming `host`.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// The names a loopback-only server answers to besides IP addresses and `localhost`, as
/// [`allowed_name`] writes them: `None` when the server listens beyond loopback (its clients
/// name it as they reach it).
pub type AllowedHosts = Option<Vec<String>>;

pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Err(e) = well_formed(&request) {
        return e.into_response();
    }
    allowed(&state, request, next).await
}

/// RFC 9112's rule alone ([`well_formed`]), for the router that answers while the database
/// opens (it has no configuration to read the allowed names from).
pub async fn well_formed_guard(request: Request, next: Next) -> Response {
    match well_formed(&request) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// The loopback guard: a `Host` a loopback-only server answers, else a 421.
async fn allowed(state: &AppState, request: Request, next: Next) -> Response {
    let named = match request.uri().authority() {
        Some(authority) => Some(authority.host().as_bytes()),
        None => request.headers().get(header::HOST).map(|h| h.as_bytes()),
    };
    if let (Some(allowed), Some(host)) = (&state.config.allowed_hosts, named) {
        let name = host_name(host);
        if !is_local(name)
            && !allowed
                .iter()
                .any(|a| a.as_bytes().eq_ignore_ascii_case(name))
        {
            let shown = String::from_utf8_lossy(&name[..name.len().min(200)]).into_owned();
            return ApiError::Misdirected(format!(
                "this server listens on loopback and answers requests for localhost or an IP \
                 address, not {shown:?} (a web page of another site reaching it through DNS \
                 rebinding names its own); --allow-host admits a name"
            ))
            .into_response();
        }
    }
    next.run(request).await
}

/// RFC 9112, 3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
/// request message that lacks a Host header field and to any request message that contains
/// more than one Host header field line or a Host header field with an invalid field value."
fn well_formed(request: &Request) -> Result<(), ApiError> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let refused = |message: &str| Err(ApiError::bad_request("host", message));
    match (hosts.next(), hosts.next()) {
        (None, _) if request.version() >= Version::HTTP_11 => {
            refused("an HTTP/1.1 request must carry a Host header")
        }
        (None, _) => Ok(()),
        (Some(_), Some(_)) => refused("Host given twice"),
        (Some(host), None) if is_host_and_port(host.as_bytes()) => Ok(()),
        (Some(_), None) => refused("Host must be a host name or address, with an optional port"),
    }
}

/// `host [ ":" port ]` (RFC 9110, 7.2; RFC 3986, 3.2.2): an IP literal in brackets (`[::1]`),
/// or a name or IPv4 address of letters, digits, `-._~` and percent-escapes; then, maybe, a
/// `:` and a port of digits only, at most 65535 (`host:http`, `host:+80` are not ports), or
/// none. No user part (`me@host`), and nothing a name never holds (the RFC's sub-delimiters,
/// `,;=` and the like, name no host any client sends). Read in place, on every request.
fn is_host_and_port(value: &[u8]) -> bool {
    // The host, checked, and what follows it.
    let (host_ok, rest) = match value.strip_prefix(b"[") {
        Some(literal) => match literal.iter().position(|&b| b == b']') {
            Some(end) => (
                end > 0
                    && literal[..end]
                        .iter()
                        .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.')),
                &literal[end + 1..],
            ),
            None => (false, &[][..]),
        },
        None => {
            let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
            let name = &value[..end];
            let name_ok = name.iter().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%')
            });
            (end > 0 && name_ok, &value[end..])
        }
    };
    let port_ok = |port: &[u8]| {
        port.len() <= 5
            && port.iter().all(u8::is_ascii_digit)
            && port.iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0')) <= u32::from(u16::MAX)
    };
    host_ok && (rest.is_empty() || rest.strip_prefix(b":").is_some_and(port_ok))
}

/// The host of a `Host` value, without its port or a final dot: `[::1]:3800` is `::1`.
fn host_name(value: &[u8]) -> &[u8] {
    let host = match value.strip_prefix(b"[") {
        Some(rest) => rest.split(|&b| b == b']').next().unwrap_or(rest),
        None => match value.iter().rposition(|&b| b == b':') {
            Some(colon) if value[colon + 1..].iter().all(u8::is_ascii_digit) => &value[..colon],
            _ => value,
        },
    };
    host.strip_suffix(b".").unwrap_or(host)
}

/// `localhost`, a name under `.localhost`, or an IP address (a rebinding page is reached by a
/// name; a client naming an address names the server it means).
fn is_local(host: &[u8]) -> bool {
    // Compared in place, without a lower-case copy: this runs for every request.
    // `localhost` itself, or the last label of a name under it.
    let last_label = host.rsplit(|&b| b == b'.').next().unwrap_or(host);
    if last_label.eq_ignore_ascii_case(b"localhost") {
        return true;
    }
    std::str::from_utf8(host).is_ok_and(|text| text.parse::<IpAddr>().is_ok())
}

/// An `--allow-host` value as a `Host` is compared with it: lower case, without a port or a
/// final dot (`KB.example:3800` is `kb.example`); `None` when nothing is left.
pub fn allowed_name(value: &str) -> Option<String> {
    let name = host_name(value.trim().as_bytes());
    let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_and_port_is_told_from_other_values() {
        let good = [
            "localhost",
            "localhost:3800",
            "localhost:",
            "LocalHost.:80",
            "127.0.0.1:0",
            "127.0.0.1:65535",
            "[::1]",
            "[::1]:3800",
            "[::ffff:127.0.0.1]:80",
            "kb-1.example_x~y.org",
            "xn--bcher-kva.example",
            "caf%C3%A9.example",
        ];
        for value in good {
            assert!(is_host_and_port(value.as_bytes()), "{value}");
        }
        let bad = [
            "",
            ":80",
            "local host",
            "a,b",
            "me@localhost",
            "localhost:http",
            "127.0.0.1:+80",
            "127.0.0.1:65536",
            "127.0.0.1:000080",
            "localhost:80:81",
            "localhost/x",
            "b\u{fc}cher.example",
            "[::1",
            "[]",
            "[::1]x",
            "[::1]:http",
            "[fe80::1%25eth0]",
        ];
        for value in bad {
            assert!(!is_host_and_port(value.as_bytes()), "{value}");
        }
    }

    #[test]
    fn local_hosts_are_told_from_others() {
        // (Host value, served)
        let cases: [(&str, bool); 15] = [
            ("127.0.0.1:3800", true),
            ("127.0.0.1", true),
            ("127.8.9.10:3800", true),
            ("localhost:3800", true),
            ("LocalHost.", true),
            ("kb.localhost:3800", true),
            ("[::1]:3800", true),
            ("[::1]", true),
            ("10.0.0.5:3800", true),
            ("[::ffff:7f00:1]:3800", true),
            ("attacker.example:3800", false),
            ("attacker.example", false),
            ("localhost.attacker.example", false),
            ("127.0.0.1.nip.io:3800", false),
            ("x", false),
        ];
        for (value, served) in cases {
            assert_eq!(is_local(host_name(value.as_bytes())), served, "{value}");
        }
        assert_eq!(
            allowed_name("KB.example:3800").as_deref(),
            Some("kb.example")
        );
        assert_eq!(allowed_name("kb.example.").as_deref(), Some("kb.example"));
        assert_eq!(allowed_name(" :3800"), None);
    }
}
