// lakehouse-kb-client: a typed client for lakehouse-kb, for the TypeScript auditor and other
// Node 20 / Bun programs. No runtime dependencies: the global fetch, AbortSignal, crypto.
//
//   import { KbClient } from "lakehouse-kb-client";
//   const kb = new KbClient();                      // LAKEHOUSE_KB_URL, else LH_OBSERVER_URL
//   await kb.postVerdict(verdict);                  // replaces indexVerdictToObserver +
//                                                   // appendVerdictToKbOutcomes, durably;
//                                                   // it throws KbError where they did not:
//                                                   // keep it off the path of the Gitea post
//   const prior = await kb.priorAudits(pr, { excludeSha: head });  // Phase B
//   const similar = await kb.prNeighbors(pr);      // Phase C/F: neighbours of its last audit
//   const seen = await kb.checkFindings(pr, { headSha: head, findings }); // repeats, dismissals
//   for await (const item of kb.follow({ afterSeq: saved })) { ... }  // the change feed
//
// Every route is one call to `request`, which owns headers, timeouts, retries and errors: a new
// route is a typed answer and a few lines.

/** The client's version: the service's, from the same release. */
export const VERSION = "0.1.0";

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
  /** The repository the PR belongs to; absent or null for the default namespace. */
  repo?: string | null;
  /** Remembered across pushes by the findings memory. */
  findings?: FindingInput[];
  [key: string]: unknown;
}

/**
 * A finding's severity: `block`, `warn` and `info` are the auditor's, but any string is kept
 * (trimmed and lowercased by the memory; `""` for a finding given without one).
 */
export type Severity = "block" | "warn" | "info" | (string & {});

/** A finding as the auditor writes it, with any fields of its own (`file`, `line`, ...). */
export interface FindingInput {
  check: string;
  severity?: Severity;
  summary: string;
  [key: string]: unknown;
}

export interface PostedVerdict {
  sig_hash: string;
  /** The verdict's PR as the server read it. */
  pr_number: number;
  seq: number;
  /**
   * true when this exact verdict (pr, head, audited_at) was already stored, by an earlier call
   * or by an earlier attempt of this one (the client retries a write that timed out with the
   * same key): nothing new was stored by this answer's attempt, and `outcome_seq`/`event_seq`
   * are absent. The verdict is stored once either way.
   */
  duplicate: boolean;
  outcome_seq?: number;
  event_seq?: number;
  [key: string]: unknown;
}

export interface PostedEvent {
  ok: true;
  seq: number;
  /**
   * true on the answer to a retry with the same Idempotency-Key, the client's own included (it
   * retries a write that timed out): the record was stored by an earlier attempt, once.
   */
  duplicate?: boolean;
  [key: string]: unknown;
}

export interface PostedOutcome {
  sig_hash: string;
  seq: number;
  /**
   * true on the answer to a retry with the same Idempotency-Key, the client's own included (it
   * retries a write that timed out): the record was stored by an earlier attempt, once.
   */
  duplicate?: boolean;
  [key: string]: unknown;
}

/** The answer to an NDJSON batch: good lines are committed together, bad ones reported. */
export interface BatchReport {
  accepted: number;
  duplicates: number;
  rejected: Array<{ line: number; error: string; field?: string }>;
  last_seq?: number;
  [key: string]: unknown;
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
  /** Present when the PR belongs to a named repository. */
  repo?: string;
  count: number;
  by_overall: Partial<Record<Overall, number>>;
  /** The sentence kb_query emits, e.g. "prior 2 audits on this PR ended in [block, approve], last reason was X." */
  finding: string;
  /** Newest first. */
  audits: PriorAudit[];
  /** Pass as `beforeSeq` for the next, older page; absent on the last one. */
  next_before_seq?: number;
  /** Of the latest audit: findings remembered and how many an earlier head raised too. */
  latest_audit_findings?: { seq: number; raised: number; repeat_earlier_heads: number };
  [key: string]: unknown;
}

export interface PriorAuditsOptions {
  /** Leaves out the head being audited (8 to 64 hex digits, a prefix of the sha). */
  excludeSha?: string;
  limit?: number;
  /** The page before this seq (a previous answer's `next_before_seq`). */
  beforeSeq?: number;
  /** Default: the client's `repo`. */
  repo?: string;
}

export interface NeighborQuery {
  claims?: Array<string | { text: string }>;
  claimHashes?: string[];
  /** A PR of `repo` left out (the one being audited). */
  excludePr?: number;
  limit?: number;
  /** Matches scoring below this are dropped (0 to 1; the server's default 0.2). */
  minScore?: number;
  /** The repository searched; default the client's `repo`. */
  repo?: string;
  /** Search every repository. */
  allRepos?: boolean;
}

export interface PrNeighborsOptions {
  limit?: number;
  minScore?: number;
  repo?: string;
  allRepos?: boolean;
}

/** Why a neighbour was found: one query claim's best match among its claims. */
export interface ClaimMatch {
  /** The query claim (its text, or its hash when given as a hash). */
  query: string;
  /** The stored claim that matched. */
  claim: string;
  /** `exact`: the same text after normalisation (score 1); `similar`: shared terms. */
  kind: "exact" | "similar";
  score: number;
  /** The index terms the two share (stemmed words, identifiers). */
  terms: string[];
  /** Present (true) when the stored claim says the opposite of the query claim; its score is
   * then half the similarity's. */
  opposed?: true;
}

export interface Neighbor {
  sig_hash: string;
  seq: number;
  pr_number: number;
  repo: string | null;
  head_sha: string;
  overall: Overall;
  one_liner: string;
  audited_at: string;
  /** The sum over query claims of their best match's score. */
  score: number;
  matches: ClaimMatch[];
  shared_count: number;
  shared: Array<{ claim_hash: string; text: string | null }>;
}

export interface Neighbors {
  count: number;
  neighbors: Neighbor[];
  /** A sentence for the auditor's prompt naming the best earlier PRs and how they ended. */
  context?: string;
  /** Fewer neighbours than asked because the answer reached the server's size budget. */
  truncated?: boolean;
  [key: string]: unknown;
}

/** Where a remembered finding was seen. */
export interface SeenAt {
  head_sha: string;
  audited_at: string;
  seq: number;
}

/** A finding the memory holds for a PR (`GET /prs/{n}/findings`). */
export interface RememberedFinding {
  fingerprint: string;
  check: string;
  severity: Severity | null;
  summary: string;
  status: "open" | "resolved";
  times_raised: number;
  first_seen: SeenAt;
  last_seen: SeenAt;
  heads: string[];
  last_match: "new" | "exact" | "similar";
  /** With `dismissals: true`: the dismissal that silences it, raised again as its latest
   * wording (absent: none). */
  dismissal?: Dismissal;
  [key: string]: unknown;
}

export interface FindingsPage {
  pr_number: number;
  repo?: string;
  status: "open" | "resolved" | "all";
  /** The PR's latest audit that listed findings; null while it has none. */
  latest_seq?: number | null;
  count: number;
  findings: RememberedFinding[];
  /** Pass as `cursor` for the next page; absent on the last one. */
  next_cursor?: string;
  [key: string]: unknown;
}

export interface FindingsOptions {
  repo?: string;
  status?: "open" | "resolved" | "all";
  limit?: number;
  cursor?: string;
  /** Adds to each finding the dismissal that silences it (reads the PR's dismissals). */
  dismissals?: boolean;
}

export interface Dismissal {
  id: number;
  /** Absent in the default namespace. */
  repo?: string;
  scope: "pr" | "repo";
  pr_number: number | null;
  fingerprint: string;
  /** The finding's check, severity and wording, when known (absent otherwise). */
  check?: string;
  severity?: Severity;
  summary?: string;
  reason: string;
  by: string;
  created_at: string;
  revoked_at: string | null;
  /** On a check: how the finding matched the dismissal. */
  match?: { tier: "exact" | "similar"; score: number };
  /** On a post: the same live dismissal was stored before (nothing new). */
  duplicate?: boolean;
  /** On a revoke: whether this call revoked it (false when it was already). */
  revoked_now?: boolean;
  [key: string]: unknown;
}

/** One checked finding (`POST /prs/{n}/findings/check`). */
export interface CheckedFinding extends FindingInput {
  fingerprint: string;
  status: "new" | "repeat" | "reopened" | "dismissed";
  /** The remembered finding it matched, or null. */
  match: { tier: "exact" | "similar"; fingerprint: string; score: number } | null;
  times_raised?: number;
  first_seen?: SeenAt;
  last_seen?: SeenAt;
  raised_on_head?: boolean;
  /** The dismissal that silences it (status "dismissed"). */
  dismissal?: Dismissal;
  /** When none silences it: the dismissal it resembles below dismissal grade, to weigh. */
  resembled_dismissal?: Dismissal;
  [key: string]: unknown;
}

export interface FindingsCheck {
  pr_number: number;
  repo?: string;
  head_sha: string;
  counts: { new: number; repeat: number; reopened: number; dismissed: number };
  findings: CheckedFinding[];
  [key: string]: unknown;
}

export interface CheckFindingsOptions {
  /** The head being audited (8 to 64 hex digits). */
  headSha: string;
  findings: FindingInput[];
  repo?: string;
}

/** A dismissal to record: by fingerprint or by the finding itself. */
export interface DismissalInput {
  repo?: string;
  /** Absent (or null) for every PR of the repository. */
  prNumber?: number | null;
  fingerprint?: string;
  finding?: FindingInput;
  reason: string;
  by: string;
  /** Needed to dismiss a block finding. */
  confirm?: boolean;
}

export interface DismissalsPage {
  /** Absent in the default namespace. */
  repo?: string;
  pr_number: number | null;
  count: number;
  dismissals: Dismissal[];
  next_cursor?: string;
  [key: string]: unknown;
}

/** A record found under a sig_hash (`GET /sig/{sig_hash}`). */
export type SigRecord =
  | { type: "verdict"; seq: number; verdict: Record<string, unknown> }
  | { type: "outcome"; seq: number; row: Record<string, unknown> }
  | { type: "event"; seq: number; op: Record<string, unknown>; body?: Record<string, unknown>; source_original?: string };

export interface SigPage {
  sig_hash: string;
  records: SigRecord[];
  /** Pass as `afterSeq` for the next page; absent on the last one. */
  next_after_seq?: number;
}

export interface EventItem {
  seq: number;
  received_at: string;
  /** The ObservedOp, exactly as in `ops.jsonl`. */
  op: Record<string, unknown>;
  source_original?: string;
}

export interface EventsPage {
  events: EventItem[];
  /** Pass as `beforeSeq` for the next (older) page; absent on the last one. */
  next_before_seq?: number;
}

export interface EventFilter {
  source?: "mcp" | "scenario" | "auditor" | "bot";
  /**
   * The repository `sigHash` is looked up in (default: the client's `repo`). Events are not
   * filtered by repository: without `sigHash`, every repository's are listed.
   */
  repo?: string;
  eventKind?: string;
  sigHash?: string;
  beforeSeq?: number;
  limit?: number;
}

export interface Stats {
  total: number;
  by_source: Record<string, number>;
  by_event_kind: Record<string, number>;
  success: number;
  failure: number;
  verdicts: number;
  by_overall: Record<string, number>;
  outcomes: number;
  outcomes_by_kind: Record<string, number>;
  /** Verdicts per repository ("" is the default namespace). */
  by_repo?: Record<string, number>;
  last_seq: number;
  /** Per map that lists fewer keys than it has (past --stats-top): what was left out. */
  omitted?: Record<string, { keys: number; count: number }>;
  [key: string]: unknown;
}

export interface Health {
  status: string;
  /** `null` while the database cannot be read (a storage fault). */
  schema_version: number | null;
  last_seq: number | null;
  queue_depth: number;
  /** The database file the server holds, by an opaque name. */
  database?: string | null;
  /** The storage fault the service is recovering from. */
  storage?: { reason: string; no_space: boolean; since_ms: number; retry_after_secs: number };
  /** How long the commit running now has run, once stalled. */
  stalled_commit_ms?: number;
  /** Exported files the last run could not bring up to date. */
  export?: { file: string; paused: boolean; error: string; since_ms: number }[];
  /** A read found the database damaged: what was found and what to do. */
  damaged?: string;
  [key: string]: unknown;
}

export interface ExportFileReport {
  path: string;
  action: "unchanged" | "appended" | "rebuilt" | "failed" | "paused";
  reason?: string;
  /** Why a failed or paused file was not exported. */
  error?: string;
  rows_written: number;
  bytes_written: number;
  bytes_truncated: number;
  checkpoint: { seq: number; len: number; tail: string };
  [key: string]: unknown;
}

export interface ExportReport {
  outcomes: ExportFileReport;
  ops: ExportFileReport;
  duration_ms: number;
  [key: string]: unknown;
}

export interface BackupReport {
  /** The backup's name under the server's --backup-dir (the server never names paths). */
  name: string;
  last_seq: number;
  rows: number;
  bytes: number;
  millis: number;
  /** Older server-made backups removed to keep the newest --backup-keep. */
  pruned: string[];
  /** True when an earlier request with the same idempotency key made it (nothing new written). */
  duplicate?: boolean;
  [key: string]: unknown;
}

export type FeedType = "verdict" | "outcome" | "event";

/** One item of the change feed (`GET /feed`). */
export type FeedItem =
  | { type: "verdict"; seq: number; received_at: string; sig_hash: string; verdict: Record<string, unknown> }
  | { type: "outcome"; seq: number; received_at: string; row: Record<string, unknown> }
  | {
      type: "event";
      seq: number;
      received_at: string;
      op: Record<string, unknown>;
      body?: Record<string, unknown>;
      source_original?: string;
    }
  /** Events after `after_seq` up to `events_deleted_through` were deleted by retention. */
  | { type: "resync"; after_seq: number; events_deleted_through: number; oldest_seq: number };

export interface FeedPage {
  records: FeedItem[];
  /** The position after this page: pass it as `afterSeq` next time. */
  next_after_seq: number;
  last_seq: number;
  /** The history the positions are in: pass it as `history` next time. */
  history?: string;
}

export interface FeedQuery {
  /** The position: the last seq already seen (default 0, from the start). */
  afterSeq?: number;
  /** Default: all three. */
  types?: FeedType[];
  /** Long poll: how long the server may hold the request when nothing is there (at most 30 s). */
  waitMs?: number;
  limit?: number;
  /**
   * The previous page's `history`: a database restored from a backup then refuses a position
   * it does not share (409) rather than skip records.
   */
  history?: string;
}

export interface FollowOptions {
  afterSeq?: number;
  types?: FeedType[];
  /** Ends the iteration. */
  signal?: AbortSignal;
  /** A stream silent this long is taken as dead and reopened; default 45 s (3 keep-alives). */
  idleTimeoutMs?: number;
  /** Longest pause between reconnections; default 5 s. */
  maxReconnectDelayMs?: number;
  /** The history `afterSeq` is a position in; then the last answer's. */
  history?: string;
  /**
   * Called with the history an answer names when it is not the one known so far, before that
   * answer's first item: a consumer that saves its position saves it too, and passes it back
   * as `history` with the position.
   */
  onHistory?: (history: string) => void;
}

/**
 * What went wrong: an HTTP answer, no answer, no answer in time, an answer not understood, or
 * arguments refused before anything was sent.
 */
export type KbErrorKind = "http" | "network" | "timeout" | "bad_response" | "bad_request";

/** An error a caller's callback threw, carried through a loop that retries its own. */
class CallerError {
  constructor(readonly error: unknown) {}
}

/** Every failure of this client: status (0 without an HTTP answer), message, the field at fault. */
export class KbError extends Error {
  constructor(
    message: string,
    readonly kind: KbErrorKind,
    readonly status: number,
    readonly field?: string,
    /** Seconds the service asked to wait (Retry-After), capped at `maxRetryAfterMs`. */
    readonly retryAfter?: number,
    /**
     * A write that gave up after an attempt whose fate is unknown (timed out, connection lost
     * after sending, a 503 without Retry-After): it may have been committed. Retrying with the
     * same `idempotencyKey` is safe.
     */
    readonly mayBeCommitted = false,
    /** The parsed JSON error body, when there was one (a batch report, for instance). */
    readonly body?: unknown,
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
  /** Per attempt, headers and body; default 3000 ms, as the auditor's observer call. */
  timeoutMs?: number;
  /** Retries after a 503, a network error or a timeout (writes: see `WriteOptions`); default 3. */
  retries?: number;
  /** Cap on a server's Retry-After; default 30 s. */
  maxRetryAfterMs?: number;
  /**
   * The repository this client works in (e.g. "gitea:profit/lakehouse"): sent with every
   * read that takes one unless the call names another; default LAKEHOUSE_KB_REPO, else the
   * default namespace. Writes carry their repository in their own `repo` field.
   */
  repo?: string;
}

export interface WriteOptions {
  /** Sent as `Idempotency-Key` and reused by every retry; default a random UUID per call. */
  idempotencyKey?: string;
  /** This call's timeout per attempt, instead of the client's `timeoutMs`. */
  timeoutMs?: number;
}

/** Export and backup copy files: their attempts wait at least this long (the server's own
 * request timeout is 30 s by default). */
const SLOW_WRITE_TIMEOUT_MS = 60_000;

interface RequestSpec {
  method: "GET" | "POST" | "DELETE";
  path: string;
  query?: Record<string, string | number | undefined>;
  /** A JSON body, serialized here. */
  json?: unknown;
  /** A body sent as is, with its content type. */
  raw?: { body: string; contentType: string };
  /** A write: sends an Idempotency-Key and retries only when that is safe. */
  write?: WriteOptions;
  /** The answer is text, not JSON (`/metrics`). */
  text?: boolean;
  /** This call's timeout per attempt (a long poll's includes its wait). */
  timeoutMs?: number;
  /** One attempt only (a health check). */
  noRetry?: boolean;
}

const USER_AGENT = `lakehouse-kb-client-ts/${VERSION}`;

function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

export class KbClient {
  readonly baseUrl: string;
  private readonly token?: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly maxRetryAfterMs: number;
  readonly repo?: string;

  constructor(options: KbClientOptions = {}) {
    const url = options.baseUrl ?? env("LAKEHOUSE_KB_URL") ?? env("LH_OBSERVER_URL") ?? "http://localhost:3800";
    // `localhost:3800` parses as a URL of scheme "localhost:": every call would fail after its
    // retries, and a write would say it may have been committed although nothing was sent.
    let scheme: string | undefined;
    try {
      scheme = new URL(url).protocol;
    } catch {
      scheme = undefined;
    }
    if (scheme !== "http:" && scheme !== "https:") {
      throw new KbError(`baseUrl must be an http:// or https:// URL, got ${JSON.stringify(url)}`, "bad_request", 0, "baseUrl");
    }
    this.baseUrl = url.replace(/\/+$/, "");
    this.token = options.token ?? env("LAKEHOUSE_KB_TOKEN") ?? undefined;
    this.timeoutMs = options.timeoutMs ?? 3000;
    this.retries = options.retries ?? 3;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 30_000;
    this.repo = options.repo ?? env("LAKEHOUSE_KB_REPO") ?? undefined;
  }

  // Writes. Each sends an Idempotency-Key; a retry reuses it.

  /**
   * Stores a verdict with its KB row and observer event in one durable transaction, in the
   * client's repository when it names none. The same (pr_number, head_sha, audited_at) is
   * stored once (`duplicate: true` after).
   */
  postVerdict(verdict: Verdict, options: WriteOptions = {}): Promise<PostedVerdict> {
    return this.request({ method: "POST", path: "/verdicts", json: this.inRepo(verdict), write: options });
  }

  /** The legacy observer's call: one event, any JSON object. */
  postEvent(event: Record<string, unknown>, options: WriteOptions = {}): Promise<PostedEvent> {
    return this.request({ method: "POST", path: "/event", json: event, write: options });
  }

  /**
   * A KB outcome row (the scenario runner's `outcomes.jsonl` line), stored byte for byte: a
   * string is sent as is, an object as `JSON.stringify(row)` (what the legacy writer appended).
   */
  async postOutcome(row: Record<string, unknown> | string, options: WriteOptions = {}): Promise<PostedOutcome> {
    const body = typeof row === "string" ? wellFormed(row, "body") : json(row);
    return this.request({ method: "POST", path: "/outcomes", raw: { body, contentType: "application/json" }, write: options });
  }

  /** Many events in one NDJSON batch, committed together (bad lines reported, not stored). */
  async postEvents(events: Array<Record<string, unknown>>, options: WriteOptions = {}): Promise<BatchReport> {
    return this.batch("/event", events.map(json), options);
  }

  async postVerdicts(verdicts: Verdict[], options: WriteOptions = {}): Promise<BatchReport> {
    return this.batch("/verdicts", verdicts.map((v) => json(this.inRepo(v))), options);
  }

  /** Rows given as strings are sent byte for byte. */
  async postOutcomes(rows: Array<Record<string, unknown> | string>, options: WriteOptions = {}): Promise<BatchReport> {
    return this.batch("/outcomes", rows.map((r) => (typeof r === "string" ? wellFormed(r, "body") : json(r))), options);
  }

  /** Brings the exported legacy files up to date now. */
  exportNow(options: WriteOptions = {}): Promise<ExportReport> {
    return this.request({ method: "POST", path: "/export", write: this.slow(options) });
  }

  /** A consistent copy of the live database, on the server's machine; `body` as the server takes it. */
  backup(body: Record<string, unknown> = {}, options: WriteOptions = {}): Promise<BackupReport> {
    return this.request({ method: "POST", path: "/backup", json: body, write: this.slow(options) });
  }

  // Reads.

  /** Phase B: prior audits of a PR across heads, leaving out the head being audited now. */
  async priorAudits(prNumber: number, options: PriorAuditsOptions = {}): Promise<PriorAudits> {
    return this.request({
      method: "GET",
      path: `/prs/${pr(prNumber)}/history`,
      query: {
        repo: options.repo ?? this.repo,
        exclude_sha: options.excludeSha,
        limit: options.limit,
        before_seq: options.beforeSeq,
      },
    });
  }

  /**
   * Phase C/F: prior verdicts whose claims equal or resemble the query's, best first (score,
   * then the newer audit); each says which claims matched and why.
   */
  neighbors(query: NeighborQuery): Promise<Neighbors> {
    const body = {
      claims: query.claims,
      claim_hashes: query.claimHashes,
      repo: query.repo ?? this.repo,
      all_repos: query.allRepos,
      exclude_pr: query.excludePr,
      limit: query.limit,
      min_score: query.minScore,
    };
    return this.request({ method: "POST", path: "/neighbors", json: body });
  }

  /** The neighbours of a PR's latest audit's claims, the PR itself left out. */
  async prNeighbors(prNumber: number, options: PrNeighborsOptions = {}): Promise<Neighbors> {
    return this.request({
      method: "GET",
      path: `/prs/${pr(prNumber)}/neighbors`,
      query: {
        repo: options.repo ?? this.repo,
        limit: options.limit,
        min_score: options.minScore,
        all_repos: options.allRepos === undefined ? undefined : String(options.allRepos),
      },
    });
  }

  /** One page of the findings the memory holds for a PR. */
  async findings(prNumber: number, options: FindingsOptions = {}): Promise<FindingsPage> {
    return this.request({
      method: "GET",
      path: `/prs/${pr(prNumber)}/findings`,
      query: {
        repo: options.repo ?? this.repo,
        status: options.status,
        limit: options.limit,
        cursor: options.cursor,
        dismissals: options.dismissals === undefined ? undefined : String(options.dismissals),
      },
    });
  }

  /**
   * Every finding the memory holds for a PR, following the pages. A finding a push raises
   * again while the pages are read comes again in its newer state (its `last_seen` later); one
   * the service gives again unchanged is skipped.
   */
  async *allFindings(prNumber: number, options: Omit<FindingsOptions, "cursor" | "limit"> = {}): AsyncGenerator<RememberedFinding> {
    let cursor: string | undefined;
    const given = new Set<string>();
    do {
      const page = await this.findings(prNumber, { ...options, cursor, limit: 1000 });
      for (const finding of page.findings) {
        if (isOmitted(finding)) {
          // One finding alone is over the server's --max-response: a marker took its place.
          throw new KbError(
            `a finding of PR ${prNumber} (seq ${finding.seq}) is ${finding.omitted_bytes} bytes, more than the server's --max-response: raise it to list them`,
            "bad_response",
            200,
          );
        }
        const state = `${finding.fingerprint} ${finding.last_seen.seq}`;
        if (!given.has(state)) {
          given.add(state);
          yield finding;
        }
      }
      cursor = page.next_cursor;
    } while (cursor !== undefined);
  }

  /**
   * Before posting a review of a head: which of its findings are new, repeats of the PR's
   * latest audit, reopened, or dismissed. A read: nothing is stored.
   */
  async checkFindings(prNumber: number, options: CheckFindingsOptions): Promise<FindingsCheck> {
    const body = { repo: options.repo ?? this.repo, head_sha: options.headSha, findings: options.findings };
    return this.request({ method: "POST", path: `/prs/${pr(prNumber)}/findings/check`, json: body });
  }

  /** Records that a finding does not apply, in one PR or in every PR of the repository. */
  dismissFinding(dismissal: DismissalInput, options: WriteOptions = {}): Promise<Dismissal> {
    const body = {
      repo: dismissal.repo ?? this.repo,
      pr_number: dismissal.prNumber,
      fingerprint: dismissal.fingerprint,
      finding: dismissal.finding,
      reason: dismissal.reason,
      by: dismissal.by,
      confirm: dismissal.confirm,
    };
    return this.request({ method: "POST", path: "/findings/dismissals", json: body, write: options });
  }

  /** One page of live dismissals: the repository's, or with `prNumber` those that apply to it. */
  dismissals(options: { repo?: string; prNumber?: number; limit?: number; cursor?: string } = {}): Promise<DismissalsPage> {
    return this.request({
      method: "GET",
      path: "/findings/dismissals",
      query: { repo: options.repo ?? this.repo, pr_number: options.prNumber, limit: options.limit, cursor: options.cursor },
    });
  }

  /** Revokes a dismissal (by its id); revoking it again changes nothing. */
  async revokeDismissal(id: number, options: WriteOptions = {}): Promise<Dismissal> {
    return this.request({ method: "DELETE", path: `/findings/dismissals/${pr(id, "id")}`, write: options });
  }

  /** One page of everything stored under a sig_hash, in seq order. */
  async sig(sigHash: string, options: { afterSeq?: number; limit?: number; repo?: string } = {}): Promise<SigPage> {
    return this.request({
      method: "GET",
      path: `/sig/${pathSegment(sigHash, "sigHash")}`,
      query: { repo: options.repo ?? this.repo, after_seq: options.afterSeq, limit: options.limit },
    });
  }

  /** Every record under a sig_hash, following the pages. */
  async *sigRecords(sigHash: string, options: { repo?: string } = {}): AsyncGenerator<SigRecord> {
    let afterSeq: number | undefined;
    do {
      const page = await this.sig(sigHash, { afterSeq, limit: 1000, repo: options.repo });
      yield* page.records;
      afterSeq = page.next_after_seq;
    } while (afterSeq !== undefined);
  }

  /** One page of recent events, newest first. */
  events(filter: EventFilter = {}): Promise<EventsPage> {
    return this.request({
      method: "GET",
      path: "/events",
      query: {
        source: filter.source,
        repo: filter.repo ?? this.repo,
        event_kind: filter.eventKind,
        sig_hash: filter.sigHash,
        before_seq: filter.beforeSeq,
        limit: filter.limit,
      },
    });
  }

  /** Every event matching the filter, newest first, following the pages. */
  async *allEvents(filter: Omit<EventFilter, "beforeSeq" | "limit"> = {}): AsyncGenerator<EventItem> {
    let beforeSeq: number | undefined;
    do {
      const page = await this.events({ ...filter, beforeSeq, limit: 1000 });
      yield* page.events;
      beforeSeq = page.next_before_seq;
    } while (beforeSeq !== undefined);
  }

  stats(): Promise<Stats> {
    return this.request({ method: "GET", path: "/stats" });
  }

  /** 200 when the database answers and the writer accepts work; a KbError (503) otherwise. */
  health(): Promise<Health> {
    // Not retried: a health check's answer is the state now.
    return this.request({ method: "GET", path: "/healthz", noRetry: true });
  }

  /** The Prometheus exposition, as text. */
  metrics(): Promise<string> {
    return this.request({ method: "GET", path: "/metrics", text: true });
  }

  /** One long-poll page of the change feed. */
  feed(query: FeedQuery = {}): Promise<FeedPage> {
    return this.request({
      method: "GET",
      path: "/feed",
      query: {
        after_seq: query.afterSeq,
        history: query.history,
        types: query.types?.length ? query.types.join(",") : undefined,
        wait: query.waitMs === undefined ? undefined : `${Math.round(query.waitMs)}ms`,
        limit: query.limit,
      },
      timeoutMs: this.timeoutMs + (query.waitMs ?? 0),
    });
  }

  /**
   * The change feed, live: every record after `afterSeq` as it is committed, then forever
   * (until `signal` aborts or the loop breaks). A lost connection, a cut or a restart of the
   * server is resumed from the last seq yielded, with nothing skipped or repeated. A `resync`
   * item says events the consumer had not seen were deleted by retention. The history the
   * positions are in (`history`, then the last answer's) is sent on every reconnection: a
   * server now holding another history (a database restored from a backup) is a KbError 409,
   * not a silent skip; one that served the position (its history shares it) names its own
   * history, which the records after it are in.
   */
  async *follow(options: FollowOptions = {}): AsyncGenerator<FeedItem> {
    let position = options.afterSeq ?? 0;
    let history = options.history;
    const idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
    const maxDelayMs = options.maxReconnectDelayMs ?? 5_000;
    let failures = 0;
    while (!options.signal?.aborted) {
      const connection = new AbortController();
      const abort = () => connection.abort();
      options.signal?.addEventListener("abort", abort);
      let idle: ReturnType<typeof setTimeout> | undefined;
      const watchdog = () => {
        clearTimeout(idle);
        idle = setTimeout(abort, idleTimeoutMs);
      };
      let delayMs = Math.min(maxDelayMs, 100 * 2 ** failures);
      try {
        watchdog();
        const query = new URLSearchParams({ after_seq: String(position) });
        if (options.types?.length) query.set("types", options.types.join(","));
        if (history !== undefined) query.set("history", history);
        const response = await fetch(`${this.baseUrl}/feed?${query}`, {
          headers: { ...this.headers(), accept: "text/event-stream", "last-event-id": String(position) },
          signal: connection.signal,
        });
        const named = response.ok ? response.headers.get("feed-history") : null;
        if (named && named !== history) {
          try {
            options.onHistory?.(named);
          } catch (error) {
            // The caller's, never taken for a lost connection.
            throw new CallerError(error);
          }
          history = named;
        }
        if (!response.ok || response.body === null) {
          const error = await this.errorOf(response, await response.text());
          if (error.status < 500 && error.status !== 429) throw error;
          if (error.retryAfter !== undefined) delayMs = error.retryAfter * 1000;
        } else {
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            watchdog();
            buffer += value;
            let end: number;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              const item = parseEvent(buffer.slice(0, end));
              buffer = buffer.slice(end + 2);
              if (item === undefined) continue;
              // Nothing after an abort, even what this read already holds.
              if (options.signal?.aborted) return;
              if (item.type !== "resync") {
                if (item.seq <= position) continue;
                position = item.seq;
              }
              failures = 0;
              yield item;
            }
          }
          delayMs = 100;
        }
      } catch (error) {
        if (error instanceof CallerError) throw error.error;
        if (options.signal?.aborted) return;
        if (error instanceof KbError && error.kind === "http") throw error;
      } finally {
        clearTimeout(idle);
        options.signal?.removeEventListener("abort", abort);
        connection.abort();
      }
      failures += 1;
      await sleep(delayMs, options.signal);
    }
  }

  private slow(options: WriteOptions): WriteOptions {
    return { ...options, timeoutMs: options.timeoutMs ?? Math.max(this.timeoutMs, SLOW_WRITE_TIMEOUT_MS) };
  }

  private batch(path: string, lines: string[], options: WriteOptions): Promise<BatchReport> {
    const body = lines.join("\n") + "\n";
    return this.request({ method: "POST", path, raw: { body, contentType: "application/x-ndjson" }, write: options });
  }

  /** `verdict` in the client's repository when it names none. */
  private inRepo(verdict: Verdict): Verdict {
    return verdict.repo === undefined && this.repo !== undefined ? { ...verdict, repo: this.repo } : verdict;
  }

  private headers(): Record<string, string> {
    const headers: Record<string, string> = { "user-agent": USER_AGENT };
    if (this.token) headers["authorization"] = `Bearer ${this.token}`;
    return headers;
  }

  /** The one way to the service: every route's call goes through here. */
  private async request<T>(spec: RequestSpec): Promise<T> {
    const headers = this.headers();
    let body: string | undefined;
    if (spec.json !== undefined) {
      body = json(spec.json);
      headers["content-type"] = "application/json";
    } else if (spec.raw !== undefined) {
      body = spec.raw.body;
      headers["content-type"] = spec.raw.contentType;
    }
    const write = spec.write !== undefined;
    if (write) headers["idempotency-key"] = spec.write?.idempotencyKey ?? crypto.randomUUID();
    for (const [name, value] of Object.entries(headers)) {
      // fetch would throw before sending, which reads as a network error whose write may
      // have been committed.
      if (!/^[\x20-\x7e\xa0-\xff]*$/.test(value)) {
        const field = name === "authorization" ? "token" : name;
        throw new KbError(`${field} cannot be sent in an HTTP header: ${JSON.stringify(value)}`, "bad_request", 0, field);
      }
    }
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(spec.query ?? {})) {
      if (value !== undefined) query.set(key, wellFormed(String(value), key));
    }
    const url = `${this.baseUrl}${spec.path}${query.size > 0 ? `?${query}` : ""}`;
    // Whether an attempt of this write may have reached the commit without its answer reaching us.
    let uncertain = false;
    let last: KbError | undefined;
    for (let attempt = 0; attempt <= (spec.noRetry ? 0 : this.retries); attempt++) {
      // Retry-After plus up to a quarter more, so that clients told the same wait do not all
      // come back in the same instant.
      if (attempt > 0) await sleep(last?.retryAfter !== undefined ? last.retryAfter * 1000 * (1 + Math.random() / 4) : Math.min(2000, 100 * 2 ** attempt));
      const timeoutMs = timerMs(spec.timeoutMs ?? spec.write?.timeoutMs ?? this.timeoutMs);
      const signal = AbortSignal.timeout(timeoutMs);
      let sent = false;
      let retry: boolean;
      try {
        const response = await fetch(url, { method: spec.method, headers, body, signal });
        sent = true;
        const text = await response.text();
        if (response.ok) {
          if (spec.text) return text as T;
          try {
            return JSON.parse(text) as T;
          } catch {
            throw new KbError(
              `lakehouse-kb answered ${response.status} with a body that is not JSON: ${snippet(text)}`,
              "bad_response",
              response.status,
              undefined,
              undefined,
              write,
            );
          }
        }
        last = await this.errorOf(response, text);
        // A proxy in front gave up on the service (502, 504): a write's fate is unknown.
        const proxyGaveUp = [502, 504].includes(response.status);
        if (write && proxyGaveUp) uncertain = true;
        const readRetry = !write && response.status === 503;
        // A write told to come back (load shed, a storage fault, a full disk), or whose proxy
        // gave up, is retried with its key, which makes the retry safe whatever the first
        // attempt did.
        const writeRetry = write && [503, 507].includes(response.status) && last.retryAfter !== undefined;
        // A 503 to a write without Retry-After: the service says it may have committed it. A
        // storage fault (507, full disk) may have failed a commit's last sync after its bytes
        // reached the disk: the commit may survive the repair (docs/RELIABILITY.md).
        if (write && response.status === 503 && last.retryAfter === undefined) uncertain = true;
        if (write && response.status === 507) uncertain = true;
        retry = proxyGaveUp || readRetry || writeRetry;
      } catch (error) {
        if (error instanceof KbError) throw error;
        const timedOut = signal.aborted;
        // Nothing sent: the name did not resolve, or no connection was made.
        const refused = !sent && UNSENT_CODES.includes(causeCode(error) ?? "");
        if (write && !refused) uncertain = true;
        last = new KbError(
          timedOut
            ? `lakehouse-kb at ${this.baseUrl} did not answer ${spec.method} ${spec.path} within ${timeoutMs} ms`
            : `lakehouse-kb unreachable at ${this.baseUrl}: ${describe(error)}`,
          timedOut ? "timeout" : "network",
          0,
        );
        retry = true;
      }
      if (!retry) break;
    }
    const error = last as KbError;
    if (!(write && uncertain)) throw error;
    throw new KbError(
      `${error.message} (the write may have been committed: retry with idempotencyKey ${headers["idempotency-key"]} to be sure)`,
      error.kind,
      error.status,
      error.field,
      error.retryAfter,
      true,
      error.body,
    );
  }

  private async errorOf(response: Response, text: string): Promise<KbError> {
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      answer = undefined;
    }
    const fields = typeof answer === "object" && answer !== null ? (answer as Record<string, unknown>) : {};
    const message =
      typeof fields.error === "string" ? fields.error : `HTTP ${response.status} from lakehouse-kb: ${snippet(text)}`;
    return new KbError(
      message,
      "http",
      response.status,
      typeof fields.field === "string" ? fields.field : undefined,
      retryAfterSecs(response.headers.get("retry-after"), this.maxRetryAfterMs),
      false,
      answer,
    );
  }
}

/**
 * Retry-After in seconds: delta-seconds or an HTTP-date, capped at `capMs`; undefined when
 * absent or unreadable.
 */
/** The marker a list answer holds in place of a record alone over the server's --max-response. */
export interface Omitted {
  /** Every marker's but a dismissal's. */
  seq?: number;
  /** A dismissal's. */
  id?: number;
  /** The record's size as it would have been sent. */
  omitted_bytes: number;
  /** In `/sig`'s records. */
  type?: string;
  /** In neighbours and PR history. */
  sig_hash?: string;
  /** In a findings page. */
  fingerprint?: string;
}

/**
 * Whether an item of a list answer (sig records, events, neighbours, PR history, findings) is
 * the marker a record alone over the server's --max-response becomes. Only such a record does;
 * raising --max-response serves it.
 */
export function isOmitted(item: object): item is Omitted {
  return "omitted_bytes" in item;
}

export function retryAfterSecs(value: string | null, capMs = 30_000): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const text = value.trim();
  let secs: number;
  if (/^\d+$/.test(text)) {
    secs = Number(text);
  } else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    secs = Math.max(0, (at - Date.now()) / 1000);
  }
  return Math.min(secs, capMs / 1000);
}

/** One SSE event block to a feed item; undefined for comments, `retry:` and the like. */
function parseEvent(block: string): FeedItem | undefined {
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
  }
  if (data.length === 0) return undefined;
  return JSON.parse(data.join("\n")) as FeedItem;
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

/** A PR number or id as a path segment: a non-negative integer, or a KbError before sending. */
function pr(n: number, field = "pr_number"): string {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new KbError(`${field} must be a non-negative integer, got ${n}`, "bad_request", 0, field);
  }
  return String(n);
}

/**
 * Text as given, or a KbError before sending when it holds a lone surrogate, which UTF-8 cannot
 * carry: a row sent byte for byte, a path segment or a query value would otherwise go out with
 * U+FFFD in its place (or `encodeURIComponent` throw a URIError).
 */
function wellFormed(text: string, field: string): string {
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text)) {
    throw new KbError(`${field} holds a lone surrogate, which UTF-8 cannot carry`, "bad_request", 0, field);
  }
  return text;
}

/** `JSON.stringify`, or a KbError before sending for what it cannot write (a BigInt, a cycle). */
function json(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (error) {
    throw new KbError(`the body cannot be sent as JSON: ${describe(error)}`, "bad_request", 0, "body");
  }
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}...` : flat || "(empty body)";
}

/** Errors of a request that never reached the server. */
const UNSENT_CODES = ["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"];

/** A timeout as `AbortSignal.timeout` takes it: whole milliseconds, at most a timer's limit. */
function timerMs(ms: number): number {
  if (!(ms > 0)) {
    throw new KbError(`timeoutMs must be a positive number of milliseconds, got ${ms}`, "bad_request", 0, "timeoutMs");
  }
  return Math.min(Math.ceil(ms), 2 ** 31 - 1);
}

/**
 * `value` as one segment of a URL's path. `.` and `..` cannot be one (`fetch` resolves them
 * as the URL's own directories, escaped or not): a KbError before anything is sent.
 */
function pathSegment(value: string, field: string): string {
  if (value === "." || value === "..") {
    throw new KbError(`${field} ${JSON.stringify(value)} cannot be sent as a URL path segment`, "bad_request", 0, field);
  }
  return encodeURIComponent(wellFormed(value, field));
}

function causeCode(error: unknown): string | undefined {
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause;
  return typeof cause?.code === "string" ? cause.code : undefined;
}

function describe(error: unknown): string {
  const code = causeCode(error);
  const message = error instanceof Error ? error.message : String(error);
  return code ? `${message} (${code})` : message;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done);
  });
}
