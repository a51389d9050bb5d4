//! `lakehouse-kb check`: verify a database. Exits 0 when it passes, 1 when it found problems
//! (a file redb cannot read is one), and 2 when it could not check (no database, in use), so
//! that a script can tell a damaged database from a wrong path or a running server. A file
//! made by an older binary is checked through a migrated copy: the check leaves it as it is.

use std::process::ExitCode;

use std::fs::{File, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;

use super::output::{self, Level};
use super::{GlobalArgs, open_store_for, opening_error, require_db, say_if_repaired};
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
    let in_use = "check a backup of it instead (lakehouse-kb backup DEST, then --data DEST check)";
    require_db(&path)?;
    let held = Store::hold(&path, &global.store_options())
        .map_err(|e| opening_error(&path, e, "check the database", in_use))?;
    say_if_repaired(&path, &held);
    // A check never migrates the file: one made by an older binary (a backup kept for a
    // downgrade, say) is checked through a migrated copy. Declared before the store, so
    // dropped after it: the copy is removed once closed.
    let _scratch: Option<Scratch>;
    let mut store = if held.plan().steps.is_empty() {
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
        held.refuse_pending_journal()?;
        let scratch = Scratch::new(&global.data)?;
        output::line(
            Level::Info,
            "checking a migrated copy",
            &format!(
                "{} is at schema version {}: checking a copy migrated to version {} (the file \
                 itself is left as it is)",
                path.display(),
                held.plan().from,
                held.plan().to
            ),
        );
        output::with_spinner(&format!("copying {}", path.display()), || {
            held.copy_into(scratch.dir.path())
        })
        .with_context(|| {
            format!(
                "copying {} to check it without changing it (the copy, which then grows by \
                 its migration, needs free space in {})",
                path.display(),
                global.data.display()
            )
        })?;
        drop(held);
        let store = Store::open(&scratch.dir.path().join(DB_FILE), global.store_options())
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

/// A directory of its own under `--data` for the copy a check migrates: `.check-XXXXXX`, mode
/// 0700, locked while the check runs and removed when it ends. One left by a check that was
/// killed (its lock free) is removed by the next check that makes one.
struct Scratch {
    dir: tempfile::TempDir,
    _lock: File,
}

const SCRATCH_PREFIX: &str = ".check-";
const SCRATCH_LOCK: &str = "lock";

impl Scratch {
    fn new(data: &Path) -> anyhow::Result<Scratch> {
        remove_stale_scratch(data);
        let dir = tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .permissions(Permissions::from_mode(0o700))
            .tempdir_in(data)
            .with_context(|| format!("creating a directory for a copy in {}", data.display()))?;
        let lock = File::create_new(dir.path().join(SCRATCH_LOCK))
            .and_then(|lock| lock.try_lock().map_err(std::io::Error::from).map(|()| lock))
            .with_context(|| format!("locking {}", dir.path().display()))?;
        Ok(Scratch { dir, _lock: lock })
    }
}

/// Removes the scratch directories under `data` whose lock no check holds. One without a lock
/// file (a check between making it and locking it) is left alone.
fn remove_stale_scratch(data: &Path) {
    let Ok(entries) = std::fs::read_dir(data) else {
        return;
    };
    for entry in entries.flatten() {
        let is_scratch = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(SCRATCH_PREFIX));
        // A directory itself, not a link to one.
        if !is_scratch || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let free = File::open(entry.path().join(SCRATCH_LOCK)).is_ok_and(|f| f.try_lock().is_ok());
        if free {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
