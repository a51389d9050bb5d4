//! The SQLite alternative: what a team would build instead of lakehouse-kb with the usual
//! embedded database. The same records in one file (WAL, `synchronous=FULL`, so a commit is
//! fsync'd like the store's), the same per-commit work (rows, the sig_hash and pr_number
//! indexes, running counters by source and overall in the same transaction), the same queries,
//! and the same export and import of the legacy files.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use lakehouse_kb::import::lines::{ImportKeys, OPS_TAG, OUTCOMES_TAG};
use lakehouse_kb::import::{OPS_PATH, OUTCOMES_PATH};
use lakehouse_kb::model::outcome::SigHashRule;
use lakehouse_kb::model::{ObservedOp, OutcomeRow};
use lakehouse_kb::store::{NewEvent, NewOutcome, Record};
use rusqlite::{Connection, OptionalExtension, params};

/// The database file inside a data directory.
pub const DB_FILE: &str = "kb.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS verdicts (
    seq INTEGER PRIMARY KEY,
    sig_hash TEXT NOT NULL,
    pr_number INTEGER NOT NULL,
    head_sha TEXT NOT NULL,
    audited_at TEXT NOT NULL,
    overall TEXT NOT NULL,
    one_liner TEXT NOT NULL,
    raw_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verdicts_by_pr ON verdicts (pr_number, seq);
CREATE INDEX IF NOT EXISTS verdicts_by_sig ON verdicts (sig_hash, seq);
CREATE TABLE IF NOT EXISTS outcomes (
    seq INTEGER PRIMARY KEY,
    sig_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outcomes_by_sig ON outcomes (sig_hash, seq);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    event_kind TEXT,
    sig_hash TEXT,
    line TEXT NOT NULL,
    body TEXT
);
CREATE INDEX IF NOT EXISTS events_by_sig ON events (sig_hash, seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS import_keys (key BLOB PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
";

/// One SQLite database with the KB's tables.
pub struct Sqlite {
    conn: Connection,
    next_seq: i64,
}

impl Sqlite {
    /// Opens (creating if needed) `path` in WAL mode with `synchronous=FULL`.
    pub fn open(path: &Path) -> anyhow::Result<Sqlite> {
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(SCHEMA)?;
        let mut next_seq = 1;
        for table in ["verdicts", "outcomes", "events"] {
            let max: Option<i64> = conn
                .query_row(&format!("SELECT max(seq) FROM {table}"), [], |r| r.get(0))
                .optional()?
                .flatten();
            next_seq = next_seq.max(max.unwrap_or(0) + 1);
        }
        Ok(Sqlite { conn, next_seq })
    }

    /// Writes `records` in one transaction (fsync'd on commit), as the store's `write` does.
    pub fn write(&mut self, records: &[&Record]) -> anyhow::Result<()> {
        self.write_keyed(records.iter().map(|&record| (None, record)))
    }

    /// [`Sqlite::write`], where a record with an import key is skipped when `import_keys`
    /// holds the key already, as the store's import does (a unique key doing the same job).
    fn write_keyed<'a>(
        &mut self,
        records: impl IntoIterator<Item = (Option<&'a [u8]>, &'a Record)>,
    ) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut import_key =
                tx.prepare_cached("INSERT OR IGNORE INTO import_keys (key, seq) VALUES (?1, ?2)")?;
            let mut verdict = tx.prepare_cached(
                "INSERT INTO verdicts (seq, sig_hash, pr_number, head_sha, audited_at, overall, \
                 one_liner, raw_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut outcome = tx.prepare_cached(
                "INSERT INTO outcomes (seq, sig_hash, kind, line) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut event = tx.prepare_cached(
                "INSERT INTO events (seq, source, event_kind, sig_hash, line, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut count = tx.prepare_cached(
                "INSERT INTO counters (name, n) VALUES (?1, 1) \
                 ON CONFLICT (name) DO UPDATE SET n = n + 1",
            )?;
            let mut seq = self.next_seq;
            let mut put_event = |seq: i64, e: &NewEvent| -> rusqlite::Result<()> {
                let e = &e.value;
                event.execute(params![
                    seq,
                    e.source,
                    e.event_kind,
                    e.sig_hash,
                    e.line,
                    e.body
                ])?;
                count.execute(params![format!("source:{}", e.source)])?;
                Ok(())
            };
            for (key, record) in records {
                if let Some(key) = key
                    && import_key.execute(params![key, seq])? == 0
                {
                    continue;
                }
                match record {
                    Record::Verdict(v) => {
                        let sig_hash = v.verdict.sig_hash();
                        verdict.execute(params![
                            seq,
                            sig_hash,
                            v.verdict.pr_number as i64,
                            v.verdict.head_sha,
                            v.verdict.audited_at,
                            v.verdict.overall.as_str(),
                            v.verdict.one_liner,
                            v.verdict.raw_json
                        ])?;
                        seq += 1;
                        if let Some(line) = &v.outcome_line {
                            outcome.execute(params![seq, sig_hash, "audit", line])?;
                            seq += 1;
                        }
                        if let Some(e) = &v.event {
                            put_event(seq, e)?;
                            seq += 1;
                        }
                    }
                    Record::Event(e) => {
                        put_event(seq, e)?;
                        seq += 1;
                    }
                    Record::Outcome(o) => {
                        outcome.execute(params![seq, o.row.sig_hash, o.row.kind, o.row.line])?;
                        seq += 1;
                    }
                    // The comparison's traffic has none; the legacy system had no dismissals.
                    Record::Dismissal(_) => {}
                }
            }
            self.next_seq = seq;
        }
        tx.commit()?;
        Ok(())
    }

    /// The PR's audits, oldest first: the Phase B query. Returns how many, after reading every
    /// column the history answer needs.
    pub fn pr_history(&self, pr_number: u64) -> anyhow::Result<usize> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, sig_hash, overall, one_liner, raw_json FROM verdicts \
             WHERE pr_number = ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query(params![pr_number as i64])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            let _: (i64, String, String, String, String) = (
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            );
            n += 1;
        }
        Ok(n)
    }

    /// Writes `outcomes.jsonl` and `ops.jsonl` under `out` in seq order and fsyncs them, as the
    /// export job does from its checkpoint 0. Returns the rows written.
    pub fn export(&self, out: &Path) -> anyhow::Result<u64> {
        let mut rows = 0;
        for (table, relative) in [("outcomes", OUTCOMES_PATH), ("events", OPS_PATH)] {
            let path = out.join(relative);
            std::fs::create_dir_all(path.parent().expect("a relative path with a parent"))?;
            let file = File::create(&path)?;
            let mut writer = BufWriter::with_capacity(1 << 20, &file);
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT line FROM {table} ORDER BY seq"))?;
            let mut lines = stmt.query([])?;
            while let Some(row) = lines.next()? {
                let line = row.get_ref(0)?.as_str()?;
                writer.write_all(line.as_bytes())?;
                writer.write_all(b"\n")?;
                rows += 1;
            }
            writer.flush()?;
            drop(writer);
            file.sync_all()?;
        }
        Ok(rows)
    }

    /// Imports the legacy `outcomes.jsonl` and `ops.jsonl` under `from`, parsed by the same
    /// functions the store's import uses, `batch` lines per transaction, idempotently: each
    /// line with the store's import key, kept in `import_keys` (a second import of the same
    /// files stores nothing). Returns the rows read.
    pub fn import(&mut self, from: &Path, batch: usize) -> anyhow::Result<u64> {
        let mut rows = 0;
        let mut pending: Vec<(Vec<u8>, Record)> = Vec::with_capacity(batch);
        let flush = |db: &mut Sqlite, pending: &mut Vec<(Vec<u8>, Record)>| {
            let keyed = pending
                .iter()
                .map(|(key, record)| (Some(key.as_slice()), record));
            let written = db.write_keyed(keyed);
            pending.clear();
            written
        };
        for (relative, tag) in [(OUTCOMES_PATH, OUTCOMES_TAG), (OPS_PATH, OPS_TAG)] {
            let mut keys = ImportKeys::new(tag);
            let reader = BufReader::with_capacity(1 << 20, File::open(from.join(relative))?);
            for line in reader.lines() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let key = keys.key(line.as_bytes());
                let record = if relative == OUTCOMES_PATH {
                    let Ok(row) = OutcomeRow::parse(line.as_bytes(), SigHashRule::Optional) else {
                        continue;
                    };
                    Record::Outcome(NewOutcome {
                        row,
                        received_at_ms: 0,
                    })
                } else {
                    let Ok(op) = ObservedOp::from_line(&line) else {
                        continue;
                    };
                    Record::Event(NewEvent::new(&op, line, None, None, 0))
                };
                pending.push((key, record));
                if pending.len() == batch {
                    rows += pending.len() as u64;
                    flush(self, &mut pending)?;
                }
            }
        }
        rows += pending.len() as u64;
        flush(self, &mut pending)?;
        Ok(rows)
    }

    /// Folds the WAL into the main file, so the file size is the data's.
    pub fn checkpoint(&self) -> anyhow::Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(db: &Sqlite, table: &str) -> i64 {
        db.conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// The SQLite import does the store's idempotency job: a second import of the same files
    /// stores nothing, a line repeated within a file keeps both copies, and a grown file adds
    /// only its new lines.
    #[test]
    fn import_is_idempotent_like_the_stores() {
        let legacy = tempfile::tempdir().unwrap();
        let row = r#"{"kind":"scenario","sig_hash":"pr1-aaaaaaaa","ok":true}"#;
        let op = r#"{"timestamp":"2026-01-01T00:00:00.000Z","source":"bot","success":true}"#;
        let write = |outcomes: &str, ops: &str| {
            for (path, text) in [(OUTCOMES_PATH, outcomes), (OPS_PATH, ops)] {
                let path = legacy.path().join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
        };
        write(&format!("{row}\n{row}\n"), &format!("{op}\n"));
        let dir = tempfile::tempdir().unwrap();
        let mut db = Sqlite::open(&dir.path().join(DB_FILE)).unwrap();
        assert_eq!(db.import(legacy.path(), 2).unwrap(), 3);
        assert_eq!((count(&db, "outcomes"), count(&db, "events")), (2, 1));
        db.import(legacy.path(), 2).unwrap();
        assert_eq!((count(&db, "outcomes"), count(&db, "events")), (2, 1));
        write(&format!("{row}\n{row}\n{row}\n"), &format!("{op}\n"));
        db.import(legacy.path(), 2).unwrap();
        assert_eq!((count(&db, "outcomes"), count(&db, "events")), (3, 1));
        assert_eq!(count(&db, "import_keys"), 4);
    }
}
