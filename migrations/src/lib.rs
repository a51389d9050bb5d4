//! Forward-only schema migrations for the lakehouse-kb database file.
//!
//! Each step lives in its own module (`v0001_initial`, `v0002_claims`, ...) and freezes the table
//! definitions and value layouts of the version it produces, so that a step can never pick up
//! today's types by accident. A released step is never edited: a schema change is a new step.
//!
//! Every step runs in one write transaction that also records the new version in `meta`, so a
//! crash during a migration leaves the file at the previous version, never in between.
//! A file whose version is newer than this binary knows is refused before any write.

use redb::{Database, ReadableDatabase, TableDefinition, TableError};

pub mod v0001_initial;
mod v0002_claims;
pub mod v0003_records_by_sig;
pub mod v0004_verdicts_by_seq;
pub mod v0005_repos_and_memory;
pub mod v0006_findings_memory;
pub mod v0007_codec_dictionaries;
pub mod v0008_verdict_identities;
pub mod v0009_verdict_lines;
pub mod v0010_event_seq_blocks;
pub mod v0011_verdict_heads;
pub mod v0012_journal;
pub mod v0013_findings_by_last_audit;
pub mod v0014_batch_line_contents;
pub mod v0015_findings_audits;

pub use v0002_claims::{claim_hash_v2, frozen_verdict_v1};

/// The one table every version has, with the version under [`SCHEMA_VERSION_KEY`]. Its definition
/// never changes, so any binary can read the version of any file.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const SCHEMA_VERSION_KEY: &str = "schema_version";

/// The schema version this binary writes.
pub const LATEST_VERSION: u64 = 15;

/// A step's body: it runs inside the step's write transaction and reports backfill progress
/// (rows done) through the callback.
type Apply = fn(&redb::WriteTransaction, &mut dyn FnMut(u64)) -> Result<(), MigrateError>;

/// One schema step: `apply` turns a database at `version - 1` into one at `version`.
pub struct Step {
    pub version: u64,
    pub name: &'static str,
    pub summary: &'static str,
    apply: Apply,
}

/// All steps, in order; `STEPS[i].version == i + 1`.
pub static STEPS: &[Step] = &[
    Step {
        version: 1,
        name: "v0001_initial",
        summary: "create meta, verdicts, verdict_keys, outcomes, events and their sig_hash, \
                  source and event_kind indexes, import_keys",
        apply: v0001_initial::apply,
    },
    Step {
        version: 2,
        name: "v0002_claims",
        summary: "create the claims index (claim_hash, verdict seq) -> sig_hash and backfill it \
                  from the verdicts already stored",
        apply: v0002_claims::apply,
    },
    Step {
        version: 3,
        name: "v0003_records_by_sig",
        summary: "merge outcomes_by_sig and events_by_sig into records_by_sig (sig_hash, seq) -> \
                  kind, drop verdict_keys (identity is checked within a sig_hash's verdicts)",
        apply: v0003_records_by_sig::apply,
    },
    Step {
        version: 4,
        name: "v0004_verdicts_by_seq",
        summary: "move verdict values to verdicts_by_seq (seq -> value); one sig_index \
                  (sig_hash, kind, seq) for verdicts, outcome rows and events; drop verdicts and \
                  records_by_sig",
        apply: v0004_verdicts_by_seq::apply,
    },
    Step {
        version: 5,
        name: "v0005_repos_and_memory",
        summary: "repositories as namespaces (repos, by_sig replacing sig_index, claim_hashes \
                  replacing claims), verdict_ids, pr_verdicts, prs and pr_heads for one-lookup \
                  identity and O(1) history counts, client idempotency keys, the claim_terms \
                  text index (built by the store); values from now on in codec version 2",
        apply: v0005_repos_and_memory::apply,
    },
    Step {
        version: 6,
        name: "v0006_findings_memory",
        summary: "create the findings memory (findings, finding_fps, findings_by_last_seen; \
                  built from the stored verdicts by the store) and the dismissals with their \
                  indexes (dismissal_ids, dismissals_by_repo, dismissals_by_scope)",
        apply: v0006_findings_memory::apply,
    },
    Step {
        version: 7,
        name: "v0007_codec_dictionaries",
        summary: "create codec_dictionaries, the zstd dictionaries of codec version 3 (the \
                  store trains one from the values and rewrites them compressed, in bounded, \
                  resumable transactions)",
        apply: v0007_codec_dictionaries::apply,
    },
    Step {
        version: 8,
        name: "v0008_verdict_identities",
        summary: "index a verdict's identity by a 64-bit hash of (pr_number, head_sha, \
                  audited_at) in verdict_identities (repo, hash, seq) instead of its text; drop \
                  verdict_ids",
        apply: v0008_verdict_identities::apply,
    },
    Step {
        version: 9,
        name: "v0009_verdict_lines",
        summary: "allow codec version 4: a verdict's own KB row and observer event stored as a \
                  reference to the verdict (the store rewrites the records it can recompute, \
                  in bounded, resumable transactions)",
        apply: v0009_verdict_lines::apply,
    },
    Step {
        version: 10,
        name: "v0010_event_seq_blocks",
        summary: "keep the event filters as blocks of up to 128 seqs in event_source_seqs and \
                  event_kind_seqs (text, first seq) instead of an entry per event; drop \
                  events_by_source and events_by_kind",
        apply: v0010_event_seq_blocks::apply,
    },
    Step {
        version: 11,
        name: "v0011_verdict_heads",
        summary: "allow codec version 5: a verdict compressed so that its fields but its JSON \
                  read from the first block of its frame (no table changes; verdicts stored \
                  before stay as they are)",
        apply: v0011_verdict_heads::apply,
    },
    Step {
        version: 12,
        name: "v0012_journal",
        summary: "event batches may be durable in the write-ahead journal (kb.redb-journal) \
                  before the file holds them; meta's journal/lsn says which the file holds (no \
                  table changes)",
        apply: v0012_journal::apply,
    },
    Step {
        version: 13,
        name: "v0013_findings_by_last_audit",
        summary: "findings_by_last_audit replaces findings_by_last_seen: each entry says whether \
                  the audit that last raised the finding repeated it (the store rebuilds the \
                  findings memory from the verdicts, in bounded, resumable transactions)",
        apply: v0013_findings_by_last_audit::apply,
    },
    Step {
        version: 14,
        name: "v0014_batch_line_contents",
        summary: "give every client_keys key named like a batch line's position (K#n) the key \
                  of its content (K, NUL, fingerprint, seq), so that a batch retried in \
                  another shape finds its lines by fingerprint instead of reading every key \
                  under K",
        apply: v0014_batch_line_contents::apply,
    },
    Step {
        version: 15,
        name: "v0015_findings_audits",
        summary: "create findings_audits, each PR's latest verdict that carried a findings \
                  array, so that a verdict without one leaves the PR's open findings open (the \
                  store rebuilds the findings memory from the verdicts, in bounded, resumable \
                  transactions)",
        apply: v0015_findings_audits::apply,
    },
];

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "manual upgrade required: this binary supports schema version {expected} at most, \
         found {found}; the database was left untouched"
    )]
    NewerThanBinary { expected: u64, found: u64 },
    #[error("the file has tables but no schema version: not a lakehouse-kb database")]
    Unversioned,
    #[error("cannot migrate down from version {from} to {to}: migrations are forward-only")]
    Downgrade { from: u64, to: u64 },
    #[error("step {version} found a corrupt value in {table} at seq {seq}: {message}")]
    CorruptValue {
        version: u64,
        table: &'static str,
        seq: u64,
        message: String,
    },
    #[error(transparent)]
    Storage(#[from] redb::Error),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for MigrateError {
            fn from(e: $t) -> Self {
                MigrateError::Storage(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What `migrate` would do to a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub from: u64,
    pub to: u64,
    pub steps: Vec<&'static Step>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Step({} {})", self.version, self.name)
    }
}

impl PartialEq for Step {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
    }
}
impl Eq for Step {}

/// The schema version recorded in the file; 0 for a new, empty file.
pub fn current_version(db: &impl ReadableDatabase) -> Result<u64, MigrateError> {
    let txn = db.begin_read()?;
    match txn.open_table(META) {
        Ok(meta) => Ok(meta
            .get(SCHEMA_VERSION_KEY)?
            .map(|v| v.value())
            .unwrap_or(0)),
        Err(TableError::TableDoesNotExist(_)) => {
            if txn.list_tables()?.next().is_some() {
                Err(MigrateError::Unversioned)
            } else {
                Ok(0)
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The steps that would bring the file to `target` (the latest version when `None`).
pub fn plan(db: &impl ReadableDatabase, target: Option<u64>) -> Result<Plan, MigrateError> {
    let from = current_version(db)?;
    if from > LATEST_VERSION {
        return Err(MigrateError::NewerThanBinary {
            expected: LATEST_VERSION,
            found: from,
        });
    }
    let to = target.unwrap_or(LATEST_VERSION).min(LATEST_VERSION);
    if to < from {
        return Err(MigrateError::Downgrade { from, to });
    }
    let steps = STEPS
        .iter()
        .filter(|s| s.version > from && s.version <= to)
        .collect();
    Ok(Plan { from, to, steps })
}

/// Runs the steps of [`plan`], each in its own durable write transaction. `on_progress` is
/// called with the step and the number of rows a backfill has processed so far.
pub fn migrate(
    db: &Database,
    target: Option<u64>,
    on_progress: &mut dyn FnMut(&Step, u64),
) -> Result<Plan, MigrateError> {
    let plan = plan(db, target)?;
    for step in &plan.steps {
        let txn = db.begin_write()?;
        (step.apply)(&txn, &mut |n| on_progress(step, n))?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(SCHEMA_VERSION_KEY, step.version)?;
        }
        txn.commit()?;
    }
    Ok(plan)
}

/// What the steps' tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use redb::{Database, ReadableDatabase, ReadableTable, TableHandle};

    use crate::v0003_records_by_sig::RECORDS_BY_SIG;
    use crate::{current_version, migrate};

    /// A new file migrated to `version`, and the temp dir that holds it.
    pub fn db_at(version: u64) -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("kb.redb")).unwrap();
        migrate(&db, Some(version), &mut |_, _| {}).unwrap();
        (dir, db)
    }

    /// Migrates `db` to `version` and checks it got there; the (step, rows) progress reports.
    pub fn upgrade_to(db: &Database, version: u64) -> Vec<(u64, u64)> {
        let mut reports = Vec::new();
        migrate(db, Some(version), &mut |step, n| {
            reports.push((step.version, n))
        })
        .unwrap();
        assert_eq!(current_version(db).unwrap(), version);
        reports
    }

    /// Fails unless none of `names` is a table of `db`.
    pub fn assert_tables_gone(db: &Database, names: &[&str]) {
        let txn = db.begin_read().unwrap();
        let present: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        for gone in names {
            assert!(
                !present.iter().any(|n| n == gone),
                "{gone} still there: {present:?}"
            );
        }
    }

    /// Every `records_by_sig` entry, in key order.
    pub fn records_by_sig(db: &Database) -> Vec<((String, u64), u8)> {
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(RECORDS_BY_SIG).unwrap();
        table
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                let (sig, seq) = k.value();
                ((sig.to_owned(), seq), v.value())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("kb.redb")).unwrap();
        (dir, db)
    }

    #[test]
    fn steps_are_numbered_in_order() {
        for (i, step) in STEPS.iter().enumerate() {
            assert_eq!(step.version, i as u64 + 1, "{}", step.name);
            assert!(step.name.starts_with(&format!("v{:04}_", step.version)));
        }
        assert_eq!(STEPS.last().unwrap().version, LATEST_VERSION);
    }

    #[test]
    fn new_file_migrates_to_latest_and_then_has_nothing_to_do() {
        let (_dir, db) = temp_db();
        assert_eq!(current_version(&db).unwrap(), 0);
        let done = migrate(&db, None, &mut |_, _| {}).unwrap();
        assert_eq!(
            (done.from, done.to, done.steps.len()),
            (0, LATEST_VERSION, STEPS.len())
        );
        assert_eq!(current_version(&db).unwrap(), LATEST_VERSION);
        assert!(plan(&db, None).unwrap().steps.is_empty());
    }

    #[test]
    fn newer_file_is_refused_and_left_untouched() {
        let (_dir, db) = temp_db();
        migrate(&db, None, &mut |_, _| {}).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(SCHEMA_VERSION_KEY, LATEST_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
        let err = migrate(&db, None, &mut |_, _| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "manual upgrade required: this binary supports schema version {LATEST_VERSION} \
                 at most, found {}; the database was left untouched",
                LATEST_VERSION + 1
            )
        );
        assert_eq!(current_version(&db).unwrap(), LATEST_VERSION + 1);
    }

    #[test]
    fn foreign_file_is_refused() {
        let (_dir, db) = temp_db();
        let other: TableDefinition<u64, u64> = TableDefinition::new("something_else");
        let txn = db.begin_write().unwrap();
        txn.open_table(other).unwrap().insert(1, 1).unwrap();
        txn.commit().unwrap();
        assert!(matches!(
            current_version(&db),
            Err(MigrateError::Unversioned)
        ));
    }

    #[test]
    fn target_stops_early_and_downgrade_is_refused() {
        let (_dir, db) = temp_db();
        let first = migrate(&db, Some(1), &mut |_, _| {}).unwrap();
        assert_eq!((first.from, first.to), (0, 1));
        assert_eq!(current_version(&db).unwrap(), 1);
        migrate(&db, None, &mut |_, _| {}).unwrap();
        assert!(matches!(
            plan(&db, Some(1)),
            Err(MigrateError::Downgrade {
                from: LATEST_VERSION,
                to: 1
            })
        ));
    }
}
