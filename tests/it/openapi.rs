//! `docs/openapi.yaml` lists exactly the routes the router serves (from `http::routes()`, the
//! table the router is built from), and `docs/API.md` has a section with an example for each,
//! so the documents cannot drift from the code.

use std::collections::BTreeSet;

/// `(method, path)` of every operation under `paths:`: paths are the keys indented by two
/// spaces, methods the keys indented by four below them.
fn documented() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml")).unwrap();
    let mut in_paths = false;
    let mut path = String::new();
    let mut operations = BTreeSet::new();
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(key) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
            path = format!("/{key}");
        } else if let Some(key) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
            && ["get", "post", "put", "patch", "delete"].contains(&key)
        {
            operations.insert((key.to_owned(), path.clone()));
        }
    }
    operations
}

#[test]
fn openapi_lists_exactly_the_router_s_routes() {
    let served: BTreeSet<(String, String)> = lakehouse_kb::http::routes()
        .iter()
        .map(|r| (r.method.as_str().to_ascii_lowercase(), r.path.to_owned()))
        .collect();
    let documented = documented();
    assert!(
        documented.len() >= 10,
        "parsed too little of openapi.yaml: {documented:?}"
    );
    let missing: Vec<_> = served.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "undocumented routes: {missing:?}; documented but not served: {stale:?}"
    );
}

/// Every route has a `### \`METHOD /path\`` section in API.md (a query string may follow the
/// path) holding at least one `curl` example.
#[test]
fn api_md_has_a_section_with_an_example_for_every_route() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/API.md")).unwrap();
    let mut problems = Vec::new();
    for route in lakehouse_kb::http::routes() {
        let heading = format!("### `{} {}", route.method, route.path);
        let start = text.match_indices(&heading).map(|(i, _)| i).find(|&i| {
            let next = text[i + heading.len()..].chars().next();
            matches!(next, Some('`' | '?'))
        });
        let Some(start) = start else {
            problems.push(format!("no section {heading}`"));
            continue;
        };
        let body = &text[start + heading.len()..];
        let end = [body.find("\n## "), body.find("\n### ")]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(body.len());
        if !body[..end].contains("```console\n$ curl") {
            problems.push(format!("no curl example under {heading}`"));
        }
    }
    assert!(problems.is_empty(), "docs/API.md: {problems:#?}");
}
