//! Integration tests, one binary (one link step): storage on real redb files, the real server
//! on an ephemeral port, the real CLI.

mod backup;
mod cli;
mod clients;
mod compression;
mod export;
mod faults;
mod feed;
mod findings;
mod fuzz;
mod history;
mod import;
mod ingest;
mod lifecycle;
mod limits;
mod metrics;
mod neighbors;
mod openapi;
mod query;
mod repos;
mod retries;
mod store;
mod support;
mod verdict_lines;
// Test traffic lives with the tools (it is not part of the service); the tests compile the
// same file. Each test module uses only some of it.
#[allow(dead_code)]
#[path = "../../tools/src/synth.rs"]
mod synth;
