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
    claims?: Array<string | {
        text: string;
        [key: string]: unknown;
    }>;
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
    findings: {
        block: number;
        warn: number;
        info: number | null;
    };
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
    claims?: Array<string | {
        text: string;
    }>;
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
    shared: Array<{
        claim_hash: string;
        text: string | null;
    }>;
}
export interface Neighbors {
    count: number;
    neighbors: Neighbor[];
}
/** A refusal or failure from the service: status, message and the field at fault. */
export declare class KbError extends Error {
    readonly status: number;
    readonly field?: string | undefined;
    readonly retryAfterSecs?: number | undefined;
    constructor(message: string, status: number, field?: string | undefined, retryAfterSecs?: number | undefined);
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
export declare class KbClient {
    readonly baseUrl: string;
    private readonly token?;
    private readonly timeoutMs;
    private readonly retries;
    constructor(options?: KbClientOptions);
    /**
     * Stores a verdict with its KB row and observer event in one durable transaction. Safe to
     * retry: the same (pr_number, head_sha, audited_at) is stored once (duplicate: true).
     */
    postVerdict(verdict: Verdict): Promise<PostedVerdict>;
    /** Phase B: prior audits of a PR across heads, leaving out the head being audited now. */
    priorAudits(prNumber: number, options?: {
        excludeSha?: string;
        limit?: number;
    }): Promise<PriorAudits>;
    /** Phase C/F: prior verdicts sharing claims, most shared first, then newest. */
    neighbors(query: NeighborQuery): Promise<Neighbors>;
    /** The legacy observer call, for callers not yet on postVerdict. Not retried (not idempotent). */
    postEvent(event: Record<string, unknown>): Promise<{
        ok: true;
        seq: number;
    }>;
    /**
     * A KB outcome row (the scenario runner's `outcomes.jsonl` line), stored byte for byte: a
     * string is sent as is, an object as `JSON.stringify(row)` (what the legacy writer appended).
     * Not retried (not idempotent).
     */
    postOutcome(row: Record<string, unknown> | string): Promise<{
        sig_hash: string;
        seq: number;
    }>;
    stats(): Promise<Record<string, unknown>>;
    private request;
}
/**
 * The claim hash the service indexes: the first 16 hex digits of SHA-256 of the claim text
 * after trimming, lowercasing and collapsing whitespace.
 */
export declare function claimHash(text: string): Promise<string>;
