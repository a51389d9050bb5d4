//! Schema version 1: the base tables. Frozen: these definitions describe version-1 files forever.
//!
//! | table | key | value |
//! |---|---|---|
//! | meta | &str | u64: schema/codec versions, last_seq, counters, export checkpoints |
//! | verdicts | (sig_hash, seq) | codec-encoded verdict |
//! | verdict_keys | (pr_number, head_sha, audited_at) | verdict seq (idempotency) |
//! | outcomes | seq | codec-encoded outcome row |
//! | outcomes_by_sig | (sig_hash, seq) | () |
//! | events | seq | codec-encoded event |
//! | events_by_sig / events_by_source / events_by_kind | (text, seq) | () |
//! | import_keys | file tag, line hash, occurrence | seq |

use redb::{TableDefinition, WriteTransaction};

use crate::{META, MigrateError};

pub const VERDICTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("verdicts");
pub const VERDICT_KEYS: TableDefinition<(u64, &str, &str), u64> =
    TableDefinition::new("verdict_keys");
pub const OUTCOMES: TableDefinition<u64, &[u8]> = TableDefinition::new("outcomes");
pub const OUTCOMES_BY_SIG: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("outcomes_by_sig");
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
pub const EVENTS_BY_SIG: TableDefinition<(&str, u64), ()> = TableDefinition::new("events_by_sig");
pub const EVENTS_BY_SOURCE: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("events_by_source");
pub const EVENTS_BY_KIND: TableDefinition<(&str, u64), ()> = TableDefinition::new("events_by_kind");
pub const IMPORT_KEYS: TableDefinition<&[u8], u64> = TableDefinition::new("import_keys");

/// Value-codec version the version-1 schema was written with.
const CODEC_VERSION: u64 = 1;

pub(crate) fn apply(txn: &WriteTransaction, _: &mut dyn FnMut(u64)) -> Result<(), MigrateError> {
    txn.open_table(VERDICTS)?;
    txn.open_table(VERDICT_KEYS)?;
    txn.open_table(OUTCOMES)?;
    txn.open_table(OUTCOMES_BY_SIG)?;
    txn.open_table(EVENTS)?;
    txn.open_table(EVENTS_BY_SIG)?;
    txn.open_table(EVENTS_BY_SOURCE)?;
    txn.open_table(EVENTS_BY_KIND)?;
    txn.open_table(IMPORT_KEYS)?;
    let mut meta = txn.open_table(META)?;
    meta.insert("codec_version", CODEC_VERSION)?;
    meta.insert("last_seq", 0)?;
    Ok(())
}
