//! The client packages, tested against the real server and against stub servers of their own
//! (`test/stub.test.mjs`, `tests/test_stub.py`, which play an HTML 502, a stalled body, 503
//! with both `Retry-After` forms and a feed cut mid-event): the TypeScript package
//! (`tools/clients/typescript`, compiled with tsc for Node 20, which also type-checks it) under
//! `node --test`, packed with `npm pack` and installed into a fresh project; the Python package
//! (`tools/clients/python`) under unittest. Both are versioned with the service. `.ci/run`
//! also installs the Python package with pip and checks it with `mypy --strict`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::InProcessServer;

const TYPESCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/clients/typescript");
const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/clients/python");

fn run(dir: &Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(program);
    // npm asks the registry whether it is out of date unless told not to.
    command
        .args(args)
        .current_dir(dir)
        .env("npm_config_update_notifier", "false");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap_or_else(|e| {
        panic!("running {program} (Node 20 and Python 3 are part of the CI machine): {e}")
    })
}

#[track_caller]
fn assert_ok(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `npm ci` once (it fetches TypeScript), then `tsc`: strict type-checking and `dist/`.
fn build_typescript() {
    let dir = Path::new(TYPESCRIPT);
    if !dir.join("node_modules/typescript").exists() {
        assert_ok(
            "npm ci",
            &run(dir, "npm", &["ci", "--no-audit", "--no-fund"], &[]),
        );
    }
    assert_ok(
        "tsc --strict",
        &run(dir, "npx", &["--no-install", "tsc", "-p", "."], &[]),
    );
}

#[test]
fn typescript_client_against_the_real_server_and_a_stub() {
    build_typescript();
    let server = InProcessServer::start();
    let out = run(
        Path::new(TYPESCRIPT),
        "node",
        &["--test", "test/"],
        &[("KB_URL", &server.base)],
    );
    let stdout = assert_ok("node --test", &out);
    assert!(
        stdout.contains("# pass 36\n") && stdout.contains("# fail 0\n"),
        "{stdout}"
    );
}

#[test]
fn typescript_package_packs_installs_and_types_its_users() {
    build_typescript();
    let work = tempfile::tempdir().unwrap();
    let packed = assert_ok(
        "npm pack",
        &run(
            Path::new(TYPESCRIPT),
            "npm",
            &["pack", "--pack-destination", work.path().to_str().unwrap()],
            &[],
        ),
    );
    // Its last line names the tarball (the prepack script's output comes first).
    let tarball = work
        .path()
        .join(packed.lines().last().unwrap_or_default().trim());
    let listing = assert_ok(
        "tar",
        &run(work.path(), "tar", &["tzf", tarball.to_str().unwrap()], &[]),
    );
    let mut files: Vec<&str> = listing.lines().collect();
    files.sort_unstable();
    assert_eq!(
        files,
        [
            "package/LICENSE-APACHE",
            "package/LICENSE-MIT",
            "package/README.md",
            "package/dist/index.d.ts",
            "package/dist/index.js",
            "package/package.json"
        ]
    );

    let consumer = work.path().join("consumer");
    std::fs::create_dir(&consumer).unwrap();
    std::fs::write(
        consumer.join("package.json"),
        r#"{"name": "consumer", "private": true, "type": "module"}"#,
    )
    .unwrap();
    assert_ok(
        "npm install of the packed client",
        &run(
            &consumer,
            "npm",
            &[
                "install",
                "--offline",
                "--no-audit",
                "--no-fund",
                tarball.to_str().unwrap(),
            ],
            &[],
        ),
    );
    let imported = assert_ok(
        "import",
        &run(
            &consumer,
            "node",
            &[
                "-e",
                r#"import("lakehouse-kb-client").then(m => console.log(m.VERSION, typeof m.KbClient))"#,
            ],
            &[],
        ),
    );
    assert_eq!(
        imported.trim(),
        format!("{} function", env!("CARGO_PKG_VERSION"))
    );
    // A user's code type-checks against the installed `.d.ts`, found through `exports`.
    std::fs::write(
        consumer.join("use.ts"),
        r#"import { KbClient, KbError, type ExportFileReport, type FeedItem, type FindingInput, type FindingsPage,
  type PostedVerdict } from "lakehouse-kb-client";
const kb = new KbClient({ baseUrl: "http://127.0.0.1:1" });
export const posted: Promise<PostedVerdict> = kb.postVerdict({
  pr_number: 1, head_sha: "a".repeat(40), audited_at: "t", overall: "approve", one_liner: "x",
  metrics: { findings_block: 0, findings_warn: 0 },
});
export async function first(): Promise<number> {
  for await (const item of kb.follow()) {
    const typed: FeedItem = item;
    if (typed.type !== "resync") return typed.seq;
  }
  return 0;
}
export const isError = (e: unknown): boolean => e instanceof KbError && e.mayBeCommitted;
// The auditor's flow (a review's, at f639646, needed casts): its findings, with fields of its
// own, checked and then posted in the verdict as they are.
const findings: FindingInput[] = [{ check: "static", severity: "warn", summary: "x", file: "a.ts", line: 3 }];
export async function audit(): Promise<PostedVerdict> {
  await kb.checkFindings(1, { headSha: "abcdef01", findings });
  return kb.postVerdict({
    pr_number: 1, head_sha: "a".repeat(40), audited_at: "t", overall: "approve", one_liner: "x",
    metrics: { findings_block: 0, findings_warn: 1 }, findings,
  });
}
export const failed = (file: ExportFileReport): string | undefined =>
  file.action === "failed" || file.action === "paused" ? file.error : undefined;
export const next = (page: FindingsPage): number | null => (page.latest_seq == null ? null : page.latest_seq + 1);
"#,
    )
    .unwrap();
    std::fs::write(
        consumer.join("tsconfig.json"),
        r#"{"compilerOptions": {"strict": true, "module": "NodeNext", "moduleResolution": "NodeNext",
            "target": "ES2022", "lib": ["ES2022", "DOM"], "noEmit": true}, "files": ["use.ts"]}"#,
    )
    .unwrap();
    let tsc = Path::new(TYPESCRIPT).join("node_modules/.bin/tsc");
    assert_ok(
        "tsc of a user's code",
        &run(&consumer, tsc.to_str().unwrap(), &["-p", "."], &[]),
    );
}

#[test]
fn python_client_against_the_real_server_and_a_stub() {
    let server = InProcessServer::start();
    let out = run(
        Path::new(PYTHON),
        "python3",
        &["-m", "unittest", "discover", "-v", "-s", "tests"],
        &[
            ("KB_URL", &server.base),
            ("PYTHONPATH", "src"),
            ("PYTHONDONTWRITEBYTECODE", "1"),
        ],
    );
    assert_ok("python3 -m unittest", &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Ran 35 tests") && stderr.trim_end().ends_with("OK"),
        "{stderr}"
    );
}

/// The packages carry the service's version (`Cargo.toml`), in every place a user or a tool
/// reads it.
#[test]
fn client_packages_are_versioned_with_the_service() {
    let version = env!("CARGO_PKG_VERSION");
    let read = |path: PathBuf| std::fs::read_to_string(&path).unwrap();
    let json = |path: PathBuf| -> serde_json::Value { serde_json::from_str(&read(path)).unwrap() };
    let ts = Path::new(TYPESCRIPT);
    let py = Path::new(PYTHON);
    assert_eq!(json(ts.join("package.json"))["version"], version);
    let lock = json(ts.join("package-lock.json"));
    assert_eq!(lock["version"], version);
    assert_eq!(lock["packages"][""]["version"], version);
    assert!(
        read(ts.join("src/index.ts")).contains(&format!("export const VERSION = \"{version}\";"))
    );
    assert!(read(py.join("pyproject.toml")).contains(&format!("\nversion = \"{version}\"\n")));
    assert!(
        read(py.join("src/lakehouse_kb_client/client.py"))
            .contains(&format!("\n__version__ = \"{version}\"\n"))
    );
    assert!(py.join("src/lakehouse_kb_client/py.typed").exists());
}
