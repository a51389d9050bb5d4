//! Claims and claim hashes: how a verdict's claims are named so that two PRs making the same
//! claim find each other (Phase F).
//!
//! A claim hash is the first 16 hex digits of SHA-256 of the claim text after trimming,
//! lowercasing and collapsing runs of whitespace to one space (JavaScript's whitespace: a client
//! computes it as `text.trim().toLowerCase().replace(/\s+/g, " ")`, then SHA-256).

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::FieldError;
use crate::jsjson::is_js_space;

/// Most claims one verdict or one query may carry.
pub const MAX_CLAIMS: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClaimHash(pub u64);

impl ClaimHash {
    /// The hash of a claim's text; `None` when the text is only whitespace. The rule lives
    /// here; schema version 2's migration keeps a frozen copy of it for its backfill, and the
    /// two must agree for that index to stay valid (tested).
    pub fn of_text(text: &str) -> Option<ClaimHash> {
        // Lowercase the whole text first: the final-sigma rule (JS and Rust agree) needs context.
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower.split(is_js_space).filter(|w| !w.is_empty()).collect();
        if words.is_empty() {
            return None;
        }
        let digest = Sha256::digest(words.join(" ").as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Some(ClaimHash(u64::from_be_bytes(first)))
    }

    /// Parses 16 hex digits (either case).
    pub fn parse(hex: &str) -> Option<ClaimHash> {
        super::parse_hex16(hex).map(ClaimHash)
    }
}

impl fmt::Display for ClaimHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One claim: its hash, and its text when the claim was given as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub hash: ClaimHash,
    pub text: Option<String>,
}

/// The claims of a verdict JSON object: `claims` entries that are strings or objects with a
/// string `text` (other shapes are the auditor's business and are ignored), plus the explicit
/// `claim_hashes`, which must each be 16 hex digits. Deduplicated by hash, first text kept; at
/// most [`MAX_CLAIMS`] distinct ones, refused as soon as one more is found (the cost of a
/// refused body stays that of reading it).
pub fn claims_of(verdict: &Map<String, Value>) -> Result<Vec<Claim>, FieldError> {
    collect(verdict, Beyond::Refuse).map(|(claims, _)| claims)
}

/// [`claims_of`] for history (a legacy verdict file, a stored verdict), which is not refused
/// for its number of claims: the first [`MAX_CLAIMS`] distinct ones (texts before explicit
/// hashes), and whether it holds more (those stay in its JSON, unindexed). Nothing after the
/// first one more is read, so the cost is bounded as for a request.
pub fn claims_of_history(verdict: &Map<String, Value>) -> Result<(Vec<Claim>, bool), FieldError> {
    collect(verdict, Beyond::Stop)
}

/// What the first distinct claim after the first [`MAX_CLAIMS`] does.
#[derive(Clone, Copy, PartialEq)]
enum Beyond {
    /// Refuses the verdict.
    Refuse,
    /// Ends the reading: the verdict has more claims than are indexed.
    Stop,
}

fn collect(verdict: &Map<String, Value>, beyond: Beyond) -> Result<(Vec<Claim>, bool), FieldError> {
    let mut claims: Vec<Claim> = Vec::new();
    let mut seen = HashSet::new();
    // Ok(false): one more than the first MAX_CLAIMS, and the reading stops.
    let mut push = |claim: Claim| -> Result<bool, FieldError> {
        if claims.len() < MAX_CLAIMS {
            if seen.insert(claim.hash) {
                claims.push(claim);
            }
            return Ok(true);
        }
        // Only a claim not seen yet is one more; the set stops growing here.
        if seen.contains(&claim.hash) {
            return Ok(true);
        }
        match beyond {
            Beyond::Refuse => Err(FieldError::new(
                "claims",
                format!("at most {MAX_CLAIMS} distinct claims are allowed, got more"),
            )),
            Beyond::Stop => Ok(false),
        }
    };
    let more = 'read: {
        if let Some(Value::Array(entries)) = verdict.get("claims") {
            for entry in entries {
                let text = match entry {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) => o.get("text").and_then(Value::as_str),
                    _ => None,
                };
                if let Some(hash) = text.and_then(ClaimHash::of_text) {
                    let claim = Claim {
                        hash,
                        text: text.map(str::to_owned),
                    };
                    if !push(claim)? {
                        break 'read true;
                    }
                }
            }
        }
        match verdict.get("claim_hashes") {
            None | Some(Value::Null) => {}
            Some(Value::Array(hashes)) => {
                for (i, h) in hashes.iter().enumerate() {
                    let hash = h.as_str().and_then(ClaimHash::parse).ok_or_else(|| {
                        FieldError::expected(&format!("claim_hashes[{i}]"), "16 hex digits", h)
                    })?;
                    if !push(Claim { hash, text: None })? {
                        break 'read true;
                    }
                }
            }
            Some(other) => return Err(FieldError::expected("claim_hashes", "an array", other)),
        }
        false
    };
    Ok((claims, more))
}

/// The claims of a stored verdict's JSON, read leniently: a verdict stored under older rules
/// that no longer parses gives what can be read, never an error; one with more claims than
/// [`MAX_CLAIMS`] gives the first ones, as its import indexed them. Stored claims are history.
pub fn stored_claims(raw_json: &str) -> Vec<Claim> {
    let Ok(ClaimFields(obj)) = serde_json::from_str::<ClaimFields>(raw_json) else {
        return Vec::new();
    };
    let mut obj = obj;
    let claims = claims_of_history(&obj).unwrap_or_else(|_| {
        // Only explicit hashes can be refused (a bad one): keep the texts.
        obj.remove("claim_hashes");
        claims_of_history(&obj).unwrap_or_default()
    });
    claims.0
}

/// A verdict's `claims` and `claim_hashes`, the rest of its JSON skipped unparsed; a key given
/// twice keeps its last value, as the write path's parse into a map does.
struct ClaimFields(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for ClaimFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = ClaimFields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a verdict object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ClaimFields, A::Error> {
                let mut obj = Map::new();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "claims" || key == "claim_hashes" {
                        obj.insert(key.into_owned(), map.next_value::<Value>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(ClaimFields(obj))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_keeps_its_last_value_as_the_write_path_does() {
        let raw = r#"{"claims": ["first"], "pr_number": 1, "claims": ["second", "third"]}"#;
        let parsed: Map<String, Value> = serde_json::from_str(raw).unwrap();
        assert_eq!(stored_claims(raw), claims_of(&parsed).unwrap());
        assert_eq!(stored_claims(raw).len(), 2);
        assert!(stored_claims("[1, 2]").is_empty());
        assert!(stored_claims("{\"claims\": [\"x\"]").is_empty());
    }

    fn obj(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    /// The claims index schema 2 backfilled holds the frozen step's hashes: today's rule must
    /// give the same ones.
    #[test]
    fn the_hash_is_the_one_schema_2_backfilled() {
        for text in [
            "Adds a cache",
            "  adds   A\tcache\n",
            "ΟΔΟΣ",
            "a\u{2028}b\u{feff}c\u{85}d",
            "",
            " \u{3000} ",
        ] {
            assert_eq!(
                ClaimHash::of_text(text).map(|h| h.0),
                lakehouse_kb_migrations::claim_hash_v2(text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn hash_is_documented_normalisation() {
        // printf '%s' 'deletes dead sidecar files' | sha256sum | cut -c1-16
        let h = ClaimHash::of_text("  Deletes\tdead\n sidecar   FILES ").unwrap();
        assert_eq!(h.to_string(), "0988571ca2fc2cbe");
        assert_eq!(ClaimHash::parse("0988571CA2FC2CBE"), Some(h));
        assert_eq!(ClaimHash::parse("0988571ca2fc2cb"), None);
        assert_eq!(ClaimHash::parse("0988571ca2fc2cbg"), None);
    }

    #[test]
    fn claims_from_strings_objects_and_hashes() {
        let v = obj(
            r#"{"claims":["A",{"text":"a "},{"text":"b","source":"commit"},3,{"x":1}],
                "claim_hashes":["0988571ca2fc2cbe"]}"#,
        );
        let claims = claims_of(&v).unwrap();
        let texts: Vec<_> = claims.iter().map(|c| c.text.as_deref()).collect();
        assert_eq!(texts, vec![Some("A"), Some("b"), None]);
    }

    #[test]
    fn bad_claim_hashes_name_the_entry() {
        let err = claims_of(&obj(r#"{"claim_hashes":["0988571ca2fc2cbe", 7]}"#)).unwrap_err();
        assert_eq!(err.field, "claim_hashes[1]");
        assert_eq!(err.message, "claim_hashes[1] must be 16 hex digits, got 7");
        let err = claims_of(&obj(r#"{"claim_hashes":"abc"}"#)).unwrap_err();
        assert_eq!(err.message, "claim_hashes must be an array, got \"abc\"");
    }

    /// A verdict object whose `claims` are `texts`.
    fn body(texts: Vec<String>) -> Map<String, Value> {
        let mut v = Map::new();
        v.insert(
            "claims".into(),
            texts.into_iter().map(Value::String).collect(),
        );
        v
    }

    /// `n` different claim texts.
    fn distinct(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("claim {i}")).collect()
    }

    #[test]
    fn at_most_max_claims_distinct_ones_and_duplicates_do_not_count() {
        assert_eq!(
            claims_of(&body(distinct(MAX_CLAIMS))).unwrap().len(),
            MAX_CLAIMS
        );
        let mut repeated = distinct(MAX_CLAIMS);
        repeated.extend(distinct(MAX_CLAIMS));
        assert_eq!(claims_of(&body(repeated)).unwrap().len(), MAX_CLAIMS);
        let err = claims_of(&body(distinct(MAX_CLAIMS + 1))).unwrap_err();
        assert_eq!(err.field, "claims");
        assert_eq!(
            err.message,
            "at most 1000 distinct claims are allowed, got more"
        );
        // One explicit hash past the limit is refused too.
        let mut v = body(distinct(MAX_CLAIMS));
        v.insert("claim_hashes".into(), Value::from(vec!["0988571ca2fc2cbe"]));
        assert_eq!(claims_of(&v).unwrap_err().field, "claims");
    }

    /// History keeps the first distinct claims and says whether there were more; repeats of
    /// kept ones are not more.
    #[test]
    fn history_indexes_the_first_max_claims() {
        let mut repeated = distinct(MAX_CLAIMS);
        repeated.extend(distinct(MAX_CLAIMS));
        let cases: [(Vec<String>, bool); 4] = [
            (distinct(3), false),
            (distinct(MAX_CLAIMS), false),
            (repeated, false),
            (distinct(MAX_CLAIMS + 5), true),
        ];
        for (texts, more) in cases {
            let v = body(texts.clone());
            let (claims, got_more) = claims_of_history(&v).unwrap();
            let expected: Vec<_> = texts
                .iter()
                .take(MAX_CLAIMS)
                .map(|t| Some(t.as_str()))
                .collect();
            let kept: Vec<_> = claims.iter().map(|c| c.text.as_deref()).collect();
            assert_eq!(kept, expected[..kept.len().min(expected.len())]);
            assert_eq!(
                claims.len(),
                texts.len().min(MAX_CLAIMS),
                "{} texts",
                texts.len()
            );
            assert_eq!(got_more, more, "{} texts", texts.len());
            // What a stored verdict's claims read back as: the same.
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(stored_claims(&json), claims);
        }
    }

    /// A large list is refused in time linear in its length (it was quadratic): 200,000
    /// distinct claims took seconds before.
    #[test]
    fn a_huge_claims_list_is_refused_quickly() {
        let mut v = Map::new();
        v.insert(
            "claims".into(),
            (0..200_000)
                .map(|i| Value::String(format!("{i:x}")))
                .collect(),
        );
        let start = std::time::Instant::now();
        assert!(claims_of(&v).is_err());
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        // History stops reading at the first claim past the limit, as a stored verdict's
        // claims are read again by every check and neighbour answer.
        let start = std::time::Instant::now();
        for _ in 0..20 {
            let (claims, more) = claims_of_history(&v).unwrap();
            assert_eq!((claims.len(), more), (MAX_CLAIMS, true));
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}
