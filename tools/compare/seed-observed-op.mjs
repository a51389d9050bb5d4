// The seed observer's ObservedOp: what `POST /event` made of a body (legacy-contract.md
// section 4), as the seed's JavaScript wrote it. One copy, used by the legacy observer of the
// comparison benchmark (legacy-observer.mjs) and by the export test that compares lakehouse-kb's
// ops.jsonl with the seed's bytes (tests/it/export.rs). `now` is the receipt time, ISO 8601.
const allowedSource = ["mcp", "scenario", "auditor", "bot"];

export function observedOp(body, now) {
  const bodySrc = typeof body.source === "string" ? body.source : "";
  const source = allowedSource.includes(bodySrc) ? bodySrc : "scenario";
  const success = typeof body.success === "boolean" ? body.success
    : typeof body.ok === "boolean" ? body.ok
    : false;
  return {
    timestamp: body.timestamp ?? now,
    endpoint: body.endpoint ?? (source === "auditor" ? "auditor:verdict"
      : source === "bot" ? "bot:cycle"
      : "scenario:fill"),
    input_summary: body.input_summary ?? `${body.event_kind ?? "?"} ${body.role ?? "?"}×${body.count ?? "?"} in ${body.city ?? "?"}, ${body.state ?? "?"}`,
    success,
    duration_ms: Number(body.duration_ms ?? body.audit_duration_ms ?? 0),
    output_summary: body.output_summary ?? body.one_liner ?? (success ? "ok" : (body.error ?? "failed")),
    error: body.error,
    source,
    staffer_id: body.staffer_id,
    sig_hash: body.sig_hash,
    event_kind: body.event_kind,
  };
}
