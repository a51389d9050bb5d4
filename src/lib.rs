//! lakehouse-kb: the embedded-database memory of the lakehouse code-review system.
//!
//! Verdicts, observer events and KB outcome rows come in over HTTP (`http/`), are validated into
//! domain types (`model/`), committed by one group-commit writer (`writer.rs`) into redb
//! (`store/`), and go out as query answers and as byte-compatible legacy JSONL files (`export/`).
//! See ARCHITECTURE.md for the map.

pub mod cli;
pub mod export;
pub mod fsutil;
pub mod http;
pub mod import;
pub mod intake;
pub mod jsjson;
pub mod metrics;
pub mod model;
pub mod service;
pub mod store;
pub mod writer;
