//! The findings memory on the real server: a PR audited on three heads whose findings repeat,
//! disappear, come back and get reworded; dismissals that apply to the scope they name, stop
//! when revoked and survive a restart; another repository's PR of the same number untouched;
//! bad input a 4xx naming the field. And on real store files: the labelled set of rewordings
//! and different findings (tests/fixtures/findings/), the memory built on open, resumed,
//! rebuilt under other rules and checked against a rebuild, legacy imports, backups.

use std::collections::BTreeMap;

use lakehouse_kb::intake::verdict_record;
use lakehouse_kb::model::Repo;
use lakehouse_kb::model::finding::{Finding, Fingerprint, Match};
use lakehouse_kb::store::{
    DismissalChange, FindingStatus, FindingsCheck, FindingsQuery, HistoryQuery, LatestFindings,
    MAX_LIVE_PER_SCOPE, NewDismissal, Put, ReadBudget, Record, Store, StoreOptions, Written,
    tables,
};
use serde_json::{Value, json};

use crate::support::{Answer, Http, InProcessServer, LEGACY_DATA, answer, assert_error};

mod bad_input;
mod dismissals;
mod labelled;
mod memory;
mod rebuild;

const REPO: &str = "gitea:team/app";
const OTHER_REPO: &str = "gitea:team/other";
const HEAD_A: &str = "aaaaaaaa00000000000000000000000000000001";
const HEAD_B: &str = "bbbbbbbb00000000000000000000000000000002";
const HEAD_C: &str = "cccccccc00000000000000000000000000000003";

type F = (&'static str, &'static str, &'static str);

const F1: F = (
    "static",
    "warn",
    "unwrap() on user input in parse_body (src/http/ingest.rs:42) can panic",
);
/// F1 on a later push: its line moved.
const F1_MOVED: F = (
    "static",
    "warn",
    "unwrap() on user input in `parse_body` (src/http/ingest.rs:57) can panic",
);
const F2: F = (
    "tests",
    "warn",
    "no test covers the retry path in upload_with_retry",
);
const F3: F = (
    "security",
    "block",
    "SQL query in users.ts is built by string concatenation with the request's name parameter",
);
/// F3 reworded by the model on head B, and again on head C.
const F3_REWORDED: F = (
    "security",
    "block",
    "users.ts builds its SQL query by concatenating the name parameter from the request",
);
const F3_AGAIN: F = (
    "security",
    "block",
    "the SQL query in users.ts is built by concatenating the request's name parameter",
);
const F4: F = (
    "docs",
    "info",
    "README still documents the removed --legacy flag",
);
const NEW: F = (
    "static",
    "warn",
    "Mutex lock held across an .await in writer::submit",
);

fn findings_json(findings: &[F]) -> Value {
    findings
        .iter()
        .map(|(check, severity, summary)| {
            json!({"check": check, "severity": severity, "summary": summary})
        })
        .collect()
}

fn verdict(repo: Option<&str>, pr: u64, head: &str, at: u32, findings: &[F]) -> String {
    let mut v = json!({
        "pr_number": pr, "head_sha": head, "overall": "request_changes",
        "one_liner": format!("audit at {at}"), "findings": findings_json(findings),
        "metrics": {"findings_block": 0, "findings_warn": findings.len()},
        "audited_at": format!("2026-06-01T00:00:{at:02}.000Z"),
    });
    if let Some(repo) = repo {
        v["repo"] = json!(repo);
    }
    v.to_string()
}

fn post_verdict(server: &Http, body: String) {
    let a = server.post_json("/verdicts", body);
    assert_eq!(a.status, 201, "{}", a.text);
}

fn check(server: &Http, repo: Option<&str>, pr: u64, head: &str, findings: &[F]) -> Answer {
    let mut body = json!({"head_sha": head, "findings": findings_json(findings)});
    if let Some(repo) = repo {
        body["repo"] = json!(repo);
    }
    let a = server.post_json(&format!("/prs/{pr}/findings/check"), body.to_string());
    assert_eq!(a.status, 200, "{}", a.text);
    a
}

fn repo_param(repo: Option<&str>) -> String {
    repo.map_or(String::new(), |r| {
        format!("&repo={}", r.replace(':', "%3A").replace('/', "%2F"))
    })
}

fn list(server: &Http, repo: Option<&str>, pr: u64, status: &str) -> Vec<Value> {
    let a = server.get(&format!(
        "/prs/{pr}/findings?status={status}{}",
        repo_param(repo)
    ));
    assert_eq!(a.status, 200, "{}", a.text);
    a.json["findings"].as_array().unwrap().clone()
}

/// `(check, times_raised, status, last_match)` by the latest wording.
fn summary_of(found: &[Value]) -> BTreeMap<String, (String, u64, String, String)> {
    found
        .iter()
        .map(|f| {
            (
                f["summary"].as_str().unwrap().to_owned(),
                (
                    f["check"].as_str().unwrap().to_owned(),
                    f["times_raised"].as_u64().unwrap(),
                    f["status"].as_str().unwrap().to_owned(),
                    f["last_match"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

fn row(check: &str, times: u64, status: &str, tier: &str) -> (String, u64, String, String) {
    (check.into(), times, status.into(), tier.into())
}

fn dismiss(server: &Http, body: Value, key: Option<&str>) -> Answer {
    let mut request = server
        .client()
        .post(server.url("/findings/dismissals"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    answer(request.body(body.to_string()).send().unwrap())
}

fn revoke(server: &Http, id: u64) -> Answer {
    answer(
        server
            .client()
            .delete(server.url(&format!("/findings/dismissals/{id}")))
            .send()
            .unwrap(),
    )
}

#[track_caller]
fn assert_not_found(a: &Answer) {
    assert_eq!(a.status, 404, "{}", a.text);
    assert!(
        a.json["error"]
            .as_str()
            .unwrap()
            .starts_with("no dismissal has id"),
        "{}",
        a.text
    );
}

fn statuses(a: &Answer) -> Vec<String> {
    a.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap().to_owned())
        .collect()
}

/// Verdict bodies whose findings repeat, move, get reworded and come back across the heads of
/// a few PRs in two repositories.
fn traffic(n: u64) -> Vec<Put> {
    let subjects = [
        "parse_body",
        "parse_query",
        "write_batch",
        "export_now",
        "check_token",
    ];
    let defects = [
        (
            "static",
            "unwrap() on user input in {} (src/lib.rs:{}) can panic",
        ),
        ("tests", "no test covers the error path of {}"),
        ("security", "{} logs the bearer token at info level"),
    ];
    let rewordings = [
        (
            "static",
            "{} unwraps user input at src/lib.rs:{} and can panic",
        ),
        ("tests", "the error path of {} has no test covering it"),
        ("security", "the bearer token is logged at info level by {}"),
    ];
    (0..n)
        .map(|i| {
            let pr = 1 + i % 6;
            let head = format!("{:08x}{}", i / 12, "0".repeat(32));
            let findings: Vec<Value> = (0..3)
                .filter(|k| (i + k) % 4 != 0)
                .map(|k| {
                    let (check, pattern) = if (i / 6 + k) % 3 == 0 {
                        rewordings[k as usize]
                    } else {
                        defects[k as usize]
                    };
                    let subject = subjects[((pr + k) % 5) as usize];
                    let summary = pattern.replacen("{}", subject, 1).replacen(
                        "{}",
                        &(40 + i % 7).to_string(),
                        1,
                    );
                    let severity = ["warn", "block", "info"][(i % 3) as usize];
                    json!({"check": check, "severity": severity, "summary": summary})
                })
                .collect();
            let mut body = json!({
                "pr_number": pr, "head_sha": head, "overall": "approve", "one_liner": "x",
                "findings": findings, "metrics": {"findings_block": 0, "findings_warn": 0},
                "audited_at": format!("2026-06-01T00:00:00.000Z#{i}"),
            });
            if i % 2 == 1 {
                body["repo"] = json!(REPO);
            }
            // Now and then an audit that says nothing of its findings.
            if i % 11 == 10 {
                body.as_object_mut().unwrap().remove("findings");
            }
            Put::from(verdict_record(body.to_string().as_bytes(), 1).unwrap())
        })
        .collect()
}

/// Verdicts of PR 1 (and a few of PR 2) in one batch: each brings new findings until
/// the PR has far more than the 256 a rewording is looked for among, rewords one of its
/// recent findings and one too old to be among them, and repeats one raised long before (out
/// of the 256, back in).
fn one_pr_traffic(n: u64) -> Vec<Put> {
    let findings_of = |i: u64| {
        let mut findings: Vec<Value> = (0..6)
            .map(|k| {
                let id = i * 6 + k;
                json!({"check": "static", "summary": format!("unchecked index in handler_{id} of src/mod_{id}.rs")})
            })
            .collect();
        if i > 0 {
            let id = (i - 1) * 6;
            findings.push(json!({"check": "static", "summary": format!("handler_{id} of src/mod_{id}.rs has an unchecked index")}));
        }
        if i >= 60 {
            let id = (i - 60) * 6 + 1;
            findings.push(json!({"check": "static", "summary": format!("unchecked index in handler_{id} of src/mod_{id}.rs")}));
        }
        // A rewording of a finding raised too long ago to be looked among: a new finding.
        if i >= 40 {
            let id = (i - 40) * 6 + 2;
            findings.push(json!({"check": "static", "summary": format!("handler_{id} of src/mod_{id}.rs has an unchecked index")}));
        }
        findings
    };
    (0..n)
        .map(|i| {
            // PR 2 now and then, and twice an exact repeat of its last audit (no candidates
            // read: PR 1's stay kept, and PR 2's writes must not enter them).
            let (pr, findings) = match i % 50 {
                49 => (2, findings_of(i)),
                20 if i >= 70 => (2, findings_of(i - 21)),
                _ => (1, findings_of(i)),
            };
            let body = json!({
                "pr_number": pr, "head_sha": format!("{i:08x}{}", "0".repeat(32)), "overall": "block",
                "one_liner": "x", "findings": findings, "metrics": {"findings_block": 0, "findings_warn": 0},
                "audited_at": format!("2026-06-01T00:00:00.000Z#{i}"),
            });
            Put::from(verdict_record(body.to_string().as_bytes(), 1).unwrap())
        })
        .collect()
}

fn dismissal_put(repo: &str, pr: Option<u64>, fingerprint: u64) -> Put {
    Put::from(Record::Dismissal(DismissalChange::New(NewDismissal {
        repo: Repo::parse("repo", repo).unwrap(),
        pr_number: pr,
        fingerprint: Fingerprint(fingerprint),
        check: String::new(),
        severity: String::new(),
        summary: String::new(),
        reason: "bulk".into(),
        by: "test".into(),
        created_ms: 1,
    })))
}
