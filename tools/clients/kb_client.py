"""A client for lakehouse-kb for the Python report scripts. Standard library only.

    from kb_client import KbClient
    kb = KbClient()                          # LAKEHOUSE_KB_URL, else http://localhost:3800
    prior = kb.prior_audits(6, exclude_sha="7fe47bab")
    print(prior["finding"])                  # prior 3 audits on this PR ended in [...]
    for n in kb.neighbors(claims=["observer counts auditor events separately"])["neighbors"]:
        print(n["sig_hash"], n["overall"], n["shared_count"])

Scripts that read whole files (kb_measure.py, kb_staffer_report.py) can keep reading the
exported data/_kb/outcomes.jsonl, which the service keeps byte-compatible.
"""

import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request


class KbError(Exception):
    """A refusal or failure from the service: status, message and the field at fault."""

    def __init__(self, message, status, field=None, retry_after=None):
        super().__init__(message)
        self.status = status
        self.field = field
        self.retry_after = retry_after


# JavaScript's whitespace (what trim() and \s match), so hashes equal a TypeScript client's.
_JS_SPACE_RUN = re.compile("[\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+")


def claim_hash(text):
    """The claim hash the service indexes: the first 16 hex digits of SHA-256 of the text after
    trimming, lowercasing and collapsing whitespace: text.trim().toLowerCase().replace(/\s+/g, " ")."""
    normal = _JS_SPACE_RUN.sub(" ", text.lower()).strip(" ")
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()[:16]


class KbClient:
    def __init__(self, base_url=None, token=None, timeout=3.0, retries=3):
        url = base_url or os.environ.get("LAKEHOUSE_KB_URL") or "http://localhost:3800"
        self.base_url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("LAKEHOUSE_KB_TOKEN")
        self.timeout = timeout
        self.retries = retries

    def post_verdict(self, verdict):
        """Stores a verdict with its KB row and observer event; safe to retry (idempotent)."""
        return self._request("POST", "/verdicts", verdict, idempotent=True)

    def prior_audits(self, pr_number, exclude_sha=None, limit=None):
        """Phase B: prior audits of a PR across heads, newest first, with the finding sentence."""
        query = {k: v for k, v in (("exclude_sha", exclude_sha), ("limit", limit)) if v is not None}
        suffix = "?" + urllib.parse.urlencode(query) if query else ""
        return self._request("GET", f"/prs/{int(pr_number)}/history{suffix}", idempotent=True)

    def neighbors(self, claims=None, claim_hashes=None, exclude_pr=None, limit=None):
        """Prior verdicts sharing claims, most shared first, then newest."""
        body = {"claims": claims, "claim_hashes": claim_hashes, "exclude_pr": exclude_pr, "limit": limit}
        return self._request("POST", "/neighbors", {k: v for k, v in body.items() if v is not None}, idempotent=True)

    def post_outcome(self, row):
        """A KB outcome row, stored byte for byte: a str is sent as is (pass the exact line for
        byte-exact rows), a dict as compact JSON. Not retried (not idempotent)."""
        line = row if isinstance(row, str) else json.dumps(row, separators=(",", ":"), ensure_ascii=False)
        return self._request("POST", "/outcomes", raw=line.encode("utf-8"))

    def stats(self):
        return self._request("GET", "/stats", idempotent=True)

    def events(self, source=None, event_kind=None, sig_hash=None, limit=None):
        """Recent events, newest first, following the cursor to the end (or `limit` events)."""
        params = {k: v for k, v in (("source", source), ("event_kind", event_kind), ("sig_hash", sig_hash)) if v}
        out = []
        before = None
        while limit is None or len(out) < limit:
            page_params = dict(params, limit=1000 if limit is None else min(1000, limit - len(out)))
            if before is not None:
                page_params["before_seq"] = before
            page = self._request("GET", "/events?" + urllib.parse.urlencode(page_params), idempotent=True)
            out.extend(page["events"])
            before = page.get("next_before_seq")
            if before is None:
                break
        return out

    def _request(self, method, path, body=None, idempotent=False, raw=None):
        data = raw if raw is not None else None if body is None else json.dumps(body).encode("utf-8")
        headers = {"content-type": "application/json"} if data is not None else {}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        attempts = self.retries + 1 if idempotent else 1
        last = None
        for attempt in range(attempts):
            if attempt:
                delay = last.retry_after if isinstance(last, KbError) and last.retry_after else min(2.0, 0.1 * 2**attempt)
                time.sleep(delay)
            request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    text = response.read()
                    return json.loads(text) if text else {}
            except urllib.error.HTTPError as error:
                text = error.read()
                try:
                    answer = json.loads(text)
                except ValueError:
                    answer = {}
                retry_after = error.headers.get("retry-after")
                last = KbError(answer.get("error", f"HTTP {error.code}"), error.code, answer.get("field"),
                               float(retry_after) if retry_after else None)
                if error.code != 503:
                    break
            except (urllib.error.URLError, OSError) as error:
                last = error
        if isinstance(last, KbError):
            raise last
        raise KbError(f"lakehouse-kb unreachable at {self.base_url}: {last}", 0)
