//! `lakehouse-kb export`: write the legacy JSONL files from the database, once.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::{GlobalArgs, open_store_for};
use crate::export::{Action, ExportJob};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Directory to write _kb/outcomes.jsonl and _observer/ops.jsonl under [default: the data
    /// directory, --data]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(global: &GlobalArgs, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = open_store_for(
        global,
        "export",
        "use POST /export on the running server instead",
        false,
    )?;
    let out_dir = args.out.unwrap_or_else(|| global.data.clone());
    let job = ExportJob::new(Arc::new(store), out_dir);
    let report = job
        .run()
        .with_context(|| format!("exporting into {}", job.out_dir().display()))?;
    for file in report.files() {
        let what = match file.action {
            Action::Unchanged => "up to date".to_owned(),
            Action::Appended => format!("{} rows appended", file.rows_written),
            Action::Rebuilt => format!("rebuilt with {} rows", file.rows_written),
        };
        println!(
            "{}: {what} ({} bytes, rows through seq {})",
            file.path, file.checkpoint.len, file.checkpoint.seq
        );
        if let Some(reason) = &file.reason {
            println!("  note: {reason}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
