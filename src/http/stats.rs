//! `GET /stats`: the observer's stats (counts by source, the seed's `by_source` check) plus the
//! KB's own counts, read from the running counters in one small range of `meta`.
//!
//! Clients name event kinds and outcome kinds, so a map can have any number of keys: each map
//! lists at most the `--stats-top` most frequent (ties by key), and a sibling `omitted` says how
//! many keys and how much count were left out of which map; totals stay exact. The top keys are
//! found streaming over the counters with a heap of `--stats-top` entries, and the answer is
//! kept until a write or retention changes a counter, so repeated calls cost a lookup.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::query::{self, ReadLimits};
use super::{ApiError, AppState};
use crate::store::{StatsMap, Store, StoreError};

#[derive(Serialize)]
struct StatsBody {
    /// Observer events stored.
    total: u64,
    by_source: BTreeMap<String, u64>,
    by_event_kind: BTreeMap<String, u64>,
    success: u64,
    failure: u64,
    verdicts: u64,
    by_overall: BTreeMap<String, u64>,
    /// Verdicts by repository (the default namespace under `""`).
    by_repo: BTreeMap<String, u64>,
    outcomes: u64,
    outcomes_by_kind: BTreeMap<String, u64>,
    last_seq: u64,
    /// Per map that lists fewer keys than it has: what was left out.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    omitted: BTreeMap<&'static str, Omitted>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
struct Omitted {
    /// Keys not listed.
    keys: u64,
    /// The sum of their counts.
    count: u64,
}

/// The last answer and the counters' version it was computed at.
#[derive(Debug, Default)]
pub struct StatsCache(Mutex<Option<((u64, u64), Bytes)>>);

pub async fn get(
    State(state): State<AppState>,
    Extension(cache): Extension<Arc<StatsCache>>,
    limits: ReadLimits,
) -> Result<Response, ApiError> {
    let top = state.config.stats_top;
    let cached = cache
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let (answer, _) = query::read_within(&state, limits, move |store, _| {
        let version = store.stats_version()?;
        match &cached {
            Some((at, body)) if *at == version => Ok(Ok(body.clone())),
            _ => compute(store, top).map(Err),
        }
    })
    .await?;
    let body = match answer {
        Ok(cached) => cached,
        Err((version, body)) => {
            let body = Bytes::from(
                serde_json::to_vec(&body)
                    .map_err(|e| ApiError::Internal(format!("cannot serialize the stats: {e}")))?,
            );
            *cache.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((version, body.clone()));
            body
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The answer from one snapshot of the counters, with their version.
fn compute(store: &Store, top: usize) -> Result<((u64, u64), StatsBody), StoreError> {
    let mut maps: [TopCounts; 5] = std::array::from_fn(|i| TopCounts::new(StatsMap::ALL[i], top));
    // Outcome rows without a kind are the scenario runner's: counted as "scenario" (added to a
    // "scenario" kind if rows name it too). The empty key sorts first, so it is known by then.
    let mut unnamed_outcomes = 0;
    let mut saw_scenario = false;
    let totals = store.visit_stats(&mut |map, key, count| {
        let slot = map_index(map);
        match (map, key) {
            (StatsMap::OutcomesByKind, "") => unnamed_outcomes = count,
            (StatsMap::OutcomesByKind, "scenario") => {
                saw_scenario = true;
                maps[slot].offer(key, count + unnamed_outcomes);
            }
            _ => maps[slot].offer(key, count),
        }
    })?;
    if unnamed_outcomes > 0 && !saw_scenario {
        maps[map_index(StatsMap::OutcomesByKind)].offer("scenario", unnamed_outcomes);
    }
    let mut omitted = BTreeMap::new();
    let [
        by_source,
        by_event_kind,
        by_overall,
        by_repo,
        outcomes_by_kind,
    ] = maps.map(|counts| {
        let (map, (listed, left_out)) = (counts.map, counts.finish());
        if let Some(left_out) = left_out {
            omitted.insert(json_name(map), left_out);
        }
        listed
    });
    let body = StatsBody {
        total: totals.events,
        by_source,
        by_event_kind,
        success: totals.events_success,
        failure: totals.events_failure,
        verdicts: totals.verdicts,
        by_overall,
        by_repo,
        outcomes: totals.outcomes,
        outcomes_by_kind,
        last_seq: totals.last_seq,
        omitted,
    };
    Ok(((totals.last_seq, totals.events), body))
}

fn map_index(map: StatsMap) -> usize {
    StatsMap::ALL
        .iter()
        .position(|m| *m == map)
        .expect("every map is in ALL")
}

fn json_name(map: StatsMap) -> &'static str {
    match map {
        StatsMap::EventsBySource => "by_source",
        StatsMap::EventsByKind => "by_event_kind",
        StatsMap::VerdictsByOverall => "by_overall",
        StatsMap::VerdictsByRepo => "by_repo",
        StatsMap::OutcomesByKind => "outcomes_by_kind",
    }
}

/// The `top` most frequent keys of one map (ties by key), from counters offered one at a time.
struct TopCounts {
    map: StatsMap,
    top: usize,
    /// The worst kept entry on top: least count, then greatest key.
    heap: BinaryHeap<(Reverse<u64>, String)>,
    keys: u64,
    count: u64,
}

impl TopCounts {
    fn new(map: StatsMap, top: usize) -> TopCounts {
        TopCounts {
            map,
            top,
            heap: BinaryHeap::with_capacity(top.min(1024) + 1),
            keys: 0,
            count: 0,
        }
    }

    fn offer(&mut self, key: &str, count: u64) {
        self.keys += 1;
        self.count += count;
        if self.heap.len() < self.top {
            self.heap.push((Reverse(count), key.to_owned()));
        } else if let Some((worst_count, worst_key)) = self.heap.peek()
            && (Reverse(count), key) < (*worst_count, worst_key.as_str())
        {
            self.heap.pop();
            self.heap.push((Reverse(count), key.to_owned()));
        }
    }

    /// The listed keys, and what was left out when anything was.
    fn finish(self) -> (BTreeMap<String, u64>, Option<Omitted>) {
        let listed: BTreeMap<String, u64> = self
            .heap
            .into_iter()
            .map(|(Reverse(count), key)| (key, count))
            .collect();
        let listed_keys = listed.len() as u64;
        let listed_count: u64 = listed.values().sum();
        let left_out = (listed_keys < self.keys).then(|| Omitted {
            keys: self.keys - listed_keys,
            count: self.count - listed_count,
        });
        (listed, left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top_of(top: usize, counters: &[(&str, u64)]) -> (Vec<(String, u64)>, Option<Omitted>) {
        let mut counts = TopCounts::new(StatsMap::EventsByKind, top);
        for (key, count) in counters {
            counts.offer(key, *count);
        }
        let (listed, left_out) = counts.finish();
        (listed.into_iter().collect(), left_out)
    }

    #[test]
    fn the_most_frequent_keys_are_kept_ties_by_key() {
        let counters = [("a", 1), ("b", 5), ("c", 5), ("d", 2), ("e", 5), ("f", 9)];
        let (listed, left_out) = top_of(3, &counters);
        let names: Vec<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["b", "c", "f"]);
        assert_eq!(left_out, Some(Omitted { keys: 3, count: 8 }));
        // Whatever the order they come in.
        let mut reversed = counters;
        reversed.reverse();
        assert_eq!(top_of(3, &reversed).0, listed);

        assert_eq!(top_of(10, &counters).1, None, "nothing left out");
        let (none, all) = top_of(0, &counters);
        assert!(none.is_empty());
        assert_eq!(all, Some(Omitted { keys: 6, count: 27 }));
    }
}
