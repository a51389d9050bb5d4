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
    lakehouse_kb::cli::main()
}
