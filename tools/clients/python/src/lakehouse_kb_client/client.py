"""The client: one request helper that owns headers, deadlines, retries and errors, and a
method per route with a typed answer. Standard library only."""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import random
import re
import socket
import threading
import time
import urllib.parse
import uuid
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypedDict,
    Union,
    cast,
)

if TYPE_CHECKING:
    from typing_extensions import TypeGuard

__version__ = "0.1.0"
# Export and backup copy files: their attempts wait at least this long (seconds; the server's
# own request timeout is 30 s by default).
SLOW_WRITE_TIMEOUT = 60.0
USER_AGENT = f"lakehouse-kb-client-python/{__version__}"

JsonObject = Dict[str, Any]
Overall = Literal["approve", "request_changes", "block"]
FeedType = Literal["verdict", "outcome", "event"]
ErrorKind = Literal["http", "network", "timeout", "bad_response", "bad_request"]
# A finding's severity: "block", "warn" and "info" are the auditor's, but any string is kept
# (trimmed and lowercased by the memory; "" for a finding given without one).
Severity = str


# Each answer type is its keys every answer has (a base class) and those some have (the class
# itself, total=False), so that a strict checker (pyright) lets `answer["seq"]` through and
# asks for `.get` only where a key may be absent.


class _PostedVerdictRequired(TypedDict):
    sig_hash: str
    # The verdict's PR as the server read it.
    pr_number: int
    seq: int
    # True when this (pr_number, head_sha, audited_at) was already stored, by an earlier call or
    # by an earlier attempt of this one (the client retries a write that timed out, with the
    # same key): stored once either way; outcome_seq and event_seq are then absent.
    duplicate: bool


class PostedVerdict(_PostedVerdictRequired, total=False):
    outcome_seq: int
    event_seq: int


class _Replayed(TypedDict, total=False):
    # True on the answer to a retry with the same Idempotency-Key, the client's own included (it
    # retries a write that timed out): the record was stored once, by an earlier attempt.
    duplicate: bool


class _PostedEventRequired(TypedDict):
    ok: bool
    seq: int


class PostedEvent(_PostedEventRequired, _Replayed):
    pass


class _PostedOutcomeRequired(TypedDict):
    sig_hash: str
    seq: int


class PostedOutcome(_PostedOutcomeRequired, _Replayed):
    pass


class _LineErrorRequired(TypedDict):
    line: int
    error: str


class LineError(_LineErrorRequired, total=False):
    field: str


class _BatchReportRequired(TypedDict):
    accepted: int
    duplicates: int
    rejected: List[LineError]


class BatchReport(_BatchReportRequired, total=False):
    last_seq: int


class Findings(TypedDict):
    block: int
    warn: int
    info: Optional[int]


class PriorAudit(TypedDict):
    sig_hash: str
    head_sha: str
    overall: Overall
    one_liner: str
    audited_at: str
    findings: Findings
    elapsed_secs: float
    seq: int


class LatestAuditFindings(TypedDict):
    seq: int
    raised: int
    repeat_earlier_heads: int


class _PriorAuditsRequired(TypedDict):
    pr_number: int
    count: int
    by_overall: Dict[str, int]
    finding: str
    audits: List[PriorAudit]


class PriorAudits(_PriorAuditsRequired, total=False):
    repo: str
    next_before_seq: int
    latest_audit_findings: LatestAuditFindings


class SharedClaim(TypedDict):
    claim_hash: str
    text: Optional[str]


class _Opposed(TypedDict, total=False):
    # True when the stored claim says the opposite of the query claim (one negated and the
    # other not, or a pair of opposite words); its score is then half the similarity's.
    opposed: bool


class ClaimMatch(_Opposed):
    """Why a neighbour was found: one query claim's best match among its claims."""

    query: str
    claim: str
    kind: Literal["exact", "similar"]
    score: float
    terms: List[str]


class Neighbor(TypedDict):
    sig_hash: str
    seq: int
    pr_number: int
    repo: Optional[str]
    head_sha: str
    overall: Overall
    one_liner: str
    audited_at: str
    score: float
    matches: List[ClaimMatch]
    shared_count: int
    shared: List[SharedClaim]


class _NeighborsRequired(TypedDict):
    count: int
    neighbors: List[Neighbor]


class Neighbors(_NeighborsRequired, total=False):
    context: str
    truncated: bool


class FindingInput(TypedDict, total=False):
    """A finding as the auditor writes it: check and summary required, severity optional."""

    check: str
    severity: Severity
    summary: str


class SeenAt(TypedDict):
    head_sha: str
    audited_at: str
    seq: int


class _RememberedDismissal(TypedDict, total=False):
    # With dismissals=True: the dismissal that silences it, raised again as its latest wording
    # (absent: none).
    dismissal: "Dismissal"


class RememberedFinding(_RememberedDismissal):
    fingerprint: str
    check: str
    severity: Optional[Severity]
    summary: str
    status: Literal["open", "resolved"]
    times_raised: int
    first_seen: SeenAt
    last_seen: SeenAt
    heads: List[str]
    last_match: Literal["new", "exact", "similar"]


class _FindingsPageRequired(TypedDict):
    pr_number: int
    status: Literal["open", "resolved", "all"]
    latest_seq: Optional[int]  # None while the PR has no audit with findings
    count: int
    findings: List[RememberedFinding]


class FindingsPage(_FindingsPageRequired, total=False):
    repo: str
    next_cursor: str


class _DismissalRequired(TypedDict):
    id: int
    scope: Literal["pr", "repo"]
    pr_number: Optional[int]
    fingerprint: str
    reason: str
    by: str
    created_at: str
    revoked_at: Optional[str]


class Dismissal(_DismissalRequired, total=False):
    repo: str  # absent in the default namespace
    check: str  # check, severity and summary: absent when the finding is not known
    severity: Severity
    summary: str
    match: JsonObject
    duplicate: bool
    revoked_now: bool


class _CheckedFindingRequired(TypedDict):
    check: str
    severity: Severity
    summary: str
    fingerprint: str
    status: Literal["new", "repeat", "reopened", "dismissed"]
    match: Optional[JsonObject]


class CheckedFinding(_CheckedFindingRequired, total=False):
    times_raised: int
    first_seen: SeenAt
    last_seen: SeenAt
    raised_on_head: bool
    dismissal: Dismissal
    resembled_dismissal: Dismissal


class _FindingsCheckRequired(TypedDict):
    pr_number: int
    head_sha: str
    counts: Dict[str, int]
    findings: List[CheckedFinding]


class FindingsCheck(_FindingsCheckRequired, total=False):
    repo: str


class _DismissalsPageRequired(TypedDict):
    pr_number: Optional[int]
    count: int
    dismissals: List[Dismissal]


class DismissalsPage(_DismissalsPageRequired, total=False):
    repo: str  # absent in the default namespace
    next_cursor: str


class _SigPageRequired(TypedDict):
    sig_hash: str
    records: List[JsonObject]


class SigPage(_SigPageRequired, total=False):
    next_after_seq: int


class EventItem(TypedDict, total=False):
    seq: int
    received_at: str
    op: JsonObject
    source_original: str


class _EventsPageRequired(TypedDict):
    events: List[EventItem]


class EventsPage(_EventsPageRequired, total=False):
    next_before_seq: int


class _StatsRequired(TypedDict):
    total: int
    by_source: Dict[str, int]
    by_event_kind: Dict[str, int]
    success: int
    failure: int
    verdicts: int
    by_overall: Dict[str, int]
    outcomes: int
    outcomes_by_kind: Dict[str, int]
    last_seq: int


class OmittedKeys(TypedDict):
    keys: int  # keys of a map of /stats not listed (past --stats-top)
    count: int  # the sum of their counts


class Stats(_StatsRequired, total=False):
    by_repo: Dict[str, int]  # verdicts per repository ("" is the default namespace)
    omitted: Dict[str, OmittedKeys]  # per map that lists fewer keys than it has


class _HealthRequired(TypedDict):
    status: str
    schema_version: Optional[int]  # None while the database cannot be read (a storage fault)
    last_seq: Optional[int]
    queue_depth: int


class StorageFault(TypedDict):
    reason: str
    no_space: bool
    since_ms: int
    retry_after_secs: int


class ExportProblem(TypedDict):
    file: str  # "_kb/outcomes.jsonl" or "_observer/ops.jsonl"
    paused: bool  # an operator must act; otherwise the next run retries
    error: str
    since_ms: int


class Health(_HealthRequired, total=False):
    database: Optional[str]  # the database file the server holds, by an opaque name
    storage: StorageFault  # the storage fault the service is recovering from
    stalled_commit_ms: int  # how long the commit running now has run, once stalled
    export: List[ExportProblem]  # exported files the last run could not bring up to date
    damaged: str  # a read found the database damaged: what was found and what to do


class _FeedPageRequired(TypedDict):
    records: List[JsonObject]
    next_after_seq: int
    last_seq: int


class FeedPage(_FeedPageRequired, total=False):
    history: str  # the history the positions are in: pass it back with next_after_seq


class KbError(Exception):
    """Every failure of this client: an HTTP answer that is not a success, no answer, no answer
    in time, or an answer not understood.

    `status` is 0 without an HTTP answer; `field` names the input at fault; `retry_after` is the
    server's Retry-After in seconds, capped; `may_be_committed` is set on a write that gave up
    after an attempt whose fate is unknown (timed out, connection lost after sending, a 503
    without Retry-After): retrying with the same idempotency key is safe; `body` is the parsed
    JSON error body when there was one."""

    def __init__(
        self,
        message: str,
        kind: ErrorKind,
        status: int = 0,
        field: Optional[str] = None,
        retry_after: Optional[float] = None,
        may_be_committed: bool = False,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.status = status
        self.field = field
        self.retry_after = retry_after
        self.may_be_committed = may_be_committed
        self.body = body


# JavaScript's whitespace (what trim() and \s match), so hashes equal a TypeScript client's.
_JS_SPACE_RUN = re.compile("[\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+")


class _OmittedRequired(TypedDict):
    omitted_bytes: int  # the item's size as it would have been sent


class Omitted(_OmittedRequired, total=False):
    seq: int  # every marker's but a dismissal's
    id: int  # a dismissal's
    type: str  # in /sig's records
    sig_hash: str  # in neighbours and PR history
    fingerprint: str  # in a findings page


def is_omitted(item: Mapping[str, object]) -> "TypeGuard[Omitted]":
    """Whether an item of a list answer (sig records, events, neighbours, PR history,
    findings, dismissals) is the marker a record alone over the server's --max-response
    becomes: {"seq", "omitted_bytes"} ({"id", "omitted_bytes"} for a dismissal). Only such a
    record does; raising --max-response serves it."""
    return "omitted_bytes" in item


def claim_hash(text: str) -> str:
    """The claim hash the service indexes: the first 16 hex digits of SHA-256 of the text after
    trimming, lowercasing and collapsing whitespace: text.trim().toLowerCase().replace(/\\s+/g, " ")."""
    normal = _JS_SPACE_RUN.sub(" ", text.lower()).strip(" ")
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()[:16]


def retry_after_secs(value: Optional[str], cap: float = 30.0) -> Optional[float]:
    """Retry-After in seconds, from delta-seconds or an HTTP-date, capped; None when absent or
    unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        secs = float(text)
    else:
        try:
            at = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        secs = max(0.0, at.timestamp() - time.time())
    return min(secs, cap)


class _Answer:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class KbClient:
    """A client for one lakehouse-kb server.

    `base_url` defaults to LAKEHOUSE_KB_URL, else LH_OBSERVER_URL, else http://localhost:3800;
    `token` to LAKEHOUSE_KB_TOKEN. `timeout` bounds each attempt, headers and body together
    (seconds); `retries` is how many times a failed call is tried again (reads after a 502, 503,
    504, a network error or a timeout; writes after a 503 with Retry-After, a network error or a
    timeout, always with the same Idempotency-Key); `max_retry_after` caps the server's
    Retry-After. `repo` (default LAKEHOUSE_KB_REPO, else the default namespace) is the
    repository this client works in: sent with every read that takes one unless the call names
    another (writes carry their repository in their own `repo` field)."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 3.0,
        retries: int = 3,
        max_retry_after: float = 30.0,
        repo: Optional[str] = None,
    ) -> None:
        url = base_url or os.environ.get("LAKEHOUSE_KB_URL") or os.environ.get("LH_OBSERVER_URL") or "http://localhost:3800"
        self.base_url = url.rstrip("/")
        parsed: Optional[urllib.parse.SplitResult]
        try:
            parsed = urllib.parse.urlsplit(self.base_url)
            port = parsed.port  # ValueError for a port that is not one
        except ValueError:
            parsed, port = None, None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise KbError(f"base_url must be an http or https URL, got {url!r}", "bad_request", field="base_url")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = port
        self._prefix = parsed.path
        self.token = token if token is not None else os.environ.get("LAKEHOUSE_KB_TOKEN")
        self.timeout = timeout
        self.retries = retries
        self.max_retry_after = max_retry_after
        self.repo = repo if repo is not None else os.environ.get("LAKEHOUSE_KB_REPO")

    # Writes: each sends an Idempotency-Key, reused by its retries (pass your own to retry a
    # call that gave up with may_be_committed).

    def post_verdict(self, verdict: Mapping[str, Any], idempotency_key: Optional[str] = None) -> PostedVerdict:
        """Stores a verdict with its KB row and observer event in one durable transaction, in
        the client's repository when it names none; the same (pr_number, head_sha, audited_at)
        is stored once (duplicate: True after)."""
        return cast(PostedVerdict, self._request("POST", "/verdicts", body=_utf8(_compact(self._in_repo(verdict))), write=True, key=idempotency_key))

    def post_event(self, event: Mapping[str, Any], idempotency_key: Optional[str] = None) -> PostedEvent:
        """The legacy observer's call: one event, any JSON object."""
        return cast(PostedEvent, self._request("POST", "/event", body=_utf8(_compact(event)), write=True, key=idempotency_key))

    def post_outcome(self, row: Union[Mapping[str, Any], str], idempotency_key: Optional[str] = None) -> PostedOutcome:
        """A KB outcome row, stored byte for byte: a str is sent as is (pass the exact line for
        byte-exact rows), a mapping as compact JSON."""
        line = row if isinstance(row, str) else _compact(row)
        return cast(PostedOutcome, self._request("POST", "/outcomes", body=_utf8(line), write=True, key=idempotency_key))

    def post_events(self, events: Sequence[Mapping[str, Any]], idempotency_key: Optional[str] = None) -> BatchReport:
        """Many events in one NDJSON batch, committed together; bad lines are reported."""
        return self._batch("/event", [_compact(e) for e in events], idempotency_key)

    def post_verdicts(self, verdicts: Sequence[Mapping[str, Any]], idempotency_key: Optional[str] = None) -> BatchReport:
        return self._batch("/verdicts", [_compact(self._in_repo(v)) for v in verdicts], idempotency_key)

    def post_outcomes(self, rows: Sequence[Union[Mapping[str, Any], str]], idempotency_key: Optional[str] = None) -> BatchReport:
        """Rows given as str are sent byte for byte."""
        return self._batch("/outcomes", [r if isinstance(r, str) else _compact(r) for r in rows], idempotency_key)

    def export_now(self, idempotency_key: Optional[str] = None) -> JsonObject:
        """Brings the exported legacy files up to date now; the export report."""
        extra = max(0.0, SLOW_WRITE_TIMEOUT - self.timeout)
        return cast(JsonObject, self._request("POST", "/export", write=True, key=idempotency_key, extra_time=extra))

    def backup(self, body: Optional[Mapping[str, Any]] = None, idempotency_key: Optional[str] = None) -> JsonObject:
        """A consistent copy of the live database on the server's machine; `body` as the server
        takes it."""
        extra = max(0.0, SLOW_WRITE_TIMEOUT - self.timeout)
        return cast(
            JsonObject, self._request("POST", "/backup", body=_json(body or {}), write=True, key=idempotency_key, extra_time=extra)
        )

    # Reads.

    def prior_audits(
        self,
        pr_number: int,
        exclude_sha: Optional[str] = None,
        limit: Optional[int] = None,
        before_seq: Optional[int] = None,
        repo: Optional[str] = None,
    ) -> PriorAudits:
        """Phase B: prior audits of a PR across heads, newest first, with the finding sentence;
        `before_seq` (a previous answer's next_before_seq) fetches the next, older page."""
        query = {"repo": self._repo(repo), "exclude_sha": exclude_sha, "limit": limit, "before_seq": before_seq}
        return cast(PriorAudits, self._request("GET", f"/prs/{_id(pr_number)}/history", query=query))

    def neighbors(
        self,
        claims: Optional[Sequence[Union[str, Mapping[str, Any]]]] = None,
        claim_hashes: Optional[Sequence[str]] = None,
        exclude_pr: Optional[int] = None,
        limit: Optional[int] = None,
        min_score: Optional[float] = None,
        repo: Optional[str] = None,
        all_repos: Optional[bool] = None,
    ) -> Neighbors:
        """Phase C/F: prior verdicts whose claims equal or resemble the query's, best first
        (score, then the newer audit); each neighbour's `matches` say which claims matched and
        why."""
        fields = {
            "claims": claims,
            "claim_hashes": claim_hashes,
            "repo": self._repo(repo),
            "all_repos": all_repos,
            "exclude_pr": exclude_pr,
            "limit": limit,
            "min_score": min_score,
        }
        body = {k: v for k, v in fields.items() if v is not None}
        return cast(Neighbors, self._request("POST", "/neighbors", body=_json(body)))

    def pr_neighbors(
        self,
        pr_number: int,
        limit: Optional[int] = None,
        min_score: Optional[float] = None,
        repo: Optional[str] = None,
        all_repos: Optional[bool] = None,
    ) -> Neighbors:
        """The neighbours of a PR's latest audit's claims, the PR itself left out."""
        query = {
            "repo": self._repo(repo),
            "limit": limit,
            "min_score": min_score,
            "all_repos": None if all_repos is None else str(all_repos).lower(),
        }
        return cast(Neighbors, self._request("GET", f"/prs/{_id(pr_number)}/neighbors", query=query))

    def findings(
        self,
        pr_number: int,
        status: Optional[Literal["open", "resolved", "all"]] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        repo: Optional[str] = None,
        dismissals: Optional[bool] = None,
    ) -> FindingsPage:
        """One page of the findings the memory holds for a PR; `cursor` is a previous page's
        next_cursor. `dismissals=True` adds to each finding the dismissal that silences it."""
        query = {
            "repo": self._repo(repo),
            "status": status,
            "limit": limit,
            "cursor": cursor,
            "dismissals": None if dismissals is None else str(dismissals).lower(),
        }
        return cast(FindingsPage, self._request("GET", f"/prs/{_id(pr_number)}/findings", query=query))

    def all_findings(
        self,
        pr_number: int,
        status: Optional[Literal["open", "resolved", "all"]] = None,
        repo: Optional[str] = None,
        dismissals: Optional[bool] = None,
    ) -> Iterator[RememberedFinding]:
        """Every finding the memory holds for a PR, following the pages. A finding a push
        raises again while the pages are read comes again in its newer state (its last_seen
        later); one the service gives again unchanged is skipped."""
        cursor: Optional[str] = None
        given: set[tuple[str, int]] = set()
        while True:
            page = self.findings(
                pr_number,
                status=status,
                limit=1000,
                cursor=cursor,
                repo=repo,
                dismissals=dismissals,
            )
            for finding in page.get("findings", []):
                if is_omitted(finding):
                    # One finding alone is over the server's --max-response: a marker took its place.
                    raise KbError(
                        f"a finding of PR {pr_number} (seq {finding.get('seq')}) is {finding['omitted_bytes']} bytes, "
                        "more than the server's --max-response: raise it to list them",
                        "bad_response",
                        200,
                    )
                state = (finding["fingerprint"], finding["last_seen"]["seq"])
                if state not in given:
                    given.add(state)
                    yield finding
            cursor = page.get("next_cursor")
            if cursor is None:
                return

    def check_findings(
        self,
        pr_number: int,
        head_sha: str,
        findings: Sequence[FindingInput],
        repo: Optional[str] = None,
    ) -> FindingsCheck:
        """Before posting a review of a head: which of its findings are new, repeats of the PR's
        latest audit, reopened, or dismissed. A read: nothing is stored."""
        body = {"repo": self._repo(repo), "head_sha": head_sha, "findings": list(findings)}
        body = {k: v for k, v in body.items() if v is not None}
        return cast(FindingsCheck, self._request("POST", f"/prs/{_id(pr_number)}/findings/check", body=_json(body)))

    def dismiss_finding(
        self,
        reason: str,
        by: str,
        fingerprint: Optional[str] = None,
        finding: Optional[FindingInput] = None,
        pr_number: Optional[int] = None,
        confirm: Optional[bool] = None,
        repo: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> Dismissal:
        """Records that a finding (by fingerprint, or the finding itself) does not apply: in PR
        `pr_number`, or in every PR of the repository when it is None. A block finding needs
        confirm=True."""
        fields = {
            "repo": self._repo(repo),
            "pr_number": pr_number,
            "fingerprint": fingerprint,
            "finding": finding,
            "reason": reason,
            "by": by,
            "confirm": confirm,
        }
        body = {k: v for k, v in fields.items() if v is not None}
        return cast(Dismissal, self._request("POST", "/findings/dismissals", body=_json(body), write=True, key=idempotency_key))

    def dismissals(
        self,
        pr_number: Optional[int] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        repo: Optional[str] = None,
    ) -> DismissalsPage:
        """One page of live dismissals: the repository's, or with `pr_number` those that apply
        to that PR (its own and the repository's)."""
        query = {"repo": self._repo(repo), "pr_number": pr_number, "limit": limit, "cursor": cursor}
        return cast(DismissalsPage, self._request("GET", "/findings/dismissals", query=query))

    def revoke_dismissal(self, dismissal_id: int, idempotency_key: Optional[str] = None) -> Dismissal:
        """Revokes a dismissal by its id; revoking it again changes nothing (revoked_now False)."""
        path = f"/findings/dismissals/{_id(dismissal_id, 'id')}"
        return cast(Dismissal, self._request("DELETE", path, write=True, key=idempotency_key))

    def sig(
        self, sig_hash: str, after_seq: Optional[int] = None, limit: Optional[int] = None, repo: Optional[str] = None
    ) -> SigPage:
        """One page of everything stored under a sig_hash, in seq order."""
        path = "/sig/" + _quote(sig_hash, "sig_hash")
        return cast(SigPage, self._request("GET", path, query={"repo": self._repo(repo), "after_seq": after_seq, "limit": limit}))

    def sig_records(self, sig_hash: str, repo: Optional[str] = None) -> Iterator[JsonObject]:
        """Every record under a sig_hash, following the pages."""
        after: Optional[int] = None
        while True:
            page = self.sig(sig_hash, after_seq=after, limit=1000, repo=repo)
            yield from page.get("records", [])
            after = page.get("next_after_seq")
            if after is None:
                return

    def events_page(
        self,
        source: Optional[str] = None,
        event_kind: Optional[str] = None,
        sig_hash: Optional[str] = None,
        before_seq: Optional[int] = None,
        limit: Optional[int] = None,
        repo: Optional[str] = None,
    ) -> EventsPage:
        """One page of recent events, newest first. `repo` (default: the client's) is where a
        `sig_hash` is looked up: events are not filtered by repository, and without `sig_hash`
        every repository's are listed."""
        query = {
            "source": source,
            "repo": self._repo(repo),
            "event_kind": event_kind,
            "sig_hash": sig_hash,
            "before_seq": before_seq,
            "limit": limit,
        }
        return cast(EventsPage, self._request("GET", "/events", query=query))

    def events(
        self,
        source: Optional[str] = None,
        event_kind: Optional[str] = None,
        sig_hash: Optional[str] = None,
        limit: Optional[int] = None,
        repo: Optional[str] = None,
    ) -> List[EventItem]:
        """Recent events, newest first, following the cursor to the end (or `limit` events)."""
        out: List[EventItem] = []
        before: Optional[int] = None
        while limit is None or len(out) < limit:
            page_limit = 1000 if limit is None else min(1000, limit - len(out))
            page = self.events_page(source, event_kind, sig_hash, before, page_limit, repo)
            out.extend(page.get("events", []))
            before = page.get("next_before_seq")
            if before is None:
                break
        return out

    def stats(self) -> Stats:
        return cast(Stats, self._request("GET", "/stats"))

    def health(self) -> Health:
        """200 when the database answers and the writer accepts work; a KbError (503) otherwise,
        at once: a health check is not retried (its answer is the state now)."""
        return cast(Health, self._request("GET", "/healthz", retry=False))

    def metrics(self) -> str:
        """The Prometheus exposition, as text."""
        return cast(str, self._request("GET", "/metrics", text=True))

    def feed(
        self,
        after_seq: int = 0,
        types: Optional[Sequence[FeedType]] = None,
        wait: Optional[float] = None,
        limit: Optional[int] = None,
        history: Optional[str] = None,
    ) -> FeedPage:
        """One long-poll page of the change feed; `wait` (seconds, at most 30) is how long the
        server may hold the request when nothing is there. The attempt's timeout is extended
        by it. Pass the previous page's `history` with its `next_after_seq`: a database
        restored from a backup then refuses a position it does not share (409) rather than
        skip records."""
        query = {
            "after_seq": after_seq,
            "history": history,
            "types": ",".join(types) if types else None,
            "wait": None if wait is None else f"{round(wait * 1000)}ms",
            "limit": limit,
        }
        return cast(FeedPage, self._request("GET", "/feed", query=query, extra_time=wait or 0.0))

    def follow(
        self,
        after_seq: int = 0,
        types: Optional[Sequence[FeedType]] = None,
        idle_timeout: float = 45.0,
        max_reconnect_delay: float = 5.0,
        history: Optional[str] = None,
        on_history: Optional[Callable[[str], None]] = None,
    ) -> Iterator[JsonObject]:
        """The change feed, live: every record after `after_seq` as it is committed, forever
        (break out of the loop to stop). A lost connection, a cut or a restart of the server is
        resumed from the last seq yielded, with nothing skipped or repeated. A stream silent for
        `idle_timeout` seconds (three keep-alives) is taken as dead and reopened. An item of type
        "resync" says events the consumer had not seen were deleted by retention. The history
        the positions are in (`history`, then the last answer's) is sent on every reconnection:
        a server now holding another history (a database restored from a backup) is a KbError
        409, not a silent skip; one that served the position (its history shares it) names its
        own history, which the records after it are in. `on_history` is called with that history
        whenever an answer names one other than the history known so far, before the answer's
        first item: a consumer that saves its position saves it too, and passes it back as
        `history` with the position."""
        position = after_seq
        failures = 0
        query: Dict[str, Any] = {"types": ",".join(types) if types else None}
        # An error of on_history's is the caller's, never taken for a lost connection.
        raised: Optional[BaseException] = None
        while True:
            delay = min(max_reconnect_delay, 0.1 * 2**failures)
            connection = self._connection(idle_timeout)
            try:
                headers = self._headers()
                headers.update({"accept": "text/event-stream", "last-event-id": str(position)})
                path = self._path("/feed", dict(query, after_seq=position, history=history))
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                named = response.getheader("feed-history") if response.status == 200 else None
                if named and named != history:
                    if on_history is not None:
                        try:
                            on_history(named)
                        except BaseException as failure:
                            raised = failure
                            raise
                    history = named
                if response.status != 200:
                    error = self._error(response.status, response.headers, response.read())
                    if error.status < 500 and error.status != 429:
                        raise error
                    if error.retry_after is not None:
                        delay = error.retry_after
                else:
                    for item in _sse_items(response):
                        seq = item.get("seq")
                        if item.get("type") != "resync" and isinstance(seq, int):
                            if seq <= position:
                                continue
                            position = seq
                        failures = 0
                        yield item
                    delay = 0.1
            except (OSError, http.client.HTTPException, ValueError) as lost:
                if lost is raised:
                    raise
            finally:
                connection.close()
            failures += 1
            time.sleep(delay)

    # The one way to the service.

    def _batch(self, path: str, lines: List[str], key: Optional[str]) -> BatchReport:
        body = _utf8("\n".join(lines) + "\n")
        answer = self._request("POST", path, body=body, content_type="application/x-ndjson", write=True, key=key)
        return cast(BatchReport, answer)

    def _repo(self, repo: Optional[str]) -> Optional[str]:
        return repo if repo is not None else self.repo

    def _in_repo(self, verdict: Mapping[str, Any]) -> Mapping[str, Any]:
        """`verdict` in the client's repository when it names none."""
        if "repo" in verdict or self.repo is None:
            return verdict
        return dict(verdict, repo=self.repo)

    def _headers(self) -> Dict[str, str]:
        headers = {"user-agent": USER_AGENT}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def _path(self, path: str, query: Optional[Mapping[str, Any]]) -> str:
        # As urlencode writes it (a value as str(value), quote_plus), each value quoted once.
        pairs = [
            f"{urllib.parse.quote_plus(name)}={_quote(str(value), name, plus=True)}"
            for name, value in (query or {}).items()
            if value is not None
        ]
        return self._prefix + path + ("?" + "&".join(pairs) if pairs else "")

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _request(
        self,
        method: str,
        path: str,
        query: Optional[Mapping[str, Any]] = None,
        body: Optional[bytes] = None,
        content_type: str = "application/json",
        write: bool = False,
        key: Optional[str] = None,
        text: bool = False,
        extra_time: float = 0.0,
        retry: bool = True,
    ) -> Any:
        headers = self._headers()
        if body is not None:
            headers["content-type"] = content_type
        if write:
            headers["idempotency-key"] = key if key is not None else str(uuid.uuid4())
        for name, value in headers.items():
            # http.client would raise ValueError or UnicodeEncodeError while sending.
            if not _sendable(value):
                field = "token" if name == "authorization" else name
                raise KbError(f"{field} cannot be sent in an HTTP header: {value!r}", "bad_request", field=field)
        target = self._path(path, query)
        uncertain = False  # an attempt of this write may have committed without our hearing
        last: Optional[KbError] = None
        for attempt in range((self.retries if retry else 0) + 1):
            if attempt:
                # Retry-After plus up to a quarter more, so that clients told the same wait do
                # not all come back in the same instant.
                time.sleep(last.retry_after * (1 + random.random() / 4) if last and last.retry_after is not None else min(2.0, 0.1 * 2**attempt))
            try:
                answer = self._attempt(method, target, headers, body, self.timeout + extra_time)
            except _Unsent as refused:
                # Nothing was sent: a connection that timed out is a timeout, not a write that
                # may have committed.
                timed_out = isinstance(refused.cause, (socket.timeout, TimeoutError))
                last = KbError(f"lakehouse-kb unreachable at {self.base_url}: {refused.cause}", "timeout" if timed_out else "network")
                continue
            except (socket.timeout, TimeoutError):
                last = KbError(f"lakehouse-kb at {self.base_url} did not answer {method} {path} within {self.timeout + extra_time:g} s", "timeout")
                uncertain = uncertain or write
                continue
            except (OSError, http.client.HTTPException) as error:
                last = KbError(f"lakehouse-kb at {self.base_url}: connection lost during {method} {path}: {error!r}", "network")
                uncertain = uncertain or write
                continue
            if 200 <= answer.status < 300:
                if text:
                    return answer.body.decode("utf-8", "replace")
                try:
                    return json.loads(answer.body)
                except ValueError:
                    raise KbError(
                        f"lakehouse-kb answered {answer.status} with a body that is not JSON: {_snippet(answer.body)}",
                        "bad_response",
                        answer.status,
                        may_be_committed=write,
                    ) from None
            last = self._error(answer.status, answer.headers, answer.body)
            if write and answer.status == 503 and last.retry_after is None:
                uncertain = True  # the service says it may have committed it
            if write and answer.status == 507:
                # A storage fault may fail a commit's last sync after its bytes reached the
                # disk: the commit may survive the repair (docs/RELIABILITY.md).
                uncertain = True
            if write and answer.status in (502, 504):
                # A proxy in front gave up on the service: the write's fate is unknown.
                uncertain = True
            # A write told to come back (load shed, a storage fault, a full disk), or whose
            # proxy gave up, is retried with its key, which makes the retry safe whatever the
            # first attempt did.
            if answer.status in (502, 504):
                retry = True
            elif write:
                retry = answer.status in (503, 507) and last.retry_after is not None
            else:
                retry = answer.status == 503
            if not retry:
                break
        assert last is not None
        if write and uncertain:
            last = KbError(
                f"{last} (the write may have been committed: retry with idempotency_key={headers['idempotency-key']!r} to be sure)",
                last.kind,
                last.status,
                last.field,
                last.retry_after,
                True,
                last.body,
            )
        raise last

    def _attempt(self, method: str, target: str, headers: Mapping[str, str], body: Optional[bytes], budget: float) -> _Answer:
        """One request with one deadline for connecting, sending, the headers and the body: a
        socket's timeout bounds each read alone, so a watchdog cuts the connection at the
        deadline (a server sending its headers a byte at a time is given no longer)."""
        deadline = time.monotonic() + budget
        connection = self._connection(budget)
        cut = threading.Event()
        watchdog = threading.Timer(budget, _cut, args=(connection, cut))
        watchdog.daemon = True
        watchdog.start()
        try:
            try:
                connection.connect()
            except OSError as error:
                raise _Unsent(error) from error
            try:
                connection.request(method, target, body=body, headers=dict(headers))
            except (BrokenPipeError, ConnectionResetError):
                # The server may have answered before reading the whole body (413 for a body
                # over its limit) and closed: its answer says what became of the request.
                pass
            _set_deadline(connection, deadline)
            response = connection.getresponse()
            chunks = []
            while True:
                _set_deadline(connection, deadline)
                chunk = response.read1(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            if response.length:
                # The connection ended before the Content-Length the server announced (read1
                # does not raise for it): an answer cut short, not the service's answer.
                raise http.client.IncompleteRead(b"".join(chunks), response.length)
            if cut.is_set():
                # Cut at the deadline: what was read ended there, not where the server ended it.
                raise TimeoutError("deadline passed")
            return _Answer(response.status, response.headers, b"".join(chunks))
        # (ValueError: an SSL socket shut down by the watchdog during a read.)
        except (OSError, http.client.HTTPException, ValueError) as error:
            if cut.is_set() or time.monotonic() >= deadline:
                raise TimeoutError("deadline passed") from error
            raise
        finally:
            watchdog.cancel()
            connection.close()

    def _error(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> KbError:
        try:
            answer: Any = json.loads(body)
        except ValueError:
            answer = None
        fields: Mapping[str, Any] = answer if isinstance(answer, dict) else {}
        error = fields.get("error")
        message = error if isinstance(error, str) else f"HTTP {status} from lakehouse-kb: {_snippet(body)}"
        field = fields.get("field")
        return KbError(
            message,
            "http",
            status,
            field if isinstance(field, str) else None,
            retry_after_secs(headers.get("retry-after"), self.max_retry_after),
            False,
            answer,
        )


class _Unsent(Exception):
    """The connection could not be made: nothing was sent."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _cut(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """Shuts the connection's socket down, so that a read blocked on it returns, and says so
    in `cut`."""
    cut.set()
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _set_deadline(connection: http.client.HTTPConnection, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    if connection.sock is not None:
        connection.sock.settimeout(remaining)


def _sse_items(response: http.client.HTTPResponse) -> Iterator[JsonObject]:
    """The data of each complete Server-Sent Event, parsed; a partial last event is dropped."""
    data: List[str] = []
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data:
                yield cast(JsonObject, json.loads("\n".join(data)))
            data = []
        elif line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])


def _id(value: int, field: str = "pr_number") -> str:
    """A PR number or id as a path segment: a non-negative integer, else a KbError before
    anything is sent."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KbError(f"{field} must be a non-negative integer, got {value!r}", "bad_request", field=field)
    return str(value)


def _dumps(value: Any, **options: Any) -> str:
    """JSON text, or a KbError before sending: NaN and Infinity are not JSON (refused here
    rather than sent for a 400), nor is an object json cannot write (a datetime, a set)."""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except (TypeError, ValueError, RecursionError) as error:
        raise KbError(f"the body cannot be sent as JSON: {error}", "bad_request", field="body") from error


def _json(value: Any) -> bytes:
    return _dumps(value).encode("utf-8")


# A surrogate code point alone (a string cut inside an emoji's pair, text decoded with
# surrogateescape): UTF-8 cannot carry it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _compact(value: Mapping[str, Any]) -> str:
    """The line JavaScript's JSON.stringify writes: compact, text as it is, a lone surrogate
    escaped (as \\ud83d), as post_verdict's escaped JSON sends it too."""
    text = _dumps(value, separators=(",", ":"), ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _utf8(text: str) -> bytes:
    """A body as UTF-8, or a KbError before sending when it holds a lone surrogate."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise KbError(
            f"the body holds a lone surrogate at index {error.start}, which UTF-8 cannot carry", "bad_request", field="body"
        ) from error


def _quote(text: str, field: str, plus: bool = False) -> str:
    """Text percent-encoded for a URL (a path segment, or with `plus` a query value), or a
    KbError before sending when it holds a lone surrogate (UTF-8 cannot carry it)."""
    try:
        return urllib.parse.quote_plus(text, safe="") if plus else urllib.parse.quote(text, safe="")
    except UnicodeEncodeError as error:
        raise KbError(f"{field} holds a lone surrogate at index {error.start}, which a URL cannot carry", "bad_request", field=field) from error


def _sendable(value: str) -> bool:
    """Whether a header value goes on the wire as given: Latin-1, no control characters."""
    return all(" " <= c <= "~" or "\xa0" <= c <= "\xff" for c in value)


def _snippet(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return (text[:200] + "...") if len(text) > 200 else (text or "(empty body)")


__all__: Tuple[str, ...] = (
    "KbClient",
    "KbError",
    "claim_hash",
    "retry_after_secs",
    "USER_AGENT",
)
