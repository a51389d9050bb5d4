// The seed's own observer client, `indexVerdictToObserver` from auditor/audit.ts (Phase A,
// commit 6e39d8778f), with its TypeScript annotations removed and nothing else changed, so the
// test proves that the legacy auditor works against lakehouse-kb unchanged.
// Usage: LH_OBSERVER_URL=http://127.0.0.1:PORT node seed_observer_client.mjs '<verdict json>'

const OBSERVER_URL = process.env.LH_OBSERVER_URL ?? "http://localhost:3800";

async function indexVerdictToObserver(v) {
  const payload = {
    source: "auditor",
    event_kind: "audit",
    ok: v.overall === "approve",
    sig_hash: `pr${v.pr_number}-${v.head_sha.slice(0, 8)}`,
    pr_number: v.pr_number,
    head_sha: v.head_sha,
    overall: v.overall,
    one_liner: v.one_liner,
    findings_block: v.metrics.findings_block,
    findings_warn: v.metrics.findings_warn,
    audit_duration_ms: v.metrics.audit_duration_ms,
    audited_at: v.audited_at,
  };
  const r = await fetch(`${OBSERVER_URL}/event`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(payload),
    signal: AbortSignal.timeout(3000),
  });
  if (!r.ok) throw new Error(`observer ${r.status}: ${await r.text()}`);
}

await indexVerdictToObserver(JSON.parse(process.argv[2]));
console.log("indexed");
