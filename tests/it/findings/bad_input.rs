//! Bad input to the findings routes: a 4xx naming the field, nothing stored.

use super::*;

/// Every bad input is a 4xx with a JSON body naming the field.
#[test]
fn bad_input_is_a_4xx_naming_the_field() {
    let server = InProcessServer::start();
    let good = json!({"check": "static", "summary": "x"});
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "/prs/7/findings/check",
            json!({"findings": []}),
            400,
            "head_sha",
            "head_sha is required",
        ),
        (
            "/prs/7/findings/check",
            json!({"head_sha": "xyz", "findings": []}),
            400,
            "head_sha",
            "8 to 64 hex",
        ),
        (
            "/prs/7/findings/check",
            json!({"head_sha": HEAD_A}),
            400,
            "findings",
            "findings is required",
        ),
        (
            "/prs/7/findings/check",
            json!({"head_sha": HEAD_A, "findings": {}}),
            400,
            "findings",
            "must be an array",
        ),
        (
            "/prs/7/findings/check",
            json!({"head_sha": HEAD_A, "findings": vec![good.clone(); 201]}),
            400,
            "findings",
            "at most 200",
        ),
        (
            "/prs/7/findings/check",
            json!({"head_sha": HEAD_A, "findings": [good, {"check": "static"}]}),
            400,
            "findings[1].summary",
            "is required",
        ),
        (
            "/prs/7/findings/check",
            json!({"head_sha": HEAD_A, "findings": [{"check": "static", "summary": "x", "severity": 3}]}),
            400,
            "findings[0].severity",
            "must be a string",
        ),
        (
            "/prs/7/findings/check",
            json!({"head_sha": HEAD_A, "findings": [{"check": "s".repeat(201), "summary": "x"}]}),
            400,
            "findings[0].check",
            "at most 200",
        ),
        (
            "/prs/7/findings/check",
            json!({"head_sha": HEAD_A, "findings": [], "repo": 5}),
            400,
            "repo",
            "must be a string",
        ),
        (
            "/prs/x7/findings/check",
            json!({"head_sha": HEAD_A, "findings": []}),
            400,
            "pr_number",
            "non-negative integer",
        ),
        (
            "/findings/dismissals",
            json!({"reason": "r", "by": "b"}),
            400,
            "fingerprint",
            "is required",
        ),
        (
            "/findings/dismissals",
            json!({"fingerprint": "0123456789abcdef", "finding": {"check": "c", "summary": "s"}, "reason": "r", "by": "b"}),
            400,
            "fingerprint",
            "not both",
        ),
        (
            "/findings/dismissals",
            json!({"fingerprint": "0123", "reason": "r", "by": "b"}),
            400,
            "fingerprint",
            "16 hex digits",
        ),
        (
            "/findings/dismissals",
            json!({"finding": {"summary": "s"}, "reason": "r", "by": "b"}),
            400,
            "finding.check",
            "is required",
        ),
        (
            "/findings/dismissals",
            json!({"fingerprint": "0123456789abcdef", "by": "b"}),
            400,
            "reason",
            "reason is required",
        ),
        (
            "/findings/dismissals",
            json!({"fingerprint": "0123456789abcdef", "reason": "r", "by": "  "}),
            400,
            "by",
            "must not be blank",
        ),
        (
            "/findings/dismissals",
            json!({"fingerprint": "0123456789abcdef", "reason": "r".repeat(2001), "by": "b"}),
            400,
            "reason",
            "at most 2000",
        ),
        (
            "/findings/dismissals",
            json!({"fingerprint": "0123456789abcdef", "reason": "r", "by": "b", "confirm": "yes"}),
            400,
            "confirm",
            "must be a boolean",
        ),
        (
            "/findings/dismissals",
            json!({"fingerprint": "0123456789abcdef", "reason": "r", "by": "b", "pr_number": -1}),
            400,
            "pr_number",
            "non-negative integer",
        ),
        (
            "/findings/dismissals",
            json!({"fingerprint": "0123456789abcdef", "reason": "r", "by": "b", "repo": "r".repeat(201)}),
            400,
            "repo",
            "at most 200 bytes",
        ),
        // A misspelt field is refused, not ignored: `pr` for `pr_number` would have made a
        // dismissal for one PR a dismissal for the whole repository (201 at 2da52cd).
        (
            "/findings/dismissals",
            json!({"fingerprint": "0123456789abcdef", "reason": "r", "by": "b", "pr": 21}),
            400,
            "pr",
            "unknown field \"pr\"",
        ),
        (
            "/prs/7/findings/check",
            json!({"head_sha": "abcdef12", "findings": [], "repository": "r"}),
            400,
            "repository",
            "may hold repo, head_sha, findings",
        ),
        (
            "/neighbors",
            json!({"claims": ["a claim"], "exlcude_pr": 21}),
            400,
            "exlcude_pr",
            "unknown field",
        ),
    ];
    for (path, body, status, field, needle) in cases {
        let a = server.post_json(path, body.to_string());
        assert_error(&a, status, field, needle);
    }
    assert_error(
        &server.post_json("/findings/dismissals", "[1]"),
        400,
        "body",
        "JSON object",
    );
    assert_error(
        &server.post("/prs/7/findings/check", "text/plain", "{}"),
        415,
        "content-type",
        "application/json",
    );
    assert_error(
        &server.post_ndjson("/findings/dismissals", "{}\n"),
        415,
        "content-type",
        "application/json",
    );
    let gets = [
        (
            "/prs/7/findings?status=closed",
            "status",
            "open, resolved or all",
        ),
        ("/prs/7/findings?cursor=12", "cursor", "next_cursor"),
        (
            "/prs/7/findings?cursor=12-0123456789abcdef-x",
            "cursor",
            "next_cursor",
        ),
        (
            "/prs/7/findings?cursor=12-0123456789abcdef-13-14",
            "cursor",
            "next_cursor",
        ),
        ("/prs/7/findings?limit=0", "limit", "from 1 to"),
        ("/prs/007/findings", "pr_number", "without leading zeros"),
        (
            "/findings/dismissals?pr_number=seven",
            "pr_number",
            "non-negative integer",
        ),
        ("/findings/dismissals?cursor=-1", "cursor", "next_cursor"),
        (
            "/findings/dismissals?cursor=garbage",
            "cursor",
            "next_cursor",
        ),
    ];
    for (path, field, needle) in gets {
        assert_error(&server.get(path), 400, field, needle);
    }
    assert_not_found(&revoke(&server, 0));
    let bad_id = answer(
        server
            .client()
            .delete(server.url("/findings/dismissals/x1"))
            .send()
            .unwrap(),
    );
    assert_error(&bad_id, 400, "id", "dismissal id");
    // Nothing above was stored.
    assert_eq!(server.get("/findings/dismissals").json["count"], 0);
}

/// What a verdict's findings may hold, the check and a dismissal by `finding` take, read as
/// the verdict's are remembered (a review found the auditor's whole check refused for one
/// `BLOCK` or one long summary its verdict had been taken with).
#[test]
fn the_check_and_a_dismissal_take_the_findings_a_verdict_takes() {
    let server = InProcessServer::start_with(&["--export-interval", "0"]);
    let long: &'static str = Box::leak("a summary that goes on ".repeat(200).into_boxed_str());
    let findings: [F; 3] = [
        (
            "security",
            "BLOCK",
            "SQL built from request input in users.ts",
        ),
        ("static", "high", "unwrap() on user input in parse_body"),
        ("style", "warn", long),
    ];
    post_verdict(&server, verdict(None, 7, HEAD_A, 1, &findings));
    let checked = check(&server, None, 7, HEAD_B, &findings);
    assert_eq!(checked.status, 200, "{}", checked.text);
    assert_eq!(
        statuses(&checked),
        ["repeat", "repeat", "repeat"],
        "{}",
        checked.text
    );
    assert_eq!(checked.json["findings"][0]["severity"], "block");
    assert_eq!(checked.json["findings"][2]["match"]["tier"], "exact");
    let dismissed = dismiss(
        &server,
        json!({"pr_number": 7, "finding": {"check": "style", "severity": "WARN", "summary": long}, "reason": "generated", "by": "ana"}),
        None,
    );
    assert_eq!(dismissed.status, 201, "{}", dismissed.text);
    let again = check(&server, None, 7, HEAD_C, &findings);
    assert_eq!(
        statuses(&again),
        ["repeat", "repeat", "dismissed"],
        "{}",
        again.text
    );
}
