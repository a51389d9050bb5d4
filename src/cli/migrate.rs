//! `lakehouse-kb migrate`: run the schema steps the database lacks, or print them.

use std::process::ExitCode;

use anyhow::Context;
use clap::builder::BoolishValueParser;

use super::GlobalArgs;
use crate::store::{HeldFile, SCHEMA_VERSION, Store};

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Print the steps that would run, change nothing
    #[arg(long, env = "LAKEHOUSE_KB_MIGRATE_DRY_RUN", value_parser = BoolishValueParser::new())]
    pub dry_run: bool,
}

pub fn run(global: &GlobalArgs, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let path = global.db_path();
    // Held read-only while the plan is read and shown: a migration its journal would block
    // is refused before anything is written.
    let held = if path.exists() {
        let held = Store::hold(&path, &global.store_options())
            .with_context(|| format!("reading the schema version of {}", path.display()))?;
        Some(held)
    } else {
        None
    };
    let plan = match &held {
        Some(held) => held.plan().clone(),
        None => Store::plan(&path, global.store_options())?,
    };
    if plan.steps.is_empty() {
        out!(
            "{}: schema version {} is current, nothing to do",
            path.display(),
            plan.from
        );
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "{}: schema version {} -> {} ({} step{})",
        path.display(),
        plan.from,
        plan.to,
        plan.steps.len(),
        if plan.steps.len() == 1 { "" } else { "s" }
    );
    for step in &plan.steps {
        out!("  {:>4}  {}: {}", step.version, step.name, step.summary);
    }
    if let Some(held) = &held {
        held.refuse_pending_journal()?;
    }
    let repaired = held.as_ref().is_some_and(HeldFile::repaired);
    drop(held);
    if args.dry_run {
        if repaired {
            out!("dry run: nothing migrated (redb repaired the file, as any open does)");
        } else {
            out!("dry run: nothing changed");
        }
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(global.data_dir())
        .with_context(|| format!("creating {}", global.data_dir().display()))?;
    let store = Store::open(&path, global.store_options())?;
    out!("done: schema version {}", store.schema_version()?);
    debug_assert_eq!(store.schema_version()?, SCHEMA_VERSION);
    Ok(ExitCode::SUCCESS)
}
