//! The crash tests' seam: a job the tests build with [`ExportJob::with_crash_hook`] stops at
//! a known point, in the test binary's own child process (the way sled's crash tests re-run
//! their binary). Nothing in the service or the CLI sets one: a production job's hook is
//! [`Hook::None`], a field compared at each checkpoint and row, never read from outside.
//!
//! - `abort-before-checkpoint:FILE`: abort the process right after FILE's new bytes are fsync'd
//!   and before its checkpoint is written (FILE is `outcomes` or `ops`).
//! - `pause-mid-line:FILE:N`: after writing N rows of FILE, write half of the next line, flush it
//!   to the OS, print `export paused mid-line` on stderr and block forever, so that a test can
//!   SIGKILL the process at a known point, with a torn line in the file.
//! - `append-before-write:FILE`: just before FILE's rows are written (by an export that takes in
//!   what other writers append), append [`APPENDED_BEFORE_WRITE`] to FILE through a handle of its
//!   own, as another writer whose append lands between the export's last look at the file and
//!   its write.
//!
//! [`ExportJob::with_crash_hook`]: super::ExportJob::with_crash_hook

use std::io::Write;
use std::path::Path;

use super::ExportFile;

/// The line `append-before-write` appends: a legacy outcome row.
pub const APPENDED_BEFORE_WRITE: &str =
    "{\"sig_hash\":\"appended-before-write\",\"kind\":\"scenario\",\"ok\":true}\n";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Hook {
    #[default]
    None,
    AbortBeforeCheckpoint(ExportFile),
    PauseMidLine {
        file: ExportFile,
        after_rows: u64,
    },
    AppendBeforeWrite(ExportFile),
}

impl Hook {
    /// One of the values the module documentation lists.
    pub fn parse(value: &str) -> Option<Hook> {
        let file = |name: &str| ExportFile::ALL.into_iter().find(|f| f.name() == name);
        let mut parts = value.split(':');
        match (parts.next()?, parts.next(), parts.next(), parts.next()) {
            ("abort-before-checkpoint", Some(name), None, None) => {
                Some(Hook::AbortBeforeCheckpoint(file(name)?))
            }
            ("pause-mid-line", Some(name), Some(n), None) => Some(Hook::PauseMidLine {
                file: file(name)?,
                after_rows: n.parse().ok()?,
            }),
            ("append-before-write", Some(name), None, None) => {
                Some(Hook::AppendBeforeWrite(file(name)?))
            }
            _ => None,
        }
    }

    pub(super) fn before_checkpoint(&self, file: ExportFile) {
        if *self == Hook::AbortBeforeCheckpoint(file) {
            eprintln!(
                "export crash hook: aborting before the {} checkpoint",
                file.name()
            );
            std::process::abort();
        }
    }

    pub(super) fn before_write(&self, file: ExportFile, path: &Path) {
        if *self == Hook::AppendBeforeWrite(file) {
            let appended = std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .and_then(|mut other| other.write_all(APPENDED_BEFORE_WRITE.as_bytes()));
            if let Err(e) = appended {
                eprintln!("export crash hook: appending before the write failed: {e}");
                std::process::abort();
            }
        }
    }

    pub(super) fn maybe_pause(
        &self,
        file: ExportFile,
        rows_done: u64,
        line: &str,
        writer: &mut impl Write,
    ) {
        if *self
            != (Hook::PauseMidLine {
                file,
                after_rows: rows_done,
            })
        {
            return;
        }
        let half = &line.as_bytes()[..line.len() / 2];
        let _ = writer.write_all(half).and_then(|()| writer.flush());
        eprintln!("export crash hook: export paused mid-line");
        loop {
            std::thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_values_only() {
        assert_eq!(
            Hook::parse("abort-before-checkpoint:ops"),
            Some(Hook::AbortBeforeCheckpoint(ExportFile::Ops))
        );
        assert_eq!(
            Hook::parse("pause-mid-line:outcomes:12"),
            Some(Hook::PauseMidLine {
                file: ExportFile::Outcomes,
                after_rows: 12
            })
        );
        assert_eq!(
            Hook::parse("append-before-write:outcomes"),
            Some(Hook::AppendBeforeWrite(ExportFile::Outcomes))
        );
        for bad in [
            "",
            "abort-before-checkpoint",
            "abort-before-checkpoint:verdicts",
            "pause-mid-line:ops",
            "pause-mid-line:ops:x",
            "pause-mid-line:ops:1:2",
            "append-before-write",
            "append-before-write:ops:1",
        ] {
            assert_eq!(Hook::parse(bad), None, "{bad}");
        }
    }
}
