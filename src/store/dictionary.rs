//! The compression dictionary of codec version 3 (`codec.rs`): trained from the database's own
//! verdicts, outcome rows and events once it holds enough of them ([`DictionaryOptions`]), kept in
//! `codec_dictionaries`, and used for every such value written after it.
//!
//! The values stored before the dictionary (all of them, in a file made before schema 7) are
//! rewritten compressed by a conversion that runs like a derived-index build (`derived.rs`):
//! bounded transactions behind a progress mark, so a kill loses one transaction's work and the
//! next open goes on from the mark. Until it is done, plain and compressed values sit side by
//! side and read the same.
//!
//! `meta` keys: [`CURRENT`] (the dictionary new values use), [`PLAIN_BELOW`] (present while
//! values below that seq may still be plain) and [`CONVERTED_THROUGH`] (the conversion's mark).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
/// The dictionary's size. zstd's guidance is about a hundredth of the samples' bytes.
const DICTIONARY_BYTES: usize = 32 << 10;
/// Writes between two checks of whether to train, while there is no dictionary.
const CHECK_EVERY: u64 = 256;

type ValueTable = TableDefinition<'static, u64, &'static [u8]>;

/// The tables whose values are compressed, each with how a stored value of any codec version
/// becomes today's plain value.
#[expect(clippy::type_complexity, reason = "a table of three rows")]
const COMPRESSED: [(&str, ValueTable, fn(&[u8]) -> Result<Vec<u8>, CodecError>); 3] = [
    ("verdicts_by_seq", VERDICTS_BY_SEQ, |v| {
        Ok(codec::encode(&codec::decode::<VerdictValue>(v)?))
    }),
    ("outcomes", OUTCOMES, |v| {
        Ok(codec::encode(&codec::decode::<OutcomeValue>(v)?))
    }),
    ("events", EVENTS, |v| {
        Ok(codec::encode(&codec::decode::<EventValue>(v)?))
    }),
];

/// What the store knows about its dictionary between transactions.
#[derive(Debug, Default)]
pub(super) struct CodecState {
    current: std::sync::RwLock<Option<Arc<Dictionary>>>,
    /// Puts until the next check of whether to train (while there is no dictionary).
    until_check: AtomicU64,
}

impl CodecState {
    /// The dictionary values are written with now.
    pub(super) fn current(&self) -> Option<Arc<Dictionary>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, dictionary: Arc<Dictionary>) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(dictionary);
    }
}

impl Store {
    /// Makes the file's dictionaries known to the process and picks the current one; trains
    /// one if the file has enough values and none; converts the values still stored plain.
    pub(super) fn open_dictionaries(&self) -> Result<(), StoreError> {
        let txn = self.db()?.begin_read()?;
        for row in txn.open_table(CODEC_DICTIONARIES)?.iter()? {
            let (id, bytes) = row?;
            if registry::register(bytes.value()).is_none() {
                return Err(StoreError::Codec {
                    table: "codec_dictionaries",
                    seq: id.value().into(),
                    source: CodecError::Corrupt(
                        "not a zstd dictionary, or another with its id is loaded".into(),
                    ),
                });
            }
        }
        let current = meta::get(&txn.open_table(META)?, CURRENT)?;
        drop(txn);
        if current != 0 {
            let id = u32::try_from(current).unwrap_or(0);
            let dictionary = registry::get(id).ok_or(StoreError::Codec {
                table: "meta",
                seq: current,
                source: CodecError::UnknownDictionary(id),
            })?;
            self.shared.codec.set(dictionary);
        } else if !self.train_if_due()? {
            return Ok(());
        }
        self.convert_plain_values()
    }

    /// While the store has no dictionary: the values it needs before it trains one. A bulk
    /// writer (the import) commits its first transaction there, so that the rest is written
    /// compressed rather than written plain and converted afterwards.
    pub fn values_before_dictionary(&self) -> Option<u64> {
        let train_at = self.shared.options.dictionary.train_at;
        (self.shared.codec.current().is_none() && train_at != u64::MAX).then_some(train_at)
    }

    /// Called by writes while there is no dictionary, with the number of puts written: every
    /// [`CHECK_EVERY`] puts, trains one if the file holds enough values ([`DictionaryOptions`]), and then
    /// converts the values written before it. Never fails the write that called it.
    pub(super) fn after_plain_writes(&self, n_puts: usize) {
        let codec = &self.shared.codec;
        let n = n_puts as u64;
        let left = codec.until_check.load(Ordering::Relaxed);
        if left > n {
            codec.until_check.store(left - n, Ordering::Relaxed);
            return;
        }
        codec.until_check.store(CHECK_EVERY, Ordering::Relaxed);
        // The write is committed whatever happens here: a failure only leaves values plain
        // for longer (the next check, or the next open, tries again).
        let trained = self.train_if_due().and_then(|trained| {
            if trained {
                self.convert_plain_values()?;
            }
            Ok(())
        });
        if let Err(error) = trained {
            tracing::warn!(%error, "could not train or apply the compression dictionary");
        }
    }

    /// Trains a dictionary from the stored values and makes it current, if there is none and
    /// the file holds enough values; returns whether it did.
    fn train_if_due(&self) -> Result<bool, StoreError> {
        if self.shared.codec.current().is_some() {
            return Ok(false);
        }
        let samples = {
            let txn = self.db()?.begin_read()?;
            let mut total = 0;
            for (_, table, _) in COMPRESSED {
                total += txn.open_table(table)?.len()?;
            }
            if total < self.shared.options.dictionary.train_at.max(1) {
                return Ok(false);
            }
            samples(&txn, total)?
        };
        let Ok(bytes) = zstd::dict::from_samples(&samples, DICTIONARY_BYTES) else {
            // Too few distinct samples to learn from: plain values until the next check.
            return Ok(false);
        };
        let Some(dictionary) = registry::register(&bytes) else {
            return Ok(false);
        };
        let txn = self.begin_write()?;
        {
            txn.open_table(CODEC_DICTIONARIES)?
                .insert(dictionary.id(), dictionary.bytes())?;
            let mut meta_table = txn.open_table(META)?;
            let next_seq = meta::get(&meta_table, meta::LAST_SEQ)? + 1;
            meta_table.insert(CURRENT, u64::from(dictionary.id()))?;
            meta_table.insert(PLAIN_BELOW, next_seq)?;
        }
        txn.commit()?;
        tracing::info!(
            dictionary = dictionary.id(),
            bytes = dictionary.bytes().len(),
            samples = samples.len(),
            "trained the values' compression dictionary"
        );
        self.shared.codec.set(dictionary);
        Ok(true)
    }

    /// Rewrites compressed every value stored plain below [`PLAIN_BELOW`].
    fn convert_plain_values(&self) -> Result<(), StoreError> {
        let batch = self.shared.options.dictionary.convert_batch.max(1);
        let (Some(dictionary), plain_below) = (self.shared.codec.current(), {
            let txn = self.db()?.begin_read()?;
            meta::get(&txn.open_table(META)?, PLAIN_BELOW)?
        }) else {
            return Ok(());
        };
        self.build_derived(&Build {
            what: "compressed values",
            mark: CONVERTED_THROUGH,
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

/// Up to [`MAX_SAMPLES`] plain values, spread evenly over the tables and within each.
fn samples(txn: &ReadTransaction, total: u64) -> Result<Vec<Vec<u8>>, StoreError> {
    let step = total.div_ceil(MAX_SAMPLES).max(1);
    let mut out = Vec::new();
    for (name, table, plain_of) in COMPRESSED {
        for (i, row) in txn.open_table(table)?.iter()?.enumerate() {
            if !(i as u64).is_multiple_of(step) {
                continue;
            }
            let (seq, value) = row?;
            let mut plain = plain_of(value.value()).map_err(|source| StoreError::Codec {
                table: name,
                seq: seq.value(),
                source,
            })?;
            plain.remove(0);
            out.push(plain);
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
    for (name, definition, plain_of) in COMPRESSED {
        let mut table = txn.open_table(definition)?;
        let mut rewritten = Vec::new();
        for row in table.range(after + 1..=through)? {
            let (seq, value) = row?;
            if value.value().first() == Some(&codec::CODEC_VERSION) {
                continue;
            }
            let plain = plain_of(value.value()).map_err(|source| StoreError::Codec {
                table: name,
                seq: seq.value(),
                source,
            })?;
            if let Some(compressed) = codec::compress(&plain, dictionary) {
                rewritten.push((seq.value(), compressed));
            }
        }
        for (seq, compressed) in rewritten {
            table.insert(seq, compressed.as_slice())?;
        }
    }
    Ok(Some(through))
}
