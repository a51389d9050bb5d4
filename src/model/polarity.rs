//! Whether two wordings say opposite things: one negated and the other not ([`is_negated`]),
//! or a word of one opposing a word of the other ([`Stems::opposes`]). A lexical measure of
//! similarity scores `TLS verification is enabled` and `... disabled`, or `adds tests` and
//! `does not add tests`, as near rewordings; the findings memory does not let a dismissal of
//! one silence the other (`model/finding/`), and the neighbours search flags such a match
//! and counts it at half its score (`store/neighbors.rs`). Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use super::text;

/// Words that say something is not so, or is absent: `not`, `no`, `never`, `without`,
/// `missing`, `lacks`, ... (and any `n't`), and the contractions as typed without their
/// apostrophe (`doesnt`, `isnt`). `not`, `no`, `nor` and `without` are stop words to the
/// similarity, so that `does not handle` rewords `handles`; a dismissal silences only a
/// wording that agrees with its own in having one (see `model::finding::DISMISSAL_THRESHOLD`).
const NEGATIONS: [&str; 34] = [
    "absent", "aint", "arent", "cannot", "cant", "couldnt", "didnt", "doesnt", "dont", "hadnt",
    "hasnt", "havent", "isnt", "lack", "lacked", "lacking", "lacks", "missing", "mustnt", "neednt",
    "neither", "never", "no", "none", "nor", "not", "nothing", "shouldnt", "unable", "wasnt",
    "werent", "without", "wont", "wouldnt",
];

/// Whether `word` is one of [`NEGATIONS`].
fn is_negation(word: &str) -> bool {
    NEGATIONS.binary_search(&word).is_ok()
}

/// Marks written for an apostrophe: `’`, `‘`, the modifier letter `ʼ`, a backtick, an acute.
const APOSTROPHES: [char; 5] = ['\u{2019}', '\u{2018}', '\u{2bc}', '`', '\u{b4}'];

/// Whether `summary` has a negation ([`NEGATIONS`], or a word ending in `n't`, whatever mark
/// stands for its apostrophe: a `t` that ends the word, so that the `` `n`th `` retry is none).
/// A negation joined to a word by a hyphen (`never-reassigned`, `--no-verify`) is one, and so
/// is `w/o`, written for `without` (a review found `is never-invalidated` silenced by a
/// dismissal of `is invalidated`, the similarity splitting what this did not).
pub fn is_negated(summary: &str) -> bool {
    let lower = summary.to_lowercase().replace(APOSTROPHES, "'");
    let ends_in_n_t = lower.match_indices("n't").any(|(at, _)| {
        !lower[at + 3..]
            .chars()
            .next()
            .is_some_and(char::is_alphanumeric)
    });
    ends_in_n_t
        || text::words(&lower).any(|w| {
            matches!(w, "w/o" | "w/out")
                || w.split('-')
                    .any(|part| NEGATIONS.binary_search(&part).is_ok())
        })
}

/// Words that say the opposite of each other of the same thing, for [`Stems::opposes`]. Two
/// wordings that differ by such a pair (`rate limiting is enabled on the login endpoint`,
/// `... is disabled ...`) share every other word, so they score as close rewordings (five of six
/// words: 0.83; `before` and `after` are stop words, 1.0), and a dismissal of one silenced the
/// other (a review, 2026-12-06; sizes, durations, counts and `synchronously` added after another
/// the same night). Compared stemmed, so `allows` opposes `denied`. Words that are
/// each other with a prefix that says "not" (`encrypted`, `unencrypted`; `valid`, `invalid`;
/// `blocking`, `nonblocking`) oppose each other too ([`NOT_PREFIXES`]).
const OPPOSITES: [(&str, &str); 57] = [
    ("above", "below"),
    ("accept", "reject"),
    ("add", "remove"),
    ("allow", "block"),
    ("allow", "deny"),
    ("allow", "reject"),
    ("allowlist", "denylist"),
    ("ascending", "descending"),
    ("before", "after"),
    ("big", "small"),
    ("correct", "wrong"),
    ("eager", "lazy"),
    ("enable", "disable"),
    ("encrypt", "decrypt"),
    ("fast", "slow"),
    ("faster", "slower"),
    ("few", "many"),
    ("fewer", "more"),
    ("first", "last"),
    ("grant", "revoke"),
    ("high", "low"),
    ("higher", "lower"),
    ("http", "https"),
    ("inbound", "outbound"),
    ("include", "exclude"),
    ("inclusive", "exclusive"),
    ("increase", "decrease"),
    ("inside", "outside"),
    ("internal", "external"),
    ("large", "small"),
    ("larger", "smaller"),
    ("least", "most"),
    ("less", "more"),
    ("local", "remote"),
    ("lock", "release"),
    ("long", "short"),
    ("longer", "shorter"),
    ("lowercase", "uppercase"),
    ("max", "min"),
    ("maximum", "minimum"),
    ("off", "on"),
    ("open", "close"),
    ("open", "closed"),
    ("optional", "required"),
    ("pass", "fail"),
    ("plaintext", "encrypted"),
    ("public", "private"),
    ("read", "write"),
    ("start", "end"),
    ("strict", "lenient"),
    ("succeed", "fail"),
    ("success", "failure"),
    ("sync", "async"),
    ("synchronous", "asynchronous"),
    ("true", "false"),
    ("upper", "lower"),
    ("whitelist", "blacklist"),
];

/// Prefixes that make a word say "not" ([`OPPOSITES`]).
const NOT_PREFIXES: [&str; 5] = ["dis", "im", "in", "non", "un"];

/// The words of a wording, as given (lowercased) and stemmed, to tell whether another says the
/// opposite ([`Stems::opposes`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stems {
    words: BTreeSet<String>,
    stems: BTreeSet<String>,
    /// Read from `words` only when [`Stems::opposes_widely`] asks (the dismissals' check),
    /// not for every wording the memory and the neighbours compare.
    wide: std::cell::OnceCell<Wide>,
}

/// A wording's words without their inflection ([`uninflected`]), and those of the words a
/// prefix of [`WIDE_NOT_PREFIXES`] negates, the prefix cut off too (`encrypt` for
/// `unencrypted`), for [`Stems::opposes_widely`].
#[derive(Debug, Clone, Default, PartialEq)]
struct Wide {
    uninflected: BTreeSet<String>,
    negated_bases: BTreeSet<String>,
}

impl Wide {
    fn of(words: &BTreeSet<String>) -> Wide {
        let mut wide = Wide::default();
        for word in words {
            wide.uninflected
                .extend(uninflected(word).into_iter().map(str::to_owned));
            if is_negation(word) {
                continue;
            }
            for base in WIDE_NOT_PREFIXES
                .iter()
                .filter_map(|p| word.strip_prefix(p))
            {
                if base.len() >= MIN_NEGATED_WORD {
                    wide.negated_bases
                        .extend(uninflected(base).into_iter().map(str::to_owned));
                }
            }
        }
        wide
    }

    /// Whether a word of this wording is one of `other`'s negated by a prefix, or the other
    /// way round: walking this wording's forms only (so that the shorter wording's may be the
    /// ones walked, as in [`Stems::opposes`]).
    fn opposes_walking_mine(&self, other: &Wide) -> bool {
        let theirs_alone = |set: &BTreeSet<String>, mine: &BTreeSet<String>, word: &String| {
            set.contains(word) && !mine.contains(word)
        };
        self.uninflected.iter().any(|word| {
            !other.uninflected.contains(word)
                && theirs_alone(&other.negated_bases, &self.negated_bases, word)
        }) || self.negated_bases.iter().any(|base| {
            !other.negated_bases.contains(base)
                && theirs_alone(&other.uninflected, &self.uninflected, base)
        })
    }
}

/// Prefixes that say "not" of a word whatever its inflection (`unencrypted` of `encrypts`,
/// `illegal` of `legal`), for [`Stems::opposes_widely`]: not `in-`, `im-` or `dis-`, which
/// begin too many words that negate nothing (`incoming`, `import`, `dismissed`).
const WIDE_NOT_PREFIXES: [&str; 4] = ["il", "ir", "non", "un"];

/// Past participles that are not the verb with `-ed` (`uncaught` of `catches`), as (participle,
/// verb), for [`uninflected`].
const IRREGULAR: [(&str, &str); 14] = [
    ("bound", "bind"),
    ("built", "build"),
    ("caught", "catch"),
    ("found", "find"),
    ("held", "hold"),
    ("hidden", "hide"),
    ("kept", "keep"),
    ("known", "know"),
    ("sent", "send"),
    ("shown", "show"),
    ("spent", "spend"),
    ("taken", "take"),
    ("thrown", "throw"),
    ("written", "write"),
];

/// The forms of `word` without an inflection's ending (`-ing`, `-ed`, `-es`, `-s`, then a
/// final `e`), so that `sanitized`, `sanitizing` and `sanitize` share one: with `-ed` or
/// `-ing` cut, also without a doubled last consonant (`pinned`, `pin`; `committed`,
/// `commit`), and an irregular participle's verb ([`IRREGULAR`]: `caught`, `catch`). A
/// derivation is left as it is (`validation` is not `valid`, which the stemmer makes it).
fn uninflected(word: &str) -> Vec<&str> {
    fn without_e(w: &str) -> &str {
        w.strip_suffix('e').filter(|w| w.len() >= 3).unwrap_or(w)
    }
    let mut forms = Vec::with_capacity(2);
    if let Some(&(_, verb)) = IRREGULAR.iter().find(|(participle, _)| *participle == word) {
        forms.push(without_e(verb));
    }
    let participle = ["ing", "ed"]
        .iter()
        .find_map(|end| word.strip_suffix(end))
        .filter(|w| w.len() >= 3);
    let cut = participle
        .or_else(|| word.strip_suffix("es"))
        .or_else(|| word.strip_suffix('s').filter(|w| !w.ends_with('s')))
        .filter(|w| w.len() >= 3)
        .unwrap_or(word);
    forms.push(without_e(cut));
    if participle.is_some()
        && let [.., a, b] = cut.as_bytes()
        && a == b
        && !b"aeiou".contains(b)
        && cut.len() > 3
    {
        forms.push(&cut[..cut.len() - 1]);
    }
    forms
}

impl Stems {
    pub fn of(summary: &str) -> Stems {
        let lower = summary.to_lowercase();
        let mut out = Stems::default();
        for word in text::words(&lower) {
            let parts = text::parts_of(word);
            match parts.as_slice() {
                // `non-blocking`, `un-encrypted`: one word, `nonblocking`, `unencrypted`.
                [prefix, rest @ ..] if !rest.is_empty() && NOT_PREFIXES.contains(prefix) => {
                    out.add(&format!("{prefix}{}", rest.concat()));
                }
                parts => parts.iter().for_each(|part| out.add(part)),
            }
        }
        out
    }

    fn add(&mut self, word: &str) {
        self.stems.insert(text::stem(word));
        self.words.insert(word.to_owned());
    }

    /// [`Stems::opposes`], or a word of one is a word of the other negated by a prefix of
    /// [`WIDE_NOT_PREFIXES`], whatever either's inflection (`encrypts` and `unencrypted`,
    /// `legal` and `illegal`). For where an opposition only keeps a dismissal from silencing
    /// a finding (a false one errs toward saying the finding again): a review found
    /// `uploads the archive to S3 unencrypted` silenced by a dismissal of `encrypts the
    /// archive before uploading it to S3`. Not where it may cancel a difference in negation
    /// ([`Polarity::opposes`]): there `incoming` taken for `come` negated made a finding
    /// that says the opposite silenced.
    pub fn opposes_widely(&self, other: &Stems) -> bool {
        let (shorter, longer) = if self.words.len() > other.words.len() {
            (other, self)
        } else {
            (self, other)
        };
        self.opposes(other) || shorter.wide().opposes_walking_mine(longer.wide())
    }

    fn wide(&self) -> &Wide {
        self.wide.get_or_init(|| Wide::of(&self.words))
    }

    /// Whether the two wordings say opposite things: a word of one that the other does not
    /// have opposes a word of the other that the first does not have, by [`OPPOSITES`]
    /// (stemmed) or as a word and itself with a prefix of [`NOT_PREFIXES`] (as written: the
    /// stemmer cuts `unsafe` and `safe` differently). A lookup a word and prefix, so that two
    /// long wordings cost their lengths, not their product.
    ///
    /// The relation is symmetric (each opposed pair has a word on either side), so the walk
    /// goes over the shorter wording's words: a finding checked against a dismissal of 4 KiB
    /// looks up its own few words, not the dismissal's hundreds.
    pub fn opposes(&self, other: &Stems) -> bool {
        if self.words.len() > other.words.len() {
            other.opposes_walking_mine(self)
        } else {
            self.opposes_walking_mine(other)
        }
    }

    /// [`Stems::opposes`], walking this wording's words.
    fn opposes_walking_mine(&self, other: &Stems) -> bool {
        /// Each stem of [`OPPOSITES`] with the stems it opposes.
        static PAIRS: LazyLock<BTreeMap<String, Vec<String>>> = LazyLock::new(|| {
            let mut pairs: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (a, b) in OPPOSITES {
                let (a, b) = (text::stem(a), text::stem(b));
                pairs.entry(a.clone()).or_default().push(b.clone());
                pairs.entry(b).or_default().push(a);
            }
            pairs
        });
        let stem_theirs_alone =
            |stem: &str| other.stems.contains(stem) && !self.stems.contains(stem);
        let word_theirs_alone =
            |word: &str| other.words.contains(word) && !self.words.contains(word);
        let by_table = self.stems.difference(&other.stems).any(|mine| {
            PAIRS
                .get(mine)
                .is_some_and(|opposed| opposed.iter().any(|o| stem_theirs_alone(o)))
        });
        // One buffer for the prefixed words looked up (a wording pair costs no allocation).
        let mut prefixed = String::new();
        // A pair of which a word is a negation itself (`unable`, `missing` in `dismissing`) is
        // no pair: the negation is counted once, as one ([`is_negated`]). Counted as an
        // opposite pair too, the two cancelled, and `are unable to revoke` was taken for a
        // rewording of `are able to revoke`, `is missing the role` of `dismissing ... requires
        // the role` (reviews').
        by_table
            || self.words.difference(&other.words).any(|mine| {
                !is_negation(mine)
                    && NOT_PREFIXES.iter().any(|p| {
                        (mine.len() >= MIN_NEGATED_WORD && {
                            prefixed.clear();
                            prefixed.push_str(p);
                            prefixed.push_str(mine);
                            !is_negation(&prefixed) && word_theirs_alone(&prefixed)
                        }) || mine.strip_prefix(p).is_some_and(|base| {
                            base.len() >= MIN_NEGATED_WORD
                                && !is_negation(base)
                                && word_theirs_alone(base)
                        })
                    })
            })
    }
}

/// The shortest word a prefix of [`NOT_PREFIXES`] is taken to negate (`safe`, `used`, `null`).
const MIN_NEGATED_WORD: usize = 4;

/// A wording read once for [`Polarity::opposes`]'s comparisons: whether it is negated, and
/// its words.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Polarity {
    negated: bool,
    stems: Stems,
}

impl Polarity {
    pub fn of(text: &str) -> Polarity {
        Polarity {
            negated: is_negated(text),
            stems: Stems::of(text),
        }
    }

    /// Whether it has a negation ([`is_negated`]).
    pub fn negated(&self) -> bool {
        self.negated
    }

    /// Its words, for [`Stems::opposes`].
    pub fn stems(&self) -> &Stems {
        &self.stems
    }

    /// Whether the two say opposite things: one has a negation and the other none, or they
    /// differ by a pair of opposite words ([`Stems::opposes`]), but not both: two reversals
    /// say the same thing again (`is disabled`, `is not enabled`; `is unvalidated`, `is not
    /// validated`).
    pub fn opposes(&self, other: &Polarity) -> bool {
        (self.negated != other.negated) != self.stems.opposes(&other.stems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn says_opposite(a: &str, b: &str) -> bool {
        Polarity::of(a).opposes(&Polarity::of(b))
    }

    #[test]
    fn a_wording_that_says_the_opposite_is_told_from_a_rewording() {
        let cases = [
            (
                "rate limiting is enabled on the login endpoint",
                "rate limiting is disabled on the login endpoint",
                true,
            ),
            ("the bucket is public", "the bucket is private", true),
            (
                "the token is checked before parsing",
                "the token is checked after parsing",
                true,
            ),
            ("CORS allows credentials", "CORS denied credentials", true),
            (
                "payloads stored encrypted",
                "payloads stored unencrypted",
                true,
            ),
            ("the cert is valid", "the cert is invalid", true),
            // A review's (2026-12-06, night): each was silenced by the other's dismissal.
            (
                "connection pool size is too large for the database server",
                "connection pool size is too small for the database server",
                true,
            ),
            (
                "request timeout for the payment gateway is too long",
                "request timeout for the payment gateway is too short",
                true,
            ),
            (
                "too many goroutines are spawned per request",
                "too few goroutines are spawned per request",
                true,
            ),
            (
                "logs are written synchronously on the request path",
                "logs are written asynchronously on the request path",
                true,
            ),
            (
                "the upload endpoint allows executable files",
                "the upload endpoint rejects executable files",
                true,
            ),
            ("uses a blocking call", "uses a non-blocking call", true),
            ("the handler is safe", "the handler is unsafe", true),
            (
                "proper validation in the upload handler",
                "improper validation in the upload handler",
                true,
            ),
            ("the value is null here", "the value is non-null here", true),
            (
                "payloads stored un-encrypted",
                "payloads stored encrypted",
                true,
            ),
            ("the port is reachable", "the port is unreachable", true),
            // Rewordings: the same words or other words, none the opposite of another.
            (
                "rate limiting is enabled on the login endpoint",
                "the login endpoint has rate limiting enabled",
                false,
            ),
            (
                "missing input validation in upload",
                "upload lacks validation of its input",
                false,
            ),
            (
                "the bucket is public",
                "the storage bucket can be read publicly",
                false,
            ),
            (
                "retry loop has no backoff",
                "retries without any backoff",
                false,
            ),
            (
                "the form leaks the token",
                "the information leaks the token",
                false,
            ),
            (
                "input validation is weak",
                "invalid input is accepted",
                false,
            ),
            // A false opposite, as a prefix sees it: the rewording is answered as resembling the
            // dismissal instead of silenced by it (the safe side).
            (
                "the patch step runs twice",
                "the dispatch step runs twice",
                true,
            ),
        ];
        for (a, b, opposed) in cases {
            let (a, b) = (Stems::of(a), Stems::of(b));
            assert_eq!(a.opposes(&b), opposed, "{a:?} / {b:?}");
            // Either walk gives it: `opposes` walks the shorter wording's words.
            assert_eq!(a.opposes_walking_mine(&b), opposed, "{a:?} / {b:?}");
            assert_eq!(b.opposes_walking_mine(&a), opposed, "{b:?} / {a:?}");
        }
    }

    /// Where an opposition only keeps a dismissal from silencing, a word negated by `un-`,
    /// `non-`, `il-` or `ir-` opposes it however inflected (a review's pairs); `in-` words
    /// do not (`incoming` is no `come` negated).
    #[test]
    fn widely_a_prefix_negates_a_word_however_inflected() {
        let cases = [
            (
                "encrypts the archive before uploading it to S3",
                "uploads the archive to S3 unencrypted",
                true,
            ),
            (
                "sanitizes user HTML before inserting it",
                "inserts user HTML unsanitized",
                true,
            ),
            (
                "authenticates the caller before removing the repository",
                "lets an unauthenticated caller remove the repository",
                true,
            ),
            (
                "limits the request body size",
                "leaves the request body size unlimited",
                true,
            ),
            (
                "verifies the signature",
                "leaves the signature unverified",
                true,
            ),
            (
                "rejects legal transitions",
                "rejects illegal transitions",
                true,
            ),
            (
                "the migration is reversible",
                "the migration is irreversible",
                true,
            ),
            // A doubled consonant, an irregular participle (a review's).
            (
                "pins the action's version",
                "leaves the action's version unpinned",
                true,
            ),
            (
                "commits the transaction",
                "leaves the transaction uncommitted",
                true,
            ),
            ("catches the error", "leaves the error uncaught", true),
            ("sends the receipt", "leaves the receipt unsent", true),
            ("adds the header", "added the header", false),
            (
                "Incoming webhook payloads are not verified in hooks.ts",
                "Webhook payloads that come in are not verified in hooks.ts",
                false,
            ),
            (
                "the retries are unbounded",
                "the retries are unbounded, again",
                false,
            ),
            (
                "members are unable to revoke tokens",
                "members are able to revoke tokens",
                false,
            ),
        ];
        for (a, b, opposed) in cases {
            let (a, b) = (Stems::of(a), Stems::of(b));
            assert_eq!(a.opposes_widely(&b), opposed, "{a:?} / {b:?}");
            assert_eq!(b.opposes_widely(&a), opposed, "{b:?} / {a:?}");
        }
    }

    proptest::proptest! {
        /// Opposition is symmetric, so walking either wording's words gives the same answer
        /// (what lets `opposes` walk the shorter one): wordings of words with opposites, with
        /// negating prefixes, and plain ones.
        #[test]
        fn either_walk_gives_the_same_answer(
            a in proptest::collection::vec(0usize..WORDS.len(), 0..12),
            b in proptest::collection::vec(0usize..WORDS.len(), 0..40),
        ) {
            let wording = |picks: &[usize]| {
                picks.iter().map(|&i| WORDS[i]).collect::<Vec<_>>().join(" ")
            };
            let (a, b) = (Stems::of(&wording(&a)), Stems::of(&wording(&b)));
            proptest::prop_assert_eq!(a.opposes_walking_mine(&b), b.opposes_walking_mine(&a));
            proptest::prop_assert_eq!(
                a.wide().opposes_walking_mine(b.wide()),
                b.wide().opposes_walking_mine(a.wide())
            );
        }
    }

    const WORDS: &[&str] = &[
        "enabled",
        "disabled",
        "public",
        "private",
        "before",
        "after",
        "allows",
        "denied",
        "safe",
        "unsafe",
        "validated",
        "invalidated",
        "encrypted",
        "unencrypted",
        "blocking",
        "nonblocking",
        "used",
        "unused",
        "the",
        "token",
        "is",
        "checked",
        "upload",
        "retry",
        "patch",
        "dispatch",
        "secure",
        "insecure",
        "mutable",
        "immutable",
        "encrypts",
        "pins",
        "unpinned",
        "legal",
        "illegal",
        "unable",
        "able",
    ];

    #[test]
    fn a_negation_is_a_not_a_no_a_missing_or_an_n_t() {
        assert!(
            NEGATIONS.windows(2).all(|w| w[0] < w[1]),
            "sorted for binary search"
        );
        for (summary, negated) in [
            ("password is not hashed before storage", true),
            ("password is hashed before storage", false),
            ("the handler doesn't close the file", true),
            ("the handler doesn\u{2019}t close the file", true),
            // A review's (cd31122): typed without an apostrophe, or with another mark for it.
            ("the upload handler doesnt check the file size", true),
            (
                "the upload handler isn\u{2bc}t checking the file size",
                true,
            ),
            ("the upload handler isn`t checking the file size", true),
            ("the upload handler dont check it", true),
            ("the `n`th retry waits twice as long", false),
            ("retries don't back off", true),
            (
                "the upload handler checks the file size before reading",
                false,
            ),
            ("Missing error handling for a failed upload", true),
            ("the session cookie lacks the Secure flag", true),
            ("cookie set without the Secure flag", true),
            ("No test covers the retry path", true),
            ("TLS verification disabled", false),
            ("the notification is sent twice", false),
            ("knot in the nonce handling", false),
            // Joined by a hyphen, or `w/o` (a review's).
            ("`let` is used for never-reassigned variables", true),
            ("the cache is never-invalidated on logout", true),
            ("server.ts uses no-auth", true),
            ("git commit --no-verify skips the hooks", true),
            ("the input reaches run.ts w/o validation", true),
            ("a not_found handler logs twice", false),
            ("the non-blocking read returns early", false),
            // A path's parts are not the sentence's words.
            ("config/none-default.json is read", false),
        ] {
            assert_eq!(is_negated(summary), negated, "{summary}");
        }
    }

    #[test]
    fn claims_say_the_opposite_by_a_negation_or_an_opposite_word() {
        let cases = [
            (
                "adds unit tests for the retry logic in the S3 uploader",
                "does not add unit tests for the retry logic in the S3 uploader",
                true,
            ),
            ("adds tests", "doesn't add tests", true),
            (
                "enables caching of manifests",
                "disables caching of manifests",
                true,
            ),
            ("adds tests", "adds tests for the uploader", false),
            // Two reversals say the same thing again (a review's, 1ed5a66).
            (
                "TLS certificate verification is disabled in the webhook client",
                "TLS certificate verification is not enabled in the webhook client",
                false,
            ),
            (
                "the upload path is unvalidated",
                "the upload path is not validated",
                false,
            ),
            (
                "no test covers the retry path",
                "the retry path has no test",
                false,
            ),
            (
                "retry S3 uploads with exponential backoff",
                "adds exponential backoff retries to the S3 upload path",
                false,
            ),
            // `unable` is a negation, counted once (a review's).
            (
                "Members are able to revoke the API tokens of other members",
                "Members are unable to revoke the API tokens of other members",
                true,
            ),
            // And so is `missing`, not `dismissing` negated (a review's).
            (
                "the API for dismissing reviews requires the maintainer role in reviews.ts",
                "the API for reviews is missing the maintainer role in reviews.ts",
                true,
            ),
        ];
        for (a, b, opposite) in cases {
            assert_eq!(says_opposite(a, b), opposite, "{a:?} / {b:?}");
            assert_eq!(says_opposite(b, a), opposite, "{b:?} / {a:?}");
        }
    }
}
