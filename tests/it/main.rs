//! Integration tests, one binary (one link step): storage on real redb files, the real server
//! on an ephemeral port, the real CLI.

mod backup;
mod cli;
mod clients;
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
