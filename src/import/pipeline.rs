//! The import's writer pipeline: puts handed in chunks to a writer thread that applies them in
//! order and commits every `commit_every`, while the reading thread parses the next chunk; the
//! writer's answers are counted into the report.

use crate::store::{BulkWriter, Put, StoreError, Written};

use super::report::{ImportError, ImportReport};

/// What a put in a batch was, to count its outcome.
#[derive(Debug, Clone, Copy)]
pub(super) enum PutKind {
    Outcome,
    Op,
    VerdictFromFile,
    VerdictFromRow,
    VerdictWithoutRow,
}

/// Puts handed to the writer thread at a time: small enough that the writer starts early and
/// the two threads keep each other busy, large enough that the handovers cost nothing.
pub(super) const CHUNK: usize = 8_192;

/// Most work ([`Put::work`], about the bytes a put holds) in one chunk: a chunk of large
/// verdict files ends sooner than [`CHUNK`] puts, so that the few chunks in memory at once stay
/// small whatever the files.
const CHUNK_WORK: usize = 16 << 20;

/// Most work in one transaction, whose pages redb holds until it commits: a transaction of
/// large records commits before `--batch-size` puts (one of 250,000 legacy lines of about
/// 250 bytes is about 140 MiB of work and commits at its count).
const TXN_WORK: usize = 128 << 20;

/// Where the writer thread writes: the store's [`BulkWriter`], or a test's fake.
pub(super) trait Sink {
    /// Applies the puts in the open transaction.
    fn write(&mut self, puts: &[Put]) -> Result<Vec<Written>, StoreError>;
    /// Commits the open transaction durably.
    fn commit(&mut self) -> Result<(), StoreError>;
}

impl Sink for BulkWriter<'_> {
    fn write(&mut self, puts: &[Put]) -> Result<Vec<Written>, StoreError> {
        BulkWriter::write(self, puts)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        BulkWriter::commit(self)
    }
}

/// What the reading thread hands to the writer thread.
enum ToWriter {
    /// Puts to apply, and whether to commit after them.
    Chunk(Vec<Put>, Vec<PutKind>, bool),
    /// Commit what is left; no more chunks follow.
    Finish,
}

/// The writer's answer to each [`ToWriter`]: for a chunk, its puts (handed back to be freed on
/// the reading thread, off the writer's path), what became of them and the time the writer
/// spent.
enum FromWriter {
    Chunk(Vec<Put>, Vec<PutKind>, Vec<Written>, std::time::Duration),
    Finished(std::time::Duration),
}

/// Puts on their way to the store. Chunks of them go to a writer thread, which applies them in
/// order in one transaction, committed after every `commit_every` puts (a chunk ends there) and
/// at the end, while this thread reads and parses the next chunk: the import's two halves
/// (parsing, writing) overlap on two cores. The handover is a rendezvous, so besides the open
/// transaction's deferred index entries a few chunks are in memory: the one being filled, the
/// one being written, and the ones handed back until the next flush frees them. The counts in
/// the report are final once [`Batch::finish`] returns `Ok`; an import that stops early (a
/// failed write, a file that cannot be read) keeps the transactions committed before, and
/// rolls back the open one.
pub(super) struct Batch {
    chunk: usize,
    commit_every: usize,
    /// Where the first transaction ends, when not at `commit_every` (see
    /// [`Batch::first_commit_after`]).
    first_commit: Option<usize>,
    /// Puts handed to the writer since its last commit, and their work.
    in_txn: usize,
    txn_work: usize,
    puts: Vec<Put>,
    /// The work of `puts`.
    chunk_work: usize,
    kinds: Vec<PutKind>,
    to_writer: Option<std::sync::mpsc::SyncSender<ToWriter>>,
    from_writer: std::sync::mpsc::Receiver<Result<FromWriter, StoreError>>,
    in_flight: usize,
}

impl Batch {
    /// Ends the first transaction after `n` puts (at most `commit_every`): a store without a
    /// compression dictionary trains one once that much is committed, and compresses the rest.
    pub(super) fn first_commit_after(mut self, n: usize) -> Batch {
        self.first_commit = Some(n.clamp(1, self.commit_every));
        self
    }

    fn commit_limit(&self) -> usize {
        self.first_commit.unwrap_or(self.commit_every)
    }

    /// Starts the writer thread in `scope`; it ends when the batch is finished or dropped, or
    /// after its first failed write or commit.
    pub(super) fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        mut sink: impl Sink + Send + 'scope,
        chunk: usize,
        commit_every: usize,
    ) -> Batch {
        let (to_writer, handed) = std::sync::mpsc::sync_channel::<ToWriter>(0);
        let (done, from_writer) = std::sync::mpsc::channel();
        scope.spawn(move || {
            for message in handed {
                let start = std::time::Instant::now();
                let result = match message {
                    ToWriter::Chunk(puts, kinds, commit) => sink.write(&puts).and_then(|written| {
                        if commit {
                            sink.commit()?;
                        }
                        Ok(FromWriter::Chunk(puts, kinds, written, start.elapsed()))
                    }),
                    ToWriter::Finish => sink
                        .commit()
                        .map(|()| FromWriter::Finished(start.elapsed())),
                };
                let failed = result.is_err();
                if done.send(result).is_err() || failed {
                    return;
                }
            }
        });
        Batch {
            chunk,
            commit_every,
            first_commit: None,
            in_txn: 0,
            txn_work: 0,
            puts: Vec::with_capacity(chunk),
            chunk_work: 0,
            kinds: Vec::with_capacity(chunk),
            to_writer: Some(to_writer),
            from_writer,
            in_flight: 0,
        }
    }

    pub(super) fn push(
        &mut self,
        put: Put,
        kind: PutKind,
        report: &mut ImportReport,
    ) -> Result<(), ImportError> {
        self.chunk_work += put.work();
        self.puts.push(put);
        self.kinds.push(kind);
        if self.puts.len() >= self.chunk
            || self.chunk_work >= CHUNK_WORK
            || self.in_txn + self.puts.len() >= self.commit_limit()
            || self.txn_work + self.chunk_work >= TXN_WORK
        {
            self.flush(report)?;
        }
        Ok(())
    }

    /// Hands the puts so far to the writer (waiting while it still writes the previous chunk)
    /// and counts every chunk it has written meanwhile.
    fn flush(&mut self, report: &mut ImportReport) -> Result<(), ImportError> {
        if !self.puts.is_empty() {
            let puts = std::mem::replace(&mut self.puts, Vec::with_capacity(self.chunk));
            let kinds = std::mem::replace(&mut self.kinds, Vec::with_capacity(self.chunk));
            self.in_txn += puts.len();
            self.txn_work += std::mem::take(&mut self.chunk_work);
            let commit = self.in_txn >= self.commit_limit() || self.txn_work >= TXN_WORK;
            if commit {
                self.in_txn = 0;
                self.txn_work = 0;
                self.first_commit = None;
            }
            self.send(ToWriter::Chunk(puts, kinds, commit), report)?;
        }
        while let Ok(answer) = self.from_writer.try_recv() {
            self.in_flight -= 1;
            count(answer?, report);
        }
        Ok(())
    }

    fn send(&mut self, message: ToWriter, report: &mut ImportReport) -> Result<(), ImportError> {
        let sent = self
            .to_writer
            .as_ref()
            .is_some_and(|to_writer| to_writer.send(message).is_ok());
        if !sent {
            // The writer stopped: its last answer is the failed write. These puts were not
            // written, so this can never end in Ok.
            self.wait_all(report)?;
            return Err(ImportError::WriterStopped);
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Writes what is left, commits and waits for every answer: when this returns `Ok`, all
    /// the batch's puts are committed.
    pub(super) fn finish(mut self, report: &mut ImportReport) -> Result<(), ImportError> {
        self.flush(report)?;
        self.send(ToWriter::Finish, report)?;
        self.wait_all(report)
    }

    fn wait_all(&mut self, report: &mut ImportReport) -> Result<(), ImportError> {
        self.to_writer = None;
        while self.in_flight > 0 {
            let Ok(answer) = self.from_writer.recv() else {
                break;
            };
            self.in_flight -= 1;
            count(answer?, report);
        }
        // Fewer answers than messages: the writer thread died without one (a panic, which the
        // scope propagates when it joins).
        if self.in_flight > 0 {
            return Err(ImportError::WriterStopped);
        }
        Ok(())
    }
}

/// Counts one answer of the writer into the report.
fn count(answer: FromWriter, report: &mut ImportReport) {
    let (puts, kinds, written, took) = match answer {
        FromWriter::Chunk(puts, kinds, written, took) => (puts, kinds, written, took),
        FromWriter::Finished(took) => (Vec::new(), Vec::new(), Vec::new(), took),
    };
    drop(puts);
    report.store_write_ms += u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    for (kind, written) in kinds.iter().zip(written) {
        let stored = matches!(written, Written::Stored { .. });
        let counts = match kind {
            PutKind::Outcome => Some(&mut report.outcomes),
            PutKind::Op => Some(&mut report.ops),
            PutKind::VerdictWithoutRow => Some(&mut report.verdict_files),
            PutKind::VerdictFromFile | PutKind::VerdictFromRow => None,
        };
        if let Some(counts) = counts {
            if stored {
                counts.stored += 1;
            } else {
                counts.duplicates += 1;
            }
        }
        if matches!(
            kind,
            PutKind::VerdictFromFile | PutKind::VerdictFromRow | PutKind::VerdictWithoutRow
        ) {
            let v = &mut report.verdicts;
            if !stored {
                v.duplicates += 1;
                continue;
            }
            v.stored += 1;
            match kind {
                PutKind::VerdictFromFile => v.from_file += 1,
                PutKind::VerdictFromRow => v.from_row += 1,
                _ => v.without_row += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Record;
    use std::sync::Mutex;

    fn row(i: u64) -> Put {
        let line = format!(r#"{{"sig_hash":"pr{i}-abcdef01","n":{i}}}"#);
        Put::from(crate::intake::outcome_record(line.as_bytes(), 0).unwrap())
    }

    /// What the writer thread did, in order.
    #[derive(Debug, PartialEq, Eq)]
    enum Did {
        Write(Vec<String>),
        Commit,
    }

    /// A sink that logs what it is asked to do and answers a write with `write(call_number,
    /// puts)` and a commit with `commit()`.
    struct Fake<'a, W, C> {
        log: &'a Mutex<Vec<Did>>,
        writes: u64,
        write: W,
        commit: C,
    }

    impl<W, C> Sink for Fake<'_, W, C>
    where
        W: FnMut(u64, &[Put]) -> Result<Vec<Written>, StoreError>,
        C: FnMut() -> Result<(), StoreError>,
    {
        fn write(&mut self, puts: &[Put]) -> Result<Vec<Written>, StoreError> {
            let lines = puts.iter().map(line).collect();
            self.log.lock().unwrap().push(Did::Write(lines));
            self.writes += 1;
            (self.write)(self.writes - 1, puts)
        }

        fn commit(&mut self) -> Result<(), StoreError> {
            self.log.lock().unwrap().push(Did::Commit);
            (self.commit)()
        }
    }

    /// Runs `n` outcome puts through a `Batch` handing `chunk` puts at a time to a fake sink
    /// (see [`Fake`]) and committing every `commit_every`; returns what the sink did.
    fn run(
        n: u64,
        (chunk, commit_every): (usize, usize),
        write: impl FnMut(u64, &[Put]) -> Result<Vec<Written>, StoreError> + Send,
        commit: impl FnMut() -> Result<(), StoreError> + Send,
    ) -> (Result<(), ImportError>, ImportReport, Vec<Did>) {
        run_first(n, (chunk, commit_every), None, write, commit)
    }

    /// [`run`], with the first transaction ending after `first` puts when given.
    fn run_first(
        n: u64,
        (chunk, commit_every): (usize, usize),
        first: Option<usize>,
        write: impl FnMut(u64, &[Put]) -> Result<Vec<Written>, StoreError> + Send,
        commit: impl FnMut() -> Result<(), StoreError> + Send,
    ) -> (Result<(), ImportError>, ImportReport, Vec<Did>) {
        let log = Mutex::new(Vec::new());
        let mut report = ImportReport::default();
        let result = std::thread::scope(|scope| {
            let sink = Fake {
                log: &log,
                writes: 0,
                write,
                commit,
            };
            let mut batch = Batch::start(scope, sink, chunk, commit_every);
            if let Some(first) = first {
                batch = batch.first_commit_after(first);
            }
            for i in 0..n {
                batch.push(row(i), PutKind::Outcome, &mut report)?;
            }
            batch.finish(&mut report)
        });
        (result, report, log.into_inner().unwrap())
    }

    fn line(put: &Put) -> String {
        match &put.record {
            Record::Outcome(o) => o.row.line.clone(),
            other => panic!("only rows are put here, not {other:?}"),
        }
    }

    fn lines(range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|i| line(&row(i))).collect()
    }

    fn stored(puts: &[Put]) -> Vec<Written> {
        (0..puts.len() as u64)
            .map(|seq| Written::Stored {
                seq,
                outcome_seq: None,
                event_seq: None,
            })
            .collect()
    }

    fn ok() -> Result<(), StoreError> {
        Ok(())
    }

    #[test]
    fn every_chunk_is_written_in_order_committed_and_counted_by_the_time_finish_returns() {
        let (result, report, did) = run(
            10,
            (3, 6),
            |call, puts| {
                // A slow writer: the reader runs ahead and must still see every answer.
                std::thread::sleep(std::time::Duration::from_millis(5 * (call % 2)));
                Ok(if call == 1 {
                    vec![Written::Duplicate { seq: 0 }; puts.len()]
                } else {
                    stored(puts)
                })
            },
            ok,
        );
        result.unwrap();
        assert_eq!(report.outcomes.stored, 7);
        assert_eq!(report.outcomes.duplicates, 3);
        let expected = vec![
            Did::Write(lines(0..3)),
            Did::Write(lines(3..6)),
            // Six puts in the transaction: committed before the next chunk is written.
            Did::Commit,
            Did::Write(lines(6..9)),
            Did::Write(lines(9..10)),
            // What is left, at the end.
            Did::Commit,
        ];
        assert_eq!(did, expected);
    }

    #[test]
    fn a_failed_write_stops_the_import_with_its_error_and_commits_nothing_after_it() {
        let (result, report, did) = run(
            20,
            (2, 4),
            |call, puts| {
                if call == 2 {
                    Err(StoreError::Backup("injected".into()))
                } else {
                    Ok(stored(puts))
                }
            },
            ok,
        );
        let error = result.unwrap_err();
        assert!(error.to_string().contains("injected"), "{error}");
        // The two chunks before the failure were written (and committed) and are counted; the
        // writer takes nothing after the failed one.
        assert_eq!(report.outcomes.stored, 4);
        let expected = vec![
            Did::Write(lines(0..2)),
            Did::Write(lines(2..4)),
            Did::Commit,
            Did::Write(lines(4..6)),
        ];
        assert_eq!(did, expected);
    }

    #[test]
    fn a_transaction_holds_exactly_commit_every_puts_whatever_the_chunk_size() {
        let (result, _, did) = run(11, (4, 6), |_, puts| Ok(stored(puts)), ok);
        result.unwrap();
        let expected = vec![
            Did::Write(lines(0..4)),
            // The chunk ends where the transaction does.
            Did::Write(lines(4..6)),
            Did::Commit,
            Did::Write(lines(6..10)),
            Did::Write(lines(10..11)),
            Did::Commit,
        ];
        assert_eq!(did, expected);
    }

    /// Large records end chunks and transactions before their counts: an import of 150
    /// verdict files of 3.6 MB held all of them at once (634 MB resident, a review's), as
    /// neither a chunk (8,192 puts) nor a transaction (250,000) had reached its count.
    #[test]
    fn chunks_and_transactions_of_large_records_end_at_their_work() {
        let pad = "x".repeat(3 << 20);
        let big = |i: u64| {
            let line = format!(r#"{{"sig_hash":"pr{i}-abcdef01","pad":"{pad}"}}"#);
            Put::from(crate::intake::outcome_record(line.as_bytes(), 0).unwrap())
        };
        let log = Mutex::new(Vec::new());
        let mut report = ImportReport::default();
        std::thread::scope(|scope| {
            let sink = Fake {
                log: &log,
                writes: 0,
                write: |_, puts: &[Put]| Ok(stored(puts)),
                commit: ok,
            };
            let mut batch = Batch::start(scope, sink, 1_000, 1_000);
            for i in 0..50 {
                batch.push(big(i), PutKind::Outcome, &mut report)?;
            }
            batch.finish(&mut report)
        })
        .unwrap();
        assert_eq!(report.outcomes.stored, 50);
        let (mut in_txn, mut txns) = (0, Vec::new());
        for did in log.into_inner().unwrap() {
            match did {
                Did::Write(lines) => {
                    assert!(lines.len() <= 6, "a chunk of {} puts of 3 MiB", lines.len());
                    in_txn += lines.len();
                }
                Did::Commit => txns.push(std::mem::take(&mut in_txn)),
            }
        }
        // 128 MiB of work: 43 puts of a little over 3 MiB, the last ending the transaction.
        assert_eq!(txns, [43, 7]);
    }

    /// The first transaction can end early (a store training its dictionary); the others
    /// hold `commit_every` puts.
    #[test]
    fn the_first_transaction_can_end_early() {
        let (result, _, did) = run_first(13, (4, 6), Some(3), |_, puts| Ok(stored(puts)), ok);
        result.unwrap();
        let expected = vec![
            Did::Write(lines(0..3)),
            Did::Commit,
            Did::Write(lines(3..7)),
            Did::Write(lines(7..9)),
            Did::Commit,
            Did::Write(lines(9..13)),
            Did::Commit,
        ];
        assert_eq!(did, expected);
    }

    #[test]
    fn a_failed_commit_stops_the_import_with_its_error() {
        for n in [5, 6] {
            // 5: the commit at the end fails; 6: the one after the second chunk fails.
            let (result, _, did) = run(
                n,
                (3, 6),
                |_, puts| Ok(stored(puts)),
                || Err(StoreError::Backup("commit failed".into())),
            );
            let error = result.unwrap_err();
            assert!(error.to_string().contains("commit failed"), "{n}: {error}");
            assert_eq!(did.last(), Some(&Did::Commit), "{n}");
            assert_eq!(did.iter().filter(|d| **d == Did::Commit).count(), 1, "{n}");
        }
    }
}
