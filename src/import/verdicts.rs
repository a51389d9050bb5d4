//! Verdicts of a legacy directory: the auditor's files under `_auditor/verdicts/`, matching a
//! `kind:"audit"` row to the file of the same head and `audited_at`, and the verdict made from a
//! row's own fields when no file matches (a re-audit overwrote the file, or it is gone).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::jsjson::ObjectWriter;
use crate::model::verdict::whole_number;
use crate::model::{FieldError, Repo, Verdict};

use super::lines::RowHead;

/// What makes a verdict the same verdict: `(pr_number, head_sha, audited_at)`, as the store's
/// verdict identity. Held as the first 16 bytes of SHA-256 over the three fields: the import
/// keeps one per verdict file between its passes, and the fields' texts would take several
/// times the room (a collision, at 2^-128 per pair, would give a row another file's verdict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Identity([u8; 16]);

impl Identity {
    pub(super) fn of(pr_number: u64, head_sha: &str, audited_at: &str) -> Identity {
        let mut hasher = Sha256::new();
        hasher.update(pr_number.to_le_bytes());
        // The head's length first, so that no two field splits hash the same bytes.
        hasher.update((head_sha.len() as u64).to_le_bytes());
        hasher.update(head_sha.as_bytes());
        hasher.update(audited_at.as_bytes());
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&hasher.finalize()[..16]);
        Identity(bytes)
    }
}

pub(super) fn identity_of(v: &Verdict) -> Identity {
    Identity::of(v.pr_number, &v.head_sha, &v.audited_at)
}

/// Puts a verdict file's verdict in the namespace of its audit row, `row_repo`; false, the
/// verdict as it was, when the file names another repository (the verdict apart from its row would put the PR's history
/// in one namespace and the row in another: a review's). A file naming no repository (no
/// `repo`, or `null` or `""`, the default namespace's names everywhere) goes with its row: an auditor that posts with the client's `repo` option (the client adds `repo` to
/// the body it sends) and keeps writing its verdict files as before writes files without one,
/// and its exported rows carry the repository (a review found every claim and finding of such
/// a round trip lost, the verdicts made from the rows). Its JSON then gains the row's `repo`,
/// last, as the client's body has it: what the feed and `/sig` serve names the repository
/// (a review found it served without one, in a repository of its own).
pub(super) fn in_row_namespace(verdict: &mut Verdict, row_repo: &Repo) -> bool {
    if verdict.repo == *row_repo {
        return true;
    }
    match with_repo(verdict, row_repo) {
        Some(named) => {
            *verdict = named;
            true
        }
        None => false,
    }
}

/// `verdict` read again from its JSON naming `repo`; `None` when `repo` is the default
/// namespace or the verdict names a repository of its own. A file naming none has `"repo"`
/// appended, last, as the client's body has it; one whose `repo` is `null` or `""` (the
/// default namespace, as everywhere else) has that value replaced where it stands.
fn with_repo(verdict: &Verdict, repo: &Repo) -> Option<Verdict> {
    if verdict.repo.name().is_some() {
        return None;
    }
    let name = serde_json::to_string(repo.name()?).ok()?;
    let text = verdict.raw_json.as_str();
    let named = match serde_json::from_str::<LastRepo>(text).ok()?.0 {
        Some(value) => {
            let start = value.get().as_ptr() as usize - text.as_ptr() as usize;
            let end = start + value.get().len();
            format!("{}{name}{}", &text[..start], &text[end..])
        }
        None => {
            let head = text.trim_end().strip_suffix('}')?.trim_end();
            format!("{head},\"repo\":{name}}}")
        }
    };
    Verdict::parse_history(&named).ok().map(|(named, _)| named)
}

/// The value of an object's last top-level `"repo"` key, the one a parse keeps, as the slice
/// of the text it was read from.
struct LastRepo<'a>(Option<&'a RawValue>);

impl<'de> Deserialize<'de> for LastRepo<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = LastRepo<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut last = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "repo" {
                        last = Some(map.next_value::<&RawValue>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(LastRepo(last))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// The identity an audit row claims, when its fields have the right types.
/// `pr_number` is an integer that fits a `u64`, or a whole number written otherwise (`12.0`,
/// `1.2e1`) from 0 to 2^53 - 1. An integer above 2^53 - 1 matches no verdict file (a verdict's
/// `pr_number` is at most that), so it is not refused here.
pub(super) fn head_identity(head: &RowHead) -> Option<Identity> {
    let pr_number = whole_number(head.pr_number.as_ref()?)?;
    Some(Identity::of(
        pr_number,
        head.head_sha.as_deref()?,
        head.audited_at.as_deref()?,
    ))
}

/// The `*.json` files of the verdict directory, by name; none when the directory is missing.
pub(super) fn list_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        // Whatever its type: a link, a FIFO, a device or a directory named like a verdict
        // file is listed to be reported (`read_file` reads none of them), not left out unsaid.
        if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    // All in one directory: ordered by name, byte by byte, as `Path` would order them.
    files.sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    Ok(files)
}

/// Why a verdict file is not imported.
#[derive(Debug, thiserror::Error)]
pub(super) enum FileProblem {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a valid verdict: {0}")]
    Invalid(String),
    /// Not read: a link, or over the size limit.
    #[error("{0}")]
    Refused(String),
    /// Read and valid, but its text could not be kept for pass 2 (the spill file's error).
    #[error("keeping its text for pass 2: {0}")]
    Spill(std::io::Error),
}

/// Reads and validates one verdict file; its whole text becomes the verdict's raw JSON. True
/// when it holds more claims than are indexed (`Verdict::parse_history`). A symbolic link is
/// not followed, and a file over `max_bytes` is not read past the limit: both are problems.
pub(super) fn read_file(path: &Path, max_bytes: usize) -> Result<(Verdict, bool), FileProblem> {
    let file = match crate::fsutil::open_read(path) {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(FileProblem::Refused(
                "a symbolic link: not followed (the import reads only what is inside the \
                 legacy directory)"
                    .into(),
            ));
        }
        // One file the import may not read, or that is not a file, is reported as a link is;
        // the legacy directory's other files go on.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            return Err(FileProblem::Refused(
                "not a regular file (a FIFO, a device or a directory): not read".into(),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(FileProblem::Refused(format!("cannot be read: {e}")));
        }
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    file.take(max_bytes as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max_bytes {
        return Err(FileProblem::Refused(format!(
            "over the {max_bytes}-byte limit of a verdict file: not imported (--max-line \
             raises it)"
        )));
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        FileProblem::Invalid(format!(
            "invalid UTF-8 (at byte {} of the file)",
            e.valid_up_to()
        ))
    })?;
    Verdict::parse_history(text).map_err(|e| FileProblem::Invalid(e.message))
}

/// A verdict made from an audit row's fields, the inverse of `appendVerdictToKbOutcomes`:
/// `findings.{block,warn,info}` become `metrics.findings_*`, and `elapsed_secs` (which was
/// `audit_duration_ms / 1000`) becomes `audit_duration_ms` again, rounded to the microsecond so
/// that the division's floating-point error goes away (14.237 → 14237, not 14236.999999999998).
/// An `elapsed_secs` of 0 gives 0: the row cannot tell an absent duration from a zero one.
/// The verdict's raw JSON is this synthesized document, in the auditor's key order.
pub(super) fn verdict_from_row(row: &Map<String, Value>) -> Result<Verdict, FieldError> {
    let findings = row.get("findings").and_then(Value::as_object);
    let mut text = String::with_capacity(400);
    let mut doc = ObjectWriter::new(&mut text);
    for key in ["pr_number", "head_sha", "overall", "one_liner"] {
        copy(&mut doc, key, row.get(key));
    }
    doc.with("metrics", |out| {
        let mut metrics = ObjectWriter::new(out);
        copy(
            &mut metrics,
            "findings_block",
            findings.and_then(|f| f.get("block")),
        );
        copy(
            &mut metrics,
            "findings_warn",
            findings.and_then(|f| f.get("warn")),
        );
        copy(
            &mut metrics,
            "findings_info",
            findings.and_then(|f| f.get("info")),
        );
        if let Some(secs) = row.get("elapsed_secs").and_then(Value::as_f64) {
            metrics.num("audit_duration_ms", duration_ms_from_secs(secs));
        }
        metrics.finish();
    });
    copy(&mut doc, "audited_at", row.get("audited_at"));
    // The KB row of a named repository's verdict ends with its repo (the default namespace's
    // rows have none, and their verdicts stay exactly as before).
    if let Some(Value::String(repo)) = row.get("repo")
        && crate::model::Repo::parse("repo", repo).is_ok()
    {
        doc.str("repo", repo);
    }
    doc.finish();
    Verdict::parse(&text)
}

/// `elapsed_secs × 1000`, rounded to the microsecond.
pub(super) fn duration_ms_from_secs(secs: f64) -> f64 {
    (secs * 1_000_000.0).round() / 1000.0
}

/// Writes `key: value` when the value is present (JSON `undefined` stays out).
fn copy(doc: &mut ObjectWriter<'_>, key: &'static str, value: Option<&Value>) {
    match value {
        None => {}
        Some(Value::String(s)) => {
            doc.str(key, s);
        }
        Some(other) => {
            doc.with(key, |out| out.push_str(&other.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JsField;

    fn row(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn an_audit_row_claims_an_identity_only_with_fields_of_the_right_types() {
        let identity = |line: &str| {
            let (_, head) = crate::import::lines::parse_row(line.as_bytes()).unwrap();
            head_identity(&head)
        };
        let id = |pr| Some(Identity::of(pr, "h", "a"));
        let with = |pr: &str| format!(r#"{{"pr_number":{pr},"head_sha":"h","audited_at":"a"}}"#);
        assert_eq!(identity(&with("4")), id(4));
        assert_eq!(identity(&with("4.0")), id(4));
        assert_eq!(identity(&with("1e2")), id(100));
        assert_eq!(
            identity(&with("9007199254740991.0")),
            id(9_007_199_254_740_991)
        );
        assert_eq!(identity(&with("9007199254740992.0")), None);
        assert_eq!(identity(&with("18446744073709551615")), id(u64::MAX));
        assert_eq!(identity(&with("-0.0")), id(0));
        for pr in ["4.5", "-1", "-1.0", "\"4\"", "null", "18446744073709551616"] {
            assert_eq!(identity(&with(pr)), None, "{pr}");
        }
        // The last of repeated keys counts, as in JSON.parse; an escaped key is the same key.
        let line = r#"{"pr_number":1,"head_sha":"h","audited_at":"a","pr\u005fnumber":2}"#;
        assert_eq!(identity(line), id(2));
        assert_eq!(identity(r#"{"head_sha":"h","audited_at":"a"}"#), None);
        assert_eq!(
            identity(r#"{"pr_number":1,"head_sha":7,"audited_at":"a"}"#),
            None
        );
    }

    #[test]
    fn identities_differ_when_any_field_or_the_split_between_them_does() {
        let base = Identity::of(1, "ab", "c");
        assert_eq!(base, Identity::of(1, "ab", "c"));
        for other in [
            Identity::of(2, "ab", "c"),
            Identity::of(1, "AB", "c"),
            Identity::of(1, "a", "bc"),
            Identity::of(1, "abc", ""),
            Identity::of(1, "ab", "d"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn a_row_gives_back_the_verdict_that_wrote_it() {
        // Line 2 of fixtures/legacy/data/_kb/outcomes.jsonl.
        let line = r#"{"kind":"audit","sig_hash":"pr1-e9e0d501","audited_at":"2026-04-01T09:15:13.330Z","pr_number":1,"head_sha":"e9e0d501ff8789cc67d571bd52f177119c19e495","overall":"block","one_liner":"PR claims 'live-verified' with no evidence in diff","ok_events":0,"total_events":1,"findings":{"block":2,"warn":2,"info":1},"elapsed_secs":14.237}"#;
        let v = verdict_from_row(&row(line)).unwrap();
        assert_eq!(v.audit_duration_ms, JsField::Value(14237.0));
        assert_eq!(v.findings_info, JsField::Value(1));
        assert_eq!(v.kb_outcome_line(), line);
        assert_eq!(
            v.raw_json,
            r#"{"pr_number":1,"head_sha":"e9e0d501ff8789cc67d571bd52f177119c19e495","overall":"block","one_liner":"PR claims 'live-verified' with no evidence in diff","metrics":{"findings_block":2,"findings_warn":2,"findings_info":1,"audit_duration_ms":14237},"audited_at":"2026-04-01T09:15:13.330Z"}"#
        );
        assert_eq!(
            head_identity(&crate::import::lines::parse_row(line.as_bytes()).unwrap().1),
            Some(Identity::of(
                1,
                "e9e0d501ff8789cc67d571bd52f177119c19e495",
                "2026-04-01T09:15:13.330Z"
            ))
        );
    }

    #[test]
    fn absent_and_null_info_survive_and_bad_rows_name_the_field() {
        let base = r#""kind":"audit","audited_at":"t","pr_number":6,"head_sha":"7fe47bab00","overall":"approve","one_liner":"x""#;
        let v = verdict_from_row(&row(&format!(
            r#"{{{base},"findings":{{"block":0,"warn":1}},"elapsed_secs":0}}"#
        )))
        .unwrap();
        assert_eq!(v.findings_info, JsField::Absent);
        assert_eq!(v.audit_duration_ms, JsField::Value(0.0));
        let v = verdict_from_row(&row(&format!(
            r#"{{{base},"findings":{{"block":0,"warn":1,"info":null}}}}"#
        )))
        .unwrap();
        assert_eq!(v.findings_info, JsField::Null);
        assert_eq!(v.audit_duration_ms, JsField::Absent);
        let err = verdict_from_row(&row(&format!(r#"{{{base}}}"#))).unwrap_err();
        assert_eq!(err.message, "metrics.findings_block is required");
    }

    #[test]
    fn durations_come_back_exactly_for_whole_milliseconds() {
        for ms in (0..200_000u64)
            .step_by(7)
            .chain([1, 137, 2030, 14237, 83237])
        {
            let secs = ms as f64 / 1000.0;
            assert_eq!(duration_ms_from_secs(secs), ms as f64, "{ms}");
        }
        assert_eq!(duration_ms_from_secs(1.2345), 1234.5);
    }
}
