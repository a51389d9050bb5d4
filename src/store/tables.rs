//! Every redb table of the current schema (version 15), in one place. Only `store/` opens them.
//!
//! These must equal the definitions frozen in the latest steps of `migrations/` (a test checks
//! that a migrated file has exactly these tables); a change here is a new migration step.

pub use lakehouse_kb_migrations::META;

/// Kinds of record in [`BY_SIG`]: outcome rows, events and verdicts keep the numbers they
/// were given in schema versions 3 and 4.
pub use lakehouse_kb_migrations::v0004_verdicts_by_seq::{
    KIND_EVENT, KIND_OUTCOME, KIND_VERDICT, VERDICTS_BY_SEQ,
};

/// Tables of schema version 5 (see the table in its step for what each holds):
/// - `REPOS` / `REPO_NAMES`: repository name ↔ id; the default namespace is id
///   [`DEFAULT_REPO`] and is in neither.
/// - `BY_SIG`: `(repo, sig_hash, kind, seq)` of every verdict, and of every outcome row and
///   event with a sig_hash.
/// - `PR_VERDICTS`: `(repo, pr_number, seq)`, a PR's verdicts; `PRS` its counts by overall and
///   last verdict seq; `PR_HEADS` the counts of each head (lowercase sha).
/// - `CLAIM_HASHES`: `(claim_hash, repo, seq)`, the exact-claim tier of neighbours.
/// - `CLAIM_TERMS`: `(term, repo, first claim doc)` → a block of BM25 postings, the
///   similar-claim tier (`postings.rs`; built by `text_index.rs`).
/// - `CLIENT_KEYS` / `CLIENT_KEYS_BY_TIME`: idempotency keys given by clients.
pub use lakehouse_kb_migrations::v0005_repos_and_memory::{
    BY_SIG, CLAIM_HASHES, CLAIM_TERMS, CLIENT_KEYS, CLIENT_KEYS_BY_TIME, DEFAULT_REPO, PR_HEADS,
    PR_VERDICTS, PRS, REPO_NAMES, REPOS,
};

/// Tables of schema version 6 (see the table in its step):
/// - `FINDINGS`: `(repo, pr_number, fingerprint)` → codec
///   [`FindingValue`](super::values::FindingValue), each PR's remembered findings, under the
///   fingerprint of their first wording; `FINDING_FPS` `(repo, fingerprint, pr_number)` → that
///   fingerprint, for every wording's. Built by `findings.rs`.
/// - `DISMISSALS`: id → codec [`DismissalValue`](super::values::DismissalValue);
///   `DISMISSAL_IDS` `(repo, scope, fingerprint)` → id, `DISMISSALS_BY_REPO` `(repo, id)` →
///   scope and `DISMISSALS_BY_SCOPE` `(repo, scope, id)`, the live ones (`dismissals.rs`).
pub use lakehouse_kb_migrations::v0006_findings_memory::{
    DISMISSAL_IDS, DISMISSALS, DISMISSALS_BY_REPO, DISMISSALS_BY_SCOPE, FINDING_FPS, FINDINGS,
};

/// Tables of schema version 7: `CODEC_DICTIONARIES`, dictionary id → the zstd dictionary that
/// codec-version-3 values name (`dictionary.rs`).
pub use lakehouse_kb_migrations::v0007_codec_dictionaries::CODEC_DICTIONARIES;

/// Tables of schema version 8: `VERDICT_IDENTITIES`, `(repo, hash of (pr_number, head_sha,
/// audited_at), seq)`, a verdict's identity in 20 bytes (`write.rs` compares the verdicts under
/// a hash with the identity asked for).
pub use lakehouse_kb_migrations::v0008_verdict_identities::{
    VERDICT_IDENTITIES, verdict_identity_hash,
};

/// Tables of schema version 10: `EVENT_SOURCE_SEQS` and `EVENT_KIND_SEQS`, `(text, first
/// seq)` → a block of up to [`BLOCK_LEN`] seqs of the events with that (coerced) source or
/// string event_kind (`seq_blocks.rs`).
pub use lakehouse_kb_migrations::v0010_event_seq_blocks::{
    BLOCK_LEN, EVENT_KIND_SEQS, EVENT_SOURCE_SEQS, decode_seq_block, encode_seq_block,
};

/// Tables of schema version 13: `FINDINGS_BY_LAST_AUDIT`, `(repo, pr_number, seq, fingerprint)`
/// → 1 when that audit (the last to raise the finding) repeated it, raised before by an audit
/// of another head, else 0: a PR's findings by the audit that last raised them (`findings.rs`).
pub use lakehouse_kb_migrations::v0013_findings_by_last_audit::FINDINGS_BY_LAST_AUDIT;

/// Tables of schema version 15: `FINDINGS_AUDITS`, `(repo, pr_number)` → the seq of the PR's
/// latest verdict that carried a `findings` array, the audit whose findings are the PR's open
/// ones (`findings.rs`).
pub use lakehouse_kb_migrations::v0015_findings_audits::FINDINGS_AUDITS;

/// `seq` → codec-encoded [`EventValue`](super::values::EventValue) (schema version 1).
pub use lakehouse_kb_migrations::v0001_initial::EVENTS;
/// Import identity of a legacy line (file tag, SHA-256 prefix, occurrence) → the seq it became
/// (schema version 1).
pub use lakehouse_kb_migrations::v0001_initial::IMPORT_KEYS;
/// `seq` → codec-encoded [`OutcomeValue`](super::values::OutcomeValue) (schema version 1).
pub use lakehouse_kb_migrations::v0001_initial::OUTCOMES;

/// Names of all tables, for the schema test and the backup.
pub const ALL_TABLE_NAMES: [&str; 27] = [
    "meta",
    "verdicts_by_seq",
    "outcomes",
    "events",
    "event_source_seqs",
    "event_kind_seqs",
    "import_keys",
    "repos",
    "repo_names",
    "by_sig",
    "verdict_identities",
    "pr_verdicts",
    "prs",
    "pr_heads",
    "claim_hashes",
    "claim_terms",
    "client_keys",
    "client_keys_by_time",
    "findings",
    "finding_fps",
    "findings_by_last_audit",
    "findings_audits",
    "dismissals",
    "dismissal_ids",
    "dismissals_by_repo",
    "dismissals_by_scope",
    "codec_dictionaries",
];
