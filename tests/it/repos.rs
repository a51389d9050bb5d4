//! Repositories as namespaces, over real HTTP: two repositories each with a PR #1 (even on the
//! same head, as a fork has) never see each other's history, records, neighbours or events;
//! the default namespace is what legacy clients use and is unchanged; exported rows of a named
//! repository end with `"repo"`.

use serde_json::{Value, json};

use crate::support::{InProcessServer, OPS, OUTCOMES, assert_error};

const HEAD: &str = "1234abcd00000000000000000000000000000001";

fn verdict(repo: Option<&str>, pr: u64, at: &str, overall: &str, claims: &[&str]) -> String {
    let mut v = json!({
        "pr_number": pr,
        "head_sha": HEAD,
        "overall": overall,
        "one_liner": format!("{overall} in {}", repo.unwrap_or("default")),
        "claims": claims,
        "metrics": {"findings_block": 0, "findings_warn": 1, "audit_duration_ms": 2000},
        "audited_at": at,
    });
    if let Some(repo) = repo {
        v["repo"] = json!(repo);
    }
    v.to_string()
}

fn seqs(records: &Value) -> Vec<(String, u64)> {
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_owned(),
                r["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn two_repositories_with_pr_1_never_see_each_other() {
    let server = InProcessServer::start();
    let (a, b) = ("gitea:profit/lakehouse", "github:acme/widgets");
    let claim = "adds exponential backoff retries to the S3 upload path";
    let in_a = server.post_json("/verdicts", verdict(Some(a), 1, "t1", "block", &[claim]));
    let in_b = server.post_json("/verdicts", verdict(Some(b), 1, "t1", "approve", &[claim]));
    let in_default = server.post_json(
        "/verdicts",
        verdict(None, 1, "t1", "request_changes", &[claim]),
    );
    for answer in [&in_a, &in_b, &in_default] {
        assert_eq!(answer.status, 201, "{}", answer.text);
        assert_eq!(answer.json["sig_hash"], "pr1-1234abcd");
    }
    // The same identity in one repository is a duplicate; in another it is not.
    let again = server.post_json("/verdicts", verdict(Some(a), 1, "t1", "block", &[claim]));
    assert_eq!(
        (again.status, &again.json["duplicate"]),
        (200, &json!(true))
    );
    assert_eq!(again.json["seq"], in_a.json["seq"]);

    // History: each repository's own audit.
    for (repo, overall) in [(a, "block"), (b, "approve")] {
        let history = server.get(&format!("/prs/1/history?repo={}", urlencode(repo)));
        assert_eq!(history.status, 200, "{}", history.text);
        assert_eq!(history.json["count"], 1);
        assert_eq!(history.json["repo"], repo);
        assert_eq!(history.json["by_overall"], json!({ overall: 1 }));
        assert_eq!(history.json["audits"][0]["overall"], overall);
    }
    let default = server.get("/prs/1/history");
    assert_eq!(default.json["count"], 1);
    assert_eq!(default.json["audits"][0]["overall"], "request_changes");
    assert!(default.json.get("repo").is_none(), "{}", default.text);
    let unknown = server.get("/prs/1/history?repo=nobody%2Fnothing");
    assert_eq!((unknown.status, &unknown.json["count"]), (200, &json!(0)));

    // /sig: the verdict, its KB row and its event, of one repository only.
    let sig_a = server.get(&format!("/sig/pr1-1234abcd?repo={}", urlencode(a)));
    let seq_a = in_a.json["seq"].as_u64().unwrap();
    assert_eq!(
        seqs(&sig_a.json["records"]),
        [
            ("verdict".to_owned(), seq_a),
            ("outcome".to_owned(), seq_a + 1),
            ("event".to_owned(), seq_a + 2)
        ]
    );
    let sig_default = server.get("/sig/pr1-1234abcd");
    let seq_default = in_default.json["seq"].as_u64().unwrap();
    assert_eq!(sig_default.json["records"][0]["seq"], seq_default);
    assert_eq!(sig_default.json["records"].as_array().unwrap().len(), 3);

    // Events by sig_hash: the repository's own.
    let events = server.get(&format!(
        "/events?sig_hash=pr1-1234abcd&repo={}",
        urlencode(b)
    ));
    let found = events.json["events"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{}", events.text);
    assert_eq!(found[0]["seq"], in_b.json["seq"].as_u64().unwrap() + 2);

    // Neighbours: the same claim in every repository; each search sees its own (the PR asked
    // about left out elsewhere), `all_repos` sees them all.
    let near = |body: Value| server.post_json("/neighbors", body.to_string());
    let found = near(json!({"claims": [claim], "repo": a}));
    assert_eq!(found.json["count"], 1, "{}", found.text);
    assert_eq!(found.json["neighbors"][0]["repo"], a);
    let found = near(json!({"claims": [claim]}));
    assert_eq!(found.json["count"], 1);
    assert_eq!(found.json["neighbors"][0]["repo"], Value::Null);
    let found = near(json!({"claims": [claim], "repo": a, "all_repos": true, "exclude_pr": 1}));
    let repos: Vec<&Value> = found.json["neighbors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["repo"])
        .collect();
    assert_eq!(repos.len(), 2, "{}", found.text);
    assert!(repos.contains(&&json!(b)) && repos.contains(&&Value::Null));
    assert!(
        found.json["context"]
            .as_str()
            .unwrap()
            .contains(&format!("#1 in {b}")),
        "{}",
        found.json["context"]
    );

    // Stats count verdicts by repository.
    assert_eq!(server.stats()["by_repo"], json!({"": 1, a: 1, b: 1}));

    // Export: the default namespace's rows are the legacy bytes; a named repository's end
    // with its repo.
    let export = server.post_json("/export", "{}");
    assert_eq!(export.status, 200, "{}", export.text);
    let outcomes = std::fs::read_to_string(server.data.join(OUTCOMES)).unwrap();
    let rows: Vec<&str> = outcomes.lines().collect();
    assert_eq!(rows.len(), 3);
    assert!(
        rows[0].ends_with(&format!(r#""elapsed_secs":2,"repo":"{a}"}}"#)),
        "{}",
        rows[0]
    );
    assert!(rows[2].ends_with(r#""elapsed_secs":2}"#), "{}", rows[2]);
    let ops = std::fs::read_to_string(server.data.join(OPS)).unwrap();
    let ops: Vec<&str> = ops.lines().collect();
    assert!(
        ops[1].ends_with(&format!(r#""event_kind":"audit","repo":"{b}"}}"#)),
        "{}",
        ops[1]
    );
    assert!(ops[2].ends_with(r#""event_kind":"audit"}"#), "{}", ops[2]);
}

#[test]
fn bad_repository_names_are_refused() {
    let server = InProcessServer::start();
    let long = "r".repeat(201);
    assert_error(
        &server.post_json("/verdicts", verdict(Some(&long), 1, "t", "block", &[])),
        400,
        "repo",
        "at most 200 bytes",
    );
    assert_error(
        &server.post_json("/verdicts", {
            let mut v: serde_json::Value =
                serde_json::from_str(&verdict(None, 1, "t", "block", &[])).unwrap();
            v["repo"] = 7.into();
            v.to_string()
        }),
        400,
        "repo",
        "must be a string",
    );
    assert_error(
        &server.get(&format!("/prs/1/history?repo={long}")),
        400,
        "repo",
        "at most 200 bytes",
    );
    assert_error(
        &server.get("/sig/x?repo=a%0Ab"),
        400,
        "repo",
        "control characters",
    );
    assert_eq!(server.stats()["last_seq"], 0);
}

/// An observer event or an outcome row whose `repo` is not a string, or not a valid name, is a
/// legacy client's record (the legacy writers took any field): stored in the default
/// namespace, its lines exactly the legacy bytes, as the import keeps such a line. At b548710
/// a non-string was a 400, and until a review an over-long or control-character name was, and
/// the client lost the record.
#[test]
fn a_repo_that_is_not_a_string_leaves_a_legacy_record_in_the_default_namespace() {
    let server = InProcessServer::start();
    let row = r#"{"sig_hash":"6cd5d79c4f5d42c9","repo":{"owner":"profit","name":"lakehouse"}}"#;
    assert_eq!(server.post_json("/outcomes", row).status, 201);
    let event = r#"{"timestamp":"t","source":"bot","ok":true,"repo":5}"#;
    assert_eq!(server.post_json("/event", event).status, 200);
    let bad_row = r#"{"sig_hash":"6cd5d79c4f5d42c9","repo":"a\u0007b"}"#;
    assert_eq!(server.post_json("/outcomes", bad_row).status, 201);
    let long = "r".repeat(201);
    let long_event = format!(r#"{{"timestamp":"u","source":"bot","repo":"{long}"}}"#);
    assert_eq!(server.post_json("/event", long_event).status, 200);
    assert_eq!(server.post_json("/export", "").status, 200);
    let read = |path: &str| std::fs::read_to_string(server.data.join(path)).unwrap();
    assert_eq!(read("_kb/outcomes.jsonl"), format!("{row}\n{bad_row}\n"));
    assert_eq!(
        read("_observer/ops.jsonl"),
        "{\"timestamp\":\"t\",\"endpoint\":\"bot:cycle\",\"input_summary\":\"? ?×? in ?, ?\",\"success\":true,\"duration_ms\":0,\"output_summary\":\"ok\",\"source\":\"bot\"}\n\
         {\"timestamp\":\"u\",\"endpoint\":\"bot:cycle\",\"input_summary\":\"? ?×? in ?, ?\",\"success\":false,\"duration_ms\":0,\"output_summary\":\"failed\",\"source\":\"bot\"}\n"
    );
    assert_eq!(
        server.get("/sig/6cd5d79c4f5d42c9").json["records"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        server.get("/sig/6cd5d79c4f5d42c9").json["records"][0]["type"],
        "outcome"
    );
}

/// Percent-encodes a query value (repository names hold `:` and `/`).
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
