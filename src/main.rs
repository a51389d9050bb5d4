//! The `lakehouse-kb` binary: see `lakehouse-kb --help` and `src/cli/`.

/// The service allocates with mimalloc rather than the system allocator: a legacy import
/// allocates a few values per line and the server a few per request, freed on other threads.
/// Measured against glibc's malloc (docs/benchmarks/log-2026-11.md): the 1M-line import 1.33x faster,
/// `/verdicts` at 64 clients 1.2x to 1.3x. Set here, not in the library, so that the tests and
/// the fuzz targets keep the system allocator (and its sanitizers); the benchmark tools that
/// run the store in-process set it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    serve_with_a_short_purge_delay();
    lakehouse_kb::cli::main()
}

/// mimalloc's environment variable for how long a thread keeps memory it freed before giving
/// it back to the system (1 s by default in the bundled mimalloc v3), and the server's value.
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";
const SERVER_PURGE_DELAY_MS: &str = "10";

/// A server's reads build answers of up to `--max-response` (8 MiB) on a few threads and free
/// them on others once sent, megabytes a request: with mimalloc's default delay, 200 clients
/// reading an 8.2 MB answer (`loadgen --heavy-readers 200`) took the server to 1.5-2.1 GB
/// peak RSS, with 10 ms to 0.84 GB, with no cost to writes (docs/benchmarks/log-2026-12.md).
/// mimalloc reads its options from the environment when the process starts, before `main`,
/// and setting one from Rust needs `unsafe`, which this crate forbids: so `serve` runs itself
/// again with the variable set (the same process: `exec` keeps its id, its open descriptors
/// and the rest of its environment). A variable already set is the operator's, and kept.
fn serve_with_a_short_purge_delay() {
    use clap::Parser;
    use lakehouse_kb::cli::{Cli, Command};
    use std::os::unix::process::CommandExt;

    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
        return;
    }
    if !Cli::try_parse().is_ok_and(|cli| matches!(cli.command, Command::Serve(_))) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        again.arg0(arg0);
    }
    let error = again
        .args(args)
        .env(PURGE_DELAY_VAR, SERVER_PURGE_DELAY_MS)
        .exec();
    eprintln!(
        "lakehouse-kb: could not start again with {PURGE_DELAY_VAR}={SERVER_PURGE_DELAY_MS} \
         ({error}); serving with the allocator's default"
    );
}
