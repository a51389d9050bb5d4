//! The change feed, `GET /feed`: the store's read (`Store::feed`) on real redb files, and the
//! route on the real server: long poll, Server-Sent Events, resume, resync after retention,
//! the client bound, shutdown with open streams, a stalled consumer cut, and 10,000 writes
//! followed by a consumer that disconnects 100 times.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::synth::{Rng, Synth};
use lakehouse_kb::http::{self, AppState, Feed, ServerConfig};
use lakehouse_kb::intake::{event_record, outcome_record, verdict_record};
use lakehouse_kb::metrics::Metrics;
use lakehouse_kb::store::{FeedTypes, Put, Retention, SigRecord, Store, StoreOptions};
use lakehouse_kb::writer::{Writer, WriterConfig};
use serde_json::Value;

use crate::support::{Http, InProcessServer, TestServer, answer, assert_error, log_with};

/// One Server-Sent Event: `id`, `event` and the JSON of `data`.
#[derive(Debug)]
struct SseEvent {
    id: Option<u64>,
    event: String,
    data: Value,
}

/// An open `text/event-stream` answer, read through reqwest's blocking body.
struct Sse {
    body: reqwest::blocking::Response,
    buf: Vec<u8>,
    ready: VecDeque<SseEvent>,
}

impl Sse {
    fn open(client: &reqwest::blocking::Client, url: &str, last_event_id: Option<u64>) -> Sse {
        let mut request = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let body = request.send().unwrap();
        assert_eq!(body.status(), 200);
        Sse::of(body)
    }

    fn of(body: reqwest::blocking::Response) -> Sse {
        Sse {
            body,
            buf: Vec::new(),
            ready: VecDeque::new(),
        }
    }

    fn header(&self, name: &str) -> &str {
        self.body.headers()[name].to_str().unwrap()
    }

    /// Reads at most `max` more bytes; 0 at the end of the stream (or when it broke).
    fn fill(&mut self, max: usize) -> usize {
        let mut chunk = vec![0; max];
        let n = self.body.read(&mut chunk).unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// The complete events read so far (comments and `retry:` left out); a partial one stays.
    fn take_events(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            let block = String::from_utf8(block).unwrap();
            let (mut id, mut event, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.parse().unwrap());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    assert!(data.is_none(), "one data line per event: {block:?}");
                    data = Some(serde_json::from_str(v).unwrap());
                }
            }
            if let (Some(event), Some(data)) = (event, data) {
                events.push(SseEvent { id, event, data });
            }
        }
        events
    }

    /// The next event, reading as needed; `None` when the stream ends first.
    fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            let events = self.take_events();
            self.ready.extend(events);
            if self.ready.is_empty() && self.fill(64 << 10) == 0 {
                return None;
            }
        }
    }
}

fn feed_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn post_events(server: &Http, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"source":"bot","event_kind":"cycle","n":{i}}}"#))
        .collect();
    let answer = server.post_ndjson("/event", lines.join("\n"));
    assert_eq!(answer.status, 200, "{}", answer.text);
}

fn seqs(records: &Value) -> Vec<u64> {
    records
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["seq"].as_u64())
        .collect()
}

#[test]
fn the_store_merges_the_three_tables_in_seq_order_by_type_and_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
    let mut synth = Synth::new(3, 20);
    let mut puts: Vec<Put> = Vec::new();
    for i in 0..300 {
        let record = match i % 5 {
            0 => verdict_record(synth.verdict().as_bytes(), 1_000),
            1 | 2 => event_record(synth.event().as_bytes(), 1_000),
            _ => outcome_record(synth.outcome().as_bytes(), 1_000),
        };
        puts.push(record.unwrap().into());
    }
    store.write(&puts).unwrap();
    let last = store.last_seq().unwrap();

    let walk = |types: FeedTypes, limit: usize, max_bytes: usize| {
        let (mut after, mut got, mut pages) = (0, Vec::new(), 0);
        loop {
            let page = store.feed(after, types, limit, max_bytes).unwrap();
            assert!(page.records.len() <= limit);
            assert_eq!(page.last_seq, last);
            got.extend(page.records.iter().map(|r| {
                let kind = match r {
                    SigRecord::Verdict(_) => 'v',
                    SigRecord::Outcome(_) => 'o',
                    SigRecord::Event(_) => 'e',
                };
                (r.seq(), kind)
            }));
            pages += 1;
            after = page.next_after_seq(after);
            if !page.more {
                assert_eq!(after, last, "a finished walk stands at the last seq");
                return (got, pages);
            }
        }
    };
    let (all, _) = walk(FeedTypes::ALL, 7, usize::MAX);
    assert_eq!(
        all.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "every seq once, in order"
    );
    let (verdicts, _) = walk(
        FeedTypes {
            verdicts: true,
            outcomes: false,
            events: false,
        },
        1000,
        usize::MAX,
    );
    let expected: Vec<_> = all.iter().filter(|r| r.1 == 'v').copied().collect();
    assert_eq!(verdicts, expected);
    assert_eq!(verdicts.len(), 60);
    let (events_and_rows, _) = walk(
        FeedTypes {
            verdicts: false,
            outcomes: true,
            events: true,
        },
        13,
        usize::MAX,
    );
    let expected: Vec<_> = all.iter().filter(|r| r.1 != 'v').copied().collect();
    assert_eq!(events_and_rows, expected);
    // A byte budget of 1 still moves on: one record a page.
    let (one_by_one, pages) = walk(FeedTypes::ALL, 1000, 1);
    assert_eq!(one_by_one, all);
    assert_eq!(pages as u64, last);

    // Retention leaves its mark in the transaction of the deletes.
    assert_eq!(
        store
            .feed(0, FeedTypes::ALL, 1, 1)
            .unwrap()
            .events_deleted_through,
        0
    );
    let rules = Retention {
        max_age_ms: None,
        max_count: Some(10),
        keep_after_seq: None,
    };
    while store.retain_events(rules, 2_000, 25).unwrap() > 0 {}
    let first_kept_event = store
        .feed(
            0,
            FeedTypes {
                verdicts: false,
                outcomes: false,
                events: true,
            },
            1,
            1,
        )
        .unwrap()
        .records[0]
        .seq();
    let page = store.feed(0, FeedTypes::ALL, 1, 1).unwrap();
    let deleted_through = page.events_deleted_through;
    let newest_deleted = all
        .iter()
        .filter(|r| r.1 == 'e' && r.0 < first_kept_event)
        .map(|r| r.0)
        .max()
        .unwrap();
    assert_eq!(deleted_through, newest_deleted);
    let path = store.path().to_owned();
    drop(store);
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(
        store
            .feed(0, FeedTypes::ALL, 1, 1)
            .unwrap()
            .events_deleted_through,
        deleted_through
    );
    assert!(store.check().unwrap().passed());
}

#[test]
fn a_long_poll_answers_at_once_or_wakes_on_the_next_commit() {
    let server = InProcessServer::start();
    post_events(&server, 3);
    let page = server.get("/feed?after_seq=1&limit=1");
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(seqs(&page.json["records"]), [2]);
    assert_eq!(page.json["next_after_seq"], 2);
    assert_eq!(page.json["last_seq"], 3);
    assert_eq!(page.json["records"][0]["type"], "event");
    assert_eq!(page.json["records"][0]["op"]["source"], "bot");
    assert!(page.json["records"][0]["received_at"].is_string());

    // Caught up, no wait: an empty page that keeps the position.
    let empty = server.get("/feed?after_seq=3");
    assert_eq!(
        (seqs(&empty.json["records"]), &empty.json["next_after_seq"]),
        (vec![], &3.into())
    );

    // Caught up with a wait: the answer comes with the next commit, well before the wait ends.
    let base = server.base.clone();
    let started = Instant::now();
    let waiting = std::thread::spawn(move || {
        let answer = feed_client()
            .get(format!("{base}/feed?after_seq=3&wait=30s"))
            .send()
            .unwrap();
        answer.json::<Value>().unwrap()
    });
    // Whether the verdict commits before the long poll arrives (answered at once) or after
    // (woken by the commit), the answer is its three records, committed together.
    let verdict = Synth::new(1, 1).verdict();
    let posted = server.post_json("/verdicts", verdict);
    assert_eq!(posted.status, 201);
    let answer = waiting.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "woke on the commit"
    );
    assert_eq!(seqs(&answer["records"]), [4, 5, 6]);
    let types: Vec<_> = answer["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["verdict", "outcome", "event"]);
    assert_eq!(answer["records"][0]["sig_hash"], posted.json["sig_hash"]);
    assert_eq!(answer["next_after_seq"], 6);

    // A wait that ends with nothing new: an empty page at the same position.
    let answer = server.get("/feed?after_seq=6&wait=200ms&types=verdict");
    assert_eq!(
        (
            seqs(&answer.json["records"]),
            &answer.json["next_after_seq"]
        ),
        (vec![], &6.into())
    );
    // Types filter; the position moves past the records left out.
    post_events(&server, 2);
    let answer = server.get("/feed?after_seq=0&types=verdict,outcome");
    assert_eq!(seqs(&answer.json["records"]), [4, 5]);
    assert_eq!(answer.json["next_after_seq"], 8);
}

#[test]
fn a_stream_sends_each_record_with_its_seq_and_resumes_after_the_last_event_id() {
    let server = InProcessServer::start();
    post_events(&server, 5);
    let client = feed_client();
    let mut stream = Sse::open(&client, &server.url("/feed?types=event"), None);
    assert!(
        stream
            .header("content-type")
            .starts_with("text/event-stream")
    );
    assert_eq!(stream.header("cache-control"), "no-cache");
    assert_eq!(stream.header("x-accel-buffering"), "no");
    for seq in 1..=5 {
        let event = stream.next().unwrap();
        assert_eq!((event.id, event.event.as_str()), (Some(seq), "event"));
        assert_eq!(event.data["seq"], seq);
        assert_eq!(event.data["body"]["n"], seq - 1);
    }
    // Live: a record committed now reaches the open stream.
    post_events(&server, 1);
    assert_eq!(stream.next().unwrap().id, Some(6));
    drop(stream);

    // A reconnection sends Last-Event-ID, which wins over the URL's after_seq.
    post_events(&server, 2);
    let mut resumed = Sse::open(&client, &server.url("/feed?after_seq=1"), Some(6));
    assert_eq!(resumed.next().unwrap().id, Some(7));
    assert_eq!(resumed.next().unwrap().id, Some(8));
}

#[test]
fn a_position_older_than_retention_gets_one_resync_then_what_is_left() {
    let server = InProcessServer::start_with(&[
        "--events-max-count",
        "2",
        "--retention-interval",
        "50ms",
        "--export-interval",
        "0",
    ]);
    post_events(&server, 5);
    let outcome = Synth::new(2, 1).outcome();
    assert_eq!(server.post_json("/outcomes", outcome).status, 201);
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.stats()["total"] != 2 {
        assert!(Instant::now() < deadline, "retention never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = server.get("/feed?after_seq=1");
    let records = answer.json["records"].as_array().unwrap();
    assert_eq!(
        records[0],
        serde_json::json!({"type": "resync", "after_seq": 1, "events_deleted_through": 3, "oldest_seq": 4})
    );
    assert_eq!(seqs(&answer.json["records"]), [4, 5, 6]);
    // Verdicts and rows are never deleted: following them alone needs no resync.
    let rows = server.get("/feed?after_seq=0&types=outcome");
    assert_eq!(rows.json["records"][0]["type"], "outcome");
    // From the oldest seq on, nothing was lost: no resync.
    assert_eq!(
        seqs(&server.get("/feed?after_seq=3").json["records"]),
        [4, 5, 6]
    );
    assert_eq!(
        server.get("/feed?after_seq=3").json["records"][0]["type"],
        "event"
    );

    // A stream says it once, as an event without an id (it does not move the position).
    let client = feed_client();
    let mut stream = Sse::open(&client, &server.url("/feed"), None);
    let first = stream.next().unwrap();
    assert_eq!((first.id, first.event.as_str()), (None, "resync"));
    assert_eq!(first.data["oldest_seq"], 4);
    assert_eq!(stream.next().unwrap().id, Some(4));
}

/// Retention may delete events committed after a stream's or a long poll's last read, before
/// they read them (a slow consumer holds a stream back): the next read says so with a resync
/// notice, as the first one does, instead of skipping them. Here the events are written to the
/// store directly (the feed does not wake for them) and deleted before a posted event wakes it;
/// an outcome row committed first has moved both past where they started.
#[test]
fn events_deleted_between_a_stream_s_reads_get_a_resync_not_a_silent_gap() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap());
    let (_server, base) = serve_in_process(store.clone(), Feed::default());
    let client = feed_client();
    let post = |path: &str, body: String| {
        let answer = client
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
    };
    let event = |n: u64| format!(r#"{{"source":"bot","n":{n}}}"#);
    for n in 1..=3 {
        post("/event", event(n));
    }
    let mut stream = Sse::open(&client, &format!("{base}/feed"), None);
    for seq in 1..=3 {
        assert_eq!(stream.next().unwrap().id, Some(seq));
    }
    // A long poll of events waiting from the same place.
    let waiting = {
        let url = format!("{base}/feed?after_seq=3&types=event&wait=30s");
        let client = client.clone();
        std::thread::spawn(move || answer(client.get(url).send().unwrap()))
    };
    std::thread::sleep(Duration::from_millis(200));
    // Seq 4, a row: the stream sends it, the long poll reads past it and waits on.
    post("/outcomes", r#"{"sig_hash":"row-4"}"#.to_owned());
    assert_eq!(stream.next().unwrap().id, Some(4));
    std::thread::sleep(Duration::from_millis(200));

    // Seqs 5 to 7, unseen by either, then the oldest five events deleted (5 and 6 unseen).
    let puts: Vec<Put> = (5..=7)
        .map(|n| event_record(event(n).as_bytes(), 1_000).unwrap().into())
        .collect();
    store.write(&puts).unwrap();
    let rules = Retention {
        max_count: Some(1),
        ..Retention::default()
    };
    assert_eq!(store.retain_events(rules, 2_000, 100).unwrap(), 5);
    post("/event", event(8));

    let notice = serde_json::json!({"type": "resync", "after_seq": 4, "events_deleted_through": 6, "oldest_seq": 7});
    let first = stream.next().unwrap();
    assert_eq!((first.id, first.event.as_str()), (None, "resync"));
    assert_eq!(first.data, notice);
    assert_eq!(stream.next().unwrap().id, Some(7));
    assert_eq!(stream.next().unwrap().id, Some(8));
    let polled = waiting.join().unwrap();
    assert_eq!(polled.status, 200, "{}", polled.text);
    assert_eq!(polled.json["records"][0], notice, "{}", polled.text);
}

#[test]
fn feed_clients_are_bounded_and_bad_parameters_are_refused() {
    let server = InProcessServer::start_with(&["--max-feed-clients", "1"]);
    let client = feed_client();
    let stream = Sse::open(&client, &server.url("/feed"), None);
    let refused = server.get("/feed");
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(refused.retry_after.is_some());
    assert!(
        refused.json["error"]
            .as_str()
            .unwrap()
            .contains("--max-feed-clients")
    );
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get("/feed").status != 200 {
        assert!(
            Instant::now() < deadline,
            "the closed stream never let go of its place"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    for (query, field, needle) in [
        ("types=verdicts", "types", "verdicts"),
        ("types=", "types", "verdict, outcome, event"),
        ("types=verdict,%20event", "types", "verdict, event"),
        ("wait=31s", "wait", "31s"),
        ("wait=0.5s", "wait", "0.5s"),
        ("after_seq=-1", "after_seq", "-1"),
        ("limit=0", "limit", "0"),
        // A misspelt parameter would read every type, or from the start (a review's).
        ("type=event", "type", "GET /feed takes after_seq, history"),
        ("after=1000", "after", "unknown query parameter"),
    ] {
        assert_error(&server.get(&format!("/feed?{query}")), 400, field, needle);
    }
    let bad_id = client
        .get(server.url("/feed"))
        .header("last-event-id", "seven")
        .send()
        .unwrap();
    assert_error(
        &crate::support::answer(bad_id),
        400,
        "last-event-id",
        "seven",
    );
}

/// A database restored from a backup hands out the seqs after the copy again, for other
/// records: a consumer that passes the `history` its answers named is refused (409, field
/// `history`) for a position past the copy even once the restored database's seqs have passed
/// it, and served for one up to the copy, which both histories share. At 330ba48 only positions
/// past the last seq were refused, so after 8 writes to the restored database a consumer at 15
/// got 16, 17, 18 and never saw 11 to 15 (found by a review of the feed across restores).
#[test]
fn a_restored_backup_s_history_is_told_apart_from_the_one_it_was_copied_from() {
    let live = InProcessServer::start();
    post_events(&live, 10);
    let copied = live.post_json("/backup", r#"{"name":"at-10"}"#);
    assert_eq!(copied.status, 201, "{}", copied.text);
    post_events(&live, 5);
    let history =
        |answer: &crate::support::Answer| answer.json["history"].as_str().unwrap().to_owned();
    let seen = live.get("/feed?after_seq=15");
    let theirs = history(&seen);
    assert_eq!(theirs.len(), 16, "{}", seen.text);

    let restored = InProcessServer::start_in(&live.data.join("backups/at-10"), &[]);
    // Before its first write too: a copy is given its own history at its first open.
    let early = restored.get(&format!("/feed?after_seq=10&history={theirs}"));
    assert_eq!(early.status, 200, "{}", early.text);
    assert_ne!(history(&early), theirs);
    post_events(&restored, 8);
    let ours = history(&restored.get("/feed?after_seq=18"));
    assert_ne!(ours, theirs);
    // (after_seq, history, status, the first record served)
    let cases = [
        (15, Some(&theirs), 409, None),
        (11, Some(&theirs), 409, None),
        (10, Some(&theirs), 200, Some(11)),
        (8, Some(&theirs), 200, Some(9)),
        (0, Some(&theirs), 200, Some(1)),
        (15, Some(&ours), 200, Some(16)),
        (15, None, 200, Some(16)),
    ];
    for (after_seq, history, status, first) in cases {
        let query = match history {
            Some(h) => format!("/feed?after_seq={after_seq}&history={h}"),
            None => format!("/feed?after_seq={after_seq}"),
        };
        let answer = restored.get(&query);
        assert_eq!(answer.status, status, "{query}: {}", answer.text);
        if status == 409 {
            assert_error(
                &answer,
                409,
                "history",
                "copied from that history at seq 10",
            );
        } else {
            assert_eq!(answer.json["records"][0]["seq"].as_u64(), first, "{query}");
            assert_eq!(answer.json["history"], ours.as_str());
        }
    }
    // A stream too, with the id it would resume from.
    let client = feed_client();
    let refused = crate::support::answer(
        client
            .get(restored.url(&format!("/feed?history={theirs}")))
            .header("accept", "text/event-stream")
            .header("last-event-id", "15")
            .send()
            .unwrap(),
    );
    assert_error(&refused, 409, "history", "not in this database's");
    assert_error(
        &restored.get("/feed?history=xyz"),
        400,
        "history",
        "16 hex digits",
    );

    // A copy of the copy, at 18: it shares 1..=10 with the first history and 1..=18 with the
    // second, before and after its own writes.
    let again = restored.post_json("/backup", r#"{"name":"at-18"}"#);
    assert_eq!(again.status, 201, "{}", again.text);
    let twice = InProcessServer::start_in(&restored.data.join("backups/at-18"), &[]);
    for written in [false, true] {
        if written {
            post_events(&twice, 3);
        }
        // (after_seq, history, status)
        for (after_seq, history, status) in
            [(10, &theirs, 200), (11, &theirs, 409), (18, &ours, 200)]
        {
            let query = format!("/feed?after_seq={after_seq}&history={history}");
            assert_eq!(
                twice.get(&query).status,
                status,
                "{query} (written: {written})"
            );
        }
    }
}

/// A position past the last seq is not from this database's history (a restored backup,
/// another database, a forged cursor): following it would skip the records committed next,
/// so it is refused, saying where to resume. The last seq itself is a position like any other.
#[test]
fn a_position_past_the_last_seq_is_refused_saying_where_to_resume() {
    let server = InProcessServer::start();
    post_events(&server, 3);
    let at_last = server.get("/feed?after_seq=3");
    assert_eq!(at_last.status, 200, "{}", at_last.text);
    assert_eq!(
        (&at_last.json["records"], &at_last.json["next_after_seq"]),
        (&serde_json::json!([]), &serde_json::json!(3))
    );
    let client = feed_client();
    let ahead = |query: &str, last_event_id: Option<&str>| {
        let mut request = client.get(server.url(&format!("/feed{query}")));
        if let Some(id) = last_event_id {
            request = request
                .header("accept", "text/event-stream")
                .header("last-event-id", id);
        }
        crate::support::answer(request.send().unwrap())
    };
    // (query, Last-Event-ID, field)
    let cases = [
        ("?after_seq=4", None, "after_seq"),
        ("?after_seq=9007199254740991&wait=5s", None, "after_seq"),
        ("", Some("8"), "last-event-id"),
        ("?after_seq=1", Some("8"), "last-event-id"),
    ];
    for (query, id, field) in cases {
        let answer = ahead(query, id);
        assert_error(&answer, 409, field, "past this database's last seq 3");
        assert!(
            answer.json["error"]
                .as_str()
                .unwrap()
                .contains("resume from 3"),
            "{}",
            answer.text
        );
    }
    // Nothing was skipped: the next record is served to a consumer at the last seq.
    post_events(&server, 1);
    let next = server.get("/feed?after_seq=3");
    assert_eq!(seqs(&next.json["records"]), [4], "{}", next.text);
    // Position 0 is before any record of any history: served, where the 409's advice ("0
    // reads everything again") was refused again until 2026-12-06 (a review's).
    let foreign = "0123456789abcdef";
    let from_start = server.get(&format!("/feed?after_seq=0&history={foreign}"));
    assert_eq!(from_start.status, 200, "{}", from_start.text);
    assert_eq!(seqs(&from_start.json["records"]), [1, 2, 3, 4]);
    assert_ne!(from_start.json["history"], foreign);
    let at_1 = server.get(&format!("/feed?after_seq=1&history={foreign}"));
    assert_error(&at_1, 409, "history", "does not share it");
}

#[test]
fn the_feed_is_a_read_guarded_with_auth_reads() {
    let server = InProcessServer::start_with(&["--auth-reads", "--token", "s3cret"]);
    assert_error(&server.get("/feed"), 401, "authorization", "token");
    let answer = server
        .client()
        .get(server.url("/feed"))
        .bearer_auth("s3cret")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
}

#[test]
fn shutdown_ends_open_streams_instead_of_waiting_for_them() {
    let mut server = TestServer::start_with(&["--shutdown-timeout", "120s"], &[]);
    let client = feed_client();
    let mut streams: Vec<Sse> = (0..3)
        .map(|_| Sse::open(&client, &server.url("/feed"), None))
        .collect();
    for stream in &mut streams {
        stream.fill(64);
    }
    let started = Instant::now();
    assert!(server.stop().success());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the open streams held the shutdown for {:?}",
        started.elapsed()
    );
    for mut stream in streams {
        assert!(stream.next().is_none(), "the stream ended");
    }
}

/// The real router and accept loop in this process, on an ephemeral port, with a feed of the
/// given settings (timings shorter than the binary's); dropped with the returned runtime.
fn serve_in_process(store: Arc<Store>, feed: Feed) -> (tokio::runtime::Runtime, String) {
    let (runtime, base, _) = serve_in_process_with(store, feed, ServerConfig::default());
    (runtime, base)
}

/// [`serve_in_process`] with `config`, and the server's state.
fn serve_in_process_with(
    store: Arc<Store>,
    feed: Feed,
    config: ServerConfig,
) -> (tokio::runtime::Runtime, String, AppState) {
    let metrics = Arc::new(Metrics::new());
    let (writer, _thread) = Writer::spawn(store.clone(), WriterConfig::default(), metrics.clone());
    let state = AppState::new(lakehouse_kb::http::Shared {
        store,
        writer,
        metrics,
        config: Arc::new(config),
        export: None,
        feed,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = http::app(state.clone());
    let switch = http::Switch::new(
        tokio::sync::watch::channel(Some(app)).1,
        http::recovering_router(http::Recovery::default()),
    );
    runtime.spawn(http::serve(
        listener,
        switch,
        http::ConnectionLimits::default(),
        std::future::pending(),
    ));
    (runtime, base, state)
}

/// An idle stream sends keep-alive comments, and every block it ends with a blank line is an
/// event with data: a block of fields alone (the opening `retry:`, once its own block) is no
/// event to EventSource, but httpx-sse hands it over as an empty message, and a consumer that
/// parsed each message's data failed on every connection (a review's). The `retry:` comes with
/// the first event instead, and the keep-alive comments between events.
#[test]
fn an_idle_stream_keeps_alive_and_every_block_it_ends_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap());
    let feed = Feed::default().with_timing(Duration::from_millis(50), Duration::from_secs(10));
    let (_server, base) = serve_in_process(store, feed);
    let client = feed_client();
    let mut stream = Sse::open(&client, &format!("{base}/feed"), None);
    while !String::from_utf8_lossy(&stream.buf).contains(": keep-alive\n: keep-alive\n") {
        assert!(stream.fill(1 << 10) > 0, "the idle stream ended");
    }
    assert!(stream.take_events().is_empty(), "comments are not events");
    let posted = client
        .post(format!("{base}/event"))
        .body(r#"{"source":"bot"}"#)
        .send()
        .unwrap();
    assert_eq!(posted.status(), 200);
    while !stream.buf.ends_with(b"\n\n") {
        assert!(stream.fill(1 << 10) > 0, "the stream ended");
    }
    let text = String::from_utf8(stream.buf.clone()).unwrap();
    let blocks: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(blocks.len(), 1, "{text:?}");
    let lines: Vec<&str> = blocks[0].lines().collect();
    assert_eq!(lines[0], "retry: 1000", "{text:?}");
    assert!(
        lines[1..lines.len() - 3]
            .iter()
            .all(|l| *l == ": keep-alive"),
        "{text:?}"
    );
    assert!(lines[lines.len() - 3..][0].starts_with("id: "), "{text:?}");
    assert!(lines[lines.len() - 1].starts_with("data: {"), "{text:?}");
}

/// A store of 4,000 events of 8 KiB, 32 MiB: more than the socket buffers, hyper's and a
/// stream's together.
fn big_events() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap());
    let filler = "x".repeat(8 << 10);
    let puts: Vec<Put> = (0..4_000)
        .map(|i| {
            let body =
                format!(r#"{{"source":"bot","event_kind":"big","n":{i},"filler":"{filler}"}}"#);
            event_record(body.as_bytes(), 1_000).unwrap().into()
        })
        .collect();
    store.write(&puts).unwrap();
    (dir, store)
}

/// A consumer that stops reading is cut once its buffer stays full past the stall timeout; it
/// resumes from its last complete event with nothing lost. Run in process to shorten the
/// timeout; `--max-feed-clients 1` shows the cut stream gave its place back.
#[test]
fn a_stalled_consumer_is_cut_and_resumes_from_its_last_event() {
    let (_dir, store) = big_events();
    let feed = Feed::new(1).with_timing(Duration::from_secs(15), Duration::from_millis(200));
    let (_server, base) = serve_in_process(store, feed);

    let client = feed_client();
    let mut slow = Sse::open(&client, &format!("{base}/feed"), None);
    // Being slow is the point here: a consumer that reads nothing for ten stall timeouts.
    std::thread::sleep(Duration::from_secs(2));
    let mut last = 0;
    loop {
        for event in slow.take_events() {
            assert_eq!(event.id, Some(last + 1));
            last += 1;
        }
        if last == 4_000 || slow.fill(1 << 20) == 0 {
            break;
        }
    }
    assert!(
        last < 4_000,
        "the stalled stream was cut, not served to its end"
    );

    // Resumes from its last event; on this busy machine the resumed stream may be cut again
    // (the stall timeout is short here), and each time it resumes the same way.
    let deadline = Instant::now() + Duration::from_secs(60);
    while last < 4_000 {
        assert!(Instant::now() < deadline, "never caught up");
        let answer = client
            .get(format!("{base}/feed"))
            .header("accept", "text/event-stream")
            .header("last-event-id", last.to_string())
            .send()
            .unwrap();
        if answer.status() == 503 {
            // The cut stream gives its place back once its connection is gone.
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        assert_eq!(answer.status(), 200);
        let mut resumed = Sse::of(answer);
        while let Some(event) = resumed.next() {
            assert_eq!(event.id, Some(last + 1), "no gap, no duplicate");
            last += 1;
            if last == 4_000 {
                break;
            }
        }
    }
}

/// A consumer that stops reading altogether (its socket open, never read) is cut at the stall
/// timeout, connection and all, and the pages it left unread are counted in the pool of
/// answers meanwhile. Before, hyper never asked the stream's body again (its buffer never
/// drained), so the connection, the feed slot and the pages stayed until `--write-timeout` (30
/// s; a review: 64 such streams held every feed slot, and 13 MB each outside the pool).
#[test]
fn a_consumer_that_never_reads_is_dropped_at_the_stall_timeout() {
    // Long enough that a busy machine's first long poll comes before the cut (at 300 ms one
    // came after it, and found the slot free).
    let stall = Duration::from_secs(1);
    let (_dir, _server, base, state) = serve_big_events(1, stall, None);
    let mut stalled = open_unread_stream(&base);
    let started = Instant::now();
    let client = feed_client();
    let long_poll = || client.get(format!("{base}/feed?limit=1")).send().unwrap();
    // Until the stream holds the one feed slot.
    while long_poll().status() == 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the stream never began"
        );
    }
    let mut most_held = 0;
    let freed = loop {
        most_held = most_held.max(state.answers().held());
        let answer = long_poll();
        if answer.status() == 200 {
            break started.elapsed();
        }
        assert_eq!(answer.status(), 503);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the stalled stream kept its feed slot"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(freed >= stall, "{freed:?}");
    // The pages it holds: two ready, one given to hyper, one waiting for room in the buffer
    // (each a page of at most 256 KiB and a record); and the long poll's answer of one record.
    let page = (256 << 10) + (9 << 10);
    assert!(
        most_held > 0 && most_held <= 4 * page + (9 << 10),
        "{most_held}"
    );
    assert_closed(&mut stalled);
    assert_eq!(state.answers().held(), 0, "its pages were given back");
}

/// A server over [`big_events`] with `clients` feed slots, a stall timeout of `stall`, and
/// `max_answer_bytes` as `--max-answer-bytes` (the default when `None`).
fn serve_big_events(
    clients: usize,
    stall: Duration,
    max_answer_bytes: Option<usize>,
) -> (tempfile::TempDir, tokio::runtime::Runtime, String, AppState) {
    let (dir, store) = big_events();
    let feed = Feed::new(clients).with_timing(Duration::from_secs(15), stall);
    let mut config = ServerConfig::default();
    if let Some(max) = max_answer_bytes {
        config.max_answer_bytes = max;
    }
    let (server, base, state) = serve_in_process_with(store, feed, config);
    (dir, server, base, state)
}

/// A stream asked for on a raw connection whose client then reads nothing.
fn open_unread_stream(base: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream
        .write_all(b"GET /feed HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    stream
}

/// Fails unless the server closes `stream` within 5 s of reading: what the kernel had
/// buffered, then the end.
#[track_caller]
fn assert_closed(stream: &mut std::net::TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buffer = vec![0; 1 << 20];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the stream's connection stayed open: {e}"),
        }
    }
}

/// Waits until streams whose consumers stopped reading hold what they can of the pool of
/// answers (their sockets' buffers full, their pages held for as long as they read nothing):
/// at least `at_least` bytes, and no more for 400 ms.
fn until_stalled_streams_hold(state: &AppState, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut most, mut since) = (0, Instant::now());
    while most < at_least || since.elapsed() < Duration::from_millis(400) {
        assert!(
            Instant::now() < deadline,
            "the stalled streams held {most} bytes at most"
        );
        let held = state.answers().held();
        if held > most {
            (most, since) = (held, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A shutdown ends a stream whose consumer stopped reading at once, connection and all: its
/// pages waiting in hyper's buffer held the graceful shutdown until `--write-timeout` (30 s,
/// or `--shutdown-timeout` when shorter: a review's).
#[test]
fn shutdown_drops_a_stream_whose_consumer_stopped_reading() {
    let (_dir, _server, base, state) = serve_big_events(4, Duration::from_secs(60), None);
    let mut stalled = open_unread_stream(&base);
    // Until its buffer is full, and more.
    std::thread::sleep(Duration::from_millis(500));
    state.feed.close();
    assert_closed(&mut stalled);
}

/// Consumers that stop reading, holding the feed's share of the pool of answers between them,
/// are each cut once they have taken nothing for the stall timeout, all at once; a consumer
/// that reads waits for room meanwhile and is never cut. The cut went by how long a stream
/// waited for room: the readers were cut first, and the stalled streams one after another (a
/// review's). Other reads keep the other half of the pool: they got 503 while such streams
/// held it all (a second review's).
#[test]
fn readers_are_not_cut_for_room_that_stalled_consumers_hold() {
    let (_dir, _server, base, state) = serve_big_events(8, Duration::from_secs(2), Some(600 << 10));
    let _stalled: Vec<_> = (0..3).map(|_| open_unread_stream(&base)).collect();
    until_stalled_streams_hold(&state, 250 << 10);
    let client = feed_client();
    // A long poll of about 250 KiB of events: room the stalled streams leave.
    let read = client.get(format!("{base}/feed?limit=30")).send().unwrap();
    assert_eq!(read.status(), 200, "{}", read.text().unwrap());
    let mut reader = Sse::open(&client, &format!("{base}/feed"), None);
    for n in 1..=4_000 {
        let event = reader
            .next()
            .unwrap_or_else(|| panic!("cut after {} events", n - 1));
        assert_eq!(event.id, Some(n));
    }
}

/// A stream waiting for room among the answers (a consumer that stopped reading holds them)
/// ends when its own client leaves, giving its feed slot back: it kept it for the stall
/// timeout (a review's).
#[test]
fn a_stream_waiting_for_room_gives_its_slot_back_when_its_client_leaves() {
    let (_dir, _server, base, state) =
        serve_big_events(2, Duration::from_secs(60), Some(300 << 10));
    let _stalled = open_unread_stream(&base);
    until_stalled_streams_hold(&state, 200 << 10);
    let mut leaving = open_unread_stream(&base);
    let mut status = [0; 12];
    leaving.read_exact(&mut status).unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");
    drop(leaving);
    let client = feed_client();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = client.get(format!("{base}/feed?limit=1")).send().unwrap();
        match answer.status().as_u16() {
            200 => break,
            503 => assert!(
                Instant::now() < deadline,
                "the stream whose client left kept its slot: {}",
                answer.text().unwrap()
            ),
            other => panic!("{other}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one writer thread posted: records by type.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Posted {
    verdicts: u64,
    outcomes: u64,
    events: u64,
}

/// Posts `budget` records as a seeded mix of verdicts (three records each), outcome rows,
/// single events and NDJSON batches of events.
fn write_records(
    server_base: &str,
    client: &reqwest::blocking::Client,
    seed: u64,
    budget: u64,
) -> Posted {
    let mut rng = Rng::new(seed);
    let mut synth = Synth::new(seed, 50);
    let mut posted = Posted::default();
    let mut left = budget;
    while left > 0 {
        let post = |path: &str, content_type: &str, body: String| {
            let answer = client
                .post(format!("{server_base}{path}"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .unwrap();
            assert!(answer.status().is_success(), "{path}: {}", answer.status());
        };
        match rng.below(10) {
            0 | 1 if left >= 3 => {
                post("/verdicts", "application/json", synth.verdict());
                posted.verdicts += 1;
                posted.outcomes += 1;
                posted.events += 1;
                left -= 3;
            }
            2 => {
                post("/outcomes", "application/json", synth.outcome());
                posted.outcomes += 1;
                left -= 1;
            }
            3..=5 => {
                let n = (2 + rng.below(40)).min(left);
                let lines: Vec<String> = (0..n).map(|_| synth.event()).collect();
                post("/event", "application/x-ndjson", lines.join("\n"));
                posted.events += n;
                left -= n;
            }
            _ => {
                post("/event", "application/json", synth.event());
                posted.events += 1;
                left -= 1;
            }
        }
    }
    posted
}

/// The issue's acceptance test: 10,000 records written by four clients while one consumer
/// follows the feed, disconnecting at 100 seeded random points (mid-event as often as not)
/// and resuming from its position, mostly as a stream with `Last-Event-ID` or `after_seq`,
/// sometimes by long poll: it receives exactly seqs 1..10,000, in order, once each.
#[test]
fn ten_thousand_writes_reach_a_consumer_that_disconnects_a_hundred_times() {
    const TOTAL: u64 = 10_000;
    const WRITERS: u64 = 4;
    const DISCONNECTS: u32 = 100;
    let server = TestServer::start_with(&["--export-interval", "0"], &[]);
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let base = server.base.clone();
            let client = server.client().clone();
            std::thread::spawn(move || write_records(&base, &client, 1_000 + t, TOTAL / WRITERS))
        })
        .collect();

    let client = feed_client();
    let mut rng = Rng::new(19);
    let mut position = 0u64;
    let mut received = Posted::default();
    // Server cuts: a consumer starved of CPU on a loaded machine may be cut as too slow; it
    // resumes like any other, so they are counted, not failed.
    let (mut disconnects, mut long_polls, mut server_cuts) = (0, 0, 0);
    let mut take = |data: &Value, position: &mut u64| {
        let seq = data["seq"].as_u64().unwrap();
        assert_eq!(
            seq,
            *position + 1,
            "no gap, no duplicate (after {position})"
        );
        *position = seq;
        match data["type"].as_str().unwrap() {
            "verdict" => received.verdicts += 1,
            "outcome" => received.outcomes += 1,
            "event" => received.events += 1,
            other => panic!("unexpected item {other}"),
        }
    };
    while position < TOTAL {
        if disconnects < DISCONNECTS && rng.chance(80) {
            // A stream, dropped after a random number of bytes (mid-event, mostly).
            let budget = 1 + rng.below(20_000) as usize;
            let mut stream = if rng.chance(50) {
                Sse::open(&client, &server.url("/feed"), Some(position))
            } else {
                Sse::open(
                    &client,
                    &server.url(&format!("/feed?after_seq={position}")),
                    None,
                )
            };
            let mut read = 0;
            while read < budget && position < TOTAL {
                let n = stream.fill((budget - read).min(8 << 10));
                if n == 0 {
                    server_cuts += 1;
                    break;
                }
                read += n;
                for event in stream.take_events() {
                    assert_eq!(event.id, event.data["seq"].as_u64());
                    take(&event.data, &mut position);
                }
            }
            if read >= budget {
                disconnects += 1;
            }
        } else if disconnects < DISCONNECTS {
            let limit = 1 + rng.below(1_000);
            let page: Value = client
                .get(server.url(&format!("/feed?after_seq={position}&wait=5s&limit={limit}")))
                .send()
                .unwrap()
                .json()
                .unwrap();
            for record in page["records"].as_array().unwrap() {
                take(record, &mut position);
            }
            position = position.max(page["next_after_seq"].as_u64().unwrap());
            long_polls += 1;
        } else {
            // The last session reads to the end.
            let mut stream = Sse::open(&client, &server.url("/feed"), Some(position));
            while position < TOTAL {
                let Some(event) = stream.next() else {
                    server_cuts += 1;
                    break;
                };
                take(&event.data, &mut position);
            }
        }
    }
    let mut posted = Posted::default();
    for writer in writers {
        let p = writer.join().unwrap();
        posted.verdicts += p.verdicts;
        posted.outcomes += p.outcomes;
        posted.events += p.events;
    }
    assert_eq!(
        disconnects, DISCONNECTS,
        "the writes outlasted the planned disconnects"
    );
    // Every stream that ended early must have been cut by the server, which logs it.
    let slow_cuts = log_with(&server.data, "feed consumer too slow", server_cuts)
        .matches("feed consumer too slow")
        .count();
    assert!(
        server_cuts <= slow_cuts,
        "a stream ended that the server did not cut as too slow"
    );
    assert_eq!(received, posted);
    assert_eq!(server.stats()["last_seq"], TOTAL);
    eprintln!(
        "10,000 records, {disconnects} disconnects, {long_polls} long polls, {server_cuts} cut by the server: {:?}",
        started.elapsed()
    );
}
