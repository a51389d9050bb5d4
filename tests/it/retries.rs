//! Safe retries, over real HTTP: a write with an `Idempotency-Key` is stored once however
//! often it is retried (across a restart too), the retry answered with the first attempt's seq
//! and `"duplicate": true`; the same key with another request is refused; batches key their
//! lines; keys expire after the window.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{InProcessServer, TestServer, assert_error};

const EVENT: &str = r#"{"source":"bot","event_kind":"cycle","ok":true}"#;

#[test]
fn a_retried_write_is_stored_once_and_answered_with_the_first_seq() {
    let mut server = TestServer::start();
    let first = server.post_keyed("/event", "application/json", Some("evt-1"), EVENT);
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json.get("duplicate"), None, "{}", first.text);
    let seq = first.json["seq"].as_u64().unwrap();
    for _ in 0..3 {
        let retry = server.post_keyed("/event", "application/json", Some("evt-1"), EVENT);
        assert_eq!(retry.status, 200, "{}", retry.text);
        assert_eq!(
            retry.json,
            json!({"ok": true, "seq": seq, "duplicate": true})
        );
    }
    // Keys are per route: the same key on /outcomes is another key.
    let row = r#"{"sig_hash":"s1","staffer_id":"x"}"#;
    let stored = server.post_keyed("/outcomes", "application/json", Some("evt-1"), row);
    assert_eq!(stored.status, 201, "{}", stored.text);
    let retry = server.post_keyed("/outcomes", "application/json", Some("evt-1"), row);
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.json["duplicate"], true);
    assert_eq!(retry.json["seq"], stored.json["seq"]);
    let stats = server.stats();
    assert_eq!(
        (stats["total"].as_u64(), stats["outcomes"].as_u64()),
        (Some(1), Some(1))
    );

    // Keys are durable: a restart remembers them.
    let data = server.data.clone();
    assert!(server.stop().success());
    let server = TestServer::start_in(&data, &[], &[]);
    let retry = server.post_keyed("/event", "application/json", Some("evt-1"), EVENT);
    assert_eq!(
        retry.json,
        json!({"ok": true, "seq": seq, "duplicate": true})
    );
    assert_eq!(server.stats()["total"], 1);
}

#[test]
fn a_key_reused_with_another_request_is_refused() {
    let server = InProcessServer::start();
    let first = server.post_keyed("/event", "application/json", Some("k"), EVENT);
    assert_eq!(first.status, 200);
    let other = server.post_keyed(
        "/event",
        "application/json",
        Some("k"),
        r#"{"source":"mcp"}"#,
    );
    assert_error(
        &other,
        409,
        "idempotency-key",
        "first used with a different request",
    );
    assert_eq!(server.stats()["total"], 1);
    for bad in ["", "a b", &"k".repeat(201)] {
        let answer = server.post_keyed("/event", "application/json", Some(bad), EVENT);
        assert_error(&answer, 400, "idempotency-key", "visible ASCII");
        // Routes that keep no key check it all the same.
        let export = server.post_keyed("/export", "application/json", Some(bad), "");
        assert_error(&export, 400, "idempotency-key", "visible ASCII");
    }
    // Two different keys on one request are refused; the same one twice is one key.
    let twice = |keys: [&str; 2]| {
        let request = server
            .client()
            .post(server.url("/event"))
            .header("content-type", "application/json")
            .header("idempotency-key", keys[0])
            .header("idempotency-key", keys[1]);
        crate::support::answer(request.body(EVENT).send().unwrap())
    };
    assert_error(
        &twice(["k", "k2"]),
        400,
        "idempotency-key",
        "more than once",
    );
    let same = twice(["k", "k"]);
    assert_eq!(
        (same.status, &same.json["duplicate"]),
        (200, &json!(true)),
        "{}",
        same.text
    );
    assert_eq!(server.stats()["total"], 1);
}

#[test]
fn verdict_retries_with_a_key_answer_like_identity_duplicates() {
    let server = InProcessServer::start();
    let verdict = json!({
        "pr_number": 4, "head_sha": "abcdef0123456789", "overall": "approve", "one_liner": "ok",
        "metrics": {"findings_block": 0, "findings_warn": 0}, "audited_at": "2026-05-01T00:00:00.000Z",
    })
    .to_string();
    let first = server.post_keyed(
        "/verdicts",
        "application/json",
        Some("v-1"),
        verdict.as_str(),
    );
    assert_eq!(first.status, 201, "{}", first.text);
    let retry = server.post_keyed(
        "/verdicts",
        "application/json",
        Some("v-1"),
        verdict.as_str(),
    );
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(
        retry.json,
        json!({"sig_hash": "pr4-abcdef01", "pr_number": 4, "seq": first.json["seq"], "duplicate": true})
    );
    assert_eq!(server.stats()["verdicts"], 1);
}

/// A key first used on a request answered as a duplicate by its record's identity names that
/// record from then on: another request under it is refused, a retry answered alike. (It was
/// not recorded: a different verdict under the key was stored, and the first request's retry
/// then refused as "a different request".)
#[test]
fn a_key_first_used_on_an_identity_duplicate_names_that_record() {
    let server = InProcessServer::start();
    let verdict = |pr: u64| {
        json!({
            "pr_number": pr, "head_sha": "abcdef0123456789", "overall": "approve",
            "one_liner": "ok", "metrics": {"findings_block": 0, "findings_warn": 0},
            "audited_at": "2026-05-01T00:00:00.000Z",
        })
        .to_string()
    };
    let post = |key: Option<&str>, body: &str| {
        server.post_keyed("/verdicts", "application/json", key, body)
    };
    let stored = post(None, &verdict(4));
    assert_eq!(stored.status, 201, "{}", stored.text);
    let seq = stored.json["seq"].clone();
    // (key, body, status, duplicate of the first verdict)
    let steps: [(Option<&str>, String, u16, bool); 4] = [
        (Some("k"), verdict(4), 200, true),
        (Some("k"), verdict(5), 409, false),
        (Some("k"), verdict(4), 200, true),
        (None, verdict(5), 201, false),
    ];
    for (i, (key, body, status, duplicate)) in steps.into_iter().enumerate() {
        let answer = post(key, &body);
        assert_eq!(answer.status, status, "step {i}: {}", answer.text);
        if duplicate {
            assert_eq!(answer.json["seq"], seq, "step {i}");
            assert_eq!(answer.json["duplicate"], true, "step {i}");
        }
        if status == 409 {
            assert_error(
                &answer,
                409,
                "idempotency-key",
                "first used with a different request",
            );
        }
    }
    assert_eq!(server.stats()["verdicts"], 2);
}

#[test]
fn batch_lines_are_keyed_by_the_header_or_their_own_field() {
    let server = InProcessServer::start();
    let body = "{\"source\":\"bot\",\"n\":1}\n{\"source\":\"bot\",\"n\":2}\nnot json\n";
    let first = server.post_keyed("/event", "application/x-ndjson", Some("batch-1"), body);
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(
        (
            first.json["accepted"].as_u64(),
            first.json["duplicates"].as_u64()
        ),
        (Some(2), Some(0))
    );
    // The whole batch again: its good lines are duplicates, its bad line is bad again.
    let retry = server.post_keyed("/event", "application/x-ndjson", Some("batch-1"), body);
    assert_eq!(
        (
            retry.json["accepted"].as_u64(),
            retry.json["duplicates"].as_u64()
        ),
        (Some(0), Some(2)),
        "{}",
        retry.text
    );
    assert_eq!(retry.json["rejected"][0]["line"], 3);
    assert_eq!(server.stats()["total"], 2);
    // Retried with blank lines added: the same records have the same keys (at b548710 a key
    // was the line's number, so the retry stored the second record again).
    let spaced = format!("\n{}", body.replace('\n', "\r\n\n"));
    let retry = server.post_keyed("/event", "application/x-ndjson", Some("batch-1"), spaced);
    assert_eq!(retry.json["duplicates"], 2, "{}", retry.text);
    assert_eq!(retry.json["rejected"][0]["line"], 6, "{}", retry.text);
    assert_eq!(server.stats()["total"], 2);
    // The header's key with another line: refused naming the header, where the key came from
    // (it named a body field the line does not have: a review's).
    let other = "{\"source\":\"bot\",\"n\":9}\n";
    let reused = server.post_keyed("/event", "application/x-ndjson", Some("batch-1"), other);
    assert_eq!(reused.status, 400, "{}", reused.text);
    assert_eq!(
        reused.json["rejected"][0]["field"], "idempotency-key",
        "{}",
        reused.text
    );
    assert_eq!(server.stats()["total"], 2);

    // Lines with their own keys, without a header: retried one by one in another batch.
    let own = "{\"source\":\"bot\",\"event_id\":\"e-7\"}\n{\"source\":\"mcp\",\"idempotency_key\":\"e-8\"}\n";
    let stored = server.post_ndjson("/event", own);
    assert_eq!(stored.json["accepted"], 2, "{}", stored.text);
    let mixed = "{\"source\":\"mcp\",\"idempotency_key\":\"e-8\"}\n{\"source\":\"bot\",\"event_id\":\"e-7\",\"x\":1}\n{\"source\":\"bot\",\"event_id\":5}\n";
    let again = server.post_ndjson("/event", mixed);
    assert_eq!(again.json["duplicates"], 1, "{}", again.text);
    let rejected = again.json["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{}", again.text);
    // Named by the field the key came from: this line's is its `event_id` (it named
    // `idempotency_key`, which the line does not have: a review's).
    assert_eq!(
        (rejected[0]["line"].as_u64(), rejected[0]["field"].as_str()),
        (Some(2), Some("event_id"))
    );
    // An `event_id` that cannot be a key is the event's own field: stored, without a key.
    assert_eq!(again.json["accepted"], 1, "{}", again.text);
    assert_eq!(server.stats()["total"], 5);
    let bad_key = server.post_ndjson("/event", "{\"source\":\"bot\",\"idempotency_key\":5}\n");
    assert_eq!(bad_key.status, 400, "{}", bad_key.text);
    assert_eq!(bad_key.json["rejected"][0]["field"], "idempotency_key");
    assert_eq!(server.stats()["total"], 5);
}

#[test]
fn keys_expire_after_the_window() {
    let server = InProcessServer::start_with(&["--idempotency-window", "1s"]);
    let first = server.post_keyed("/event", "application/json", Some("short-lived"), EVENT);
    let seq = first.json["seq"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let again = server.post_keyed("/event", "application/json", Some("short-lived"), EVENT);
        if again.json.get("duplicate").is_none() {
            assert!(again.json["seq"].as_u64().unwrap() > seq);
            break;
        }
        assert!(Instant::now() < deadline, "the key never expired");
    }
}

/// A batch retried under its key in another shape stores none of its lines twice: the retry
/// is matched as a whole against the lines stored under the key, by position and by content
/// (at 7736e65 a line was known by its position only, so a retry without the rejected line
/// stored the lines after it again; a review of 4a68261, which keyed each line's content by
/// its occurrence among identical lines, found a mended line answered as a duplicate of an
/// identical later one).
#[test]
fn a_batch_retried_in_another_shape_never_stores_a_line_twice() {
    let server = InProcessServer::start();
    let line = |n: u32| format!("{{\"source\":\"bot\",\"n\":{n}}}");
    let (a, b, c, d, bad) = (line(1), line(2), line(3), line(4), "not json".to_owned());
    let batch = |lines: &[&String]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    type Step = (String, (u64, u64), &'static [u64]);
    let step = |lines: &[&String], counts: (u64, u64), rejected: &'static [u64]| -> Step {
        (batch(lines), counts, rejected)
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<Step>)> = vec![
        // name, then the batches sent under one key, each with the (accepted, duplicates) and
        // the rejected lines of its answer
        ("the whole batch again", vec![step(&[&a, &b], (2, 0), &[]), step(&[&a, &b], (0, 2), &[])]),
        ("the rejected line dropped", vec![step(&[&a, &bad, &b, &c], (3, 0), &[2]), step(&[&a, &b, &c], (0, 3), &[])]),
        ("the rejected line mended", vec![step(&[&a, &bad, &b, &c], (3, 0), &[2]), step(&[&a, &d, &b, &c], (1, 3), &[])]),
        ("the lines reordered", vec![step(&[&a, &b, &c], (3, 0), &[]), step(&[&c, &a, &b], (0, 3), &[])]),
        ("one line of it", vec![step(&[&a, &b, &c], (3, 0), &[]), step(&[&c], (0, 1), &[])]),
        ("a line added at the end", vec![step(&[&a, &b], (2, 0), &[]), step(&[&a, &b, &c], (1, 2), &[])]),
        ("a line put between", vec![step(&[&a, &b], (2, 0), &[]), step(&[&a, &c, &b], (1, 2), &[])]),
        ("mended and reordered", vec![step(&[&bad, &a], (1, 0), &[1]), step(&[&a, &b], (1, 1), &[])]),
        ("mended after a retry that dropped it", vec![
            step(&[&a, &bad, &c], (2, 0), &[2]), step(&[&a, &c], (0, 2), &[]), step(&[&a, &c, &b], (1, 2), &[]),
        ]),
        // Identical lines are as many records, and each stored one answers one line.
        ("a repeated line once", vec![step(&[&a, &a], (2, 0), &[]), step(&[&a], (0, 1), &[])]),
        ("a repeated line thrice", vec![step(&[&a, &a], (2, 0), &[]), step(&[&a, &a, &a], (1, 2), &[])]),
        ("the rejected first of two alike dropped", vec![step(&[&bad, &a, &a], (2, 0), &[1]), step(&[&a, &a], (0, 2), &[])]),
        ("the rejected first of two alike mended alike", vec![step(&[&bad, &a, &a], (2, 0), &[1]), step(&[&a, &a, &a], (1, 2), &[])]),
        // A new line where a line the retry does not send was stored (changed in place) is
        // refused, as a key reused is: the client may have rewritten that line.
        ("a line changed in place", vec![step(&[&a, &b], (2, 0), &[]), step(&[&a, &c], (0, 1), &[2])]),
    ];
    for (i, (name, steps)) in cases.iter().enumerate() {
        let key = format!("shape-{i}");
        let mut total = server.stats()["total"].as_u64().unwrap();
        for (n, (body, (accepted, duplicates), rejected)) in steps.iter().enumerate() {
            let answer =
                server.post_keyed("/event", "application/x-ndjson", Some(&key), body.as_str());
            let got = (
                answer.json["accepted"].as_u64(),
                answer.json["duplicates"].as_u64(),
            );
            let want = (Some(*accepted), Some(*duplicates));
            assert_eq!(got, want, "{name}, batch {}: {}", n + 1, answer.text);
            let lines: Vec<u64> = answer.json["rejected"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["line"].as_u64().unwrap())
                .collect();
            assert_eq!(lines, *rejected, "{name}, batch {}: {}", n + 1, answer.text);
            total += accepted;
            assert_eq!(server.stats()["total"], total, "{name}, batch {}", n + 1);
        }
        // And the last batch again: nothing new.
        let (last, ..) = steps.last().unwrap();
        let again = server.post_keyed("/event", "application/x-ndjson", Some(&key), last.as_str());
        assert_eq!(again.json["accepted"], 0, "{name}: {}", again.text);
        assert_eq!(server.stats()["total"], total, "{name}");
    }
}

/// Lines stored under keys of their positions alone (by a binary before lines had content
/// keys, or by single writes whose own keys are `K#n`) are found by a batch under `K` in
/// another shape too (a review of 4a68261 found them stored again).
#[test]
fn lines_stored_by_position_alone_are_found_by_a_batch_in_another_shape() {
    let server = InProcessServer::start();
    let (a, b, c) = (
        r#"{"source":"bot","n":1}"#,
        r#"{"source":"bot","n":2}"#,
        r#"{"source":"bot","n":3}"#,
    );
    // What a batch [a, a bad line, c] under `old` left before: keys old#1 and old#3.
    for (key, line) in [("old#1", a), ("old#3", c)] {
        let stored = server.post_keyed("/event", "application/json", Some(key), line);
        assert_eq!(stored.json.get("duplicate"), None, "{}", stored.text);
    }
    let retry = server.post_keyed(
        "/event",
        "application/x-ndjson",
        Some("old"),
        format!("{a}\n{c}\n"),
    );
    assert_eq!(retry.json["duplicates"], 2, "{}", retry.text);
    // A line where a line found elsewhere was is new.
    let mended = server.post_keyed(
        "/event",
        "application/x-ndjson",
        Some("old"),
        format!("{b}\n{a}\n{c}\n"),
    );
    assert_eq!(
        (
            mended.json["accepted"].as_u64(),
            mended.json["duplicates"].as_u64()
        ),
        (Some(1), Some(2)),
        "{}",
        mended.text
    );
    assert_eq!(server.stats()["total"], 3);
}

/// One write sent under one key once alone and once as a one-line batch (a client that
/// switches how it sends when it retries) is stored once, either way round, on every write
/// route; another record in the batch's first line is refused as a key reused. At 3ab4e2b a
/// single write was keyed `K` and a batch's first line `K#1`: each stored its record (a
/// review's).
#[test]
fn a_write_retried_as_a_one_line_batch_is_stored_once() {
    let server = InProcessServer::start();
    let row = r#"{"sig_hash":"mix-1","kind":"scenario","ok":true}"#;
    let event = r#"{"source":"bot","n":41}"#;
    let verdict = r#"{"pr_number":41,"head_sha":"4141414141414141414141414141414141414141","overall":"approve","one_liner":"ok","metrics":{"findings_block":0,"findings_warn":0},"audited_at":"2026-06-01T00:00:00.000Z"}"#;
    for (route, body, single_first) in [
        ("/outcomes", row, true),
        ("/event", event, false),
        ("/verdicts", verdict, true),
    ] {
        let key = format!("mix{route}");
        let single = || server.post_keyed(route, "application/json", Some(&key), body);
        let batch = || {
            server.post_keyed(
                route,
                "application/x-ndjson",
                Some(&key),
                format!("{body}\n"),
            )
        };
        let (first, then) = if single_first {
            (single(), batch())
        } else {
            (batch(), single())
        };
        assert!(first.status / 100 == 2, "{route}: {}", first.text);
        assert!(then.status / 100 == 2, "{route}: {}", then.text);
        if single_first {
            assert_eq!(then.json["duplicates"], 1, "{route}: {}", then.text);
        } else {
            assert_eq!(then.json["duplicate"], true, "{route}: {}", then.text);
        }
        // Retried as a batch with a line in front of it: that line is stored, it is not.
        let other = body.replace("41", "43").replace("mix-1", "mix-3");
        let moved = server.post_keyed(
            route,
            "application/x-ndjson",
            Some(&key),
            format!("{other}\n{body}\n"),
        );
        assert_eq!(
            (&moved.json["accepted"], &moved.json["duplicates"]),
            (&serde_json::json!(1), &serde_json::json!(1)),
            "{route}: {}",
            moved.text
        );
        // Another record under the key as a batch's first line: refused.
        let other = server.post_keyed(
            route,
            "application/x-ndjson",
            Some(&key),
            format!("{}\n", body.replace("41", "42").replace("mix-1", "mix-2")),
        );
        assert_eq!(other.json["accepted"], 0, "{route}: {}", other.text);
    }
    let stats = server.stats();
    assert_eq!(
        (&stats["total"], &stats["verdicts"]),
        (&serde_json::json!(4), &serde_json::json!(2)),
        "{stats}"
    );
}
