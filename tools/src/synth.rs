//! Deterministic, realistic synthetic traffic for tests, benchmarks and the crash harness:
//! verdicts across PRs with new heads and re-audits, observer events from all four sources,
//! and scenario outcome rows shaped like the legacy fixtures. Same seed, same bytes. Not part
//! of the service: it lives with the tools, and the integration tests compile this same file
//! (`tests/it/main.rs`).

use lakehouse_kb::jsjson::ObjectWriter;

/// SplitMix64: tiny, fast and good enough for test data (not for anything secret).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn hex(&mut self, n_digits: usize) -> String {
        let mut out = String::with_capacity(n_digits + 16);
        while out.len() < n_digits {
            out.push_str(&format!("{:016x}", self.next_u64()));
        }
        out.truncate(n_digits);
        out
    }
}

const ONE_LINERS: [&str; 6] = [
    "PR claims 'live-verified' with no evidence in diff",
    "observer source union widened without stats migration",
    "commit says tests added but no test file changed",
    "claims match the diff; tests cover the new path",
    "fire-and-forget write drops errors silently",
    "hard-coded absolute path /home/profit/lakehouse in new code",
];
const OVERALLS: [&str; 3] = ["approve", "request_changes", "block"];
const CLAIM_SUBJECTS: [&str; 10] = [
    "observer",
    "auditor",
    "kb writer",
    "scenario runner",
    "bot",
    "stats endpoint",
    "verdict file",
    "sidecar",
    "gitea post",
    "report script",
];
const CLAIM_VERBS: [&str; 10] = [
    "no longer drops",
    "counts",
    "retries",
    "validates",
    "logs",
    "batches",
    "deletes",
    "caches",
    "streams",
    "indexes",
];
const CLAIM_OBJECTS: [&str; 5] = [
    "errors",
    "auditor events",
    "dead files",
    "stale rows",
    "scenario events",
];
const ROLES: [&str; 4] = ["welder", "picker", "forklift operator", "CDL driver"];
const CITIES: [(&str, &str); 3] = [("Gary", "IN"), ("Joliet", "IL"), ("Toledo", "OH")];
const EVENT_KINDS: [&str; 3] = ["fill", "search", "cycle"];
const SOURCES: [&str; 4] = ["scenario", "mcp", "bot", "scenario"];

/// A generator of lakehouse traffic. `n_prs` bounds the PR numbers, so re-audits and new heads
/// pile up on the same PRs as real history does.
#[derive(Debug, Clone)]
pub struct Synth {
    rng: Rng,
    n_prs: u64,
    heads: Vec<(u64, String)>,
    clock_ms: u64,
}

impl Synth {
    pub fn new(seed: u64, n_prs: u64) -> Synth {
        Synth {
            rng: Rng::new(seed),
            n_prs: n_prs.max(1),
            heads: Vec::new(),
            clock_ms: 1_775_000_000_000,
        }
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    fn tick(&mut self) -> String {
        self.clock_ms += 1 + self.rng.below(5_000);
        lakehouse_kb::model::iso_timestamp(self.clock_ms)
    }

    /// A claim text from a vocabulary of 500, so that verdicts share claims.
    pub fn claim(&mut self) -> String {
        format!(
            "{} {} {}",
            self.rng.pick(&CLAIM_SUBJECTS),
            self.rng.pick(&CLAIM_VERBS),
            self.rng.pick(&CLAIM_OBJECTS)
        )
    }

    /// The PR and head of the next audit: 60% a new PR head, 25% a new head of a known PR,
    /// 15% a re-audit of a known head.
    fn next_head(&mut self) -> (u64, String) {
        let roll = self.rng.below(100);
        if self.heads.is_empty() || roll < 60 {
            let head = (1 + self.rng.below(self.n_prs), self.rng.hex(40));
            self.remember(head.clone());
            head
        } else if roll < 85 {
            let pr = self.rng.pick(&self.heads).0;
            let head = (pr, self.rng.hex(40));
            self.remember(head.clone());
            head
        } else {
            self.rng.pick(&self.heads).clone()
        }
    }

    fn remember(&mut self, head: (u64, String)) {
        if self.heads.len() < 4096 {
            self.heads.push(head);
        } else {
            let slot = self.rng.below(4096) as usize;
            self.heads[slot] = head;
        }
    }

    /// A verdict as the auditor writes it, with findings and claims.
    pub fn verdict(&mut self) -> String {
        let (pr, head) = self.next_head();
        self.verdict_for(pr, &head)
    }

    pub fn verdict_for(&mut self, pr: u64, head: &str) -> String {
        let audited_at = self.tick();
        let overall = *self.rng.pick(&OVERALLS);
        let one_liner = *self.rng.pick(&ONE_LINERS);
        let n_claims = 1 + self.rng.below(3);
        let claims: Vec<String> = (0..n_claims).map(|_| self.claim()).collect();
        let (block, warn, info) = (self.rng.below(3), self.rng.below(5), self.rng.below(7));
        let duration = 100 + self.rng.below(90_000);
        let mut out = String::with_capacity(700);
        let mut v = ObjectWriter::new(&mut out);
        v.uint("pr_number", pr)
            .str("head_sha", head)
            .str("overall", overall)
            .str("one_liner", one_liner)
            .with("findings", |out| {
                out.push_str(r#"[{"check":"static","severity":"info","summary":"diff touches mcp-server/observer.ts"}]"#);
            })
            .with("claims", |out| {
                out.push('[');
                for (i, claim) in claims.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let mut c = ObjectWriter::new(out);
                    c.str("text", claim).str("source", "commit_message");
                    c.finish();
                }
                out.push(']');
            })
            .with("metrics", |out| {
                let mut m = ObjectWriter::new(out);
                m.uint("findings_block", block)
                    .uint("findings_warn", warn)
                    .uint("findings_info", info)
                    .uint("audit_duration_ms", duration);
                m.finish();
            })
            .str("audited_at", &audited_at);
        v.finish();
        out
    }

    /// An observer event body from a scenario, the MCP layer or the bot.
    pub fn event(&mut self) -> String {
        let timestamp = self.tick();
        let source = *self.rng.pick(&SOURCES);
        let kind = *self.rng.pick(&EVENT_KINDS);
        let role = *self.rng.pick(&ROLES);
        let (city, state) = *self.rng.pick(&CITIES);
        let success = self.rng.chance(60);
        let sig_hash = self.rng.chance(50).then(|| self.rng.hex(16));
        let staffer = self
            .rng
            .chance(40)
            .then(|| format!("staffer-{}", 1 + self.rng.below(4)));
        let error = (!success && self.rng.chance(30)).then_some("timeout after 30s");
        let mut out = String::with_capacity(300);
        let mut e = ObjectWriter::new(&mut out);
        e.str("source", source)
            .str("event_kind", kind)
            .bool("success", success)
            .str("role", role)
            .uint("count", 1 + self.rng.below(5))
            .str("city", city)
            .str("state", state)
            .uint("duration_ms", 100 + self.rng.below(5_000))
            .opt_str("error", error)
            .opt_str("staffer_id", staffer.as_deref())
            .opt_str("sig_hash", sig_hash.as_deref())
            .str("timestamp", &timestamp);
        e.finish();
        out
    }

    /// A scenario runner's outcome row, shaped like the fixtures' (no `kind`).
    pub fn outcome(&mut self) -> String {
        let ts = self.tick();
        let total = 1 + self.rng.below(5);
        let (city, state) = *self.rng.pick(&CITIES);
        let role = *self.rng.pick(&ROLES);
        let mut out = String::with_capacity(240);
        let mut o = ObjectWriter::new(&mut out);
        o.str("sig_hash", &self.rng.hex(16))
            .str("staffer_id", &format!("staffer-{}", 1 + self.rng.below(4)))
            .str("role", role)
            .str("city", city)
            .str("state", state)
            .uint("count", total)
            .uint("ok_events", self.rng.below(total + 1))
            .uint("total_events", total)
            .num("elapsed_secs", self.rng.below(900) as f64 / 10.0)
            .str("ts", &ts);
        o.finish();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakehouse_kb::model::{ObservedEvent, OutcomeRow, Verdict, outcome::SigHashRule};

    #[test]
    fn generated_records_are_valid_and_deterministic() {
        let mut a = Synth::new(7, 50);
        let mut b = Synth::new(7, 50);
        for _ in 0..500 {
            let v = a.verdict();
            assert_eq!(v, b.verdict());
            let verdict = Verdict::parse(&v).unwrap();
            assert!(!verdict.claims.is_empty());
            ObservedEvent::parse(&a.event(), "now").unwrap();
            OutcomeRow::parse(a.outcome().as_bytes(), SigHashRule::Required).unwrap();
            b.event();
            b.outcome();
        }
    }
}
