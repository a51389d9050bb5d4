"""A typed client for lakehouse-kb, the memory of the lakehouse AI code-review system.

    from lakehouse_kb_client import KbClient
    kb = KbClient()                          # LAKEHOUSE_KB_URL, else http://localhost:3800
    kb.post_verdict(verdict)                 # durable; retried safely with an Idempotency-Key
    prior = kb.prior_audits(6, exclude_sha="7fe47bab")
    similar = kb.pr_neighbors(6)             # earlier PRs with similar claims, and why
    seen = kb.check_findings(6, head_sha, findings)  # new, repeat, reopened or dismissed
    print(prior["finding"])                  # prior 3 audits on this PR ended in [...]
    for item in kb.follow(after_seq=saved):  # the change feed, live, resumed after any cut
        ...

Standard library only. Scripts that read whole files (kb_measure.py, kb_staffer_report.py) can
keep reading the exported data/_kb/outcomes.jsonl, which the service keeps byte-compatible.
"""

from .client import (
    BatchReport,
    CheckedFinding,
    ClaimMatch,
    Dismissal,
    DismissalsPage,
    EventItem,
    EventsPage,
    ExportProblem,
    FeedPage,
    FeedType,
    FindingInput,
    FindingsCheck,
    FindingsPage,
    Health,
    KbClient,
    KbError,
    Neighbor,
    Neighbors,
    Omitted,
    OmittedKeys,
    PostedEvent,
    PostedOutcome,
    PostedVerdict,
    PriorAudit,
    PriorAudits,
    RememberedFinding,
    Severity,
    SigPage,
    Stats,
    StorageFault,
    USER_AGENT,
    __version__,
    claim_hash,
    is_omitted,
    retry_after_secs,
)

__all__ = [
    "BatchReport",
    "CheckedFinding",
    "ClaimMatch",
    "Dismissal",
    "DismissalsPage",
    "EventItem",
    "EventsPage",
    "ExportProblem",
    "FeedPage",
    "FeedType",
    "FindingInput",
    "FindingsCheck",
    "FindingsPage",
    "Health",
    "KbClient",
    "KbError",
    "Neighbor",
    "Neighbors",
    "Omitted",
    "OmittedKeys",
    "PostedEvent",
    "PostedOutcome",
    "PostedVerdict",
    "PriorAudit",
    "PriorAudits",
    "RememberedFinding",
    "Severity",
    "SigPage",
    "Stats",
    "StorageFault",
    "USER_AGENT",
    "__version__",
    "claim_hash",
    "is_omitted",
    "retry_after_secs",
]
