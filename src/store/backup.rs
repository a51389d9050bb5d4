//! Backup: a consistent copy of the database taken from one read snapshot while writes go on
//! (never a file copy under a writer). Rows are copied table by table into a new file, which
//! is renamed into place only once complete and durable, so a backup is whole or absent.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use lakehouse_kb_migrations as migrations;
use redb::{
    Database, Durability, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    Value,
};
use serde::Serialize;

use super::tables::*;
use super::{Store, StoreError};

/// Rows per write transaction of the copy: bounds the memory a transaction holds.
const CHUNK: usize = 50_000;

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub path: String,
    pub last_seq: u64,
    pub rows: u64,
    pub bytes: u64,
    pub millis: u64,
}

/// Held while a backup runs: one at a time in a process, so that two into the same place
/// cannot both claim it (the second would remove the first's partial file).
static RUNNING: Mutex<()> = Mutex::new(());

impl Store {
    /// Copies the database as of now into a new file at `dest`, which must not exist. Backups
    /// run one at a time; one that finds `dest` taken when its turn comes fails with
    /// [`StoreError::BackupExists`], one that cannot create its file there with
    /// [`StoreError::BackupDest`].
    pub fn backup_to(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        let _one_at_a_time = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        let start = Instant::now();
        if dest.exists() {
            return Err(StoreError::BackupExists(dest.to_owned()));
        }
        // Left by a backup that crashed: nothing else writes it while `RUNNING` is held (and a
        // backup without a server holds the database's own lock, so no other process does).
        let partial = dest.with_extension("redb.partial");
        let _ = std::fs::remove_file(&partial);
        let snapshot = self.db()?.begin_read()?;
        let last_seq = super::meta::get(&snapshot.open_table(META)?, super::meta::LAST_SEQ)?;
        let copy =
            Database::builder()
                .create(&partial)
                .map_err(|source| StoreError::BackupDest {
                    path: partial.clone(),
                    source,
                })?;
        let rows = match copy_all(&snapshot, &copy) {
            Ok(rows) => rows,
            Err(e) => {
                drop(copy);
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        drop(copy);
        std::fs::rename(&partial, dest).map_err(|e| StoreError::Backup(e.to_string()))?;
        if let Some(parent) = dest.parent() {
            // The rename is durable once the directory entry is.
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| StoreError::Backup(e.to_string()))?;
        }
        let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        Ok(BackupReport {
            path: dest.display().to_string(),
            last_seq,
            rows,
            bytes,
            millis: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

fn copy_all(snapshot: &ReadTransaction, copy: &Database) -> Result<u64, StoreError> {
    // The copy gets the current schema's tables first, then every row of every table
    // (meta included, so versions, seq, counters and checkpoints come along).
    migrations::migrate(copy, None, &mut |_, _| {})?;
    let mut rows = 0;
    rows += copy_table(snapshot, copy, META)?;
    rows += copy_table(snapshot, copy, VERDICTS_BY_SEQ)?;
    rows += copy_table(snapshot, copy, CLAIMS)?;
    rows += copy_table(snapshot, copy, OUTCOMES)?;
    rows += copy_table(snapshot, copy, SIG_INDEX)?;
    rows += copy_table(snapshot, copy, EVENTS)?;
    rows += copy_table(snapshot, copy, EVENTS_BY_SOURCE)?;
    rows += copy_table(snapshot, copy, EVENTS_BY_KIND)?;
    rows += copy_table(snapshot, copy, IMPORT_KEYS)?;
    // Every chunk above was committed without fsync; this commit makes them all durable.
    copy.begin_write()?.commit()?;
    Ok(rows)
}

fn copy_table<K: Key + 'static, V: Value + 'static>(
    snapshot: &ReadTransaction,
    copy: &Database,
    definition: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let source = snapshot.open_table(definition)?;
    let mut rows = source.iter()?;
    let mut n_rows = 0;
    loop {
        let mut txn = copy.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::Backup(e.to_string()))?;
        let mut done = false;
        {
            let mut target = txn.open_table(definition)?;
            for _ in 0..CHUNK {
                let Some(row) = rows.next() else {
                    done = true;
                    break;
                };
                let (key, value) = row?;
                target.insert(key.value(), value.value())?;
                n_rows += 1;
            }
        }
        txn.commit()?;
        if done {
            return Ok(n_rows);
        }
    }
}
