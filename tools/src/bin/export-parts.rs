//! Where a full export's CPU goes, part by part: each part of what the export does for a line,
//! timed apart over every line of each file of an existing database (redb's range over the
//! table, zstd and bincode of the values stored whole, each verdict's head, the recomputed
//! lines). Each range runs on the database just opened, as the export finds it; the values are
//! copied out of redb first for the other parts, so that they time decoding alone. Figures go to docs/benchmarks/log-2026-12.md.
//!
//! compare sizes --sizes 250000 --keep     # prints where it kept the dataset
//! cargo run --release -p lakehouse-kb-tools --bin export-parts -- --db DIR/kb/kb.redb

/// The service's allocator (see `src/main.rs`), so that the store runs here as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use lakehouse_kb::model::iso_timestamp_checked;
use lakehouse_kb::store::codec;
use lakehouse_kb::store::tables::{EVENTS, OUTCOMES, VERDICTS_BY_SEQ};
use lakehouse_kb::store::values::{EventValueRef, OutcomeValueRef, VerdictHead};
use lakehouse_kb::store::{Store, StoreOptions};
use lakehouse_kb_tools::{fmt_duration, print_table};
use redb::{ReadableDatabase, TableDefinition};

#[derive(Debug, Parser)]
struct Args {
    /// The database (a copy: it is opened, and migrated if it needs to be)
    #[arg(long)]
    db: PathBuf,
    /// Runs of each part; the table shows the fastest and the slowest
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

type Table = TableDefinition<'static, u64, &'static [u8]>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Opening the store registers its compression dictionaries for the decoders below; redb is
    // then opened alone (the store holds the file's lock while open).
    drop(Store::open(&args.db, StoreOptions::default())?);
    let db = redb::Database::open(&args.db)?;
    let txn = db.begin_read()?;

    let whole = |table: Table| -> anyhow::Result<Vec<Vec<u8>>> {
        let rows = txn.open_table(table)?;
        let mut values = Vec::new();
        for row in rows.range(0..)? {
            let bytes = row?.1.value().to_vec();
            if !codec::is_reference(&bytes) {
                values.push(bytes);
            }
        }
        Ok(values)
    };
    let outcomes = whole(OUTCOMES)?;
    let events = whole(EVENTS)?;
    let verdicts = whole(VERDICTS_BY_SEQ)?;

    drop(txn);
    drop(db);
    // As the export finds redb: a database just opened with the service's cache, each time.
    let db_path = &args.db;
    let range = |table: Table| {
        move || -> anyhow::Result<u64> {
            let db = redb::Database::builder()
                .set_cache_size(lakehouse_kb::store::DEFAULT_CACHE_MB << 20)
                .open(db_path)?;
            let txn = db.begin_read()?;
            let rows = txn.open_table(table)?;
            let mut n = 0;
            for row in rows.range(0..)? {
                n += row?.1.value().len() as u64;
            }
            Ok(n)
        }
    };
    let mut scratch = Vec::new();
    let mut line = String::new();
    let mut parts: Vec<(String, Vec<Duration>)> = Vec::new();
    let mut time = |name: &str, part: &mut dyn FnMut() -> anyhow::Result<u64>| {
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            let start = Instant::now();
            std::hint::black_box(part()?);
            runs.push(start.elapsed());
        }
        parts.push((name.to_owned(), runs));
        anyhow::Ok(())
    };
    time("redb range over `outcomes`", &mut range(OUTCOMES))?;
    time("redb range over `events`", &mut range(EVENTS))?;
    time(
        "redb range over `verdicts_by_seq`",
        &mut range(VERDICTS_BY_SEQ),
    )?;
    time(
        &format!("outcome rows stored whole ({}): zstd", outcomes.len()),
        &mut || {
            Ok(sum(&outcomes, |v| {
                Ok(codec::open_in(v, &mut scratch)?.len())
            }))
        },
    )?;
    time(
        &format!(
            "outcome rows stored whole ({}): zstd, bincode",
            outcomes.len()
        ),
        &mut || {
            Ok(sum(&outcomes, |v| {
                let plain = codec::open_in(v, &mut scratch)?;
                Ok(codec::decode_borrowed::<OutcomeValueRef>(plain)?.line.len())
            }))
        },
    )?;
    time(
        &format!("events stored whole ({}): zstd", events.len()),
        &mut || Ok(sum(&events, |v| Ok(codec::open_in(v, &mut scratch)?.len()))),
    )?;
    time(
        &format!("events stored whole ({}): zstd, bincode", events.len()),
        &mut || {
            Ok(sum(&events, |v| {
                let plain = codec::open_in(v, &mut scratch)?;
                Ok(codec::decode_borrowed::<EventValueRef>(plain)?.line.len())
            }))
        },
    )?;
    time(
        &format!("verdict heads ({}): first zstd block", verdicts.len()),
        &mut || {
            Ok(sum(&verdicts, |v| {
                Ok(codec::open_first_block(v, &mut scratch)?.1.len())
            }))
        },
    )?;
    time(
        &format!("verdict heads ({}): first block, fields", verdicts.len()),
        &mut || {
            Ok(sum(&verdicts, |v| {
                Ok(VerdictHead::read(v, &mut scratch)?.one_liner.len())
            }))
        },
    )?;
    time("verdict heads: head, KB row line", &mut || {
        Ok(sum(&verdicts, |v| {
            let head = VerdictHead::read(v, &mut scratch)?;
            line.clear();
            if let Some(fields) = head.audit_fields() {
                fields.write_kb_outcome_line(&mut line);
            }
            Ok(line.len())
        }))
    })?;
    time("verdict heads: head, observer event line", &mut || {
        Ok(sum(&verdicts, |v| {
            let head = VerdictHead::read(v, &mut scratch)?;
            line.clear();
            if let (Some(fields), Some(timestamp)) = (
                head.audit_fields(),
                iso_timestamp_checked(head.received_at_ms),
            ) {
                fields.write_op_line(&timestamp, &mut line);
            }
            Ok(line.len())
        }))
    })?;

    println!(
        "`{}`, {} runs of each part:\n",
        args.db.display(),
        args.runs
    );
    let rows: Vec<Vec<String>> = parts
        .into_iter()
        .map(|(name, runs)| {
            let fastest = runs.iter().min().copied().unwrap_or_default();
            let slowest = runs.iter().max().copied().unwrap_or_default();
            vec![name, fmt_duration(fastest), fmt_duration(slowest)]
        })
        .collect();
    print_table(&["part", "fastest", "slowest"], &rows);
    Ok(())
}

/// The sum of `f` over `values`; panics on a value that does not decode (the database is one
/// the store wrote).
fn sum(values: &[Vec<u8>], mut f: impl FnMut(&[u8]) -> Result<usize, codec::CodecError>) -> u64 {
    values
        .iter()
        .map(|v| f(v).expect("a value the store wrote decodes") as u64)
        .sum()
}
