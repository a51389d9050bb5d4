//! What an import reports: counts per legacy file and for verdicts, the problems it listed
//! (rejected lines and files, lines kept with a warning), and the import's error type.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::MAX_LISTED;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("legacy directory {0} does not exist or is not a directory")]
    NotADirectory(PathBuf),
    #[error(
        "{0} is a symbolic link: the import reads only what is inside the legacy directory \
         and does not follow links (replace the link with what it points to, or import a copy \
         made with the links followed, e.g. `cp -rL`)"
    )]
    Link(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("import: {0}")]
    Store(#[from] StoreError),
    /// The import's writer thread stopped without answering for every batch. It stops after a
    /// failed write (reported as that write's error instead) or by panicking, which the thread
    /// scope carries on to the caller, so this is a guard rather than an expected outcome.
    #[error("import: the writer thread stopped without writing and committing every put")]
    WriterStopped,
    #[error(
        "{n_rejected} malformed line(s) or verdict file(s) in {dir}; nothing was imported \
         (--strict)"
    )]
    Strict {
        dir: PathBuf,
        n_rejected: u64,
        /// The first [`MAX_LISTED`] of them.
        rejections: Vec<Problem>,
    },
}

/// The error for an I/O failure on `path`, for `map_err`.
pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError {
    let path = path.to_owned();
    move |source| ImportError::Io { path, source }
}

/// A line or file that was rejected, or kept with a warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: PathBuf,
    /// 1-based line number; none for a verdict file.
    pub line: Option<u64>,
    pub message: String,
}

/// The path as printed: quoted and escaped when it holds control characters, which a file
/// name may (a newline would forge a line of the report, an escape sequence reach the
/// operator's terminal).
fn shown(path: &Path) -> String {
    let text = path.to_string_lossy();
    if text.chars().any(char::is_control) {
        format!("{text:?}")
    } else {
        text.into_owned()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = shown(&self.path);
        match self.line {
            Some(line) => write!(f, "{path}:{line}: {}", self.message),
            None => write!(f, "{path}: {}", self.message),
        }
    }
}

/// Counts for one legacy file (or, for verdict files, the directory).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileCounts {
    /// Lines read (for verdict files: files read).
    pub read: u64,
    pub stored: u64,
    /// Already in the store: skipped.
    pub duplicates: u64,
    pub rejected: u64,
    /// Blank lines, skipped.
    pub blank: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerdictCounts {
    pub stored: u64,
    pub duplicates: u64,
    /// Stored from an audit row, with the matching verdict file's JSON.
    pub from_file: u64,
    /// Stored from an audit row's own fields (no verdict file had its head and `audited_at`).
    pub from_row: u64,
    /// Stored from a verdict file that no audit row matches (no outcome row).
    pub without_row: u64,
    /// Audit rows kept as rows but too incomplete to make a verdict from (see warnings).
    pub not_made: u64,
}

/// Lines and files over the three sources of an import (see [`FileCounts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub read: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub outcomes: FileCounts,
    pub ops: FileCounts,
    pub verdict_files: FileCounts,
    pub verdicts: VerdictCounts,
    /// The first [`MAX_LISTED`] rejected lines and files (all are counted in the file counts).
    pub rejections: Vec<Problem>,
    pub n_warnings: u64,
    /// Time the writer thread spent writing and committing, while the reading and parsing of
    /// the next puts went on.
    pub store_write_ms: u64,
    /// The first [`MAX_LISTED`] lines kept with a warning (a field that cannot be indexed, an
    /// audit row no verdict could be made from).
    pub warnings: Vec<Problem>,
}

impl ImportReport {
    /// Totals over the three sources (outcome rows, ops lines, verdict files).
    pub fn totals(&self) -> Totals {
        let all = [&self.outcomes, &self.ops, &self.verdict_files];
        let sum = |count: fn(&FileCounts) -> u64| all.iter().map(|c| count(c)).sum();
        Totals {
            read: sum(|c| c.read),
            stored: sum(|c| c.stored),
            duplicates: sum(|c| c.duplicates),
            rejected: sum(|c| c.rejected),
        }
    }

    pub(super) fn reject(
        &mut self,
        which: LegacySource,
        path: &Path,
        line: Option<u64>,
        message: String,
    ) {
        self.counts(which).rejected += 1;
        if self.rejections.len() < MAX_LISTED {
            self.rejections.push(Problem {
                path: path.to_owned(),
                line,
                message,
            });
        }
    }

    pub(super) fn warn(&mut self, path: &Path, line: Option<u64>, message: String) {
        self.n_warnings += 1;
        if self.warnings.len() < MAX_LISTED {
            self.warnings.push(Problem {
                path: path.to_owned(),
                line,
                message,
            });
        }
    }

    fn counts(&mut self, which: LegacySource) -> &mut FileCounts {
        match which {
            LegacySource::Outcomes => &mut self.outcomes,
            LegacySource::Ops => &mut self.ops,
            LegacySource::VerdictFiles => &mut self.verdict_files,
        }
    }
}

/// The legacy source a problem is counted against.
#[derive(Debug, Clone, Copy)]
pub(super) enum LegacySource {
    Outcomes,
    Ops,
    VerdictFiles,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file name is printed as it is, unless it holds control characters: then quoted and
    /// escaped, so that it cannot forge a report line or drive the terminal (a review's).
    #[test]
    fn a_problem_prints_a_hostile_file_name_escaped() {
        let problem = |name: &str| {
            Problem {
                path: PathBuf::from("legacy/_auditor/verdicts").join(name),
                line: None,
                message: "not a verdict".into(),
            }
            .to_string()
        };
        assert_eq!(
            problem("6-abc.json"),
            "legacy/_auditor/verdicts/6-abc.json: not a verdict"
        );
        let forged = problem("x.json\nrejected: nothing, all 0 lines fine\x1b[2J.json");
        assert!(
            !forged.contains('\n') && !forged.contains('\x1b'),
            "{forged}"
        );
        assert!(
            forged.contains(r"\n") && forged.contains(r"\u{1b}"),
            "{forged}"
        );
    }
}
