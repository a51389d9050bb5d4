//! `GET /metrics` in the two formats Prometheus reads. At 669becd the server sent an
//! OpenMetrics body labelled `text/plain; version=0.0.4`: the classic parser saw
//! `# TYPE lakehouse_kb_http_requests counter` and then samples named `..._total`, which it
//! typed `unknown`, and promtool failed the names (`_kb_` reads as kilobytes). Now the body
//! follows `Accept`; `.ci/check-metrics` runs promtool and a strict OpenMetrics parser on both.

use crate::support::{Http, InProcessServer};

/// promlint's abbreviated units: a name holding `_{unit}_` or ending in `_{unit}` fails.
const ABBREVIATED_UNITS: [&str; 14] = [
    "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d",
];

fn get_metrics(server: &Http, accept: Option<&str>) -> (String, String, String) {
    let mut request = server.client().get(server.url("/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let header = |name: &str| {
        response.headers()[name]
            .to_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, vary) = (header("content-type"), header("vary"));
    (content_type, vary, response.text().unwrap())
}

/// What Prometheus' classic parser and promlint require: every sample belongs to a family
/// with a `# TYPE` line (else it is typed unknown), counters end in `_total`, no name holds an
/// abbreviated unit, and there is no OpenMetrics-only line.
fn assert_classic(body: &str) {
    let mut families: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} lacks _total");
            }
            for unit in ABBREVIATED_UNITS {
                assert!(
                    !name.contains(&format!("_{unit}_")) && !name.ends_with(&format!("_{unit}")),
                    "{name} holds the abbreviated unit {unit}"
                );
            }
            families.push((name.to_owned(), kind.to_owned()));
            continue;
        }
        assert!(
            !line.starts_with("# EOF") && !line.starts_with("# UNIT"),
            "OpenMetrics-only line in the classic body: {line}"
        );
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap();
        let typed = families.iter().any(|(family, kind)| {
            name == family
                || (kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| name.strip_suffix(suffix) == Some(family)))
        });
        assert!(typed, "sample {name} has no # TYPE line of its own: {body}");
    }
}

#[test]
fn metrics_follow_accept_in_both_prometheus_formats() {
    let server = InProcessServer::start();
    assert_eq!(
        server.post_json("/event", r#"{"source":"bot"}"#).status,
        200
    );

    for accept in [None, Some("text/plain"), Some("*/*")] {
        let (content_type, vary, body) = get_metrics(&server, accept);
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert_eq!(vary, "accept");
        assert_classic(&body);
        for needle in [
            "# TYPE lakehousekb_http_requests_total counter\n",
            "lakehousekb_http_requests_total{method=\"POST\",route=\"/event\",status=\"200\"} 1\n",
        ] {
            assert!(body.contains(needle), "{needle} in {body}");
        }
    }

    // What Prometheus sends: OpenMetrics first.
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                      version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (content_type, _, body) = get_metrics(&server, Some(prometheus));
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("# TYPE lakehousekb_http_requests counter\n"));
    assert!(body.contains("# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total "));

    let (_, _, body) = get_metrics(&server, None);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        body.contains(&format!(
            "lakehousekb_build_info{{version=\"{version}\",revision=\""
        )),
        "{body}"
    );
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_virtual_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
    ] {
        let value: f64 = body
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name}in {body}"))
            .parse()
            .unwrap();
        // A fresh server may not have used a whole clock tick of CPU yet.
        let least = if name.starts_with("process_cpu") {
            0.0
        } else {
            1.0
        };
        assert!(value >= least, "{name}{value}");
    }
}
