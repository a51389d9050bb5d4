//! The clients the auditor team and the report scripts use, tested against the real server:
//! `tools/clients/kb-client.ts` (compiled with tsc for Node 20, which also type-checks it) under
//! `node --test`, and `tools/clients/kb_client.py` under unittest.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::TestServer;

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/clients");

fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(program);
    command.args(args).current_dir(CLIENTS);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap_or_else(|e| {
        panic!("running {program} (Node 20 and Python 3 are part of the CI machine): {e}")
    })
}

#[track_caller]
fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn typescript_client_against_the_real_server() {
    if !Path::new(CLIENTS).join("node_modules/typescript").exists() {
        assert_ok(
            "npm ci",
            &run("npm", &["ci", "--no-audit", "--no-fund"], &[]),
        );
    }
    assert_ok(
        "tsc --strict",
        &run("npx", &["--no-install", "tsc", "-p", "."], &[]),
    );
    let server = TestServer::start();
    let out = run("node", &["--test", "test/"], &[("KB_URL", &server.base)]);
    assert_ok("node --test", &out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("# pass 6"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn python_client_against_the_real_server() {
    let server = TestServer::start();
    let out = run(
        "python3",
        &["-m", "unittest", "-v", "test_kb_client"],
        &[("KB_URL", &server.base)],
    );
    assert_ok("python3 -m unittest", &out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Ran 6 tests"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
