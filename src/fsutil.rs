//! Opening files without following symbolic links. The service writes into directories that
//! other users may be able to write to (the export directory is the legacy lakehouse's data
//! directory), so every file it writes is opened with `O_NOFOLLOW`, every file it creates is
//! created exclusively where a leftover cannot be there, and a link where a file should be is
//! an error (`ELOOP`), never a way to write elsewhere.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Mode of the files the service keeps to itself (backups, scratch files): its user's alone.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the directories the service keeps to itself.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the exported legacy files and their directories, which other users' readers (the
/// report scripts) may need: what the legacy writers made, the process umask applied.
pub const SHARED_FILE_MODE: u32 = 0o666;
pub const SHARED_DIR_MODE: u32 = 0o777;

/// Options that never follow a link at the last component of the path.
fn nofollow() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    options
}

/// Opens an existing regular file for reading, refusing a link and anything else that is not a
/// regular file: opening a FIFO blocks until a writer comes, and a FIFO named like a verdict
/// file hung the export's take-in for good, its shutdown too (a review's). Opened without
/// blocking, then checked.
pub fn open_read(path: &Path) -> io::Result<File> {
    let file = nofollow()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_a_regular_file(path));
    }
    Ok(file)
}

/// The error for a FIFO, a device or a directory where a regular file should be (kind
/// `InvalidInput`, which callers tell apart by).
pub fn not_a_regular_file(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is not a regular file", path.display()),
    )
}

/// Whether anything is at `path`, the path itself looked at: a symbolic link there is, even a
/// dangling one (which `Path::exists` takes for nothing), to be refused when it is opened.
pub fn is_present(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens a file for reading and writing, creating it with `mode` when absent; never
/// truncates, and refuses a link, dangling or not.
pub fn open_rw(path: &Path, mode: u32) -> io::Result<File> {
    nofollow()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .open(path)
}

/// Creates a file with `mode` that must not exist yet: fails on anything at `path`, a link
/// included.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    nofollow()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

/// Creates one directory with `mode`; an existing one is fine only when it is a real directory.
pub fn create_dir(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => require_real_dir(path),
        Err(e) => Err(e),
    }
}

/// Fails unless `path` is a directory itself, not a link to one.
pub fn require_real_dir(path: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Err(io::Error::other(format!(
            "{} is a symbolic link, not a directory",
            path.display()
        )));
    }
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            path.display()
        )));
    }
    Ok(())
}

/// An opaque name of the file at `path` (its device and inode, hashed): two paths give the same
/// name exactly when they reach the same file, whichever process asks. It is not a secret, and
/// says nothing about where the file is.
pub fn file_identity(path: &Path) -> io::Result<String> {
    Ok(identity_of(dev_ino(&std::fs::metadata(path)?)))
}

/// [`file_identity`] of the file whose device and inode are `(dev, ino)`.
pub fn identity_of((dev, ino): (u64, u64)) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"lakehouse-kb file identity\0")
        .chain_update(dev.to_le_bytes())
        .chain_update(ino.to_le_bytes())
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `path` resolved when it is a symbolic link itself (its target made absolute and free of
/// links); as given otherwise, or when it cannot be resolved (a dangling link is then met as
/// such where it is used).
pub fn through_link(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
        }
        _ => path.to_owned(),
    }
}

/// The device and inode of the file at `path`; `None` when there is none to read.
pub fn dev_ino_at(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|meta| dev_ino(&meta))
}

/// A file's device and inode: the same pair exactly when two opens or paths reach one file.
pub fn dev_ino(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// A second handle on the file `handle` has open at `path`, writing as an `O_APPEND` writer
/// does, for [`append_all`]. Fails when `path` no longer names that file (moved or replaced
/// since it was opened).
pub fn reopen_appending(path: &Path, handle: &File) -> io::Result<File> {
    let appending = nofollow().append(true).open(path)?;
    if dev_ino(&appending.metadata()?) != dev_ino(&handle.metadata()?) {
        return Err(io::Error::other(format!(
            "{} was replaced while it was written",
            path.display()
        )));
    }
    Ok(appending)
}

/// Writes all of `bytes` through `appending` (from [`reopen_appending`]): where the file ends
/// is found and written at in one step, so that another writer's append is never written over.
/// Gives back the offset the bytes begin at, past the length last seen when another writer
/// appended meanwhile. Fails, having written part of them, when another writer's append came
/// between two parts (a write of more than the kernel takes at once, about 2 GiB).
pub fn append_all(appending: &File, bytes: &[u8]) -> io::Result<u64> {
    use std::io::{Seek, Write};
    let mut file = appending;
    let mut began: Option<(u64, u64)> = None;
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = match file.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let end = file.stream_position()?;
        let start = end - n as u64;
        began = match began {
            None => Some((start, end)),
            Some((first, last_end)) if last_end == start => Some((first, end)),
            Some(_) => {
                return Err(io::Error::other(
                    "another writer appended between two parts of one write",
                ));
            }
        };
        rest = &rest[n..];
    }
    match began {
        Some((first, _)) => Ok(first),
        None => file.seek(io::SeekFrom::End(0)),
    }
}

/// fsyncs a directory, making the entries created or renamed in it durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    nofollow()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_DIRECTORY)
        .open(path)?
        .sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_begins_where_the_file_ends_then_not_where_it_was_seen_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outcomes.jsonl");
        std::fs::write(&path, b"one\n").unwrap();
        let handle = open_rw(&path, FILE_MODE).unwrap();
        let appending = reopen_appending(&path, &handle).unwrap();
        assert_eq!(append_all(&appending, b"two\n").unwrap(), 4);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut other| std::io::Write::write_all(&mut other, b"other\n"))
            .unwrap();
        assert_eq!(append_all(&appending, b"three\n").unwrap(), 14);
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\nother\nthree\n");
        assert_eq!(append_all(&appending, b"").unwrap(), 20);
        let fresh = reopen_appending(&path, &handle).unwrap();
        assert_eq!(append_all(&fresh, b"").unwrap(), 20);
        std::fs::rename(&path, dir.path().join("moved")).unwrap();
        std::fs::write(&path, b"new").unwrap();
        let replaced = reopen_appending(&path, &handle).unwrap_err();
        assert!(replaced.to_string().contains("replaced"), "{replaced}");
    }

    #[test]
    fn a_file_has_one_identity_by_any_path_and_another_file_another() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kb.redb");
        std::fs::write(&file, b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let other = dir.path().join("sub/kb.redb");
        std::fs::write(&other, b"x").unwrap();
        let linked = dir.path().join("sub/link");
        std::fs::hard_link(&file, &linked).unwrap();
        let id = file_identity(&file).unwrap();
        assert_eq!(id.len(), 16);
        assert_eq!(
            file_identity(&dir.path().join("sub/../kb.redb")).unwrap(),
            id
        );
        assert_eq!(file_identity(&linked).unwrap(), id);
        assert_ne!(file_identity(&other).unwrap(), id);
        assert!(file_identity(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn links_are_refused_and_their_targets_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"theirs").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        for path in [&link, &dangling] {
            assert!(open_rw(path, FILE_MODE).is_err());
            assert!(create_new(path, FILE_MODE).is_err());
            assert!(open_read(path).is_err());
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
        assert!(!dir.path().join("nowhere").exists());
        let dir_link = dir.path().join("dir-link");
        std::os::unix::fs::symlink(dir.path(), &dir_link).unwrap();
        assert!(create_dir(&dir_link, DIR_MODE).is_err());
        assert!(require_real_dir(dir.path()).is_ok());
    }

    /// A FIFO (or a directory) where a file is read is refused at once: opening a FIFO for
    /// reading would wait for a writer for ever.
    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("42-abcdef012345.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opened on a thread of its own, so that an open waiting for a writer fails the test
        // rather than hang it.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(open_read(&path).is_err()));
        match rx.recv_timeout(std::time::Duration::from_secs(5)) {
            Ok(refused) => assert!(refused, "a FIFO was opened for reading"),
            Err(_) => {
                // A writer lets the waiting open return.
                let _writer = std::fs::OpenOptions::new().write(true).open(&fifo);
                panic!("opening a FIFO waited for a writer");
            }
        }
        assert!(open_read(dir.path()).is_err());
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(open_read(&file).is_ok());
    }
}
