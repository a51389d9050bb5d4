//! The similar tier: a wording's [`FindingTerms`] and how alike two wordings are.

use std::collections::BTreeSet;

use super::fingerprint::nfc;
use super::positions::{
    POSITION_CONTEXT, POSITION_WORDS, RANGE_WORDS, UNIT_WORDS, is_anchor, is_decimal,
    is_measurement, is_number, is_position_before, names_a_file, names_a_host,
};
use crate::model::tail;
use crate::model::text::{self, MAX_TERMS_PER_TEXT};

/// The terms of a finding's wording that the similar tier compares, read in NFC: `ids`, the
/// things it names, each counted once as a unit: code identifiers (a word whose parts are
/// joined by `_ . / : \` or camelCase humps, such as `parse_body`, `src/http/ingest.rs:42`,
/// `retryCount`), as their lowercase parts joined by `/`, a line or column number after `:`
/// left out (`src/http/ingest/rs`); versions (three or more numbers joined by dots, `4.17.15`),
/// as `=4.17.15`; advisory ids (three or more parts joined by `-`, two of them holding digits:
/// `CVE-2021-44228`, `GHSA-jfh8-5qgp-2hr2`), as their parts joined by `/`; and every other
/// number that is neither a position (after a file's `(`, after `line`, `lines`, `ln`, `col`,
/// `column`, `columns`, and the rest of a range after one: `lines 42-57`, `lines 42 to 57`;
/// an anchor `#L42-L57`) nor a measurement (a unit written on, `30s`, `1.5GB`, `72%`, or next,
/// `30 seconds`), as `#5432`, with letters after it that are no unit (`5xx`, `32bit`) too; and
/// `words`, the analyser's terms of the rest. Hyphenated prose (`user-supplied`) is words, not an
/// identifier. Both sorted and distinct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingTerms {
    pub words: Vec<String>,
    pub ids: Vec<String>,
}

impl FindingTerms {
    pub fn of(summary: &str) -> FindingTerms {
        let summary = nfc(summary);
        let mut words = BTreeSet::new();
        let mut ids = BTreeSet::new();
        let mut n_terms = 0;
        let mut plain = Vec::new();
        // Whether a number here is a position: after a position word, and through a range.
        let mut positions = false;
        let mut all = text::words(&summary).peekable();
        while let Some(word) = all.next() {
            if n_terms >= MAX_TERMS_PER_TEXT {
                break;
            }
            let parts = text::parts_of(word);
            let lower = word.to_lowercase();
            let numeric = parts.iter().all(|p| is_number(p));
            let at = word.as_ptr() as usize - summary.as_ptr() as usize;
            let (before, after) = (&summary[..at], &summary[at + word.len()..]);
            // A position: after a file's `(` (`ingest.rs(42,7)`), or in a range after one. What
            // decides it is in the last few characters before the number: only those are read,
            // so that a summary of many numbers costs its length, not its length squared.
            let in_range = positions && (numeric || RANGE_WORDS.contains(&lower.as_str()))
                || numeric && is_position_before(&tail(before, POSITION_CONTEXT).to_lowercase());
            positions = in_range || POSITION_WORDS.contains(&lower.as_str());
            // A measurement (`30s`, `1.5GB`, `72%`) moves between pushes; so does an anchor's
            // position (`#L42-L57`).
            if is_measurement(&lower)
                || (is_decimal(word) && after.starts_with('%'))
                || (before.ends_with('#') && is_anchor(&lower))
            {
                continue;
            }
            // A word right after a `.` is a dotfile's name (`.env.local`), not a host's.
            if let Some(id) = identifier(word, &parts, before.ends_with('.')) {
                ids.insert(id);
                n_terms += 1;
                continue;
            }
            // A measurement: a number with its unit, written on or as the next word.
            let unit_next = all
                .peek()
                .is_some_and(|next| UNIT_WORDS.contains(&next.to_lowercase().as_str()));
            for part in parts {
                if is_number(part) {
                    // (A line after a file's `:` that names no identifier: `Dockerfile:3`.)
                    let line_of_a_file = self::before(word, part)
                        .strip_suffix(':')
                        .is_some_and(names_a_file);
                    if !in_range && !unit_next && !line_of_a_file {
                        ids.insert(format!("#{part}"));
                        n_terms += 1;
                    }
                    continue;
                }
                // Digits with letters after them that are no unit name a thing (`5xx`, `32bit`).
                if part.starts_with(|c: char| c.is_ascii_digit()) {
                    ids.insert(format!("#{}", part.to_lowercase()));
                    n_terms += 1;
                    continue;
                }
                plain.clear();
                text::plain_terms(part, &mut plain);
                for term in plain.drain(..) {
                    n_terms += 1;
                    words.insert(term);
                }
            }
        }
        FindingTerms {
            words: words.into_iter().collect(),
            ids: ids.into_iter().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.ids.is_empty()
    }

    /// How alike two wordings are, from 0 to 1: the Dice coefficient of their terms (twice the
    /// shared terms over the terms of both), where two identifiers are shared when they can
    /// name the same thing (equal, or one the other's trailing parts: `ingest.rs` and
    /// `src/http/ingest.rs`); and 0 when each names something the other does not
    /// (`processPayment` and `processRefund`, `lodash 4.17.15` and `minimist 1.2.0`,
    /// `handler_a` and `handler_b` both calling `write_all`: the same defect in another place
    /// is another finding). A rewording may name less or more, not something else.
    ///
    /// Why not BM25 as the claims index does: BM25 weighs a term by its rarity in a corpus, and
    /// the corpus here is one PR's findings of one check, a handful: its weights would swing
    /// with how many findings the PR has, and so would any threshold on them. A model rewording
    /// its own finding keeps what it names and most of its content words, and changes function
    /// words, inflections, order, quoting and line numbers, which the analyser and the number
    /// rule absorb; a different finding of the same check shares the check's vocabulary and
    /// often the file, and differs in the defect or in what it names.
    ///
    /// An identifier counts once: its parts are not words too, or a shared identifier of four
    /// parts would outweigh every word of the defect. [`SIMILAR_THRESHOLD`] is 2/3 (the shared
    /// terms weigh at least twice those either wording has alone) rather than 1/2, because the
    /// two errors do not cost the same: a missed rewording costs a repeated comment, a false
    /// match hides a real finding behind another's history, or behind its dismissal.
    ///
    /// How these were decided: the first rule (identifier parts as words too, threshold 1/2)
    /// was measured on `tests/fixtures/findings/` as first written: every rewording recognised,
    /// but 20% of the different findings matched. The two causes above (identifier parts counted
    /// twice; a short finding where one word is a large share) gave the rule of this version. A
    /// second set, written before that change and evaluated once after it, is part of the
    /// fixtures (`holdout_*.tsv`); the test reports both. Later, a case outside the sets
    /// (`old_handler_7` and `new_handler_7` both calling `write_all`) widened "names nothing
    /// the other names" to "each names something the other does not"; the sets' figures did
    /// not move.
    pub fn similarity(&self, other: &FindingTerms) -> f64 {
        let total = self.words.len() + self.ids.len() + other.words.len() + other.ids.len();
        if total == 0 {
            return 0.0;
        }
        let ours = self
            .ids
            .iter()
            .filter(|a| other.ids.iter().any(|b| same_entity(a, b)))
            .count();
        let theirs = other
            .ids
            .iter()
            .filter(|b| self.ids.iter().any(|a| same_entity(a, b)))
            .count();
        // Each names something the other does not: different things.
        if ours < self.ids.len() && theirs < other.ids.len() {
            return 0.0;
        }
        let shared_words = sorted_intersection(&self.words, &other.words);
        2.0 * (shared_words + ours.min(theirs)) as f64 / total as f64
    }
}

/// The identifier a word of `parts` names, if it names one (see [`FindingTerms`]); `dotfile`:
/// the word follows a `.`, so it names a dotfile (`.env.local`), never a host.
fn identifier(word: &str, parts: &[&str], dotfile: bool) -> Option<String> {
    if parts.len() >= 3 && word.contains('.') && parts.iter().all(|p| is_number(p)) {
        return Some(format!("={}", parts.join(".")));
    }
    // An advisory id: CVE-2021-44228, GHSA-jfh8-5qgp-2hr2, RUSTSEC-2021-0001.
    if parts.len() >= 3
        && word.contains('-')
        && !is_code(word)
        && parts
            .iter()
            .filter(|p| p.bytes().any(|b| b.is_ascii_digit()))
            .count()
            >= 2
    {
        return Some(
            parts
                .iter()
                .map(|p| p.to_lowercase())
                .collect::<Vec<_>>()
                .join("/"),
        );
    }
    if parts.len() < 2 || !is_code(word) {
        return None;
    }
    // A number after `:` is a line or a column (`ingest.rs:42:7`), not part of the name;
    // after a host's name it is a port (`cache.internal:6379`), which is.
    let is_position = |p: &str| {
        is_number(p)
            && before(word, p)
                .strip_suffix(':')
                .is_some_and(|head| dotfile || !names_a_host(head))
    };
    let named: Vec<String> = parts
        .iter()
        .filter(|p| !is_position(p))
        .map(|p| p.to_lowercase())
        .collect();
    (named.len() > 1 && named.iter().any(|p| p.chars().count() > 1)).then(|| named.join("/"))
}

/// What `word` holds before `part`, a slice of it.
fn before<'a>(word: &'a str, part: &str) -> &'a str {
    let at = (part.as_ptr() as usize).saturating_sub(word.as_ptr() as usize);
    word.get(..at).unwrap_or_default()
}

/// A word of several parts names code when a code connector joins them, or camelCase humps
/// with no hyphen (`retryCount`); hyphens alone join English words (`user-supplied`).
fn is_code(word: &str) -> bool {
    word.contains(['_', '.', '/', ':', '\\']) || !word.contains('-')
}

/// Whether two identifiers (parts joined by `/`) can name the same thing: equal, or the
/// shorter the trailing parts of the longer.
fn same_entity(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long == short
        || long
            .strip_suffix(short)
            .is_some_and(|head| head.ends_with('/'))
}

fn sorted_intersection(a: &[String], b: &[String]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::finding::{Fingerprint, SIMILAR_THRESHOLD, normalise_summary};

    fn sim(a: &str, b: &str) -> f64 {
        text::round_score(FindingTerms::of(a).similarity(&FindingTerms::of(b)))
    }

    /// Rules version 2: positions and measurements move between pushes; every other number,
    /// and an advisory id, names something. At version 1 every number was `#`, so these pairs
    /// were one finding and a confirmed dismissal of one silenced the other (a review).
    #[test]
    fn numbers_that_name_things_keep_findings_apart_and_positions_do_not() {
        // (earlier, later, the same fingerprint, similar enough to be a rewording)
        let cases = [
            (
                "log4j-core 2.14.1 is vulnerable (CVE-2021-44228)",
                "log4j-core 2.14.1 is vulnerable (CVE-2021-45046)",
                false,
                false,
            ),
            (
                "port 22 is exposed to the internet",
                "port 5432 is exposed to the internet",
                false,
                false,
            ),
            (
                "the handler answers 500 on a bad body",
                "the handler answers 400 on a bad body",
                false,
                false,
            ),
            ("uses lodash 4.17.15", "uses lodash 4.17.21", false, false),
            (
                "unwrap in parse_body at ingest.rs:42",
                "unwrap in parse_body at ingest.rs:57",
                true,
                true,
            ),
            (
                "unwrap in parse_body on line 42",
                "unwrap in parse_body on line #57",
                true,
                true,
            ),
            (
                "dead code at lines 42-57 of ingest.rs",
                "dead code at lines 60-75 of ingest.rs",
                true,
                true,
            ),
            ("see src/ingest.rs#L42", "see src/ingest.rs#L57", true, true),
            // Measurements: another fingerprint, the same finding by the similar tier.
            (
                "timeout of 30s hard-coded in client.rs",
                "timeout of 45s hard-coded in client.rs",
                false,
                true,
            ),
            (
                "collect_rows grows its Vec (10k rows)",
                "collect_rows grows its Vec (50k rows)",
                false,
                true,
            ),
            (
                "the upload retries after 1.5s in client.rs",
                "the upload retries after 2.5s in client.rs",
                false,
                true,
            ),
            (
                "the cache in store.rs can grow to 1.5GB",
                "the cache in store.rs can grow to 2.5GB",
                false,
                true,
            ),
            (
                "branch coverage of findings.rs is 72%",
                "branch coverage of findings.rs is 68%",
                false,
                true,
            ),
            // A number in a method's call is an argument, not a position (at cd31122
            // `server.listen(3000)` and `(9229)` were one finding: a review's).
            (
                "server.listen(3000) binds to all interfaces",
                "server.listen(9229) binds to all interfaces",
                false,
                false,
            ),
            (
                "the handler answers res.status(500) on a missing body",
                "the handler answers res.status(404) on a missing body",
                false,
                false,
            ),
            (
                "Math.pow(2, 31) overflows the counter",
                "Math.pow(2, 63) overflows the counter",
                false,
                false,
            ),
            (
                "null dereference at Program.cs(42,7)",
                "null dereference at Program.cs(57,9)",
                true,
                true,
            ),
            (
                "warning MSB3277 in App.csproj(12,5) about conflicting versions",
                "warning MSB3277 in App.csproj(19,5) about conflicting versions",
                true,
                true,
            ),
            // Positions in other notations.
            (
                "unwrap in parse_body at ingest.rs(42,7)",
                "unwrap in parse_body at ingest.rs(57,9)",
                true,
                true,
            ),
            (
                "dead code in src/ingest.rs#L42-L57",
                "dead code in src/ingest.rs#L60-L75",
                true,
                true,
            ),
            // After a `:` that follows no file, a number names something.
            (
                "docker-compose.yml publishes postgres on 0.0.0.0:5432 to every interface",
                "docker-compose.yml publishes postgres on 0.0.0.0:22 to every interface",
                false,
                false,
            ),
            (
                "the admin UI listens on localhost:8080 without auth",
                "the admin UI listens on localhost:9090 without auth",
                false,
                false,
            ),
            // A port after a host's name (at 47acc62 the host was read as a file's name).
            (
                "redis at cache.internal:6379 accepts connections without auth",
                "redis at cache.internal:6380 accepts connections without auth",
                false,
                false,
            ),
            (
                "postgres at db.example.com:5432 takes the default password",
                "postgres at db.example.com:6543 takes the default password",
                false,
                false,
            ),
            (
                "the client calls API.GitHub.COM:443 without a timeout",
                "the client calls API.GitHub.COM:8443 without a timeout",
                false,
                false,
            ),
            // A file named like no host still has lines, and so does a dotfile whatever its
            // extension (`.env.local` is no host).
            (
                "Dockerfile:3 runs the container as root",
                "Dockerfile:9 runs the container as root",
                true,
                true,
            ),
            (
                "docker/Dockerfile:3 runs the container as root",
                "docker/Dockerfile:9 runs the container as root",
                true,
                true,
            ),
            (
                "src/Makefile:3 ignores the exit status of the test target",
                "src/Makefile:12 ignores the exit status of the test target",
                true,
                true,
            ),
            (
                "Dockerfile.dev:12 runs the app as root",
                "Dockerfile.dev:14 runs the app as root",
                true,
                true,
            ),
            (
                ".env.local:3 commits the database password",
                ".env.local:5 commits the database password",
                true,
                true,
            ),
            (
                "config/.env.production.local:3 commits the database password",
                "config/.env.production.local:9 commits the database password",
                true,
                true,
            ),
            (
                "the Dockerfile pins node:16, which is end of life",
                "the Dockerfile pins node:18, which is end of life",
                false,
                false,
            ),
            // Digits with letters that are no unit, and advisory ids, name things.
            (
                "the proxy turns 5xx answers into 200",
                "the proxy turns 4xx answers into 200",
                false,
                false,
            ),
            (
                "the build targets 32bit ARM only",
                "the build targets 64bit ARM only",
                false,
                false,
            ),
            (
                "vulnerable per GHSA-jfh8-5qgp-2hr2",
                "vulnerable per GHSA-jfh8-7qgp-9hr2",
                false,
                false,
            ),
            (
                "the retry waits 30 seconds in client.rs",
                "the retry waits 45 seconds in client.rs",
                false,
                true,
            ),
            (
                "3 tests are skipped in the ingest suite",
                "4 tests are skipped in the ingest suite",
                false,
                false,
            ),
            (
                "panic in caf\u{e9}_handler",
                "panic in cafe\u{301}_handler",
                true,
                true,
            ),
        ];
        for (earlier, later, same, similar) in cases {
            let (a, b) = (Fingerprint::of("c", earlier), Fingerprint::of("c", later));
            assert_eq!(
                a == b,
                same,
                "{earlier:?} / {later:?}: {} / {}",
                normalise_summary(earlier),
                normalise_summary(later)
            );
            let score = sim(earlier, later);
            assert_eq!(
                score >= SIMILAR_THRESHOLD,
                similar,
                "{earlier:?} / {later:?}: {score}"
            );
        }
        assert_eq!(
            FindingTerms::of("log4j-core (CVE-2021-44228) on port 8080 after 30 seconds").ids,
            ["#8080", "cve/2021/44228"]
        );
    }

    #[test]
    fn terms_leave_positions_out_and_count_identifiers_once() {
        let t = FindingTerms::of(
            "`src/http/ingest.rs:42` unwraps user-supplied input from parseBody (serde 1.0.40)",
        );
        assert_eq!(t.ids, ["=1.0.40", "parse/body", "src/http/ingest/rs"]);
        assert_eq!(t.words, ["input", "serd", "suppli", "unwrap", "user"]);
        // Hyphenated prose and abbreviations like e.g. are not identifiers.
        assert!(
            FindingTerms::of("user-supplied input, e.g. a header")
                .ids
                .is_empty()
        );
    }

    #[test]
    fn rewordings_score_high_and_other_findings_low() {
        // A moved line and a requoted identifier: the same terms.
        assert_eq!(
            sim(
                "unwrap on 'input' in parse_body (ingest.rs:42)",
                "unwrap on `input` in parse_body (ingest.rs:57)"
            ),
            1.0
        );
        let reworded = sim(
            "Missing error handling for a failed S3 upload in upload.ts:88",
            "upload.ts:91 does not handle a failed S3 upload",
        );
        assert!(reworded >= SIMILAR_THRESHOLD, "{reworded}");
        // The same defect elsewhere: what they name cannot be the same thing.
        assert_eq!(
            sim(
                "Missing error handling for a failed S3 upload in upload.ts:88",
                "Missing error handling for a failed email send in mailer.ts:40",
            ),
            0.0
        );
        assert_eq!(
            sim(
                "lodash 4.17.15 has a known prototype pollution vulnerability",
                "minimist 1.2.0 has a known prototype pollution vulnerability"
            ),
            0.0
        );
        // Each names a handler the other does not: the shared callee does not make them one.
        assert_eq!(
            sim(
                "old_handler_7 ignores the error that write_all returns",
                "function new_handler_7 ignores the error of write_all"
            ),
            0.0
        );
        // Naming more (or less) is still a rewording.
        let more = sim(
            "parse_body unwraps user input and can panic",
            "unwrap() on user input in parse_body (src/http/ingest.rs:42) can panic",
        );
        assert!(more >= SIMILAR_THRESHOLD, "{more}");
        // A shortened path is the same file.
        let shortened = sim(
            "SQL built by string concatenation in src/db/users.ts",
            "users.ts builds SQL by string concatenation",
        );
        assert!(shortened >= SIMILAR_THRESHOLD, "{shortened}");
        // The same file, another defect.
        let other = sim(
            "users.ts builds SQL by string concatenation",
            "users.ts logs the password in plain text",
        );
        assert!(other < SIMILAR_THRESHOLD, "{other}");
        assert_eq!(sim("", "anything"), 0.0);
    }
}
