//! `lakehouse-kb export`: write the legacy JSONL files from the database.

use std::process::ExitCode;

use super::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {}

pub fn run(_global: &GlobalArgs, _args: ExportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("export comes with the export/import issue (#5)")
}
