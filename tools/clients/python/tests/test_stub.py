"""The client against a stub server that misbehaves on purpose: an HTML 502, a body that stalls,
503 with Retry-After in both forms, a body that is not JSON, a refused connection, a feed cut
mid-event. Every failure must be a KbError; every retry of a write must carry the same
Idempotency-Key. Run by tests/it/clients.rs: python3 -m unittest discover -s tests"""

import datetime
import email.utils
import json
import socket
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from lakehouse_kb_client import USER_AGENT, KbClient, KbError, is_omitted, retry_after_secs

SEEN = {}  # scenario -> [(method, path, headers)]
BODIES = {}  # scenario -> [body bytes]
LOCK = threading.Lock()


def event(seq):
    item = {"type": "event", "seq": seq, "received_at": "t", "op": {}}
    return f"id: {seq}\nevent: event\ndata: {json.dumps(item)}\n\n".encode()


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def handle_any(self):
        if self.path.split("/")[1] in ("early413", "trickle"):
            # Answered before the body is read.
            getattr(self, "play_" + self.path.split("/")[1])()
            return
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        scenario = self.path.split("/")[1]
        with LOCK:
            BODIES.setdefault(scenario, []).append(body)
            log = SEEN.setdefault(scenario, [])
            log.append((self.command, self.path, dict((k.lower(), v) for k, v in self.headers.items())))
            n = len(log)
        getattr(self, "play_" + scenario)(n)

    def send(self, status, body, content_type="application/json", headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def play_early413(self):
        # As the service answers a body over --max-body: at once, then closing, the body unread.
        self.send(413, {"error": "body is larger than the limit of 1048576 bytes (--max-body)", "field": "body"})
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def play_trickle(self):
        for byte in b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}":
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.05)
        self.close_connection = True

    def play_findingpages(self, n):
        def finding(fingerprint, seq):
            return {"fingerprint": fingerprint, "summary": fingerprint, "last_seen": {"head_sha": "a", "audited_at": "t", "seq": seq}}

        # Page 2 as after a push: F raised again (newer), G, and H given again unchanged.
        if n == 1:
            self.send(200, {"findings": [finding("f", 1), finding("h", 1)], "next_cursor": "1-0000000000000001-1"})
        else:
            self.send(200, {"findings": [finding("f", 3), finding("h", 1), finding("g", 1)]})

    def play_findingmarker(self, n):
        # One finding over --max-response: the page holds a marker in its place.
        self.send(200, {"findings": [{"seq": 5, "omitted_bytes": 1783}], "next_cursor": "5-0000000000000001-5"})

    def play_html502(self, n):
        self.send(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")

    def play_gateway504(self, n):
        self.send(504, b"<html><body><h1>504 Gateway Time-out</h1></body></html>", "text/html")

    def play_cutshort(self, n):
        # A 200 whose body ends before its Content-Length: the first time only.
        if n > 1:
            self.send(200, {"ok": True, "seq": 12})
            return
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "200")
        self.end_headers()
        self.wfile.write(b'{"ok":true,"seq":12')
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def play_stall(self, n):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "100")
        self.end_headers()
        self.wfile.write(b'{"total":')
        self.wfile.flush()
        time.sleep(1.5)
        self.close_connection = True

    def play_busy2(self, n):
        if n == 1:
            self.send(503, {"error": "the write queue is full"}, headers=[("retry-after", "2")])
        else:
            self.send(200, {"ok": True, "seq": 7})

    def play_busydate(self, n):
        if n == 1:
            at = email.utils.formatdate(time.time() + 1.5, usegmt=True)
            self.send(503, {"error": "busy"}, headers=[("retry-after", at)])
        else:
            self.send(200, {"ok": True, "seq": 8})

    def play_busyfar(self, n):
        at = email.utils.formatdate(time.time() + 3600, usegmt=True)
        self.send(503, {"error": "busy for an hour"}, headers=[("retry-after", at)])

    def play_maybe(self, n):
        self.send(503, {"error": "the request took too long (a write may still have been committed)"})

    def play_full(self, n):
        if n == 1:
            self.send(507, {"error": "no space left on the database's disk"}, headers=[("retry-after", "0")])
        else:
            self.send(200, {"ok": True, "seq": 9, "duplicate": True})

    def play_alwaysfull(self, n):
        self.send(507, {"error": "no space left on the database's disk"}, headers=[("retry-after", "0")])

    def play_degraded(self, n):
        self.send(503, {"status": "degraded", "storage": {"no_space": True}}, headers=[("retry-after", "1")])

    def play_accept(self, n):
        self.send(200, {"accepted": 1, "duplicates": 0, "rejected": [], "ok": True, "seq": n, "sig_hash": "s"})

    def play_badjson(self, n):
        self.send(200, b"{not json")

    def play_longpoll(self, n):
        time.sleep(0.8)
        self.send(200, {"records": [], "next_after_seq": 5, "last_seq": 5})

    def play_refuse400(self, n):
        self.send(400, {"error": 'head_sha must be hex, got "x"', "field": "head_sha"})

    def play_feedcut(self, n):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        # The history the server names: from the second answer on, another (a database
        # restored from a backup that shares the position asked for).
        self.send_header("feed-history", "00000000000000a1" if n == 1 else "00000000000000b2")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def chunk(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        if n == 1:
            chunk(b"retry: 1000\n\n" + event(1) + event(2) + event(3)[:20])
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif n == 2:
            resync = {"type": "resync", "after_seq": 2, "events_deleted_through": 2, "oldest_seq": 3}
            chunk(event(2) + event(3) + b"event: resync\ndata: " + json.dumps(resync).encode() + b"\n\n" + event(4))
            self.wfile.write(b"0\r\n\r\n")
        else:
            chunk(b": keep-alive\n\n" + event(5))
            time.sleep(0.5)
            self.wfile.write(b"0\r\n\r\n")

    def play_feedhistory(self, n):
        # A stream naming its history, with one event.
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("feed-history", "00000000000000c3")
        self.send_header("content-length", str(len(event(1))))
        self.end_headers()
        self.wfile.write(event(1))


class StubTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
        cls.server.daemon_threads = True
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def client(self, scenario, **options):
        options.setdefault("timeout", 0.5)
        return KbClient(base_url=f"{self.base}/{scenario}", **options)

    def failure(self, call):
        with self.assertRaises(KbError) as caught:
            call()
        return caught.exception

    def test_an_html_502_is_a_kb_error_retried_for_reads(self):
        error = self.failure(lambda: self.client("html502", retries=1).stats())
        self.assertEqual((error.kind, error.status), ("http", 502))
        self.assertRegex(str(error), "HTTP 502.*Bad Gateway")
        self.assertEqual(len(SEEN["html502"]), 2)
        self.assertEqual(SEEN["html502"][0][2]["user-agent"], USER_AGENT)

    def test_a_finding_over_the_servers_budget_is_an_error_naming_it_not_a_crash(self):
        error = self.failure(lambda: list(self.client("findingmarker").all_findings(6)))
        self.assertEqual(error.kind, "bad_response")
        self.assertIn("--max-response", str(error))
        self.assertTrue(is_omitted({"seq": 5, "omitted_bytes": 1783}))
        self.assertFalse(is_omitted({"seq": 5, "fingerprint": "d83d71c10f353aa9"}))

    def test_a_write_a_proxy_gave_up_on_may_have_committed_and_is_retried_with_its_key(self):
        error = self.failure(lambda: self.client("gateway504", retries=1).post_event({"source": "bot"}))
        self.assertEqual((error.kind, error.status, error.may_be_committed), ("http", 504, True))
        self.assertIn("may have been committed", str(error))
        keys = [headers["idempotency-key"] for method, _, headers in SEEN["gateway504"] if method == "POST"]
        self.assertEqual((len(keys), len(set(keys))), (2, 1), "retried once, with the same key")

    def test_an_answer_cut_short_of_its_length_is_not_the_answer_and_is_retried(self):
        self.assertEqual(self.client("cutshort", retries=1).post_event({"source": "bot"}), {"ok": True, "seq": 12})
        keys = [headers["idempotency-key"] for method, _, headers in SEEN["cutshort"] if method == "POST"]
        self.assertEqual((len(keys), len(set(keys))), (2, 1), "retried once, with the same key")

    def test_a_stalled_body_times_out_and_a_write_may_have_committed(self):
        read = self.failure(lambda: self.client("stall", retries=0).stats())
        self.assertEqual((read.kind, read.may_be_committed), ("timeout", False))
        write = self.failure(lambda: self.client("stall", retries=2, timeout=0.2).post_event({"source": "bot"}))
        self.assertEqual((write.kind, write.may_be_committed), ("timeout", True))
        self.assertIn("may have been committed", str(write))
        keys = {headers["idempotency-key"] for method, _, headers in SEEN["stall"] if method == "POST"}
        self.assertEqual(len([1 for method, _, _ in SEEN["stall"] if method == "POST"]), 3, "a timed-out write is retried")
        self.assertEqual(len(keys), 1, "with the same key")

    def test_a_body_refused_before_it_is_read_is_the_servers_answer(self):
        # The server answers 413 and closes while the body is still being sent: the client
        # reads the answer instead of taking the broken pipe for a write that may have
        # committed (it resent 20 MB four times so).
        rows = [{"source": "bot", "pad": "x" * 1000, "i": i} for i in range(8000)]
        error = self.failure(lambda: self.client("early413", retries=3, timeout=5).post_events(rows))
        self.assertEqual((error.kind, error.status, error.field, error.may_be_committed), ("http", 413, "body", False))

    def test_headers_that_trickle_in_are_cut_at_the_deadline(self):
        # A socket's timeout bounds each read alone: headers sent a byte at a time for 4 s
        # must not outlast a 0.5 s deadline.
        started = time.monotonic()
        error = self.failure(lambda: self.client("trickle", retries=0).stats())
        self.assertEqual(error.kind, "timeout")
        self.assertLess(time.monotonic() - started, 2.0)

    def test_all_findings_gives_a_newer_state_and_skips_one_given_again_unchanged(self):
        states = [f"{f['fingerprint']}@{f['last_seen']['seq']}" for f in self.client("findingpages").all_findings(7)]
        self.assertEqual(states, ["f@1", "h@1", "f@3", "g@1"])

    def test_503_with_retry_after_2_is_retried_with_the_same_key(self):
        started = time.monotonic()
        self.assertEqual(self.client("busy2").post_event({"source": "bot"})["seq"], 7)
        self.assertGreaterEqual(time.monotonic() - started, 1.9)
        first, second = SEEN["busy2"]
        self.assertEqual(first[2]["idempotency-key"], second[2]["idempotency-key"])

    def test_503_with_an_http_date_retry_after_is_retried_with_the_same_key(self):
        posted = self.client("busydate").post_verdict({"pr_number": 1}, idempotency_key="caller-key-1")
        self.assertEqual(posted["seq"], 8)
        self.assertEqual([h["idempotency-key"] for _, _, h in SEEN["busydate"]], ["caller-key-1"] * 2)

    def test_retry_after_is_capped(self):
        error = self.failure(lambda: self.client("busyfar", retries=0).post_event({}))
        self.assertEqual((error.status, error.retry_after), (503, 30.0))
        capped = self.failure(lambda: self.client("busyfar", retries=1, max_retry_after=0.3).stats())
        self.assertEqual(capped.retry_after, 0.3)
        self.assertEqual(retry_after_secs("7"), 7.0)
        self.assertIsNone(retry_after_secs("soon"))
        self.assertEqual(retry_after_secs(email.utils.formatdate(time.time() - 5, usegmt=True)), 0.0)

    def test_a_503_without_retry_after_to_a_write_is_not_retried(self):
        error = self.failure(lambda: self.client("maybe").post_outcome({"sig_hash": "s"}))
        self.assertTrue(error.may_be_committed)
        self.assertEqual(len(SEEN["maybe"]), 1)

    def test_a_507_to_a_write_is_retried_with_the_same_key_and_giving_up_may_have_committed(self):
        self.assertEqual(self.client("full").post_event({"source": "bot"})["seq"], 9)
        first, second = SEEN["full"]
        self.assertEqual(first[2]["idempotency-key"], second[2]["idempotency-key"])
        error = self.failure(lambda: self.client("alwaysfull", retries=1).post_event({}))
        self.assertEqual((error.status, error.may_be_committed), (507, True))

    def test_health_is_not_retried(self):
        started = time.monotonic()
        error = self.failure(lambda: self.client("degraded").health())
        self.assertEqual((error.status, len(SEEN["degraded"])), (503, 1))
        self.assertLess(time.monotonic() - started, 0.9)

    def test_what_cannot_be_sent_is_a_kb_error_naming_it_and_nothing_is_sent(self):
        # A review's (f639646): each of these raised ValueError, TypeError or
        # UnicodeEncodeError, not the KbError the README promises, and field was never set.
        cases = [
            ("NaN", lambda kb: kb.post_event({"x": float("nan")}), "body"),
            ("a datetime", lambda kb: kb.post_event({"at": datetime.datetime.now()}), "body"),
            ("a str row with a lone surrogate", lambda kb: kb.post_outcome('{"sig_hash":"a","x":"\ud83d"}'), "body"),
            ("a key with a newline", lambda kb: kb.post_event({}, idempotency_key="a\nb"), "idempotency-key"),
            ("a key beyond Latin-1", lambda kb: kb.post_event({}, idempotency_key="ключ-1"), "idempotency-key"),
            ("a token beyond Latin-1", lambda kb: KbClient(base_url=f"{self.base}/unsent", token="токен").stats(), "token"),
            ("a negative PR number", lambda kb: kb.findings(-1), "pr_number"),
            ("a dismissal id as text", lambda kb: kb.revoke_dismissal("7"), "id"),  # type: ignore[arg-type]
            ("a base URL without a scheme", lambda kb: KbClient(base_url="localhost:3800"), "base_url"),
            # A second review's: ValueError from the URL's parsing, UnicodeEncodeError from its
            # quoting.
            ("a base URL with a port out of range", lambda kb: KbClient(base_url="http://127.0.0.1:99999"), "base_url"),
            ("a base URL that does not parse", lambda kb: KbClient(base_url="http://[::1"), "base_url"),
            ("a lone surrogate in a sig_hash", lambda kb: kb.sig("pr1-\ud800"), "sig_hash"),
            ("a lone surrogate in a query value", lambda kb: kb.events_page(source="\ud800"), "source"),
        ]
        for name, call, field in cases:
            with self.subTest(name):
                error = self.failure(lambda: call(self.client("unsent")))
                self.assertEqual((error.kind, error.status, error.field, error.may_be_committed), ("bad_request", 0, field, False))
        self.assertNotIn("unsent", SEEN)

    def test_lone_surrogates_in_rows_and_batches_are_sent_escaped_as_json_stringify_does(self):
        # A review's: post_verdict sent them escaped while post_outcome of a mapping and every
        # batch raised UnicodeEncodeError before sending.
        kb = self.client("accept")
        kb.post_outcome({"sig_hash": "a", "one_liner": "cut \ud83d here", "ok": "é"})
        kb.post_events([{"source": "bot", "note": "\udc00"}, {"source": "bot"}])
        kb.post_verdicts([{"pr_number": 1, "one_liner": "x\ud83d"}])
        kb.post_verdict({"pr_number": 1, "one_liner": "x\ud83d"})
        outcome, events, verdicts, verdict = BODIES["accept"]
        self.assertEqual(outcome, '{"sig_hash":"a","one_liner":"cut \\ud83d here","ok":"é"}'.encode())
        self.assertEqual(events, b'{"source":"bot","note":"\\udc00"}\n{"source":"bot"}\n')
        self.assertIn(b'"x\\ud83d"', verdicts)
        self.assertIn(b'"x\\ud83d"', verdict)

    def test_a_body_that_is_not_json_and_a_refusal_are_kb_errors(self):
        bad = self.failure(lambda: self.client("badjson").stats())
        self.assertEqual((bad.kind, bad.status), ("bad_response", 200))
        refused = self.failure(lambda: self.client("refuse400").post_verdict({"pr_number": 1}))
        self.assertEqual((refused.kind, refused.status, refused.field, refused.may_be_committed), ("http", 400, "head_sha", False))
        self.assertEqual(len(SEEN["refuse400"]), 1, "a 400 is not retried")

    def test_a_long_polls_attempt_may_last_its_wait_on_top_of_the_timeout(self):
        page = self.client("longpoll", retries=0).feed(after_seq=5, wait=1.0)
        self.assertEqual(page["next_after_seq"], 5)
        self.assertRegex(SEEN["longpoll"][0][1], "after_seq=5.*wait=1000ms")

    def test_a_refused_connection_committed_nothing(self):
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        error = self.failure(lambda: KbClient(base_url=f"http://127.0.0.1:{port}", retries=1).post_event({}))
        self.assertEqual((error.kind, error.status, error.may_be_committed), ("network", 0, False))
        self.assertIn("unreachable", str(error))

    def test_follow_resumes_after_a_cut_mid_event_yielding_each_record_once(self):
        items = []
        named = []
        follow = self.client("feedcut").follow(
            max_reconnect_delay=0.05, on_history=lambda history: named.append((history, len(items)))
        )
        for item in follow:
            items.append("resync" if item["type"] == "resync" else item["seq"])
            if len(items) == 6:
                break
        self.assertEqual(items, [1, 2, 3, "resync", 4, 5])
        self.assertEqual([h["last-event-id"] for _, _, h in SEEN["feedcut"]], ["0", "2", "4"])
        self.assertEqual(SEEN["feedcut"][0][2]["accept"], "text/event-stream")
        # Each reconnection names the history of the last answer: positions after a restore
        # are in the restored database's.
        histories = [parse_qs(urlsplit(path).query).get("history") for _, path, _ in SEEN["feedcut"]]
        self.assertEqual(histories, [None, ["00000000000000a1"], ["00000000000000b2"]])
        # The consumer hears of each history once, before the first item in it.
        self.assertEqual(named, [("00000000000000a1", 0), ("00000000000000b2", 2)])

    def test_an_error_of_on_history_reaches_the_caller(self):
        # An OSError (a full disk where the consumer saves it) is the caller's, not a lost
        # connection to reconnect after.
        def full(history):
            raise OSError(28, "No space left on device")

        with self.assertRaises(OSError) as caught:
            for _ in self.client("feedhistory").follow(max_reconnect_delay=0.05, on_history=full):
                self.fail("an item after the callback failed")
        self.assertEqual(caught.exception.errno, 28)


if __name__ == "__main__":
    unittest.main()
