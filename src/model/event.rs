//! The observer's event (contract §4): the rules that turn any `POST /event` body into an
//! ObservedOp, exactly as the Bun observer did, and the op's `ops.jsonl` line.
//!
//! Lenient as the observer was: an unknown `source` becomes `scenario`, a non-boolean `success`
//! falls through to `ok`, a copied field that is not a string (a number as `timestamp`, an
//! object as `error`) is copied as the JSON value it is, and `duration_ms` is whatever
//! `Number()` makes of it (`null` in the line when that is NaN). Refused, with the field named:
//! a body that is not a JSON object, and a string `source`, `sig_hash` or `event_kind` too long
//! to be an index key.

use serde_json::{Map, Value};

use super::repo::Repo;
use super::{
    FieldError, JsField, MAX_KEY_BYTES, check_key_len, js_field, parse_kept, parse_object,
};
use crate::jsjson::{self, JsValue, ObjectWriter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Mcp,
    Scenario,
    Auditor,
    Bot,
}

impl Source {
    pub const ALL: [Source; 4] = [Source::Mcp, Source::Scenario, Source::Auditor, Source::Bot];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mcp => "mcp",
            Source::Scenario => "scenario",
            Source::Auditor => "auditor",
            Source::Bot => "bot",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|src| src.as_str() == s)
    }
}

/// A field the observer copied from the body: a string, or any other JSON value, held as
/// `JSON.stringify` writes it (a client's number `timestamp`, its object `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text<S> {
    Str(S),
    Json(S),
}

impl Text<String> {
    pub fn as_deref(&self) -> Text<&str> {
        match self {
            Text::Str(s) => Text::Str(s),
            Text::Json(j) => Text::Json(j),
        }
    }

    /// The string, when the field is one.
    pub fn as_str(&self) -> Option<&str> {
        self.as_deref().str()
    }
}

impl<'a> Text<&'a str> {
    pub fn to_owned(self) -> Text<String> {
        match self {
            Text::Str(s) => Text::Str(s.to_owned()),
            Text::Json(j) => Text::Json(j.to_owned()),
        }
    }

    /// The string, or the JSON text of the value.
    fn text(self) -> &'a str {
        match self {
            Text::Str(s) | Text::Json(s) => s,
        }
    }

    /// The string, when the field is one.
    pub fn str(self) -> Option<&'a str> {
        match self {
            Text::Str(s) => Some(s),
            Text::Json(_) => None,
        }
    }

    fn write(self, op: &mut ObjectWriter<'_>, key: &'static str) {
        match self {
            Text::Str(s) => {
                op.str(key, s);
            }
            Text::Json(j) => {
                op.with(key, |out| out.push_str(j));
            }
        }
    }
}

/// The ObservedOp of the legacy observer, field for field.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedOp {
    pub timestamp: Text<String>,
    pub endpoint: Text<String>,
    pub input_summary: Text<String>,
    pub success: bool,
    /// `Number(...)`: may be non-finite (written as `null`, as `JSON.stringify` does).
    pub duration_ms: f64,
    pub output_summary: Text<String>,
    pub error: JsField<Text<String>>,
    pub source: Source,
    pub staffer_id: JsField<Text<String>>,
    /// Indexed when a string; another value is only copied into the line.
    pub sig_hash: JsField<Text<String>>,
    /// Indexed when a string; another value is only copied into the line.
    pub event_kind: JsField<Text<String>>,
    /// The body's repository (not an observer field: written last, and only when named, so
    /// that the default namespace's lines are the observer's own).
    pub repo: Repo,
}

/// An accepted `POST /event` body: the op, the body as it arrived, and the body's `source`
/// when the observer rule rewrote it (its JSON text when it was not a string).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedEvent {
    pub op: ObservedOp,
    pub body: String,
    pub source_original: Option<String>,
}

impl ObservedEvent {
    /// Applies the observer's rules to a body received at `now` (an ISO 8601 timestamp).
    pub fn parse(text: &str, now: &str) -> Result<ObservedEvent, FieldError> {
        let (text, body) = parse_kept(text)?;
        let (op, source_original) = observe(&text, &body, now)?;
        Ok(ObservedEvent {
            op,
            body: text.into_owned(),
            source_original,
        })
    }
}

fn observe(
    text: &str,
    body: &Map<String, Value>,
    now: &str,
) -> Result<(ObservedOp, Option<String>), FieldError> {
    // A string source is bounded like a key; another JSON value is kept as its JSON text
    // whatever its length, as the legacy observer took it (the body's limit bounds it, and the
    // body is stored whole anyway).
    let (source, source_original) = match js_field(body, "source") {
        JsField::Value(Value::String(s)) => {
            check_key_len("source", s)?;
            match Source::parse(s) {
                Some(src) => (src, None),
                None => (Source::Scenario, Some(s.clone())),
            }
        }
        JsField::Value(other) => (Source::Scenario, Some(other.to_string())),
        JsField::Absent | JsField::Null => (Source::Scenario, None),
    };
    let success = match (body.get("success"), body.get("ok")) {
        (Some(Value::Bool(b)), _) | (_, Some(Value::Bool(b))) => *b,
        _ => false,
    };

    // A copied field that is not a string goes into the line as the value it is, in
    // JavaScript's order of its keys: the body is read again, in order, only for such a field.
    let mut ordered: Option<JsValue> = None;
    let mut copied = |key: &str| -> JsField<Text<String>> {
        match js_field(body, key) {
            JsField::Absent => JsField::Absent,
            JsField::Null => JsField::Null,
            JsField::Value(Value::String(s)) => JsField::Value(Text::Str(s.clone())),
            JsField::Value(other) => {
                let ordered = ordered
                    .get_or_insert_with(|| serde_json::from_str(text).unwrap_or(JsValue::Null));
                let mut json = String::new();
                match ordered.get(key) {
                    Some(value) => value.write(&mut json),
                    // Not reachable: the same text was read into `body`.
                    None => json.push_str(&other.to_string()),
                }
                JsField::Value(Text::Json(json))
            }
        }
    };
    let timestamp = copied("timestamp");
    let endpoint = copied("endpoint");
    let input_summary = copied("input_summary");
    let output_summary = copied("output_summary");
    let one_liner = copied("one_liner");
    let error = copied("error");
    let staffer_id = copied("staffer_id");
    let sig_hash = copied("sig_hash");
    let event_kind = copied("event_kind");
    for (key, field) in [("sig_hash", &sig_hash), ("event_kind", &event_kind)] {
        if let Some(s) = field.value().and_then(Text::as_str) {
            check_key_len(key, s)?;
        }
    }

    let repo = Repo::of_legacy_record(body);
    // `Number(body.duration_ms ?? body.audit_duration_ms ?? 0)`: NaN (a string `Number()`
    // cannot read, an object) is written `null`, as `JSON.stringify` writes it.
    let duration_ms = ["duration_ms", "audit_duration_ms"]
        .into_iter()
        .find_map(|key| {
            js_field(body, key)
                .value()
                .map(|v| jsjson::value_to_number(v))
        });

    let endpoint = match endpoint.value() {
        Some(e) => e.clone(),
        None => Text::Str(
            match source {
                Source::Auditor => "auditor:verdict",
                Source::Bot => "bot:cycle",
                Source::Mcp | Source::Scenario => "scenario:fill",
            }
            .to_owned(),
        ),
    };
    let input_summary = match input_summary.value() {
        Some(s) => s.clone(),
        None => {
            let part = |key: &str| match js_field(body, key) {
                JsField::Value(v) => jsjson::to_js_string(v),
                JsField::Absent | JsField::Null => "?".to_owned(),
            };
            Text::Str(format!(
                "{} {}×{} in {}, {}",
                part("event_kind"),
                part("role"),
                part("count"),
                part("city"),
                part("state")
            ))
        }
    };
    let output_summary = match (output_summary.value(), one_liner.value()) {
        (Some(s), _) | (None, Some(s)) => s.clone(),
        (None, None) if success => Text::Str("ok".to_owned()),
        (None, None) => error
            .value()
            .cloned()
            .unwrap_or_else(|| Text::Str("failed".to_owned())),
    };
    let op = ObservedOp {
        timestamp: timestamp
            .value()
            .cloned()
            .unwrap_or_else(|| Text::Str(now.to_owned())),
        endpoint,
        input_summary,
        success,
        duration_ms: duration_ms.unwrap_or(0.0),
        output_summary,
        error,
        source,
        staffer_id,
        sig_hash,
        event_kind,
        repo,
    };
    Ok((op, source_original))
}

/// An op's line fields, borrowed: what [`ObservedOp::to_line`] writes, and what a verdict's
/// observer event is written from by the export without building the op
/// (`AuditFields::write_op_line`): one writer for both.
#[derive(Debug, Clone, Copy)]
pub struct OpLine<'a> {
    pub timestamp: Text<&'a str>,
    pub endpoint: Text<&'a str>,
    pub input_summary: Text<&'a str>,
    pub success: bool,
    pub duration_ms: f64,
    pub output_summary: Text<&'a str>,
    pub error: JsField<Text<&'a str>>,
    pub source: Source,
    pub staffer_id: JsField<Text<&'a str>>,
    pub sig_hash: JsField<Text<&'a str>>,
    pub event_kind: JsField<Text<&'a str>>,
    /// `None` for the default namespace.
    pub repo: Option<&'a str>,
}

impl OpLine<'_> {
    /// The op these fields are, owned, in `repo` (the name `repo` holds, validated).
    pub fn to_op(&self, repo: Repo) -> ObservedOp {
        ObservedOp {
            timestamp: self.timestamp.to_owned(),
            endpoint: self.endpoint.to_owned(),
            input_summary: self.input_summary.to_owned(),
            success: self.success,
            duration_ms: self.duration_ms,
            output_summary: self.output_summary.to_owned(),
            error: self.error.map(Text::to_owned),
            source: self.source,
            staffer_id: self.staffer_id.map(Text::to_owned),
            sig_hash: self.sig_hash.map(Text::to_owned),
            event_kind: self.event_kind.map(Text::to_owned),
            repo,
        }
    }

    /// The line, appended to `out`.
    pub fn write(&self, out: &mut String) {
        let mut op = ObjectWriter::new(out);
        self.timestamp.write(&mut op, "timestamp");
        self.endpoint.write(&mut op, "endpoint");
        self.input_summary.write(&mut op, "input_summary");
        op.bool("success", self.success)
            .num("duration_ms", self.duration_ms);
        self.output_summary.write(&mut op, "output_summary");
        optional(&mut op, "error", self.error);
        op.str("source", self.source.as_str());
        optional(&mut op, "staffer_id", self.staffer_id);
        optional(&mut op, "sig_hash", self.sig_hash);
        optional(&mut op, "event_kind", self.event_kind);
        if let Some(repo) = self.repo {
            op.str("repo", repo);
        }
        op.finish();
    }
}

impl ObservedOp {
    /// The op's `ops.jsonl` line without the newline: `JSON.stringify(op)` in the observer's field
    /// order, undefined fields left out, null fields written as `null`.
    pub fn to_line(&self) -> String {
        let mut out = String::with_capacity(256 + self.output_summary.as_deref().text().len());
        OpLine {
            timestamp: self.timestamp.as_deref(),
            endpoint: self.endpoint.as_deref(),
            input_summary: self.input_summary.as_deref(),
            success: self.success,
            duration_ms: self.duration_ms,
            output_summary: self.output_summary.as_deref(),
            error: self.error.as_ref().map(Text::as_deref),
            source: self.source,
            staffer_id: self.staffer_id.as_ref().map(Text::as_deref),
            sig_hash: self.sig_hash.as_ref().map(Text::as_deref),
            event_kind: self.event_kind.as_ref().map(Text::as_deref),
            repo: self.repo.name(),
        }
        .write(&mut out);
        out
    }

    /// Reads an op back from an `ops.jsonl` line (a legacy file being imported). The line's
    /// fields are taken as they are: it is history, not a request.
    pub fn from_line(text: &str) -> Result<ObservedOp, FieldError> {
        ObservedOp::from_line_warning(text, |_| {})
    }

    /// [`ObservedOp::from_line`], saying to `warn` what of the line is not used: a `repo` that
    /// is not a valid name (the line goes to the default namespace).
    pub fn from_line_warning(
        text: &str,
        warn: impl FnOnce(String),
    ) -> Result<ObservedOp, FieldError> {
        let obj = parse_object(text)?;
        // A field that is not a string is what `POST /event` copies as its value (and what the
        // legacy observer copied): read as that value. The line itself is kept as written.
        let string = |key: &str| -> Result<JsField<Text<String>>, FieldError> {
            Ok(match js_field(&obj, key) {
                JsField::Value(Value::String(s)) => JsField::Value(Text::Str(s.clone())),
                JsField::Value(other) => JsField::Value(Text::Json(other.to_string())),
                JsField::Null => JsField::Null,
                JsField::Absent => JsField::Absent,
            })
        };
        let text = |key: &str| -> Result<Text<String>, FieldError> {
            Ok(string(key)?
                .value()
                .cloned()
                .unwrap_or_else(|| Text::Str(String::new())))
        };
        let sig_hash = string("sig_hash")?;
        let event_kind = string("event_kind")?;
        for (key, value) in [("sig_hash", &sig_hash), ("event_kind", &event_kind)] {
            if let Some(s) = value.value().and_then(Text::as_str) {
                check_key_len(key, s)?;
            }
        }
        Ok(ObservedOp {
            timestamp: string("timestamp")?
                .value()
                .cloned()
                .ok_or_else(|| FieldError::missing("timestamp"))?,
            endpoint: text("endpoint")?,
            input_summary: text("input_summary")?,
            success: line_success(&obj),
            duration_ms: line_duration_ms(&obj),
            output_summary: match obj.get("output_summary") {
                Some(Value::String(s)) => Text::Str(s.clone()),
                Some(other) => Text::Json(other.to_string()),
                None => Text::Str(String::new()),
            },
            error: string("error")?,
            source: line_source(&obj),
            staffer_id: string("staffer_id")?,
            sig_hash,
            event_kind,
            repo: Repo::of_line_warning(&obj, |why| {
                warn(format!("line kept in the default namespace: {why}"));
            }),
        })
    }

    /// An op for a legacy line [`ObservedOp::from_line`] refuses (a field of the wrong type, an
    /// index key too long), from the line's object: the line is history and is kept; only its
    /// indexed fields (source, success, sig_hash, event_kind, repo) matter, and a field that
    /// cannot be indexed is left out.
    pub fn from_line_lenient(obj: &Map<String, Value>) -> ObservedOp {
        let key = |name: &str| match obj.get(name) {
            Some(Value::String(s)) if s.len() <= MAX_KEY_BYTES => {
                JsField::Value(Text::Str(s.clone()))
            }
            _ => JsField::Absent,
        };
        let text = |name: &str| {
            Text::Str(
                obj.get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            )
        };
        ObservedOp {
            timestamp: text("timestamp"),
            endpoint: text("endpoint"),
            input_summary: text("input_summary"),
            success: line_success(obj),
            duration_ms: line_duration_ms(obj),
            output_summary: text("output_summary"),
            error: JsField::Absent,
            source: line_source(obj),
            staffer_id: JsField::Absent,
            sig_hash: key("sig_hash"),
            event_kind: key("event_kind"),
            repo: Repo::of_line(obj),
        }
    }
}

/// A line's `source`, read back leniently: anything but a known source is `scenario`.
fn line_source(obj: &Map<String, Value>) -> Source {
    obj.get("source")
        .and_then(Value::as_str)
        .and_then(Source::parse)
        .unwrap_or(Source::Scenario)
}

/// A line's `success`: anything but a boolean is `false`.
fn line_success(obj: &Map<String, Value>) -> bool {
    obj.get("success").and_then(Value::as_bool).unwrap_or(false)
}

/// A line's `duration_ms`: anything but a number (`null` for a non-finite one) is NaN, which
/// is written back as `null`.
fn line_duration_ms(obj: &Map<String, Value>) -> f64 {
    obj.get("duration_ms")
        .and_then(Value::as_f64)
        .unwrap_or(f64::NAN)
}

fn optional(op: &mut ObjectWriter<'_>, key: &'static str, field: JsField<Text<&str>>) {
    match field {
        JsField::Absent => {}
        JsField::Null => {
            op.null(key);
        }
        JsField::Value(text) => text.write(op, key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-24T12:00:00.000Z";

    fn err(body: &str) -> (String, String) {
        let e = ObservedEvent::parse(body, NOW).unwrap_err();
        (e.field, e.message)
    }

    #[test]
    fn auditor_payload_matches_the_fixture_line() {
        // Line 2 of fixtures/legacy/data/_observer/ops.jsonl, with the fixture's receipt time.
        let body = r#"{"source":"auditor","event_kind":"audit","ok":false,"sig_hash":"pr1-e9e0d501","pr_number":1,"head_sha":"e9e0d501ff8789cc67d571bd52f177119c19e495","overall":"block","one_liner":"PR claims 'live-verified' with no evidence in diff","findings_block":2,"findings_warn":2,"audit_duration_ms":14237,"audited_at":"2026-04-01T09:15:13.330Z"}"#;
        let got = ObservedEvent::parse(body, "2026-04-01T09:15:13.330Z").unwrap();
        assert_eq!(
            got.op.to_line(),
            r#"{"timestamp":"2026-04-01T09:15:13.330Z","endpoint":"auditor:verdict","input_summary":"audit ?×? in ?, ?","success":false,"duration_ms":14237,"output_summary":"PR claims 'live-verified' with no evidence in diff","source":"auditor","sig_hash":"pr1-e9e0d501","event_kind":"audit"}"#
        );
        assert_eq!(got.body, body);
        assert_eq!(got.source_original, None);
    }

    /// The observer's rules as one table: each body, then the `ops.jsonl` line it makes when
    /// received at `NOW` (and the original source kept beside it, if any), or its refusal as
    /// `! field: message`. A change shows as a diff of this table; after a deliberate one,
    /// `UPDATE_EXPECT=1 cargo test -p lakehouse-kb --lib observer_rules` rewrites it.
    #[test]
    fn observer_rules() {
        let cases = [
            // source: kept when allowed, else scenario with the original kept
            r#"{"source":"mcp"}"#,
            r#"{"source":"scenario"}"#,
            r#"{"source":"auditor"}"#,
            r#"{"source":"bot"}"#,
            r#"{"source":"github"}"#,
            r#"{"source":5}"#,
            r#"{"source":"AUDITOR"}"#,
            r#"{}"#,
            // success: success if boolean, else ok === true, else false
            r#"{"success":true,"ok":false}"#,
            r#"{"success":false,"ok":true}"#,
            r#"{"success":"yes","ok":true}"#,
            r#"{"success":1,"ok":"true"}"#,
            r#"{"ok":false}"#,
            // endpoint: given, else by source
            r#"{"source":"x"}"#,
            r#"{"endpoint":"mine","source":"bot"}"#,
            r#"{"endpoint":null,"source":"bot"}"#,
            // input_summary: given, else the template, stringified as JavaScript does
            r#"{"input_summary":"given"}"#,
            r#"{"event_kind":"fill","role":"welder","count":2,"city":"Gary","state":"IN"}"#,
            r#"{"count":2.50,"role":null,"city":[1,[2]],"state":{"a":1}}"#,
            r#"{"count":true,"role":1e21}"#,
            r#"{"count":1.50,"role":["a",null],"city":{"x":1},"state":true}"#,
            // duration_ms: duration_ms, else audit_duration_ms, else 0; strings read by Number()
            r#"{"duration_ms":5,"audit_duration_ms":7}"#,
            r#"{"duration_ms":5,"audit_duration_ms":"n/a"}"#,
            r#"{"duration_ms":null,"audit_duration_ms":7}"#,
            r#"{"audit_duration_ms":" 1.5e3 "}"#,
            r#"{"duration_ms":" 250 "}"#,
            r#"{"duration_ms":""}"#,
            r#"{"duration_ms":"0x10"}"#,
            r#"{"duration_ms":"Infinity"}"#,
            r#"{"duration_ms":"fast"}"#,
            r#"{"audit_duration_ms":true}"#,
            r#"{"audit_duration_ms":[1]}"#,
            // output_summary: given, else one_liner, else ok / the error / failed
            r#"{"output_summary":"o","one_liner":"l"}"#,
            r#"{"one_liner":"l","success":true}"#,
            r#"{"one_liner":"l","error":"e"}"#,
            r#"{"success":true,"error":"e"}"#,
            r#"{"success":false,"error":"e"}"#,
            r#"{"error":null}"#,
            // timestamp: the body's, else the receipt time
            r#"{"timestamp":"then"}"#,
            r#"{"timestamp":null}"#,
            // copied fields: null kept, absent left out, anything else not copied
            r#"{"staffer_id":"s","sig_hash":null,"event_kind":"k","error":"e","success":true}"#,
            r#"{"error":"e","staffer_id":"s-1","sig_hash":"abc123","event_kind":"fill","extra":{"kept":true}}"#,
            // a copied field that is not a string: the value itself, as JSON.stringify writes
            // the value JSON.parse read (keys in JavaScript's order, the last of a repeated key)
            r#"{"timestamp":1712345678000,"ok":true}"#,
            r#"{"error":{"message":"timeout","code":504,"2":"b","1":"a"}}"#,
            r#"{"error":{"z":1,"a":2,"z":3},"staffer_id":4,"event_kind":3,"sig_hash":false}"#,
            r#"{"endpoint":["a",{"b":null}],"input_summary":1.50,"output_summary":1e21}"#,
            r#"{"one_liner":{"x":"é "},"timestamp":-0}"#,
            r#"{"error":[],"success":false}"#,
            // duration_ms: anything Number() reads, NaN written null
            r#"{"duration_ms":true}"#,
            r#"{"duration_ms":"n/a","audit_duration_ms":7}"#,
            r#"{"duration_ms":[]}"#,
            r#"{"duration_ms":{}}"#,
            r#"{"duration_ms":[5]}"#,
        ];
        let mut table = String::new();
        for body in cases {
            let outcome = match ObservedEvent::parse(body, NOW) {
                Ok(event) => {
                    assert_eq!(event.body, body, "the whole body is kept");
                    match event.source_original {
                        Some(original) => {
                            format!("{}\n  source_original: {original}", event.op.to_line())
                        }
                        None => event.op.to_line(),
                    }
                }
                Err(e) => format!("! {}: {}", e.field, e.message),
            };
            table.push_str(&format!("{body}\n  {outcome}\n"));
        }
        expect_test::expect![[r#"
            {"source":"mcp"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"mcp"}
            {"source":"scenario"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"source":"auditor"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"auditor:verdict","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"auditor"}
            {"source":"bot"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"bot:cycle","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"bot"}
            {"source":"github"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
              source_original: github
            {"source":5}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
              source_original: 5
            {"source":"AUDITOR"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
              source_original: AUDITOR
            {}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"success":true,"ok":false}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":true,"duration_ms":0,"output_summary":"ok","source":"scenario"}
            {"success":false,"ok":true}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"success":"yes","ok":true}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":true,"duration_ms":0,"output_summary":"ok","source":"scenario"}
            {"success":1,"ok":"true"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"ok":false}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"source":"x"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
              source_original: x
            {"endpoint":"mine","source":"bot"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"mine","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"bot"}
            {"endpoint":null,"source":"bot"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"bot:cycle","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"bot"}
            {"input_summary":"given"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"given","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"event_kind":"fill","role":"welder","count":2,"city":"Gary","state":"IN"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"fill welder×2 in Gary, IN","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario","event_kind":"fill"}
            {"count":2.50,"role":null,"city":[1,[2]],"state":{"a":1}}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×2.5 in 1,2, [object Object]","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"count":true,"role":1e21}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? 1e+21×true in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"count":1.50,"role":["a",null],"city":{"x":1},"state":true}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? a,×1.5 in [object Object], true","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"duration_ms":5,"audit_duration_ms":7}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":5,"output_summary":"failed","source":"scenario"}
            {"duration_ms":5,"audit_duration_ms":"n/a"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":5,"output_summary":"failed","source":"scenario"}
            {"duration_ms":null,"audit_duration_ms":7}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":7,"output_summary":"failed","source":"scenario"}
            {"audit_duration_ms":" 1.5e3 "}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":1500,"output_summary":"failed","source":"scenario"}
            {"duration_ms":" 250 "}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":250,"output_summary":"failed","source":"scenario"}
            {"duration_ms":""}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"duration_ms":"0x10"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":16,"output_summary":"failed","source":"scenario"}
            {"duration_ms":"Infinity"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":null,"output_summary":"failed","source":"scenario"}
            {"duration_ms":"fast"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":null,"output_summary":"failed","source":"scenario"}
            {"audit_duration_ms":true}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":1,"output_summary":"failed","source":"scenario"}
            {"audit_duration_ms":[1]}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":1,"output_summary":"failed","source":"scenario"}
            {"output_summary":"o","one_liner":"l"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"o","source":"scenario"}
            {"one_liner":"l","success":true}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":true,"duration_ms":0,"output_summary":"l","source":"scenario"}
            {"one_liner":"l","error":"e"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"l","error":"e","source":"scenario"}
            {"success":true,"error":"e"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":true,"duration_ms":0,"output_summary":"ok","error":"e","source":"scenario"}
            {"success":false,"error":"e"}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"e","error":"e","source":"scenario"}
            {"error":null}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","error":null,"source":"scenario"}
            {"timestamp":"then"}
              {"timestamp":"then","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"timestamp":null}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"staffer_id":"s","sig_hash":null,"event_kind":"k","error":"e","success":true}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"k ?×? in ?, ?","success":true,"duration_ms":0,"output_summary":"ok","error":"e","source":"scenario","staffer_id":"s","sig_hash":null,"event_kind":"k"}
            {"error":"e","staffer_id":"s-1","sig_hash":"abc123","event_kind":"fill","extra":{"kept":true}}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"fill ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"e","error":"e","source":"scenario","staffer_id":"s-1","sig_hash":"abc123","event_kind":"fill"}
            {"timestamp":1712345678000,"ok":true}
              {"timestamp":1712345678000,"endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":true,"duration_ms":0,"output_summary":"ok","source":"scenario"}
            {"error":{"message":"timeout","code":504,"2":"b","1":"a"}}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":{"1":"a","2":"b","message":"timeout","code":504},"error":{"1":"a","2":"b","message":"timeout","code":504},"source":"scenario"}
            {"error":{"z":1,"a":2,"z":3},"staffer_id":4,"event_kind":3,"sig_hash":false}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"3 ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":{"z":3,"a":2},"error":{"z":3,"a":2},"source":"scenario","staffer_id":4,"sig_hash":false,"event_kind":3}
            {"endpoint":["a",{"b":null}],"input_summary":1.50,"output_summary":1e21}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":["a",{"b":null}],"input_summary":1.5,"success":false,"duration_ms":0,"output_summary":1e+21,"source":"scenario"}
            {"one_liner":{"x":"é "},"timestamp":-0}
              {"timestamp":0,"endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":{"x":"é "},"source":"scenario"}
            {"error":[],"success":false}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":[],"error":[],"source":"scenario"}
            {"duration_ms":true}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":1,"output_summary":"failed","source":"scenario"}
            {"duration_ms":"n/a","audit_duration_ms":7}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":null,"output_summary":"failed","source":"scenario"}
            {"duration_ms":[]}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":0,"output_summary":"failed","source":"scenario"}
            {"duration_ms":{}}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":null,"output_summary":"failed","source":"scenario"}
            {"duration_ms":[5]}
              {"timestamp":"2026-11-24T12:00:00.000Z","endpoint":"scenario:fill","input_summary":"? ?×? in ?, ?","success":false,"duration_ms":5,"output_summary":"failed","source":"scenario"}
        "#]].assert_eq(&table);
    }

    #[test]
    fn only_a_body_that_is_not_an_object_and_an_index_key_too_long_are_refused() {
        assert_eq!(err("[]").1, "body must be a JSON object, got an array");
        assert_eq!(err("12").1, "body must be a JSON object, got a number");
        for field in ["sig_hash", "event_kind", "source"] {
            let body = format!(r#"{{"{field}":"{}"}}"#, "x".repeat(600));
            assert_eq!(err(&body).0, field);
        }
        // What is not a string is not an index key, however long.
        let long = format!(r#"{{"sig_hash":["{}"]}}"#, "x".repeat(600));
        assert!(ObservedEvent::parse(&long, NOW).is_ok());
    }

    #[test]
    fn a_legacy_line_from_line_refuses_keeps_its_indexed_fields() {
        let line = format!(
            r#"{{"timestamp":7,"endpoint":"e","success":true,"duration_ms":"5","output_summary":3,"error":"x","source":"bot","staffer_id":"s","sig_hash":"{}","event_kind":"k","repo":"r"}}"#,
            "h".repeat(MAX_KEY_BYTES + 1)
        );
        assert!(ObservedOp::from_line(&line).is_err());
        let obj = parse_object(&line).unwrap();
        let op = ObservedOp::from_line_lenient(&obj);
        assert_eq!(
            op.to_line(),
            r#"{"timestamp":"","endpoint":"e","input_summary":"","success":true,"duration_ms":null,"output_summary":"","source":"bot","event_kind":"k","repo":"r"}"#
        );
    }

    #[test]
    fn from_line_reads_back_what_to_line_wrote() {
        for body in [
            r#"{"source":"bot","success":true,"error":"e","staffer_id":"s","sig_hash":"h","event_kind":"k","duration_ms":3}"#,
            r#"{"sig_hash":null,"error":null}"#,
            // What is not a string is copied as its value, and read back as that value.
            r#"{"timestamp":5,"error":{"a":[1,"x"]},"staffer_id":4,"event_kind":3,"sig_hash":true}"#,
        ] {
            let op = ObservedEvent::parse(body, NOW).unwrap().op;
            assert_eq!(ObservedOp::from_line(&op.to_line()).unwrap(), op);
        }
    }
}
