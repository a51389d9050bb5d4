//! `lakehouse-kb backup DEST`: a consistent copy of the database into the directory DEST, from
//! one read snapshot. With no server running the command reads the file itself; when a server
//! holds it, the server takes the snapshot (`POST /backup`) while it keeps serving.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::output::with_spinner;
use super::remote::{RemoteArgs, post_json};
use super::{GlobalArgs, require_db};
use crate::store::{DB_FILE, Store, StoreError};

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Directory to write the copy to (DEST/kb.redb); it must not hold a database already
    pub dest: PathBuf,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(global: &GlobalArgs, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let path = global.db_path();
    require_db(&path)?;
    let dest = std::path::absolute(&args.dest)
        .with_context(|| format!("resolving {}", args.dest.display()))?;
    let target = dest.join(DB_FILE);
    if target.exists() {
        anyhow::bail!(
            "{} already exists; choose an empty directory",
            target.display()
        );
    }
    match Store::open(&path, global.store_options()) {
        Ok(store) => {
            std::fs::create_dir_all(&dest)
                .with_context(|| format!("creating {}", dest.display()))?;
            let report = with_spinner(&format!("backing up to {}", target.display()), || {
                store.backup_to(&target)
            })?;
            println!(
                "backup written to {}: {} rows through seq {}, {} bytes, {} ms",
                report.path, report.rows, report.last_seq, report.bytes, report.millis
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::InUse { .. }) => {
            let body = serde_json::json!({ "dest": dest.display().to_string() });
            let (status, answer) = with_spinner("the running server is backing up", || {
                post_json(&args.remote.url, "/backup", &body)
            })
            .with_context(|| {
                format!(
                    "the database is open in another process, and asking the server at {} \
                     failed (is --url right?)",
                    args.remote.url
                )
            })?;
            if status != 201 {
                anyhow::bail!(
                    "the server refused the backup ({status}): {}",
                    answer["error"]
                );
            }
            println!(
                "backup written by the running server to {}: {} rows through seq {}, {} bytes, \
                 {} ms",
                answer["path"].as_str().unwrap_or("?"),
                answer["rows"],
                answer["last_seq"],
                answer["bytes"],
                answer["millis"]
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}
