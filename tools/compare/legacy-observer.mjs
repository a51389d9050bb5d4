// The legacy way, for the comparison benchmark (`compare`): the seed's observer logic in
// Node.js with no dependencies. `POST /event` turns the body into an ObservedOp (the rules of
// legacy-contract.md section 4), keeps it in a ring buffer and appends it to
// DATA/_observer/ops.jsonl; `GET /stats` counts by source; `GET /history?pr=N` answers the
// Phase B question as the legacy readers did, by reading DATA/_kb/outcomes.jsonl line by line.
//
//   node legacy-observer.mjs DATA_DIR [--fsync]
//
// Without --fsync an event is answered once appendFile returned (the old observer: the data
// sits in the page cache). With --fsync the file is fdatasync'd before the answer, so a 200
// means on disk as lakehouse-kb's does. Prints `legacy-observer listening on http://ADDR` once
// it listens on 127.0.0.1 at an ephemeral port.
import { createServer } from "node:http";
import { createReadStream } from "node:fs";
import { appendFile, mkdir, open } from "node:fs/promises";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { observedOp } from "./seed-observed-op.mjs";

const dataDir = process.argv[2];
const fsync = process.argv.includes("--fsync");
if (!dataDir) {
  console.error("usage: node legacy-observer.mjs DATA_DIR [--fsync]");
  process.exit(2);
}
const opsPath = join(dataDir, "_observer", "ops.jsonl");
const outcomesPath = join(dataDir, "_kb", "outcomes.jsonl");
await mkdir(join(dataDir, "_observer"), { recursive: true });
const ops = await open(opsPath, "a");

const RING = 2000;
const ring = [];
const bySource = {};

function send(res, status, value) {
  const text = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function history(pr) {
  const prefix = `pr${pr}-`;
  const audits = [];
  const lines = createInterface({ input: createReadStream(outcomesPath), crlfDelay: Infinity });
  for await (const line of lines) {
    let row;
    try {
      row = JSON.parse(line);
    } catch {
      continue; // a torn line, skipped as the legacy readers' try/catch did
    }
    if (row && row.kind === "audit" && typeof row.sig_hash === "string" && row.sig_hash.startsWith(prefix)) {
      audits.push(row);
    }
  }
  return audits;
}

// As the seed's writers: appendFile per line (O_APPEND, so concurrent lines never
// interleave). With --fsync, one shared handle and an fdatasync after each line.
async function append(line) {
  if (!fsync) return appendFile(opsPath, line);
  await ops.write(line);
  await ops.datasync();
}

const server = createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (req.method === "POST" && url.pathname === "/event") {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch (e) {
        return send(res, 400, { error: String(e) });
      }
      const op = observedOp(body ?? {}, new Date().toISOString());
      ring.push(op);
      if (ring.length > RING) ring.shift();
      bySource[op.source] = (bySource[op.source] ?? 0) + 1;
      try {
        await append(JSON.stringify(op) + "\n");
      } catch (e) {
        return send(res, 500, { error: String(e) });
      }
      send(res, 200, { ok: true });
    });
    return;
  }
  if (req.method === "GET" && url.pathname === "/stats") {
    return send(res, 200, { total: ring.length, by_source: bySource });
  }
  if (req.method === "GET" && url.pathname === "/history") {
    history(url.searchParams.get("pr"))
      .then((audits) => send(res, 200, { count: audits.length, audits }))
      .catch((e) => send(res, 500, { error: String(e) }));
    return;
  }
  if (req.method === "GET" && url.pathname === "/healthz") {
    return send(res, 200, { status: "ok" });
  }
  send(res, 404, { error: "not found" });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const { address, port } = server.address();
  console.log(`legacy-observer listening on http://${address}:${port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => ops.close().then(() => process.exit(0))));
}
