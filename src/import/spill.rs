//! The verdict files' texts between the two passes: pass 1 reads every file (on its reader
//! threads) and appends its text here, keeping only where it went; pass 2 reads each text back
//! when its place comes. The texts sit in the page cache, not in the process: an import's
//! memory does not grow with the verdict directory (it held every text until 2026-12-03:
//! about 200 MB at 195,683 files). Reading the files again in pass 2 instead would cost an
//! `open` per file (tens of microseconds each, seconds in all).
//!
//! The file is unnamed (`O_TMPFILE`) in the database's directory: nothing is left behind when
//! the import ends, fails or is killed, and nothing is written outside the data directory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// The directory the spill file goes in: the database's.
pub(super) fn dir_of(db_path: &Path) -> &Path {
    match db_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Where one text went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Spilled {
    offset: u64,
    len: u32,
}

/// The spill file while pass 1 appends to it, from any reader thread.
pub(super) struct SpillWriter {
    inner: Mutex<(BufWriter<File>, u64)>,
}

impl SpillWriter {
    pub fn create_in(dir: &Path) -> std::io::Result<SpillWriter> {
        let file = tempfile::tempfile_in(dir)?;
        Ok(SpillWriter {
            inner: Mutex::new((BufWriter::with_capacity(1 << 20, file), 0)),
        })
    }

    /// Appends `text`; where it went. A text over 4 GiB is refused (a verdict file is far
    /// smaller: the HTTP body limit is a few MiB).
    pub fn append(&self, text: &str) -> std::io::Result<Spilled> {
        let len = u32::try_from(text.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "a verdict file over 4 GiB")
        })?;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (writer, end) = &mut *inner;
        writer.write_all(text.as_bytes())?;
        let spilled = Spilled { offset: *end, len };
        *end += u64::from(len);
        Ok(spilled)
    }

    /// Done appending: the file, to read the texts back.
    pub fn finish(self) -> std::io::Result<SpillReader> {
        let (writer, _) = self
            .inner
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        Ok(SpillReader { file })
    }
}

/// The spill file in pass 2.
pub(super) struct SpillReader {
    file: File,
}

impl SpillReader {
    /// The text appended at `spilled`.
    pub fn read(&self, spilled: Spilled) -> std::io::Result<String> {
        let mut bytes = vec![0; spilled.len as usize];
        self.file.read_exact_at(&mut bytes, spilled.offset)?;
        String::from_utf8(bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_come_back_as_they_went_in_from_any_thread() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SpillWriter::create_in(dir.path()).unwrap();
        let texts: Vec<String> = (0..200)
            .map(|i| format!("{{\"n\":{i},\"é\":\"{}\"}}", "x".repeat(i)))
            .collect();
        let spilled: Vec<Spilled> = std::thread::scope(|scope| {
            let halves: Vec<_> = texts
                .chunks(100)
                .map(|part| {
                    let writer = &writer;
                    scope.spawn(move || {
                        part.iter()
                            .map(|t| writer.append(t).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let reader = writer.finish().unwrap();
        for (text, at) in texts.iter().zip(spilled) {
            assert_eq!(&reader.read(at).unwrap(), text);
        }
        // Unnamed: the directory stays empty.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
