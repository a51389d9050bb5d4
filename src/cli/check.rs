//! `lakehouse-kb check`: verify a database. Exits 0 when it passes, 1 when it found problems
//! (a file redb cannot read is one), and 2 when it could not check (no database, in use), so
//! that a script can tell a damaged database from a wrong path or a running server.

use std::process::ExitCode;

use super::{GlobalArgs, open_store_for, output};
use crate::store::StoreError;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// Exit status: problems found.
const PROBLEMS_FOUND: u8 = 1;
/// Exit status: the check could not run.
const COULD_NOT_CHECK: u8 = 2;

pub fn run(global: &GlobalArgs, _args: CheckArgs) -> anyhow::Result<ExitCode> {
    match check(global) {
        Ok(passed) if passed => Ok(ExitCode::SUCCESS),
        Ok(_) => Ok(ExitCode::from(PROBLEMS_FOUND)),
        // A file redb cannot read is what a check is for finding: a problem found, not a
        // check that could not run.
        Err(err)
            if err
                .chain()
                .any(|e| matches!(e.downcast_ref(), Some(StoreError::Damaged { .. }))) =>
        {
            output::error(&err.context("check FAILED"));
            Ok(ExitCode::from(PROBLEMS_FOUND))
        }
        Err(err) => {
            output::error(&err.context("could not check the database"));
            Ok(ExitCode::from(COULD_NOT_CHECK))
        }
    }
}

/// Prints the report; `Ok(true)` when the database passed.
fn check(global: &GlobalArgs) -> anyhow::Result<bool> {
    let path = global.db_path();
    let mut store = open_store_for(
        global,
        global.store_options(),
        "check the database",
        "check a backup of it instead (lakehouse-kb backup DEST, then --data DEST check)",
        false,
    )?;
    let report = output::with_spinner(&format!("checking {}", path.display()), || store.check())?;
    println!(
        "{}: {} verdicts, {} outcome rows, {} events, {} claim index entries",
        path.display(),
        report.verdicts,
        report.outcomes,
        report.events,
        report.claims
    );
    if report.passed() {
        println!("check passed");
        return Ok(true);
    }
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    if report.n_problems > report.problems.len() as u64 {
        println!(
            "... and {} more",
            report.n_problems - report.problems.len() as u64
        );
    }
    println!("check FAILED: {} problems", report.n_problems);
    Ok(false)
}
