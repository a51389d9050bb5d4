// kb-client.ts: a typed client for lakehouse-kb, for the TypeScript auditor. No dependencies:
// it uses the global fetch, AbortSignal.timeout and crypto.subtle that Bun and Node 20 provide.
//
//   import { KbClient } from "./kb-client.ts";
//   const kb = new KbClient();                      // LAKEHOUSE_KB_URL, else LH_OBSERVER_URL
//   await kb.postVerdict(verdict);                  // replaces indexVerdictToObserver +
//                                                   // appendVerdictToKbOutcomes, durably
//   const prior = await kb.priorAudits(pr, { excludeSha: head });  // Phase B
//   prior.finding  // "prior 3 audits on this PR ended in [...], last reason was X."
//   const similar = await kb.neighbors({ claims, excludePr: pr }); // Phase C/F
/** A refusal or failure from the service: status, message and the field at fault. */
export class KbError extends Error {
    status;
    field;
    retryAfterSecs;
    constructor(message, status, field, retryAfterSecs) {
        super(message);
        this.status = status;
        this.field = field;
        this.retryAfterSecs = retryAfterSecs;
        this.name = "KbError";
    }
}
function env(name) {
    const proc = globalThis.process;
    return proc?.env?.[name];
}
export class KbClient {
    baseUrl;
    token;
    timeoutMs;
    retries;
    constructor(options = {}) {
        const url = options.baseUrl ?? env("LAKEHOUSE_KB_URL") ?? env("LH_OBSERVER_URL") ?? "http://localhost:3800";
        this.baseUrl = url.replace(/\/+$/, "");
        this.token = options.token ?? env("LAKEHOUSE_KB_TOKEN") ?? undefined;
        this.timeoutMs = options.timeoutMs ?? 3000;
        this.retries = options.retries ?? 3;
    }
    /**
     * Stores a verdict with its KB row and observer event in one durable transaction. Safe to
     * retry: the same (pr_number, head_sha, audited_at) is stored once (duplicate: true).
     */
    async postVerdict(verdict) {
        return this.request("POST", "/verdicts", verdict, true);
    }
    /** Phase B: prior audits of a PR across heads, leaving out the head being audited now. */
    async priorAudits(prNumber, options = {}) {
        const query = new URLSearchParams();
        if (options.excludeSha)
            query.set("exclude_sha", options.excludeSha);
        if (options.limit !== undefined)
            query.set("limit", String(options.limit));
        const suffix = query.size > 0 ? `?${query}` : "";
        return this.request("GET", `/prs/${prNumber}/history${suffix}`, undefined, true);
    }
    /** Phase C/F: prior verdicts sharing claims, most shared first, then newest. */
    async neighbors(query) {
        const body = {
            claims: query.claims,
            claim_hashes: query.claimHashes,
            exclude_pr: query.excludePr,
            limit: query.limit,
        };
        return this.request("POST", "/neighbors", body, true);
    }
    /** The legacy observer call, for callers not yet on postVerdict. Not retried (not idempotent). */
    async postEvent(event) {
        return this.request("POST", "/event", event, false);
    }
    /**
     * A KB outcome row (the scenario runner's `outcomes.jsonl` line), stored byte for byte: a
     * string is sent as is, an object as `JSON.stringify(row)` (what the legacy writer appended).
     * Not retried (not idempotent).
     */
    async postOutcome(row) {
        return this.request("POST", "/outcomes", typeof row === "string" ? row : JSON.stringify(row), false);
    }
    async stats() {
        return this.request("GET", "/stats", undefined, true);
    }
    async request(method, path, body, idempotent) {
        const headers = {};
        if (body !== undefined)
            headers["content-type"] = "application/json";
        if (this.token)
            headers["authorization"] = `Bearer ${this.token}`;
        const attempts = idempotent ? this.retries + 1 : 1;
        let last;
        for (let attempt = 0; attempt < attempts; attempt++) {
            if (attempt > 0)
                await sleep(backoffMs(attempt, last));
            let response;
            try {
                response = await fetch(`${this.baseUrl}${path}`, {
                    method,
                    headers,
                    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
                    signal: AbortSignal.timeout(this.timeoutMs),
                });
            }
            catch (error) {
                last = error;
                continue;
            }
            const text = await response.text();
            const answer = text ? JSON.parse(text) : {};
            if (response.ok)
                return answer;
            const retryAfter = Number(response.headers.get("retry-after") ?? NaN);
            last = new KbError(String(answer.error ?? `HTTP ${response.status}`), response.status, typeof answer.field === "string" ? answer.field : undefined, Number.isFinite(retryAfter) ? retryAfter : undefined);
            if (response.status !== 503)
                break;
        }
        if (last instanceof KbError)
            throw last;
        throw new KbError(`lakehouse-kb unreachable at ${this.baseUrl}: ${String(last)}`, 0);
    }
}
/**
 * The claim hash the service indexes: the first 16 hex digits of SHA-256 of the claim text
 * after trimming, lowercasing and collapsing whitespace.
 */
export async function claimHash(text) {
    const normal = text.trim().toLowerCase().replace(/\s+/g, " ");
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(normal));
    return Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}
function backoffMs(attempt, last) {
    if (last instanceof KbError && last.retryAfterSecs !== undefined)
        return last.retryAfterSecs * 1000;
    return Math.min(2000, 100 * 2 ** attempt);
}
function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}
