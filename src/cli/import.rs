//! `lakehouse-kb import`: bring a legacy data directory into the database, with progress on
//! stderr (a bar on a terminal, plain or JSON lines otherwise) and a summary on stdout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::builder::BoolishValueParser;
use indicatif::{ProgressBar, ProgressStyle};

use super::output::{self, Level};
use super::{GlobalArgs, open_store_for};
use crate::import::{self, ImportError, ImportOptions, ImportReport, Progress, Unit};
use crate::store::IMPORT_CACHE_MB;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Legacy data directory holding _kb/outcomes.jsonl, _observer/ops.jsonl and
    /// _auditor/verdicts/*.json (any of them may be missing)
    #[arg(long, value_name = "LEGACY_DIR", env = "LAKEHOUSE_KB_IMPORT_FROM")]
    pub from: PathBuf,
    /// Import nothing at all when any line or verdict file is malformed (default: report and
    /// skip them, import the rest)
    #[arg(long, env = "LAKEHOUSE_KB_IMPORT_STRICT", value_parser = BoolishValueParser::new())]
    pub strict: bool,
    /// Records per write transaction (each commits durably; a larger one holds more index
    /// entries in memory until its commit)
    #[arg(
        long,
        value_name = "N",
        env = "LAKEHOUSE_KB_IMPORT_BATCH_SIZE",
        default_value_t = import::DEFAULT_BATCH_SIZE
    )]
    pub batch_size: usize,
    /// Longest line or verdict file imported (larger ones are reported and skipped, read past
    /// without being held in memory); the longest line the service writes, so that its own
    /// export is read back whole (at most 64MiB)
    #[arg(
        long,
        value_name = "SIZE",
        env = "LAKEHOUSE_KB_IMPORT_MAX_LINE",
        default_value_t = import::DEFAULT_MAX_LINE_BYTES,
        value_parser = super::serve::parse_input_size
    )]
    pub max_line: usize,
}

pub fn run(global: &GlobalArgs, args: ImportArgs) -> anyhow::Result<ExitCode> {
    // Before anything is created: a wrong --from must not leave an empty database behind.
    check_legacy_dir(&args.from)?;
    std::fs::create_dir_all(global.data_dir())
        .with_context(|| format!("creating {}", global.data_dir().display()))?;
    let store = open_store_for(
        global,
        global.store_options_with_cache(IMPORT_CACHE_MB),
        "import",
        "stop the server, import, then start it again",
        true,
    )?;
    let options = ImportOptions {
        strict: args.strict,
        batch_size: args.batch_size,
        max_line_bytes: args.max_line,
    };
    let start = Instant::now();
    let mut progress: Box<dyn Progress> = if output::style().animate {
        Box::new(Bar::default())
    } else {
        Box::new(Lines::default())
    };
    let result = import::import(&store, &args.from, &options, progress.as_mut());
    drop(progress);
    let report = match result {
        Ok(report) => report,
        Err(ImportError::Strict {
            dir,
            n_rejected,
            rejections,
        }) => {
            for problem in &rejections {
                warn(&format!("rejected: {problem}"));
            }
            if n_rejected > rejections.len() as u64 {
                warn(&format!(
                    "... and {} more",
                    n_rejected - rejections.len() as u64
                ));
            }
            return Err(ImportError::Strict {
                dir,
                n_rejected,
                rejections: Vec::new(),
            }
            .into());
        }
        Err(e) => return Err(e).context(format!("importing {}", args.from.display())),
    };
    print_summary(&report, start.elapsed());
    Ok(ExitCode::SUCCESS)
}

/// The legacy directory must exist and hold at least one of the directories the legacy system
/// writes: otherwise a typo in `--from` would import nothing and report success.
fn check_legacy_dir(dir: &Path) -> anyhow::Result<()> {
    let metadata = std::fs::metadata(dir)
        .with_context(|| format!("reading the legacy directory {} (--from)", dir.display()))?;
    if !metadata.is_dir() {
        anyhow::bail!("--from {} is not a directory", dir.display());
    }
    if !LEGACY_PARTS.iter().any(|part| dir.join(part).is_dir()) {
        anyhow::bail!(
            "--from {} holds none of {}: is it the legacy data directory (the one holding \
             _kb/outcomes.jsonl)?",
            dir.display(),
            LEGACY_PARTS.join(", ")
        );
    }
    Ok(())
}

/// The directories of a legacy data directory the import reads from.
const LEGACY_PARTS: [&str; 3] = ["_kb", "_observer", "_auditor"];

fn warn(message: &str) {
    output::line(Level::Warn, message, message);
}

fn print_summary(report: &ImportReport, took: Duration) {
    for problem in &report.rejections {
        warn(&format!("rejected: {problem}"));
    }
    for problem in &report.warnings {
        warn(&format!("warning: {problem}"));
    }
    if report.n_warnings > report.warnings.len() as u64 {
        warn(&format!(
            "... and {} more warnings",
            report.n_warnings - report.warnings.len() as u64
        ));
    }
    let line = |name: &str, c: &import::FileCounts, unit: &str| {
        let blank = if c.blank > 0 {
            format!(", {} blank", c.blank)
        } else {
            String::new()
        };
        out!(
            "{name}: {} {unit} read, {} stored, {} skipped as duplicates, {} rejected{blank}",
            c.read,
            c.stored,
            c.duplicates,
            c.rejected
        );
    };
    line(import::OUTCOMES_PATH, &report.outcomes, "lines");
    line(import::OPS_PATH, &report.ops, "lines");
    line(import::VERDICTS_DIR, &report.verdict_files, "files");
    let v = &report.verdicts;
    out!(
        "verdicts: {} stored ({} with their verdict file's JSON, {} from their KB row, {} from a \
         file without a row), {} skipped as duplicates",
        v.stored,
        v.from_file,
        v.from_row,
        v.without_row,
        v.duplicates
    );
    let import::Totals {
        read,
        stored,
        duplicates,
        rejected,
    } = report.totals();
    out!(
        "total: {read} read, {stored} stored, {duplicates} skipped as duplicates, {rejected} \
         rejected, {} warnings, in {:.1} s ({:.1} s of it writing to the database, alongside \
         the parsing)",
        report.n_warnings,
        took.as_secs_f64(),
        report.store_write_ms as f64 / 1000.0
    );
}

/// A progress bar, for a terminal.
#[derive(Default)]
struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn phase(&mut self, name: &'static str, total: u64, unit: Unit) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
        let template = match unit {
            Unit::Bytes => {
                "{prefix:>13} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
            }
            Unit::Files => "{prefix:>13} [{bar:40}] {pos}/{len} files ({per_sec}, eta {eta})",
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::new(total).with_style(style);
        bar.set_prefix(name);
        self.0 = Some(bar);
    }

    fn advance(&mut self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(done);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}

/// Progress lines on stderr (a log file, CI, JSON logs), at most one every 2 seconds per phase.
struct Lines {
    name: &'static str,
    total: u64,
    done: u64,
    unit: Unit,
    last: Instant,
}

impl Default for Lines {
    fn default() -> Self {
        Lines {
            name: "",
            total: 0,
            done: 0,
            unit: Unit::Bytes,
            last: Instant::now(),
        }
    }
}

impl Lines {
    fn amount(&self, n: u64) -> String {
        match self.unit {
            Unit::Bytes => format!("{} MiB", n >> 20),
            Unit::Files => format!("{n} files"),
        }
    }
}

impl Progress for Lines {
    fn phase(&mut self, name: &'static str, total: u64, unit: Unit) {
        *self = Lines {
            name,
            total,
            done: 0,
            unit,
            last: Instant::now(),
        };
        info(&format!("{name}: {}", self.amount(total)));
    }

    fn advance(&mut self, done: u64) {
        self.done += done;
        if self.last.elapsed() >= Duration::from_secs(2) {
            self.last = Instant::now();
            info(&format!(
                "{}: {}% ({} of {})",
                self.name,
                self.done * 100 / self.total.max(1),
                self.amount(self.done),
                self.amount(self.total)
            ));
        }
    }
}

fn info(message: &str) {
    output::line(Level::Info, message, message);
}
