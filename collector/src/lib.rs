//! The chain's collector: boxes post batches of their event logs (`orderd-protocol::upload`);
//! the collector stores them in PostgreSQL exactly once and in order per site, folds orders
//! into monthly partitions, and serves chain-wide reports.
//!
//! Layout: [`config`] settings, [`db`] pool and migrations, [`sites`] site tokens, [`ingest`]
//! one transaction per batch (the events), [`project`] the events folded into orders after
//! the acknowledgement, [`reports`] the summaries, [`http`] the API, [`cli`] the command line
//! that `main` hands over to.

pub mod cli;
pub mod config;
pub mod db;
pub mod http;
pub mod ingest;
pub mod project;
pub mod reports;
pub mod sites;
