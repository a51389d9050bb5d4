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

export type Overall = "approve" | "request_changes" | "block";

/** A verdict as the auditor writes it; unknown fields are kept by the service. */
export interface Verdict {
  pr_number: number;
  head_sha: string;
  audited_at: string;
  overall: Overall;
  one_liner: string;
  metrics: {
    findings_block: number;
    findings_warn: number;
    findings_info?: number | null;
    audit_duration_ms?: number | null;
  };
  claims?: Array<string | { text: string; [key: string]: unknown }>;
  claim_hashes?: string[];
  [key: string]: unknown;
}

export interface PostedVerdict {
  sig_hash: string;
  seq: number;
  /** true when this exact verdict (pr, head, audited_at) was stored before: nothing new. */
  duplicate: boolean;
  outcome_seq?: number;
  event_seq?: number;
}

export interface PriorAudit {
  sig_hash: string;
  head_sha: string;
  overall: Overall;
  one_liner: string;
  audited_at: string;
  findings: { block: number; warn: number; info: number | null };
  elapsed_secs: number;
  seq: number;
}

export interface PriorAudits {
  pr_number: number;
  count: number;
  by_overall: Partial<Record<Overall, number>>;
  /** The sentence kb_query emits, e.g. "prior 2 audits on this PR ended in [block, approve], last reason was X." */
  finding: string;
  /** Newest first. */
  audits: PriorAudit[];
}

export interface NeighborQuery {
  claims?: Array<string | { text: string }>;
  claimHashes?: string[];
  excludePr?: number;
  limit?: number;
}

export interface Neighbor {
  sig_hash: string;
  seq: number;
  pr_number: number;
  head_sha: string;
  overall: Overall;
  one_liner: string;
  audited_at: string;
  shared_count: number;
  shared: Array<{ claim_hash: string; text: string | null }>;
}

export interface Neighbors {
  count: number;
  neighbors: Neighbor[];
}

/** A refusal or failure from the service: status, message and the field at fault. */
export class KbError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly field?: string,
    readonly retryAfterSecs?: number,
  ) {
    super(message);
    this.name = "KbError";
  }
}

export interface KbClientOptions {
  /** Default: LAKEHOUSE_KB_URL, else LH_OBSERVER_URL, else http://localhost:3800. */
  baseUrl?: string;
  /** Bearer token; default LAKEHOUSE_KB_TOKEN. */
  token?: string;
  /** Per request; default 3000 ms, as the auditor's observer call. */
  timeoutMs?: number;
  /** Retries of idempotent calls after a 503 or a network error; default 3. */
  retries?: number;
}

function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

export class KbClient {
  readonly baseUrl: string;
  private readonly token?: string;
  private readonly timeoutMs: number;
  private readonly retries: number;

  constructor(options: KbClientOptions = {}) {
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
  async postVerdict(verdict: Verdict): Promise<PostedVerdict> {
    return this.request<PostedVerdict>("POST", "/verdicts", verdict, true);
  }

  /** Phase B: prior audits of a PR across heads, leaving out the head being audited now. */
  async priorAudits(prNumber: number, options: { excludeSha?: string; limit?: number } = {}): Promise<PriorAudits> {
    const query = new URLSearchParams();
    if (options.excludeSha) query.set("exclude_sha", options.excludeSha);
    if (options.limit !== undefined) query.set("limit", String(options.limit));
    const suffix = query.size > 0 ? `?${query}` : "";
    return this.request<PriorAudits>("GET", `/prs/${prNumber}/history${suffix}`, undefined, true);
  }

  /** Phase C/F: prior verdicts sharing claims, most shared first, then newest. */
  async neighbors(query: NeighborQuery): Promise<Neighbors> {
    const body = {
      claims: query.claims,
      claim_hashes: query.claimHashes,
      exclude_pr: query.excludePr,
      limit: query.limit,
    };
    return this.request<Neighbors>("POST", "/neighbors", body, true);
  }

  /** The legacy observer call, for callers not yet on postVerdict. Not retried (not idempotent). */
  async postEvent(event: Record<string, unknown>): Promise<{ ok: true; seq: number }> {
    return this.request("POST", "/event", event, false);
  }

  /**
   * A KB outcome row (the scenario runner's `outcomes.jsonl` line), stored byte for byte: a
   * string is sent as is, an object as `JSON.stringify(row)` (what the legacy writer appended).
   * Not retried (not idempotent).
   */
  async postOutcome(row: Record<string, unknown> | string): Promise<{ sig_hash: string; seq: number }> {
    return this.request("POST", "/outcomes", typeof row === "string" ? row : JSON.stringify(row), false);
  }

  async stats(): Promise<Record<string, unknown>> {
    return this.request("GET", "/stats", undefined, true);
  }

  private async request<T>(method: string, path: string, body: unknown, idempotent: boolean): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.token) headers["authorization"] = `Bearer ${this.token}`;
    const attempts = idempotent ? this.retries + 1 : 1;
    let last: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await sleep(backoffMs(attempt, last));
      let response: Response;
      try {
        response = await fetch(`${this.baseUrl}${path}`, {
          method,
          headers,
          body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (error) {
        last = error;
        continue;
      }
      const text = await response.text();
      const answer = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      if (response.ok) return answer as T;
      const retryAfter = Number(response.headers.get("retry-after") ?? NaN);
      last = new KbError(
        String(answer.error ?? `HTTP ${response.status}`),
        response.status,
        typeof answer.field === "string" ? answer.field : undefined,
        Number.isFinite(retryAfter) ? retryAfter : undefined,
      );
      if (response.status !== 503) break;
    }
    if (last instanceof KbError) throw last;
    throw new KbError(`lakehouse-kb unreachable at ${this.baseUrl}: ${String(last)}`, 0);
  }
}

/**
 * The claim hash the service indexes: the first 16 hex digits of SHA-256 of the claim text
 * after trimming, lowercasing and collapsing whitespace.
 */
export async function claimHash(text: string): Promise<string> {
  const normal = text.trim().toLowerCase().replace(/\s+/g, " ");
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(normal));
  return Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

function backoffMs(attempt: number, last: unknown): number {
  if (last instanceof KbError && last.retryAfterSecs !== undefined) return last.retryAfterSecs * 1000;
  return Math.min(2000, 100 * 2 ** attempt);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
