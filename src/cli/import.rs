//! `lakehouse-kb import`: bring a legacy data directory into the database.

use std::process::ExitCode;

use super::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {}

pub fn run(_global: &GlobalArgs, _args: ImportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("import comes with the export/import issue (#5)")
}
