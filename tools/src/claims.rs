//! Claim texts for the memory benchmarks: sentences as an auditor's model extracts them from
//! PR descriptions ("adds exponential backoff retries to the S3 upload path"), composed from a
//! verb, an object, a component and often a qualifier, each drawn with a skew (some words are
//! far more common than others, as in real claims), so that a corpus of them has the common
//! and the rare terms a real one has. Components are a codebase's identifiers: an area and a
//! kind of thing (`billing_client.py`, `/v1/search`, `UploadWorker`), some 3,000 of them, the
//! long tail of rare terms real claims name; the verbs (40) and objects (about 100 phrases) are
//! the common words.

use crate::synth::Rng;

const VERBS: &[&str] = &[
    "adds",
    "removes",
    "fixes",
    "replaces",
    "refactors",
    "caches",
    "retries",
    "validates",
    "logs",
    "streams",
    "batches",
    "renames",
    "moves",
    "upgrades",
    "limits",
    "parallelizes",
    "documents",
    "tests",
    "encrypts",
    "compresses",
    "deduplicates",
    "paginates",
    "throttles",
    "splits",
    "merges",
    "simplifies",
    "deprecates",
    "migrates",
    "instruments",
    "hardens",
    "speeds up",
    "bounds",
    "reorders",
    "guards",
    "exposes",
    "hides",
    "schedules",
    "indexes",
    "serializes",
    "normalizes",
];

const OBJECTS: &[&str] = &[
    "the upload path",
    "retries",
    "the config loader",
    "error handling",
    "the request timeout",
    "the session cache",
    "database queries",
    "the login flow",
    "metrics",
    "the export job",
    "the import pipeline",
    "webhook delivery",
    "the rate limiter",
    "password hashing",
    "the search index",
    "pagination",
    "the job queue",
    "feature flags",
    "the settings page",
    "the checkout flow",
    "audit logging",
    "the health check",
    "connection pooling",
    "the CSV export",
    "image thumbnails",
    "the notification service",
    "token refresh",
    "the payment client",
    "schema migrations",
    "the dependency tree",
    "unit tests",
    "integration tests",
    "the CI pipeline",
    "the Docker image",
    "the Helm chart",
    "the API client",
    "input validation",
    "the permission check",
    "the cron scheduler",
    "the websocket handler",
    "the cache eviction policy",
    "the backup job",
    "the retry budget",
    "structured logging",
    "trace propagation",
    "the dashboard",
    "the admin panel",
    "the billing report",
    "the email digest",
    "the file watcher",
    "the vector search",
    "the embedding cache",
    "the tokenizer",
    "the query planner",
    "the write path",
    "the read replica",
    "the circuit breaker",
    "the DNS resolver",
    "TLS certificates",
    "secret loading",
    "environment variables",
    "the CLI flags",
    "the OpenAPI spec",
    "the GraphQL schema",
    "the event bus",
    "Kafka consumers",
    "S3 uploads",
    "the CDN cache",
    "static assets",
    "the sitemap",
    "translations",
    "date formatting",
    "currency rounding",
    "the leaderboard",
    "soft deletes",
    "the dead letter queue",
    "the signup form",
    "two-factor authentication",
    "CSRF protection",
    "CORS settings",
    "gzip compression",
    "memory usage",
    "cold start time",
    "the thread pool",
    "lock contention",
    "the N+1 query",
    "the flaky test",
    "the timezone handling",
    "the observer counters",
    "the verdict cache",
    "claim extraction",
    "the review comments",
    "the diff parser",
    "the sidecar files",
];

/// Areas of a codebase; with a kind of thing, a component (`billing_client.py`).
const AREAS: &[&str] = &[
    "auth",
    "billing",
    "upload",
    "search",
    "lab",
    "observer",
    "audit",
    "invoice",
    "session",
    "payment",
    "report",
    "export",
    "import",
    "webhook",
    "notify",
    "email",
    "cache",
    "config",
    "metrics",
    "trace",
    "queue",
    "scheduler",
    "index",
    "vector",
    "embedding",
    "tokenizer",
    "planner",
    "gateway",
    "proxy",
    "storage",
    "backup",
    "retention",
    "feed",
    "review",
    "diff",
    "claim",
    "verdict",
    "finding",
    "dashboard",
    "admin",
    "profile",
    "signup",
    "checkout",
    "cart",
    "order",
    "inventory",
    "shipping",
    "pricing",
    "tax",
    "currency",
    "locale",
    "theme",
    "sidecar",
    "uploader",
    "thumbnail",
    "image",
    "video",
    "stream",
    "ledger",
    "tenant",
];

/// Kinds of thing, as a codebase names them; `{}` is the area.
const KINDS: &[&str] = &[
    "{}_client.py",
    "{}_service.rs",
    "/v1/{}",
    "{}_handler.go",
    "{}.ts",
    "{}Worker",
    "{}_test.py",
    "{}/mod.rs",
    "{}Controller",
    "{}_store.rs",
    "{}.yaml",
    "{}_job.py",
    "{}-api",
    "{}_ui.py",
    "{}_utils.py",
    "{}Repository",
    "{}_cli.rs",
    "{}.sql",
    "{}_model.py",
    "{}-service",
    "{}_adapter.go",
    "{}Manager",
    "{}_schema.json",
    "{}_middleware.ts",
    "{}_migration.sql",
    "{}Provider",
    "{}_router.rs",
    "{}_config.toml",
    "{}_spec.rb",
    "{}Client",
];

const PREPOSITIONS: &[&str] = &[
    "in", "for", "of", "across", "around", "behind", "inside", "on",
];

const QUALIFIERS: &[&str] = &[
    "with exponential backoff",
    "behind a feature flag",
    "to cut latency",
    "so failures do not block the post",
    "without breaking old clients",
    "in batches",
    "per request",
    "at startup",
    "on every push",
    "for large files",
    "under load",
    "with a configurable limit",
    "to stop brute force attempts",
    "in the background",
    "with jitter",
    "once per day",
    "for each tenant",
    "when the cache is cold",
    "instead of polling",
    "before retrying",
    "with tests",
    "with a migration",
    "fire-and-forget",
    "idempotently",
    "atomically",
];

/// A seeded generator of claim texts.
pub struct ClaimGen {
    rng: Rng,
}

impl ClaimGen {
    pub fn new(seed: u64) -> ClaimGen {
        ClaimGen {
            rng: Rng::new(seed),
        }
    }

    /// An index into a list of `n`, skewed towards the start (the square of a uniform draw).
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u) * n as f64) as usize % n
    }

    fn pick(&mut self, list: &'static [&'static str]) -> &'static str {
        list[self.skewed(list.len())]
    }

    /// A component: an area and a kind of thing, uniformly (a codebase has many of each).
    fn component(&mut self) -> String {
        let area = AREAS[self.rng.below(AREAS.len() as u64) as usize];
        KINDS[self.rng.below(KINDS.len() as u64) as usize].replace("{}", area)
    }

    /// A claim of common words only (a verb and an object): the search's worst case, every term
    /// in thousands of stored claims.
    pub fn common_claim(&mut self) -> String {
        format!("{} {}", self.pick(VERBS), self.pick(OBJECTS))
    }

    /// One claim: verb, object, preposition and component, and a qualifier two times in three.
    pub fn claim(&mut self) -> String {
        let (verb, object, preposition) = (
            self.pick(VERBS),
            self.pick(OBJECTS),
            self.pick(PREPOSITIONS),
        );
        let mut text = format!("{verb} {object} {preposition} {}", self.component());
        if self.rng.below(3) > 0 {
            text.push(' ');
            text.push_str(self.pick(QUALIFIERS));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_seeded_and_varied() {
        let a: Vec<String> = (0..200)
            .map({
                let mut g = ClaimGen::new(7);
                move |_| g.claim()
            })
            .collect();
        let mut g = ClaimGen::new(7);
        assert!(a.iter().all(|c| *c == g.claim()));
        let mut distinct = a.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 190, "{}", distinct.len());
    }
}
