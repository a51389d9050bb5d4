//! `lakehouse-kb check`: verify a database. Exits 0 when it passes, 1 when it found problems
//! (a file redb cannot read is one), and 2 when it could not check (no database, in use), so
//! that a script can tell a damaged database from a wrong path or a running server. A file
//! made by an older binary is checked through a migrated copy: the check leaves it as it is.

use std::process::ExitCode;

use anyhow::Context;

use super::output::{self, Level};
use super::scratch::{self, Scratch};
use super::{GlobalArgs, open_store_for, opening_error, require_db};
use crate::store::{DB_FILE, Store, StoreError};

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
        // A file redb cannot read (damaged, empty, or not a database at all) is what a check
        // is for finding: a problem found, not a check that could not run.
        Err(err)
            if err
                .chain()
                .any(|e| e.downcast_ref().is_some_and(unreadable)) =>
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

/// Whether `err` says the file at the database's path is not a database redb can read.
fn unreadable(err: &StoreError) -> bool {
    matches!(
        err,
        StoreError::Damaged { .. } | StoreError::EmptyFile { .. } | StoreError::NotADatabase { .. }
    )
}

/// Prints the report; `Ok(true)` when the database passed.
fn check(global: &GlobalArgs) -> anyhow::Result<bool> {
    let path = global.db_path();
    // Held by a server: the backup it writes (a DEST is refused while it runs).
    let in_use = "check a backup of it instead (lakehouse-kb backup --name NAME, then --data \
                  BACKUP_DIR/NAME check; BACKUP_DIR is the server's --backup-dir, DATA/backups \
                  by default)";
    require_db(&path)?;
    scratch::remove_stale(&global.data_dir());
    let held = Store::hold(&path, &global.store_options())
        .map_err(|e| opening_error(&path, e, "check the database", in_use))?;
    // A check never migrates the file: one made by an older binary (a backup kept for a
    // downgrade, say) is checked through a migrated copy. Declared before the store, so
    // dropped after it: the copy is removed once closed.
    let _scratch: Option<Scratch>;
    // Nor does it rebuild a findings memory built under other rules in place (which may re-key
    // the file's dismissals): that is checked through a copy too.
    let rebuilds = held.rebuilds_on_open()?;
    let mut store = if held.plan().steps.is_empty() && !rebuilds {
        drop(held);
        _scratch = None;
        open_store_for(
            global,
            global.store_options(),
            "check the database",
            in_use,
            false,
        )?
    } else {
        // (A journal of writes this binary's schema does not apply; of its own schema, the
        // copy's open applies them.)
        if !held.plan().steps.is_empty() {
            held.refuse_pending_journal()?;
        }
        let scratch = Scratch::new(&global.data_dir())?;
        let why = if held.plan().steps.is_empty() {
            format!(
                "{}'s findings memory is built under other rules: checking a copy with it \
                 rebuilt (the file itself is left as it is)",
                path.display()
            )
        } else {
            format!(
                "{} is at schema version {}: checking a copy migrated to version {} (the file \
                 itself is left as it is)",
                path.display(),
                held.plan().from,
                held.plan().to
            )
        };
        output::line(Level::Info, "checking a migrated copy", &why);
        output::with_spinner(&format!("copying {}", path.display()), || {
            held.copy_into(scratch.path())
        })
        .with_context(|| format!("copying {} to check it without changing it", path.display()))?;
        drop(held);
        let store = Store::open(&scratch.path().join(DB_FILE), global.store_options())
            .map_err(|e| match e {
                // The copy is the file's: its damage is the file's.
                StoreError::Damaged { detail, .. } => StoreError::Damaged {
                    path: path.clone(),
                    detail,
                },
                e => e,
            })
            .with_context(|| format!("migrating the copy of {}", path.display()))?;
        _scratch = Some(scratch);
        store
    };
    let report = output::with_spinner(&format!("checking {}", path.display()), || store.check())?;
    out!(
        "{}: {} verdicts, {} outcome rows, {} events, {} claim index entries",
        path.display(),
        report.verdicts,
        report.outcomes,
        report.events,
        report.claims
    );
    if report.passed() {
        out!("check passed");
        return Ok(true);
    }
    for problem in &report.problems {
        out!("problem: {problem}");
    }
    if report.n_problems > report.problems.len() as u64 {
        out!(
            "... and {} more",
            report.n_problems - report.problems.len() as u64
        );
    }
    out!("check FAILED: {} problems", report.n_problems);
    Ok(false)
}
