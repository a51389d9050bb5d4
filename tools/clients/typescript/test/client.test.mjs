// The client (compiled to dist/ by tsc) against a real lakehouse-kb server at KB_URL: the
// auditor's calls end to end, every route, and follow(). Run by tests/it/clients.rs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { KbClient, KbError, VERSION, claimHash } from "../dist/index.js";

// A generous timeout: on a loaded CI machine an fsync can take seconds.
const kb = new KbClient({ baseUrl: process.env.KB_URL, retries: 1, timeoutMs: 30_000 });
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
  // The exact match first; claims that merely share a word may follow, scored below 1.
  assert.equal(found.neighbors[0].pr_number, 43);
  assert.equal(found.neighbors[0].score, 1);
  assert.equal(found.neighbors[0].shared[0].claim_hash, await claimHash("  shared\tclaim "));
  const byHash = await kb.neighbors({ claimHashes: [await claimHash("other")] });
  assert.equal(byHash.neighbors[0].pr_number, 43);
});

test("a client's repository is a namespace: the same PR number elsewhere is not seen", async () => {
  const repo = "gitea:profit/client-ts";
  const inRepo = new KbClient({ baseUrl: process.env.KB_URL, retries: 1, timeoutMs: 30_000, repo });
  await kb.postVerdict({ ...verdict(56, head("e"), "2026-04-02T09:00:00.000Z", "block", "default ns", ["retry the S3 upload"]) });
  await inRepo.postVerdict({ ...verdict(56, head("f"), "2026-04-02T10:00:00.000Z", "approve", "named", ["retries S3 uploads with backoff"]), repo });
  // A verdict that names no repository is the client's (at 47acc62 it went to the default).
  await inRepo.postVerdict(verdict(57, head("1"), "2026-04-02T11:00:00.000Z", "request_changes", "newer", ["S3 upload retry loop"]));
  const history = await inRepo.priorAudits(56);
  assert.deepEqual([history.repo, history.count, history.audits[0].one_liner], [repo, 1, "named"]);
  assert.equal((await kb.priorAudits(56)).audits[0].one_liner, "default ns");
  // Similar claims, explained; the PR itself left out.
  const near = await inRepo.prNeighbors(57);
  assert.equal(near.neighbors[0].pr_number, 56);
  assert.equal(near.neighbors[0].repo, repo);
  assert.equal(near.neighbors[0].matches[0].kind, "similar");
  assert.ok(near.neighbors[0].matches[0].terms.includes("s3"));
  assert.match(near.context ?? "", /#56 approve/);
  const everywhere = await inRepo.neighbors({ claims: ["retry the S3 upload"], allRepos: true, minScore: 0.5 });
  assert.ok(everywhere.neighbors.some((n) => n.repo === null && n.pr_number === 56));
  const stats = await kb.stats();
  assert.equal(stats.by_repo?.[repo], 2);
});

test("history pages with beforeSeq", async () => {
  for (let i = 0; i < 3; i++) {
    await kb.postVerdict(verdict(58, head(String(i + 2)), `2026-04-03T0${i}:00:00.000Z`, "approve", `audit ${i}`, []));
  }
  const first = await kb.priorAudits(58, { limit: 2 });
  assert.deepEqual(first.audits.map((a) => a.one_liner), ["audit 2", "audit 1"]);
  const rest = await kb.priorAudits(58, { limit: 2, beforeSeq: first.next_before_seq });
  assert.deepEqual(rest.audits.map((a) => a.one_liner), ["audit 0"]);
  assert.equal(rest.next_before_seq, undefined);
});

test("findings are remembered across heads and dismissals stick until revoked", async () => {
  const unwrap = { check: "static", severity: "warn", summary: "unwrap() on user input in parse_body can panic" };
  const sql = { check: "security", severity: "block", summary: "SQL built by concatenating the name parameter" };
  await kb.postVerdict({ ...verdict(59, head("7"), "2026-04-04T09:00:00.000Z", "block", "sql", []), findings: [unwrap, sql] });
  const open = [];
  for await (const f of kb.allFindings(59)) open.push(f.summary);
  assert.deepEqual(open.sort(), [unwrap.summary, sql.summary].sort());
  const check = await kb.checkFindings(59, { headSha: head("8"), findings: [unwrap, { check: "tests", summary: "no test for the retry path" }] });
  assert.deepEqual(check.findings.map((f) => f.status), ["repeat", "new"]);
  await assert.rejects(kb.dismissFinding({ prNumber: 59, finding: sql, reason: "fixture", by: "ana" }), (error) => {
    assert.ok(error instanceof KbError);
    assert.deepEqual([error.status, error.field], [422, "confirm"]);
    return true;
  });
  const dismissal = await kb.dismissFinding({ prNumber: 59, finding: unwrap, reason: "input is validated first", by: "ana" });
  assert.equal(dismissal.duplicate, false);
  const again = await kb.dismissFinding({ prNumber: 59, fingerprint: dismissal.fingerprint, reason: "again", by: "bo" });
  assert.deepEqual([again.id, again.duplicate], [dismissal.id, true]);
  assert.equal((await kb.checkFindings(59, { headSha: head("8"), findings: [unwrap] })).findings[0].status, "dismissed");
  assert.deepEqual((await kb.dismissals({ prNumber: 59 })).dismissals.map((d) => d.id), [dismissal.id]);
  const revoked = await kb.revokeDismissal(dismissal.id);
  assert.equal(revoked.revoked_now, true);
  assert.equal((await kb.revokeDismissal(dismissal.id)).revoked_now, false);
  assert.equal((await kb.checkFindings(59, { headSha: head("8"), findings: [unwrap] })).findings[0].status, "repeat");
  await assert.rejects(kb.findings(-1), (error) => error instanceof KbError && error.kind === "bad_request");
});

test("a refusal is a KbError naming the field", async () => {
  const bad = verdict(45, "not-hex", "t", "approve", "x", []);
  await assert.rejects(kb.postVerdict(bad), (error) => {
    assert.ok(error instanceof KbError);
    assert.deepEqual([error.kind, error.status, error.field, error.mayBeCommitted], ["http", 400, "head_sha", false]);
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

test("sig pages through everything under a sig_hash", async () => {
  for (let i = 0; i < 3; i++) await kb.postOutcome({ sig_hash: "scn-ts-sig", kind: "fill", i });
  const first = await kb.sig("scn-ts-sig", { limit: 2 });
  assert.deepEqual(first.records.map((r) => r.type), ["outcome", "outcome"]);
  assert.ok(first.next_after_seq !== undefined);
  const all = [];
  for await (const record of kb.sigRecords("scn-ts-sig")) all.push(record.row.i);
  assert.deepEqual(all, [0, 1, 2]);
});

test("batches, events and their pages", async () => {
  const report = await kb.postEvents([
    { source: "mcp", event_kind: "ts-batch", ok: true },
    { source: "mcp", event_kind: "ts-batch", sig_hash: "x".repeat(600) },
    { source: "mcp", event_kind: "ts-batch", ok: false },
  ]);
  assert.equal(report.accepted, 2);
  assert.equal(report.rejected[0].field, "sig_hash");
  const page = await kb.events({ eventKind: "ts-batch", limit: 1 });
  assert.equal(page.events.length, 1);
  assert.ok(page.next_before_seq !== undefined);
  const all = [];
  for await (const event of kb.allEvents({ eventKind: "ts-batch" })) all.push(event.seq);
  assert.equal(all.length, 2);
  assert.ok(all[0] > all[1], "newest first");
  const rows = await kb.postOutcomes(['{"sig_hash":"scn-ts-batch","x":1.50}', { sig_hash: "scn-ts-batch" }]);
  assert.equal(rows.accepted, 2);
  const verdicts = await kb.postVerdicts([verdict(46, head("e"), "2026-04-02T09:00:00.000Z", "approve", "ok", [])]);
  assert.equal(verdicts.accepted, 1);
});

test("health, metrics, export and backup", async () => {
  const health = await kb.health();
  assert.equal(health.status, "ok");
  const metrics = await kb.metrics();
  assert.match(metrics, /lakehousekb_http_requests_total/);
  const exported = await kb.exportNow();
  assert.ok(["unchanged", "appended", "rebuilt"].includes(exported.ops.action));
  // The server picks the place (its --backup-dir) and, without a name, the name.
  const backup = await kb.backup({});
  assert.match(backup.name, /^kb-\d{8}T\d{6}Z/);
  assert.ok(backup.last_seq >= 1);
  const named = await kb.backup({ name: "before-upgrade" });
  assert.equal(named.name, "before-upgrade");
});

test("feed pages and follow() sees what is committed while it follows", async () => {
  const start = (await kb.stats()).last_seq;
  const page = await kb.feed({ afterSeq: start, waitMs: 0 });
  assert.deepEqual(page.records, []);
  assert.equal(page.next_after_seq, start);
  const stop = new AbortController();
  const seqs = [];
  const following = (async () => {
    for await (const item of kb.follow({ afterSeq: start, types: ["event"], signal: stop.signal })) {
      seqs.push(item.seq);
      if (seqs.length === 3) stop.abort();
    }
  })();
  const posted = [];
  for (let i = 0; i < 3; i++) posted.push((await kb.postEvent({ source: "bot", event_kind: "follow", i })).seq);
  await following;
  assert.deepEqual(seqs, posted);
  const waited = await kb.feed({ afterSeq: posted[2], types: ["verdict"], waitMs: 100 });
  assert.deepEqual(waited.records, []);
});

test("every write carries an Idempotency-Key and the client names itself", async () => {
  assert.equal(VERSION, "0.1.0");
  const posted = await kb.postEvent({ source: "bot", event_kind: "keyed" }, { idempotencyKey: "ts-key-1" });
  assert.ok(posted.seq > 0);
});
