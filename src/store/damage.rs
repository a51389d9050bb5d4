//! Damage found after the open. The open catches redb's panics on a damaged file and reports
//! it (`open_db`), but damage in a page the open does not read shows only when that page is
//! read: redb then panics (an index out of range in a B-tree page, a poisoned lock after it).
//! A review's flipped bytes made `export`, `import` and `backup` exit with a bare panic, and the
//! server answer 500 to some reads, or stop, while `/healthz` said ok.
//!
//! redb panics in its own code, so a panic hook that sees one there records it ([`watch`]):
//! `/healthz` then says the database is damaged (503, until a restart), and a command that
//! stops on it says what to do. A panic elsewhere is a bug of this service, not damage, and is
//! left as it is.

use std::panic::PanicHookInfo;
use std::sync::{Once, OnceLock};

/// The first redb panic of this process, as reported.
static FOUND: OnceLock<String> = OnceLock::new();

/// Records redb's panics from now on, logged as damage (the process's previous hook reports
/// the others).
pub fn watch() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match damage_of(info) {
            // Said once, as damage, by whoever called (a command's error, `/healthz`), not as
            // a panic message with its backtrace.
            Some(damage) => {
                tracing::error!(damage = %damage, "the database is damaged: {ADVICE}");
                let _ = FOUND.set(damage);
            }
            None => previous(info),
        }));
    });
}

/// What redb panicked on, if it has in this process: the database is damaged.
pub fn found() -> Option<&'static str> {
    FOUND.get().map(String::as_str)
}

/// Records damage the service met decoding what it stored (a corrupt value, an index entry
/// that points nowhere): `/healthz` says so as for redb's panics. Only the first is kept.
pub fn note(damage: &str) {
    if FOUND
        .set(format!("a stored value could not be read ({damage})"))
        .is_ok()
    {
        tracing::error!(damage, "the database is damaged: {ADVICE}");
    }
}

impl super::StoreError {
    /// Whether this error says the database holds what this service could not have written:
    /// a value that does not decode, an index entry that is corrupt or points nowhere.
    pub fn is_damage(&self) -> bool {
        use super::codec::CodecError;
        match self {
            super::StoreError::Codec { source, .. } => matches!(
                source,
                CodecError::Corrupt(_)
                    | CodecError::TrailingBytes(_)
                    | CodecError::Empty
                    | CodecError::Reference(_)
            ),
            super::StoreError::Dangling { .. } | super::StoreError::CorruptIndex(_) => true,
            _ => false,
        }
    }
}

/// What to tell an operator once the database is found damaged.
pub const ADVICE: &str = "stop the service, run `lakehouse-kb check`, and restore the latest \
                          backup that passes it (docs/RELIABILITY.md, \"Backup and restore\")";

fn damage_of(info: &PanicHookInfo<'_>) -> Option<String> {
    let location = info.location()?;
    let file = in_redb(location.file())?;
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic");
    Some(format!(
        "redb could not read the database ({message}, at {file}:{})",
        location.line()
    ))
}

/// `file`, a panic's location, from redb's source directory on (`redb-4.6.0/src/...`, not the
/// build's paths), when it is in redb's sources.
fn in_redb(file: &str) -> Option<&str> {
    let mut at = 0;
    for part in file.split(['/', '\\']) {
        if part.strip_prefix("redb-").is_some_and(is_version) {
            return Some(&file[at..]);
        }
        at += part.len() + 1;
    }
    None
}

fn is_version(text: &str) -> bool {
    text.split('.').count() >= 2
        && text
            .split(['.', '-', '+'])
            .next()
            .is_some_and(|major| !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redb_s_sources_are_told_from_others() {
        let registry = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/redb-4.6.0/\
                        src/tree_store/btree_base.rs";
        assert_eq!(
            in_redb(registry),
            Some("redb-4.6.0/src/tree_store/btree_base.rs")
        );
        assert_eq!(
            in_redb("/home/redb-fan/vendor/redb-4.6.0/src/db.rs"),
            Some("redb-4.6.0/src/db.rs")
        );
        for other in [
            "src/store/read.rs",
            "/root/.cargo/registry/src/index.crates.io-1/redb-derive-0.1.0/src/lib.rs",
            "/home/redb-fan/project/src/main.rs",
            "/rustc/59807616e1fa/library/core/src/slice/index.rs",
        ] {
            assert_eq!(in_redb(other), None, "{other}");
        }
    }
}
