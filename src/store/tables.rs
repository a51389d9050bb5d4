//! Every redb table of the current schema (version 4), in one place. Only `store/` opens them.
//!
//! These must equal the definitions frozen in the latest step of `migrations/` (a test checks
//! that a migrated file has exactly these tables); a change here is a new migration step.

use redb::TableDefinition;

pub use lakehouse_kb_migrations::META;

/// The tables schema version 4 added, taken from its step so that the two cannot differ:
/// - `VERDICTS_BY_SEQ`: `seq` → codec-encoded [`VerdictValue`](super::values::VerdictValue).
/// - `SIG_INDEX`: `(sig_hash, kind, seq)` → `()` for every verdict, and every outcome row and
///   event with a sig_hash; kinds [`KIND_OUTCOME`], [`KIND_EVENT`], [`KIND_VERDICT`]. The
///   verdicts of a sig_hash are one range: a verdict's identity (pr_number, head_sha,
///   audited_at) is checked against them, and PR history reads them head by head.
pub use lakehouse_kb_migrations::v0004_verdicts_by_seq::{
    KIND_EVENT, KIND_OUTCOME, KIND_VERDICT, SIG_INDEX, VERDICTS_BY_SEQ,
};
/// `(claim_hash, verdict seq)` → the verdict's sig_hash (schema version 2).
pub const CLAIMS: TableDefinition<(u64, u64), &str> = TableDefinition::new("claims");

/// `seq` → codec-encoded [`OutcomeValue`](super::values::OutcomeValue).
pub const OUTCOMES: TableDefinition<u64, &[u8]> = TableDefinition::new("outcomes");
/// `seq` → codec-encoded [`EventValue`](super::values::EventValue).
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// `(source, seq)` of every event, by its (coerced) source.
pub const EVENTS_BY_SOURCE: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("events_by_source");
/// `(event_kind, seq)` of every event with a string event_kind.
pub const EVENTS_BY_KIND: TableDefinition<(&str, u64), ()> = TableDefinition::new("events_by_kind");
/// Import identity of a legacy line (file tag, SHA-256 prefix, occurrence) → the seq it became.
pub const IMPORT_KEYS: TableDefinition<&[u8], u64> = TableDefinition::new("import_keys");

/// Names of all tables, for the schema test and the backup.
pub const ALL_TABLE_NAMES: [&str; 9] = [
    "meta",
    "verdicts_by_seq",
    "claims",
    "outcomes",
    "sig_index",
    "events",
    "events_by_source",
    "events_by_kind",
    "import_keys",
];
