"""Tests of kb_client.py against a real lakehouse-kb server at KB_URL (run by
tests/it/clients.rs): python3 -m unittest test_kb_client"""

import os
import unittest
import urllib.request

from kb_client import KbClient, KbError, claim_hash

KB = KbClient(base_url=os.environ.get("KB_URL"), retries=1)


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

    def test_refusal_names_the_field(self):
        with self.assertRaises(KbError) as caught:
            KB.post_verdict(verdict(55, "4" * 40, "t", "maybe", "x"))
        self.assertEqual((caught.exception.status, caught.exception.field), (400, "overall"))

    def test_stats_and_events(self):
        KB.post_verdict(verdict(56, "5" * 40, "2026-04-01T12:00:00.000Z", "approve", "y"))
        self.assertGreaterEqual(KB.stats()["by_source"]["auditor"], 1)
        events = KB.events(source="auditor")
        self.assertTrue(all(e["op"]["source"] == "auditor" for e in events))
        self.assertGreaterEqual(len(events), 1)


if __name__ == "__main__":
    unittest.main()
