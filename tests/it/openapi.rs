//! `docs/openapi.yaml` lists exactly the routes the router serves (from `http::routes()`, the
//! table the router is built from), each with an operationId and examples, and `docs/API.md`
//! has a section with an example for each, so the documents cannot drift from the code.
//! (`.ci/check-openapi` then checks the spec with a validator and the real server with
//! Schemathesis.) Below them, the places where the spec and the server disagreed and the
//! server was made to agree, each with the request that showed it.

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::{TestServer, answer, assert_error};

/// One operation under `paths:`: its method, path and the lines that describe it.
struct Operation {
    method: String,
    path: String,
    lines: Vec<String>,
}

/// Every operation under `paths:`: paths are the keys indented by two spaces, methods the keys
/// indented by four below them, and an operation's lines run to the next method or path.
fn operations() -> Vec<Operation> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml")).unwrap();
    let mut in_paths = false;
    let mut path = String::new();
    let mut operations: Vec<Operation> = Vec::new();
    let mut current: Option<Operation> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line == "paths:";
            operations.extend(current.take());
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(key) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
            operations.extend(current.take());
            path = format!("/{key}");
        } else if let Some(key) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
            && ["get", "post", "put", "patch", "delete"].contains(&key)
        {
            operations.extend(current.take());
            current = Some(Operation {
                method: key.to_owned(),
                path: path.clone(),
                lines: Vec::new(),
            });
        } else if let Some(operation) = &mut current {
            operation.lines.push(line.to_owned());
        }
    }
    operations.extend(current);
    operations
}

#[test]
fn openapi_lists_exactly_the_router_s_routes() {
    let served: BTreeSet<(String, String)> = lakehouse_kb::http::routes()
        .iter()
        .map(|r| (r.method.as_str().to_ascii_lowercase(), r.path.to_owned()))
        .collect();
    let documented: BTreeSet<(String, String)> = operations()
        .into_iter()
        .map(|o| (o.method, o.path))
        .collect();
    assert!(
        documented.len() >= 10,
        "parsed too little of openapi.yaml: {documented:?}"
    );
    let missing: Vec<_> = served.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "undocumented routes: {missing:?}; documented but not served: {stale:?}"
    );
}

/// Every operation has one operationId, unique in the file; an example of its answer; and,
/// when it takes a body, an example of the body. Every link names an operation that exists.
#[test]
fn every_operation_has_an_operation_id_and_examples() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml")).unwrap();
    let is_example = |line: &str| {
        let key = line.trim_start();
        key.starts_with("example:") || key.starts_with("examples:")
    };
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    for op in operations() {
        let name = format!("{} {}", op.method, op.path);
        let own_ids: Vec<&str> = op
            .lines
            .iter()
            .filter_map(|l| l.strip_prefix("      operationId: "))
            .collect();
        match own_ids[..] {
            [id] if ids.insert(id.to_owned()) => {}
            [id] => problems.push(format!("{name}: operationId {id} is used twice")),
            _ => problems.push(format!("{name}: {} operationIds", own_ids.len())),
        }
        let section = |key: &str| {
            let start = op.lines.iter().position(|l| l == &format!("      {key}:"));
            start.map(|start| {
                let end = op.lines[start + 1..]
                    .iter()
                    // A blank line inside a block scalar (a description) is still the section.
                    .position(|l| !l.is_empty() && !l.starts_with("       "))
                    .map_or(op.lines.len(), |n| start + 1 + n);
                &op.lines[start + 1..end]
            })
        };
        match section("responses") {
            Some(responses) if responses.iter().any(|l| is_example(l)) => {}
            _ => problems.push(format!("{name}: no example of an answer")),
        }
        if let Some(body) = section("requestBody")
            && !body.iter().any(|l| is_example(l))
        {
            problems.push(format!("{name}: no example of its body"));
        }
    }
    for line in text.lines() {
        if let Some(id) = line.strip_prefix("      operationId: ")
            && !ids.contains(id)
        {
            problems.push(format!(
                "a link names operationId {id}, which no operation has"
            ));
        }
    }
    assert!(ids.len() >= 10, "parsed too few operationIds: {ids:?}");
    assert!(problems.is_empty(), "docs/openapi.yaml: {problems:#?}");
}

/// Every route has a `### \`METHOD /path\`` section in API.md (a query string may follow the
/// path) holding at least one `curl` example.
#[test]
fn api_md_has_a_section_with_an_example_for_every_route() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/API.md")).unwrap();
    let mut problems = Vec::new();
    for route in lakehouse_kb::http::routes() {
        let heading = format!("### `{} {}", route.method, route.path);
        let start = text.match_indices(&heading).map(|(i, _)| i).find(|&i| {
            let next = text[i + heading.len()..].chars().next();
            matches!(next, Some('`' | '?'))
        });
        let Some(start) = start else {
            problems.push(format!("no section {heading}`"));
            continue;
        };
        let body = &text[start + heading.len()..];
        let end = [body.find("\n## "), body.find("\n### ")]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(body.len());
        if !body[..end].contains("```console\n$ curl") {
            problems.push(format!("no curl example under {heading}`"));
        }
    }
    assert!(problems.is_empty(), "docs/API.md: {problems:#?}");
}

/// The examples that show a schema version show today's: a review found every `/healthz`
/// example at 13 when the server answered 15 (docs written before steps 14 and 15).
#[test]
fn examples_show_the_schema_version_of_today() {
    let today = lakehouse_kb::store::SCHEMA_VERSION;
    let mut shown = Vec::new();
    for doc in ["docs/API.md", "docs/openapi.yaml", "README.md"] {
        let path = format!("{}/{doc}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        for marker in ["\"schema_version\":", "schema_version: "] {
            for (i, _) in text.match_indices(marker) {
                let rest = &text[i + marker.len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(version) = digits.parse::<u64>() {
                    shown.push((doc, version));
                }
            }
        }
    }
    assert!(shown.len() >= 3, "found too few examples: {shown:?}");
    let stale: Vec<_> = shown
        .iter()
        .filter(|(_, version)| *version != today)
        .collect();
    assert!(stale.is_empty(), "schema version {today} today: {stale:?}");
}

/// Schemathesis sent integers above 2^53 - 1 and `+5` where the spec says "an integer at most
/// 9007199254740991": seq cursors, the findings and dismissal cursors, `Last-Event-ID` and a
/// dismissal id were taken as any u64 (a 200, or a 404 for the id). Every integer the API takes
/// now has the one rule the spec states.
#[test]
fn integers_past_2_53_minus_1_are_refused_wherever_the_api_takes_one() {
    let server = TestServer::start();
    let too_big = "9007199254740992";
    for (path, field) in [
        (format!("/events?before_seq={too_big}"), "before_seq"),
        (format!("/prs/1/history?before_seq={too_big}"), "before_seq"),
        (
            format!("/sig/pr1-abcdef12?after_seq={too_big}"),
            "after_seq",
        ),
        (format!("/feed?after_seq={too_big}"), "after_seq"),
        (format!("/findings/dismissals?cursor={too_big}"), "cursor"),
        (
            format!("/prs/1/findings?cursor={too_big}-be28a8280bdc8b4b"),
            "cursor",
        ),
        ("/events?limit=%2B5".to_owned(), "limit"),
        ("/events?before_seq=%2B5".to_owned(), "before_seq"),
    ] {
        assert_error(&server.get(&path), 400, field, "");
    }
    assert_error(
        &server.get(&format!("/events?before_seq={too_big}")),
        400,
        "before_seq",
        "before_seq must be a non-negative integer (at most 9007199254740991), got \"9007199254740992\"",
    );
    let feed = answer(
        server
            .client()
            .get(server.url("/feed"))
            .header("last-event-id", too_big)
            .send()
            .unwrap(),
    );
    assert_error(&feed, 400, "last-event-id", "at most 9007199254740991");
    let revoke = answer(
        server
            .client()
            .delete(server.url(&format!("/findings/dismissals/{too_big}")))
            .send()
            .unwrap(),
    );
    assert_error(&revoke, 400, "id", "at most 9007199254740991");
    // The largest is taken.
    let largest = server.get("/events?before_seq=9007199254740991");
    assert_eq!(largest.status, 200, "{}", largest.text);
}

/// JSON has one number type: the spec's integers include `21.0`, which the verdict rules always
/// took (JavaScript cannot tell it from `21`), but `exclude_pr`, `limit` and a dismissal's
/// `pr_number` answered 400 "got 21.0" to.
#[test]
fn a_whole_number_written_with_a_fraction_is_an_integer_in_every_body() {
    let server = TestServer::start();
    let neighbors = server.post_json(
        "/neighbors",
        r#"{"claims":["observer counts events"],"exclude_pr":11.0,"limit":5.0}"#,
    );
    assert_eq!(neighbors.status, 200, "{}", neighbors.text);
    let dismissal = server.post_json(
        "/findings/dismissals",
        r#"{"pr_number":21.0,"fingerprint":"d83d71c10f353aa9","reason":"covered","by":"ana"}"#,
    );
    assert_eq!(dismissal.status, 201, "{}", dismissal.text);
    assert_eq!(dismissal.json["pr_number"], 21);
    assert_error(
        &server.post_json("/neighbors", r#"{"claims":["x"],"exclude_pr":1.5}"#),
        400,
        "exclude_pr",
        "got 1.5",
    );
}

/// An empty number in a query is a 400, as for `limit` and the seq cursors: the dismissals'
/// `pr_number=` was taken as "absent" (the whole repository's list), which the spec's integer
/// cannot say.
#[test]
fn an_empty_pr_number_query_is_refused_not_read_as_absent() {
    let server = TestServer::start();
    assert_error(
        &server.get("/findings/dismissals?pr_number="),
        400,
        "pr_number",
        "non-negative integer",
    );
    let all = server.get("/findings/dismissals");
    assert_eq!(all.status, 200, "{}", all.text);
}

/// The feed read its query with axum's own extractor: a repeated parameter got a plain-text
/// 400 (`Failed to deserialize query string: duplicate field`), not the JSON error every other
/// route sends; and a bad `after_seq` went unchecked when `Last-Event-ID` was given.
#[test]
fn the_feed_refuses_a_bad_query_in_json_whatever_last_event_id_says() {
    let server = TestServer::start();
    let repeated = server.get("/feed?wait=0&wait=0");
    assert_error(&repeated, 400, "wait", "wait is given more than once");
    assert_eq!(
        repeated.content_type.as_deref(),
        Some("application/json"),
        "{}",
        repeated.text
    );
    let bad_position = answer(
        server
            .client()
            .get(server.url("/feed?after_seq=abc"))
            .header("last-event-id", "3")
            .send()
            .unwrap(),
    );
    assert_error(&bad_position, 400, "after_seq", "got \"abc\"");
}

/// The observer took any JSON value as `source` (stored as `scenario`, the original kept). An
/// object or array whose JSON text passed 512 bytes was refused as if it were a key, which the
/// spec (and the legacy observer) do not say; a string source is still bounded.
#[test]
fn a_source_that_is_not_a_string_is_kept_whatever_its_length() {
    let server = TestServer::start();
    let long = json!({"source": ["a".repeat(600)], "event_kind": "cycle"});
    let posted = server.post_json("/event", long.to_string());
    assert_eq!(posted.status, 200, "{}", posted.text);
    let events = server.get("/events?limit=1");
    assert_eq!(
        events.json["events"][0]["source_original"],
        json!(["a".repeat(600)]).to_string()
    );
    let string = json!({"source": "a".repeat(600)});
    assert_error(
        &server.post_json("/event", string.to_string()),
        400,
        "source",
        "at most 512 bytes",
    );
}
