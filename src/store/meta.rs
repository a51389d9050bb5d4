//! Keys of the `meta` table: versions, the seq allocator, running counters and export
//! checkpoints. Counters are updated in the same transaction as the rows they count, so they
//! always equal a recount (`check` verifies it).

use std::collections::BTreeMap;

use redb::{ReadableTable, Table};

pub const CODEC_VERSION: &str = "codec_version";
/// The highest seq ever assigned (0 before the first record). Seqs are never reused.
pub const LAST_SEQ: &str = "last_seq";

pub const EVENTS: &str = "count/events";
pub const EVENTS_SUCCESS: &str = "count/events/success";
pub const EVENTS_FAILURE: &str = "count/events/failure";
pub const EVENTS_BY_SOURCE: &str = "count/events/source/";
pub const EVENTS_BY_KIND: &str = "count/events/kind/";
pub const VERDICTS: &str = "count/verdicts";
pub const VERDICTS_BY_OVERALL: &str = "count/verdicts/overall/";
/// Verdicts by repository name (the default namespace is the empty name).
pub const VERDICTS_BY_REPO: &str = "count/verdicts/repo/";
pub const OUTCOMES: &str = "count/outcomes";
pub const OUTCOMES_BY_KIND: &str = "count/outcomes/kind/";

/// Claims in the similar-claims index (documents, for BM25), in all repositories and, under
/// the `…/repo/{id}` keys, in each.
pub const CLAIM_DOCS: &str = "text/claims/docs";
/// Their total length in terms.
pub const CLAIM_TERMS_LEN: &str = "text/claims/len";
pub const CLAIM_DOCS_IN: &str = "text/claims/docs/repo/";
pub const CLAIM_TERMS_LEN_IN: &str = "text/claims/len/repo/";
/// The analyser version the claims index was completely built with (absent: not built).
pub const CLAIM_INDEX_VERSION: &str = "text/claims/version";
/// While the claims index is being (re)built: the seq through which verdicts are indexed.
pub const CLAIM_INDEX_BUILT_THROUGH: &str = "text/claims/built_through";
/// The highest seq of an event retention deleted (absent: none ever was). Retention deletes
/// the oldest events first, so every event at or below it is gone: the change feed tells a
/// consumer standing before it to resync. Written in the transaction of the deletes.
pub const EVENTS_DELETED_THROUGH: &str = "retention/events_deleted_through";

/// The history the change feed's positions are in: a random id the store gives a file at its
/// first open, which a backup's copy does not keep (it gets its own at its first open).
pub const FEED_HISTORY: &str = "feed/history";
/// A backup's copy: the histories it was copied from, the nearest first, each with the last
/// seq through which it and the copy are one (the change feed takes that history's positions
/// up to it): `feed/ancestor/{i}` and `feed/ancestor/{i}/seq` for `i` below
/// [`MAX_FEED_ANCESTORS`]. Absent: not a copy.
pub const MAX_FEED_ANCESTORS: usize = 4;

/// The keys of ancestor `i` of [`MAX_FEED_ANCESTORS`]: its history and its last shared seq.
pub fn feed_ancestor_keys(i: usize) -> [String; 2] {
    [
        format!("feed/ancestor/{i}"),
        format!("feed/ancestor/{i}/seq"),
    ]
}

/// A new random id for a `meta` value that names a file or its history (`journal/id`,
/// `feed/history`): never 0, which means none.
pub fn new_random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish().max(1)
}

/// The rules the findings memory was completely built with: `FINDING_RULES_VERSION` and the
/// analyser's version (absent: not built).
pub const FINDINGS_RULES_VERSION: &str = "findings/rules_version";
pub const FINDINGS_ANALYZER_VERSION: &str = "findings/analyzer_version";
/// While the findings memory is being (re)built: the seq through which verdicts are remembered.
pub const FINDINGS_BUILT_THROUGH: &str = "findings/built_through";

/// Keys of one export file's checkpoint.
pub fn checkpoint_keys(file: &str) -> [String; 3] {
    [
        format!("export/{file}/seq"),
        format!("export/{file}/len"),
        format!("export/{file}/tail"),
    ]
}

/// Counter changes collected while a transaction writes rows, applied once at its end.
#[derive(Debug, Default)]
pub struct CounterDeltas(BTreeMap<String, i64>);

impl CounterDeltas {
    pub fn add(&mut self, key: &str, delta: i64) {
        *self.0.entry(key.to_owned()).or_default() += delta;
    }

    pub fn add_keyed(&mut self, prefix: &str, name: &str, delta: i64) {
        *self.0.entry(format!("{prefix}{name}")).or_default() += delta;
    }

    /// Applies the deltas; a counter that reaches zero is removed so that, say, a `by_event_kind`
    /// entry disappears with its last event.
    pub fn apply(self, meta: &mut Table<&str, u64>) -> Result<(), redb::StorageError> {
        for (key, delta) in self.0 {
            if delta == 0 {
                continue;
            }
            let old = meta.get(key.as_str())?.map(|v| v.value()).unwrap_or(0);
            let new = old.saturating_add_signed(delta);
            if new == 0 {
                meta.remove(key.as_str())?;
            } else {
                meta.insert(key.as_str(), new)?;
            }
        }
        Ok(())
    }
}

/// Calls `visit` with every counter under `prefix` (keyed by the rest of the key), in key order.
pub fn visit_counters_under(
    meta: &impl ReadableTable<&'static str, u64>,
    prefix: &str,
    visit: &mut dyn FnMut(&str, u64),
) -> Result<(), redb::StorageError> {
    for row in meta.range(prefix..)? {
        let (key, value) = row?;
        let Some(name) = key.value().strip_prefix(prefix) else {
            break;
        };
        visit(name, value.value());
    }
    Ok(())
}

/// All counters under `prefix`, keyed by the rest of the key (for `check`, which recounts them
/// all anyway).
pub fn counters_under(
    meta: &impl ReadableTable<&'static str, u64>,
    prefix: &str,
) -> Result<std::collections::BTreeMap<String, u64>, redb::StorageError> {
    let mut out = std::collections::BTreeMap::new();
    visit_counters_under(meta, prefix, &mut |name, count| {
        out.insert(name.to_owned(), count);
    })?;
    Ok(out)
}

/// Removes every key under `prefix` (`prefix` itself included).
pub fn remove_under(meta: &mut Table<&str, u64>, prefix: &str) -> Result<(), redb::StorageError> {
    for name in counters_under(meta, prefix)?.into_keys() {
        meta.remove(format!("{prefix}{name}").as_str())?;
    }
    Ok(())
}

pub fn get(
    meta: &impl ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<u64, redb::StorageError> {
    Ok(meta.get(key)?.map(|v| v.value()).unwrap_or(0))
}
