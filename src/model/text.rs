//! Text analysis for similar claims and findings: how a sentence becomes index terms, and the
//! BM25 relevance of one sentence to another. Pure functions; the index itself lives in the
//! store (`store/text_index.rs`).
//!
//! Analysis, in order:
//! 1. The text is cut into words at every character that is neither alphanumeric nor an
//!    identifier connector (`_ . - / : \`), and connectors at a word's ends are dropped
//!    (`/events` → `events`, `done.` → `done`).
//! 2. A word made of several parts (split at connectors and at camelCase humps:
//!    `lab_ui.py`, `IVF_PQ`, `src/http/mod.rs`, `retryCount`) gives the whole word, lowercased
//!    and unstemmed, as one term, so that it is findable as written, and each of its parts as
//!    a plain word, so that it is findable by its parts.
//! 3. A plain word is lowercased; a number with a unit (`10mb`, `500ms`) is split into the two;
//!    a common developer abbreviation is spelled out (`repo` → `repository`, `env` →
//!    `environment`, `deps` → `dependencies`, `lockfile` → `lock file`: [`ABBREVIATIONS`]);
//!    then each word is dropped if it is a stop word or one character long, and stemmed with the
//!    Snowball English stemmer (`retries` → `retri`, `uploads` → `upload`).
//!
//! The terms of a text are [`TermCounts`]: each distinct term with its count, and the text's
//! length in terms (the BM25 document length). A text is analysed on its first
//! [`MAX_TERMS_PER_TEXT`] terms: claims and finding summaries are sentences, and the bound
//! keeps the index entries a hostile request can cause proportional to its claim count.
//!
//! The analysis is part of the stored index: changing any rule here changes the terms of texts
//! already indexed, so it must come with a new [`ANALYZER_VERSION`], which makes the store
//! rebuild its text indexes on open.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};

/// Version of the analysis rules above, recorded with every text index built with them.
/// Version 1: the rules of this file as first released.
pub const ANALYZER_VERSION: u64 = 1;

/// Terms of a text beyond this many are not indexed.
pub const MAX_TERMS_PER_TEXT: usize = 64;

/// BM25's term-frequency saturation.
const K1: f64 = 1.2;
/// BM25's document-length normalisation.
const B: f64 = 0.75;

/// English function words that carry no meaning on their own in a claim or a finding.
const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both",
    "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "either",
    "else", "etc", "ever", "every", "few", "for", "from", "further", "had", "has", "have",
    "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is",
    "it", "its", "itself", "just", "may", "me", "might", "more", "most", "must", "my", "no", "nor",
    "not", "now", "of", "off", "on", "once", "one", "only", "or", "other", "our", "ours", "out",
    "over", "own", "per", "same", "shall", "she", "should", "so", "some", "such", "than", "that",
    "the", "their", "theirs", "them", "then", "there", "these", "they", "this", "those", "through",
    "thus", "to", "too", "under", "until", "up", "upon", "us", "very", "via", "was", "we", "were",
    "what", "when", "where", "whether", "which", "while", "who", "whom", "whose", "why", "will",
    "with", "within", "without", "would", "yet", "you", "your", "yours",
];

/// Abbreviations and compounds developers write for common words, and the words they stand
/// for: a claim written with one finds a claim written with the other. Sorted by abbreviation.
pub const ABBREVIATIONS: &[(&str, &str)] = &[
    ("2fa", "two factor authentication"),
    ("a11y", "accessibility"),
    ("admin", "administrator"),
    ("app", "application"),
    ("apps", "applications"),
    ("arg", "argument"),
    ("args", "arguments"),
    ("async", "asynchronous"),
    ("auth", "authentication"),
    ("authn", "authentication"),
    ("authz", "authorization"),
    ("cfg", "configuration"),
    ("codebase", "code base"),
    ("conf", "configuration"),
    ("config", "configuration"),
    ("configs", "configurations"),
    ("db", "database"),
    ("dbs", "databases"),
    ("dep", "dependency"),
    ("deps", "dependencies"),
    ("dev", "development"),
    ("dir", "directory"),
    ("dirs", "directories"),
    ("doc", "documentation"),
    ("docs", "documentation"),
    ("e2e", "end to end"),
    ("env", "environment"),
    ("envs", "environments"),
    ("filename", "file name"),
    ("fn", "function"),
    ("func", "function"),
    ("i18n", "internationalization"),
    ("impl", "implementation"),
    ("info", "information"),
    ("k8s", "kubernetes"),
    ("l10n", "localization"),
    ("lib", "library"),
    ("libs", "libraries"),
    ("lockfile", "lock file"),
    ("mfa", "multi factor authentication"),
    ("msg", "message"),
    ("msgs", "messages"),
    ("param", "parameter"),
    ("params", "parameters"),
    ("perf", "performance"),
    ("pkg", "package"),
    ("pkgs", "packages"),
    ("prod", "production"),
    ("repo", "repository"),
    ("repos", "repositories"),
    ("req", "request"),
    ("reqs", "requests"),
    ("resp", "response"),
    ("tmp", "temporary"),
    ("username", "user name"),
    ("var", "variable"),
    ("vars", "variables"),
];

static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// Characters that join the parts of an identifier: `_ . - / : \`.
pub fn is_connector(c: char) -> bool {
    matches!(c, '_' | '.' | '-' | '/' | ':' | '\\')
}

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// The words of `text` (step 1 of the module documentation), before any term is made of them.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || is_connector(c)))
        .map(|w| w.trim_matches(is_connector))
        .filter(|w| !w.is_empty())
}

/// The terms of `text`, in order, with repeats: see the module documentation.
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in words(text) {
        if out.len() >= MAX_TERMS_PER_TEXT {
            break;
        }
        let parts = parts_of(word);
        if parts.len() > 1 {
            out.push(word.to_lowercase());
        }
        for part in parts {
            plain_terms(part, &mut out);
        }
    }
    out.truncate(MAX_TERMS_PER_TEXT);
    out
}

/// A plain word as terms: lowercased, a number split from its unit, an abbreviation spelled
/// out, each word stemmed; stop words and single characters dropped.
pub fn plain_terms(word: &str, out: &mut Vec<String>) {
    let lower = word.to_lowercase();
    let (number, rest) = split_number_unit(&lower);
    for part in number.into_iter().chain(std::iter::once(rest)) {
        match ABBREVIATIONS.binary_search_by_key(&part, |(short, _)| short) {
            Ok(i) => {
                for long in ABBREVIATIONS[i].1.split(' ') {
                    push_stemmed(long, out);
                }
            }
            Err(_) => push_stemmed(part, out),
        }
    }
}

/// A lowercase word's Snowball stem.
pub fn stem(word: &str) -> String {
    STEMMER.stem(word).into_owned()
}

fn push_stemmed(word: &str, out: &mut Vec<String>) {
    if word.chars().count() < 2 || is_stop_word(word) {
        return;
    }
    out.push(STEMMER.stem(word).into_owned());
}

/// `10mb` → (`10`, `mb`); anything else is left whole (`s3`, `utf8`, `v2` keep their digits).
fn split_number_unit(word: &str) -> (Option<&str>, &str) {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let is_unit = digits > 0
        && digits < word.len()
        && word[digits..].bytes().all(|b| b.is_ascii_lowercase())
        && ABBREVIATIONS
            .binary_search_by_key(&word, |(short, _)| short)
            .is_err();
    if is_unit {
        (Some(&word[..digits]), &word[digits..])
    } else {
        (None, word)
    }
}

/// A word's parts: split at connectors, then at camelCase humps (`retryCount` → `retry`,
/// `Count`; `HTTPServer` → `HTTP`, `Server`). Digits never split a part (`S3`, `utf8`).
pub fn parts_of(word: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    for piece in word.split(is_connector).filter(|p| !p.is_empty()) {
        let chars: Vec<(usize, char)> = piece.char_indices().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (at, c) = chars[i];
            let prev = chars[i - 1].1;
            let next_is_lower = chars.get(i + 1).is_some_and(|(_, n)| n.is_lowercase());
            let hump =
                c.is_uppercase() && (prev.is_lowercase() || (prev.is_uppercase() && next_is_lower));
            if hump {
                parts.push(&piece[start..at]);
                start = at;
            }
        }
        parts.push(&piece[start..]);
    }
    parts
}

/// The distinct terms of a text with their counts, and its length in terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermCounts {
    /// Distinct terms in byte order, each with how often it occurs.
    pub terms: Vec<(String, u16)>,
    /// Number of terms (with repeats): the BM25 document length.
    pub len: u16,
}

impl TermCounts {
    pub fn of(text: &str) -> TermCounts {
        let all = terms(text);
        let len = u16::try_from(all.len()).unwrap_or(u16::MAX);
        let mut counts: BTreeMap<String, u16> = BTreeMap::new();
        for term in all {
            let n = counts.entry(term).or_default();
            *n = n.saturating_add(1);
        }
        TermCounts {
            terms: counts.into_iter().collect(),
            len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// Corpus statistics BM25 needs: how many documents, and their total length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Corpus {
    pub docs: u64,
    pub total_len: u64,
}

impl Corpus {
    pub fn avg_len(&self) -> f64 {
        if self.docs == 0 {
            1.0
        } else {
            (self.total_len as f64 / self.docs as f64).max(1.0)
        }
    }

    /// Inverse document frequency of a term found in `df` documents (Lucene's form: never
    /// negative, however common the term).
    pub fn idf(&self, df: u64) -> f64 {
        let n = self.docs.max(df) as f64;
        let df = df as f64;
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    /// One term's contribution to a document's score: `idf` weighted by the term's count in
    /// the document, saturated by `K1` and normalised by the document's length.
    pub fn term_score(&self, idf: f64, tf: u16, doc_len: u16) -> f64 {
        let tf = f64::from(tf);
        let norm = 1.0 - B + B * f64::from(doc_len.max(1)) / self.avg_len();
        idf * tf * (K1 + 1.0) / (tf + K1 * norm)
    }
}

/// How a stored text matched a query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MatchKind {
    /// The same text after normalisation: score 1.
    Exact,
    /// Shared terms, scored by BM25 relative to the query's score against itself: in (0, 1).
    Similar,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Exact => "exact",
            MatchKind::Similar => "similar",
        }
    }
}

/// Matches scoring below this are dropped unless a query says otherwise. A similar claim that
/// shares only a common word with the query scores about 0.1 to 0.18; one that shares a rare
/// identifier or most of the query's words, 0.2 and up.
pub const DEFAULT_MIN_SCORE: f64 = 0.2;

/// The highest score a similar (not exact) match can get, so that an exact match always
/// ranks above it.
pub const MAX_SIMILAR_SCORE: f64 = 0.999;

/// A raw BM25 score relative to the query's score against itself, in (0, [`MAX_SIMILAR_SCORE`]].
pub fn relative_score(raw: f64, self_score: f64) -> f64 {
    if self_score <= 0.0 || raw <= 0.0 {
        return 0.0;
    }
    (raw / self_score).min(MAX_SIMILAR_SCORE)
}

/// Rounds a score to 4 decimals, so that answers are stable and readable.
pub fn round_score(score: f64) -> f64 {
    (score * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_lists_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(ABBREVIATIONS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn abbreviations_and_units_are_spelled_out() {
        assert_eq!(terms("env vars"), terms("environment variables"));
        assert_eq!(
            terms("the repo's deps"),
            terms("the repository dependencies")
        );
        assert_eq!(terms("lockfile"), ["lock", "file"]);
        assert_eq!(terms("10MB limit"), ["10", "mb", "limit"]);
        assert_eq!(terms("2FA"), ["two", "factor", "authent"]);
        assert_eq!(terms("S3 utf8 v2"), ["s3", "utf8", "v2"]);
    }

    #[test]
    fn plain_words_are_lowercased_stemmed_and_stop_words_dropped() {
        assert_eq!(
            terms("Adds exponential backoff retries to the S3 upload path"),
            [
                "add",
                "exponenti",
                "backoff",
                "retri",
                "s3",
                "upload",
                "path"
            ]
        );
        assert_eq!(
            terms("retry S3 uploads with exponential backoff"),
            ["retri", "s3", "upload", "exponenti", "backoff"]
        );
    }

    #[test]
    fn identifiers_are_findable_whole_and_by_their_parts() {
        assert_eq!(terms("lab_ui.py"), ["lab_ui.py", "lab", "ui", "py"]);
        assert_eq!(terms("GET /events now"), ["get", "event"]);
        assert_eq!(terms("IVF_PQ index"), ["ivf_pq", "ivf", "pq", "index"]);
        assert_eq!(terms("retryCount"), ["retrycount", "retri", "count"]);
        assert_eq!(terms("HTTPServer"), ["httpserver", "http", "server"]);
        assert_eq!(
            terms("src/http/mod.rs"),
            ["src/http/mod.rs", "src", "http", "mod", "rs"]
        );
        assert_eq!(terms("it's done."), ["done"]);
        assert!(terms("  ,;  ").is_empty());
    }

    #[test]
    fn long_texts_are_cut() {
        let text = "word ".repeat(500);
        assert_eq!(terms(&text).len(), MAX_TERMS_PER_TEXT);
        let counts = TermCounts::of(&text);
        assert_eq!(counts.len as usize, MAX_TERMS_PER_TEXT);
        assert_eq!(counts.terms, [("word".to_owned(), 64)]);
    }

    #[test]
    fn a_text_scores_highest_against_itself() {
        let corpus = Corpus {
            docs: 100,
            total_len: 600,
        };
        let score = |query: &TermCounts, doc: &TermCounts| -> f64 {
            query
                .terms
                .iter()
                .filter_map(|(t, _)| {
                    let tf = doc.terms.iter().find(|(d, _)| d == t)?.1;
                    Some(corpus.term_score(corpus.idf(5), tf, doc.len))
                })
                .sum()
        };
        let q = TermCounts::of("retry S3 uploads with exponential backoff");
        let same = score(&q, &q);
        let longer = score(
            &q,
            &TermCounts::of("adds exponential backoff retries to S3 uploads"),
        );
        let other = score(&q, &TermCounts::of("renames the dashboard"));
        assert!(same > longer && longer > other);
        assert_eq!(other, 0.0);
        let relative = relative_score(longer, same);
        assert!(relative > 0.5 && relative < MAX_SIMILAR_SCORE, "{relative}");
        assert_eq!(relative_score(same * 2.0, same), MAX_SIMILAR_SCORE);
    }
}
