//! Ingest over real HTTP against the real service: the observer's `POST /event` end to end
//! (the seed's client, sources, success counts, the receipt time, copied fields and the body
//! kept; every rule case is in the table of `model/event.rs`), atomic idempotent
//! `POST /verdicts`, byte-exact `POST /outcomes`, NDJSON batches, group commit, backpressure,
//! every bad input, auth.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{
    Http, InProcessServer, LEGACY_DATA, LEGACY_VERDICTS, OUTCOMES, TestServer, assert_error,
};

fn fixture_verdicts() -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(LEGACY_VERDICTS)).unwrap();
    text.lines().map(str::to_owned).collect()
}

/// Posts one event body and returns the op the server stored for it (newest event).
fn op_for(server: &Http, body: &str) -> Value {
    let posted = server.post_json("/event", body);
    assert_eq!(posted.status, 200, "{}", posted.text);
    assert_eq!(posted.json["ok"], true);
    let seq = posted.json["seq"].as_u64().unwrap();
    let page = server.get("/events?limit=1");
    let event = &page.json["events"][0];
    assert_eq!(event["seq"].as_u64(), Some(seq), "{}", page.text);
    event["op"].clone()
}

#[test]
fn seed_client_works_unchanged_and_stats_count_the_auditor() {
    let server = InProcessServer::start();
    let verdict = &fixture_verdicts()[0];
    let out = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/js/seed_observer_client.mjs"
        ))
        .arg(verdict)
        .env("LH_OBSERVER_URL", &server.base)
        .output()
        .expect("node runs (Node 20 is part of the CI machine)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = server.stats();
    assert_eq!(stats["by_source"], json!({"auditor": 1}));
    let op = &server.get("/events?limit=1").json["events"][0]["op"];
    assert_eq!(op["endpoint"], "auditor:verdict");
    assert_eq!(op["sig_hash"], "pr1-e9e0d501");
    assert_eq!(op["duration_ms"], 14237);
    assert_eq!(
        op["output_summary"],
        "PR claims 'live-verified' with no evidence in diff"
    );
    assert_eq!(op["input_summary"], "audit ?×? in ?, ?");
}

#[test]
fn source_is_kept_when_allowed_and_coerced_with_the_original_kept_otherwise() {
    let server = InProcessServer::start();
    for source in ["mcp", "scenario", "auditor", "bot"] {
        assert_eq!(
            op_for(&server, &format!(r#"{{"source":"{source}"}}"#))["source"],
            source
        );
    }
    assert_eq!(
        op_for(&server, r#"{"source":"github"}"#)["source"],
        "scenario"
    );
    let event = &server.get("/events?limit=1").json["events"][0];
    assert_eq!(event["source_original"], "github");
    assert_eq!(op_for(&server, r#"{"source":42}"#)["source"], "scenario");
    assert_eq!(
        server.get("/events?limit=1").json["events"][0]["source_original"],
        "42"
    );
    assert_eq!(op_for(&server, "{}")["source"], "scenario");
    assert!(
        server.get("/events?limit=1").json["events"][0]
            .get("source_original")
            .is_none()
    );
    assert_eq!(
        server.stats()["by_source"],
        json!({"mcp": 1, "scenario": 4, "auditor": 1, "bot": 1})
    );
}

#[test]
fn success_comes_from_success_then_ok_then_false() {
    let server = InProcessServer::start();
    assert_eq!(
        op_for(&server, r#"{"success":true,"ok":false}"#)["success"],
        true
    );
    assert_eq!(
        op_for(&server, r#"{"success":false,"ok":true}"#)["success"],
        false
    );
    assert_eq!(
        op_for(&server, r#"{"success":"yes","ok":true}"#)["success"],
        true
    );
    assert_eq!(op_for(&server, r#"{"ok":"true"}"#)["success"], false);
    assert_eq!(op_for(&server, "{}")["success"], false);
    let stats = server.stats();
    assert_eq!(
        (stats["success"].as_u64(), stats["failure"].as_u64()),
        (Some(2), Some(3))
    );
}

#[test]
fn timestamp_is_the_body_s_or_the_receipt_time() {
    let server = InProcessServer::start();
    assert_eq!(
        op_for(&server, r#"{"timestamp":"2026-01-02T03:04:05.006Z"}"#)["timestamp"],
        "2026-01-02T03:04:05.006Z"
    );
    let before = lakehouse_kb::model::now_ms();
    let op = op_for(&server, r#"{"timestamp":null}"#);
    let stamp = op["timestamp"].as_str().unwrap();
    assert_eq!(stamp.len(), 24, "{stamp}");
    assert!(stamp.ends_with('Z'));
    assert!(
        stamp >= lakehouse_kb::model::iso_timestamp(before - 1000).as_str(),
        "{stamp}"
    );
}

#[test]
fn copied_fields_are_copied_and_the_whole_body_is_kept() {
    let server = InProcessServer::start();
    let body = r#"{"error":"e","staffer_id":"s-1","sig_hash":"abc123","event_kind":"fill","extra":{"kept":true}}"#;
    let op = op_for(&server, body);
    for (key, value) in [
        ("error", "e"),
        ("staffer_id", "s-1"),
        ("sig_hash", "abc123"),
        ("event_kind", "fill"),
    ] {
        assert_eq!(op[key], value);
    }
    let stored = server.get("/sig/abc123");
    assert_eq!(stored.json["records"][0]["type"], "event");
    assert_eq!(
        stored.json["records"][0]["body"]["extra"],
        json!({"kept": true})
    );
    // Not a string: copied as the value it is, as the observer copied it (contract §4), in its
    // line and in the file the export writes.
    for field in [
        "timestamp",
        "endpoint",
        "input_summary",
        "output_summary",
        "error",
        "staffer_id",
        "sig_hash",
        "event_kind",
    ] {
        let op = op_for(&server, &format!(r#"{{"{field}":{{"n":12,"1":true}}}}"#));
        assert_eq!(op[field], json!({"1": true, "n": 12}), "{field}");
    }
    let posted = server.post_json(
        "/event",
        r#"{"timestamp":1712345678000,"error":{"b":1,"a":2}}"#,
    );
    assert_eq!(posted.status, 200, "{}", posted.text);
    assert_eq!(server.post_json("/export", "").status, 200);
    let exported = std::fs::read_to_string(server.data.join("_observer/ops.jsonl")).unwrap();
    let last = exported.lines().last().unwrap();
    assert!(
        last.starts_with(r#"{"timestamp":1712345678000,"#)
            && last.contains(r#""error":{"b":1,"a":2},"#),
        "{last}"
    );
}

#[test]
fn verdict_is_stored_with_its_row_and_event_atomically_and_idempotently() {
    let server = InProcessServer::start();
    let verdicts = fixture_verdicts();
    let first = server.post_json("/verdicts", verdicts[0].clone());
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.json["sig_hash"], "pr1-e9e0d501");
    assert_eq!(first.json["duplicate"], false);
    let seq = first.json["seq"].as_u64().unwrap();
    assert_eq!(first.json["outcome_seq"].as_u64(), Some(seq + 1));
    assert_eq!(first.json["event_seq"].as_u64(), Some(seq + 2));

    let again = server.post_json("/verdicts", verdicts[0].clone());
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(
        (again.json["seq"].as_u64(), &again.json["duplicate"]),
        (Some(seq), &json!(true))
    );

    // Same head, new audited_at: a re-audit, stored.
    let mut reaudit: Value = serde_json::from_str(&verdicts[0]).unwrap();
    reaudit["audited_at"] = json!("2026-04-01T10:00:00.000Z");
    let third = server.post_json("/verdicts", reaudit.to_string());
    assert_eq!(third.status, 201, "{}", third.text);

    let stats = server.stats();
    assert_eq!(
        (
            stats["verdicts"].as_u64(),
            stats["outcomes"].as_u64(),
            stats["total"].as_u64()
        ),
        (Some(2), Some(2), Some(2))
    );
    assert_eq!(stats["by_source"], json!({"auditor": 2}));

    // The KB row is the one appendVerdictToKbOutcomes wrote (line 2 of the fixture file).
    let records = server.get("/sig/pr1-e9e0d501").json["records"].clone();
    let types: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["verdict", "outcome", "event", "verdict", "outcome", "event"]
    );
    let legacy = std::fs::read_to_string(Path::new(LEGACY_DATA).join(OUTCOMES)).unwrap();
    let want: Value = serde_json::from_str(legacy.lines().nth(1).unwrap()).unwrap();
    assert_eq!(records[1]["row"], want);
    // The whole original verdict is kept, unknown fields included.
    assert_eq!(
        records[0]["verdict"],
        serde_json::from_str::<Value>(&verdicts[0]).unwrap()
    );
}

/// The answer names the verdict's PR as the server read it: a body's `10.0` is PR 10, and the
/// number goes into the PR routes' paths as it is (the spec's links take it from the answer; a
/// fuzzer that took it from the body wrote `/prs/10.0/history`, a 400).
#[test]
fn a_posted_verdict_answers_its_pr_number_for_the_pr_routes() {
    let server = InProcessServer::start();
    let mut verdict: Value = serde_json::from_str(&fixture_verdicts()[0]).unwrap();
    verdict["pr_number"] = json!(10.0);
    let body = verdict.to_string();
    assert!(body.contains(r#""pr_number":10.0"#), "{body}");
    let first = server.post_json("/verdicts", body.clone());
    assert_eq!(first.status, 201, "{}", first.text);
    assert!(first.text.contains(r#""pr_number":10,"#), "{}", first.text);
    let again = server.post_json("/verdicts", body);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["pr_number"], 10, "{}", again.text);
    let path = format!("/prs/{}/history", first.json["pr_number"]);
    let history = server.get(&path);
    assert_eq!(history.status, 200, "{}", history.text);
    assert_eq!(history.json["count"], 1, "{}", history.text);
}

#[test]
fn verdict_bad_inputs_are_named_and_store_nothing() {
    let server = InProcessServer::start();
    let good: Value = serde_json::from_str(&fixture_verdicts()[0]).unwrap();
    let with = |path: &[&str], value: Option<Value>| {
        let mut v = good.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut obj = &mut v;
        for p in parents {
            obj = &mut obj[*p];
        }
        match value {
            Some(x) => obj[*last] = x,
            None => {
                obj.as_object_mut().unwrap().remove(*last);
            }
        }
        v.to_string()
    };
    let cases = [
        (
            with(&["pr_number"], Some(json!("six"))),
            "pr_number",
            r#"pr_number must be a non-negative integer, got "six""#,
        ),
        (
            with(&["head_sha"], Some(json!(7))),
            "head_sha",
            "head_sha must be a string of 8 to 64 hex digits, got 7",
        ),
        (
            with(&["head_sha"], Some(json!("abc123"))),
            "head_sha",
            r#"got "abc123""#,
        ),
        (
            with(&["overall"], Some(json!("lgtm"))),
            "overall",
            "overall must be one of approve, request_changes, block",
        ),
        (
            with(&["audited_at"], None),
            "audited_at",
            "audited_at is required",
        ),
        (
            with(&["one_liner"], None),
            "one_liner",
            "one_liner is required",
        ),
        (
            with(&["metrics", "findings_block"], None),
            "metrics.findings_block",
            "is required",
        ),
        (
            with(&["metrics", "findings_warn"], Some(json!(-1))),
            "metrics.findings_warn",
            "non-negative integer",
        ),
        (
            "{\"pr_number\": 1,".to_owned(),
            "body",
            "body is not valid JSON",
        ),
        (
            "[1,2]".to_owned(),
            "body",
            "body must be a JSON object, got an array",
        ),
        (
            "\"text\"".to_owned(),
            "body",
            "body must be a JSON object, got a string",
        ),
    ];
    for (body, field, needle) in cases {
        assert_error(&server.post_json("/verdicts", body), 400, field, needle);
    }
    let stats = server.stats();
    assert_eq!(
        (stats["verdicts"].as_u64(), stats["last_seq"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn outcome_rows_are_stored_byte_for_byte() {
    let server = InProcessServer::start();
    let row =
        r#"{"sig_hash":"6cd5d79c4f5d42c9","elapsed_secs":15.80,"note":"caf\u00e9 é /","n":1e2}"#;
    let posted = server.post_json("/outcomes", format!("{row}\n"));
    assert_eq!(posted.status, 201, "{}", posted.text);
    assert_eq!(posted.json["sig_hash"], "6cd5d79c4f5d42c9");
    let page = server.get("/sig/6cd5d79c4f5d42c9");
    // The row is embedded verbatim in the answer: its exact bytes, not a re-serialisation.
    assert!(
        page.text.contains(&format!(r#""row":{row}"#)),
        "{}",
        page.text
    );

    assert_error(
        &server.post_json("/outcomes", "{}"),
        400,
        "sig_hash",
        "sig_hash is required",
    );
    assert_error(
        &server.post_json("/outcomes", r#"{"sig_hash":""}"#),
        400,
        "sig_hash",
        "non-empty string",
    );
    assert_error(
        &server.post_json("/outcomes", r#"{"sig_hash":7}"#),
        400,
        "sig_hash",
        "non-empty string, got 7",
    );
    assert_error(
        &server.post_json("/outcomes", "{\"sig_hash\":\"a\",\n\"b\":1}"),
        400,
        "body",
        "single line",
    );
    assert_eq!(server.stats()["outcomes"], 1);
}

/// `POST /event` reads its body as the legacy observer did (Bun's `Request.json()`): whatever
/// the content type says, a byte-order mark dropped, bytes that are not UTF-8 read as U+FFFD.
/// At b548710 every body not labelled `application/json` was a 415, so a client posting with
/// `fetch(url, {method: "POST", body: JSON.stringify(x)})` (which sends `text/plain`) lost
/// every event (found by a review against the seed's observer).
#[test]
fn the_observer_takes_a_json_body_whatever_its_content_type() {
    let server = InProcessServer::start();
    let body = r#"{"timestamp":"2026-04-01T00:00:00.000Z","source":"bot","ok":true}"#;
    let line = r#"{"timestamp":"2026-04-01T00:00:00.000Z","endpoint":"bot:cycle","input_summary":"? ?×? in ?, ?","success":true,"duration_ms":0,"output_summary":"ok","source":"bot"}"#;
    let unlabelled = |body: Vec<u8>| {
        crate::support::answer(
            server
                .client()
                .post(server.url("/event"))
                .body(body)
                .send()
                .unwrap(),
        )
    };
    // (content type or none, body, the ops line stored)
    let cases: [(Option<&str>, Vec<u8>, String); 7] = [
        (Some("application/json"), body.into(), line.into()),
        (Some("text/plain;charset=UTF-8"), body.into(), line.into()),
        (Some("application/x-www-form-urlencoded"), body.into(), line.into()),
        (None, body.into(), line.into()),
        (Some("text/plain"), [b"\xef\xbb\xbf", body.as_bytes()].concat(), line.into()),
        (
            Some("application/json"),
            b"{\"timestamp\":\"t\",\"source\":\"bot\",\"ok\":true,\"one_liner\":\"caf\xe9\"}".to_vec(),
            "{\"timestamp\":\"t\",\"endpoint\":\"bot:cycle\",\"input_summary\":\"? ?×? in ?, ?\",\"success\":true,\"duration_ms\":0,\"output_summary\":\"caf\u{fffd}\",\"source\":\"bot\"}".into(),
        ),
        (Some("Text/Plain"), body.into(), line.into()),
    ];
    let mut lines = String::new();
    for (content_type, body, line) in cases {
        let answer = match content_type {
            Some(content_type) => server.post("/event", content_type, body),
            None => unlabelled(body),
        };
        assert_eq!(answer.status, 200, "{content_type:?}: {}", answer.text);
        lines.push_str(&line);
        lines.push('\n');
    }
    assert_eq!(server.post_json("/export", "").status, 200);
    assert_eq!(
        std::fs::read_to_string(server.data.join("_observer/ops.jsonl")).unwrap(),
        lines
    );
    // Not JSON is still a 400, whatever the label; NDJSON labels are still batches.
    assert_error(
        &server.post("/event", "text/plain", "source=bot"),
        400,
        "body",
        "not valid JSON",
    );
    let batch = server.post(
        "/event",
        "application/x-ndjson",
        format!("{body}\n{body}\n"),
    );
    assert_eq!(batch.json["accepted"], 2, "{}", batch.text);
    assert_eq!(server.stats()["total"], 9);

    // A web page may post text/plain anywhere without asking (no CORS preflight): a request
    // with an Origin is held to the JSON label (a review of this change).
    let from_a_page = |content_type: &str| {
        crate::support::answer(
            server
                .client()
                .post(server.url("/event"))
                .header("content-type", content_type)
                .header("origin", "https://evil.example")
                .body(body)
                .send()
                .unwrap(),
        )
    };
    assert_error(
        &from_a_page("text/plain"),
        415,
        "content-type",
        "from a web page",
    );
    assert_error(
        &from_a_page("application/x-www-form-urlencoded"),
        415,
        "content-type",
        "Origin header",
    );
    assert_eq!(from_a_page("application/json").status, 200);
    assert_eq!(server.stats()["total"], 10);

    // Bytes read as U+FFFD take 3 bytes each: the decoded body is held to --max-body again.
    let small = InProcessServer::start_with(&["--max-body", "4096"]);
    let invalid = [&br#"{"source":"bot","note":""#[..], &[0xff; 2000], b"\"}"].concat();
    assert_error(
        &small.post("/event", "text/plain", invalid),
        413,
        "body",
        "--max-body",
    );
    assert_eq!(small.stats()["total"], 0);
}

#[test]
fn malformed_bodies_get_json_errors_and_the_server_keeps_serving() {
    let server = InProcessServer::start();
    server.post_json("/event", r#"{"source":"bot"}"#);
    for path in ["/event", "/verdicts", "/outcomes"] {
        assert_error(
            &server.post_json(path, "{not json"),
            400,
            "body",
            "body is not valid JSON",
        );
        assert_error(
            &server.post_json(path, "42"),
            400,
            "body",
            "must be a JSON object, got a number",
        );
        // The observer's route reads bodies as the legacy observer did: see
        // `the_observer_takes_a_json_body_whatever_its_content_type`.
        if path != "/event" {
            assert_error(
                &server.post_json(path, b"{\"sig_hash\":\"\xff\xfe\"}".to_vec()),
                400,
                "body",
                "not valid UTF-8",
            );
            assert_error(
                &server.post(path, "text/plain", "{}"),
                415,
                "content-type",
                "must be application/json",
            );
            let unlabelled = server
                .client()
                .post(server.url(path))
                .body("{}")
                .send()
                .unwrap();
            assert_error(
                &crate::support::answer(unlabelled),
                415,
                "content-type",
                "got none",
            );
        }
        // Lone surrogates are no error, as in JavaScript: see
        // `lone_surrogates_javascript_writes_are_taken_as_replacement_characters`.
        let huge = format!(r#"{{"sig_hash":"x","pad":"{}"}}"#, "x".repeat(1 << 20));
        assert_error(
            &server.post_json(path, huge),
            413,
            "body",
            "larger than the limit",
        );
    }
    let not_found = server.get("/no/such/route");
    assert_eq!(
        (not_found.status, not_found.json["error"].as_str()),
        (404, Some("no route for /no/such/route"))
    );
    let wrong_method = server.get("/verdicts");
    assert_eq!(wrong_method.status, 405);
    assert!(
        wrong_method.json["error"].is_string(),
        "{}",
        wrong_method.text
    );
    assert!(
        wrong_method
            .content_type
            .unwrap()
            .starts_with("application/json")
    );
    // Invented methods are answered, but counted under one label: they cannot add series.
    for i in 0..3 {
        let method = reqwest::Method::from_bytes(format!("XMETHOD{i}").as_bytes()).unwrap();
        let answer = server
            .client()
            .request(method, format!("{}/stats", server.base))
            .send()
            .unwrap();
        assert_eq!(answer.status(), 405);
    }
    let metrics = server.get("/metrics").text;
    assert!(!metrics.contains("XMETHOD"), "{metrics}");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    let stats = server.stats();
    assert_eq!(
        (stats["total"].as_u64(), stats["last_seq"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn max_body_is_configurable() {
    let server = InProcessServer::start_with(&["--max-body", "64"]);
    assert_eq!(
        server.post_json("/event", r#"{"source":"bot"}"#).status,
        200
    );
    assert_error(
        &server.post_json("/event", format!(r#"{{"pad":"{}"}}"#, "x".repeat(80))),
        413,
        "body",
        "limit",
    );
}

#[test]
fn ten_thousand_line_batch_with_every_tenth_line_broken() {
    let server = InProcessServer::start_with(&["--max-body", "8MiB"]);
    let mut body = String::new();
    for i in 1..=10_000 {
        if i % 10 == 0 {
            body.push_str("{broken\n");
        } else {
            body.push_str(&format!(
                r#"{{"source":"scenario","event_kind":"fill","n":{i}}}"#
            ));
            body.push('\n');
        }
    }
    let answer = server.post_ndjson("/event", body);
    assert_eq!(
        answer.status,
        200,
        "{}",
        &answer.text[..200.min(answer.text.len())]
    );
    assert_eq!(answer.json["accepted"], 9_000);
    let rejected = answer.json["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1_000);
    assert_eq!(rejected[0]["line"], 10);
    assert_eq!(rejected[999]["line"], 10_000);
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("body is not valid JSON")
    );
    assert_eq!(server.stats()["total"], 9_000);
    // Good lines are stored in order.
    let newest = server.get("/events?limit=1").json["events"][0]["seq"]
        .as_u64()
        .unwrap();
    assert_eq!(newest, 9_000);
}

#[test]
fn batches_on_every_route() {
    let server = InProcessServer::start();
    let verdicts = fixture_verdicts();
    let body = format!(
        "{}\n\n{}\n{{\"pr_number\":\"six\"}}\n{}\n",
        verdicts[0], verdicts[1], verdicts[0]
    );
    let answer = server.post_ndjson("/verdicts", body);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        (
            answer.json["accepted"].as_u64(),
            answer.json["duplicates"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(
        answer.json["rejected"],
        json!([{"line": 4, "error": r#"pr_number must be a non-negative integer, got "six""#, "field": "pr_number"}])
    );
    assert_eq!(answer.json["last_seq"], 6);

    let rows = "{\"sig_hash\":\"a\"}\r\n{\"sig_hash\":\"b\"}\n{\"nope\":1}";
    let answer = server.post_ndjson("/outcomes", rows);
    assert_eq!(
        (
            answer.json["accepted"].as_u64(),
            answer.json["rejected"][0]["line"].as_u64()
        ),
        (Some(2), Some(3))
    );

    let all_bad = server.post_ndjson("/event", "[]\n{x\n");
    assert_eq!(all_bad.status, 400, "{}", all_bad.text);
    assert!(
        all_bad.json["error"]
            .as_str()
            .unwrap()
            .contains("no line of the batch was accepted")
    );
    assert_eq!(all_bad.json["rejected"].as_array().unwrap().len(), 2);
    assert_error(
        &server.post_ndjson("/event", "\n\n"),
        400,
        "body",
        "no lines",
    );
    let limited = InProcessServer::start_with(&["--max-batch-lines", "3"]);
    assert_error(
        &limited.post_ndjson("/event", "{}\n{}\n{}\n{}\n"),
        413,
        "body",
        "at most 3 lines, got 4",
    );
}

#[test]
fn auth_is_off_by_default_and_guards_writes_when_a_token_is_set() {
    let open = InProcessServer::start();
    assert_eq!(open.post_json("/event", "{}").status, 200);

    let guarded = InProcessServer::start_with(&["--token", "s3cret"]);
    let missing = guarded.post_json("/event", "{}");
    assert_error(&missing, 401, "authorization", "bearer token");
    let with = |token: &str| {
        let request = guarded
            .client()
            .post(guarded.url("/verdicts"))
            .header("content-type", "application/json");
        crate::support::answer(
            request
                .bearer_auth(token)
                .body(fixture_verdicts()[0].clone())
                .send()
                .unwrap(),
        )
    };
    assert_eq!(with("wrong").status, 401);
    assert_eq!(with("s3cret").status, 201);
    assert_eq!(guarded.get("/stats").status, 200, "reads stay open");
    assert_eq!(guarded.stats()["verdicts"], 1);

    let strict = InProcessServer::start_with(&["--auth-reads", "--token", "s3cret"]);
    assert_eq!(strict.get("/stats").status, 401);
    let authed = strict
        .client()
        .get(strict.url("/stats"))
        .bearer_auth("s3cret")
        .send()
        .unwrap();
    assert_eq!(authed.status().as_u16(), 200);
    assert_eq!(
        strict.get("/healthz").status,
        200,
        "health stays open for probes"
    );
}

/// At 669becd `bearer x` got a 401 (the scheme was matched case-sensitively), and an empty
/// token started a server with no auth at all, without a word.
#[test]
fn the_bearer_scheme_is_case_insensitive_and_unusable_tokens_are_refused_at_start() {
    let guarded = TestServer::start_with(&[], &[("LAKEHOUSE_KB_TOKEN", "s3cret")]);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let answer = guarded
            .client()
            .post(guarded.url("/event"))
            .header("content-type", "application/json")
            .header("authorization", format!("{scheme} s3cret"))
            .body("{}")
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200, "{scheme}");
    }
    let basic = guarded
        .client()
        .post(guarded.url("/event"))
        .header("content-type", "application/json")
        .header("authorization", "Basic s3cret")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);
    // A singleton field given twice carries no credential, whichever of the two is right.
    for (first, second) in [
        ("Bearer s3cret", "Bearer wrong"),
        ("Bearer wrong", "Bearer s3cret"),
    ] {
        let twice = guarded
            .client()
            .post(guarded.url("/event"))
            .header("content-type", "application/json")
            .header("authorization", first)
            .header("authorization", second)
            .body("{}")
            .send()
            .unwrap();
        assert_eq!(twice.status().as_u16(), 401, "{first}, {second}");
    }
    // Refused before its body is read, a large body's request ends its connection, and the
    // answer says so (a review's: the next request on it met a broken pipe).
    // (path, token, content coding, status)
    let refused = [
        ("/event", "wrong", "identity", 401),
        ("/event", "s3cret", "gzip", 415),
        ("/nowhere", "s3cret", "identity", 404),
        ("/stats", "s3cret", "identity", 405),
    ];
    for (path, token, coding, status) in refused {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
             content-encoding: {coding}\r\ncontent-type: application/json\r\n\
             content-length: 2000000\r\n\r\n{{"
        );
        let (answer, _) = crate::support::raw_exchange(&guarded.base, head.as_bytes());
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    }
    // Without a body, a 404 keeps its connection.
    let plain = guarded
        .client()
        .get(guarded.url("/nowhere"))
        .send()
        .unwrap();
    assert_eq!(plain.status().as_u16(), 404);
    assert!(plain.headers().get("connection").is_none(), "{plain:?}");

    // (LAKEHOUSE_KB_TOKEN, --auth-reads, what the refusal says)
    let refused = [
        (Some(""), false, "is empty"),
        (Some(" s3cret "), false, "whitespace around it"),
        (Some("s3cret\n"), false, "whitespace around it"),
        (None, true, "needs a token"),
    ];
    for (token, auth_reads, needle) in refused {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(crate::support::BIN);
        command
            .arg("--data")
            .arg(dir.path())
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env_remove("LAKEHOUSE_KB_TOKEN")
            .env("LAKEHOUSE_KB_AUTH_READS", auth_reads.to_string());
        if let Some(token) = token {
            command.env("LAKEHOUSE_KB_TOKEN", token);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{token:?} started");
        assert!(stderr.contains(needle), "{token:?}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("listening"),
            "refused before listening"
        );
    }
}

/// Sends `request` on a new connection and returns the whole answer as text.
fn raw_exchange(server: &Http, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let addr = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// A client that asks before sending a body over the limit (`Expect: 100-continue`, what curl
/// does for large bodies) is answered 413 at once and never asked to send it. It was sent
/// `100 Continue`, then the 413 after up to 1 MiB or the 10 s body timeout.
#[test]
fn a_body_over_the_limit_announced_with_expect_continue_is_refused_before_it_is_sent() {
    let server = InProcessServer::start();
    let start = std::time::Instant::now();
    let answer = raw_exchange(
        &server,
        b"POST /event HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
          content-type: application/json\r\nexpect: 100-continue\r\n\
          content-length: 2000000\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""field":"body""#), "{answer}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "answered after {:?}",
        start.elapsed()
    );
    assert_eq!(server.stats()["total"], 0);
}

/// At 669becd a gzip transfer coding under chunked was stored as the compressed bytes, and a
/// `content-encoding` was ignored: both are refused now, before the body is read.
#[test]
fn bodies_in_a_coding_the_service_does_not_decode_are_refused() {
    let server = InProcessServer::start();
    let gzip_chunked = raw_exchange(
        &server,
        b"POST /event HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
          content-type: application/json\r\ntransfer-encoding: gzip, chunked\r\n\r\n\
          2\r\n{}\r\n0\r\n\r\n",
    );
    assert!(gzip_chunked.starts_with("HTTP/1.1 415"), "{gzip_chunked}");
    assert!(
        gzip_chunked.contains(r#""field":"transfer-encoding""#),
        "{gzip_chunked}"
    );
    let chunked = raw_exchange(
        &server,
        b"POST /event HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
          content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n\
          2\r\n{}\r\n0\r\n\r\n",
    );
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");

    let post = |encoding: &str| {
        let answer = server
            .client()
            .post(server.url("/outcomes"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(r#"{"sig_hash":"s1"}"#)
            .send()
            .unwrap();
        crate::support::answer(answer)
    };
    assert_error(
        &post("gzip"),
        415,
        "content-encoding",
        r#""gzip" is not supported"#,
    );
    assert_error(&post("identity, br"), 415, "content-encoding", r#""br""#);
    assert_eq!(post("identity").status, 201);
    let stats = server.stats();
    assert_eq!(
        (stats["total"].as_u64(), stats["outcomes"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn binding_beyond_loopback_without_a_token_warns_loudly() {
    let server = TestServer::start_with(&["--bind", "0.0.0.0:0"], &[]);
    crate::support::log_with(
        &server.data,
        "WARNING: lakehouse-kb is listening on 0.0.0.0:",
        1,
    );
}

/// Counts of the commit-batch histogram: (commits, requests committed).
fn commits(server: &Http) -> (u64, u64) {
    let text = server.get("/metrics").text;
    let value = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    (
        value("lakehousekb_commit_batch_requests_count"),
        value("lakehousekb_commit_batch_requests_sum"),
    )
}

#[test]
fn one_client_gets_one_commit_per_request_and_many_clients_share_commits() {
    let server = InProcessServer::start();
    for i in 0..20 {
        assert_eq!(
            server.post_json("/event", format!(r#"{{"n":{i}}}"#)).status,
            200
        );
    }
    assert_eq!(commits(&server), (20, 20));

    let clients: Vec<_> = (0..64)
        .map(|c| {
            let url = server.url("/event");
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                for i in 0..25 {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(format!(r#"{{"c":{c},"i":{i}}}"#))
                        .send()
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let (n_commits, n_requests) = commits(&server);
    assert_eq!(n_requests, 20 + 64 * 25);
    assert!(
        n_commits < n_requests,
        "64 clients should share commits: {n_commits} commits for {n_requests} requests"
    );
    assert_eq!(server.stats()["total"], 20 + 64 * 25);
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_stores_nothing_of_it() {
    let server = InProcessServer::start_with(&["--queue-capacity", "1", "--max-body", "4MiB"]);
    let batch: String = (0..2_000)
        .map(|i| format!("{{\"source\":\"bot\",\"i\":{i}}}\n"))
        .collect();
    let mut saw_503 = false;
    for _round in 0..10 {
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let server_url = server.url("/event");
                let batch = batch.clone();
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let request = client
                        .post(&server_url)
                        .header("content-type", "application/x-ndjson");
                    crate::support::answer(request.body(batch).send().unwrap())
                })
            })
            .collect();
        for t in threads {
            let answer = t.join().unwrap();
            match answer.status {
                200 => {}
                503 => {
                    saw_503 = true;
                    assert_eq!(answer.retry_after.as_deref(), Some("1"));
                    assert!(
                        answer.text.contains("write queue is full"),
                        "{}",
                        answer.text
                    );
                }
                other => panic!("unexpected {other}: {}", answer.text),
            }
        }
        if saw_503 {
            break;
        }
    }
    assert!(
        saw_503,
        "16 concurrent 2000-line batches never filled a queue of 1"
    );
    let total = server.stats()["total"].as_u64().unwrap();
    assert_eq!(total % 2_000, 0, "a refused batch stores nothing: {total}");
    assert_eq!(server.get("/healthz").status, 200);
}

/// Node's `JSON.parse` reads a number too large for a double (`1e999`, or a 400-digit integer
/// that Python's `json.dumps` writes for `10**400`) as Infinity, and `JSON.stringify` writes it
/// `null`: the legacy observer stored such an event. This service answered 400 ("number out of
/// range"). Now it reads the number as `null`, and keeps the body so.
#[test]
fn numbers_too_large_for_a_double_are_stored_as_javascript_stores_them() {
    let server = InProcessServer::start();
    let big = format!("1{}", "0".repeat(400));
    let op = op_for(
        &server,
        &format!(r#"{{"source":"agent","sig_hash":"huge-n","x":1e999,"n":[{big},-2e308,1.5]}}"#),
    );
    assert_eq!(op["sig_hash"], "huge-n", "{op}");
    let sig = server.get("/sig/huge-n");
    assert_eq!(sig.status, 200, "{}", sig.text);
    let body = &sig.json["records"][0]["body"];
    assert_eq!(
        (&body["x"], &body["n"]),
        (&Value::Null, &json!([null, null, 1.5])),
        "the body is kept as read: {}",
        sig.text
    );
    let verdict = server.post_json(
        "/verdicts",
        r#"{"pr_number":78,"head_sha":"0123abcd","overall":"approve","one_liner":"x","metrics":{"findings_block":0,"findings_warn":0,"score":1e999},"audited_at":"2026-04-22T17:20:00.000Z"}"#,
    );
    assert_eq!(verdict.status, 201, "{}", verdict.text);
    // What JavaScript refuses is still refused, beside an overflow too (`01e999` is no JSON).
    for bad in [
        r#"{"source":"agent","x":Infinity}"#,
        r#"{"source":"agent","v":[1e999,01e999]}"#,
    ] {
        let refused = server.post_json("/event", bad);
        assert_eq!(refused.status, 400, "{bad}: {}", refused.text);
    }
    // A batch line's own key is read as its record is: a retry finds it.
    let line = "{\"source\":\"agent\",\"idempotency_key\":\"big-n-1\",\"x\":1e999}\n";
    let first = server.post_ndjson("/event", line);
    let again = server.post_ndjson("/event", line);
    assert_eq!(
        (&first.json["accepted"], &again.json["duplicates"]),
        (&json!(1), &json!(1)),
        "{} / {}",
        first.text,
        again.text
    );
}

/// Found by a hostile client at f3eedc8: JavaScript cuts strings in the middle of an emoji
/// (`"Fixes the parser 😀 bug".slice(0, 18)`), `JSON.stringify` writes the lone half as
/// `\ud83d`, and Node's `JSON.parse` in the legacy observer took it; this service answered 400,
/// which the auditor counts as a failure. Now a lone half reads as U+FFFD, on every route that
/// stores what it is sent, and the stored text is that mended JSON.
#[test]
fn lone_surrogates_javascript_writes_are_taken_as_replacement_characters() {
    let server = InProcessServer::start();
    let op = op_for(
        &server,
        r#"{"source":"auditor","event_kind":"audit","one_liner":"Fixes the parser \ud83d"}"#,
    );
    assert_eq!(op["event_kind"], "audit", "{op}");
    let verdict = server.post_json(
        "/verdicts",
        r#"{"pr_number":77,"head_sha":"0123abcd","overall":"approve","one_liner":"Fixes the parser \ud83d","metrics":{"findings_block":0,"findings_warn":0},"audited_at":"2026-04-22T17:20:00.000Z"}"#,
    );
    assert_eq!(verdict.status, 201, "{}", verdict.text);
    let outcome = server.post_json(
        "/outcomes",
        r#"{"sig_hash":"pr77-0123abcd","note":"\udc00 then \ud83d\ude00","ok_events":1,"total_events":1}"#,
    );
    assert_eq!(outcome.status, 201, "{}", outcome.text);
    let history = server.get("/prs/77/history");
    assert_eq!(history.status, 200, "{}", history.text);
    assert!(
        history
            .json
            .to_string()
            .contains("Fixes the parser \u{fffd}"),
        "{}",
        history.text
    );
    let sig = server.get("/sig/pr77-0123abcd");
    assert!(
        sig.json.to_string().contains("\u{fffd} then \u{1f600}"),
        "the pair is kept, the lone half mended: {}",
        sig.text
    );
    // A batch line's own key is read as the line is: a lone half in it is no hidden parse
    // failure (the key ignored, the line stored unkeyed) but a key refused by name.
    let line = "{\"source\":\"mcp\",\"note\":\"\\ud83d\",\"idempotency_key\":\"half \\ud83d\"}\n";
    let batch = server.post_ndjson("/event", format!("{line}{{\"source\":\"mcp\"}}\n"));
    assert_eq!(batch.json["accepted"], 1, "{}", batch.text);
    assert_eq!(
        batch.json["rejected"][0]["field"], "idempotency_key",
        "{}",
        batch.text
    );
}
