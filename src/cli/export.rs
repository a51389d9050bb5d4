//! `lakehouse-kb export`: write the legacy JSONL files from the database, once. When a server
//! holds the database, the server runs the export (`POST /export`) into its own directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::output::with_spinner;
use super::remote::{RemoteArgs, post_json, require_holder};
use super::{GlobalArgs, require_db};
use crate::export::{Action, Adopter, ExportJob, NotStored};
use crate::store::{Store, StoreError};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Directory to write _kb/outcomes.jsonl and _observer/ops.jsonl under [default: the data
    /// directory, --data]
    #[arg(long, value_name = "DIR", env = "LAKEHOUSE_KB_EXPORT_OUT")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Stores the rows the export takes in (`export/adopt.rs`) in `store`, which this command holds
/// alone: rows legacy writers appended after the service stopped ("going back") are kept as
/// the service's export keeps them, where they were cut and kept aside (a review's).
fn storing(store: Arc<Store>) -> Adopter {
    Arc::new(move |puts| {
        store
            .write(&puts)
            .map(drop)
            .map_err(|e| NotStored::Stopped(e.to_string()))
    })
}

pub fn run(global: &GlobalArgs, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let path = global.db_path();
    require_db(&path)?;
    let store = match Store::open(&path, global.store_options()) {
        Ok(store) => store,
        Err(StoreError::InUse { .. }) if args.out.is_none() => {
            return export_remotely(&path, &args);
        }
        Err(err @ StoreError::InUse { .. }) => {
            return Err(anyhow::Error::new(err).context(
                "cannot export into --out while another process holds the database: a running \
                 server exports into its own directory (run without --out, or POST /export); a \
                 check, backup or migration lets go of it when it has finished",
            ));
        }
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!("opening {}", path.display())));
        }
    };
    let out_dir = args
        .out
        .as_deref()
        .map_or_else(|| global.data_dir(), crate::fsutil::through_link);
    let store = Arc::new(store);
    let job = ExportJob::new(store.clone(), out_dir).with_adopter(storing(store));
    let report = with_spinner(
        &format!("exporting into {}", job.out_dir().display()),
        || job.run(),
    )
    .with_context(|| format!("exporting into {}", job.out_dir().display()))?;
    for file in report.files() {
        let what = match file.action {
            Action::Unchanged => "up to date".to_owned(),
            Action::Appended => format!("{} rows appended", file.rows_written),
            Action::Rebuilt => format!("rebuilt with {} rows", file.rows_written),
            Action::Failed => "NOT exported".to_owned(),
            Action::Paused => "PAUSED, not exported".to_owned(),
        };
        out!(
            "{}: {what} ({} bytes, rows through seq {})",
            file.path,
            file.checkpoint.len,
            file.checkpoint.seq
        );
        if let Some(reason) = &file.reason {
            out!("  note: {reason}");
        }
        if let Some(error) = &file.error {
            let text = format!("lakehouse-kb: error: {error}");
            super::output::line(super::output::Level::Error, &error.to_string(), &text);
        }
    }
    // The files are independent: one failing does not stop the other, but the run failed.
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The database is held by a running server: ask it to export.
fn export_remotely(path: &std::path::Path, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    require_holder(&args.remote.url, path)?;
    let (status, answer) = with_spinner("the running server is exporting", || {
        post_json(&args.remote.url, "/export", &serde_json::json!({}))
    })
    .with_context(|| {
        format!(
            "the database is open in another process, and asking the server at {} to export \
             failed",
            args.remote.url
        )
    })?;
    if status != 200 {
        anyhow::bail!(
            "the server refused the export ({status}): {}",
            answer["error"]
        );
    }
    let mut failed = false;
    for file in ["outcomes", "ops"] {
        let f = &answer[file];
        // Said as an export in this process says it (a failed file is not "0 rows written").
        let rows = &f["rows_written"];
        let what = match f["action"].as_str().unwrap_or_default() {
            "unchanged" => "up to date".to_owned(),
            "appended" => format!("{rows} rows appended"),
            "rebuilt" => format!("rebuilt with {rows} rows"),
            "failed" => "NOT exported".to_owned(),
            "paused" => "PAUSED, not exported".to_owned(),
            other => format!("{other}, {rows} rows written"),
        };
        out!(
            "{} (by the running server): {what} ({} bytes, rows through seq {})",
            f["path"].as_str().unwrap_or(file),
            f["checkpoint"]["len"],
            f["checkpoint"]["seq"]
        );
        if let Some(reason) = f["reason"].as_str() {
            out!("  note: {reason}");
        }
        if let Some(error) = f["error"].as_str() {
            let text = format!("lakehouse-kb: error: {error}");
            super::output::line(super::output::Level::Error, error, &text);
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
