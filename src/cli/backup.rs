//! `lakehouse-kb backup`: a consistent copy of the database from one read snapshot. With no
//! server running, `backup DEST` reads the file itself and writes `DEST/kb.redb`, wherever its
//! own user may write. When a server holds the file, only the server can take the snapshot, and
//! it writes only under its own `--backup-dir`: the command then asks it for a backup (named
//! `--name`, or timestamped by the server) and refuses a DEST, which it could not honour. A file
//! made by an older binary is copied as it is, not migrated: a backup taken before an upgrade
//! is one the older binary opens.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::output::with_spinner;
use super::remote::{RemoteArgs, post_json, require_holder};
use super::{GlobalArgs, require_db};
use crate::store::{BackupName, DB_FILE, Store, StoreError, files_of_copy};

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Directory to write the copy to (DEST/kb.redb) when no server runs; it must not hold a
    /// database already
    pub dest: Option<PathBuf>,
    /// While a server runs: the name of the backup it writes under its --backup-dir (letters,
    /// digits, '.', '_', '-'); without it the server picks a timestamped name
    #[arg(long, value_name = "NAME", env = "LAKEHOUSE_KB_BACKUP_NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(global: &GlobalArgs, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let path = global.db_path();
    require_db(&path)?;
    // A file a server holds: the server takes the backup.
    let unopened = |e: StoreError| match e {
        StoreError::InUse { .. } => remote(&path, &args),
        e => Err(anyhow::Error::new(e).context(format!("opening {}", path.display()))),
    };
    let held = match Store::hold(&path, &global.store_options()) {
        Ok(held) => held,
        Err(e) => return unopened(e),
    };
    let Some(dest) = &args.dest else {
        anyhow::bail!(
            "no server holds the database: name a directory to write the copy to \
             (lakehouse-kb backup DEST)"
        );
    };
    if args.name.is_some() {
        anyhow::bail!(
            "--name names a running server's backup; no server holds the database, so the copy \
             goes to DEST ({})",
            dest.display()
        );
    }
    // DEST is the operator's to name, a symbolic link to a directory included: the copy is
    // written (and its directory synced) where the link leads.
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let dest = fs::canonicalize(dest).with_context(|| format!("resolving {}", dest.display()))?;
    let target = dest.join(DB_FILE);
    // A journal or a partial file there is an interrupted backup's: a backup beside it would
    // take it for its own.
    for taken in files_of_copy(&target) {
        if fs::symlink_metadata(&taken).is_ok() {
            anyhow::bail!(
                "{} already exists (a backup, or an interrupted one); choose an empty directory, \
                 or remove it if no backup is being written there",
                taken.display()
            );
        }
    }
    let spinner = format!("backing up to {}", target.display());
    let rebuilds = held.rebuilds_on_open()?;
    if !held.plan().steps.is_empty() || rebuilds {
        // A backup taken before an upgrade must be what the older binary opens: the file (and
        // its journal) copied as it is, under the lock held since its version was read; so is
        // one whose findings memory this binary would rebuild (and its dismissals re-key).
        let start = std::time::Instant::now();
        let (bytes, journal) = with_spinner(&spinner, || held.copy_into(&dest))?;
        let journal = match journal {
            Some(journal) => format!(" and its journal ({journal} bytes)"),
            None => String::new(),
        };
        let upgrade = if held.plan().steps.is_empty() {
            "this binary rebuilds its findings memory when it opens it".to_owned()
        } else {
            format!(
                "this binary migrates it to {} when it opens it",
                held.plan().to
            )
        };
        out!(
            "backup written to {}: the file as it is{journal}, at schema version {} ({upgrade}), \
             {bytes} bytes, {} ms",
            target.display(),
            held.plan().from,
            start.elapsed().as_millis()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Of this binary's schema: a copy table by table, from one snapshot of the store. The
    // file is let go for the store to open it; nothing migrates it meanwhile.
    drop(held);
    // (Held by a server now if one started meanwhile.)
    let store = match Store::open(&path, global.store_options()) {
        Ok(store) => store,
        Err(e) => return unopened(e),
    };
    let report = with_spinner(&spinner, || store.backup_to(&target))?;
    out!(
        "backup written to {}: {} rows through seq {}, {} bytes, {} ms",
        report.path,
        report.rows,
        report.last_seq,
        report.bytes,
        report.millis
    );
    Ok(ExitCode::SUCCESS)
}

/// The database is held by a running server: ask it for a backup under its backup directory.
fn remote(path: &std::path::Path, args: &BackupArgs) -> anyhow::Result<ExitCode> {
    if let Some(dest) = &args.dest {
        anyhow::bail!(
            "the database is open in another process. A running server writes backups only \
             under its own --backup-dir (default DATA/backups), never to a path a client \
             names: run `lakehouse-kb backup --name NAME` (or without a name) to have it write \
             BACKUP_DIR/NAME/kb.redb, or stop the server to write to {}. A check, backup or \
             migration lets go of the file when it has finished.",
            dest.display()
        );
    }
    let mut body = serde_json::json!({});
    if let Some(name) = &args.name {
        BackupName::parse(name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
        body["name"] = name.clone().into();
    }
    require_holder(&args.remote.url, path)?;
    let (status, answer) = with_spinner("the running server is backing up", || {
        post_json(&args.remote.url, "/backup", &body)
    })
    .with_context(|| {
        format!(
            "the database is open in another process, and asking the server at {} to back \
             it up failed",
            args.remote.url
        )
    })?;
    if status != 201 {
        anyhow::bail!(
            "the server refused the backup ({status}): {}",
            answer["error"]
        );
    }
    // A backup is said done only as the server named it: something answering at --url that
    // relays `/healthz` and answers the rest itself would otherwise be taken at its word.
    let named = answer["name"].as_str().unwrap_or_default();
    let expected = args
        .name
        .as_deref()
        .map_or_else(|| BackupName::parse(named).is_ok(), |asked| named == asked);
    if !expected {
        anyhow::bail!(
            "the server at {} answered 201 for a backup named {:?}, not the one asked for: it \
             may not be a lakehouse-kb server; look under the server's --backup-dir",
            args.remote.url,
            answer["name"]
        );
    }
    out!(
        "backup {} written by the running server under its --backup-dir: {} rows through seq \
         {}, {} bytes, {} ms",
        answer["name"].as_str().unwrap_or("?"),
        answer["rows"],
        answer["last_seq"],
        answer["bytes"],
        answer["millis"]
    );
    Ok(ExitCode::SUCCESS)
}
