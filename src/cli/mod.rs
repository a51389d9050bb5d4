//! The `lakehouse-kb` command line: one module per subcommand, each a `run(global, args)`.
//! Settings come from defaults in code, then `LAKEHOUSE_KB_*` environment variables, then flags.

/// A line on stdout, as `println!` writes it, but never a panic: a stdout closed or full (a
/// pipe whose reader left, `> /dev/full`) changes neither what the command did nor its exit
/// status (`serve` panicked on its first line, a review's).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::stdout_line(format_args!($($arg)*))
    };
}

mod backup;
mod check;
mod export;
mod import;
mod migrate;
mod output;
mod remote;
mod scratch;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::BoolishValueParser;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use output::Level;
pub use serve::{ServeArgs, service_config};

use crate::store::{DB_FILE, DEFAULT_CACHE_MB, Store, StoreError, StoreOptions};

#[derive(Debug, Parser)]
#[command(
    name = "lakehouse-kb",
    version,
    about = "The memory of the lakehouse code-review system: verdicts, observer events and KB \
             outcome rows in one embedded redb database, served over HTTP and exported as the \
             legacy JSONL files",
    after_help = "Every option can also be set with the environment variable shown in brackets (a \
                  flag's variable takes true or false, also 1/0, yes/no, on/off); a flag given \
                  on the command line wins."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Data directory; the database is DIR/kb.redb and exports go to DIR/_kb and DIR/_observer
    #[arg(
        long,
        value_name = "DIR",
        env = "LAKEHOUSE_KB_DATA",
        default_value = "./data",
        global = true
    )]
    pub data: PathBuf,
    /// redb page cache size in MiB [default: 64; for import 32, which writes and gains nothing
    /// from a larger read cache]
    #[arg(long, value_name = "MB", env = "LAKEHOUSE_KB_CACHE_MB", global = true)]
    pub cache_mb: Option<usize>,
    /// Save redb's allocator state with every commit so a restart after a crash is almost
    /// instant instead of a repair proportional to the file; commits cost more (see
    /// docs/RELIABILITY.md)
    #[arg(
        long,
        env = "LAKEHOUSE_KB_QUICK_REPAIR",
        value_parser = BoolishValueParser::new(),
        global = true
    )]
    pub quick_repair: bool,
    /// Log output format
    #[arg(
        long,
        value_enum,
        env = "LAKEHOUSE_KB_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// Which log lines to write: a tracing filter, e.g. "lakehouse_kb=debug" or "warn"
    #[arg(
        long,
        value_name = "FILTER",
        env = "LAKEHOUSE_KB_LOG",
        default_value = DEFAULT_LOG_FILTER,
        global = true
    )]
    pub log: String,
}

/// The log filter when neither `--log` nor `LAKEHOUSE_KB_LOG` gives one.
const DEFAULT_LOG_FILTER: &str = "lakehouse_kb=info,tower_http=info";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (default 127.0.0.1:3800, the observer's port)
    Serve(Box<serve::ServeArgs>),
    /// Bring a legacy lakehouse data directory into the database
    Import(import::ImportArgs),
    /// Write the legacy outcomes.jsonl and ops.jsonl files from the database
    Export(export::ExportArgs),
    /// Bring the database schema to this binary's version (or show the plan)
    Migrate(migrate::MigrateArgs),
    /// Verify the database: redb integrity, indexes against rows, counters against a recount
    Check(check::CheckArgs),
    /// Copy the database, consistently, into another directory (also while a server runs)
    Backup(backup::BackupArgs),
}

impl GlobalArgs {
    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join(DB_FILE)
    }

    /// `--data`, resolved when it is itself a symbolic link (`/var/lib/kb` to a volume's
    /// directory: the operator's to make): the files in it are opened without following links,
    /// and so is the directory when it is synced, which a link made every write fail (a
    /// review's, "Not a directory").
    pub fn data_dir(&self) -> PathBuf {
        crate::fsutil::through_link(&self.data)
    }

    /// Store options with redb's crash repair reported in the log as it runs.
    pub fn store_options(&self) -> StoreOptions {
        self.store_options_with_cache(DEFAULT_CACHE_MB)
    }

    /// [`GlobalArgs::store_options`], with a page cache of `default_mb` unless `--cache-mb`
    /// says otherwise.
    pub fn store_options_with_cache(&self, default_mb: usize) -> StoreOptions {
        // One line per 5% step: redb calls back far more often on a large file.
        let last_step = std::sync::atomic::AtomicI64::new(-1);
        let on_repair = std::sync::Arc::new(move |progress: f64| {
            let step = (progress * 20.0).floor() as i64;
            if last_step.fetch_max(step, std::sync::atomic::Ordering::Relaxed) < step {
                tracing::info!(
                    percent = step * 5,
                    "repairing the database after an unclean shutdown"
                );
            }
        });

        StoreOptions {
            cache_mb: self.cache_mb.unwrap_or(default_mb),
            on_repair: Some(on_repair),
            quick_repair: self.quick_repair,
            ..StoreOptions::default()
        }
    }
}

/// Parses the command line, runs the subcommand, prints the error chain on failure.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let style = output::init(cli.global.log_format);
    init_tracing(style, &cli.global.log);
    crate::store::damage::watch();
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match cli.command {
        Command::Serve(args) => serve::run(&cli.global, *args),
        Command::Import(args) => import::run(&cli.global, args),
        Command::Export(args) => export::run(&cli.global, args),
        Command::Migrate(args) => migrate::run(&cli.global, args),
        Command::Check(args) => check::run(&cli.global, args),
        Command::Backup(args) => backup::run(&cli.global, args),
    }));
    let result = said_as_damage(run);
    flush_logs();
    match result {
        Ok(code) => code,
        Err(err) => {
            output::error(&err);
            ExitCode::FAILURE
        }
    }
}

/// A command's end, with damage said as such and what to do (exit 1, as `check` does for
/// damage): stopped by redb's panic on a damaged page, or by a value it could not decode. Any
/// other panic is a bug, and goes on as one.
fn said_as_damage(run: std::thread::Result<anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    use crate::store::{StoreError, damage};
    match run {
        Ok(result) => result.map_err(|err| {
            let damaged = err
                .chain()
                .filter_map(|cause| cause.downcast_ref::<StoreError>())
                .any(StoreError::is_damage);
            match damaged {
                true => err.context(format!("the database is damaged: {}", damage::ADVICE)),
                false => err,
            }
        }),
        Err(panic) => match damage::found() {
            Some(found) => Err(anyhow::anyhow!(
                "the database is damaged: {found}: {}",
                damage::ADVICE
            )),
            None => std::panic::resume_unwind(panic),
        },
    }
}

/// The log writer's guard, while logging runs (`init_tracing`).
static LOG_WRITER: std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> =
    std::sync::Mutex::new(None);

/// Writes out the log lines still queued (waiting at most about a second for stderr), then
/// logs nothing more: call it last, or before exiting the process at once.
pub fn flush_logs() {
    let guard = LOG_WRITER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    drop(guard);
}

/// Reports a command line or environment clap refused (exit 2, as clap does). A bad value
/// read from an environment variable names the variable: the person looking at a unit file
/// or a container's environment has no `--flag` to find.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let code = ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return code;
    }
    let args: Vec<String> = std::env::args().collect();
    let message = match env_value_error(err, &args, |name| std::env::var(name).ok()) {
        Some(message) => message,
        None if output::style().json => err.render().to_string().trim_end().to_owned(),
        None => {
            // clap's own rendering, with its usage hint (and colours where the terminal
            // wants them: clap's stream honours NO_COLOR and TERM=dumb).
            let _ = err.print();
            return code;
        }
    };
    let message = message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_owned();
    output::line(Level::Error, &message, &format!("error: {message}"));
    code
}

/// The message for a value clap refused when it came from an environment variable (the flag
/// is not on the command line and the variable holds the refused value); `None` otherwise.
fn env_value_error(
    err: &clap::Error,
    args: &[String],
    env_var: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        err.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    let Some(ContextValue::String(arg_text)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let Some(ContextValue::String(value)) = err.get(ContextKind::InvalidValue) else {
        return None;
    };
    let mut command = Cli::command();
    command.build();
    let arg = find_arg(&command, &|arg| arg.to_string() == *arg_text)?;
    let env = arg.get_env()?.to_str()?.to_owned();
    let long = arg.get_long()?;
    let flag = format!("--{long}");
    let on_command_line = args
        .iter()
        .any(|a| *a == flag || a.starts_with(&format!("{flag}=")));
    if on_command_line || env_var(&env).as_deref() != Some(value.as_str()) {
        return None;
    }
    let why = match (
        std::error::Error::source(err),
        err.get(ContextKind::ValidValue),
    ) {
        (Some(source), _) => source.to_string(),
        (None, Some(ContextValue::Strings(valid))) => {
            format!("expected one of {}", valid.join(", "))
        }
        (None, _) => "not a valid value".to_owned(),
    };
    Some(format!(
        "invalid value {value:?} in {env} (the variable of {flag}): {why}"
    ))
}

/// The first argument of `command` or its subcommands that `matches`.
fn find_arg<'c>(
    command: &'c clap::Command,
    matches: &dyn Fn(&clap::Arg) -> bool,
) -> Option<&'c clap::Arg> {
    command
        .get_arguments()
        .find(|arg| matches(arg))
        .or_else(|| {
            command
                .get_subcommands()
                .find_map(|sub| find_arg(sub, matches))
        })
}

/// Most log lines queued for stderr. Beyond it lines are dropped (and counted,
/// `lakehousekb_log_lines_dropped_total`) rather than wait: a reader of stderr that stalls (a
/// full pipe, a paused terminal, a journal that falls behind) must not stall the requests that
/// log. About 4 MiB of lines of 256 bytes.
const LOG_QUEUE_LINES: usize = 16_384;

/// Sets up logging to stderr, written by a thread of its own from a bounded queue (see
/// [`LOG_QUEUE_LINES`]); [`flush_logs`] writes out what is queued.
fn init_tracing(style: output::Style, filter: &str) {
    use tracing_subscriber::EnvFilter;
    // A typo in the filter must not keep the service from starting: say so, log as by default.
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        let message = format!("ignoring the log filter {filter:?} (--log, LAKEHOUSE_KB_LOG): {e}");
        output::line(Level::Warn, &message, &format!("warning: {message}"));
        EnvFilter::new(DEFAULT_LOG_FILTER)
    });
    // Colours only for a person at a terminal who has not turned them off (NO_COLOR,
    // TERM=dumb), never in files or journald.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("kb-log")
        .finish(std::io::stderr());
    crate::metrics::count_dropped_log_lines(writer.error_counter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(style.color);

    if style.json {
        builder.json().init();
    } else {
        builder.init();
    }
    *LOG_WRITER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(guard);
}

/// Opens the existing database for a one-off command. A running server (or another command)
/// may hold the file (redb allows one process per file), so that case says what to do instead
/// (`instead`, a whole phrase).
/// With `create`, a missing database is created.
fn open_store_for(
    global: &GlobalArgs,
    options: StoreOptions,
    command: &str,
    instead: &str,
    create: bool,
) -> anyhow::Result<Store> {
    let path = global.db_path();
    if !create {
        require_db(&path)?;
    }
    Store::open(&path, options).map_err(|err| opening_error(&path, err, command, instead))
}

/// An error opening the database at `path` for `command`: one held by another process (a
/// server, most often) says what to do `instead`.
fn opening_error(path: &Path, err: StoreError, command: &str, instead: &str) -> anyhow::Error {
    match err {
        err @ StoreError::InUse { .. } => anyhow::Error::new(err).context(format!(
            "cannot {command} while another process holds it: {instead}"
        )),
        err => anyhow::Error::new(err).context(format!("opening {}", path.display())),
    }
}

/// Fails with a clear message when there is no database to work on.
fn require_db(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        anyhow::bail!("no database at {} (is --data right?)", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{ArgAction, CommandFactory};

    use super::Cli;

    /// Every flag of every subcommand, as `(command path, --flag, env var)`, after clap has
    /// propagated the global flags and added help and version.
    fn flags() -> Vec<(String, String, Option<String>)> {
        fn walk(
            command: &clap::Command,
            path: &str,
            out: &mut Vec<(String, String, Option<String>)>,
        ) {
            for arg in command.get_arguments() {
                let generated = matches!(
                    arg.get_action(),
                    ArgAction::Help
                        | ArgAction::HelpShort
                        | ArgAction::HelpLong
                        | ArgAction::Version
                );
                if arg.is_positional() || generated {
                    continue;
                }
                let flag = arg
                    .get_long()
                    .map_or_else(|| arg.get_id().to_string(), |long| format!("--{long}"));
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                out.push((path.to_owned(), flag, env));
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut command = Cli::command();
        command.build();
        let mut out = Vec::new();
        walk(&command, "lakehouse-kb", &mut out);
        out
    }

    /// A new flag without an environment variable fails here: deployments (the systemd unit)
    /// configure the service through the environment only.
    #[test]
    fn every_flag_has_a_lakehouse_kb_environment_variable() {
        let flags = flags();
        assert!(flags.len() > 30, "the walk found too few flags: {flags:?}");
        let missing: Vec<String> = flags
            .iter()
            .filter(|(_, _, env)| {
                !env.as_deref()
                    .is_some_and(|e| e.starts_with("LAKEHOUSE_KB_"))
            })
            .map(|(path, flag, env)| format!("{path} {flag} ({env:?})"))
            .collect();
        assert!(
            missing.is_empty(),
            "flags without a LAKEHOUSE_KB_* environment variable: {missing:#?}"
        );
    }

    /// The README's test command is the one `.ci/run` runs, so a fresh machine runs what CI runs.
    #[test]
    fn readme_test_command_is_the_ci_one() {
        let command = include_str!("../../.ci/run")
            .lines()
            .find(|line| line.starts_with("cargo test"))
            .expect(".ci/run runs cargo test");
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&format!("```sh\n{command}\n```")),
            "README.md must give `{command}` as its test command"
        );
    }

    /// The README's configuration table names every environment variable.
    #[test]
    fn readme_lists_every_environment_variable() {
        let readme = include_str!("../../README.md");
        let mut missing: Vec<String> = flags()
            .into_iter()
            .filter_map(|(_, _, env)| env)
            .filter(|env| !readme.contains(&format!("`{env}`")))
            .collect();
        missing.sort();
        missing.dedup();
        assert!(missing.is_empty(), "README.md does not list {missing:?}");
    }
}
