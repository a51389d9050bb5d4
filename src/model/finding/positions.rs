//! Which numbers of a wording are positions in a file (they move between pushes), which
//! are measurements (they move too) and which name something (they are kept): what a
//! wording's text says just before a number decides it.

use crate::model::tail;

/// Words after which a number is a position in a file (lowercase).
pub(super) const POSITION_WORDS: [&str; 6] = ["line", "lines", "ln", "col", "column", "columns"];

/// Units a number may be followed by, as the next word: the number is a measurement
/// (`30 seconds`, `120 lines`), which moves between pushes, not a thing named.
pub(super) const UNIT_WORDS: [&str; 30] = [
    "%", "b", "bytes", "d", "days", "entries", "gb", "gib", "h", "hours", "items", "kb", "kib",
    "lines", "mb", "mib", "min", "mins", "minutes", "ms", "percent", "rows", "s", "sec", "secs",
    "second", "seconds", "times", "x", "us",
];

/// Units written on a number (`30s`, `1.5gb`, `2x`): the number is a measurement.
const UNIT_SUFFIXES: [&str; 34] = [
    "b", "d", "em", "fps", "gb", "gib", "h", "hr", "hrs", "k", "kb", "kib", "m", "mb", "mib",
    "min", "mins", "ms", "ns", "pt", "px", "qps", "rem", "rps", "s", "sec", "secs", "tb", "tib",
    "us", "w", "x", "\u{b5}s", "%",
];

/// Whether `word` (lowercase) is a measurement: digits, maybe a decimal part, and a unit.
pub(super) fn is_measurement(word: &str) -> bool {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    if rest.len() == word.len() {
        return false;
    }
    let rest = match rest.strip_prefix('.') {
        Some(fraction) => {
            let unit = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
            if unit.len() == fraction.len() {
                return false;
            }
            unit
        }
        None => rest,
    };
    UNIT_SUFFIXES.contains(&rest)
}

/// Whether `word` is a number, maybe with a decimal part (`72`, `1.5`).
pub(super) fn is_decimal(word: &str) -> bool {
    let mut halves = word.splitn(2, '.');
    halves.all(|h| !h.is_empty() && is_number(h))
}

/// Whether `word` (lowercase) is an anchor's position: `l42`, `l42-l57`, `l42-57`.
pub(super) fn is_anchor(word: &str) -> bool {
    word.split('-').enumerate().all(|(i, part)| {
        let digits = part
            .strip_prefix('l')
            .unwrap_or(if i == 0 { "" } else { part });
        !digits.is_empty() && is_number(digits)
    })
}

/// Words that continue a range of positions (`lines 42 to 57`).
pub(super) const RANGE_WORDS: [&str; 4] = ["to", "and", "through", "thru"];

/// Whether a number starting right after `before` (the last [`POSITION_CONTEXT`] bytes of a
/// summary so far: a summary of many numbers must cost its length, not its length squared) is
/// a position in a file: after a file's `:` (`ingest.rs:42`, and the column after it) or a
/// source file's `(` (`ingest.rs(42,7)`, as compilers write it; after a method's name,
/// `server.listen(3000)`, `res.status(500)`, the number is an argument), after `#l` (an anchor
/// `#L42`, and `#L42-L57`), after a position word (a space, `#` or `.` between), or after a
/// position already written (`#`) and a range's `-`, `–`, `..` or `,`. After a `:` that follows
/// no file (`0.0.0.0:5432`, `localhost:8080`, `node:16`) a number names something.
pub(super) fn is_position_before(before: &str) -> bool {
    if before.ends_with("#l") || before.ends_with("#-l") {
        return true;
    }
    if let Some(head) = before.strip_suffix(':') {
        return head.ends_with('#') || names_a_file(head);
    }
    if let Some(head) = before.strip_suffix('(') {
        return head.ends_with('#') || names_a_source_file(head);
    }
    for joiner in ["-", "\u{2013}", "..", ",", ", "] {
        if before
            .strip_suffix(joiner)
            .is_some_and(|head| head.ends_with('#'))
        {
            return true;
        }
    }
    let head = before.trim_end_matches([' ', '#', '.']);
    let word_start = head.rfind(|c: char| !c.is_alphanumeric()).map_or(0, |at| {
        at + head[at..].chars().next().map_or(1, char::len_utf8)
    });
    POSITION_WORDS.contains(&&head[word_start..])
}

/// Bytes before a number that [`is_position_before`] needs (a position word and its
/// separators, or a file's extension, its dot and the character before it), and a few more.
pub(super) const POSITION_CONTEXT: usize = 32;

/// Whether `text` ends with a file's name: a name, a `.`, and an extension of 1 to 10 letters
/// or digits, the first a letter (`ingest.rs`, `src/db/users.ts`, `Cargo.toml`), that is not
/// the last label of a host's name ([`HOST_SUFFIXES`]: `cache.internal`, `db.example.com`), or
/// one of the files named without an extension ([`EXTENSIONLESS_FILES`]: `Dockerfile`,
/// `src/Makefile`). Only the last 16 bytes are read: a summary's every `:` or `(` must not
/// cost a scan back to its start.
pub(super) fn names_a_file(text: &str) -> bool {
    let extensionless = trailing_name(tail(text, 16));
    if EXTENSIONLESS_FILES
        .iter()
        .any(|file| extensionless.eq_ignore_ascii_case(file))
    {
        return true;
    }
    let Some((name, extension)) = tail(text, 12).rsplit_once('.') else {
        return false;
    };
    let name_ends = name
        .chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
    name_ends
        && (1..=10).contains(&extension.len())
        && extension.starts_with(|c: char| c.is_ascii_alphabetic())
        && extension.bytes().all(|b| b.is_ascii_alphanumeric())
        && !names_a_host(text)
}

/// Files named without an extension that a tool names with a line (`Dockerfile:3`).
const EXTENSIONLESS_FILES: [&str; 16] = [
    "BUILD",
    "Brewfile",
    "Caddyfile",
    "Containerfile",
    "Dockerfile",
    "GNUmakefile",
    "Gemfile",
    "Jenkinsfile",
    "Justfile",
    "Makefile",
    "Podfile",
    "Procfile",
    "Rakefile",
    "Tiltfile",
    "Vagrantfile",
    "WORKSPACE",
];

/// Whether `text` ends with a file's name ([`names_a_file`]) whose extension is one of
/// [`SOURCE_EXTENSIONS`]: where `name.ext(` is a position (`ingest.rs(42,7)`), not a call of
/// a method (`server.listen(3000)`, `math.pow(2, 31)`).
fn names_a_source_file(text: &str) -> bool {
    names_a_file(text)
        && text.rsplit_once('.').is_some_and(|(_, extension)| {
            SOURCE_EXTENSIONS
                .binary_search(&extension.to_ascii_lowercase().as_str())
                .is_ok()
        })
}

/// Extensions of the source and configuration files a compiler or linter names with a
/// position in parentheses (`file.cs(42,7)`), sorted.
const SOURCE_EXTENSIONS: [&str; 102] = [
    "ada",
    "adb",
    "ads",
    "asm",
    "bash",
    "bicep",
    "c",
    "cbl",
    "cc",
    "cfg",
    "cjs",
    "clj",
    "cmake",
    "cob",
    "conf",
    "cpp",
    "cs",
    "cshtml",
    "csproj",
    "css",
    "cts",
    "cxx",
    "dart",
    "dockerfile",
    "ejs",
    "elm",
    "erl",
    "ex",
    "exs",
    "f90",
    "for",
    "fs",
    "fsproj",
    "fsx",
    "go",
    "gradle",
    "groovy",
    "h",
    "hbs",
    "hh",
    "hpp",
    "hs",
    "htm",
    "html",
    "inc",
    "ini",
    "java",
    "jl",
    "js",
    "json",
    "jsonc",
    "jsx",
    "kt",
    "kts",
    "less",
    "lua",
    "m",
    "md",
    "mjs",
    "mk",
    "ml",
    "mm",
    "mts",
    "nim",
    "pas",
    "php",
    "pl",
    "pp",
    "props",
    "proto",
    "ps1",
    "purs",
    "py",
    "r",
    "razor",
    "rb",
    "rc",
    "rs",
    "sass",
    "scala",
    "scss",
    "sh",
    "sql",
    "sv",
    "svelte",
    "swift",
    "targets",
    "tf",
    "toml",
    "ts",
    "tsx",
    "twig",
    "vb",
    "vbproj",
    "vcxproj",
    "vhd",
    "vue",
    "xaml",
    "xml",
    "yaml",
    "yml",
    "zig",
];

/// The name `text` ends with: its last run of letters, digits, `.`, `-` and `_`.
fn trailing_name(text: &str) -> &str {
    let at = text
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_')))
        .map_or(0, |(at, c)| at + c.len_utf8());
    &text[at..]
}

/// Whether `text` ends with a host's name: labels joined by `.`, the last one of
/// [`HOST_SUFFIXES`] (`cache.internal`, `db.example.com`), or `localhost` alone. A name that
/// starts with a `.` is a file's (`.env.local`). Only the last 64 bytes are read.
pub(super) fn names_a_host(text: &str) -> bool {
    let name = trailing_name(tail(text, 64));
    match name.rsplit_once('.') {
        Some((labels, last)) => {
            !labels.is_empty()
                && !name.starts_with('.')
                && HOST_SUFFIXES.contains(&last.to_ascii_lowercase().as_str())
        }
        None => name.eq_ignore_ascii_case("localhost"),
    }
}

/// Last labels of host names that no source file is named with: the number after
/// `name.<suffix>:` is a port, not a line. Common top-level domains and the private ones of
/// internal networks; not `dev`, `app` or `info`, which name files too (`Dockerfile.dev`, a
/// Drupal module's `.info`).
const HOST_SUFFIXES: [&str; 20] = [
    "com",
    "org",
    "net",
    "io",
    "internal",
    "local",
    "localdomain",
    "localhost",
    "lan",
    "intranet",
    "corp",
    "cloud",
    "edu",
    "gov",
    "biz",
    "co",
    "ai",
    "us",
    "uk",
    "eu",
];

/// Whether `term` is a run of ASCII digits.
pub(super) fn is_number(term: &str) -> bool {
    term.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_extensions_are_sorted_for_binary_search() {
        assert!(SOURCE_EXTENSIONS.windows(2).all(|w| w[0] < w[1]));
    }
}
