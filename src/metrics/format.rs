//! The two exposition formats `GET /metrics` speaks: OpenMetrics 1.0.0, when the scraper asks for
//! it in `Accept` (Prometheus does, first), and otherwise Prometheus' classic text format 0.0.4,
//! which `promtool check metrics` and the classic parser read.
//!
//! prometheus-client writes OpenMetrics only; the classic body is derived from it. The two
//! differ in a few places only, all in metadata lines: a counter family is named without
//! `_total` in OpenMetrics (`# TYPE x counter`, samples `x_total`) and with it in the classic
//! format (`# TYPE x_total counter`), `# UNIT` and `# EOF` exist only in OpenMetrics, and so do
//! the types `info`, `stateset`, `gaugehistogram` and `unknown`. Sample lines are the same.

/// A negotiated exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Classic,
}

impl Format {
    /// The `Content-Type` the body is sent with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// OpenMetrics when `Accept` names `application/openmetrics-text` (version 1.0.0 or no
    /// version) with a quality at least that of the best range matching `text/plain`; the
    /// classic format otherwise, also for a missing or unreadable header. A wildcard alone
    /// never selects OpenMetrics: a client that did not name it may not parse it.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Classic;
        };
        let mut openmetrics = 0.0_f32;
        let mut classic = 0.0_f32;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut quality = 1.0_f32;
            let mut version = None;
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    // An unreadable quality makes the range unacceptable rather than preferred.
                    "q" => quality = value.parse().unwrap_or(0.0),
                    "version" => version = Some(value.to_owned()),
                    _ => {}
                }
            }
            match media_type.as_str() {
                "application/openmetrics-text"
                    if version.as_deref().is_none_or(|v| v == "1.0.0") =>
                {
                    openmetrics = openmetrics.max(quality);
                }
                "text/plain" | "text/*" | "*/*" => classic = classic.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= classic {
            Format::OpenMetrics
        } else {
            Format::Classic
        }
    }
}

/// The classic text format (0.0.4) of an OpenMetrics body written by prometheus-client.
///
/// Relies on two properties of that writer: every family's `# HELP` line comes right before its
/// `# TYPE` line, and help texts hold no backslash or line break (ours are constants; a test
/// checks them), so they need no re-escaping.
pub fn openmetrics_to_classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + 256);
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            pending_help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (name, kind) = match kind {
                "counter" => (format!("{family}_total"), "counter"),
                "info" => (format!("{family}_info"), "gauge"),
                "stateset" => (family.to_owned(), "gauge"),
                "gaugehistogram" => (family.to_owned(), "histogram"),
                "unknown" => (family.to_owned(), "untyped"),
                other => (family.to_owned(), other),
            };
            if let Some((help_family, help)) = pending_help.take()
                && help_family == family
            {
                out.push_str(&format!("# HELP {name} {help}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Format, openmetrics_to_classic};

    #[test]
    fn negotiation() {
        let cases = [
            (None, Format::Classic),
            (Some(""), Format::Classic),
            (Some("*/*"), Format::Classic),
            (Some("text/plain"), Format::Classic),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            (
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                Format::OpenMetrics,
            ),
            // What Prometheus 2.x sends.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                     version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                Format::OpenMetrics,
            ),
            (
                Some("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"),
                Format::Classic,
            ),
            (Some("application/openmetrics-text;q=0"), Format::Classic),
            (Some("application/openmetrics-text;q=abc"), Format::Classic),
            (
                Some("application/openmetrics-text;version=0.0.1"),
                Format::Classic,
            ),
            (Some("APPLICATION/OpenMetrics-Text"), Format::OpenMetrics),
        ];
        for (accept, expected) in cases {
            assert_eq!(Format::negotiate(accept), expected, "{accept:?}");
        }
    }

    #[test]
    fn classic_renames_counters_and_drops_openmetrics_only_lines() {
        let openmetrics = "\
# HELP app_requests Requests.
# TYPE app_requests counter
app_requests_total{route=\"/x\"} 3
# HELP app_latency_seconds Latency.
# TYPE app_latency_seconds histogram
# UNIT app_latency_seconds seconds
app_latency_seconds_sum 0.5
app_latency_seconds_count 1
app_latency_seconds_bucket{le=\"+Inf\"} 1
# HELP app_build Build.
# TYPE app_build info
app_build_info{version=\"1\"} 1
# HELP app_depth Depth.
# TYPE app_depth gauge
app_depth 0
# EOF
";
        let expected = "\
# HELP app_requests_total Requests.
# TYPE app_requests_total counter
app_requests_total{route=\"/x\"} 3
# HELP app_latency_seconds Latency.
# TYPE app_latency_seconds histogram
app_latency_seconds_sum 0.5
app_latency_seconds_count 1
app_latency_seconds_bucket{le=\"+Inf\"} 1
# HELP app_build_info Build.
# TYPE app_build_info gauge
app_build_info{version=\"1\"} 1
# HELP app_depth Depth.
# TYPE app_depth gauge
app_depth 0
";
        assert_eq!(openmetrics_to_classic(openmetrics), expected);
    }
}
