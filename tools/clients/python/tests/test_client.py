"""The client against a real lakehouse-kb server at KB_URL: every route and follow(). Run by
tests/it/clients.rs: python3 -m unittest discover -s tests"""

import os
import threading
import unittest
import urllib.request

from lakehouse_kb_client import USER_AGENT, KbClient, KbError, __version__, claim_hash

# A generous timeout: on a loaded CI machine an fsync can take seconds.
KB = KbClient(base_url=os.environ.get("KB_URL"), retries=1, timeout=30.0)


def verdict(pr, head, at, overall, one_liner, claims=()):
    return {
        "pr_number": pr, "head_sha": head, "overall": overall, "one_liner": one_liner,
        "claims": [{"text": c, "source": "commit_message"} for c in claims],
        "metrics": {"findings_block": 0, "findings_warn": 1, "audit_duration_ms": 2000},
        "audited_at": at,
    }


class KbClientTest(unittest.TestCase):
    def test_post_verdict_is_idempotent(self):
        v = verdict(51, "e" * 40, "2026-04-01T09:00:00.000Z", "approve", "fine")
        first = KB.post_verdict(v)
        self.assertEqual(first["sig_hash"], "pr51-eeeeeeee")
        again = KB.post_verdict(v)
        self.assertEqual((again["seq"], again["duplicate"]), (first["seq"], True))

    def test_post_outcome_stores_the_row_byte_for_byte(self):
        line = '{"sig_hash":"scn-py-1","kind":"fill","x":1.50,"note":"caf\\u00e9"}'
        posted = KB.post_outcome(line)
        self.assertEqual(posted["sig_hash"], "scn-py-1")
        from_dict = KB.post_outcome({"sig_hash": "scn-py-2", "kind": "fill", "city": "Zürich"})
        self.assertGreater(from_dict["seq"], posted["seq"])
        with urllib.request.urlopen(KB.base_url + "/sig/scn-py-1") as response:
            self.assertIn('"row":' + line, response.read().decode("utf-8"))
        with urllib.request.urlopen(KB.base_url + "/sig/scn-py-2") as response:
            self.assertIn('"row":{"sig_hash":"scn-py-2","kind":"fill","city":"Zürich"}', response.read().decode("utf-8"))

    def test_prior_audits_and_finding(self):
        KB.post_verdict(verdict(52, "1" * 40, "2026-04-01T09:00:00.000Z", "block", "hard-coded path"))
        KB.post_verdict(verdict(52, "2" * 40, "2026-04-01T10:00:00.000Z", "approve", "fixed"))
        prior = KB.prior_audits(52, exclude_sha="2" * 8)
        self.assertEqual(prior["count"], 1)
        self.assertEqual(prior["finding"], "prior 1 audit on this PR ended in [block], last reason was hard-coded path.")
        self.assertEqual(KB.prior_audits(5252)["finding"], "no prior audits on this PR.")

    def test_neighbors_and_claim_hash(self):
        KB.post_verdict(verdict(53, "3" * 40, "2026-04-01T11:00:00.000Z", "block", "x", ["Report  Script reads KB"]))
        found = KB.neighbors(claims=["report script reads kb"], exclude_pr=54)
        self.assertEqual(found["neighbors"][0]["pr_number"], 53)
        self.assertEqual(found["neighbors"][0]["shared"][0]["claim_hash"], claim_hash(" REPORT script\treads kb "))

    def test_a_repository_is_a_namespace_and_neighbours_explain_themselves(self):
        repo = "gitea:profit/client-py"
        in_repo = KbClient(base_url=os.environ.get("KB_URL"), retries=1, timeout=30.0, repo=repo)
        KB.post_verdict(verdict(61, "a" * 40, "2026-04-05T09:00:00.000Z", "block", "default ns", ["retry the S3 upload"]))
        in_repo.post_verdict(dict(verdict(61, "b" * 40, "2026-04-05T10:00:00.000Z", "approve", "named", ["retries S3 uploads with backoff"]), repo=repo))
        # A verdict that names no repository is the client's (at 47acc62 it went to the default).
        in_repo.post_verdict(verdict(62, "c" * 40, "2026-04-05T11:00:00.000Z", "request_changes", "newer", ["S3 upload retry loop"]))
        history = in_repo.prior_audits(61)
        self.assertEqual((history.get("repo"), history["count"], history["audits"][0]["one_liner"]), (repo, 1, "named"))
        self.assertEqual(KB.prior_audits(61)["audits"][0]["one_liner"], "default ns")
        near = in_repo.pr_neighbors(62)
        first = near["neighbors"][0]
        self.assertEqual((first["pr_number"], first["repo"], first["matches"][0]["kind"]), (61, repo, "similar"))
        self.assertIn("s3", first["matches"][0]["terms"])
        self.assertIn("#61 approve", near.get("context", ""))
        everywhere = in_repo.neighbors(claims=["retry the S3 upload"], all_repos=True, min_score=0.5)
        self.assertTrue(any(n["repo"] is None and n["pr_number"] == 61 for n in everywhere["neighbors"]))
        self.assertEqual(KB.stats().get("by_repo", {}).get(repo), 2)

    def test_history_pages_with_before_seq(self):
        for i in range(3):
            KB.post_verdict(verdict(63, str(i + 2) * 40, f"2026-04-06T0{i}:00:00.000Z", "approve", f"audit {i}"))
        first = KB.prior_audits(63, limit=2)
        self.assertEqual([a["one_liner"] for a in first["audits"]], ["audit 2", "audit 1"])
        rest = KB.prior_audits(63, limit=2, before_seq=first.get("next_before_seq"))
        self.assertEqual([a["one_liner"] for a in rest["audits"]], ["audit 0"])
        self.assertNotIn("next_before_seq", rest)

    def test_findings_are_remembered_and_dismissals_stick_until_revoked(self):
        unwrap = {"check": "static", "severity": "warn", "summary": "unwrap() on user input in parse_body can panic"}
        sql = {"check": "security", "severity": "block", "summary": "SQL built by concatenating the name parameter"}
        KB.post_verdict(dict(verdict(64, "7" * 40, "2026-04-07T09:00:00.000Z", "block", "sql"), findings=[unwrap, sql]))
        self.assertEqual(sorted(f["summary"] for f in KB.all_findings(64)), sorted([unwrap["summary"], sql["summary"]]))
        check = KB.check_findings(64, "8" * 40, [unwrap, {"check": "tests", "summary": "no test for the retry path"}])
        self.assertEqual([f["status"] for f in check["findings"]], ["repeat", "new"])
        with self.assertRaises(KbError) as caught:
            KB.dismiss_finding("fixture", "ana", finding=sql, pr_number=64)
        self.assertEqual((caught.exception.status, caught.exception.field), (422, "confirm"))
        dismissal = KB.dismiss_finding("input is validated first", "ana", finding=unwrap, pr_number=64)
        self.assertFalse(dismissal["duplicate"])
        again = KB.dismiss_finding("again", "bo", fingerprint=dismissal["fingerprint"], pr_number=64)
        self.assertEqual((again["id"], again["duplicate"]), (dismissal["id"], True))
        self.assertEqual(KB.check_findings(64, "8" * 40, [unwrap])["findings"][0]["status"], "dismissed")
        self.assertEqual([d["id"] for d in KB.dismissals(pr_number=64)["dismissals"]], [dismissal["id"]])
        self.assertTrue(KB.revoke_dismissal(dismissal["id"])["revoked_now"])
        self.assertFalse(KB.revoke_dismissal(dismissal["id"])["revoked_now"])
        self.assertEqual(KB.check_findings(64, "8" * 40, [unwrap])["findings"][0]["status"], "repeat")
        with self.assertRaises(KbError) as bad:
            KB.findings(-1)
        self.assertEqual(bad.exception.kind, "bad_request")

    def test_refusal_names_the_field(self):
        with self.assertRaises(KbError) as caught:
            KB.post_verdict(verdict(55, "4" * 40, "t", "maybe", "x"))
        error = caught.exception
        self.assertEqual((error.kind, error.status, error.field, error.may_be_committed), ("http", 400, "overall", False))

    def test_stats_and_events(self):
        KB.post_verdict(verdict(56, "5" * 40, "2026-04-01T12:00:00.000Z", "approve", "y"))
        self.assertGreaterEqual(KB.stats()["by_source"]["auditor"], 1)
        events = KB.events(source="auditor")
        self.assertTrue(all(e["op"]["source"] == "auditor" for e in events))
        self.assertGreaterEqual(len(events), 1)

    def test_sig_pages_and_batches(self):
        for i in range(3):
            KB.post_outcome({"sig_hash": "scn-py-sig", "kind": "fill", "i": i})
        first = KB.sig("scn-py-sig", limit=2)
        self.assertEqual([r["type"] for r in first["records"]], ["outcome", "outcome"])
        self.assertIn("next_after_seq", first)
        self.assertEqual([r["row"]["i"] for r in KB.sig_records("scn-py-sig")], [0, 1, 2])
        report = KB.post_events([
            {"source": "mcp", "event_kind": "py-batch", "ok": True},
            {"source": "mcp", "event_kind": "py-batch", "sig_hash": "x" * 600},
        ])
        self.assertEqual((report["accepted"], report["rejected"][0]["field"]), (1, "sig_hash"))
        self.assertEqual(len(KB.events(event_kind="py-batch")), 1)
        self.assertEqual(KB.post_outcomes(['{"sig_hash":"scn-py-b","x":1.50}', {"sig_hash": "scn-py-b"}])["accepted"], 2)
        self.assertEqual(KB.post_verdicts([verdict(57, "6" * 40, "2026-04-02T09:00:00.000Z", "block", "z")])["accepted"], 1)

    def test_operations(self):
        self.assertEqual(KB.health()["status"], "ok")
        self.assertIn("lakehousekb_http_requests_total", KB.metrics())
        self.assertIn(KB.export_now()["ops"]["action"], ("unchanged", "appended", "rebuilt"))
        # The server picks the place (its --backup-dir) and, without a name, the name.
        backup = KB.backup()
        self.assertRegex(backup["name"], r"^kb-\d{8}T\d{6}Z")
        self.assertEqual(KB.backup({"name": "py-before-upgrade"})["name"], "py-before-upgrade")

    def test_feed_and_follow(self):
        start = KB.stats()["last_seq"]
        page = KB.feed(after_seq=start)
        self.assertEqual((page["records"], page["next_after_seq"]), ([], start))
        seen = []

        def consume():
            for item in KB.follow(after_seq=start, types=["event"]):
                seen.append(item["seq"])
                if len(seen) == 3:
                    return

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        posted = [KB.post_event({"source": "bot", "event_kind": "py-follow", "i": i})["seq"] for i in range(3)]
        consumer.join(timeout=60)
        self.assertEqual(seen, posted)
        waited = KB.feed(after_seq=posted[-1], types=["verdict"], wait=0.1)
        self.assertEqual(waited["records"], [])

    def test_writes_carry_a_key_and_the_client_names_itself(self):
        self.assertEqual(__version__, "0.1.0")
        self.assertEqual(USER_AGENT, "lakehouse-kb-client-python/0.1.0")
        self.assertGreater(KB.post_event({"source": "bot"}, idempotency_key="py-key-1")["seq"], 0)
        # The key given is the key sent, an empty one too (the server refuses it), never a
        # random one in its place: two calls with one key store once or not at all.
        with self.assertRaises(KbError) as empty:
            KB.post_event({"source": "bot"}, idempotency_key="")
        self.assertEqual((empty.exception.status, empty.exception.field), (400, "idempotency-key"))

    def test_a_write_retried_as_a_one_line_batch_is_stored_once(self):
        # The same bytes either way (what JSON.stringify writes), so the server knows the retry.
        event = {"source": "bot", "event_kind": "py-retry", "note": "café"}
        first = KB.post_event(event, idempotency_key="py-key-single-then-batch")
        again = KB.post_events([event], idempotency_key="py-key-single-then-batch")
        self.assertEqual((again["accepted"], again["duplicates"], again["rejected"]), (0, 1, []))
        v = verdict(58, "f" * 40, "2026-04-01T09:00:00.000Z", "approve", "fine ✓")
        batch = KB.post_verdicts([v], idempotency_key="py-key-batch-then-single")
        single = KB.post_verdict(v, idempotency_key="py-key-batch-then-single")
        self.assertEqual((single["duplicate"], batch["accepted"]), (True, 1))
        self.assertGreater(first["seq"], 0)


if __name__ == "__main__":
    unittest.main()
