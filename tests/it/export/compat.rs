//! Byte compatibility with the seed's JavaScript (computed by Node from the seed's own
//! expressions), incremental runs, and the report `POST /export` answers with.

use super::*;

/// The seed's writers, verbatim where they compute bytes: `appendVerdictToKbOutcomes` and
/// `indexVerdictToObserver` (auditor/audit.ts) and the observer's `POST /event` op
/// (mcp-server/observer.ts, kept in `tools/compare/seed-observed-op.mjs`, which the comparison
/// benchmark's legacy observer runs too), with `new Date().toISOString()` replaced by the
/// receipt time.
const SEED_JS: &str = r#"
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const { observedOp: observe } = await import(pathToFileURL(process.env.SEED_OBSERVED_OP).href);
const input = readFileSync(0, "utf8").split("\n").filter(Boolean);
let kb = "", ops = "";
for (const item of input) {
  const { kind, now_ms, text } = JSON.parse(item);
  const now = new Date(now_ms).toISOString();
  if (kind === "verdict") {
    const v = JSON.parse(text);
    const row = {
      kind: "audit",
      sig_hash: `pr${v.pr_number}-${v.head_sha.slice(0, 8)}`,
      audited_at: v.audited_at,
      pr_number: v.pr_number,
      head_sha: v.head_sha,
      overall: v.overall,
      one_liner: v.one_liner,
      ok_events: v.overall === "approve" ? 1 : 0,
      total_events: 1,
      findings: {
        block: v.metrics.findings_block,
        warn: v.metrics.findings_warn,
        info: v.metrics.findings_info,
      },
      elapsed_secs: (v.metrics.audit_duration_ms ?? 0) / 1000,
    };
    kb += JSON.stringify(row) + "\n";
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
    // Sent as JSON.stringify(payload), read by the observer with req.json().
    ops += JSON.stringify(observe(JSON.parse(JSON.stringify(payload)), now)) + "\n";
  } else if (kind === "event") {
    ops += JSON.stringify(observe(JSON.parse(text), now)) + "\n";
  } else {
    kb += text + "\n";
  }
}
process.stdout.write(JSON.stringify({ kb, ops }));
"#;

/// Runs [`SEED_JS`] on `(kind, receipt ms, text)` items: the bytes the legacy system wrote.
fn seed_js(items: &[(&str, u64, String)]) -> (Vec<u8>, Vec<u8>) {
    let mut input = String::new();
    for (kind, now_ms, text) in items {
        let item = serde_json::json!({ "kind": kind, "now_ms": now_ms, "text": text });
        input.push_str(&item.to_string());
        input.push('\n');
    }
    let mut child = Command::new("node")
        .args(["--input-type=module", "-e", SEED_JS])
        .env(
            "SEED_OBSERVED_OP",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tools/compare/seed-observed-op.mjs"
            ),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "this test needs Node.js (v20) on PATH to run the seed's JavaScript: could not \
                 run `node` ({e})"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "node failed");
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    (
        value["kb"].as_str().unwrap().as_bytes().to_vec(),
        value["ops"].as_str().unwrap().as_bytes().to_vec(),
    )
}

fn verdict(pr: u64, one_liner: &str, metrics: &str, overall: &str, minute: u32) -> String {
    format!(
        r#"{{"pr_number":{pr},"head_sha":"e9e0d501ff8789cc67d571bd52f177119c19e495","overall":"{overall}","one_liner":{},"findings":[],"metrics":{{{metrics}}},"audited_at":"2026-04-01T09:{minute:02}:13.330Z"}}"#,
        serde_json::to_string(one_liner).unwrap()
    )
}

/// Contract §2 and §4, every case of the table: through ingest, the store and the export, the
/// files hold exactly the bytes the seed's JavaScript writes.
#[test]
fn exported_bytes_equal_the_seed_javascript() {
    let m = r#""findings_block":2,"findings_warn":1,"findings_info":3"#;
    let verdicts = [
        verdict(
            1,
            "two seconds",
            &format!(r#"{m},"audit_duration_ms":2000"#),
            "block",
            1,
        ),
        verdict(
            2,
            "one and a half",
            &format!(r#"{m},"audit_duration_ms":1500"#),
            "approve",
            2,
        ),
        verdict(
            3,
            "a third",
            &format!(r#"{m},"audit_duration_ms":333"#),
            "request_changes",
            3,
        ),
        verdict(
            4,
            "no duration, no info: é ü 日本 🎉",
            r#""findings_block":0,"findings_warn":0"#,
            "approve",
            4,
        ),
        verdict(
            5,
            "null duration and info \u{7f}",
            r#""findings_block":0,"findings_warn":0,"findings_info":null,"audit_duration_ms":null"#,
            "block",
            5,
        ),
        verdict(
            6,
            "controls \u{1}\u{1f}\u{8}\u{c}\n\r\t\"\\ end",
            &format!(r#"{m},"audit_duration_ms":0.001"#),
            "block",
            6,
        ),
        verdict(
            7,
            "separators \u{2028} \u{2029} and a slash / </script>",
            // The double just below 1e-4, whose thousandth is exactly the double nearest 1e-7.
            &format!(r#"{m},"audit_duration_ms":0.00009999999999999999"#),
            "block",
            7,
        ),
        verdict(
            8,
            "huge",
            &format!(r#"{m},"audit_duration_ms":1e24"#),
            "block",
            8,
        ),
        verdict(
            9007199254740991,
            "largest pr",
            &format!(r#"{m},"audit_duration_ms":14237"#),
            "approve",
            9,
        ),
        verdict(
            10,
            "zero",
            &format!(r#"{m},"audit_duration_ms":0"#),
            "block",
            10,
        ),
    ];
    let events = [
        r#"{"source":"github","ok":true,"one_liner":"unknown source"}"#,
        r#"{"source":"bot","success":false,"error":"boom \u0000 \u2028"}"#,
        r#"{"event_kind":"fill","role":"welder","count":2.5,"city":"Gary","state":"IN","duration_ms":"1.5e3"}"#,
        r#"{"timestamp":"2026-01-01T00:00:00.000Z","sig_hash":null,"staffer_id":"s-1","duration_ms":1e21,"success":true}"#,
        r#"{"source":"mcp","count":[1,[2]],"city":{"a":1},"error":null,"audit_duration_ms":7}"#,
    ];
    let outcomes = [
        r#"{"sig_hash":"6cd5d79c4f5d42c9", "elapsed_secs":15.80,"x":"\u00e9/é"}"#,
        r#"{"sig_hash":"a","kind":"custom","n":1.0e0}"#,
    ];

    let mut items: Vec<(&str, u64, String)> = Vec::new();
    let mut puts = Vec::new();
    let mut now = 1_775_034_913_330;
    for (i, v) in verdicts.iter().enumerate() {
        now += 1_001;
        items.push(("verdict", now, v.clone()));
        puts.push(Put::from(verdict_record(v.as_bytes(), now).unwrap()));
        let event = events[i % events.len()];
        now += 7;
        items.push(("event", now, event.to_owned()));
        puts.push(Put::from(event_record(event.as_bytes(), now).unwrap()));
        if let Some(row) = outcomes.get(i) {
            items.push(("outcome", now, (*row).to_owned()));
            puts.push(Put::from(outcome_record(row.as_bytes(), now).unwrap()));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(dir.path()));
    store.write(&puts).unwrap();
    let out = dir.path().join("out");
    ExportJob::new(store, out.clone()).run().unwrap();

    let (kb_want, ops_want) = seed_js(&items);
    let kb_got = read(&out, OUTCOMES);
    assert_same_bytes("outcomes.jsonl vs seed JS", &kb_got, &kb_want);
    assert_same_bytes("ops.jsonl vs seed JS", &read(&out, OPS), &ops_want);

    // The contract's examples, literally, so that the test cannot pass with Node and us wrong
    // in the same way.
    let kb_text = String::from_utf8(kb_got).unwrap();
    for expected in [
        r#""elapsed_secs":2}"#,
        r#""elapsed_secs":1.5}"#,
        r#""elapsed_secs":0.333}"#,
        r#""findings":{"block":0,"warn":0},"elapsed_secs":0}"#,
        r#""findings":{"block":0,"warn":0,"info":null},"elapsed_secs":0}"#,
        r#""elapsed_secs":0.000001}"#,
        r#""elapsed_secs":1e-7}"#,
        r#""elapsed_secs":1e+21}"#,
        r#""elapsed_secs":14.237}"#,
        r#""one_liner":"controls \u0001\u001f\b\f\n\r\t\"\\ end""#,
        "\"one_liner\":\"separators \u{2028} \u{2029} and a slash / </script>\"",
        "\"one_liner\":\"no duration, no info: é ü 日本 🎉\"",
        "\"one_liner\":\"null duration and info \u{7f}\"",
        r#""pr_number":9007199254740991,"#,
        r#"{"sig_hash":"6cd5d79c4f5d42c9", "elapsed_secs":15.80,"x":"\u00e9/é"}"#,
    ] {
        assert!(
            kb_text.contains(expected),
            "outcomes.jsonl lacks {expected}"
        );
    }
}

#[test]
fn incremental_runs_write_only_the_new_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(dir.path()));
    load(&store, 1, 300);
    let out = dir.path().join("out");
    let job = ExportJob::new(store.clone(), out.clone());
    let first = job.run().unwrap();
    assert_eq!(first.outcomes.action, Action::Appended);
    // 100 verdicts bring 100 rows and 100 events; 100 events; 100 scenario rows.
    assert_eq!(
        (first.outcomes.rows_written, first.ops.rows_written),
        (200, 200)
    );
    let len_before = first.outcomes.checkpoint.len;

    let idle = job.run().unwrap();
    for file in idle.files() {
        assert_eq!((file.action, file.rows_written), (Action::Unchanged, 0));
    }
    assert_eq!(idle.outcomes.checkpoint, first.outcomes.checkpoint);

    let before = read(&out, OUTCOMES);
    load(&store, 2, 6);
    let next = job.run().unwrap();
    assert_eq!(
        (next.outcomes.rows_written, next.ops.rows_written),
        (4, 4),
        "{next:?}"
    );
    assert_eq!(next.outcomes.action, Action::Appended);
    assert_eq!(
        next.outcomes.checkpoint.len,
        len_before + next.outcomes.bytes_written
    );
    let after = read(&out, OUTCOMES);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "old bytes were rewritten"
    );
    // The last record loaded is a scenario row.
    assert_eq!(
        store.checkpoint("outcomes").unwrap().seq,
        store.last_seq().unwrap()
    );
    assert_matches_clean_export(&store, &out);
}

#[test]
fn report_serializes_as_post_export_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(dir.path()));
    load(&store, 3, 3);
    let report = ExportJob::new(store, dir.path().join("out")).run().unwrap();
    let json = serde_json::to_value(&report).unwrap();
    let outcomes = &json["outcomes"];
    assert_eq!(outcomes["action"], "appended");
    assert_eq!(outcomes["rows_written"], 2);
    assert_eq!(outcomes["checkpoint"]["seq"], 5);
    assert_eq!(
        outcomes["checkpoint"]["tail"].as_str().unwrap().len(),
        16,
        "{json}"
    );
    assert!(outcomes.get("reason").is_none());
    assert_eq!(json["duration_ms"], report.duration_ms);
    // The answer holds the report's fields and nothing else.
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["duration_ms", "ops", "outcomes"]);
    assert_eq!(json["ops"]["rows_written"], report.ops.rows_written);
}
