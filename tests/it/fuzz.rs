//! Property tests with arbitrary input (the always-on half of the fuzzing; `fuzz/` holds the
//! coverage-guided targets for long runs): the body parsers of `/event`, `/verdicts`,
//! `/outcomes`, NDJSON batches and the codec never panic, and the real router never answers a
//! 5xx to client input, whatever the bytes, content type or route.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use lakehouse_kb::http::ingest::{KeyRoute, RecordKind, parse_batch};
use lakehouse_kb::http::{AppState, ServerConfig, app};
use lakehouse_kb::intake::{Parse, event_record, outcome_record, verdict_record};
use lakehouse_kb::metrics::Metrics;
use lakehouse_kb::store::{Store, StoreOptions};
use lakehouse_kb::writer::{Writer, WriterConfig};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

const PARSERS: [(&str, Parse); 3] = [
    ("/event", event_record),
    ("/verdicts", verdict_record),
    ("/outcomes", outcome_record),
];

/// Keys the parsers look at, so that generated objects reach their type checks.
const KEYS: [&str; 24] = [
    "source",
    "success",
    "ok",
    "timestamp",
    "endpoint",
    "input_summary",
    "output_summary",
    "one_liner",
    "error",
    "staffer_id",
    "sig_hash",
    "event_kind",
    "duration_ms",
    "audit_duration_ms",
    "role",
    "count",
    "city",
    "state",
    "pr_number",
    "head_sha",
    "overall",
    "audited_at",
    "metrics",
    "claims",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-f0-9]{0,70}".prop_map(Value::String),
        ".{0,20}".prop_map(Value::String),
        prop_oneof![
            Just("approve"),
            Just("block"),
            Just("auditor"),
            Just(" 12 "),
            Just("0x1g")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), inner, 0..5).prop_map(
                |m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
        ]
    })
}

fn json_object() -> impl Strategy<Value = String> {
    prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), json_value(), 0..12).prop_map(
        |m| {
            let object: Map<String, Value> =
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            Value::Object(object).to_string()
        },
    )
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        json_object().prop_map(String::into_bytes),
        (json_object(), any::<usize>(), any::<u8>()).prop_map(|(s, at, b)| {
            let mut bytes = s.into_bytes();
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            bytes
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn parsers_accept_or_name_the_fault(bytes in body()) {
        for (_, parse) in PARSERS {
            if let Err(e) = parse(&bytes, 1_700_000_000_000) {
                prop_assert!(!e.message.is_empty() && !e.field.is_empty());
            }
        }
    }

    #[test]
    fn batches_split_and_parse_without_panicking(lines in prop::collection::vec(body(), 0..12)) {
        let body = lines.join(&b'\n');
        let n_lines = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .count();
        for (_, parse) in PARSERS {
            let kind = RecordKind {
                parse,
                into_record: |record| record,
                route: KeyRoute::Event,
            };
            match parse_batch(&body, 10_000, &kind, 0, Some("k")) {
                Ok((puts, rejected)) => {
                    prop_assert_eq!(puts.len() + rejected.len(), n_lines);
                    prop_assert!(rejected.iter().all(|r| r.line >= 1 && !r.error.is_empty()));
                }
                Err(_) => prop_assert_eq!(n_lines, 0),
            }
        }
    }
}

#[test]
fn the_router_never_answers_5xx_to_client_input() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(&dir.path().join("kb.redb"), StoreOptions::default()).unwrap());
    let metrics = Arc::new(Metrics::new());
    let (writer, _thread) = Writer::spawn(store.clone(), WriterConfig::default(), metrics.clone());
    let state = AppState::new(lakehouse_kb::http::Shared {
        store,
        writer,
        metrics,
        config: Arc::new(ServerConfig::default()),
        export: None,
        feed: Default::default(),
    });

    let router = app(state);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let content_types = [
        "application/json",
        "application/x-ndjson",
        "text/plain",
        "application/json; charset=utf-8",
        "",
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 600,
        ..ProptestConfig::default()
    });
    let routes = prop::sample::select(vec![
        "/event",
        "/verdicts",
        "/outcomes",
        "/neighbors",
        "/backup",
        "/prs/7/findings/check",
        "/findings/dismissals",
    ]);
    runner
        .run(
            &(routes, prop::sample::select(content_types.to_vec()), body()),
            |(route, content_type, bytes)| {
                let mut request = Request::post(route);
                if !content_type.is_empty() {
                    request = request.header("content-type", content_type);
                }
                let request = request.body(Body::from(bytes)).unwrap();
                let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
                let status = response.status();
                prop_assert!(status.as_u16() < 500, "{route} {content_type:?}: {status}");
                if status.is_client_error() {
                    let bytes = runtime
                        .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
                        .unwrap();
                    let answer: Value = serde_json::from_slice(&bytes).unwrap();
                    prop_assert!(
                        answer["error"].as_str().is_some_and(|e| !e.is_empty()),
                        "{answer}"
                    );
                }
                Ok(())
            },
        )
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, ..ProptestConfig::default() })]

    /// The import's light row parser (which skips building a tree of scenario rows) accepts
    /// exactly the lines the full JSON parser accepts as objects, and reads the same `sig_hash`
    /// and `kind`; an ops line never panics the op reader.
    #[test]
    fn import_line_parsers_agree(bytes in body()) {
        use lakehouse_kb::import::lines::{parse_object_line, parse_row};
        let light = parse_row(&bytes);
        let full = parse_object_line(&bytes);
        prop_assert_eq!(light.is_ok(), full.is_ok(), "{:?} vs {:?}", light.as_ref().err(), full.as_ref().err());
        if let (Ok((_, head)), Ok((_, object))) = (&light, &full) {
            prop_assert_eq!(head.sig_hash.as_deref(), object.get("sig_hash").and_then(Value::as_str));
            prop_assert_eq!(head.kind.as_deref(), object.get("kind").and_then(Value::as_str));
        }
        if let Ok((text, _)) = full {
            let _ = lakehouse_kb::model::ObservedOp::from_line(text);
        }
    }
}
