//! Dismissals: they stick through rewordings, a block finding needs a confirmed one, they apply
//! to the scope they name, stop when revoked, survive a restart, and are bounded per scope.

use super::*;

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
    // The PR's findings say so too: the list is what the auditor reads of a PR (a review found
    // dismissed findings listed as open and nothing more).
    let bad = server.get(&format!("/prs/7/findings?repo={REPO}&dismissals=yes"));
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(bad.json["field"], "dismissals", "{}", bad.text);
    let plain = server.get(&format!("/prs/7/findings?repo={REPO}"));
    assert!(
        plain.json["findings"][0].get("dismissal").is_none(),
        "{}",
        plain.text
    );
    let listed = server.get(&format!("/prs/7/findings?repo={REPO}&dismissals=true"));
    assert_eq!(listed.status, 200, "{}", listed.text);
    let found = &listed.json["findings"][0];
    assert_eq!(found["status"], "open", "{}", listed.text);
    assert_eq!(found["dismissal"]["summary"], W0.2, "{}", listed.text);
    assert_eq!(found["dismissal"]["match"]["tier"], "similar");
    assert!(stored.json["id"].is_u64());
    assert_eq!(found["dismissal"]["id"], stored.json["id"]);
    // Raised, the broader finding is the remembered one's latest wording, known by its
    // fingerprint; still only a resemblance, as the memory's link to it was (0.77).
    post_verdict(&server, verdict(repo, 7, HEAD_C, 3, &[BROADER]));
    let head_d = "dddddddd00000000000000000000000000000004";
    let raised = check(&server, repo, 7, head_d, &[BROADER]);
    assert_eq!(statuses(&raised), ["repeat"], "{}", raised.text);
    let listed = server.get(&format!("/prs/7/findings?repo={REPO}&dismissals=true"));
    assert!(
        listed.json["findings"][0].get("dismissal").is_none(),
        "{}",
        listed.text
    );
    assert_eq!(
        raised.json["findings"][0]["resembled_dismissal"]["summary"],
        W0.2
    );
    // Another PR, where W2 is raised first: nothing remembered links it to W0.
    assert_eq!(statuses(&check(&server, repo, 8, HEAD_A, &[W2])), ["new"]);
}

/// A finding raised first, then dismissed, stays dismissed as it is reworded in small steps
/// over several pushes, each wording stored: the memory keeps the wordings between its first
/// and its latest, through which the dismissal reaches the latest. At 2d64eea it kept only the
/// first and the latest, so once the wording that had carried the evidence was replaced the
/// finding came back as a `repeat` (a review's), whether dismissed by its wording or by the
/// fingerprint the PR's findings list gives.
#[test]
fn a_dismissed_finding_stays_dismissed_through_stored_rewordings() {
    const W0: F = (
        "reliability",
        "warn",
        "the upload handler in storage/s3.rs retries forever without any backoff",
    );
    const W1: F = (
        "reliability",
        "warn",
        "upload handler in storage/s3.rs retries forever without backoff or jitter",
    );
    const W2: F = (
        "reliability",
        "warn",
        "the upload handler in storage/s3.rs retries indefinitely without backoff or jitter",
    );
    const W3: F = (
        "reliability",
        "warn",
        "the upload handler in storage/s3.rs retries indefinitely with no backoff or jitter",
    );
    let heads = [
        HEAD_A,
        HEAD_B,
        HEAD_C,
        "dddddddd00000000000000000000000000000004",
    ];
    let head_e = "eeeeeeee00000000000000000000000000000005";
    let repo = Some(REPO);
    // (how the finding is dismissed)
    for by_fingerprint in [false, true] {
        let server = InProcessServer::start();
        post_verdict(&server, verdict(repo, 1, heads[0], 1, &[W0]));
        let finding = if by_fingerprint {
            let listed = list(&server, repo, 1, "all");
            json!({"fingerprint": listed[0]["fingerprint"]})
        } else {
            json!({"finding": {"check": W0.0, "severity": W0.1, "summary": W0.2}})
        };
        let mut body = json!({"repo": REPO, "pr_number": 1, "reason": "by design", "by": "ana"});
        body.as_object_mut()
            .unwrap()
            .extend(finding.as_object().unwrap().clone());
        let stored = dismiss(&server, body, None);
        assert_eq!(stored.status, 201, "{}", stored.text);
        for (at, (wording, head)) in (2..).zip([W1, W2, W3].into_iter().zip(&heads[1..])) {
            let asked = check(&server, repo, 1, head, &[wording]);
            let case = format!("{} before push {at}", wording.2);
            assert_eq!(statuses(&asked), ["dismissed"], "{case}: {}", asked.text);
            post_verdict(&server, verdict(repo, 1, head, at, &[wording]));
            let again = check(&server, repo, 1, head_e, &[wording]);
            assert_eq!(
                statuses(&again),
                ["dismissed"],
                "{case}, stored: {}",
                again.text
            );
        }
    }
}

/// A dismissal by the fingerprint a PR's findings list gives silences the finding as the list
/// showed it: its latest wording, which the memory had linked to it below dismissal grade
/// (0.78). At cd31122 it recorded the first wording and silenced only that, so the wording
/// shown came back a `repeat` (a review's). A wording linked after the dismissal is judged by
/// its own words, as before it was raised: a close rewording of the wording shown is silenced
/// (it was not, at 2ab15cf, being far from the first wording's text); one that says the
/// opposite of the dismissal's is never silenced.
#[test]
fn a_dismissal_by_the_listed_fingerprint_silences_the_listed_wording() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    const FIRST: F = (
        "static",
        "warn",
        "the retry loop in upload_file gives up after the first timeout and drops the queued chunk",
    );
    const SHOWN: F = (
        "static",
        "warn",
        "the retry loop in upload_file gives up after the first timeout and loses the pending chunk",
    );
    const LATER: F = (
        "static",
        "warn",
        "the retry loop in upload_file gives up after one timeout and loses the pending chunk",
    );
    const UNHASHED: F = (
        "security",
        "warn",
        "the password is not hashed in create_user",
    );
    const HASHED: F = ("security", "warn", "the password is hashed in create_user");
    let head_d = "dddddddd00000000000000000000000000000004";
    post_verdict(&server, verdict(repo, 1, HEAD_A, 1, &[FIRST, UNHASHED]));
    post_verdict(&server, verdict(repo, 1, HEAD_B, 2, &[SHOWN, HASHED]));
    for listed in list(&server, repo, 1, "all") {
        let dismissed = dismiss(
            &server,
            json!({"repo": REPO, "pr_number": 1, "fingerprint": listed["fingerprint"], "reason": "known", "by": "ana"}),
            None,
        );
        assert_eq!(dismissed.status, 201, "{}", dismissed.text);
    }
    let asked = check(&server, repo, 1, HEAD_C, &[SHOWN, FIRST, HASHED, UNHASHED]);
    assert_eq!(
        statuses(&asked),
        ["dismissed", "dismissed", "repeat", "dismissed"],
        "{}",
        asked.text
    );
    assert_eq!(
        asked.json["findings"][0]["dismissal"]["match"]["tier"],
        "exact"
    );
    // The dismissal holds the wording its fingerprint is of, `not hashed`, which the shown
    // `hashed` says the opposite of: that one only resembles it.
    assert!(
        asked.json["findings"][2]
            .get("resembled_dismissal")
            .is_some()
    );
    // Below dismissal grade against the dismissal's text (0.71), a close rewording of the
    // wording shown (0.94): silenced, raised or not.
    let before = check(&server, repo, 1, HEAD_C, &[LATER]);
    post_verdict(&server, verdict(repo, 1, HEAD_C, 3, &[LATER]));
    let after = check(&server, repo, 1, head_d, &[LATER]);
    for asked in [before, after] {
        assert_eq!(statuses(&asked), ["dismissed"], "{}", asked.text);
        assert_eq!(
            asked.json["findings"][0]["dismissal"]["match"],
            json!({"tier": "similar", "score": 0.9412})
        );
    }
}

/// What a dismissal silences as exact is what the memory had linked before it was made, on
/// both sides: a dismissal of a wording the memory did not hold yet, linked later, does not
/// reach the finding's older wordings (at 77013cd it did: a review's); and a dismissal of a
/// wording kept between, whose text the memory does not keep, does not silence a wording
/// whose negation differs from that wording's (it did).
#[test]
fn a_dismissal_silences_as_exact_only_what_was_linked_before_it() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    const HELD: F = (
        "static",
        "warn",
        "the retry loop in upload_file gives up after the first timeout and drops the queued chunk",
    );
    const NOT_HELD: F = (
        "static",
        "warn",
        "the retry loop in upload_file gives up after the first timeout and loses the pending chunk",
    );
    post_verdict(&server, verdict(repo, 1, HEAD_A, 1, &[HELD]));
    let dismissed = dismiss(
        &server,
        json!({"repo": REPO, "pr_number": 1, "finding": {"check": NOT_HELD.0, "severity": NOT_HELD.1, "summary": NOT_HELD.2}, "reason": "known", "by": "ana"}),
        None,
    );
    assert_eq!(dismissed.status, 201, "{}", dismissed.text);
    post_verdict(&server, verdict(repo, 1, HEAD_B, 2, &[NOT_HELD]));
    let asked = check(&server, repo, 1, HEAD_C, &[NOT_HELD, HELD]);
    assert_eq!(statuses(&asked), ["dismissed", "repeat"], "{}", asked.text);

    const FIRST: F = (
        "security",
        "warn",
        "the password is not hashed in create_user before it is stored",
    );
    const BETWEEN: F = (
        "security",
        "warn",
        "the password is not hashed in create_user before storing it",
    );
    const LATEST: F = (
        "security",
        "warn",
        "the password is hashed in create_user before storing it",
    );
    post_verdict(&server, verdict(repo, 2, HEAD_A, 1, &[FIRST]));
    post_verdict(&server, verdict(repo, 2, HEAD_B, 2, &[BETWEEN]));
    post_verdict(&server, verdict(repo, 2, HEAD_C, 3, &[LATEST]));
    let listed = list(&server, repo, 2, "all");
    assert_eq!(
        listed.len(),
        1,
        "one finding, linked across the three: {listed:?}"
    );
    let between = check(&server, repo, 2, HEAD_C, &[BETWEEN]);
    let fingerprint = between.json["findings"][0]["fingerprint"].clone();
    let dismissed = dismiss(
        &server,
        json!({"repo": REPO, "pr_number": 2, "fingerprint": fingerprint, "reason": "known", "by": "ana"}),
        None,
    );
    assert_eq!(dismissed.status, 201, "{}", dismissed.text);
    let head_d = "dddddddd00000000000000000000000000000004";
    let asked = check(&server, repo, 2, head_d, &[BETWEEN, LATEST]);
    assert_eq!(statuses(&asked), ["dismissed", "repeat"], "{}", asked.text);
}

/// A wording the dismissal silences as what the team saw dismissed ends a path of close
/// rewordings as well as the dismissal's own text does: the team dismissed the finding as its
/// list showed it (W3); raised next as N, a rewording of its first wording W1 at 1.0 but of W3
/// at 0.6 (`hardcoded`, `hard-coded`), it was a `repeat` while W1 itself was silenced (a
/// review's). The finding must still agree with the dismissal's text: one saying the opposite
/// of it is not silenced however close it is to W1.
#[test]
fn a_close_rewording_of_a_wording_dismissed_with_the_finding_is_silenced() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    const W1: F = (
        "secrets",
        "warn",
        "Database password is hardcoded in config/default.json",
    );
    const W2: F = (
        "secrets",
        "warn",
        "Hard-coded DB password in `config/default.json`",
    );
    const W3: F = (
        "secrets",
        "warn",
        "config/default.json contains a hard-coded database password",
    );
    const N: F = (
        "secrets",
        "warn",
        "Hardcoded database password in config/default.json",
    );
    const NOT_N: F = (
        "secrets",
        "warn",
        "Hardcoded database password not in config/default.json",
    );
    let head_d = "dddddddd00000000000000000000000000000004";
    post_verdict(&server, verdict(repo, 1, HEAD_A, 1, &[W1]));
    post_verdict(&server, verdict(repo, 1, HEAD_B, 2, &[W2]));
    post_verdict(&server, verdict(repo, 1, HEAD_C, 3, &[W3]));
    assert_eq!(list(&server, repo, 1, "all").len(), 1, "one finding");
    // N alone is a new finding next to W3's text: the path goes through W1.
    let before = check(&server, repo, 1, head_d, &[N]);
    assert_eq!(before.json["findings"][0]["match"]["tier"], "similar");
    let dismissed = dismiss(
        &server,
        json!({"repo": REPO, "pr_number": 1, "finding": {"check": W3.0, "severity": W3.1, "summary": W3.2}, "reason": "a test fixture", "by": "ana"}),
        None,
    );
    assert_eq!(dismissed.status, 201, "{}", dismissed.text);
    // Each asked alone: in one audit, the memory matches one of them to the finding.
    let asked = [W1, N, NOT_N].map(|f| check(&server, repo, 1, head_d, &[f]));
    assert_eq!(
        asked.iter().map(statuses).collect::<Vec<_>>(),
        [["dismissed"], ["dismissed"], ["repeat"]],
        "{}",
        asked[1].text
    );
    assert_eq!(
        asked[1].json["findings"][0]["dismissal"]["match"],
        json!({"tier": "similar", "score": 1.0}),
        "{}",
        asked[1].text
    );
}

/// A dismissal does not silence a finding that negates one of its words by a prefix, however
/// either is inflected: a review found `... uploads the archive to S3 unencrypted` silenced
/// (0.86) by a dismissal of `... encrypts the archive before uploading it to S3`, and
/// `illegal` by `legal`.
#[test]
fn a_dismissal_does_not_silence_its_words_negated_by_a_prefix() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    let pairs = [
        (
            "the backup job in backup.ts encrypts the archive before uploading it to S3",
            "the backup job in backup.ts uploads the archive to S3 unencrypted",
        ),
        (
            "the state machine in order.ts rejects legal transitions",
            "the state machine in order.ts rejects illegal transitions",
        ),
    ];
    for (pr, (dismissed, raised)) in (1..).zip(pairs) {
        let answer = dismiss(
            &server,
            json!({"repo": REPO, "pr_number": pr, "finding": {"check": "security", "severity": "warn", "summary": dismissed}, "reason": "known", "by": "ana"}),
            None,
        );
        assert_eq!(answer.status, 201, "{}", answer.text);
        let asked = check(&server, repo, pr, HEAD_A, &[("security", "warn", raised)]);
        assert_eq!(statuses(&asked), ["new"], "{raised}: {}", asked.text);
    }
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

/// Found by a review at 3457f34: a dismissal's retry was judged again before its idempotency
/// key was looked up. A warning dismissed under a key, raised as block by the next push, made
/// the retry a 422 asking for `confirm` although the first attempt was stored; a client that
/// then confirmed recorded a block dismissal nobody asked for. Now a retry is answered by its
/// key first, and the key with another request is refused as on every route.
#[test]
fn a_dismissals_retry_is_answered_by_its_key_whatever_was_raised_since() {
    let server = InProcessServer::start();
    let repo = Some(REPO);
    const SQL: &str = "the SQL query in users.ts is built from the request's name parameter";
    let finding =
        |severity: &str| json!({"check": "security", "severity": severity, "summary": SQL});
    let audit = |head: &str, at: u32, severity: &str| {
        let mut body: Value = serde_json::from_str(&verdict(repo, 4, head, at, &[])).unwrap();
        body["findings"] = json!([finding(severity)]);
        post_verdict(&server, body.to_string());
    };
    audit(HEAD_A, 1, "warn");
    let body = json!({"repo": REPO, "pr_number": 4, "finding": finding("warn"), "reason": "known", "by": "ana"});
    let first = dismiss(&server, body.clone(), Some("dismiss-retry-1"));
    assert_eq!(first.status, 201, "{}", first.text);
    let id = first.json["id"].as_u64().unwrap();
    assert_eq!(first.json["severity"], "warn", "{}", first.text);

    // The next push raises it as block; the client retries the request it sent before.
    audit(HEAD_B, 2, "block");
    let retried = dismiss(&server, body.clone(), Some("dismiss-retry-1"));
    assert_eq!(
        (
            retried.status,
            retried.json["id"].as_u64(),
            &retried.json["duplicate"]
        ),
        (200, Some(id), &json!(true)),
        "{}",
        retried.text
    );
    // Without the key it is a new request, judged on what is stored now.
    let fresh = dismiss(&server, body.clone(), None);
    assert_eq!(fresh.status, 422, "{}", fresh.text);
    assert_eq!(fresh.json["field"], "confirm", "{}", fresh.text);
    // The key with another request is refused, before that request is judged.
    let mut other = body;
    other["reason"] = json!("changed my mind");
    let reused = dismiss(&server, other, Some("dismiss-retry-1"));
    assert_eq!(reused.status, 409, "{}", reused.text);
    assert_eq!(reused.json["field"], "idempotency-key", "{}", reused.text);
    let live = server.get("/findings/dismissals?repo=gitea%3Ateam%2Fapp&pr_number=4");
    assert_eq!(
        live.json["dismissals"].as_array().map(Vec::len),
        Some(1),
        "{}",
        live.text
    );
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

/// A dismissal of a finding the memory knows, raised with no severity, has `severity` `""`
/// beside its check and summary, in its answer, a check and the list: a client tells a
/// dismissal of an unknown fingerprint by its having none of the three, and took this one for
/// such (it had no `severity`: a review's).
#[test]
fn a_dismissal_of_a_finding_without_severity_still_says_it_is_known() {
    let server = InProcessServer::start();
    const NO_SEVERITY: F = (
        "style",
        "",
        "the handler's name does not say what it handles",
    );
    post_verdict(&server, verdict(None, 6, HEAD_A, 1, &[NO_SEVERITY]));
    let fingerprint = Fingerprint::of(NO_SEVERITY.0, NO_SEVERITY.2).to_string();
    let body = json!({"pr_number": 6, "fingerprint": fingerprint, "reason": "r", "by": "ana"});
    let known = dismiss(&server, body, None);
    assert_eq!(known.status, 201, "{}", known.text);
    let fields = |d: &Value| {
        (
            d["check"].clone(),
            d.get("severity").cloned(),
            d["summary"].clone(),
        )
    };
    let expected = (json!("style"), Some(json!("")), json!(NO_SEVERITY.2));
    assert_eq!(fields(&known.json), expected, "{}", known.text);
    let found = check(&server, None, 6, HEAD_B, &[NO_SEVERITY]);
    let applied = &found.json["findings"][0]["dismissal"];
    assert_eq!(fields(applied), expected, "{}", found.text);
    let listed = server.get("/findings/dismissals?pr_number=6");
    assert_eq!(
        fields(&listed.json["dismissals"][0]),
        expected,
        "{}",
        listed.text
    );
    let body =
        json!({"pr_number": 6, "fingerprint": "0123456789abcdef", "reason": "r", "by": "ana"});
    let unknown = dismiss(&server, body, None);
    assert_eq!(unknown.status, 201, "{}", unknown.text);
    assert_eq!(
        fields(&unknown.json),
        (Value::Null, None, Value::Null),
        "{}",
        unknown.text
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
    assert_eq!(other.status, 409, "{}", other.text);
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

    // A malformed idempotency key is refused as on every write, and revokes nothing.
    let bad_key = answer(
        server
            .client()
            .delete(server.url(&format!("/findings/dismissals/{repo_scoped}")))
            .header("idempotency-key", "a b")
            .send()
            .unwrap(),
    );
    assert_error(&bad_key, 400, "idempotency-key", "visible ASCII");

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

/// A finding the memory links to the dismissed one, reworded too far from the dismissal's
/// wording to be silenced, resembles it by how alike their wordings are, not by the memory's
/// link: at 3ab4e2b it was said to resemble the dismissal at 1.0 while it was reported again,
/// as if the service had ignored a perfect match (a review's).
#[test]
fn a_linked_finding_not_silenced_resembles_its_dismissal_by_its_words() {
    let server = InProcessServer::start();
    let chain = [
        "session token stored in localStorage in auth/session.ts:12 is readable by any injected script",
        "auth/session.ts:14 stores the session token in localStorage where any injected script can read it",
        "the session token is kept in localStorage (auth/session.ts:18), readable by injected scripts",
        "injected scripts can read the session token because auth/session.ts:20 keeps it in localStorage",
        "auth/session.ts:22 keeps the session token in localStorage; XSS could exfiltrate it",
        "XSS could exfiltrate the session token kept in localStorage by auth/session.ts:25",
        "session token exfiltration via XSS: auth/session.ts:27 uses localStorage",
    ];
    let mut resembled = 0;
    for (push, summary) in chain.iter().enumerate() {
        let head = format!("{push:040x}");
        let finding: F = ("security", "warn", summary);
        let checked = check(&server, None, 7, &head, &[finding]);
        let found = &checked.json["findings"][0];
        if let Some(r) = found.get("resembled_dismissal") {
            resembled += 1;
            let score = r["match"]["score"].as_f64().unwrap();
            assert!(
                score < lakehouse_kb::model::finding::DISMISSAL_THRESHOLD,
                "push {push}: resembles at {score} and is not silenced: {}",
                checked.text
            );
        }
        post_verdict(&server, verdict(None, 7, &head, push as u32, &[finding]));
        if push == 1 {
            let fingerprint = found["match"]["fingerprint"]
                .as_str()
                .or(found["fingerprint"].as_str())
                .unwrap();
            let d = dismiss(
                &server,
                json!({"pr_number": 7, "fingerprint": fingerprint, "by": "alice", "reason": "the token is backed by an httpOnly cookie"}),
                None,
            );
            assert_eq!(d.status, 201, "{}", d.text);
        }
    }
    assert!(
        resembled > 0,
        "the chain must drift past the dismissal for the test to mean anything"
    );
}

/// A dismissal made by a fingerprint whose wording the memory no longer keeps has no wording to
/// compare: a rewording it resembles is scored by the memory's link, not 0 (a review of the
/// scoring by the finding's own wording).
#[test]
fn a_dismissal_without_a_wording_is_resembled_by_the_memory_s_link() {
    let server = InProcessServer::start();
    let base = "upload handler retries forever lacking backoff delay under heavy traffic";
    let extras = [
        "quickly",
        "silently",
        "repeatedly",
        "endlessly",
        "blindly",
        "eagerly",
        "loudly",
        "rarely",
        "badly",
        "wildly",
    ];
    let wordings: Vec<&'static str> = extras
        .iter()
        .map(|e| &*Box::leak(format!("{base} {e}").into_boxed_str()))
        .collect();
    for (push, w) in wordings.iter().enumerate() {
        let finding: F = ("static", "warn", w);
        let head = format!("{:040x}", push + 1);
        post_verdict(&server, verdict(None, 1, &head, push as u32, &[finding]));
    }
    let fingerprint = lakehouse_kb::model::finding::Fingerprint::of("static", wordings[1]);
    let d = dismiss(
        &server,
        json!({"pr_number": 1, "fingerprint": fingerprint.to_string(), "by": "me", "reason": "fine"}),
        None,
    );
    assert_eq!(d.status, 201, "{}", d.text);
    let reworded: &'static str = Box::leak(format!("{base} sadly").into_boxed_str());
    let checked = check(&server, None, 1, HEAD_B, &[("static", "warn", reworded)]);
    let found = &checked.json["findings"][0];
    if let Some(r) = found.get("resembled_dismissal") {
        let score = r["match"]["score"].as_f64().unwrap();
        assert!(score > 0.5, "{}", checked.text);
    } else {
        assert!(found.get("dismissal").is_some(), "{}", checked.text);
    }
}
