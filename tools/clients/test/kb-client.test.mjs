// Tests of kb-client.ts (compiled to dist/ by tsc) against a real lakehouse-kb server at
// KB_URL: the auditor's calls end to end. Run by tests/it/clients.rs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { KbClient, KbError, claimHash } from "../dist/kb-client.js";

const kb = new KbClient({ baseUrl: process.env.KB_URL, retries: 1 });
const head = (n) => `${n}`.repeat(40).slice(0, 40);
const verdict = (pr, h, at, overall, oneLiner, claims) => ({
  pr_number: pr,
  head_sha: h,
  overall,
  one_liner: oneLiner,
  claims: claims.map((text) => ({ text, source: "commit_message" })),
  metrics: { findings_block: 1, findings_warn: 0, findings_info: 2, audit_duration_ms: 1500 },
  audited_at: at,
  reviewer: "kb-client test",
});

test("postVerdict stores once and is safe to retry", async () => {
  const v = verdict(41, head("a"), "2026-04-01T09:00:00.000Z", "block", "tests missing", ["Claim one"]);
  const first = await kb.postVerdict(v);
  assert.equal(first.sig_hash, "pr41-aaaaaaaa");
  assert.equal(first.duplicate, false);
  assert.equal(first.outcome_seq, first.seq + 1);
  const again = await kb.postVerdict(v);
  assert.deepEqual([again.seq, again.duplicate], [first.seq, true]);
});

test("priorAudits gives the Phase B finding and excludes the head under audit", async () => {
  await kb.postVerdict(verdict(42, head("b"), "2026-04-01T09:00:00.000Z", "request_changes", "no tests", []));
  await kb.postVerdict(verdict(42, head("c"), "2026-04-01T10:00:00.000Z", "approve", "claims match the diff", []));
  const prior = await kb.priorAudits(42);
  assert.equal(prior.count, 2);
  assert.equal(prior.finding, "prior 2 audits on this PR ended in [request_changes, approve], last reason was claims match the diff.");
  assert.equal(prior.audits[0].head_sha, head("c"));
  const excluding = await kb.priorAudits(42, { excludeSha: head("c").slice(0, 8) });
  assert.equal(excluding.count, 1);
  const none = await kb.priorAudits(4242);
  assert.equal(none.count, 0);
});

test("neighbors finds earlier verdicts on the same claims, and claimHash matches the service", async () => {
  await kb.postVerdict(verdict(43, head("d"), "2026-04-01T11:00:00.000Z", "block", "first", ["Shared  CLAIM", "other"]));
  const found = await kb.neighbors({ claims: ["shared claim"], excludePr: 44 });
  assert.equal(found.count, 1);
  assert.equal(found.neighbors[0].pr_number, 43);
  assert.equal(found.neighbors[0].shared[0].claim_hash, await claimHash("  shared\tclaim "));
  const byHash = await kb.neighbors({ claimHashes: [await claimHash("other")] });
  assert.equal(byHash.neighbors[0].pr_number, 43);
});

test("a refusal is a KbError naming the field", async () => {
  const bad = verdict(45, "not-hex", "t", "approve", "x", []);
  await assert.rejects(kb.postVerdict(bad), (error) => {
    assert.ok(error instanceof KbError);
    assert.equal(error.status, 400);
    assert.equal(error.field, "head_sha");
    return true;
  });
});

test("postOutcome stores the row byte for byte", async () => {
  const line = '{"sig_hash":"scn-client-1","kind":"fill","x":1.50,"note":"caf\\u00e9"}';
  const posted = await kb.postOutcome(line);
  assert.equal(posted.sig_hash, "scn-client-1");
  const fromObject = await kb.postOutcome({ sig_hash: "scn-client-2", kind: "fill" });
  assert.ok(fromObject.seq > posted.seq);
  const response = await fetch(`${process.env.KB_URL}/sig/scn-client-1`);
  // The row comes back embedded as stored: the exact bytes, escapes and "1.50" included.
  assert.ok((await response.text()).includes(`"row":${line}`));
});

test("postEvent speaks the observer's contract", async () => {
  const posted = await kb.postEvent({ source: "bot", event_kind: "cycle", ok: true });
  assert.equal(posted.ok, true);
  const stats = await kb.stats();
  assert.ok(stats.by_source.bot >= 1);
});
