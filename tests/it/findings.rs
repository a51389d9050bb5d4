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

/// PR 7 of one repository, audited on heads A, B and C: F1 raised on every head (its line
/// moves), F2 gone on B and back on C, F3 reworded on B and again on C, F4 raised on B only.
/// Another repository's PR 7 and the default namespace's are never touched.
#[test]
fn a_pr_audited_on_three_heads_gives_each_finding_its_status() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    post_verdict(&server, verdict(repo, 7, HEAD_A, 1, &[F1, F2, F3]));
    post_verdict(&server, verdict(Some(OTHER_REPO), 7, HEAD_A, 1, &[F1, F4]));
    post_verdict(
        &server,
        verdict(repo, 7, HEAD_B, 2, &[F1_MOVED, F3_REWORDED, F4]),
    );

    let after_b = summary_of(&list(&server, repo, 7, "all"));
    assert_eq!(
        after_b,
        BTreeMap::from([
            (F1_MOVED.2.to_owned(), row("static", 2, "open", "exact")),
            (F2.2.to_owned(), row("tests", 1, "resolved", "new")),
            (
                F3_REWORDED.2.to_owned(),
                row("security", 2, "open", "similar")
            ),
            (F4.2.to_owned(), row("docs", 1, "open", "new")),
        ])
    );

    // What the auditor asks before posting its review of head C: a read, stored nothing.
    let asked = check(&server, repo, 7, HEAD_C, &[F1_MOVED, F2, F3_AGAIN, NEW]);
    let found = asked.json["findings"].as_array().unwrap();
    let status: Vec<(&str, Option<&str>)> = found
        .iter()
        .map(|f| (f["status"].as_str().unwrap(), f["match"]["tier"].as_str()))
        .collect();
    assert_eq!(
        status,
        [
            ("repeat", Some("exact")),
            ("reopened", Some("exact")),
            ("repeat", Some("similar")),
            ("new", None),
        ],
        "{}",
        asked.text
    );
    assert_eq!(
        asked.json["counts"],
        json!({"new": 1, "repeat": 2, "reopened": 1, "dismissed": 0})
    );
    let f1 = &found[0];
    assert_eq!(f1["times_raised"], 2);
    assert_eq!(f1["first_seen"]["head_sha"], HEAD_A);
    assert_eq!(f1["last_seen"]["head_sha"], HEAD_B);
    assert_eq!(f1["raised_on_head"], false);
    assert_eq!(
        f1["match"]["fingerprint"],
        Fingerprint::of(F1.0, F1.2).to_string()
    );
    let score = found[2]["match"]["score"].as_f64().unwrap();
    assert!((2.0 / 3.0..1.0).contains(&score), "{score}");
    assert_eq!(
        found[3]["fingerprint"],
        Fingerprint::of(NEW.0, NEW.2).to_string()
    );
    assert_eq!(summary_of(&list(&server, repo, 7, "all")), after_b);

    post_verdict(
        &server,
        verdict(repo, 7, HEAD_C, 3, &[F1_MOVED, F2, F3_AGAIN]),
    );
    let open = summary_of(&list(&server, repo, 7, "open"));
    assert_eq!(
        open,
        BTreeMap::from([
            (F1_MOVED.2.to_owned(), row("static", 3, "open", "exact")),
            (F2.2.to_owned(), row("tests", 2, "open", "exact")),
            (F3_AGAIN.2.to_owned(), row("security", 3, "open", "similar")),
        ])
    );
    let resolved = list(&server, repo, 7, "resolved");
    assert_eq!(
        summary_of(&resolved),
        BTreeMap::from([(F4.2.to_owned(), row("docs", 1, "resolved", "new"))])
    );
    assert_eq!(resolved[0]["first_seen"]["head_sha"], HEAD_B);
    let all = list(&server, repo, 7, "all");
    let f3 = all.iter().find(|f| f["check"] == "security").unwrap();
    assert_eq!(f3["fingerprint"], Fingerprint::of(F3.0, F3.2).to_string());
    assert_eq!(f3["heads"], json!([HEAD_A, HEAD_B, HEAD_C]));
    assert_eq!(f3["severity"], "block");
    let f2 = all.iter().find(|f| f["check"] == "tests").unwrap();
    assert_eq!(f2["heads"], json!([HEAD_A, HEAD_C]));

    // Head C's three findings were all raised by an earlier head.
    let history = server.get(&format!("/prs/7/history?{}", &repo_param(repo)[1..]));
    assert_eq!(history.status, 200, "{}", history.text);
    let latest = &history.json["latest_audit_findings"];
    assert_eq!(
        (&latest["raised"], &latest["repeat_earlier_heads"]),
        (&json!(3), &json!(3)),
        "{}",
        history.text
    );

    // The other repository's PR 7: its own two findings, raised once; F2 is new there.
    assert_eq!(
        summary_of(&list(&server, Some(OTHER_REPO), 7, "all")),
        BTreeMap::from([
            (F1.2.to_owned(), row("static", 1, "open", "new")),
            (F4.2.to_owned(), row("docs", 1, "open", "new")),
        ])
    );
    let there = check(&server, Some(OTHER_REPO), 7, HEAD_C, &[F2, F1]);
    assert_eq!(
        there.json["counts"],
        json!({"new": 1, "repeat": 1, "reopened": 0, "dismissed": 0})
    );
    // The default namespace has no PR 7 at all.
    let none = server.get("/prs/7/findings");
    assert_eq!(
        (none.json["count"].clone(), none.json["latest_seq"].clone()),
        (json!(0), Value::Null)
    );
    let nothing = check(&server, None, 7, HEAD_C, &[F1, F2]);
    assert_eq!(nothing.json["counts"]["new"], 2);
}

/// Pages of findings: newest last seen first, none repeated or skipped, by `next_cursor`.
/// A verdict that says nothing of its findings (no `findings` array: an audit that failed
/// before it listed them, or an auditor that does not list them) leaves the PR's open findings
/// open, so that the next audit raising them finds them repeats, not reopened; an empty list
/// says the audit found none and resolves them. Until 2026-12-06 the first kind resolved them.
#[test]
fn a_verdict_without_findings_leaves_the_open_findings_open() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    let post = |head: &str, at: u32, findings: Option<Value>| -> u64 {
        let mut body: Value = serde_json::from_str(&verdict(repo, 8, head, at, &[])).unwrap();
        match findings {
            Some(findings) => body["findings"] = findings,
            None => {
                body.as_object_mut().unwrap().remove("findings");
            }
        }
        let a = server.post_json("/verdicts", body.to_string());
        assert_eq!(a.status, 201, "{}", a.text);
        a.json["seq"].as_u64().unwrap()
    };
    let open_and_latest = || {
        let a = server.get(&format!("/prs/8/findings?status=open{}", repo_param(repo)));
        assert_eq!(a.status, 200, "{}", a.text);
        let mut open: Vec<String> = a.json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["summary"].as_str().unwrap().to_owned())
            .collect();
        open.sort();
        (open, a.json["latest_seq"].as_u64())
    };
    let sorted = |fs: &[F]| {
        let mut v: Vec<String> = fs.iter().map(|f| f.2.to_owned()).collect();
        v.sort();
        v
    };

    let first = post(HEAD_A, 1, Some(findings_json(&[F1, F2])));
    assert_eq!(open_and_latest(), (sorted(&[F1, F2]), Some(first)));
    // (what the next audit carries as `findings`: None for no key, the open findings after
    // it, whether it is the audit whose findings are open)
    let cases: [(&str, Option<Value>, &[F], bool); 5] = [
        ("no findings key", None, &[F1, F2], false),
        ("findings null", Some(Value::Null), &[F1, F2], false),
        ("findings not a list", Some(json!("none")), &[F1, F2], false),
        (
            "no finding readable",
            Some(json!([{"rule": "static", "message": "x"}])),
            &[F1, F2],
            false,
        ),
        (
            "findings of its own",
            Some(findings_json(&[F1])),
            &[F1],
            true,
        ),
    ];
    let mut latest = first;
    for (at, (case, findings, open, says)) in (2..).zip(cases) {
        let seq = post(HEAD_B, at, findings);
        if says {
            latest = seq;
        }
        assert_eq!(open_and_latest(), (sorted(open), Some(latest)), "{case}");
    }
    // F1 was open all along: raised twice, a repeat when asked of the next head.
    let asked = check(&server, repo, 8, HEAD_C, &[F1, F2]);
    let status: Vec<&str> = asked.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["repeat", "reopened"], "{}", asked.text);
    assert_eq!(asked.json["findings"][0]["times_raised"], 2);

    // An empty list: the audit found nothing, so nothing is open.
    let empty = post(HEAD_C, 9, Some(json!([])));
    assert_eq!(open_and_latest(), (Vec::new(), Some(empty)));
    assert_eq!(list(&server, repo, 8, "resolved").len(), 2);
}

#[test]
fn findings_page_by_cursor() {
    let server = InProcessServer::start();
    let many: Vec<F> = (0..7)
        .map(|i| -> F {
            let summary: &'static str =
                Box::leak(format!("function handler_{i} ignores its error").into_boxed_str());
            ("static", "warn", summary)
        })
        .collect();
    post_verdict(&server, verdict(None, 3, HEAD_A, 1, &many[..4]));
    post_verdict(&server, verdict(None, 3, HEAD_B, 2, &many[3..]));
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let a = server.get(&format!("/prs/3/findings?limit=3{cursor}"));
        assert_eq!(a.status, 200, "{}", a.text);
        for f in a.json["findings"].as_array().unwrap() {
            seen.push((
                f["last_seen"]["seq"].as_u64().unwrap(),
                f["summary"].as_str().unwrap().to_owned(),
            ));
        }
        match a.json["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "{seen:?}");
    assert_eq!(
        seen.iter().filter(|(_, s)| s.contains("handler_")).count(),
        7
    );
}

/// A dismissal sticks to the remembered finding it matched, however that finding is reworded
/// next: dismissed when raised as W1 (a rewording of the dismissal's W0), it is dismissed when
/// raised next as W2, a rewording of W1 that W0 alone does not match. At 21d1c4f push 2 was a
/// `repeat` (and W1 checked again `dismissed`): the answer changed with the day's wording
/// (found by a review of the review memory).
#[test]
fn a_dismissal_sticks_to_the_finding_through_its_rewordings() {
    let server = InProcessServer::start();
    const W0: F = (
        "security",
        "warn",
        "the session cookie is set without the Secure flag in login_handler",
    );
    const W1: F = (
        "security",
        "warn",
        "login_handler sets the session cookie without the Secure attribute",
    );
    const W2: F = (
        "security",
        "warn",
        "login_handler sets the session cookie without the Secure attribute, over HTTP",
    );
    // Linked to W1 by the memory (0.77), and to W0 (0.83) through W1: names HttpOnly besides.
    const BROADER: F = (
        "security",
        "warn",
        "login_handler issues its session cookie without Secure or HttpOnly attributes",
    );
    let repo = Some(REPO);
    let stored = dismiss(
        &server,
        json!({"repo": REPO, "finding": {"check": W0.0, "severity": W0.1, "summary": W0.2}, "reason": "internal-only service, no TLS", "by": "ana"}),
        None,
    );
    assert_eq!(stored.status, 201, "{}", stored.text);
    assert_eq!(
        statuses(&check(&server, repo, 7, HEAD_A, &[W1])),
        ["dismissed"]
    );
    post_verdict(&server, verdict(repo, 7, HEAD_A, 1, &[W1]));
    // W2 rewords W1 (0.92), which rewords W0 (0.83); W0 alone is below dismissal grade (0.77).
    let second = check(&server, repo, 7, HEAD_B, &[W2]);
    assert_eq!(statuses(&second), ["dismissed"], "{}", second.text);
    assert_eq!(second.json["findings"][0]["dismissal"]["summary"], W0.2);
    // A link below dismissal grade silences nothing: the finding keeps its status and says
    // which dismissal it resembles, and how closely.
    let broader = check(&server, repo, 7, HEAD_B, &[BROADER]);
    assert_eq!(statuses(&broader), ["repeat"], "{}", broader.text);
    let broader = &broader.json["findings"][0];
    assert!(broader.get("dismissal").is_none(), "{broader}");
    assert_eq!(broader["resembled_dismissal"]["summary"], W0.2);
    assert_eq!(broader["resembled_dismissal"]["match"]["tier"], "similar");
    post_verdict(&server, verdict(repo, 7, HEAD_B, 2, &[W2]));
    assert_eq!(
        statuses(&check(&server, repo, 7, HEAD_C, &[W2])),
        ["dismissed"]
    );
    // Raised, the broader finding is the remembered one's latest wording, known by its
    // fingerprint; still only a resemblance, as the memory's link to it was (0.77).
    post_verdict(&server, verdict(repo, 7, HEAD_C, 3, &[BROADER]));
    let head_d = "dddddddd00000000000000000000000000000004";
    let raised = check(&server, repo, 7, head_d, &[BROADER]);
    assert_eq!(statuses(&raised), ["repeat"], "{}", raised.text);
    assert_eq!(
        raised.json["findings"][0]["resembled_dismissal"]["summary"],
        W0.2
    );
    // Another PR, where W2 is raised first: nothing remembered links it to W0.
    assert_eq!(statuses(&check(&server, repo, 8, HEAD_A, &[W2])), ["new"]);
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

/// What the memory holds as block is treated as block, however the finding is named or asked
/// of (four faults a hostile review of 8b1b6ec found): a confirmed dismissal by fingerprint of
/// a finding raised as block in one PR of the repository and as a warning in another was
/// recorded as a warning and silenced nothing; a finding given twice in one audit, as warn then
/// block, was remembered as warn; a check without a severity was silenced by a warning's
/// dismissal; and the head of the latest audit was not "raised on head" past 64 heads.
#[test]
fn what_the_memory_holds_as_block_is_treated_as_block() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    const SQL: &str = "the SQL query in users.ts is built from the request's name parameter";
    let fp = Fingerprint::of("security", SQL).to_string();
    let as_given =
        |severity: &str| json!({"check": "security", "severity": severity, "summary": SQL});
    let audit = |pr: u64, head: &str, at: u32, findings: Value| {
        let mut body: Value = serde_json::from_str(&verdict(repo, pr, head, at, &[])).unwrap();
        body["findings"] = findings;
        post_verdict(&server, body.to_string());
    };
    let asked = |pr: u64, finding: Value| {
        let body = json!({"repo": REPO, "head_sha": HEAD_C, "findings": [finding]});
        let a = server.post_json(&format!("/prs/{pr}/findings/check"), body.to_string());
        assert_eq!(a.status, 200, "{}", a.text);
        a.json["findings"][0].clone()
    };

    // A warning in PR 3, block in PR 5: dismissed repository-wide by fingerprint.
    audit(3, HEAD_A, 1, json!([as_given("warn")]));
    audit(5, HEAD_A, 2, json!([as_given("block")]));
    let by_fp = |confirm: bool| {
        let body = json!({"repo": REPO, "fingerprint": fp, "reason": "r", "by": "ana", "confirm": confirm});
        dismiss(&server, body, None)
    };
    assert_eq!(by_fp(false).status, 422);
    let confirmed = by_fp(true);
    assert_eq!(confirmed.status, 201, "{}", confirmed.text);
    assert_eq!(confirmed.json["severity"], "block", "{}", confirmed.text);
    assert_eq!(asked(5, as_given("block"))["status"], "dismissed");
    assert_eq!(
        revoke(&server, confirmed.json["id"].as_u64().unwrap()).status,
        200
    );

    // Given twice in one audit, as warn then block: remembered as block.
    audit(
        7,
        HEAD_A,
        3,
        json!([as_given("warn"), {"check": "security", "severity": "block", "summary": format!("{SQL}.")}]),
    );
    let listed = list(&server, repo, 7, "all");
    assert_eq!(listed[0]["severity"], "block", "{listed:?}");
    // Two wordings the memory links, in one audit, as warn then block: block too (a second
    // review's).
    let f = |(check, _, summary): F, severity: &str| json!({"check": check, "severity": severity, "summary": summary});
    audit(11, HEAD_A, 50, json!([f(F3, "block")]));
    audit(11, HEAD_B, 51, json!([f(F3_REWORDED, "block")]));
    audit(
        11,
        HEAD_C,
        52,
        json!([f(F3, "warn"), f(F3_REWORDED, "block")]),
    );
    let listed = list(&server, repo, 11, "all");
    assert_eq!(
        (listed.len(), &listed[0]["severity"]),
        (1, &json!("block")),
        "{listed:?}"
    );

    // Dismissed in PR 6 while a warning, then raised as block: a check that gives no
    // severity is not silenced by the warning's dismissal.
    audit(6, HEAD_A, 4, json!([as_given("warn")]));
    let body = json!({"repo": REPO, "pr_number": 6, "fingerprint": fp, "reason": "r", "by": "ana"});
    let warned = dismiss(&server, body, None);
    assert_eq!(warned.status, 201, "{}", warned.text);
    assert_eq!(
        asked(6, json!({"check": "security", "summary": SQL}))["status"],
        "dismissed"
    );
    audit(6, HEAD_B, 5, json!([as_given("block")]));
    for finding in [
        as_given("block"),
        json!({"check": "security", "summary": SQL}),
    ] {
        let answer = asked(6, finding);
        assert_eq!(answer["status"], "repeat", "{answer}");
        assert_eq!(answer["resembled_dismissal"]["id"], warned.json["id"]);
    }

    // 66 pushes of PR 9, each raising it: the latest head raised it.
    let heads: Vec<String> = (0..66)
        .map(|i| format!("{i:08x}{}", "9".repeat(32)))
        .collect();
    for (i, head) in heads.iter().enumerate() {
        audit(9, head, 6 + i as u32 % 50, json!([as_given("warn")]));
    }
    for head in [&heads[0], &heads[65]] {
        let body = json!({"repo": REPO, "head_sha": head, "findings": [as_given("warn")]});
        let a = server.post_json("/prs/9/findings/check", body.to_string());
        assert_eq!(
            a.json["findings"][0]["raised_on_head"], true,
            "{head}: {}",
            a.text
        );
    }
}

const DOCS: F = ("static", "info", "diff touches docs/PLAN.md");
const DOCS_REWORDED: F = (
    "static",
    "info",
    "the diff touches the plan in docs/PLAN.md",
);

/// A block finding is silenced only by a confirmed dismissal, however it is named. It could be
/// dismissed without confirming by giving it with a lower severity, by a rewording, or while
/// it was still a warning (found by a hostile review).
#[test]
fn a_block_finding_is_silenced_only_by_a_confirmed_dismissal() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    const WAS_WARN: F = ("tests", "warn", "no test covers the token refresh path");
    const NOW_BLOCK: F = ("tests", "block", "no test covers the token refresh path");
    post_verdict(&server, verdict(repo, 5, HEAD_A, 1, &[F3, WAS_WARN]));
    let as_warn = |f: F| json!({"check": f.0, "severity": "warn", "summary": f.2});
    // (what names it, confirm, status; then the finding's status on the next push)
    let body = |named: Value, confirm: bool| {
        let mut b = json!({"repo": REPO, "pr_number": 5, "reason": "r", "by": "ana"});
        let key = if named.is_string() {
            "fingerprint"
        } else {
            "finding"
        };
        b[key] = named;
        if confirm {
            b["confirm"] = json!(true);
        }
        b
    };
    let f3_fp = Fingerprint::of(F3.0, F3.2).to_string();
    let refused: [(&str, Value); 3] = [
        ("by fingerprint", json!(f3_fp)),
        ("as a warning", as_warn(F3)),
        (
            "without a severity",
            json!({"check": F3.0, "summary": F3.2.to_uppercase()}),
        ),
    ];
    for (how, named) in refused {
        let answer = dismiss(&server, body(named, false), None);
        assert_eq!(answer.status, 422, "{how}: {}", answer.text);
        assert_eq!(answer.json["field"], "confirm", "{how}");
    }
    // A rewording the memory does not hold is stored unconfirmed, and the warning now raised
    // as block was dismissed as a warning: neither silences the block finding.
    for named in [as_warn(F3_REWORDED), as_warn(WAS_WARN)] {
        let answer = dismiss(&server, body(named, false), None);
        assert_eq!(answer.status, 201, "{}", answer.text);
    }
    let unconfirmed = check(&server, repo, 5, HEAD_B, &[F3, NOW_BLOCK]);
    assert_eq!(statuses(&unconfirmed), ["repeat", "repeat"]);
    // Each resembles the dismissal it escapes: the warning dismissed by its own fingerprint.
    let resembled = &unconfirmed.json["findings"][1]["resembled_dismissal"];
    assert_eq!(
        (&resembled["summary"], &resembled["match"]["tier"]),
        (&json!(WAS_WARN.2), &json!("exact")),
        "{}",
        unconfirmed.text
    );
    // Confirmed, a dismissal given as a warning is recorded as block, and silences it.
    let confirmed = dismiss(&server, body(as_warn(F3), true), None);
    assert_eq!(
        (confirmed.status, &confirmed.json["severity"]),
        (201, &json!("block")),
        "{}",
        confirmed.text
    );
    assert_eq!(
        statuses(&check(&server, repo, 5, HEAD_B, &[F3, NOW_BLOCK])),
        ["dismissed", "repeat"]
    );
}

/// A dismissal named by a fingerprint records the wording that fingerprint is of: the
/// finding's latest, or its first (read from the audit that first raised it), and for a
/// wording in between, none (that fingerprint alone is dismissed). At 11cb16f it recorded the
/// memory's latest wording whatever the fingerprint named, and the memory links wordings of
/// either negation: dismissing "verification is disabled" by its fingerprint, after a push
/// raised "is not disabled", silenced every rewording of "not disabled" and none of
/// "disabled" (a review's).
#[test]
fn a_dismissal_by_fingerprint_records_the_wording_it_names() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    const IS: F = (
        "security",
        "warn",
        "TLS certificate verification is disabled in the payments client",
    );
    const IS_NOT: F = (
        "security",
        "warn",
        "TLS certificate verification is not disabled in the payments client",
    );
    const IS_REWORDED: F = (
        "security",
        "warn",
        "TLS certificate verification disabled in the payments client",
    );
    const IS_NOT_REWORDED: F = (
        "security",
        "warn",
        "TLS certificate verification not disabled in payments client",
    );
    post_verdict(&server, verdict(repo, 3, HEAD_A, 1, &[IS]));
    post_verdict(&server, verdict(repo, 3, HEAD_B, 2, &[IS_NOT]));
    assert_eq!(
        summary_of(&list(&server, repo, 3, "all"))
            .keys()
            .collect::<Vec<_>>(),
        [IS_NOT.2],
        "the memory links the two wordings"
    );
    let fp = |f: F| Fingerprint::of(f.0, f.2).to_string();
    let by_fingerprint = |pr: u64, f: F| {
        let body = json!({"repo": REPO, "pr_number": pr, "fingerprint": fp(f),
            "reason": "r", "by": "ana"});
        let answer = dismiss(&server, body, None);
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer
    };
    let first = by_fingerprint(3, IS);
    assert_eq!(first.json["summary"], IS.2, "{}", first.text);
    let dismissed = |found: &Answer| -> Vec<bool> {
        statuses(found).iter().map(|s| s == "dismissed").collect()
    };
    let found = check(
        &server,
        repo,
        3,
        HEAD_C,
        &[IS_REWORDED, IS_NOT_REWORDED, IS_NOT],
    );
    assert_eq!(dismissed(&found), [true, false, false], "{}", found.text);
    // The latest wording, named by its own fingerprint, in another PR.
    post_verdict(&server, verdict(repo, 4, HEAD_A, 1, &[IS]));
    post_verdict(&server, verdict(repo, 4, HEAD_B, 2, &[IS_NOT]));
    assert_eq!(by_fingerprint(4, IS_NOT).json["summary"], IS_NOT.2);
    let found = check(&server, repo, 4, HEAD_C, &[IS_NOT_REWORDED, IS_REWORDED]);
    assert_eq!(dismissed(&found), [true, false], "{}", found.text);
    // A wording in between (raised second, then reworded again): its fingerprint alone.
    post_verdict(&server, verdict(repo, 5, HEAD_A, 1, &[F3]));
    post_verdict(&server, verdict(repo, 5, HEAD_B, 2, &[F3_REWORDED]));
    post_verdict(&server, verdict(repo, 5, HEAD_C, 3, &[F3_AGAIN]));
    let body = json!({"repo": REPO, "pr_number": 5, "fingerprint": fp(F3_REWORDED),
        "reason": "r", "by": "ana", "confirm": true});
    let between = dismiss(&server, body, None);
    assert_eq!(
        (
            between.status,
            &between.json["summary"],
            &between.json["severity"]
        ),
        (201, &Value::Null, &json!("block")),
        "{}",
        between.text
    );
}

/// A confirmed dismissal of a finding that has become block replaces the warning's dismissal
/// of it in the same scope (which does not silence it raised as block): the old one is
/// revoked, the new one stored and applied. At 11cb16f it was answered 200 as a duplicate of
/// the warning's, with its reason, and nothing changed: only revoking first worked.
#[test]
fn a_confirmed_dismissal_replaces_a_warnings_in_its_scope() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    const WAS_WARN: F = ("tests", "warn", "no test covers the token refresh path");
    const NOW_BLOCK: F = ("tests", "block", "no test covers the token refresh path");
    post_verdict(&server, verdict(repo, 6, HEAD_A, 1, &[WAS_WARN]));
    let body = |confirm: bool, reason: &str| {
        json!({"repo": REPO, "pr_number": 6, "fingerprint": Fingerprint::of(WAS_WARN.0, WAS_WARN.2).to_string(),
            "reason": reason, "by": "ana", "confirm": confirm})
    };
    let warned = dismiss(&server, body(false, "internal only"), None);
    assert_eq!(warned.status, 201, "{}", warned.text);
    post_verdict(&server, verdict(repo, 6, HEAD_B, 2, &[NOW_BLOCK]));
    assert_eq!(
        statuses(&check(&server, repo, 6, HEAD_C, &[NOW_BLOCK])),
        ["repeat"]
    );
    let unconfirmed = dismiss(&server, body(false, "still internal"), None);
    assert_eq!(unconfirmed.status, 422, "{}", unconfirmed.text);
    let confirmed = dismiss(&server, body(true, "internal, confirmed"), None);
    assert_eq!(
        (
            confirmed.status,
            &confirmed.json["severity"],
            &confirmed.json["reason"]
        ),
        (201, &json!("block"), &json!("internal, confirmed")),
        "{}",
        confirmed.text
    );
    assert_ne!(confirmed.json["id"], warned.json["id"]);
    assert_eq!(
        statuses(&check(&server, repo, 6, HEAD_C, &[NOW_BLOCK])),
        ["dismissed"]
    );
    let live = server.get("/findings/dismissals?repo=gitea%3Ateam%2Fapp&pr_number=6");
    assert_eq!(live.json["count"], 1, "{}", live.text);
    assert_eq!(live.json["dismissals"][0]["id"], confirmed.json["id"]);
    let again = dismiss(&server, body(true, "once more"), None);
    assert_eq!(
        (again.status, &again.json["id"], &again.json["duplicate"]),
        (200, &confirmed.json["id"], &json!(true)),
        "{}",
        again.text
    );
}

/// A verdict's severities are remembered trimmed and in lowercase, as requests give them: a
/// finding raised as `BLOCK` needs a confirmed dismissal, and a check that gives `block` is
/// silenced by it. At 11cb16f `BLOCK` was remembered as written: dismissed by fingerprint
/// without `confirm`, recorded as `BLOCK`, it silenced a check without a severity and not one
/// with `block` (a review's).
#[test]
fn severities_are_remembered_in_lowercase() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    const SHOUTED: F = (
        "security",
        " BLOCK",
        "AWS secret access key committed in deploy/prod.env",
    );
    const AS_CHECKED: F = ("security", "block", SHOUTED.2);
    post_verdict(&server, verdict(repo, 9, HEAD_A, 1, &[SHOUTED]));
    let remembered = list(&server, repo, 9, "all");
    assert_eq!(remembered[0]["severity"], "block", "{remembered:?}");
    let body = |confirm: bool| {
        json!({"repo": REPO, "fingerprint": Fingerprint::of(SHOUTED.0, SHOUTED.2).to_string(),
            "reason": "a test fixture's key", "by": "ana", "confirm": confirm})
    };
    let unconfirmed = dismiss(&server, body(false), None);
    assert_eq!(unconfirmed.status, 422, "{}", unconfirmed.text);
    let confirmed = dismiss(&server, body(true), None);
    assert_eq!(confirmed.json["severity"], "block", "{}", confirmed.text);
    assert_eq!(
        statuses(&check(&server, repo, 9, HEAD_B, &[AS_CHECKED])),
        ["dismissed"]
    );
}

/// A dismissal applies to the PR it names, or to every PR of its repository, and to no other
/// repository; a rewording of the dismissed finding is dismissed too; the same dismissal twice
/// is one; a block finding needs confirming; revoking stops it; all of it survives a restart.
#[test]
fn dismissals_apply_to_their_scope_and_stop_applying_when_revoked() {
    let mut server = InProcessServer::start();
    let repo = Some(REPO);
    post_verdict(&server, verdict(repo, 1, HEAD_A, 1, &[DOCS, F3]));
    post_verdict(&server, verdict(repo, 2, HEAD_A, 2, &[DOCS]));
    post_verdict(&server, verdict(Some(OTHER_REPO), 2, HEAD_A, 3, &[DOCS]));
    let docs_fp = Fingerprint::of(DOCS.0, DOCS.2).to_string();

    // PR 1 only, by fingerprint; the memory supplies the wording.
    let body = json!({"repo": REPO, "pr_number": 1, "fingerprint": docs_fp, "reason": "plan edits are expected", "by": "ana"});
    let first = dismiss(&server, body.clone(), None);
    assert_eq!(first.status, 201, "{}", first.text);
    let pr_scoped = first.json["id"].as_u64().unwrap();
    assert_eq!(
        (
            &first.json["scope"],
            &first.json["summary"],
            &first.json["duplicate"]
        ),
        (&json!("pr"), &json!(DOCS.2), &json!(false))
    );
    let again = dismiss(
        &server,
        json!({"repo": REPO, "pr_number": 1, "fingerprint": docs_fp, "reason": "said twice", "by": "bo"}),
        None,
    );
    assert_eq!(
        (
            again.status,
            again.json["id"].as_u64(),
            &again.json["duplicate"]
        ),
        (200, Some(pr_scoped), &json!(true)),
        "{}",
        again.text
    );
    assert_eq!(again.json["reason"], "plan edits are expected");
    // A key first used on that duplicate names it: another dismissal under the key is refused.
    let keyed = dismiss(&server, body.clone(), Some("dismiss-dup-1"));
    assert_eq!(
        (keyed.status, keyed.json["id"].as_u64()),
        (200, Some(pr_scoped)),
        "{}",
        keyed.text
    );
    let other =
        json!({"repo": REPO, "pr_number": 2, "fingerprint": docs_fp, "reason": "x", "by": "bo"});
    let other = dismiss(&server, other, Some("dismiss-dup-1"));
    assert_eq!(other.status, 422, "{}", other.text);
    assert_eq!(other.json["field"], "idempotency-key", "{}", other.text);

    let pr1 = check(&server, repo, 1, HEAD_B, &[DOCS, DOCS_REWORDED]);
    assert_eq!(statuses(&pr1), ["dismissed", "dismissed"], "{}", pr1.text);
    let applied = &pr1.json["findings"][0]["dismissal"];
    assert_eq!(
        (applied["id"].as_u64(), &applied["match"]["tier"]),
        (Some(pr_scoped), &json!("exact"))
    );
    // Matched by a rewording, the answer says what was dismissed: the dismissal's own wording,
    // not the checked one (absent at 2da52cd).
    let reworded = &pr1.json["findings"][1]["dismissal"];
    assert_eq!(reworded["match"]["tier"], "similar");
    assert_eq!(
        (&reworded["summary"], &pr1.json["findings"][1]["summary"]),
        (&json!(DOCS.2), &json!(DOCS_REWORDED.2)),
        "{}",
        pr1.text
    );
    assert_eq!(
        statuses(&check(&server, repo, 2, HEAD_B, &[DOCS])),
        ["repeat"]
    );

    // The whole repository, by the finding as written (it normalises to the same fingerprint),
    // with an idempotency key: a retry is the same answer.
    let repo_wide = json!({"repo": REPO, "finding": {"check": "Static", "severity": "info", "summary": "Diff touches `docs/PLAN.md`."}, "reason": "never relevant", "by": "ana"});
    let stored = dismiss(&server, repo_wide.clone(), Some("dismiss-docs-1"));
    assert_eq!(stored.status, 201, "{}", stored.text);
    let repo_scoped = stored.json["id"].as_u64().unwrap();
    assert_eq!(
        (
            &stored.json["scope"],
            &stored.json["pr_number"],
            &stored.json["fingerprint"]
        ),
        (&json!("repo"), &Value::Null, &json!(docs_fp))
    );
    let retried = dismiss(&server, repo_wide, Some("dismiss-docs-1"));
    assert_eq!(
        (retried.status, retried.json["id"].as_u64()),
        (200, Some(repo_scoped))
    );
    assert_eq!(
        statuses(&check(&server, repo, 2, HEAD_B, &[DOCS])),
        ["dismissed"]
    );
    // The PR's own dismissal comes first where both apply.
    let both = check(&server, repo, 1, HEAD_B, &[DOCS]);
    assert_eq!(
        both.json["findings"][0]["dismissal"]["id"].as_u64(),
        Some(pr_scoped)
    );
    // Never another repository's.
    assert_eq!(
        statuses(&check(&server, Some(OTHER_REPO), 2, HEAD_B, &[DOCS])),
        ["repeat"]
    );

    // A block finding needs confirming.
    let f3_fp = Fingerprint::of(F3.0, F3.2).to_string();
    let unconfirmed = dismiss(
        &server,
        json!({"repo": REPO, "pr_number": 1, "fingerprint": f3_fp, "reason": "false positive", "by": "ana"}),
        None,
    );
    assert_error(&unconfirmed, 422, "confirm", "block finding");
    let by_finding = dismiss(
        &server,
        json!({"repo": REPO, "finding": {"check": F3.0, "severity": "block", "summary": F3.2}, "reason": "x", "by": "ana"}),
        None,
    );
    assert_error(&by_finding, 422, "confirm", "confirm");
    let confirmed = dismiss(
        &server,
        json!({"repo": REPO, "pr_number": 1, "fingerprint": f3_fp, "reason": "false positive", "by": "ana", "confirm": true}),
        None,
    );
    assert_eq!(confirmed.status, 201, "{}", confirmed.text);
    assert_eq!(confirmed.json["severity"], "block");

    let listed = server.get(&format!("/findings/dismissals?{}", &repo_param(repo)[1..]));
    assert_eq!(listed.status, 200, "{}", listed.text);
    let ids: Vec<u64> = listed.json["dismissals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            confirmed.json["id"].as_u64().unwrap(),
            repo_scoped,
            pr_scoped
        ]
    );
    let for_pr2 = server.get(&format!(
        "/findings/dismissals?pr_number=2{}",
        repo_param(repo)
    ));
    let ids: Vec<u64> = for_pr2.json["dismissals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [repo_scoped]);
    let paged = server.get(&format!("/findings/dismissals?limit=2{}", repo_param(repo)));
    let next = paged.json["next_cursor"].as_str().unwrap().to_owned();
    let rest = server.get(&format!(
        "/findings/dismissals?limit=2&cursor={next}{}",
        repo_param(repo)
    ));
    assert_eq!(rest.json["dismissals"][0]["id"].as_u64(), Some(pr_scoped));
    assert_eq!(rest.json.get("next_cursor"), None);
    assert_eq!(server.get("/findings/dismissals").json["count"], 0);

    // Revoked: it stops applying, at once and for good; revoking again changes nothing.
    let revoked = revoke(&server, repo_scoped);
    assert_eq!(
        (revoked.status, &revoked.json["revoked_now"]),
        (200, &json!(true)),
        "{}",
        revoked.text
    );
    assert!(revoked.json["revoked_at"].is_string());
    let twice = revoke(&server, repo_scoped);
    assert_eq!(
        (twice.status, &twice.json["revoked_now"]),
        (200, &json!(false))
    );
    assert_not_found(&revoke(&server, 999_999));
    assert_eq!(
        statuses(&check(&server, repo, 2, HEAD_B, &[DOCS])),
        ["repeat"]
    );
    assert_eq!(
        statuses(&check(&server, repo, 1, HEAD_B, &[DOCS])),
        ["dismissed"]
    );
    // A revoked dismissal no longer makes a new one a duplicate.
    let anew = dismiss(
        &server,
        json!({"repo": REPO, "fingerprint": docs_fp, "reason": "again", "by": "bo"}),
        None,
    );
    assert_eq!(anew.status, 201, "{}", anew.text);
    assert_eq!(
        revoke(&server, anew.json["id"].as_u64().unwrap()).status,
        200
    );

    server.stop().unwrap();
    let restarted = InProcessServer::start_in(&server.data, &[]);
    assert_eq!(
        statuses(&check(&restarted, repo, 2, HEAD_C, &[DOCS])),
        ["repeat"]
    );
    assert_eq!(
        statuses(&check(&restarted, repo, 1, HEAD_C, &[DOCS, F3])),
        ["dismissed", "dismissed"]
    );
    let after = restarted.get(&format!("/findings/dismissals?{}", &repo_param(repo)[1..]));
    assert_eq!(after.json["count"], 2, "{}", after.text);
}

/// Dismissals are writes: behind the token, like the other writes; the check is a read.
#[test]
fn dismissals_need_the_token_and_the_check_does_not() {
    let server = InProcessServer::start_with(&["--token", "s3cret"]);
    let body = json!({"fingerprint": "0123456789abcdef", "reason": "r", "by": "b"});
    assert_error(
        &dismiss(&server, body.clone(), None),
        401,
        "authorization",
        "token",
    );
    assert_error(&revoke(&server, 1), 401, "authorization", "token");
    let with_token = answer(
        server
            .client()
            .post(server.url("/findings/dismissals"))
            .header("content-type", "application/json")
            .header("authorization", "Bearer s3cret")
            .body(body.to_string())
            .send()
            .unwrap(),
    );
    assert_eq!(with_token.status, 201, "{}", with_token.text);
    check(&server, None, 1, HEAD_A, &[DOCS]);
    assert_eq!(server.get("/prs/1/findings").status, 200);
}

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
            json!({"head_sha": HEAD_A, "findings": [{"check": "static", "summary": "x", "severity": "high"}]}),
            400,
            "findings[0].severity",
            "block, warn, info",
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

const REWORDINGS: &str = include_str!("../fixtures/findings/rewordings.tsv");
const DIFFERENT: &str = include_str!("../fixtures/findings/different.tsv");
const HOLDOUT_REWORDINGS: &str = include_str!("../fixtures/findings/holdout_rewordings.tsv");
const HOLDOUT_DIFFERENT: &str = include_str!("../fixtures/findings/holdout_different.tsv");

/// The floors the issue sets; the test fails beyond them.
const MIN_RECOGNISED: f64 = 0.95;
const MAX_WRONGLY_MATCHED: f64 = 0.02;

/// `(id, check, earlier, later)` rows of a labelled file.
fn rows(text: &str) -> Vec<(String, String, String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "{l:?}");
            (f[0].into(), f[1].into(), f[2].into(), f[3].into())
        })
        .collect()
}

fn labelled_verdict(pr: u64, findings: &[(&str, &str)]) -> Put {
    let body = json!({
        "pr_number": pr, "head_sha": HEAD_A, "overall": "request_changes", "one_liner": "x",
        "findings": findings.iter().map(|(c, s)| json!({"check": c, "severity": "warn", "summary": s})).collect::<Vec<_>>(),
        "metrics": {"findings_block": 0, "findings_warn": findings.len()},
        "audited_at": "2026-06-01T00:00:00.000Z",
    });
    Put::from(verdict_record(body.to_string().as_bytes(), 1).unwrap())
}

/// For each pair of files: every rewording checked against a PR whose one audit raised the
/// earlier wording and, beside it, the different finding of the same row (so a rewording must
/// find the right one of two findings of its check), and every different finding checked
/// against a PR whose audit raised the earlier wording alone. Returns (recognised, rewordings,
/// wrongly matched, different findings, the failures).
fn evaluate(
    store: &Store,
    first_pr: u64,
    rewordings: &str,
    different: &str,
) -> (usize, usize, usize, usize, Vec<String>) {
    let rewordings = rows(rewordings);
    let different: BTreeMap<String, (String, String, String, String)> = rows(different)
        .into_iter()
        .map(|r| (r.0.clone(), r))
        .collect();
    let mut puts = Vec::new();
    let mut asks = Vec::new();
    let mut pr = first_pr;
    for (id, check, earlier, later) in &rewordings {
        let decoy = different
            .get(id)
            .filter(|d| &d.2 == earlier)
            .map(|d| d.3.as_str());
        let mut raised = vec![(check.as_str(), earlier.as_str())];
        raised.extend(decoy.map(|d| (check.as_str(), d)));
        puts.push(labelled_verdict(pr, &raised));
        asks.push((
            pr,
            true,
            id.clone(),
            check.clone(),
            earlier.clone(),
            later.clone(),
        ));
        pr += 1;
    }
    for (id, check, earlier, other) in different.values() {
        puts.push(labelled_verdict(pr, &[(check.as_str(), earlier.as_str())]));
        asks.push((
            pr,
            false,
            id.clone(),
            check.clone(),
            earlier.clone(),
            other.clone(),
        ));
        pr += 1;
    }
    store.write(&puts).unwrap();
    let (mut recognised, mut n_rewordings, mut wrong, mut n_different) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for (pr, reworded, id, check, earlier, later) in asks {
        let answer = store
            .check_findings(
                &FindingsCheck {
                    repo: Repo::default(),
                    pr_number: pr,
                    findings: vec![Finding::new(&check, "warn", &later)],
                },
                &mut ReadBudget::unlimited(),
            )
            .unwrap();
        let matched = answer[0].matched;
        let earlier_fp = Fingerprint::of(&check, &earlier).0;
        if reworded {
            n_rewordings += 1;
            if matched.canonical() == Some(earlier_fp) {
                recognised += 1;
            } else {
                failures.push(format!(
                    "rewording {id} not recognised ({matched:?}): {earlier} / {later}"
                ));
            }
        } else {
            n_different += 1;
            if matched != Match::New {
                wrong += 1;
                failures.push(format!(
                    "different {id} matched ({matched:?}): {earlier} / {later}"
                ));
            }
        }
    }
    (recognised, n_rewordings, wrong, n_different, failures)
}

#[test]
fn rewordings_are_recognised_and_different_findings_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
    let dev = evaluate(&store, 1, REWORDINGS, DIFFERENT);
    let held_out = evaluate(&store, 10_000, HOLDOUT_REWORDINGS, HOLDOUT_DIFFERENT);
    // Reported with the test's output (`cargo test -- --nocapture`).
    for (name, (r, n_r, w, n_d, _)) in [("rewordings/different", &dev), ("holdout", &held_out)] {
        println!(
            "findings {name}: rewordings recognised {r}/{n_r}, different findings matched {w}/{n_d}"
        );
    }
    let recognised = (dev.0 + held_out.0) as f64 / (dev.1 + held_out.1) as f64;
    let wrong = (dev.2 + held_out.2) as f64 / (dev.3 + held_out.3) as f64;
    println!(
        "findings, all: rewordings recognised {:.1}%, different findings matched {:.1}%",
        recognised * 100.0,
        wrong * 100.0
    );
    let failures: Vec<&String> = dev.4.iter().chain(&held_out.4).collect();
    assert!(
        recognised >= MIN_RECOGNISED && wrong <= MAX_WRONGLY_MATCHED,
        "recognised {:.3} (floor {MIN_RECOGNISED}), wrongly matched {:.3} (ceiling {MAX_WRONGLY_MATCHED}): {failures:#?}",
        recognised,
        wrong
    );
    assert!(dev.1 >= 100 && dev.3 >= 100);
}

/// The floors for dismissals, which silence a rewording only on stronger evidence than the
/// memory links one on (`DISMISSAL_THRESHOLD`): most rewordings of a dismissed finding stay
/// silenced, nearly all at least say which dismissal they resemble, and a different finding is
/// not silenced.
const MIN_SILENCED: f64 = 0.75;
const MIN_SILENCED_OR_RESEMBLED: f64 = 0.95;
const MAX_WRONGLY_SILENCED: f64 = 0.01;

/// Each labelled pair as a team meets it: a PR's audit raises the earlier wording, the team
/// dismisses it in that PR, the next push raises the later wording. Rewordings should stay
/// silenced; different findings, and the near misses a review found beside the sets (one word
/// of a short finding swapped for another, or a negation dropped, which the similarity does not
/// see), must not be.
#[test]
fn a_dismissal_silences_rewordings_and_never_a_different_finding() {
    let server = InProcessServer::start_with(&["--export-interval", "0"]);
    let near_misses: [F; 8] = [
        (
            "security",
            "password is not hashed before storage in create_user",
            "password is hashed before storage in create_user",
        ),
        (
            "security",
            "TLS verification disabled",
            "TLS verification enabled",
        ),
        (
            "security",
            "admin routes are missing authentication",
            "admin routes are missing authorization checks",
        ),
        (
            "security",
            "missing authentication",
            "missing authorization",
        ),
        (
            "input",
            "does not validate the file size",
            "does not validate the file type",
        ),
        (
            "security",
            "user input reaches eval",
            "user input reaches exec",
        ),
        (
            "logging",
            "secrets logged at debug level",
            "secrets logged at info level",
        ),
        ("deps", "upgrade react", "downgrade react"),
    ];
    let mut pr = 0;
    let mut outcome = |kind: &'static str, earlier: &'static str, later: &'static str| {
        pr += 1;
        post_verdict(
            &server,
            verdict(Some(REPO), pr, HEAD_A, 1, &[(kind, "warn", earlier)]),
        );
        let dismissed = dismiss(
            &server,
            json!({"repo": REPO, "pr_number": pr, "finding": {"check": kind, "severity": "warn", "summary": earlier}, "reason": "does not apply", "by": "ana"}),
            None,
        );
        assert_eq!(dismissed.status, 201, "{}", dismissed.text);
        let a = check(&server, Some(REPO), pr, HEAD_B, &[(kind, "warn", later)]);
        let finding = &a.json["findings"][0];
        let first = (
            finding["status"] == "dismissed",
            finding.get("resembled_dismissal").is_some(),
        );
        // Raised: the memory now knows the later wording by its fingerprint, as the remembered
        // finding the dismissal names. The next push raising it again is judged the same way.
        post_verdict(
            &server,
            verdict(Some(REPO), pr, HEAD_B, 2, &[(kind, "warn", later)]),
        );
        let again = check(&server, Some(REPO), pr, HEAD_C, &[(kind, "warn", later)]);
        let again = again.json["findings"][0]["status"] == "dismissed";
        (first.0, first.1, again)
    };
    let (mut silenced, mut resembled, mut rewordings) = (0, 0, 0);
    let (mut wrongly, mut different) = (0, 0);
    let mut failures = Vec::new();
    for (file, is_rewording) in [
        (REWORDINGS, true),
        (DIFFERENT, false),
        (HOLDOUT_REWORDINGS, true),
        (HOLDOUT_DIFFERENT, false),
    ] {
        for line in file
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let f: Vec<&'static str> = line.split('\t').collect();
            let (is_silenced, is_resembled, again) = outcome(f[1], f[2], f[3]);
            if is_rewording {
                rewordings += 1;
                silenced += usize::from(is_silenced);
                resembled += usize::from(is_silenced || is_resembled);
                assert_eq!(again, is_silenced, "rewording {}, raised again", f[0]);
            } else {
                different += 1;
                if is_silenced || again {
                    wrongly += 1;
                    failures.push(format!("different {} silenced: {} / {}", f[0], f[2], f[3]));
                }
            }
        }
    }
    for (check, earlier, later) in near_misses {
        let (is_silenced, _, again) = outcome(check, earlier, later);
        assert!(!is_silenced, "{earlier:?} dismissed silenced {later:?}");
        assert!(
            !again,
            "{earlier:?} dismissed silenced {later:?} once raised"
        );
    }
    println!(
        "dismissals: rewordings silenced {silenced}/{rewordings}, silenced or resembled \
         {resembled}/{rewordings}, different findings silenced {wrongly}/{different}"
    );
    let rate = |n: usize, of: usize| n as f64 / of as f64;
    assert!(
        rate(silenced, rewordings) >= MIN_SILENCED,
        "{silenced}/{rewordings}"
    );
    assert!(
        rate(resembled, rewordings) >= MIN_SILENCED_OR_RESEMBLED,
        "{resembled}/{rewordings}"
    );
    assert!(
        rate(wrongly, different) <= MAX_WRONGLY_SILENCED,
        "{failures:#?}"
    );
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

/// The verdicts of a batch on one PR read its candidates once and keep them up to date through
/// the batch's own writes (`RecentFindings`): the memory written so is the one written a
/// verdict per transaction, and the one `check` rebuilds from the verdicts.
#[test]
fn a_batch_on_one_pr_remembers_what_one_verdict_at_a_time_does() {
    let puts = one_pr_traffic(150);
    let pages = |path: &std::path::Path| {
        let mut store = Store::open(path, StoreOptions::default()).unwrap();
        let report = store.check().unwrap();
        assert!(report.passed(), "{:?}", report.problems);
        [1, 2].map(|pr| {
            let query = FindingsQuery {
                repo: Repo::default(),
                pr_number: pr,
                status: FindingStatus::All,
                below: None,
                limit: 1_000,
            };
            let page = store
                .pr_findings(&query, &mut ReadBudget::unlimited())
                .unwrap();
            assert!(page.next.is_none());
            page.items
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let batched = dir.path().join("batched.redb");
    let one_by_one = dir.path().join("one_by_one.redb");
    {
        let store = Store::open(&batched, StoreOptions::default()).unwrap();
        store.write(&puts).unwrap();
        let store = Store::open(&one_by_one, StoreOptions::default()).unwrap();
        for put in &puts {
            store.write(std::slice::from_ref(put)).unwrap();
        }
    }
    let [pr1, pr2] = pages(&batched);
    assert!(pr1.len() > 600, "{}", pr1.len());
    let similar = pr1.iter().filter(|f| f.value.times_raised > 1).count();
    assert!(
        similar > 100,
        "rewordings and repeats recognised: {similar}"
    );
    assert_eq!([pr1, pr2], pages(&one_by_one));
}

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Every row of the four memory tables, as bytes.
fn memory_rows(path: &std::path::Path) -> [Rows; 4] {
    let db = redb::Database::open(path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    [
        rows_of(&txn, tables::FINDINGS),
        rows_of(&txn, tables::FINDING_FPS),
        rows_of(&txn, tables::FINDINGS_BY_LAST_AUDIT),
        rows_of(&txn, tables::FINDINGS_AUDITS),
    ]
}

fn rows_of<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    table: redb::TableDefinition<K, V>,
) -> Rows {
    use redb::ReadableTable;
    let bytes = |b: &dyn AsRef<[u8]>| b.as_ref().to_vec();
    txn.open_table(table)
        .unwrap()
        .iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (
                bytes(&K::as_bytes(&k.value())),
                bytes(&V::as_bytes(&v.value())),
            )
        })
        .collect()
}

/// The findings memory is derived data: written with the verdicts, it equals what a build
/// from the verdicts gives; a file migrated from schema 5 gets it built on open; a build
/// interrupted part way resumes where it stopped; a memory built under other rules is rebuilt;
/// and `check` finds a damaged or missing entry.
#[test]
fn the_memory_is_built_resumed_rebuilt_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let puts = traffic(300);
    {
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        for chunk in puts.chunks(37) {
            store.write(chunk).unwrap();
        }
    }
    let written = memory_rows(&path);
    assert!(
        written[0].len() >= 10 && written[1].len() > written[0].len(),
        "{} {}",
        written[0].len(),
        written[1].len()
    );
    // Every finding here was last raised by an audit that repeated it (whether the flag says
    // so audit by audit is the history test's below).
    assert!(written[2].iter().all(|(_, v)| v == &[1]));
    let open_and_check = || {
        let mut store = Store::open(&path, StoreOptions::default()).unwrap();
        store.check().unwrap()
    };
    let report = open_and_check();
    assert!(report.passed(), "{:?}", report.problems);
    let edit = |f: &dyn Fn(&redb::WriteTransaction)| {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        f(&txn);
        txn.commit().unwrap();
    };

    // Other rules: rebuilt from scratch on open, to the same rows.
    edit(&|txn| {
        txn.open_table(tables::META)
            .unwrap()
            .insert("findings/rules_version", 999)
            .unwrap();
    });
    assert!(open_and_check().passed());
    assert_eq!(memory_rows(&path), written);

    // Never built (a file just migrated to schema 6): built on open.
    edit(&|txn| {
        clear_memory(txn);
        let mut meta = txn.open_table(tables::META).unwrap();
        meta.remove("findings/rules_version").unwrap();
        meta.remove("findings/analyzer_version").unwrap();
    });
    assert!(open_and_check().passed());
    assert_eq!(memory_rows(&path), written);

    // A build killed after its first transactions: the memory of the verdicts through its
    // mark (what a file holding only those verdicts has), the mark, no version. The next open
    // goes on from the mark to the same memory.
    let half_path = dir.path().join("half.redb");
    let half = 148;
    let through = {
        let store = Store::open(&half_path, StoreOptions::default()).unwrap();
        let mut last = 0;
        for chunk in puts[..half].chunks(37) {
            last = store.write(chunk).unwrap().last().unwrap().seq();
        }
        last
    };
    edit(&|txn| {
        clear_memory(txn);
        copy_memory(&half_path, txn);
        let mut meta = txn.open_table(tables::META).unwrap();
        meta.remove("findings/rules_version").unwrap();
        meta.remove("findings/analyzer_version").unwrap();
        meta.insert("findings/built_through", through).unwrap();
    });
    assert_ne!(memory_rows(&path), written);
    assert!(open_and_check().passed());
    assert_eq!(memory_rows(&path), written);

    // A damaged value and a missing name are both found.
    edit(&|txn| {
        use redb::ReadableTable;
        let mut fps = txn.open_table(tables::FINDING_FPS).unwrap();
        let first = fps.first().unwrap().map(|(k, _)| k.value()).unwrap();
        fps.remove(first).unwrap();
        let mut findings = txn.open_table(tables::FINDINGS).unwrap();
        let (key, value) = findings
            .last()
            .unwrap()
            .map(|(k, v)| (k.value(), v.value().to_vec()))
            .unwrap();
        let mut damaged = value;
        let n = damaged.len();
        damaged[n - 1] ^= 1;
        findings.insert(key, damaged.as_slice()).unwrap();
        let mut by_last = txn.open_table(tables::FINDINGS_BY_LAST_AUDIT).unwrap();
        let (key, flag) = by_last
            .first()
            .unwrap()
            .map(|(k, v)| (k.value(), v.value()))
            .unwrap();
        by_last.insert(key, 1 - flag).unwrap();
        let mut audits = txn.open_table(tables::FINDINGS_AUDITS).unwrap();
        let (key, seq) = audits
            .last()
            .unwrap()
            .map(|(k, v)| (k.value(), v.value()))
            .unwrap();
        audits.insert(key, seq - 1).unwrap();
    });
    let problems = open_and_check().problems;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("in findings_by_last_audit; its audits give")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("should name finding")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("(values differ)")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("finding_fps has")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("findings_audits holds Some")),
        "{problems:?}"
    );
}

/// A file of schema 12 holds the index without its flags (`findings_by_last_seen`), one of
/// schema 14 no `findings_audits` (its open findings were those of the latest verdict). Steps
/// 13 and 15 ask for a rebuild: the store rebuilds the memory on open to what a file written
/// today holds, and `check` passes.
#[test]
fn files_of_older_schemas_get_the_memory_of_today_from_a_rebuild() {
    type MakeOlder = fn(&std::path::Path);
    let cases: [(&str, MakeOlder); 2] = [
        ("schema 12", |path| as_schema_12_left_it(path, None)),
        ("schema 14", as_schema_14_left_it),
    ];
    for (case, make_older) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.redb");
        {
            let store = Store::open(&path, StoreOptions::default()).unwrap();
            for chunk in traffic(120).chunks(37) {
                store.write(chunk).unwrap();
            }
        }
        let written = memory_rows(&path);
        make_older(&path);
        let mut store = Store::open(&path, StoreOptions::default()).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            lakehouse_kb::store::SCHEMA_VERSION
        );
        let report = store.check().unwrap();
        assert!(report.passed(), "{case}: {:?}", report.problems);
        drop(store);
        assert_eq!(memory_rows(&path), written, "{case}");
    }
}

/// Turns the database at `path` back into what schema 14 left: no `findings_audits`, the
/// memory as it was built.
fn as_schema_14_left_it(path: &std::path::Path) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    assert!(txn.delete_table(tables::FINDINGS_AUDITS).unwrap());
    txn.open_table(tables::META)
        .unwrap()
        .insert("schema_version", 14)
        .unwrap();
    txn.commit().unwrap();
}

fn clear_memory(txn: &redb::WriteTransaction) {
    txn.delete_table(tables::FINDINGS).unwrap();
    txn.delete_table(tables::FINDING_FPS).unwrap();
    txn.delete_table(tables::FINDINGS_BY_LAST_AUDIT).unwrap();
    txn.delete_table(tables::FINDINGS_AUDITS).unwrap();
    txn.open_table(tables::FINDINGS).unwrap();
    txn.open_table(tables::FINDING_FPS).unwrap();
    txn.open_table(tables::FINDINGS_BY_LAST_AUDIT).unwrap();
    txn.open_table(tables::FINDINGS_AUDITS).unwrap();
}

/// Copies the memory tables of the file at `from` into `txn`.
fn copy_memory(from: &std::path::Path, txn: &redb::WriteTransaction) {
    let db = redb::Database::open(from).unwrap();
    let source = redb::ReadableDatabase::begin_read(&db).unwrap();
    copy_rows(&source, txn, tables::FINDINGS);
    copy_rows(&source, txn, tables::FINDING_FPS);
    copy_rows(&source, txn, tables::FINDINGS_BY_LAST_AUDIT);
    copy_rows(&source, txn, tables::FINDINGS_AUDITS);
}

fn copy_rows<K: redb::Key + 'static, V: redb::Value + 'static>(
    source: &redb::ReadTransaction,
    txn: &redb::WriteTransaction,
    table: redb::TableDefinition<K, V>,
) {
    use redb::ReadableTable;
    let mut to = txn.open_table(table).unwrap();
    for row in source.open_table(table).unwrap().iter().unwrap() {
        let (k, v) = row.unwrap();
        to.insert(k.value(), v.value()).unwrap();
    }
}

/// Dismissals made under other rules (rules 1 read no NFC, so a wording pasted decomposed had
/// a fingerprint of its own) are given today's fingerprints when the memory is rebuilt on
/// open: the two spellings are now one dismissal twice, and the one recorded as block (it was
/// confirmed) is kept and found by its wording, exactly, though it is the newer; the other is
/// revoked. One that named a fingerprint the memory did not know keeps it. `check` passes.
#[test]
fn dismissals_follow_the_rules_when_the_memory_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let composed = "panic in caf\u{e9}_handler when the body is empty";
    let decomposed = "panic in cafe\u{301}_handler when the body is empty";
    let worded = |fingerprint: u64, severity: &str, summary: &str| {
        Put::from(Record::Dismissal(DismissalChange::New(NewDismissal {
            check: "static".into(),
            severity: severity.into(),
            summary: summary.into(),
            ..match dismissal_put(REPO, Some(1), fingerprint).record {
                Record::Dismissal(DismissalChange::New(new)) => new,
                _ => unreachable!(),
            }
        })))
    };
    let (ids, store) = written_then_rebuilt_under_rules_1(
        &path,
        &[
            worded(1, "warn", composed),
            worded(2, "block", decomposed),
            dismissal_put(REPO, Some(1), 3),
        ],
    );
    let today = Fingerprint::of("static", composed).0;
    let live = live_dismissals_of_pr_1(&store);
    assert_eq!(live, [(ids[2], 3), (ids[1], today)]);
    let answer = store
        .check_findings(
            &FindingsCheck {
                repo: Repo::parse("repo", REPO).unwrap(),
                pr_number: 1,
                findings: vec![Finding::new("static", "block", composed)],
            },
            &mut ReadBudget::unlimited(),
        )
        .unwrap();
    let applied = answer[0].dismissal.as_ref().expect("dismissed");
    assert_eq!(applied.entry.id, ids[1]);
    assert_eq!(applied.score, 1.0);
}

/// A dismissal re-keyed onto the fingerprint a newer live dismissal of its scope already holds
/// (one whose fingerprint did not change) is that one's older twin: neither recorded as block,
/// the older is kept and the newer revoked, as a second dismissal of one finding is a duplicate
/// of the first. (Until the reread of 2026-12-05 the one being re-keyed was revoked, whichever
/// was older.)
#[test]
fn a_re_keyed_dismissal_meeting_a_newer_twin_is_the_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let wording = "unwrap in parse_body can panic on an empty body";
    let today = Fingerprint::of("static", wording).0;
    let worded = |fingerprint: u64| {
        let mut put = dismissal_put(REPO, Some(1), fingerprint);
        if let Record::Dismissal(DismissalChange::New(new)) = &mut put.record {
            new.check = "static".into();
            new.severity = "warn".into();
            new.summary = wording.into();
        }
        put
    };
    // The older under another rules' fingerprint, the newer under today's.
    let (ids, store) =
        written_then_rebuilt_under_rules_1(&path, &[worded(today ^ 1), worded(today)]);
    assert_eq!(live_dismissals_of_pr_1(&store), [(ids[0], today)]);
}

/// Only a change of the fingerprint rules re-keys dismissals: a rebuild for the analyser's
/// terms alone, or for rules 3 (severities in lowercase) over rules 2, whose fingerprints are
/// the same, leaves a dismissal's fingerprint as it was given.
#[test]
fn dismissals_are_re_keyed_only_when_the_fingerprint_rules_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.redb");
    let wording = "the session cookie lacks the Secure flag";
    store_dismissal_of_fingerprint_1(&path, "security", wording);
    let fingerprint = |edit: (&str, u64)| {
        set_meta(&path, edit.0, edit.1);
        live_dismissals_of_pr_1(&Store::open(&path, StoreOptions::default()).unwrap())[0].1
    };
    assert_eq!(fingerprint(("findings/analyzer_version", 999)), 1);
    assert_eq!(fingerprint(("findings/rules_version", 2)), 1);
    assert_eq!(
        fingerprint(("findings/rules_version", 1)),
        Fingerprint::of("security", wording).0
    );
}

/// A file of schema 12 whose memory was built under rules 1 (any file written before rules 2)
/// gets today's fingerprints for its dismissals from the rebuild step 13 asks for; one built
/// under today's rules keeps them as given. Until 2026-12-05 step 13 cleared the record of the
/// rules too, so no file's dismissals were re-keyed: a dismissed finding came back under its
/// new fingerprint, and dismissing it again made a second live dismissal.
#[test]
fn step_13_re_keys_the_dismissals_of_a_file_built_under_older_rules() {
    use lakehouse_kb::model::finding::FINDING_RULES_VERSION;
    let wording = "the session cookie lacks the Secure flag";
    // (the rules the file's memory was built under, the dismissal's fingerprint after the upgrade)
    let cases = [
        (1, Fingerprint::of("security", wording).0),
        (FINDING_RULES_VERSION, 1),
    ];
    for (built_under, after) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.redb");
        store_dismissal_of_fingerprint_1(&path, "security", wording);
        as_schema_12_left_it(&path, Some(built_under));
        let mut store = Store::open(&path, StoreOptions::default()).unwrap();
        let fingerprints: Vec<u64> = live_dismissals_of_pr_1(&store)
            .iter()
            .map(|(_, fingerprint)| *fingerprint)
            .collect();
        assert_eq!(fingerprints, [after], "built under rules {built_under}");
        let report = store.check().unwrap();
        assert!(report.passed(), "{:?}", report.problems);
    }
}

/// Turns the database at `path` back into what schema 12 left: the index of open findings
/// without its flags (`findings_by_last_seen`), and, with `rules`, the fingerprint rules its
/// memory was built under.
fn as_schema_12_left_it(path: &std::path::Path, rules: Option<u64>) {
    use redb::ReadableTable;
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    let unflagged: redb::TableDefinition<(u32, u64, u64, u64), ()> =
        redb::TableDefinition::new("findings_by_last_seen");
    {
        let mut old = txn.open_table(unflagged).unwrap();
        let new = txn.open_table(tables::FINDINGS_BY_LAST_AUDIT).unwrap();
        for row in new.iter().unwrap() {
            old.insert(row.unwrap().0.value(), ()).unwrap();
        }
    }
    txn.delete_table(tables::FINDINGS_BY_LAST_AUDIT).unwrap();
    let mut meta = txn.open_table(tables::META).unwrap();
    meta.insert("schema_version", 12).unwrap();
    if let Some(rules) = rules {
        meta.insert("findings/rules_version", rules).unwrap();
    }
    drop(meta);
    txn.commit().unwrap();
}

/// Writes `puts` into a new database at `path` (their seqs), marks its findings memory as built
/// under rules 1, and opens it again, which rebuilds the memory and re-keys the dismissals;
/// `check` passes on the result.
fn written_then_rebuilt_under_rules_1(path: &std::path::Path, puts: &[Put]) -> (Vec<u64>, Store) {
    let ids = {
        let store = Store::open(path, StoreOptions::default()).unwrap();
        store
            .write(puts)
            .unwrap()
            .iter()
            .map(Written::seq)
            .collect()
    };
    set_meta(path, "findings/rules_version", 1);
    let mut store = Store::open(path, StoreOptions::default()).unwrap();
    let report = store.check().unwrap();
    assert!(report.passed(), "{:?}", report.problems);
    (ids, store)
}

/// Sets `key` in the `meta` of the database at `path`, as a file built by another build would
/// hold it.
fn set_meta(path: &std::path::Path, key: &str, value: u64) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(tables::META)
        .unwrap()
        .insert(key, value)
        .unwrap();
    txn.commit().unwrap();
}

/// The live dismissals that apply to PR 1 of REPO, as (id, fingerprint), newest first.
fn live_dismissals_of_pr_1(store: &Store) -> Vec<(u64, u64)> {
    let query = lakehouse_kb::store::DismissalsQuery {
        repo: Repo::parse("repo", REPO).unwrap(),
        pr_number: Some(1),
        below_id: None,
        limit: 10,
    };
    let page = store
        .dismissals_page(&query, &mut ReadBudget::unlimited())
        .unwrap();
    page.items
        .iter()
        .map(|e| (e.id, e.value.fingerprint))
        .collect()
}

/// Stores, in a new database at `path`, a dismissal in PR 1 of fingerprint 1 (none a rule
/// gives) for the finding `check` / `wording`: what a rebuild under new rules re-keys.
fn store_dismissal_of_fingerprint_1(path: &std::path::Path, check: &str, wording: &str) {
    let store = Store::open(path, StoreOptions::default()).unwrap();
    let mut put = dismissal_put(REPO, Some(1), 1);
    if let Record::Dismissal(DismissalChange::New(new)) = &mut put.record {
        new.check = check.into();
        new.summary = wording.into();
    }
    store.write(&[put]).unwrap();
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

/// What a hostile client can make a check (or an audit) cost is bounded: a scope holds at most
/// MAX_LIVE_PER_SCOPE live dismissals (one more is a 422, a revoked one makes room), and a
/// rewording is looked for among the PR's MAX_SIMILAR_CANDIDATES most recently raised findings.
#[test]
fn dismissals_per_scope_and_similar_candidates_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let first_id = {
        let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
        let full: Vec<Put> = (0..MAX_LIVE_PER_SCOPE as u64)
            .map(|fp| dismissal_put(REPO, Some(5), fp))
            .collect();
        let written = store.write(&full).unwrap();
        assert!(written.iter().all(|w| matches!(w, Written::Stored { .. })));
        let first = written[0].seq();
        // Another scope is another budget.
        let elsewhere = store
            .write(&[
                dismissal_put(REPO, Some(6), 1),
                dismissal_put(REPO, Some(5), 1),
            ])
            .unwrap();
        assert!(
            matches!(elsewhere[0], Written::Stored { .. }),
            "{elsewhere:?}"
        );
        assert!(
            matches!(elsewhere[1], Written::Duplicate { .. }),
            "{elsewhere:?}"
        );
        assert_eq!(
            store.write(&[dismissal_put(REPO, Some(5), 5_000)]).unwrap(),
            [Written::Refused]
        );

        // 300 findings of one check in PR 9: the 44 raised first are no longer candidates.
        let old: Vec<String> = (0..44)
            .map(|i| format!("function old_handler_{i} ignores the error of write_all"))
            .collect();
        let recent: Vec<String> = (0..256)
            .map(|i| format!("function new_handler_{i} ignores the error of write_all"))
            .collect();
        let verdict = |head: &str, at: u32, summaries: &[String]| {
            let findings: Vec<Value> = summaries
                .iter()
                .map(|s| json!({"check": "static", "severity": "warn", "summary": s}))
                .collect();
            let body = json!({"pr_number": 9, "head_sha": head, "overall": "approve", "one_liner": "x", "findings": findings,
                "metrics": {"findings_block": 0, "findings_warn": 0}, "audited_at": format!("2026-06-01T00:00:{at:02}.000Z")});
            Put::from(verdict_record(body.to_string().as_bytes(), 1).unwrap())
        };
        store
            .write(&[verdict(HEAD_A, 1, &old), verdict(HEAD_B, 2, &recent)])
            .unwrap();
        let ask = |summary: &str| {
            store
                .check_findings(
                    &FindingsCheck {
                        repo: Repo::default(),
                        pr_number: 9,
                        findings: vec![Finding::new("static", "warn", summary)],
                    },
                    &mut ReadBudget::unlimited(),
                )
                .unwrap()[0]
                .matched
        };
        assert!(matches!(
            ask("new_handler_7 ignores the error that write_all returns"),
            Match::Similar(..)
        ));
        assert_eq!(
            ask("old_handler_7 ignores the error that write_all returns"),
            Match::New
        );
        // The exact tier is not bounded: every wording is looked up.
        assert!(matches!(
            ask("function old_handler_7 ignores the error of write_all"),
            Match::Exact(_)
        ));
        let mut store = store;
        assert!(store.check().unwrap().passed());
        first
    };
    let server = InProcessServer::start_in(dir.path(), &[]);
    let refused = dismiss(
        &server,
        json!({"repo": REPO, "pr_number": 5, "fingerprint": "00000000000013ff", "reason": "r", "by": "b"}),
        None,
    );
    assert_error(&refused, 422, "pr_number", "1000 live dismissals");
    assert_eq!(revoke(&server, first_id).status, 200);
    let room = dismiss(
        &server,
        json!({"repo": REPO, "pr_number": 5, "fingerprint": "00000000000013ff", "reason": "r", "by": "b"}),
        None,
    );
    assert_eq!(room.status, 201, "{}", room.text);
}

/// A legacy import brings the findings of its verdict files in with them (through the write
/// path), and a backup carries the memory and the dismissals, which its copy's `check` passes.
#[test]
fn legacy_findings_come_in_with_their_verdicts_and_backups_carry_the_memory() {
    use lakehouse_kb::import::{self, ImportOptions, NoProgress};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
    let options = ImportOptions {
        batch_size: 5,
        ..ImportOptions::default()
    };
    import::import(
        &store,
        std::path::Path::new(LEGACY_DATA),
        &options,
        &mut NoProgress,
    )
    .unwrap();
    // PR 9 was audited on three heads: observer.ts on the first, audit.ts on the next two.
    let page = store
        .pr_findings(
            &FindingsQuery {
                repo: Repo::default(),
                pr_number: 9,
                status: FindingStatus::All,
                below: None,
                limit: 50,
            },
            &mut ReadBudget::unlimited(),
        )
        .unwrap();
    let found: Vec<(&str, u64, bool)> = page
        .items
        .iter()
        .map(|e| (e.value.summary.as_str(), e.value.times_raised, e.open))
        .collect();
    assert_eq!(
        found,
        [
            ("diff touches auditor/audit.ts", 2, true),
            ("diff touches mcp-server/observer.ts", 1, false),
        ]
    );
    store
        .write(&[dismissal_put(
            "",
            Some(9),
            Fingerprint::of("static", "diff touches auditor/audit.ts").0,
        )])
        .unwrap();
    let copy = dir.path().join("copy").join("kb.redb");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    store.backup_to(&copy).unwrap();
    drop(store);
    let mut restored = Store::open(&copy, StoreOptions::default()).unwrap();
    let report = restored.check().unwrap();
    assert!(report.passed(), "{:?}", report.problems);
    let ask = restored
        .check_findings(
            &FindingsCheck {
                repo: Repo::default(),
                pr_number: 9,
                findings: vec![Finding::new(
                    "static",
                    "info",
                    "diff touches auditor/audit.ts",
                )],
            },
            &mut ReadBudget::unlimited(),
        )
        .unwrap();
    assert!(ask[0].dismissal.is_some(), "{ask:?}");
    assert!(matches!(ask[0].matched, Match::Exact(_)));
}

/// What the history says of its latest audit's findings (`raised`, `repeat_earlier_heads`) is
/// read from the memory alone while that audit is the PR's newest, and from the audit's JSON
/// once a newer head is left out of the history. Over traffic with rewordings, repeats and
/// twin findings, written as it comes (PRs interleaved) and PR by PR (each audit right after
/// the PR's previous one), each audit's answer is the same both ways.
#[test]
fn the_latest_audits_repeats_read_from_the_memory_equal_those_read_from_its_json() {
    let interleaved: Vec<(u64, Put)> = (0..).zip(traffic(240)).collect();
    let mut by_pr = interleaved.clone();
    by_pr.sort_by_key(|(i, _)| i % 6);
    for order in [interleaved, by_pr] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
        let history = |i: u64, exclude: Option<String>| {
            let q = HistoryQuery {
                repo: match i % 2 {
                    1 => Repo::parse("repo", REPO).unwrap(),
                    _ => Repo::default(),
                },
                pr_number: 1 + i % 6,
                exclude_sha: exclude,
                before_seq: None,
                limit: 1,
            };
            store
                .pr_history(&q, &mut ReadBudget::unlimited())
                .unwrap()
                .latest_findings
                .unwrap()
        };
        // Each PR's newest audit so far: (its seq, its head, what the history said of it).
        let mut newest: BTreeMap<u64, (u64, String, LatestFindings)> = BTreeMap::new();
        let (mut compared, mut repeated) = (0, 0);
        for (i, put) in order {
            let seq = store.write(&[put]).unwrap()[0].seq();
            let head = format!("{:08x}", i / 12);
            let from_memory = history(i, None);
            assert_eq!(from_memory.seq, seq);
            if let Some((before, before_head, said)) = newest.get(&(1 + i % 6))
                && *before_head != head
            {
                let from_json = history(i, Some(head.clone()));
                assert_eq!(from_json.seq, *before);
                assert_eq!(from_json, *said, "audit {i}'s predecessor");
                compared += 1;
                repeated += said.repeated;
            }
            newest.insert(1 + i % 6, (seq, head, from_memory));
        }
        assert!(compared >= 100 && repeated >= 50, "{compared} {repeated}");
    }
}
