//! `lakehouse-kb check`: verify a database and exit non-zero when anything is wrong.

use std::process::ExitCode;

use super::{GlobalArgs, require_db};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

pub fn run(global: &GlobalArgs, _args: CheckArgs) -> anyhow::Result<ExitCode> {
    let path = global.db_path();
    require_db(&path)?;
    let mut store = Store::open(&path, global.store_options())?;
    let report = store.check()?;
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
        return Ok(ExitCode::SUCCESS);
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
    Ok(ExitCode::FAILURE)
}
