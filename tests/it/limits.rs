//! Hostile and unlucky clients against the real binary, and the request log that says what
//! happened. Each test failed at 669becd (the story of each is in its doc comment).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{TestServer, server_log};

/// Polls `condition` every 20 ms until it holds; panics with `what` after `timeout`.
#[track_caller]
fn wait_for(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "{what} (waited {timeout:?})");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// At 669becd the default filter logged 6 lines for 5,000 requests. Now every request has one
/// info line with its method, path, route, status, latency, id and peer; the id is the client's
/// `x-request-id` when sane, else made, and comes back in the answer.
#[test]
fn every_request_is_logged_once_with_its_id() {
    let server = TestServer::start_with(&[], &[("LAKEHOUSE_KB_LOG_FORMAT", "json")]);
    let get = |path: &str, id: Option<&str>| {
        let mut request = server.client().get(server.url(path));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        let response = request.send().unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        (response.status().as_u16(), id)
    };
    assert_eq!(
        get("/stats", Some("given-id.1")),
        (200, "given-id.1".to_owned())
    );
    let (status, made) = get("/prs/7/history", Some("not sane {}"));
    assert_eq!(status, 200);
    assert_ne!(made, "not sane {}");
    let (status, unmatched) = get("/nowhere", None);
    assert_eq!(status, 404);
    assert_ne!(unmatched, made);

    let lines = || -> Vec<Value> {
        server_log(&server.data)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["fields"]["message"] == "request")
            .collect()
    };
    wait_for(Duration::from_secs(10), "request lines missing", || {
        lines().len() >= 3
    });
    let by_id = |id: &str| -> Vec<Value> {
        lines()
            .into_iter()
            .filter(|l| l["fields"]["request_id"] == id)
            .collect()
    };
    let given = by_id("given-id.1");
    assert_eq!(given.len(), 1, "{given:?}");
    let fields = &given[0]["fields"];
    assert_eq!(given[0]["level"], "INFO");
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["path"], "/stats");
    assert_eq!(fields["route"], "/stats");
    assert_eq!(fields["status"], 200);
    assert!(fields["latency_ms"].as_f64().unwrap() >= 0.0, "{fields}");
    assert!(
        fields["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{fields}"
    );
    let history = &by_id(&made)[0]["fields"];
    assert_eq!(
        (&history["path"], &history["route"]),
        (&json!("/prs/7/history"), &json!("/prs/{pr_number}/history"))
    );
    let missing = &by_id(&unmatched)[0]["fields"];
    assert_eq!(
        (&missing["route"], &missing["status"]),
        (&json!("unmatched"), &json!(404))
    );
}
