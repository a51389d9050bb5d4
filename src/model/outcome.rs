//! One row of `outcomes.jsonl` (contract §3): kept as the exact bytes it arrived as, with the
//! `sig_hash` and `kind` read out of it for indexing. Its shape is the scenario runner's to
//! decide, not ours.

use serde_json::Value;

use super::repo::Repo;
use super::{FieldError, MAX_KEY_BYTES, check_key_len, describe, parse_kept};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRow {
    /// The row's bytes, one line without its newline.
    pub line: String,
    /// The row's string `sig_hash`; empty when it has none (legacy rows only).
    pub sig_hash: String,
    /// The row's string `kind` (`audit` for the auditor's rows); empty when it has none.
    pub kind: String,
    /// The row's `repo`: the default namespace when it names none.
    pub repo: Repo,
}

/// Whether a row without a string `sig_hash` is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigHashRule {
    /// `POST /outcomes`: a non-empty string is required.
    Required,
    /// A legacy file read whole (the comparison tools): a row without one is still a row,
    /// kept under an empty sig_hash. The import keeps more, see [`OutcomeRow::from_legacy`].
    Optional,
}

impl OutcomeRow {
    /// Reads one row. Surrounding whitespace (a trailing newline) is not part of the row; a line
    /// break inside it is refused, since the row must stay one line of the JSONL file.
    pub fn parse(bytes: &[u8], rule: SigHashRule) -> Result<OutcomeRow, FieldError> {
        let text = super::utf8(bytes)?.trim_matches(|c: char| c.is_ascii_whitespace());

        if text.contains(['\n', '\r']) {
            return Err(FieldError::new(
                "body",
                "an outcome row must be a single line of JSON (it contains a line break)",
            ));
        }
        let (text, obj) = parse_kept(text)?;
        let sig_hash = match (obj.get("sig_hash"), rule) {
            (Some(Value::String(s)), _) if !s.is_empty() => s.clone(),
            (_, SigHashRule::Optional) => String::new(),
            (None | Some(Value::Null), SigHashRule::Required) => {
                return Err(FieldError::missing("sig_hash"));
            }
            (Some(other), SigHashRule::Required) => {
                return Err(FieldError::new(
                    "sig_hash",
                    format!(
                        "sig_hash must be a non-empty string, got {}",
                        describe(other)
                    ),
                ));
            }
        };
        check_key_len("sig_hash", &sig_hash)?;
        let kind = match obj.get("kind") {
            Some(Value::String(k)) => k.clone(),
            _ => String::new(),
        };
        // Rows are counted by kind (`/stats`): like any key, it is bounded.
        check_key_len("kind", &kind)?;
        // A `repo` that is not a valid name is the row's own field, as a legacy writer took it.
        let repo = Repo::of_legacy_record(&obj);
        Ok(OutcomeRow {
            line: text.into_owned(),
            sig_hash,
            kind,
            repo,
        })
    }

    /// A row of a legacy `outcomes.jsonl`, which is history: every row is kept. `line` is the
    /// row's exact text (surrounding whitespace included, so that export gives back the very
    /// same line); `sig_hash`, `kind` and `repo` are its fields when they are strings. A
    /// sig_hash or kind too long to be a key is left out (the row is then not indexed by it, or
    /// not counted by it) and said to `warn`; a repo that is not a valid name leaves the row
    /// in the default namespace, said to `warn` too.
    pub fn from_legacy(
        line: &str,
        sig_hash: Option<String>,
        kind: Option<String>,
        repo: Option<&str>,
        mut warn: impl FnMut(String),
    ) -> OutcomeRow {
        let mut key = |value: Option<String>, unkeyed: &str| {
            let value = value.unwrap_or_default();
            if value.len() <= MAX_KEY_BYTES {
                return value;
            }
            warn(format!(
                "row kept, but {unkeyed}: it has {} bytes, more than {MAX_KEY_BYTES}",
                value.len()
            ));
            String::new()
        };
        let sig_hash = key(sig_hash, "not indexed by sig_hash");
        let kind = key(kind, "not counted by kind");
        let repo = Repo::of_legacy_warning(repo, |why| {
            warn(format!("row kept in the default namespace: {why}"));
        });
        OutcomeRow {
            line: line.to_owned(),
            sig_hash,
            kind,
            repo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_row_is_kept_whole_and_loses_only_what_cannot_be_a_key() {
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let mut warnings = Vec::new();
        let row = OutcomeRow::from_legacy(
            " {\"x\":1} ",
            Some("s".into()),
            Some(long.clone()),
            Some("not\na repo"),
            |w| warnings.push(w),
        );
        assert_eq!(
            row,
            OutcomeRow {
                line: " {\"x\":1} ".into(),
                sig_hash: "s".into(),
                kind: String::new(),
                repo: Repo::default(),
            }
        );
        assert_eq!(
            warnings,
            [
                format!(
                    "row kept, but not counted by kind: it has {} bytes, more than {MAX_KEY_BYTES}",
                    MAX_KEY_BYTES + 1
                ),
                "row kept in the default namespace: repo must not contain control characters, \
                 got \"not\\na repo\""
                    .to_owned()
            ]
        );
        let row = OutcomeRow::from_legacy("{}", Some(long), None, Some("r"), |_| {});
        assert_eq!((row.sig_hash.as_str(), row.repo.name()), ("", Some("r")));
    }

    #[test]
    fn a_kind_longer_than_a_key_is_refused() {
        use crate::model::MAX_KEY_BYTES;
        let body = format!(
            r#"{{"sig_hash":"s","kind":"{}"}}"#,
            "k".repeat(MAX_KEY_BYTES + 1)
        );
        let err = OutcomeRow::parse(body.as_bytes(), SigHashRule::Required).unwrap_err();
        assert_eq!(err.field, "kind");
        let body = format!(
            r#"{{"sig_hash":"s","kind":"{}"}}"#,
            "k".repeat(MAX_KEY_BYTES)
        );
        assert!(OutcomeRow::parse(body.as_bytes(), SigHashRule::Required).is_ok());
    }

    #[test]
    fn keeps_bytes_exactly() {
        let line = r#"{"sig_hash":"6cd5d79c4f5d42c9", "elapsed_secs":15.80,"x":"\u00e9/é"}"#;
        let row =
            OutcomeRow::parse(format!("{line}\r\n").as_bytes(), SigHashRule::Required).unwrap();
        assert_eq!(row.line, line);
        assert_eq!(row.sig_hash, "6cd5d79c4f5d42c9");
        assert_eq!(row.kind, "");
        let audit = OutcomeRow::parse(
            br#"{"kind":"audit","sig_hash":"pr1-e9e0d501"}"#,
            SigHashRule::Required,
        );
        assert_eq!(audit.unwrap().kind, "audit");
    }

    #[test]
    fn sig_hash_rules() {
        let err = |body: &str| {
            OutcomeRow::parse(body.as_bytes(), SigHashRule::Required)
                .unwrap_err()
                .message
        };
        assert_eq!(err("{}"), "sig_hash is required");
        assert_eq!(
            err(r#"{"sig_hash":""}"#),
            r#"sig_hash must be a non-empty string, got """#
        );
        assert_eq!(
            err(r#"{"sig_hash":7}"#),
            "sig_hash must be a non-empty string, got 7"
        );
        let row = OutcomeRow::parse(br#"{"sig_hash":7}"#, SigHashRule::Optional).unwrap();
        assert_eq!(row.sig_hash, "");
    }

    #[test]
    fn malformed_rows() {
        let err = |body: &[u8]| {
            OutcomeRow::parse(body, SigHashRule::Optional)
                .unwrap_err()
                .message
        };
        assert!(err(b"{\"a\":1,\n\"sig_hash\":\"x\"}").contains("single line"));
        assert_eq!(
            err(b"{\"a\":\"\xff\"}"),
            "body is not valid UTF-8 (invalid byte at offset 6)"
        );
        assert_eq!(err(b"[1]"), "body must be a JSON object, got an array");
        assert!(err(b"{nope").starts_with("body is not valid JSON"));
    }
}
