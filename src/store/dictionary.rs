//! The compression dictionary of codec version 3 (`codec.rs`): trained from the database's own
//! verdicts, outcome rows and events once it holds enough of them ([`DictionaryOptions`]), kept in
//! `codec_dictionaries`, and used for every such value written after it, and for the findings
//! memory's values (`findings.rs`).
//!
//! The values stored before the dictionary (all of them, in a file made before schema 7) are
//! rewritten compressed by a conversion that runs like a derived-index build (`derived.rs`):
//! bounded transactions behind a progress mark, so a kill loses one transaction's work and the
//! next open goes on from the mark. Until it is done, plain and compressed values sit side by
//! side and read the same.
//!
//! `meta` keys: [`CURRENT`] (the dictionary new values use), [`PLAIN_BELOW`] (present while
//! values below that seq may still be plain) and [`CONVERTED_THROUGH`] (the conversion's mark).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use redb::{ReadTransaction, WriteTransaction};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::codec::{self, CodecError, Dictionary, registry};
use super::derived::Build;
use super::meta;
use super::tables::{CODEC_DICTIONARIES, EVENTS, META, OUTCOMES, VERDICTS_BY_SEQ};
use super::values::{EventValue, OutcomeValue, VerdictValue};
use super::{Store, StoreError};

/// The dictionary new values are compressed with (absent: none yet).
pub const CURRENT: &str = "codec/dictionary";
/// Present while values with a lower seq may be stored plain: the next seq when the dictionary
/// was made. Removed when the conversion is done.
pub const PLAIN_BELOW: &str = "codec/plain_below";
/// The conversion's progress mark: every value through this seq is converted.
pub const CONVERTED_THROUGH: &str = "codec/converted_through";

/// When the dictionary is trained and how the values stored before it are converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictionaryOptions {
    /// Values (verdicts, outcome rows and events together) a database holds before a
    /// dictionary is trained from them: enough to learn their shapes, soon enough that nearly
    /// every value is written compressed. `u64::MAX`: never (values stay plain).
    pub train_at: u64,
    /// Seqs per transaction of the conversion.
    pub convert_batch: u64,
}

impl Default for DictionaryOptions {
    fn default() -> Self {
        DictionaryOptions {
            train_at: 2_000,
            convert_batch: 4_096,
        }
    }
}
/// Values sampled for training, at most, spread evenly over each table.
const MAX_SAMPLES: u64 = 8_192;
/// Bytes of one sample, at most (a large value's start shows its shape).
const MAX_SAMPLE_BYTES: usize = 4 << 10;
/// Bytes of all samples, at most: about 100 times the dictionary, as zstd advises.
const MAX_TRAINING_BYTES: usize = 4 << 20;
/// The dictionary's size. zstd's guidance is about a hundredth of the samples' bytes.
const DICTIONARY_BYTES: usize = 32 << 10;
/// Writes between two checks of whether to train, while there is no dictionary.
const CHECK_EVERY: u64 = 256;

type ValueTable = TableDefinition<'static, u64, &'static [u8]>;

/// A table whose values are compressed.
struct Compressed {
    name: &'static str,
    table: ValueTable,
    /// How a stored value of any codec version becomes today's plain value.
    plain_of: fn(&[u8]) -> Result<Vec<u8>, CodecError>,
    /// How a plain value is compressed with the dictionary, as a write would store it; `None`
    /// when it stays plain.
    compress: fn(&[u8], &Dictionary) -> Option<Vec<u8>>,
}

const COMPRESSED: [Compressed; 3] = [
    Compressed {
        name: "verdicts_by_seq",
        table: VERDICTS_BY_SEQ,
        plain_of: |v| Ok(codec::encode(&codec::decode::<VerdictValue>(v)?)),
        // Split at its JSON (codec version 5, `values.rs`).
        compress: |plain, dictionary| {
            codec::decode::<VerdictValue>(plain)
                .ok()
                .map(|v| v.encode(Some(dictionary)))
                .filter(|encoded| encoded.first() != Some(&codec::PLAIN_VERSION))
        },
    },
    Compressed {
        name: "outcomes",
        table: OUTCOMES,
        plain_of: |v| Ok(codec::encode(&codec::decode::<OutcomeValue>(v)?)),
        compress: codec::compress,
    },
    Compressed {
        name: "events",
        table: EVENTS,
        plain_of: |v| Ok(codec::encode(&codec::decode::<EventValue>(v)?)),
        compress: codec::compress,
    },
];

/// What the store knows about its dictionary between transactions: a cache of `meta`'s
/// [`CURRENT`] (writes read `meta` itself, see [`current_in`]), and the lock that makes one
/// training and conversion run at a time.
#[derive(Debug, Default)]
pub(super) struct CodecState {
    current: std::sync::RwLock<Option<Arc<Dictionary>>>,
    /// Puts until the next check of whether to train (while there is no dictionary).
    until_check: AtomicU64,
    training: Mutex<()>,
}

impl CodecState {
    /// The dictionary values are written with now, as last seen.
    pub(super) fn current(&self) -> Option<Arc<Dictionary>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, dictionary: Arc<Dictionary>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(dictionary);
    }
}

/// The dictionary a write transaction compresses with: the one `meta` names, so that a value
/// is only ever compressed with a dictionary committed in the same file before it (or in the
/// same transaction). `None` while there is none, or when the process cannot use it (values
/// are then written plain; `check` reports the dictionary).
pub(super) fn current_in(
    meta_table: &impl ReadableTable<&'static str, u64>,
) -> Result<Option<Arc<Dictionary>>, StoreError> {
    let id = meta::get(meta_table, CURRENT)?;
    Ok(u32::try_from(id).ok().and_then(registry::get))
}

impl Store {
    /// Makes the file's dictionaries known to the process and picks the current one; trains
    /// one if the file has enough values and none; converts the values still stored plain.
    /// Never fails the open: a dictionary the process cannot load, or a training or
    /// conversion that fails, is logged and leaves values as they are (`check` reports what
    /// is wrong; the next open tries again).
    pub(super) fn open_dictionaries(&self) -> Result<(), StoreError> {
        let txn = self.db()?.begin_read()?;
        for row in txn.open_table(CODEC_DICTIONARIES)?.iter()? {
            let (id, bytes) = row?;
            if registry::register(bytes.value()).is_none() {
                tracing::warn!(
                    dictionary = id.value(),
                    "cannot load this compression dictionary (not one, or another with its \
                     id is loaded): values that name it cannot be read"
                );
            }
        }
        if let Some(dictionary) = current_in(&txn.open_table(META)?)? {
            self.shared.codec.set(dictionary);
        }
        drop(txn);
        if let Err(error) = self.train_and_convert() {
            // A failed write leaves the database refusing every later one ("previous I/O
            // error"): the open fails with the error itself, so that a start on a full disk
            // waits for space as any open that meets it does, rather than exiting on the
            // next step's "previous I/O error" (a review's).
            if error.is_storage_fault() {
                return Err(error);
            }
            tracing::warn!(%error, "could not train or apply the compression dictionary");
        }
        Ok(())
    }

    /// While the store has no dictionary: the values it needs before it trains one. A bulk
    /// writer (the import) commits its first transaction there, so that the rest is written
    /// compressed rather than written plain and converted afterwards.
    pub fn values_before_dictionary(&self) -> Option<u64> {
        let train_at = self.shared.options.dictionary.train_at;
        (self.shared.codec.current().is_none() && train_at != u64::MAX).then_some(train_at)
    }

    /// Called by writes while there is no dictionary, with the number of puts written: every
    /// [`CHECK_EVERY`] puts, trains one if the file holds enough values
    /// ([`DictionaryOptions`]), and then converts the values written before it. Never fails
    /// the write that called it.
    pub(super) fn after_plain_writes(&self, n_puts: usize) {
        let codec = &self.shared.codec;
        let n = n_puts as u64;
        let left = codec
            .until_check
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(n))
            })
            .unwrap_or(0);
        if left > n {
            return;
        }
        // The write is committed whatever happens here: a failure only leaves values plain
        // for longer (the next check, or the next open, tries again).
        match self.train_and_convert() {
            Ok(true) => {}
            Ok(false) => codec.until_check.store(CHECK_EVERY, Ordering::Relaxed),
            Err(error) => {
                // Not again for a while: training reads the stored values.
                let later = self.shared.options.dictionary.train_at.max(CHECK_EVERY);
                codec.until_check.store(later, Ordering::Relaxed);
                tracing::warn!(%error, "could not train or apply the compression dictionary");
                // A failed write leaves the database refusing every later one: the store is
                // faulted by this error (a full disk: 507) and recovers as from any write's.
                self.note_error(&error);
            }
        }
    }

    /// Trains a dictionary if there is none and the file holds enough values, then converts
    /// the values stored plain; one at a time. Returns whether there is a dictionary now.
    fn train_and_convert(&self) -> Result<bool, StoreError> {
        let _one_at_a_time = self
            .shared
            .codec
            .training
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.shared.codec.current().is_none() && !self.train_if_due()? {
            return Ok(false);
        }
        self.convert_plain_values()?;
        Ok(true)
    }

    /// Trains a dictionary from the stored values and makes it current, if the file holds
    /// enough values; returns whether there is a dictionary now.
    fn train_if_due(&self) -> Result<bool, StoreError> {
        let samples = {
            let txn = self.db()?.begin_read()?;
            let mut total = 0;
            for Compressed { table, .. } in COMPRESSED {
                total += txn.open_table(table)?.len()?;
            }
            if total < self.shared.options.dictionary.train_at.max(1) {
                return Ok(false);
            }
            samples(&txn, total)?
        };
        let started = std::time::Instant::now();
        let trained = zstd::dict::from_samples(&samples, DICTIONARY_BYTES);
        let training_ms = started.elapsed().as_millis() as u64;
        let Ok(bytes) = trained else {
            // Too few distinct samples to learn from: plain values until the next check.
            return Ok(false);
        };
        let Some(dictionary) = registry::register(&bytes) else {
            return Ok(false);
        };
        let txn = self.begin_write()?;
        let current = {
            let mut meta_table = txn.open_table(META)?;
            match current_in(&meta_table)? {
                // Another process or an earlier open trained one meanwhile: it stays current.
                Some(current) => current,
                None => {
                    txn.open_table(CODEC_DICTIONARIES)?
                        .insert(dictionary.id(), dictionary.bytes())?;
                    let next_seq = meta::get(&meta_table, meta::LAST_SEQ)? + 1;
                    meta_table.insert(CURRENT, u64::from(dictionary.id()))?;
                    meta_table.insert(PLAIN_BELOW, next_seq)?;
                    dictionary
                }
            }
        };
        txn.commit()?;
        tracing::info!(
            dictionary = current.id(),
            bytes = current.bytes().len(),
            samples = samples.len(),
            sample_bytes = samples.iter().map(Vec::len).sum::<usize>(),
            training_ms,
            "trained the values' compression dictionary"
        );
        self.shared.codec.set(current);
        Ok(true)
    }

    /// Rewrites compressed every value stored plain below [`PLAIN_BELOW`].
    fn convert_plain_values(&self) -> Result<(), StoreError> {
        let batch = self.shared.options.dictionary.convert_batch.max(1);
        let (dictionary, plain_below) = {
            let txn = self.db()?.begin_read()?;
            let meta_table = txn.open_table(META)?;
            (
                current_in(&meta_table)?,
                meta::get(&meta_table, PLAIN_BELOW)?,
            )
        };
        let Some(dictionary) = dictionary else {
            return Ok(());
        };
        self.build_derived(&Build {
            what: "compressed values",
            mark: CONVERTED_THROUGH,
            rules: "",
            built: "",
            is_current: &|meta_table| Ok(meta::get(meta_table, PLAIN_BELOW)? == 0),
            clear: &|_| Ok(()),
            step: &move |txn, after| convert_after(txn, after, batch, plain_below, &dictionary),
            finish: &|meta_table| {
                meta_table.remove(PLAIN_BELOW)?;
                Ok(())
            },
        })
    }
}

/// Up to [`MAX_SAMPLES`] plain values, spread evenly over the tables and within each, each
/// cut to [`MAX_SAMPLE_BYTES`] and [`MAX_TRAINING_BYTES`] in all: training costs a bounded
/// amount of memory whatever the values. A value that cannot be read is left out (`check`
/// reports it).
fn samples(txn: &ReadTransaction, total: u64) -> Result<Vec<Vec<u8>>, StoreError> {
    let step = total.div_ceil(MAX_SAMPLES).max(1);
    let mut out = Vec::new();
    let mut bytes = 0;
    for Compressed {
        table, plain_of, ..
    } in COMPRESSED
    {
        for (i, row) in txn.open_table(table)?.iter()?.enumerate() {
            if !(i as u64).is_multiple_of(step) {
                continue;
            }
            let (_, value) = row?;
            let Ok(mut plain) = plain_of(value.value()) else {
                continue;
            };
            plain.truncate(1 + MAX_SAMPLE_BYTES);
            plain.remove(0);
            bytes += plain.len();
            out.push(plain);
            if bytes >= MAX_TRAINING_BYTES {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Compresses the plain values with seqs in `(after, after + batch]`, below `plain_below`;
/// returns the last seq done, `None` when `after` reached `plain_below`.
fn convert_after(
    txn: &WriteTransaction,
    after: u64,
    batch: u64,
    plain_below: u64,
    dictionary: &Dictionary,
) -> Result<Option<u64>, StoreError> {
    if after.saturating_add(1) >= plain_below {
        return Ok(None);
    }
    let through = after.saturating_add(batch).min(plain_below - 1);
    for Compressed {
        name,
        table: definition,
        plain_of,
        compress,
    } in COMPRESSED
    {
        let mut table = txn.open_table(definition)?;
        let mut rewritten = Vec::new();
        for row in table.range(after + 1..=through)? {
            let (seq, value) = row?;
            // Compressed already, or a reference to a verdict (`verdict_lines.rs`).
            if matches!(
                value.value().first(),
                Some(&codec::CODEC_VERSION | &codec::REFERENCE_VERSION | &codec::SPLIT_VERSION)
            ) {
                continue;
            }
            let plain = match plain_of(value.value()) {
                Ok(plain) => plain,
                Err(error) => {
                    // Left as it is: `check` reports it, and reading it fails as before.
                    tracing::warn!(table = name, seq = seq.value(), %error, "value not converted");
                    continue;
                }
            };
            if let Some(compressed) = compress(&plain, dictionary) {
                rewritten.push((seq.value(), compressed));
            }
        }
        for (seq, compressed) in rewritten {
            table.insert(seq, compressed.as_slice())?;
        }
    }
    Ok(Some(through))
}

/// `check`'s part: every dictionary is stored under its own id, the current one is stored,
/// every compressed value names a dictionary of this file (not only one the process knows from
/// another), and the conversion's marks agree.
pub(super) fn check_dictionaries(
    txn: &ReadTransaction,
    report: &mut super::CheckReport,
) -> Result<(), StoreError> {
    let mut stored = std::collections::HashSet::new();
    for row in txn.open_table(CODEC_DICTIONARIES)?.iter()? {
        let (id, bytes) = row?;
        let own = zstd::zstd_safe::get_dict_id_from_dict(bytes.value()).map(|id| id.get());
        if own != Some(id.value()) {
            report.problem(format!(
                "codec_dictionaries: the dictionary under id {} has id {own:?}",
                id.value()
            ));
        }
        stored.insert(id.value());
    }
    let meta_table = txn.open_table(META)?;
    let current = meta::get(&meta_table, CURRENT)?;
    if current != 0 && !u32::try_from(current).is_ok_and(|id| stored.contains(&id)) {
        report.problem(format!(
            "meta names dictionary {current}, which is not stored"
        ));
    }
    let (plain_below, converted) = (
        meta::get(&meta_table, PLAIN_BELOW)?,
        meta_table.get(CONVERTED_THROUGH)?.map(|v| v.value()),
    );
    if let Some(converted) = converted
        && (plain_below == 0 || converted >= plain_below)
    {
        report.problem(format!(
            "the conversion's mark {converted} is not below its end {plain_below}"
        ));
    }
    for Compressed { name, table, .. } in COMPRESSED {
        for row in txn.open_table(table)?.iter()? {
            let (seq, value) = row?;
            if let Some(id) = codec::dictionary_of(value.value())
                && !stored.contains(&id)
            {
                report.problem(format!(
                    "{name} seq {}: compressed with dictionary {id}, which is not stored",
                    seq.value()
                ));
            }
        }
    }
    Ok(())
}
