//! The `lakehouse-kb` binary: see `lakehouse-kb --help` and `src/cli/`.

fn main() -> std::process::ExitCode {
    lakehouse_kb::cli::main()
}
