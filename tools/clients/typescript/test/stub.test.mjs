// The client against a stub server that misbehaves on purpose: an HTML 502, a body that
// stalls, 503 with Retry-After in both forms, a body that is not JSON, a refused connection,
// a feed cut mid-event. Every failure must be a KbError; every retry of a write must carry
// the same Idempotency-Key. Run by tests/it/clients.rs (and `npm test`).
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { KbClient, KbError, VERSION, isOmitted, retryAfterSecs } from "../dist/index.js";

/** Requests seen, by scenario: method, path, headers. */
const seen = new Map();
let connections = [];

/** Each scenario is the first path segment; `n` counts its requests from 1. */
const scenarios = {
  html502: (req, res) => {
    res.writeHead(502, { "content-type": "text/html" });
    res.end("<html><body><h1>502 Bad Gateway</h1></body></html>");
  },
  // One finding over --max-response: the page holds a marker in its place.
  findingmarker: (req, res) => json(res, 200, { findings: [{ seq: 5, omitted_bytes: 1783 }], next_cursor: "5-0000000000000001-5" }),
  gateway504: (req, res) => {
    res.writeHead(504, { "content-type": "text/html" });
    res.end("<html><body><h1>504 Gateway Time-out</h1></body></html>");
  },
  cutshort: (req, res, n) => {
    // A 200 whose body ends before its Content-Length: the first time only.
    if (n > 1) return json(res, 200, { ok: true, seq: 12 });
    res.writeHead(200, { "content-type": "application/json", "content-length": "200" });
    res.write('{"ok":true,"seq":12');
    res.socket.destroySoon();
  },
  stall: (req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.write('{"total":');
  },
  busy2: (req, res, n) => {
    if (n === 1) return json(res, 503, { error: "the write queue is full" }, { "retry-after": "2" });
    json(res, 200, { ok: true, seq: 7 });
  },
  busydate: (req, res, n) => {
    if (n === 1) {
      const at = new Date(Date.now() + 1500).toUTCString();
      return json(res, 503, { error: "busy" }, { "retry-after": at });
    }
    json(res, 200, { ok: true, seq: 8 });
  },
  busyfar: (req, res) => {
    const at = new Date(Date.now() + 3_600_000).toUTCString();
    json(res, 503, { error: "busy for an hour" }, { "retry-after": at });
  },
  maybe: (req, res) => json(res, 503, { error: "the request took too long (a write may still have been committed)" }),
  full: (req, res, n) => {
    if (n === 1) return json(res, 507, { error: "no space left on the database's disk" }, { "retry-after": "0" });
    json(res, 200, { ok: true, seq: 9, duplicate: true });
  },
  degraded: (req, res) => json(res, 503, { status: "degraded", storage: { no_space: true } }, { "retry-after": "1" }),
  alwaysfull: (req, res) => json(res, 507, { error: "no space left on the database's disk" }, { "retry-after": "0" }),
  badjson: (req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end("{not json");
  },
  longpoll: (req, res) => setTimeout(() => json(res, 200, { records: [], next_after_seq: 5, last_seq: 5 }), 800),
  refuse400: (req, res) => json(res, 400, { error: "head_sha must be hex, got \"x\"", field: "head_sha" }),
  ok: (req, res) => json(res, 200, { records: [], next_after_seq: 0, last_seq: 0 }),
  findingpages: (req, res, n) => {
    const finding = (fingerprint, seq) => ({ fingerprint, summary: fingerprint, last_seen: { head_sha: "a", audited_at: "t", seq } });
    // Page 2 as after a push: F raised again (newer), G, and H given again unchanged.
    if (n === 1) return json(res, 200, { findings: [finding("f", 1), finding("h", 1)], next_cursor: "1-0000000000000001-1" });
    json(res, 200, { findings: [finding("f", 3), finding("h", 1), finding("g", 1)] });
  },
  feedcut: (req, res, n) => {
    // The history the server names: from the second answer on, another (a database restored
    // from a backup that shares the position asked for).
    res.writeHead(200, { "content-type": "text/event-stream", "feed-history": n === 1 ? "00000000000000a1" : "00000000000000b2" });
    const event = (seq) => `id: ${seq}\nevent: event\ndata: ${JSON.stringify({ type: "event", seq, received_at: "t", op: {} })}\n\n`;
    if (n === 1) {
      res.write("retry: 1000\n\n" + event(1) + event(2) + event(3).slice(0, 20));
      setTimeout(() => res.destroy(), 20);
    } else if (n === 2) {
      // A repeat of 2 (a server must not, but a client must not yield it twice) and a resync.
      res.write(event(2) + event(3) + 'event: resync\ndata: {"type":"resync","after_seq":2,"events_deleted_through":2,"oldest_seq":3}\n\n');
      res.end(event(4));
    } else {
      res.write(": keep-alive\n\n" + event(5));
    }
  },
  feedthree: (req, res) => {
    // Three events in one write: a reader holds them all after one read.
    res.writeHead(200, { "content-type": "text/event-stream", "feed-history": "00000000000000c3" });
    const event = (seq) => `id: ${seq}\nevent: event\ndata: ${JSON.stringify({ type: "event", seq, received_at: "t", op: {} })}\n\n`;
    res.write(event(1) + event(2) + event(3));
  },
};

function json(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  const name = req.url.split("/")[1];
  const log = seen.get(name) ?? [];
  log.push({ method: req.method, path: req.url, headers: req.headers });
  seen.set(name, log);
  req.resume();
  req.on("end", () => scenarios[name](req, res, log.length));
});
server.on("connection", (socket) => connections.push(socket));
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${server.address().port}`;
test.after(() => {
  connections.forEach((socket) => socket.destroy());
  server.close();
});

const client = (scenario, options = {}) => new KbClient({ baseUrl: `${base}/${scenario}`, timeoutMs: 500, ...options });

async function failure(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof KbError, `a KbError, not ${error?.name}: ${error}`);
    return error;
  }
  assert.fail("expected a failure");
}

test("an HTML 502 is a KbError with its status, retried for reads", async () => {
  const error = await failure(client("html502", { retries: 1 }).stats());
  assert.equal(error.kind, "http");
  assert.equal(error.status, 502);
  assert.match(error.message, /HTTP 502.*Bad Gateway/);
  assert.equal(seen.get("html502").length, 2);
  assert.equal(seen.get("html502")[0].headers["user-agent"], `lakehouse-kb-client-ts/${VERSION}`);
});

test("a finding over the server's budget is a KbError naming it, not a crash", async () => {
  const error = await failure((async () => {
    for await (const _ of client("findingmarker").allFindings(6)) {
      // nothing: the first page fails
    }
  })());
  assert.equal(error.kind, "bad_response");
  assert.match(error.message, /--max-response/);
  assert.equal(isOmitted({ seq: 5, omitted_bytes: 1783 }), true);
  assert.equal(isOmitted({ seq: 5, fingerprint: "d83d71c10f353aa9" }), false);
});

test("a write a proxy gave up on (504) may have been committed, and is retried with its key", async () => {
  const error = await failure(client("gateway504", { retries: 1 }).postEvent({ source: "bot" }));
  assert.equal(error.status, 504);
  assert.equal(error.mayBeCommitted, true);
  assert.match(error.message, /may have been committed/);
  const keys = seen.get("gateway504").filter((r) => r.method === "POST").map((r) => r.headers["idempotency-key"]);
  assert.equal(keys.length, 2, "retried once");
  assert.equal(new Set(keys).size, 1, "with the same key");
});

test("an answer cut short of its length is not the answer, and is retried", async () => {
  assert.deepEqual(await client("cutshort", { retries: 1 }).postEvent({ source: "bot" }), { ok: true, seq: 12 });
  const keys = seen.get("cutshort").filter((r) => r.method === "POST").map((r) => r.headers["idempotency-key"]);
  assert.equal(keys.length, 2, "retried once");
  assert.equal(new Set(keys).size, 1, "with the same key");
});

test("a stalled body times out as a KbError; a write says it may have been committed", async () => {
  const read = await failure(client("stall", { retries: 0 }).stats());
  assert.equal(read.kind, "timeout");
  assert.equal(read.mayBeCommitted, false);
  const write = await failure(client("stall", { retries: 2, timeoutMs: 200 }).postEvent({ source: "bot" }));
  assert.equal(write.kind, "timeout");
  assert.equal(write.mayBeCommitted, true);
  assert.match(write.message, /may have been committed/);
  const writes = seen.get("stall").filter((r) => r.method === "POST");
  assert.equal(writes.length, 3, "a timed-out write is retried");
  const keys = new Set(writes.map((r) => r.headers["idempotency-key"]));
  assert.equal(keys.size, 1, "with the same key");
  assert.match([...keys][0], /^[0-9a-f-]{36}$/);
});

test("503 with Retry-After: 2 is retried after it, with the same key", async () => {
  const started = Date.now();
  const posted = await client("busy2").postEvent({ source: "bot" });
  assert.equal(posted.seq, 7);
  assert.ok(Date.now() - started >= 1900, "waited the two seconds");
  const [first, second] = seen.get("busy2");
  assert.equal(first.headers["idempotency-key"], second.headers["idempotency-key"]);
});

test("503 with an HTTP-date Retry-After is retried, with the same key", async () => {
  const posted = await client("busydate").postVerdict({ pr_number: 1 }, { idempotencyKey: "caller-key-1" });
  assert.equal(posted.seq, 8);
  const keys = seen.get("busydate").map((r) => r.headers["idempotency-key"]);
  assert.deepEqual(keys, ["caller-key-1", "caller-key-1"]);
});

test("Retry-After is capped", async () => {
  const error = await failure(client("busyfar", { retries: 0 }).postEvent({}));
  assert.equal(error.status, 503);
  assert.equal(error.retryAfter, 30);
  const capped = await failure(client("busyfar", { retries: 1, maxRetryAfterMs: 300 }).stats());
  assert.equal(capped.retryAfter, 0.3);
  assert.equal(retryAfterSecs("7"), 7);
  assert.equal(retryAfterSecs("soon"), undefined);
  assert.equal(retryAfterSecs(new Date(Date.now() - 5000).toUTCString()), 0);
});

test("a 503 without Retry-After to a write is not retried and may have committed", async () => {
  const error = await failure(client("maybe").postOutcome({ sig_hash: "s" }));
  assert.equal(error.mayBeCommitted, true);
  assert.equal(seen.get("maybe").length, 1);
});

test("a body that is not JSON and a refusal are KbErrors", async () => {
  const bad = await failure(client("badjson").stats());
  assert.equal(bad.kind, "bad_response");
  assert.equal(bad.status, 200);
  const refused = await failure(client("refuse400").postVerdict({ pr_number: 1 }));
  assert.deepEqual([refused.kind, refused.status, refused.field, refused.mayBeCommitted], ["http", 400, "head_sha", false]);
  assert.equal(seen.get("refuse400").length, 1, "a 400 is not retried");
});

test("a long poll's attempt may last its wait on top of the timeout", async () => {
  const page = await client("longpoll", { retries: 0 }).feed({ afterSeq: 5, waitMs: 1000 });
  assert.equal(page.next_after_seq, 5);
  assert.match(seen.get("longpoll")[0].path, /after_seq=5.*wait=1000ms/);
});

test("a refused connection is a network KbError that committed nothing", async () => {
  const closed = http.createServer();
  await new Promise((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = closed.address().port;
  await new Promise((resolve) => closed.close(resolve));
  const error = await failure(new KbClient({ baseUrl: `http://127.0.0.1:${port}`, retries: 1 }).postEvent({}));
  assert.deepEqual([error.kind, error.status, error.mayBeCommitted], ["network", 0, false]);
  assert.match(error.message, /unreachable.*ECONNREFUSED/);
});

test("follow() resumes after a cut mid-event from its last seq, yielding each record once", async () => {
  const items = [];
  const named = [];
  const stop = new AbortController();
  const onHistory = (history) => named.push([history, items.length]);
  for await (const item of client("feedcut").follow({ signal: stop.signal, maxReconnectDelayMs: 50, onHistory })) {
    items.push(item.type === "resync" ? "resync" : item.seq);
    if (items.length === 6) stop.abort();
  }
  assert.deepEqual(items, [1, 2, 3, "resync", 4, 5]);
  const ids = seen.get("feedcut").map((r) => r.headers["last-event-id"]);
  assert.deepEqual(ids, ["0", "2", "4"]);
  assert.equal(seen.get("feedcut")[0].headers.accept, "text/event-stream");
  // Each reconnection names the history of the last answer: positions after a restore are in
  // the restored database's.
  const histories = seen.get("feedcut").map((r) => new URL(r.path, "http://x").searchParams.get("history"));
  assert.deepEqual(histories, [null, "00000000000000a1", "00000000000000b2"]);
  // The consumer hears of each history once, before the first item in it.
  assert.deepEqual(named, [["00000000000000a1", 0], ["00000000000000b2", 2]]);
});

test("an error onHistory throws reaches the caller, not taken for a lost connection", async () => {
  const full = () => {
    throw new Error("disk full");
  };
  const items = [];
  await assert.rejects(async () => {
    // (A bounded wait: a follow() that swallowed the error would end at the timeout, failing.)
    const signal = AbortSignal.timeout(5000);
    for await (const item of client("feedthree").follow({ signal, maxReconnectDelayMs: 50, onHistory: full })) items.push(item);
  }, /disk full/);
  assert.deepEqual(items, []);
});

test("follow() yields nothing after its signal aborts, even items its last read held", async () => {
  const items = [];
  const stop = new AbortController();
  for await (const item of client("feedthree").follow({ signal: stop.signal, maxReconnectDelayMs: 50 })) {
    items.push(item.seq);
    stop.abort();
  }
  assert.deepEqual(items, [1]);
});

test("a 507 to a write is retried with the same key, and giving up it may have committed", async () => {
  const posted = await client("full").postEvent({ source: "bot" });
  assert.equal(posted.seq, 9);
  const [first, second] = seen.get("full");
  assert.equal(first.headers["idempotency-key"], second.headers["idempotency-key"]);
  const error = await failure(client("alwaysfull", { retries: 1 }).postEvent({}));
  assert.equal(error.status, 507);
  assert.equal(error.mayBeCommitted, true);
});

test("a bad PR number or id is a rejected promise, not a throw", async () => {
  const kb = client("refuse400");
  for (const call of [
    () => kb.priorAudits(-1),
    () => kb.prNeighbors(1.5),
    () => kb.findings(Number.NaN),
    () => kb.checkFindings(-2, { headSha: "abcdef01", findings: [] }),
    () => kb.revokeDismissal(2 ** 60),
  ]) {
    let promise;
    assert.doesNotThrow(() => {
      promise = call();
    });
    const error = await failure(promise);
    assert.equal(error.kind, "bad_request");
  }
});

test("what cannot be sent is a rejected bad_request KbError naming it, and nothing is sent", async () => {
  // A review's (f639646): a key or token fetch cannot put in a header was retried as a
  // network error "that may have been committed", and a BigInt rejected with a TypeError.
  const kb = client("unsent");
  const cases = [
    ["a key with a newline", () => kb.postEvent({}, { idempotencyKey: "a\nb" }), "idempotency-key"],
    ["a key beyond Latin-1", () => kb.postEvent({}, { idempotencyKey: "ключ-1" }), "idempotency-key"],
    ["a token beyond Latin-1", () => client("unsent", { token: "токен" }).stats(), "token"],
    ["a BigInt in an event", () => kb.postEvent({ n: 1n }), "body"],
    ["a BigInt in a batch", () => kb.postEvents([{ n: 1n }]), "body"],
    ["a BigInt in a row", () => kb.postOutcome({ sig_hash: "a", n: 1n }), "body"],
    ["a negative PR number", () => kb.findings(-1), "pr_number"],
    ["a dismissal id beyond 2^53", () => kb.revokeDismissal(2 ** 60), "id"],
    // A second review's: a URIError thrown at once, a query value and a string row sent with
    // U+FFFD in the surrogate's place.
    ["a lone surrogate in a sig_hash", () => kb.sig("pr1-\ud800"), "sigHash"],
    ["a lone surrogate in a query value", () => kb.events({ eventKind: "k\ud800" }), "event_kind"],
    ["a lone surrogate in a string row", () => kb.postOutcome('{"sig_hash":"a","x":"\udc00"}'), "body"],
    // A review's (47acc62): fetch resolves `.` and `..` (escaped or not) as the URL's own
    // directories, so these asked for another route; and a timeout of no time.
    ["a sig_hash of ..", () => kb.sig(".."), "sigHash"],
    ["a sig_hash of .", () => kb.sig("."), "sigHash"],
    ["a timeout of 0 ms", () => client("unsent", { timeoutMs: 0 }).stats(), "timeoutMs"],
    ["a timeout that is not a number", () => client("unsent", { timeoutMs: Number.NaN }).stats(), "timeoutMs"],
  ];
  for (const [name, call, field] of cases) {
    const started = Date.now();
    let promise;
    assert.doesNotThrow(() => {
      promise = call();
    }, name);
    const error = await failure(promise);
    assert.deepEqual([error.kind, error.status, error.field, error.mayBeCommitted], ["bad_request", 0, field, false], name);
    assert.ok(Date.now() - started < 300, `${name}: retried`);
  }
  assert.equal(seen.get("unsent"), undefined);
  assert.throws(() => new KbClient({ baseUrl: "localhost:3800" }), (error) => error.field === "baseUrl");
});

test("a fractional or huge timeout is a timeout, and an empty list of types asks for all", async () => {
  // A review's (47acc62): AbortSignal.timeout threw a RangeError for 2500.5 ms, and timed out
  // at once for 2^31 ms; `types: []` was sent as `types=`, which the service refuses.
  await client("ok", { timeoutMs: 2500.5 }).stats();
  await client("ok", { timeoutMs: 2 ** 31 }).stats();
  await client("ok").feed({ afterSeq: 0, waitMs: 0.4, types: [] });
  const paths = seen.get("ok").map((r) => r.path);
  assert.equal(paths.length, 3);
  assert.ok(!paths[2].includes("types"), paths[2]);
});

test("allFindings gives a finding raised again in its newer state and skips one given again unchanged", async () => {
  const states = [];
  for await (const f of client("findingpages").allFindings(7)) states.push(`${f.fingerprint}@${f.last_seen.seq}`);
  assert.deepEqual(states, ["f@1", "h@1", "f@3", "g@1"]);
});

test("a base URL without http:// or https:// is refused when the client is made", () => {
  for (const baseUrl of ["localhost:3800", "127.0.0.1:3800", "ftp://x", "not a url"]) {
    assert.throws(() => new KbClient({ baseUrl }), (error) => error instanceof KbError && error.kind === "bad_request", baseUrl);
  }
  assert.equal(new KbClient({ baseUrl: "http://127.0.0.1:3800/" }).baseUrl, "http://127.0.0.1:3800");
});

test("health() is not retried: a 503 degraded is a KbError at once", async () => {
  const started = Date.now();
  const error = await failure(client("degraded").health());
  assert.equal(error.status, 503);
  assert.equal(seen.get("degraded").length, 1);
  assert.ok(Date.now() - started < 900, "it waited for Retry-After");
});
