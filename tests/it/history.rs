//! PR history over real HTTP at more than one page: counts cover every audit, the finding
//! sentence names the newest 20 outcomes and counts the rest, `audits` pages newest first by
//! `before_seq` with none repeated or skipped, and the excluded head is left out of all three;
//! at the storage layer, every page at every limit, cursor and exclusion.

use lakehouse_kb::intake::verdict_record;
use lakehouse_kb::model::Repo;
use lakehouse_kb::store::{HistoryQuery, Put, ReadBudget, Store, StoreOptions};
use serde_json::json;

use crate::support::{InProcessServer, assert_error};

const HEADS: [&str; 3] = [
    "aaaaaaaa00000000000000000000000000000001",
    "bbbbbbbb00000000000000000000000000000002",
    "cccccccc00000000000000000000000000000003",
];
const OVERALLS: [&str; 3] = ["approve", "request_changes", "block"];

#[test]
fn a_long_history_pages_and_its_sentence_stays_short() {
    let server = InProcessServer::start();
    // 25 audits of PR 5: audit i on head i % 3 with overall i % 3 (head A: 9, B: 8, C: 8).
    let mut body = String::new();
    for i in 0..25 {
        body.push_str(
            &json!({
                "pr_number": 5, "head_sha": HEADS[i % 3], "overall": OVERALLS[i % 3],
                "one_liner": format!("audit {i}"), "audited_at": format!("2026-05-01T00:00:{i:02}.000Z"),
                "metrics": {"findings_block": 0, "findings_warn": 0},
            })
            .to_string(),
        );
        body.push('\n');
    }
    let stored = server.post_ndjson("/verdicts", body);
    assert_eq!(stored.json["accepted"], 25, "{}", stored.text);

    let first = server.get("/prs/5/history?limit=10");
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json["count"], 25);
    assert_eq!(
        first.json["by_overall"],
        json!({"approve": 9, "request_changes": 8, "block": 8})
    );
    let newest: Vec<&str> = (5..25).map(|i| OVERALLS[i % 3]).collect();
    assert_eq!(
        first.json["finding"],
        format!(
            "prior 25 audits on this PR ended in [5 earlier, {}], last reason was audit 24.",
            newest.join(", ")
        )
    );
    let mut seen = Vec::new();
    let mut page = first;
    loop {
        for audit in page.json["audits"].as_array().unwrap() {
            seen.push(audit["seq"].as_u64().unwrap());
        }
        match page.json["next_before_seq"].as_u64() {
            Some(cursor) => {
                page = server.get(&format!("/prs/5/history?limit=10&before_seq={cursor}"))
            }
            None => break,
        }
    }
    let mut expected = seen.clone();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    expected.dedup();
    assert_eq!(seen, expected, "newest first, each once");
    assert_eq!(seen.len(), 25);

    // Head A under audit now: its 9 audits are left out of counts, sentence and pages.
    let excluded = server.get("/prs/5/history?limit=50&exclude_sha=AAAAAAAA");
    assert_eq!(excluded.json["count"], 16);
    assert_eq!(
        excluded.json["by_overall"],
        json!({"request_changes": 8, "block": 8})
    );
    let audits = excluded.json["audits"].as_array().unwrap();
    assert_eq!(audits.len(), 16);
    assert!(audits.iter().all(|a| a["head_sha"] != HEADS[0]));
    assert_eq!(
        excluded.json["finding"].as_str().unwrap(),
        format!(
            "prior 16 audits on this PR ended in [{}], last reason was audit 23.",
            (0..25)
                .filter(|i| i % 3 != 0)
                .map(|i| OVERALLS[i % 3])
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
}

#[test]
fn pr_numbers_in_the_path_are_canonical_decimals() {
    let server = InProcessServer::start();
    for path in ["+1", "1.0", "-1", "0x1", "%201"] {
        assert_error(
            &server.get(&format!("/prs/{path}/history")),
            400,
            "pr_number",
            "must be a non-negative integer",
        );
    }
    assert_error(
        &server.get("/prs/01/history"),
        400,
        "pr_number",
        "without leading zeros",
    );
    assert_error(
        &server.get("/prs/9007199254740992/history"),
        400,
        "pr_number",
        "too large",
    );
    assert_eq!(server.get("/prs/0/history").status, 200);
    assert_eq!(server.get("/prs/9007199254740991/history").status, 200);
}

/// The sentence's walk and the page's share the audits they both read: every page, at every
/// limit, cursor, exclusion and byte budget, is what the definition gives (the PR's audits not
/// excluded, below the cursor, newest first, `limit` of them or fewer when the next would pass
/// the budget's bytes, and `more` when others follow), and the sentence does not depend on the
/// page.
#[test]
fn every_page_is_the_audits_below_its_cursor_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap();
    // 25 audits of PR 5 (audit i on head i % 3), and one of PR 6 between them: (seq, head,
    // the bytes its page entry holds).
    let mut audits = Vec::new();
    let mut other_seq = 0;
    for i in 0..25 {
        // Wordings of different lengths: an audit too large for what is left of the budget
        // can be followed by one that would fit.
        let one_liner = format!("audit {i} {}", "x".repeat(i * 37 % 101));
        let body = json!({
            "pr_number": 5, "head_sha": HEADS[i % 3], "overall": OVERALLS[i % 3],
            "one_liner": one_liner, "audited_at": format!("2026-05-01T00:00:{i:02}.000Z"),
            "metrics": {"findings_block": 0, "findings_warn": 0},
        });
        let put = Put::from(verdict_record(body.to_string().as_bytes(), 1).unwrap());
        let seq = store.write(&[put]).unwrap()[0].seq();
        // sig_hash, head_sha, overall, one_liner, audited_at.
        let held = "pr5-aaaaaaaa".len() + 40 + OVERALLS[i % 3].len() + one_liner.len() + 24;
        audits.push((seq, i % 3, held));
        if i == 12 {
            let other = json!({
                "pr_number": 6, "head_sha": HEADS[0], "overall": "approve", "one_liner": "other",
                "audited_at": "2026-05-01T00:00:00.000Z",
                "metrics": {"findings_block": 0, "findings_warn": 0},
            });
            let put = Put::from(verdict_record(other.to_string().as_bytes(), 1).unwrap());
            other_seq = store.write(&[put]).unwrap()[0].seq();
        }
    }
    let history = |exclude: Option<&str>, before: Option<u64>, limit: usize, bytes: usize| {
        let q = HistoryQuery {
            repo: Repo::default(),
            pr_number: 5,
            exclude_sha: exclude.map(str::to_owned),
            before_seq: before,
            limit,
        };
        let mut budget = ReadBudget::unlimited().with_max_bytes(bytes);
        store.pr_history(&q, &mut budget).unwrap()
    };
    let cursors: Vec<Option<u64>> = [None, Some(0), Some(other_seq), Some(u64::MAX)]
        .into_iter()
        .chain(
            audits
                .iter()
                .flat_map(|&(seq, ..)| [Some(seq), Some(seq + 1)]),
        )
        .collect();
    let mut pages = 0;
    for &before in &cursors {
        for exclude in [None, Some("aaaaaaaa"), Some("b")] {
            let sentence = history(exclude, None, 50, usize::MAX);
            let below: Vec<(u64, usize)> = audits
                .iter()
                .rev()
                .filter(|&&(seq, head, _)| {
                    before.is_none_or(|b| seq < b)
                        && exclude.is_none_or(|e| !HEADS[head].starts_with(e))
                })
                .map(|&(seq, _, held)| (seq, held))
                .collect();
            for limit in [0, 1, 5, 19, 20, 21, 30] {
                for bytes in [usize::MAX, 1, 250, 1000] {
                    let page = history(exclude, before, limit, bytes);
                    // The first audit always fits; each next one while the total stays within.
                    let (mut expected, mut total) = (Vec::new(), 0);
                    for &(seq, held) in below.iter().take(limit) {
                        if total > 0 && total + held > bytes {
                            break;
                        }
                        total += held;
                        expected.push(seq);
                    }
                    let got: Vec<u64> = page.audits.iter().map(|a| a.seq).collect();
                    let case = format!(
                        "before {before:?}, exclude {exclude:?}, limit {limit}, bytes {bytes}"
                    );
                    assert_eq!(got, expected, "{case}");
                    assert_eq!(page.more, below.len() > expected.len(), "{case}");
                    assert_eq!(page.recent_overalls, sentence.recent_overalls, "{case}");
                    assert_eq!(page.last_reason, sentence.last_reason, "{case}");
                    assert_eq!(page.latest_findings, sentence.latest_findings, "{case}");
                    pages += 1;
                }
            }
        }
    }
    assert_eq!(pages, cursors.len() * 3 * 7 * 4);
}
