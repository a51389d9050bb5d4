//! What the memory says of a PR's findings across its audits: statuses over three heads,
//! a verdict without findings, pages, severities, a batch against one verdict at a time, and the
//! history's latest-audit repeats read from the memory against those read from the JSON.

use super::*;

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

/// A push while a client pages through a PR's findings moves the findings it raises again to
/// the top of the order, above where the walk stands, and resolves the open ones it does not
/// raise: the walk still gives every finding its status holds at the end (one raised again, or
/// given before, may come again). At 47acc62 the next page went on below the cursor alone, and
/// a walk of 10 findings at 3 a page across one push gave 7 (a review's); a resolved walk then
/// missed the findings the push resolved (a review of the fix's). Each row: the status walked,
/// the page size, and after how many pages the push lands and which findings it raises again;
/// before the walk, the PR's first audit raised 10 findings and its second the first 6.
#[test]
fn a_push_between_pages_loses_no_finding() {
    let findings: Vec<F> = (0..10)
        .map(|i| -> F {
            let summary: &'static str = Box::leak(
                format!("module_{i} leaks its file handle on the error path").into_boxed_str(),
            );
            ("resources", "warn", summary)
        })
        .collect();
    // (status, page size, pages read before the push, the findings it raises again)
    // A push raising exactly a page of findings: the walk goes on where it stood (at 3ab4e2b
    // it went back to the top, and findings given before came again: a review's).
    let cases: [(&str, usize, usize, std::ops::Range<usize>); 13] = [
        ("all", 3, 1, 7..10),
        ("all", 4, 1, 6..10),
        ("all", 2, 2, 0..2),
        ("all", 3, 1, 0..10),
        ("all", 3, 2, 0..10),
        ("all", 1, 1, 0..10),
        ("all", 4, 1, 5..10),
        ("all", 2, 3, 0..3),
        ("all", 4, 2, 7..10),
        ("resolved", 1, 1, 0..2),
        ("resolved", 2, 1, 8..10),
        ("open", 2, 1, 0..4),
        ("open", 1, 2, 3..9),
    ];
    let summaries = |answer: &Answer| -> Vec<String> {
        answer.json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["summary"].as_str().unwrap().to_owned())
            .collect()
    };
    for (pr, (status, limit, before, again)) in (40..).zip(cases) {
        let server = InProcessServer::start();
        post_verdict(&server, verdict(None, pr, HEAD_A, 1, &findings));
        post_verdict(&server, verdict(None, pr, HEAD_B, 2, &findings[..6]));
        let mut seen = Vec::new();
        let mut cursor = String::new();
        for page in 1.. {
            let a = server.get(&format!(
                "/prs/{pr}/findings?status={status}&limit={limit}{cursor}"
            ));
            assert_eq!(a.status, 200, "{}", a.text);
            seen.extend(summaries(&a));
            if page == before {
                post_verdict(
                    &server,
                    verdict(None, pr, HEAD_C, 3, &findings[again.clone()]),
                );
            }
            match a.json["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        let case = format!("{status}, limit {limit}, push after page {before}, raising {again:?}");
        let at_the_end = summaries(&server.get(&format!("/prs/{pr}/findings?status={status}")));
        let given: std::collections::BTreeSet<&String> = seen.iter().collect();
        for finding in &at_the_end {
            assert!(
                given.contains(finding),
                "{case}: {finding} missing from {seen:?}"
            );
        }
        // When the page after the push holds every finding it raised again, only those come
        // twice; past that, findings given before the push may come again as well.
        if status == "all" {
            assert_eq!(given.len(), findings.len(), "{case}: {seen:?}");
            if again.len() <= limit {
                assert!(
                    seen.len() <= findings.len() + again.len(),
                    "{case}: {seen:?}"
                );
            }
        }
    }
}

/// A cursor given before 2026-12-07 (`{seq}-{fingerprint}`, without the PR's latest audit) goes
/// on below its finding, as it did.
#[test]
fn a_cursor_without_its_latest_audit_goes_on_below() {
    let server = InProcessServer::start();
    post_verdict(&server, verdict(None, 5, HEAD_A, 1, &[F1, F2, F3]));
    let first = server.get("/prs/5/findings?limit=1");
    let next = first.json["next_cursor"].as_str().unwrap();
    let (old, as_of) = next.rsplit_once('-').unwrap();
    assert_eq!(as_of, first.json["latest_seq"].to_string(), "{next}");
    let rest = server.get(&format!("/prs/5/findings?cursor={old}"));
    assert_eq!(rest.status, 200, "{}", rest.text);
    assert_eq!(rest.json["findings"].as_array().unwrap().len(), 2);
}

/// A wording that says the opposite of a remembered finding by a pair of opposite words is a
/// new finding, not a rewording of it: at eaedf84 `rate limiting is disabled ...` checked after
/// `... enabled ...` was raised was a `repeat` (a review's), and the auditor would have left
/// it out as said before. With a negation on one side only, the two may say the same thing and
/// the similarity decides.
#[test]
fn a_wording_that_says_the_opposite_is_a_new_finding() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    const ENABLED: F = (
        "security",
        "warn",
        "rate limiting is enabled on the login endpoint in auth.ts",
    );
    const DISABLED: F = (
        "security",
        "warn",
        "rate limiting is disabled on the login endpoint in auth.ts",
    );
    const UNVALIDATED: F = ("input", "warn", "the upload path in api.rs is unvalidated");
    const NOT_VALIDATED: F = (
        "input",
        "warn",
        "the upload path in api.rs is not validated",
    );
    post_verdict(
        &server,
        verdict(repo, 9, HEAD_A, 1, &[ENABLED, UNVALIDATED]),
    );
    let asked = check(&server, repo, 9, HEAD_B, &[DISABLED, NOT_VALIDATED]);
    assert_eq!(statuses(&asked), ["new", "repeat"], "{}", asked.text);
    assert_eq!(asked.json["findings"][1]["match"]["tier"], "similar");
    post_verdict(
        &server,
        verdict(repo, 9, HEAD_B, 2, &[DISABLED, NOT_VALIDATED]),
    );
    let listed = list(&server, repo, 9, "all");
    assert_eq!(listed.len(), 3, "{listed:?}");
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
