//! Integration tests, one binary (one link step): storage on real redb files, the real server
//! on an ephemeral port, the real CLI.

mod cli;
mod export;
mod import;
mod store;
