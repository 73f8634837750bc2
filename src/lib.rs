//! Intake: a self-hosted data import service. CSV, TSV, NDJSON and JSON in; real, typed SQL
//! tables out, through background jobs with progress, line-numbered errors and undo.
#![forbid(unsafe_code)]

pub mod api;
pub mod background;
pub mod blob;
pub mod cli;
pub mod engine;
pub mod model;
pub mod server;
pub mod store;

pub use server::{Config, launch, run_workers};
