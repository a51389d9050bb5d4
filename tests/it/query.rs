//! The query API over real HTTP: per-PR history (Phase B), lookups by sig_hash, claim
//! neighbours (the Phase F proof), stats, recent events, health and metrics; pagination while
//! writes continue; every bad query input.

use serde_json::{Value, json};

use crate::support::{Http, InProcessServer, assert_error};

const HEAD_A: &str = "aaaaaaaa00000000000000000000000000000001";
const HEAD_B: &str = "bbbbbbbb00000000000000000000000000000002";
const HEAD_C: &str = "cccccccc00000000000000000000000000000003";

fn verdict(
    pr: u64,
    head: &str,
    at: &str,
    overall: &str,
    one_liner: &str,
    claims: &[&str],
) -> String {
    json!({
        "pr_number": pr,
        "head_sha": head,
        "overall": overall,
        "one_liner": one_liner,
        "claims": claims.iter().map(|c| json!({"text": c, "source": "commit_message"})).collect::<Vec<_>>(),
        "metrics": {"findings_block": 1, "findings_warn": 2, "findings_info": 3, "audit_duration_ms": 1500},
        "audited_at": at,
    })
    .to_string()
}

fn post_verdict(server: &Http, body: String) -> u64 {
    let answer = server.post_json("/verdicts", body);
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["seq"].as_u64().unwrap()
}

#[test]
fn phase_f_proof() {
    let server = InProcessServer::start();
    let a = "Observer counts auditor events separately";
    let b = "no behaviour change for scenario events";
    let c = "deletes dead sidecar files";
    let first = post_verdict(
        &server,
        verdict(
            10,
            HEAD_A,
            "2026-04-01T09:00:00.000Z",
            "request_changes",
            "tests missing",
            &[a, b],
        ),
    );
    let second = post_verdict(
        &server,
        verdict(
            10,
            HEAD_B,
            "2026-04-01T10:00:00.000Z",
            "approve",
            "claims match the diff",
            &[a, b],
        ),
    );
    post_verdict(
        &server,
        verdict(
            11,
            HEAD_C,
            "2026-04-01T11:00:00.000Z",
            "block",
            "hard-coded path",
            &[b, c],
        ),
    );

    // PR 10's history lists both heads, newest first, with the finding sentence.
    let history = server.get("/prs/10/history");
    assert_eq!(history.status, 200, "{}", history.text);
    assert_eq!(history.json["count"], 2);
    assert_eq!(
        history.json["finding"],
        "prior 2 audits on this PR ended in [request_changes, approve], last reason was claims match the diff."
    );
    let heads: Vec<&str> = history.json["audits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["head_sha"].as_str().unwrap())
        .collect();
    assert_eq!(heads, [HEAD_B, HEAD_A]);
    assert_eq!(
        history.json["by_overall"],
        json!({"approve": 1, "request_changes": 1})
    );
    assert_eq!(
        history.json["audits"][1],
        json!({
            "sig_hash": "pr10-aaaaaaaa", "head_sha": HEAD_A, "overall": "request_changes",
            "one_liner": "tests missing", "audited_at": "2026-04-01T09:00:00.000Z",
            "findings": {"block": 1, "warn": 2, "info": 3}, "elapsed_secs": 1.5, "seq": first,
        })
    );

    // PR 11's claims, PR 11 excluded: PR 10's verdicts, sharing B.
    let neighbors = server.post_json(
        "/neighbors",
        json!({"claims": [b, c], "exclude_pr": 11}).to_string(),
    );
    assert_eq!(neighbors.status, 200, "{}", neighbors.text);
    // PR 10 once, as its newer audit: both match alike.
    assert_eq!(neighbors.json["count"], 1);
    let found = neighbors.json["neighbors"].as_array().unwrap();
    assert_eq!(
        found[0]["seq"].as_u64(),
        Some(second),
        "the newer among equals"
    );
    for n in found {
        assert_eq!(n["pr_number"], 10);
        assert_eq!(n["shared_count"], 1);
        assert_eq!(n["shared"][0]["text"], b);
        let hash = lakehouse_kb::model::ClaimHash::of_text(b)
            .unwrap()
            .to_string();
        assert_eq!(n["shared"][0]["claim_hash"], hash);
    }

    // Stats count three auditor events.
    let stats = server.stats();
    assert_eq!(stats["by_source"], json!({"auditor": 3}));
    assert_eq!(stats["verdicts"], 3);
}

#[test]
fn history_excludes_the_head_under_audit_and_answers_empty_prs() {
    let server = InProcessServer::start();
    post_verdict(&server, verdict(6, HEAD_A, "t1", "block", "first", &[]));
    post_verdict(
        &server,
        verdict(6, HEAD_B, "t2", "request_changes", "second", &[]),
    );
    post_verdict(
        &server,
        verdict(6, HEAD_B, "t3", "approve", "re-audit", &[]),
    );
    post_verdict(
        &server,
        verdict(60, HEAD_C, "t4", "approve", "other PR", &[]),
    );

    let all = server.get("/prs/6/history");
    assert_eq!(
        all.json["count"], 3,
        "pr6- must not match pr60-: {}",
        all.text
    );
    let without_b = server.get(&format!("/prs/6/history?exclude_sha={HEAD_B}"));
    assert_eq!(without_b.json["count"], 1);
    assert_eq!(
        without_b.json["finding"],
        "prior 1 audit on this PR ended in [block], last reason was first."
    );
    let by_prefix = server.get("/prs/6/history?exclude_sha=BBBBBBBB");
    assert_eq!(by_prefix.json["count"], 1);
    let limited = server.get("/prs/6/history?limit=1");
    assert_eq!(limited.json["count"], 3);
    assert_eq!(limited.json["audits"].as_array().unwrap().len(), 1);
    assert_eq!(limited.json["audits"][0]["one_liner"], "re-audit");

    let empty = server.get("/prs/999/history");
    assert_eq!(empty.status, 200);
    assert_eq!(
        empty.json,
        json!({"pr_number": 999, "count": 0, "by_overall": {}, "finding": "no prior audits on this PR.", "audits": []})
    );
}

#[test]
fn sig_lookup_returns_everything_in_seq_order_with_a_cursor() {
    let server = InProcessServer::start();
    let seq = post_verdict(&server, verdict(3, HEAD_A, "t1", "approve", "ok", &[]));
    server.post_json(
        "/event",
        r#"{"sig_hash":"pr3-aaaaaaaa","event_kind":"note"}"#,
    );
    server.post_json("/outcomes", r#"{"sig_hash":"pr3-aaaaaaaa","k":1}"#);
    post_verdict(&server, verdict(3, HEAD_A, "t2", "block", "re", &[]));

    let mut seqs = Vec::new();
    let mut types = Vec::new();
    let mut path = "/sig/pr3-aaaaaaaa?limit=2".to_owned();
    loop {
        let page = server.get(&path);
        assert_eq!(page.status, 200, "{}", page.text);
        for r in page.json["records"].as_array().unwrap() {
            seqs.push(r["seq"].as_u64().unwrap());
            types.push(r["type"].as_str().unwrap().to_owned());
        }
        match page.json["next_after_seq"].as_u64() {
            Some(next) => path = format!("/sig/pr3-aaaaaaaa?limit=2&after_seq={next}"),
            None => break,
        }
    }
    assert_eq!(seqs, (seq..seq + 8).collect::<Vec<_>>());
    assert_eq!(
        types,
        [
            "verdict", "outcome", "event", "event", "outcome", "verdict", "outcome", "event"
        ]
    );
    let unknown = server.get("/sig/nothing-here");
    assert_eq!(
        (unknown.status, unknown.json["records"].clone()),
        (200, json!([]))
    );
}

#[test]
fn events_pages_never_repeat_or_skip_while_writes_continue() {
    let server = InProcessServer::start();
    for i in 0..300 {
        let source = ["mcp", "scenario", "bot"][i % 3];
        server.post_json(
            "/event",
            format!(
                r#"{{"source":"{source}","event_kind":"k{}","i":{i}}}"#,
                i % 2
            ),
        );
    }
    let writer = {
        let url = server.url("/event");
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            for i in 0..300 {
                client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"source":"bot","i":{i}}}"#))
                    .send()
                    .unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    let mut path = "/events?source=bot&limit=7".to_owned();
    loop {
        let page = server.get(&path);
        assert_eq!(page.status, 200, "{}", page.text);
        for e in page.json["events"].as_array().unwrap() {
            assert_eq!(e["op"]["source"], "bot");
            seen.push(e["seq"].as_u64().unwrap());
        }
        match page.json["next_before_seq"].as_u64() {
            Some(next) => path = format!("/events?source=bot&limit=7&before_seq={next}"),
            None => break,
        }
    }
    writer.join().unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    // Nothing at or below the first page's newest seq was missed.
    let top = seen[0];
    let all = server.get("/events?source=bot&limit=1000");
    let want: Vec<u64> = all.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .filter(|s| *s <= top)
        .collect();
    assert_eq!(seen, want);

    let kinds = server.get("/events?event_kind=k1&source=mcp&limit=1000");
    for e in kinds.json["events"].as_array().unwrap() {
        assert_eq!(
            (e["op"]["event_kind"].as_str(), e["op"]["source"].as_str()),
            (Some("k1"), Some("mcp"))
        );
    }
    assert_eq!(kinds.json["events"].as_array().unwrap().len(), 50);
}

#[test]
fn stats_health_and_metrics() {
    let server = InProcessServer::start();
    post_verdict(&server, verdict(1, HEAD_A, "t", "block", "x", &[]));
    server.post_json(
        "/event",
        r#"{"source":"bot","event_kind":"cycle","success":true}"#,
    );
    server.post_json("/outcomes", r#"{"sig_hash":"s"}"#);
    let stats = server.stats();
    assert_eq!(
        stats,
        json!({
            "total": 2, "by_source": {"auditor": 1, "bot": 1}, "by_event_kind": {"audit": 1, "cycle": 1},
            "success": 1, "failure": 1, "verdicts": 1, "by_overall": {"block": 1}, "by_repo": {"": 1}, "outcomes": 2,
            "outcomes_by_kind": {"audit": 1, "scenario": 1}, "last_seq": 5,
        })
    );
    let health = server.get("/healthz");
    assert_eq!(
        (
            health.status,
            &health.json["status"],
            &health.json["last_seq"]
        ),
        (200, &json!("ok"), &json!(5))
    );
    let metrics = server.get("/metrics");
    assert!(metrics.content_type.unwrap().starts_with("text/plain"));
    for needle in [
        r#"lakehousekb_http_requests_total{method="POST",route="/verdicts",status="201"} 1"#,
        "lakehousekb_http_request_duration_seconds_bucket",
        "lakehousekb_commit_batch_puts_count 3",
        "lakehousekb_writer_queue_depth 0",
    ] {
        assert!(
            metrics.text.contains(needle),
            "metrics lack {needle}:\n{}",
            metrics.text
        );
    }
}

#[test]
fn bad_query_input_is_a_json_400() {
    let server = InProcessServer::start();
    // One PR, one URL: no sign, no leading zeros (at 669becd "+1" and "01" were PR 1); past
    // 2^53 - 1 (what JavaScript's numbers hold exactly) the message says what the limit is.
    let bad_pr_numbers = [
        ("six", r#"got "six""#),
        ("-1", "non-negative integer"),
        ("+1", r#"got "+1""#),
        ("01", r#"without leading zeros, got "01""#),
        (
            "9007199254740992",
            "too large: at most 9007199254740991, got 9007199254740992",
        ),
        ("184467440737095516160", "too large"),
    ];
    for (pr_number, needle) in bad_pr_numbers {
        let answer = server.get(&format!("/prs/{pr_number}/history"));
        assert_error(&answer, 400, "pr_number", needle);
    }
    assert_eq!(server.get("/prs/0/history").status, 200);
    for limit in ["0", "1001", "ten", "-5"] {
        assert_error(
            &server.get(&format!("/prs/1/history?limit={limit}")),
            400,
            "limit",
            "from 1 to 1000",
        );
        assert_error(
            &server.get(&format!("/events?limit={limit}")),
            400,
            "limit",
            "from 1 to 1000",
        );
        assert_error(
            &server.get(&format!("/sig/x?limit={limit}")),
            400,
            "limit",
            "from 1 to 1000",
        );
    }
    assert_error(
        &server.get("/prs/1/history?exclude_sha=abc"),
        400,
        "exclude_sha",
        "8 to 64 hex digits",
    );
    assert_error(
        &server.get("/events?before_seq=later"),
        400,
        "before_seq",
        "non-negative integer",
    );
    assert_error(
        &server.get("/sig/x?after_seq=-1"),
        400,
        "after_seq",
        "non-negative integer",
    );
    assert_error(
        &server.get("/events?source=github"),
        400,
        "source",
        "one of mcp, scenario, auditor, bot",
    );
    assert_error(
        &server.get("/events?limit=%ZZ"),
        400,
        "limit",
        r#"got "%ZZ""#,
    );
    assert_error(
        &server.get("/events?limit=1&limit=2"),
        400,
        "limit",
        "limit is given more than once",
    );

    assert_error(
        &server.post_json("/neighbors", "{}"),
        400,
        "claims",
        "must not be empty",
    );
    assert_error(
        &server.post_json("/neighbors", r#"{"claims":[]}"#),
        400,
        "claims",
        "must not be empty",
    );
    assert_error(
        &server.post_json("/neighbors", r#"{"claims":"abc"}"#),
        400,
        "claims",
        "must be an array of strings or {\"text\": ...} objects, got a string",
    );
    // A claim that is not text is refused, not dropped (it used to leave "claims must not be
    // empty" as the only answer).
    assert_error(
        &server.post_json("/neighbors", r#"{"claims":["a", 5]}"#),
        400,
        "claims[1]",
        "must be a string or an object with a string text, got 5",
    );
    assert_error(
        &server.post_json("/neighbors", r#"{"claims":[{"text":"  "}]}"#),
        400,
        "claims[0]",
        "must not be blank",
    );
    assert_error(
        &server.post_json("/neighbors", r#"{"claims":["a"],"min_score":1.5}"#),
        400,
        "min_score",
        "from 0 to 1",
    );
    assert_error(
        &server.post_json("/neighbors", r#"{"claims":["a"],"repo":5}"#),
        400,
        "repo",
        "must be a string",
    );
    let many: Vec<String> = (0..1001).map(|i| format!("claim {i}")).collect();
    assert_error(
        &server.post_json("/neighbors", json!({"claims": many}).to_string()),
        400,
        "claims",
        "at most 1000",
    );
    assert_error(
        &server.post_json("/neighbors", r#"{"claim_hashes":["xyz"]}"#),
        400,
        "claim_hashes[0]",
        "16 hex digits",
    );
    assert_error(
        &server.post_json("/neighbors", r#"{"claims":["a"],"exclude_pr":"ten"}"#),
        400,
        "exclude_pr",
        "non-negative integer",
    );
    assert_error(
        &server.post_json("/neighbors", r#"{"claims":["a"],"limit":0}"#),
        400,
        "limit",
        "from 1 to 1000",
    );
    assert_error(
        &server.post_json("/neighbors", "[1]"),
        400,
        "body",
        "JSON object",
    );
    assert_error(
        &server.post("/neighbors", "text/plain", r#"{"claims":["a"]}"#),
        415,
        "content-type",
        "content-type must be application/json",
    );
    let by_hash = server.post_json("/neighbors", r#"{"claim_hashes":["0988571CA2FC2CBE"]}"#);
    assert_eq!(
        (by_hash.status, by_hash.json["count"].clone()),
        (200, json!(0))
    );
}

/// Walks the route table itself (a route added later is covered without a word here): every
/// route answers a plain request with a JSON object, never a 5xx, `/metrics` aside (it speaks
/// Prometheus' text); the reads of an empty store answer 200.
#[test]
fn every_route_answers_with_json() {
    let server = InProcessServer::start();
    let mut walked = 0;
    for route in lakehouse_kb::http::routes() {
        let path = sample_path(route.path);
        let name = format!("{} {}", route.method, route.path);
        let answer = match route.method.as_str() {
            "GET" if path == "/feed" => server.get("/feed?wait=0"),
            "GET" => server.get(&path),
            "POST" => server.post_json(&path, "{}"),
            "DELETE" => {
                crate::support::answer(server.client().delete(server.url(&path)).send().unwrap())
            }
            other => panic!("{name}: no request for method {other} here"),
        };
        walked += 1;
        if path == "/metrics" {
            assert_eq!(answer.status, 200, "{name}: {}", answer.text);
            assert!(answer.text.contains("# TYPE"), "{name}: {}", answer.text);
            continue;
        }
        assert!(
            answer.status < 500,
            "{name}: {} {}",
            answer.status,
            answer.text
        );
        assert!(
            answer
                .content_type
                .as_deref()
                .is_some_and(|ct| ct.starts_with("application/json")),
            "{name}: {:?}",
            answer.content_type
        );
        assert!(
            matches!(answer.json, Value::Object(_)),
            "{name}: {}",
            answer.text
        );
        if route.method == "GET" {
            assert_eq!(answer.status, 200, "{name}: {}", answer.text);
        }
    }
    assert_eq!(walked, lakehouse_kb::http::routes().len());
}

/// `path`, a route's, with a value for each of its parameters.
fn sample_path(path: &str) -> String {
    path.replace("{pr_number}", "1")
        .replace("{sig_hash}", "abc")
        .replace("{id}", "1")
}

/// Every answer says `Cache-Control: no-store` (the feed: `no-cache` and `Vary: accept`, its
/// form following `Accept`), errors included: with none, a stock Varnish in front kept a
/// revoked dismissal listed and `/healthz` at `ok` for its default 120 s (a review's). A
/// path without a route is a 404 whose `HEAD` length is its `GET`'s (it named the method).
#[test]
fn every_answer_says_caches_must_not_store_it() {
    let server = InProcessServer::start();
    let client = server.client();
    let header = |response: &reqwest::blocking::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for route in lakehouse_kb::http::routes() {
        let path = sample_path(route.path);
        let url = server.url(if path == "/feed" {
            "/feed?wait=0"
        } else {
            &path
        });
        let response = match route.method.as_str() {
            "GET" => client.get(url),
            "POST" => client
                .post(url)
                .header("content-type", "application/json")
                .body("{}"),
            "DELETE" => client.delete(url),
            other => panic!("no request for method {other} here"),
        }
        .send()
        .unwrap();
        let name = format!("{} {} ({})", route.method, route.path, response.status());
        if path == "/feed" {
            assert_eq!(
                header(&response, "cache-control").as_deref(),
                Some("no-cache"),
                "{name}"
            );
            assert_eq!(
                header(&response, "vary").as_deref(),
                Some("accept"),
                "{name}"
            );
        } else {
            assert_eq!(
                header(&response, "cache-control").as_deref(),
                Some("no-store"),
                "{name}"
            );
        }
    }
    let misdirected = client
        .get(server.url("/stats"))
        .header("host", "attacker.example")
        .send()
        .unwrap();
    assert_eq!(misdirected.status(), 421);
    assert_eq!(
        header(&misdirected, "cache-control").as_deref(),
        Some("no-store")
    );

    let got = client.get(server.url("/nowhere")).send().unwrap();
    assert_eq!(got.status(), 404);
    assert_eq!(header(&got, "cache-control").as_deref(), Some("no-store"));
    let headed = client.head(server.url("/nowhere")).send().unwrap();
    assert_eq!(
        header(&headed, "content-length"),
        Some(got.text().unwrap().len().to_string())
    );
}

/// Found by a hostile client at f3eedc8: `?repo=%ff` was the repository "\u{fffd}" while
/// `/sig/%ff` was a 400. Every query parameter is now refused by name when it is not UTF-8
/// once percent-decoded; valid percent-encoded UTF-8 reads as before.
#[test]
fn query_parameters_that_are_not_utf8_are_a_400_naming_them() {
    let server = InProcessServer::start();
    for (path, field) in [
        ("/prs/10/history?repo=%ff", "repo"),
        ("/events?source=%C3%28", "source"),
        ("/events?limit=5&event_kind=a%80b", "event_kind"),
        // `/feed` reads its query by hand; at f639646 `?types=%ff` read as U+FFFD.
        ("/feed?types=%ff", "types"),
        ("/feed?%ff=1", "\u{fffd}"),
    ] {
        assert_error(&server.get(path), 400, field, "not valid UTF-8");
    }
    // A path segment names its parameter too (it was `path`: a review's).
    for (path, field) in [
        ("/prs/%ff/history", "pr_number"),
        ("/sig/%ff", "sig_hash"),
        ("/prs/%C3%28/findings", "pr_number"),
    ] {
        assert_error(&server.get(path), 400, field, "UTF-8");
    }
    let request = server
        .client()
        .delete(server.url("/findings/dismissals/%ff"));
    let answer = crate::support::answer(request.send().unwrap());
    assert_error(&answer, 400, "id", "UTF-8");
    assert_eq!(server.get("/events?event_kind=caf%C3%A9+x").status, 200);
    assert_eq!(server.get("/prs/10/history?repo=acme%2Fkb").status, 200);
    assert_eq!(server.get("/feed?types=verdict%2Cevent").status, 200);
}

/// A query parameter a route does not take is a 400 naming it, on every route that takes
/// parameters: at 11cb16f it was ignored, so `GET /findings/dismissals?pr=1` answered every
/// PR's dismissals and `?stauts=open` every finding (a review's). Each route's own parameters,
/// and an empty name (`?&limit=1`), are still taken.
#[test]
fn query_parameters_a_route_does_not_take_are_a_400_naming_them() {
    let server = InProcessServer::start();
    for (route, taken, misspelt) in [
        (
            "/events",
            "limit=1&source=auditor&event_kind=b&sig_hash=c&before_seq=9",
            "sorce=auditor",
        ),
        ("/sig/pr1-abcdef01", "limit=1&after_seq=0", "after=3"),
        (
            "/prs/1/history",
            "limit=1&before_seq=9&exclude_sha=abcdef01",
            "exclude=abcdef01",
        ),
        (
            "/prs/1/neighbors",
            "limit=1&min_score=0.5&all_repos=true",
            "min=0.5",
        ),
        ("/prs/1/findings", "limit=1&status=open", "stauts=open"),
        ("/findings/dismissals", "limit=1&pr_number=1", "pr=1"),
    ] {
        let path = format!("{route}?&{taken}&repo=acme%2Fkb");
        let answer = server.get(&path);
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        let name = misspelt.split('=').next().unwrap();
        assert_error(
            &server.get(&format!("{path}&{misspelt}")),
            400,
            name,
            &format!("unknown query parameter \"{name}\""),
        );
        // A parameter given twice is named too (it was `"field":"query"` and serde's words).
        assert_error(
            &server.get(&format!("{path}&limit=2")),
            400,
            "limit",
            "limit is given more than once in the query",
        );
    }
}

/// A route whose input is its body takes no query parameter: one given is a 400 naming it, and
/// nothing is done. Dropped, `POST /findings/dismissals?repo=R&pr_number=21` with the scope
/// left out of the body was a repository-wide dismissal in the default namespace (a review's
/// at 1cc79a4). `POST /event` still ignores its query, as the legacy observer did.
#[test]
fn routes_that_take_a_body_refuse_a_query_instead_of_dropping_it() {
    let server = InProcessServer::start();
    let verdict = verdict(21, HEAD_A, "2026-04-22T17:20:00.000Z", "block", "x", &["c"]);
    let finding = json!({"finding": {"check": "tests", "severity": "warn", "summary": "no test"},
        "reason": "fp", "by": "me"})
    .to_string();
    let cases: [(&str, &str, String); 8] = [
        ("POST", "/verdicts?repo=gitea:o/r", verdict.clone()),
        (
            "POST",
            "/outcomes?repo=gitea:o/r",
            r#"{"sig_hash":"s"}"#.into(),
        ),
        (
            "POST",
            "/neighbors?repo=gitea:o/r",
            r#"{"claims":["c"]}"#.into(),
        ),
        (
            "POST",
            "/prs/21/findings/check?repo=gitea:o/r",
            r#"{"head_sha":"aaaaaaaa"}"#.into(),
        ),
        (
            "POST",
            "/findings/dismissals?repo=gitea:o/r&pr_number=21",
            finding,
        ),
        (
            "DELETE",
            "/findings/dismissals/1?repo=gitea:o/r",
            String::new(),
        ),
        ("POST", "/export?repo=gitea:o/r", String::new()),
        ("POST", "/backup?repo=gitea:o/r", "{}".into()),
    ];
    for (method, path, body) in cases {
        let request = server
            .client()
            .request(method.parse().unwrap(), server.url(path))
            .header("content-type", "application/json")
            .body(body);
        let answer = crate::support::answer(request.send().unwrap());
        assert_error(&answer, 400, "repo", "takes none");
    }
    assert_eq!(server.stats()["last_seq"], 0, "nothing stored");
    // An empty query names nothing; the legacy route reads none.
    assert_eq!(server.post_json("/verdicts?", verdict).status, 201);
    let event = server.post_json("/event?source=x", r#"{"source":"bot"}"#);
    assert_eq!(event.status, 200, "{}", event.text);
}
