//! Query-string parameters shared by the read routes, parsed by hand so that every bad value
//! gets a 400 naming the parameter and the value, and the blocking-read helper with its limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::limits::Deadline;
use super::observe;
use super::{ApiError, AppState};
use crate::model::Repo;
use crate::model::verdict::{MAX_SAFE_INTEGER, whole_number};
use crate::store::{ReadBudget, Store, StoreError};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1_000;

/// Every parameter any read route takes, as given; each route reads the ones it knows and
/// refuses any other ([`Params::only`]).
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// The names given, percent-decoded, in order.
    #[serde(skip)]
    names: Vec<String>,
    pub limit: Option<String>,
    pub after_seq: Option<String>,
    pub before_seq: Option<String>,
    pub exclude_sha: Option<String>,
    pub source: Option<String>,
    pub event_kind: Option<String>,
    pub sig_hash: Option<String>,
    pub repo: Option<String>,
    pub min_score: Option<String>,
    pub all_repos: Option<String>,
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub pr_number: Option<String>,
    pub dismissals: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        refuse_bad_utf8(query)?;
        let names = names_of(query);
        let Query(mut params) = Query::<Params>::from_request_parts(parts, state).await?;
        params.names = names;
        Ok(params)
    }
}

impl Params {
    /// Refuses a parameter `route` does not take: a misspelt one (`stauts`, `pr` for
    /// `pr_number`) would otherwise be ignored, and the answer would quietly cover more than
    /// was asked (every PR's dismissals, every status). 400 naming it. An empty name (`?&`) is
    /// no parameter.
    pub fn only(&self, known: &[&str], route: &str) -> Result<(), ApiError> {
        let given = self.names.iter().filter(|name| !name.is_empty());
        refuse_unknown(given, known, "query parameter", &format!("{route} takes"))
    }
}

/// [`Params::only`], and the UTF-8 check every `Params` gets, for a route that reads its query
/// string otherwise (`/feed`).
pub fn only_params(query: Option<&str>, known: &[&str], route: &str) -> Result<(), ApiError> {
    let query = query.unwrap_or("");
    refuse_bad_utf8(query)?;
    let names = names_of(query);
    Params {
        names,
        ..Params::default()
    }
    .only(known, route)
}

/// A route whose input is its body and path, which takes no query parameter: one given is a
/// 400 naming it, not dropped. Dropped, `POST /findings/dismissals?repo=R&pr_number=21` with
/// the scope left out of the body dismissed the finding repository-wide in the default
/// namespace (a review's), as the GET routes' unknown parameters would have quietly covered
/// more than was asked.
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(query) = parts.uri.query() else {
            return Ok(NoQuery);
        };
        refuse_bad_utf8(query)?;
        let Some(name) = names_of(query).into_iter().find(|name| !name.is_empty()) else {
            return Ok(NoQuery);
        };
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let named = crate::model::cut(&name, MAX_FIELD_ECHO_BYTES);
        Err(ApiError::bad_request(
            named,
            format!(
                "unknown query parameter {named:?}: {} {route} takes none (its input is its \
                 body)",
                parts.method
            ),
        ))
    }
}

/// The parameter names of a query string, percent-decoded, in order.
fn names_of(query: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(name, _)| name.into_owned())
        .collect()
}

/// A 400 naming the parameter whose name or value is not UTF-8 once percent-decoded, as a
/// path's is: the form decoding behind `Query` would read it as U+FFFD instead (`repo=%ff`
/// would be the repository "\u{fffd}").
fn refuse_bad_utf8(query: &str) -> Result<(), ApiError> {
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        // `+` (a space in a form) is ASCII either way: it cannot make text invalid.
        let decodes = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .is_ok()
        };
        if !decodes(name) || !decodes(value) {
            let shown = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            return Err(ApiError::bad_request(
                shown.as_ref(),
                format!("query parameter {shown:?} is not valid UTF-8 once percent-decoded"),
            ));
        }
    }
    Ok(())
}

/// The one path parameter of a route, as text; a bad percent-encoding is a JSON 400.
#[derive(Debug)]
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(value) = Path::<String>::from_request_parts(parts, state).await?;
        Ok(PathParam(value))
    }
}

/// An integer in a query value or a header: decimal digits only (no sign, no spaces), at most
/// 2^53 - 1, as every integer this API takes (what JavaScript's numbers hold exactly).
pub fn integer(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<u64>().ok().filter(|&n| n <= MAX_SAFE_INTEGER)
}

/// Longest part of an unknown name an error names.
const MAX_FIELD_ECHO_BYTES: usize = 64;

/// Refuses a request body holding a field that is not one of `known`: on a query or a
/// dismissal a misspelt field (`pr` for `pr_number`, `exlcude_pr`) would otherwise be ignored and
/// the request would quietly mean something wider than it says. 400 naming the field.
pub fn refuse_unknown_fields(
    body: &serde_json::Map<String, serde_json::Value>,
    known: &[&str],
    route: &str,
) -> Result<(), ApiError> {
    refuse_unknown(
        body.keys(),
        known,
        "field",
        &format!("the body of {route} may hold"),
    )
}

/// A 400 naming the first of `given` that is not one of `known`: "unknown {what} ...: {takes}
/// {known}".
fn refuse_unknown<'a>(
    mut given: impl Iterator<Item = &'a String>,
    known: &[&str],
    what: &str,
    takes: &str,
) -> Result<(), ApiError> {
    match given.find(|name| !known.contains(&name.as_str())) {
        None => Ok(()),
        Some(unknown) => {
            // Named back as given, but no longer than a field of the body could be: a client's
            // megabyte-long key is not echoed twice into the answer.
            let named = crate::model::cut(unknown, MAX_FIELD_ECHO_BYTES);
            Err(ApiError::bad_request(
                named,
                format!("unknown {what} {named:?}: {takes} {}", known.join(", ")),
            ))
        }
    }
}

/// An integer in a JSON body: a non-negative whole number (`3.0` too: JSON has one number
/// type), at most 2^53 - 1.
pub fn json_integer(value: &serde_json::Value) -> Option<u64> {
    value
        .as_number()
        .and_then(whole_number)
        .filter(|&n| n <= MAX_SAFE_INTEGER)
}

/// `limit`: 1 to 1,000, default 50.
pub fn limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match integer(raw) {
        Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => Ok(n as usize),
        _ => Err(ApiError::bad_request(
            "limit",
            format!("limit must be an integer from 1 to {MAX_LIMIT}, got {raw:?}"),
        )),
    }
}

/// A seq cursor (`after_seq`, `before_seq`): a non-negative integer, at most 2^53 - 1.
pub fn cursor(name: &str, raw: Option<&str>) -> Result<Option<u64>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    integer(raw).map(Some).ok_or_else(|| {
        ApiError::bad_request(
            name,
            format!(
                "{name} must be a non-negative integer (at most {MAX_SAFE_INTEGER}), got {raw:?}"
            ),
        )
    })
}

/// `repo`: a repository name; absent or empty is the default namespace.
pub fn repo(raw: Option<&str>) -> Result<Repo, ApiError> {
    Ok(Repo::parse("repo", raw.unwrap_or_default())?)
}

/// A boolean parameter: `true` or `false` (absent: `false`).
pub fn flag(name: &str, raw: Option<&str>) -> Result<bool, ApiError> {
    match raw {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            name,
            format!("{name} must be true or false, got {other:?}"),
        )),
    }
}

/// What a read request may spend: until its gate's deadline, and `--max-response` bytes.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    pub deadline: Instant,
    pub max_response: usize,
}

impl FromRequestParts<AppState> for ReadLimits {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let deadline = parts.extensions.get::<Deadline>().map_or_else(
            || Instant::now() + state.config.request_timeout,
            |deadline| deadline.0,
        );
        Ok(ReadLimits {
            deadline,
            max_response: state.config.max_response_bytes,
        })
    }
}

/// Runs a store read on the reads' threads, holding one of their running slots: redb calls
/// never run on the async workers.
pub async fn read<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    Ok(running(state, move || f(&store)).await??)
}

/// Runs `job` on one of the reads' threads, holding one of their running slots until it is
/// done (also when its caller has gone: the slot goes with the job).
async fn running<R: Send + 'static>(
    state: &AppState,
    job: impl FnOnce() -> R + Send + 'static,
) -> Result<R, ApiError> {
    let running = slot(state.read_slots()).await?;
    state
        .light_reads()
        .run(move || {
            let _running = running;
            job()
        })
        .await
}

/// Runs a store read on the reads' threads (redb calls never run on the async workers) within
/// `limits`: the read stops at the deadline, or as soon as this future is dropped (the request
/// timed out or its client went away), rather than run on with nobody to answer. Returns the
/// budget too, which says whether the answer was cut short for its bytes.
///
/// A read holds one of the server's running slots while it runs. One that goes heavy stops
/// ([`ReadBudget::wants_slot`]), gives its running slot back, waits here for a heavy slot, and
/// runs again from the start holding it, on the heavy reads' threads (`read_threads.rs`): so `f`
/// may run twice, and what the first run did (at most
/// [`LARGE_ANSWER_BYTES`](crate::store::LARGE_ANSWER_BYTES) of answer, or
/// [`HEAVY_READ_ROWS`](crate::store::HEAVY_READ_ROWS) rows) is done again. Reads waiting for a
/// heavy slot hold no thread and no running slot, so light reads pass them.
pub async fn read_within<T: Send + 'static>(
    state: &AppState,
    limits: ReadLimits,
    f: impl Fn(&Store, &mut ReadBudget) -> Result<T, StoreError> + Send + Sync + 'static,
) -> Result<(T, ReadBudget), ApiError> {
    read_within_from(state, limits, false, f).await
}

/// [`read_within`], starting in a heavy read's slot when `heavy` (a read known to go heavy,
/// which would otherwise do its first rows twice).
pub async fn read_within_from<T: Send + 'static>(
    state: &AppState,
    limits: ReadLimits,
    heavy: bool,
    f: impl Fn(&Store, &mut ReadBudget) -> Result<T, StoreError> + Send + Sync + 'static,
) -> Result<(T, ReadBudget), ApiError> {
    let f = Arc::new(f);
    let abandoned = RaiseOnDrop(Arc::new(AtomicBool::new(false)));
    let mut heavy = if heavy {
        Some(slot(state.answers().heavy_slots()).await?)
    } else {
        None
    };
    loop {
        let mut budget = ReadBudget::unlimited()
            .with_deadline(limits.deadline)
            .with_abandon_flag(abandoned.0.clone())
            .with_max_bytes(limits.max_response)
            .with_shared_bytes(state.answers().clone());
        let (store, f, span) = (state.store.clone(), f.clone(), tracing::Span::current());
        let run = move |mut budget: ReadBudget| {
            let started = Instant::now();
            let result = f(&store, &mut budget);
            if budget.wants_slot() {
                return None;
            }
            log_abandoned(&result, started, &span);
            Some(result.map(|answer| (answer, budget)))
        };
        let read = match heavy.take() {
            None => running(state, move || run(budget)).await?,
            Some(heavy) => {
                budget = budget.with_heavy_slot(heavy);
                state.heavy_reads().run(move || run(budget)).await?
            }
        };
        let Some(read) = read else {
            heavy = Some(slot(state.answers().heavy_slots()).await?);
            continue;
        };
        let (answer, budget) = read?;
        if let Some((held, bytes, max)) = budget.refused() {
            return Err(super::limits::answers_full(held, bytes, max));
        }
        return Ok((answer, budget));
    }
}

/// Runs a store read that stays light whatever it walks (it never moves to a heavy read's
/// slot) on the reads' threads, within `limits`' deadline: it stops at the deadline, or as soon
/// as this future is dropped. Its caller bounds how many run at once. For a neighbours query's
/// counting, which reads a block header per 128 postings: moved to the heavy reads' slots, it
/// queued there ahead of the searches whose postings it was counting for.
pub async fn read_light_within<T: Send + 'static>(
    state: &AppState,
    limits: ReadLimits,
    f: impl FnOnce(&Store, &mut ReadBudget) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let abandoned = RaiseOnDrop(Arc::new(AtomicBool::new(false)));
    let mut budget = ReadBudget::unlimited()
        .with_deadline(limits.deadline)
        .with_abandon_flag(abandoned.0.clone());
    let (store, span) = (state.store.clone(), tracing::Span::current());
    let read = move || {
        let started = Instant::now();
        let result = f(&store, &mut budget);
        log_abandoned(&result, started, &span);
        result
    };
    Ok(running(state, read).await??)
}

/// Logs a read that stopped at its deadline or when its request went away (sampled). Here, on
/// the read's thread, not by the handler: its request may be gone already.
fn log_abandoned<T>(result: &Result<T, StoreError>, started: Instant, span: &tracing::Span) {
    if let Err(StoreError::Abandoned { rows }) = result
        && let Some(suppressed) = observe::sample("read-abandoned")
    {
        let _span = span.enter();
        tracing::warn!(
            rows,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            suppressed,
            "a read stopped at its deadline or when its request went away"
        );
    }
}

/// One of `slots`, waited for within the request's deadline (the gate's timeout ends the
/// wait). The caller moves it into the blocking work it admits, so that work abandoned by its
/// request keeps its slot until it has stopped.
pub async fn slot(slots: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, ApiError> {
    slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Internal("a server's slots were closed".into()))
}

/// Raises its flag when dropped: when the future that awaits a read is dropped, so is this.
struct RaiseOnDrop(Arc<AtomicBool>);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
