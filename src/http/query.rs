//! Query-string parameters shared by the read routes, parsed by hand so that every bad value
//! gets a 400 naming the parameter and the value, and the blocking-read helper.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::model::Repo;
use crate::store::{Store, StoreError};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1_000;

/// Every parameter any read route takes, as given; each route reads the ones it knows.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
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
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(params) = Query::<Params>::from_request_parts(parts, state).await?;
        Ok(params)
    }
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

/// `limit`: 1 to 1,000, default 50.
pub fn limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "limit",
            format!("limit must be an integer from 1 to {MAX_LIMIT}, got {raw:?}"),
        )),
    }
}

/// A seq cursor (`after_seq`, `before_seq`): a non-negative integer.
pub fn cursor(name: &str, raw: Option<&str>) -> Result<Option<u64>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    raw.parse::<u64>().map(Some).map_err(|_| {
        ApiError::bad_request(
            name,
            format!("{name} must be a non-negative integer, got {raw:?}"),
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

/// When a read started now must stop: the request timeout from now. The store checks it as
/// it goes, so a read whose answer the timeout abandoned does not go on working.
pub fn deadline(state: &AppState) -> std::time::Instant {
    std::time::Instant::now() + state.config.request_timeout
}

/// Runs a store read on the blocking pool: redb calls never run on the async workers.
pub async fn read<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    Ok(tokio::task::spawn_blocking(move || f(&store)).await??)
}
