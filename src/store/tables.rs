//! Every redb table of the current schema (version 4), in one place. Only `store/` opens them.
//!
//! These must equal the definitions frozen in the latest step of `migrations/` (a test checks
//! that a migrated file has exactly these tables); a change here is a new migration step.

use redb::TableDefinition;

pub use lakehouse_kb_migrations::META;

/// `seq` → codec-encoded [`VerdictValue`](super::values::VerdictValue); schema version 4.
pub const VERDICTS_BY_SEQ: TableDefinition<u64, &[u8]> = TableDefinition::new("verdicts_by_seq");
/// `(claim_hash, verdict seq)` → the verdict's sig_hash (schema version 2).
pub const CLAIMS: TableDefinition<(u64, u64), &str> = TableDefinition::new("claims");
/// `(sig_hash, seq)` of every verdict, and of every outcome row and event with a sig_hash →
/// its kind ([`KIND_VERDICT`], [`KIND_OUTCOME`], [`KIND_EVENT`]); schema versions 3 and 4.
/// A verdict's value is in [`VERDICTS_BY_SEQ`] (`seq` → codec-encoded
/// [`VerdictValue`](super::values::VerdictValue)); its identity (pr_number, head_sha,
/// audited_at) is checked against the verdicts of its sig_hash's range.
pub const RECORDS_BY_SIG: TableDefinition<(&str, u64), u8> = TableDefinition::new("records_by_sig");
/// An outcome row in [`RECORDS_BY_SIG`].
pub const KIND_OUTCOME: u8 = 1;
/// An event in [`RECORDS_BY_SIG`].
pub const KIND_EVENT: u8 = 2;
/// A verdict in [`RECORDS_BY_SIG`].
pub const KIND_VERDICT: u8 = 3;

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
    "records_by_sig",
    "events",
    "events_by_source",
    "events_by_kind",
    "import_keys",
];
